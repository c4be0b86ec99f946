//! The `_redirects` file: one rule per line, `from [query conditions] to [status[!]]`.
//!
//! ```text
//! # a comment
//! /home               /                  301
//! /blog/*             /news/:splat       302
//! /admin/*            /admin/index.html  200
//! /old                /new               301!
//! /store id=:id       /blog/:id          301
//! https://www.example.com/*  https://example.com/:splat  301!
//! ```

use super::{RedirectRule, RuleError};

/// Parses the text of a `_redirects` file named `file` (for origins and errors). Every
/// problem is reported, each with its line; on any error no rule is returned.
///
/// # Errors
/// Every line that cannot be read, each as a [`RuleError`].
pub fn parse(file: &str, text: &str) -> Result<Vec<RedirectRule>, Vec<RuleError>> {
    todo!()
}
