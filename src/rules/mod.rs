//! Site rules: the headers, redirects and rewrites an app sets for its paths, read from the
//! `_headers` and `_redirects` files at the root of the served directory (the format Netlify
//! and Cloudflare Pages document) and from the `[[headers]]` / `[[redirects]]` sections of
//! `rampart.toml`, merged into one checked [`SiteRules`].
//!
//! This module parses, checks and answers questions ("which header operations apply to this
//! path?", "does a redirect or rewrite take this request?"); it never serves. The app asks it
//! when it builds the asset table, so that the answer for every file is folded into that
//! file's precomputed header maps (app/routes.rs); only a request that misses the table (an
//! SPA route, a 404) or a path a forced rule or host-qualified rule may take asks again.
//!
//! ```text
//! pattern.rs          path patterns: literal segments, :placeholders, one * splat, an optional host
//! header_op.rs        one `Name: value` line ─> HeaderOp (shared by `_headers` and rampart.toml)
//! credential.rs       `Basic-Auth` users, `user:BCRYPT-HASH ...`
//! percent.rs          query strings and captured text, percent-decoded and -encoded
//! headers_file.rs     `_headers` text ─> Vec<HeaderRule>        (file:line errors)
//! redirects_file.rs   `_redirects` text ─> Vec<RedirectRule>    (file:line errors)
//! set.rs              SiteRules: the merge order, loop detection, and the queries
//! ```
//!
//! Merge order (the README's "Site rules" says the same): redirects are tried first match
//! wins, `rampart.toml` before `_redirects` (the operator's rules, such as a canonical host,
//! come first); header rules all apply, in order, defaults first, then `_headers`, then
//! `rampart.toml` (a later rule replaces an earlier rule's value for the same name, so the
//! operator has the last word).

pub mod credential;
pub mod header_op;
pub mod headers_file;
pub mod pattern;
pub mod percent;
pub mod redirects_file;
pub mod set;

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, StatusCode};

pub use pattern::{Captures, Pattern};
pub use set::{Routed, SiteRules};

/// Where a rule was written: a file and a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file as the operator knows it (`_headers`, `/etc/rampart.toml`).
    pub file: Arc<str>,
    /// The 1-based line of the rule (of its path line, for a `_headers` block).
    pub line: usize,
}

impl Origin {
    /// An origin at `line` of `file`.
    #[must_use]
    pub fn new(file: impl Into<Arc<str>>, line: usize) -> Self {
        Self {
            file: file.into(),
            line,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A rule that could not be read or can never work, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct RuleError {
    /// The file and line.
    pub origin: Origin,
    /// What is wrong, in words that say how to fix it.
    pub reason: String,
}

impl RuleError {
    /// An error at `origin`.
    #[must_use]
    pub fn new(origin: Origin, reason: impl Into<String>) -> Self {
        Self {
            origin,
            reason: reason.into(),
        }
    }
}

/// What a header rule does to one header of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    /// Sets the header, replacing any value from the defaults or an earlier rule. A rule
    /// that names a header on several lines sets the values joined with `, `.
    Set(HeaderName, HeaderValue),
    /// Removes the header (`! Name`, or `Name:` with an empty value).
    Remove(HeaderName),
    /// `Basic-Auth: user:HASH [user:HASH ...]`: the paths need one of these users, each
    /// password given as a bcrypt hash (`$2b$...`, as `htpasswd -B` and
    /// `rampart hash-password` write); never sent as a header.
    BasicAuth(Vec<Credential>),
}

/// One user of a `Basic-Auth` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user name.
    pub user: String,
    /// The bcrypt hash of the password (`$2a$`, `$2b$` or `$2y$`).
    pub hash: String,
}

/// A header rule: operations for the responses to the paths its pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    /// Where it was written.
    pub origin: Origin,
    /// The paths (and, for a host-qualified pattern, hosts) it applies to.
    pub pattern: Pattern,
    /// What it does, in the order written.
    pub ops: Vec<HeaderOp>,
}

/// A query parameter a redirect rule requires (`_redirects`: `/store id=:id /blog/:id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryCondition {
    /// The parameter's name.
    pub name: String,
    /// What its value must be.
    pub value: QueryValue,
}

/// The value a [`QueryCondition`] requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryValue {
    /// Exactly this, compared with the request's percent-decoded value (`_redirects`
    /// writes it encoded, `a+b` or `a%20b`, and is decoded when read).
    Exact(String),
    /// Any value, captured as the named placeholder for the target.
    Capture(String),
}

impl QueryValue {
    /// Reads a condition's value as both formats write it: `:name` captures (letters,
    /// digits and `_`), anything else must be equal (`decode` turns the written text into
    /// the value compared: `_redirects` percent-decodes, TOML takes it as written).
    ///
    /// # Errors
    /// A `:` not followed by a placeholder name.
    #[allow(clippy::result_unit_err)]
    pub fn parse(text: &str, decode: impl FnOnce(&str) -> String) -> Result<Self, ()> {
        match text.strip_prefix(':') {
            None => Ok(Self::Exact(decode(text))),
            Some(name)
                if !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Ok(Self::Capture(name.to_owned()))
            }
            Some(_) => Err(()),
        }
    }
}

/// A redirect or rewrite rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRule {
    /// Where it was written.
    pub origin: Origin,
    /// The paths (and hosts) it takes.
    pub from: Pattern,
    /// Query parameters the request must carry; all of them, in any order, others allowed.
    pub query: Vec<QueryCondition>,
    /// The target: a path from the root, or an absolute `http(s)://` URL (redirects only),
    /// with `:placeholder` and `:splat` filled from the match.
    pub to: String,
    /// 301, 302, 303, 307, 308: a redirect; 200: a rewrite (the target's content is served
    /// at the requested path); 404, 410: the target's content with that status (a custom
    /// page, or a path kept from the SPA fallback).
    pub status: StatusCode,
    /// `!` / `force = true`: applies even when a file exists at the requested path
    /// (otherwise a rule only takes paths the table does not have, as on Netlify).
    pub force: bool,
}

impl RedirectRule {
    /// Whether the rule answers with a redirect (3xx and a `Location`), not content.
    #[must_use]
    pub fn is_redirect(&self) -> bool {
        self.status.is_redirection()
    }
}

/// The statuses a redirect rule may have.
pub const RULE_STATUSES: [u16; 8] = [200, 301, 302, 303, 307, 308, 404, 410];

/// The longest line, in bytes, a `_headers` or `_redirects` file may have.
pub const MAX_LINE: usize = 2000;

/// [`RULE_STATUSES`] as an error message lists them.
pub(crate) fn statuses_list() -> String {
    let all: Vec<String> = RULE_STATUSES.iter().map(u16::to_string).collect();
    all.join(", ")
}

/// The status of a rule if `n` is one of [`RULE_STATUSES`].
#[must_use]
pub fn rule_status(n: i64) -> Option<StatusCode> {
    u16::try_from(n)
        .ok()
        .filter(|n| RULE_STATUSES.contains(n))
        .and_then(|n| StatusCode::from_u16(n).ok())
}

/// Whether a target is an absolute `http://` or `https://` URL (not a local path).
#[must_use]
pub fn is_absolute(target: &str) -> bool {
    target.starts_with("https://") || target.starts_with("http://")
}

/// The reason a rule with `status` cannot lead to `target`, if it cannot: a rewrite or
/// status page serves local content, so its target must be a path.
#[must_use]
pub fn target_problem(target: &str, status: StatusCode) -> Option<String> {
    if !target.starts_with('/') && !is_absolute(target) {
        return Some(format!(
            "{target:?} must start with / (a path) or http:// or https:// (a URL)"
        ));
    }
    if is_absolute(target) && !status.is_redirection() {
        return Some(format!(
            "{target}: proxying to another origin is not supported; a {} {} needs a local path",
            status.as_u16(),
            if status == StatusCode::OK {
                "rewrite"
            } else {
                "page"
            }
        ));
    }
    if target.chars().any(char::is_control) {
        return Some(format!("{target:?} contains a control character"));
    }
    None
}

/// The numbered lines of a rules file: a UTF-8 byte order mark dropped, `\n` or `\r\n`
/// endings, numbered from 1.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.lines().enumerate().map(|(i, line)| (i + 1, line))
}

/// A bcrypt hash of the right form, for tests.
#[cfg(test)]
pub(crate) const TEST_HASH: &str = "$2y$05$rXJ3m1ZpQ3sQk8v3C6mD2OQx0iQb1VJw8m0a4lXJjv3a6yQ0mKx3u";
