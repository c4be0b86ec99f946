//! Path patterns of site rules, as `_headers` and `_redirects` write them: `/blog/*`,
//! `/u/:user`, `/docs/:version/*`, `https://www.example.com/*`, `https://:sub.example.com/*`.
//!
//! A pattern is an optional host (labels, each literal or a `:placeholder`; the scheme is
//! accepted and ignored, rampart serves one) and a path of `/`-separated segments, each
//! literal, a `:placeholder` (one whole non-empty segment), or containing the one `*`
//! (the splat: any run of characters, `/` included, possibly empty). Matching is on the
//! decoded request path, case-sensitive, and exact about a trailing slash.

use std::fmt;

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
}

/// What a match captured: each placeholder's value, and the splat's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captures {
    /// Placeholder names (without `:`) and values, in pattern order.
    pub named: Vec<(String, String)>,
    /// What the `*` matched, if the pattern has one.
    pub splat: Option<String>,
}

impl Captures {
    /// The value of `:name` (`splat` for the splat).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        todo!()
    }
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong in words.
    ///
    /// # Errors
    /// Not starting with `/`, `http://` or `https://`; two splats; an empty placeholder
    /// name; a placeholder mixed with other text in one segment; a control character.
    pub fn parse(text: &str) -> Result<Self, String> {
        todo!()
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern names a host (and so can match only requests for it).
    #[must_use]
    pub fn has_host(&self) -> bool {
        todo!()
    }

    /// Matches a request: `host` is the request's host without port (`None`: any host
    /// pattern fails), `path` the decoded path.
    #[must_use]
    pub fn matches(&self, host: Option<&str>, path: &str) -> Option<Captures> {
        todo!()
    }

    /// Matches the path part only, as if the host matched: whether the rule could ever
    /// apply to this path (used when building the table).
    #[must_use]
    pub fn matches_path(&self, path: &str) -> Option<Captures> {
        todo!()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Fills a target template: `:name` from the placeholders, `:splat` from the splat; an
/// unknown `:word` is kept as written.
#[must_use]
pub fn expand(template: &str, captures: &Captures) -> String {
    todo!()
}
