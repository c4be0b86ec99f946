//! The `_headers` file: blocks of a path line followed by indented `Name: value` lines.
//!
//! ```text
//! # a comment
//! /*
//!   X-Frame-Options: DENY
//!   Content-Security-Policy: default-src 'self'
//! /embed/*
//!   ! X-Frame-Options
//! /sw.js
//!   Cache-Control: no-cache
//! /staging/*
//!   Basic-Auth: alice:$2b$12$...
//! ```

use super::{HeaderRule, RuleError};

/// Parses the text of a `_headers` file named `file` (for origins and errors). Every
/// problem is reported, each with its line; on any error no rule is returned.
///
/// # Errors
/// Every line that cannot be read, each as a [`RuleError`].
pub fn parse(file: &str, text: &str) -> Result<Vec<HeaderRule>, Vec<RuleError>> {
    todo!()
}
