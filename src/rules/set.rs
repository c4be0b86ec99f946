//! [`SiteRules`]: every rule of a site in its merge order, checked as a whole (redirect
//! loops), and the queries the app asks of them.

use http::StatusCode;

use super::{HeaderOp, HeaderRule, Origin, RedirectRule, RuleError};

/// The rules of one site, merged and checked.
#[derive(Debug, Clone, Default)]
pub struct SiteRules {
    headers: Vec<HeaderRule>,
    redirects: Vec<RedirectRule>,
}

/// A request a redirect rule took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed<'a> {
    /// The rule.
    pub rule: &'a RedirectRule,
    /// Its status.
    pub status: StatusCode,
    /// The expanded target: for a redirect, the `Location` (the request's query appended
    /// when the rule has no query conditions and the target none of its own); for a
    /// rewrite or status page, the decoded path to serve.
    pub target: String,
}

impl SiteRules {
    /// Merges the operator's rules (`rampart.toml`) and the site's (`_headers`,
    /// `_redirects`) in the documented order and checks them together.
    ///
    /// # Errors
    /// Each redirect loop (a chain of redirects that comes back to where it started), named
    /// by the origins of the rules in it.
    pub fn new(
        operator_headers: Vec<HeaderRule>,
        operator_redirects: Vec<RedirectRule>,
        site_headers: Vec<HeaderRule>,
        site_redirects: Vec<RedirectRule>,
    ) -> Result<Self, Vec<RuleError>> {
        todo!()
    }

    /// Whether there are no rules at all.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.redirects.is_empty()
    }

    /// Header rules in the order they apply.
    #[must_use]
    pub fn header_rules(&self) -> &[HeaderRule] {
        &self.headers
    }

    /// Redirect rules in the order they are tried.
    #[must_use]
    pub fn redirect_rules(&self) -> &[RedirectRule] {
        &self.redirects
    }

    /// The header operations for a response to `path` on `host`, in the order they apply,
    /// each with the origin of its rule.
    #[must_use]
    pub fn header_ops(&self, host: Option<&str>, path: &str) -> Vec<(&Origin, &HeaderOp)> {
        todo!()
    }

    /// Whether a rule that names a host could apply to `path` (its response headers or
    /// routing then depend on the request's host, so the table cannot decide them).
    #[must_use]
    pub fn depends_on_host(&self, path: &str) -> bool {
        todo!()
    }

    /// Whether a forced redirect rule could take `path` (ignoring host and query): a file
    /// at such a path must ask [`Self::route`] on each request.
    #[must_use]
    pub fn may_force(&self, path: &str) -> bool {
        todo!()
    }

    /// The first redirect rule that takes the request, if any. `file_exists`: whether the
    /// table has a file at `path` (then only forced rules apply). `query` is the raw query
    /// string.
    #[must_use]
    pub fn route(
        &self,
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
        file_exists: bool,
    ) -> Option<Routed<'_>> {
        todo!()
    }
}
