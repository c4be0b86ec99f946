//! [`SiteRules`]: every rule of a site in its merge order, checked as a whole (redirect
//! loops), and the queries the app asks of them.
//!
//! Loop detection runs each redirect once on a sample request its pattern matches (each
//! placeholder `x1`, `x2`, ..., the splat `s/t`, each captured query value `q1`, ...) and
//! follows the redirects that would answer the result, as a browser would, with no file
//! in the table (so every rule may apply). A chain that comes back to a request it has
//! seen, or that runs past [`MAX_HOPS`] redirects, is refused. A chain ends where no
//! redirect takes the request, at a rewrite (rewrites are not chained when serving), or at
//! an absolute target on a host the rule's own pattern does not match (another site).

use std::cell::OnceCell;

use http::StatusCode;

use super::pattern::{expand, expand_with};
use super::percent::{decode as percent_decode, encode, encode_into, query_pairs};
use super::{
    is_absolute, Captures, HeaderOp, HeaderRule, Origin, QueryValue, RedirectRule, RuleError,
};

/// The most redirects a chain of rules may take before it is refused as a loop.
pub const MAX_HOPS: usize = 10;

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

/// A request as loop detection follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    host: Option<String>,
    path: String,
    query: Option<String>,
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(host) = &self.host {
            write!(f, "https://{host}")?;
        }
        f.write_str(&self.path)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
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
        let mut headers = site_headers;
        headers.extend(operator_headers);
        let mut redirects = operator_redirects;
        redirects.extend(site_redirects);
        let rules = Self { headers, redirects };
        let loops = rules.loops();
        if loops.is_empty() {
            Ok(rules)
        } else {
            Err(loops)
        }
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
        self.headers
            .iter()
            .filter(|r| r.pattern.matches(host, path).is_some())
            .flat_map(|r| r.ops.iter().map(move |op| (&r.origin, op)))
            .collect()
    }

    /// Whether a rule that names a host could apply to `path` (its response headers or
    /// routing then depend on the request's host, so the table cannot decide them).
    #[must_use]
    pub fn depends_on_host(&self, path: &str) -> bool {
        let headers = self.headers.iter().map(|r| &r.pattern);
        let redirects = self.redirects.iter().map(|r| &r.from);
        headers
            .chain(redirects)
            .any(|p| p.has_host() && p.matches_path(path).is_some())
    }

    /// Whether a forced redirect rule could take `path` (ignoring host and query): a file
    /// at such a path must ask [`Self::route`] on each request. A rule that names a host
    /// counts too, since whether it applies depends on the request.
    #[must_use]
    pub fn may_force(&self, path: &str) -> bool {
        self.redirects
            .iter()
            .any(|r| (r.force || r.from.has_host()) && r.from.matches_path(path).is_some())
    }

    /// Whether a forced redirect rule that names no host could take `path`: such a file
    /// must ask [`Self::route`] on every request, whatever its host.
    #[must_use]
    pub fn may_force_any_host(&self, path: &str) -> bool {
        self.redirects
            .iter()
            .any(|r| r.force && !r.from.has_host() && r.from.matches_path(path).is_some())
    }

    /// Whether any host-qualified rule (header or redirect) names `host`: a request for
    /// another host is answered as if those rules did not exist.
    #[must_use]
    pub fn names_host(&self, host: &str) -> bool {
        let headers = self.headers.iter().map(|r| &r.pattern);
        let redirects = self.redirects.iter().map(|r| &r.from);
        headers
            .chain(redirects)
            .any(|p| p.has_host() && p.matches_host(host))
    }

    /// The first redirect rule that takes the request, if any. `file_exists`: whether the
    /// table has a file at `path` (then only forced rules apply). `query` is the raw query
    /// string.
    ///
    /// A redirect's captured values are percent-encoded in the `Location` (they come from
    /// the decoded path); a rewrite's target is a decoded path, without the `?query` or
    /// `#fragment` its template may have.
    #[must_use]
    pub fn route(
        &self,
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
        file_exists: bool,
    ) -> Option<Routed<'_>> {
        let pairs = OnceCell::new();
        self.redirects
            .iter()
            .filter(|r| r.force || !file_exists)
            .find_map(|rule| {
                let captures = take(rule, host, path, query, &pairs)?;
                Some(apply(rule, &captures, query))
            })
    }

    /// The first redirect (3xx) rule that takes `request`, with its index.
    fn first_redirect(&self, request: &Request) -> Option<(usize, Routed<'_>)> {
        let pairs = OnceCell::new();
        let (host, query) = (request.host.as_deref(), request.query.as_deref());
        self.redirects
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_redirect())
            .find_map(|(i, rule)| {
                let captures = take(rule, host, &request.path, query, &pairs)?;
                Some((i, apply(rule, &captures, query)))
            })
    }

    /// Every redirect loop and over-long chain, each reported once, at the origin of the
    /// first rule (in merge order) that starts it.
    fn loops(&self) -> Vec<RuleError> {
        let mut errors = Vec::new();
        let mut reported: Vec<usize> = Vec::new();
        for (i, rule) in self.redirects.iter().enumerate() {
            if !rule.is_redirect() || reported.contains(&i) {
                continue;
            }
            let (host, path) = rule.from.sample();
            let start = Request {
                host,
                path,
                query: sample_query(rule),
            };
            let pairs = OnceCell::new();
            let (h, q) = (start.host.as_deref(), start.query.as_deref());
            let Some(captures) = take(rule, h, &start.path, q, &pairs) else {
                continue;
            };
            let mut routed = apply(rule, &captures, q);
            let mut used = vec![i];
            let mut chain = vec![start];
            let problem = loop {
                let Some(current) = chain.last() else {
                    break None;
                };
                let Some(next) = follow(routed.rule, &routed.target, current) else {
                    break None;
                };
                let seen = chain.contains(&next);
                chain.push(next);
                if seen {
                    break Some("redirect loop".to_owned());
                }
                let Some(current) = chain.last() else {
                    break None;
                };
                let Some((j, next_routed)) = self.first_redirect(current) else {
                    break None;
                };
                if used.len() >= MAX_HOPS {
                    break Some(format!("a chain of more than {MAX_HOPS} redirects"));
                }
                used.push(j);
                routed = next_routed;
            };
            if let Some(what) = problem {
                let steps: Vec<String> = chain.iter().map(ToString::to_string).collect();
                let mut origins: Vec<String> = Vec::new();
                for j in &used {
                    let origin = self.redirects[*j].origin.to_string();
                    if !origins.contains(&origin) {
                        origins.push(origin);
                    }
                }
                errors.push(RuleError::new(
                    rule.origin.clone(),
                    format!(
                        "{what}: {} (rules at {})",
                        steps.join(" → "),
                        origins.join(", ")
                    ),
                ));
                reported.extend(used);
            }
        }
        errors
    }
}

/// The captures of `rule` for the request, if it takes it: its pattern matches and every
/// query condition holds. `pairs` caches the decoded query across the rules of one request.
fn take(
    rule: &RedirectRule,
    host: Option<&str>,
    path: &str,
    query: Option<&str>,
    pairs: &OnceCell<Vec<(String, String)>>,
) -> Option<Captures> {
    let mut captures = rule.from.matches(host, path)?;
    if rule.query.is_empty() {
        return Some(captures);
    }
    let pairs = pairs.get_or_init(|| query.map(query_pairs).unwrap_or_default());
    for condition in &rule.query {
        let mut values = pairs
            .iter()
            .filter(|(n, _)| *n == condition.name)
            .map(|(_, v)| v);
        match &condition.value {
            QueryValue::Exact(want) => {
                values.any(|v| v == want).then_some(())?;
            }
            QueryValue::Capture(name) => {
                let value = values.next()?;
                captures.named.push((name.clone(), value.clone()));
            }
        }
    }
    Some(captures)
}

/// What `rule` answers a request it took with.
fn apply<'a>(rule: &'a RedirectRule, captures: &Captures, query: Option<&str>) -> Routed<'a> {
    let target = if rule.is_redirect() {
        let mut target = expand_with(&rule.to, captures, encode_into);
        let query = query.filter(|q| !q.is_empty());
        if let (true, Some(query), false) = (rule.query.is_empty(), query, target.contains('?')) {
            let at = target.find('#').unwrap_or(target.len());
            target.insert_str(at, &format!("?{query}"));
        }
        target
    } else {
        let end = rule.to.find(['?', '#']).unwrap_or(rule.to.len());
        expand(&rule.to[..end], captures)
    };
    Routed {
        rule,
        status: rule.status,
        target,
    }
}

/// The request a browser makes after `rule` redirected `from` to `target`, or `None` when
/// it leaves for another site.
fn follow(rule: &RedirectRule, target: &str, from: &Request) -> Option<Request> {
    let target = target.split('#').next().unwrap_or_default();
    let (host, rest) = if is_absolute(target) {
        let rest = target.split_once("://").map_or("", |(_, r)| r);
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..end];
        let host = match authority.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => authority,
        }
        .to_ascii_lowercase();
        // Another host (or any host, for a rule without one): another site, not followed.
        if !(rule.from.has_host() && rule.from.matches_host(&host)) {
            return None;
        }
        (Some(host), &rest[end..])
    } else {
        (from.host.clone(), target)
    };
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = if path.is_empty() { "/" } else { path };
    Some(Request {
        host,
        path: percent_decode(path, false),
        query: (!query.is_empty()).then(|| query.to_owned()),
    })
}

/// A raw query that satisfies every query condition of `rule`, if it has any.
fn sample_query(rule: &RedirectRule) -> Option<String> {
    let pairs: Vec<String> = rule
        .query
        .iter()
        .enumerate()
        .map(|(n, c)| {
            let value = match &c.value {
                QueryValue::Exact(v) => encode(v),
                QueryValue::Capture(_) => format!("q{}", n + 1),
            };
            format!("{}={value}", encode(&c.name))
        })
        .collect();
    (!pairs.is_empty()).then(|| pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::rules::{headers_file, redirects_file};

    fn redirects(text: &str) -> Vec<RedirectRule> {
        redirects_file::parse("_redirects", text).unwrap()
    }

    fn site(text: &str) -> SiteRules {
        SiteRules::new(vec![], vec![], vec![], redirects(text)).unwrap()
    }

    fn loop_errors(text: &str) -> Vec<String> {
        SiteRules::new(vec![], vec![], vec![], redirects(text))
            .unwrap_err()
            .into_iter()
            .map(|e| e.to_string())
            .collect()
    }

    fn target(
        rules: &SiteRules,
        host: Option<&str>,
        path: &str,
        query: Option<&str>,
    ) -> Option<(u16, String)> {
        rules
            .route(host, path, query, false)
            .map(|r| (r.status.as_u16(), r.target))
    }

    #[test]
    fn operator_redirects_are_tried_before_the_sites() {
        let operator = redirects_file::parse("rampart.toml", "/a /from-operator 302").unwrap();
        let rules = SiteRules::new(
            vec![],
            operator,
            vec![],
            redirects("/a /from-site 301\n/b /c"),
        )
        .unwrap();
        assert_eq!(
            target(&rules, None, "/a", None),
            Some((302, "/from-operator".into()))
        );
        assert_eq!(target(&rules, None, "/b", None), Some((301, "/c".into())));
        assert_eq!(
            rules.redirect_rules()[0].origin.file.as_ref(),
            "rampart.toml"
        );
    }

    #[test]
    fn header_rules_apply_site_first_then_operator() {
        let site = headers_file::parse("_headers", "/*\n  X-A: site\n").unwrap();
        let operator = headers_file::parse("rampart.toml", "/*\n  X-A: operator\n").unwrap();
        let rules = SiteRules::new(operator, vec![], site, vec![]).unwrap();
        let ops: Vec<(String, HeaderOp)> = rules
            .header_ops(None, "/x")
            .into_iter()
            .map(|(o, op)| (o.to_string(), op.clone()))
            .collect();
        let set = |v: &'static str| {
            HeaderOp::Set(HeaderName::from_static("x-a"), HeaderValue::from_static(v))
        };
        assert_eq!(
            ops,
            [
                ("_headers:1".into(), set("site")),
                ("rampart.toml:1".into(), set("operator"))
            ]
        );
    }

    #[test]
    fn header_ops_follow_the_pattern_and_host() {
        let text =
            "/*\n  X-All: 1\n/blog/*\n  X-Blog: 1\nhttps://beta.example.com/*\n  X-Beta: 1\n";
        let rules = SiteRules::new(
            vec![],
            vec![],
            headers_file::parse("_headers", text).unwrap(),
            vec![],
        )
        .unwrap();
        let names = |host, path| -> Vec<String> {
            rules
                .header_ops(host, path)
                .into_iter()
                .map(|(_, op)| match op {
                    HeaderOp::Set(n, _) | HeaderOp::Remove(n) => n.to_string(),
                    HeaderOp::BasicAuth(_) => "basic-auth".into(),
                })
                .collect()
        };
        assert_eq!(names(None, "/"), ["x-all"]);
        assert_eq!(names(None, "/blog/a"), ["x-all", "x-blog"]);
        assert_eq!(
            names(Some("beta.example.com"), "/blog/a"),
            ["x-all", "x-blog", "x-beta"]
        );
        assert!(rules.depends_on_host("/anything"));
        assert!(!rules.may_force("/anything"));
    }

    #[test]
    fn depends_on_host_and_may_force_look_at_the_path_part() {
        let rules = site("/old /new 301!\nhttps://www.example.com/docs/* https://example.com/docs/:splat 301\n/spa/* /index.html 200");
        assert!(rules.may_force("/old"));
        assert!(!rules.may_force("/new"));
        assert!(rules.may_force("/docs/a"));
        assert!(!rules.may_force("/spa/a"));
        assert!(rules.depends_on_host("/docs/a"));
        assert!(!rules.depends_on_host("/old"));
        // Without the host-qualified rule: only /old must be asked whatever the host.
        assert!(rules.may_force_any_host("/old"));
        assert!(!rules.may_force_any_host("/docs/a"));
        assert!(rules.names_host("www.example.com"));
        assert!(rules.names_host("WWW.Example.com"));
        assert!(!rules.names_host("example.com"));
    }

    #[test]
    fn a_rule_without_force_gives_way_to_a_file() {
        let rules = site("/a /b 301\n/c /d 302!");
        assert!(rules.route(None, "/a", None, true).is_none());
        assert_eq!(
            rules.route(None, "/a", None, false).map(|r| r.target),
            Some("/b".into())
        );
        assert_eq!(
            rules.route(None, "/c", None, true).map(|r| r.target),
            Some("/d".into())
        );
    }

    #[test]
    fn placeholders_and_splats_fill_the_target() {
        let rules = site("/news/* /blog/:splat\n/blog/:year/:slug /posts/:year-:slug 302\n");
        assert_eq!(
            target(&rules, None, "/news/a/b", None),
            Some((301, "/blog/a/b".into()))
        );
        assert_eq!(
            target(&rules, None, "/blog/2024/hi", None),
            Some((302, "/posts/2024-hi".into()))
        );
    }

    #[test]
    fn a_redirect_keeps_the_query_unless_it_has_conditions_or_its_own() {
        let rules = site("/a /b\n/c /d?x=1\n/store id=:id /items/:id\n");
        assert_eq!(
            target(&rules, None, "/a", Some("p=1&q=2")),
            Some((301, "/b?p=1&q=2".into()))
        );
        assert_eq!(
            target(&rules, None, "/a", Some("")),
            Some((301, "/b".into()))
        );
        assert_eq!(
            target(&rules, None, "/c", Some("p=1")),
            Some((301, "/d?x=1".into()))
        );
        assert_eq!(
            target(&rules, None, "/store", Some("x=1&id=a%20b")),
            Some((301, "/items/a%20b".into()))
        );
        assert_eq!(target(&rules, None, "/store", Some("x=1")), None);
        assert_eq!(target(&rules, None, "/store", None), None);
    }

    #[test]
    fn exact_query_conditions_compare_decoded_values() {
        let rules = site("/search q=hello+world /found 302\n");
        assert_eq!(
            target(&rules, None, "/search", Some("q=hello%20world")),
            Some((302, "/found".into()))
        );
        assert_eq!(target(&rules, None, "/search", Some("q=hello")), None);
    }

    #[test]
    fn captured_text_is_percent_encoded_in_a_location_and_decoded_in_a_rewrite() {
        let rules = site("/r/* /to/:splat 302\n/w/* /pages/:splat?x=1 200\n");
        assert_eq!(
            target(&rules, None, "/r/a b?#é", None),
            Some((302, "/to/a%20b%3F%23%C3%A9".into()))
        );
        assert_eq!(
            target(&rules, None, "/w/a b", Some("y=2")),
            Some((200, "/pages/a b".into()))
        );
    }

    #[test]
    fn spa_fallback_and_status_pages_are_rewrites_to_a_local_path() {
        let rules = site("/gone /410.html 410\n/* /index.html 200\n");
        assert_eq!(
            target(&rules, None, "/gone", None),
            Some((410, "/410.html".into()))
        );
        assert_eq!(
            target(&rules, None, "/any/route", Some("a=1")),
            Some((200, "/index.html".into()))
        );
        assert!(rules.route(None, "/any/route", None, true).is_none());
    }

    #[test]
    fn host_rules_take_only_their_host() {
        let rules = site("https://www.example.com/* https://example.com/:splat 301!\n");
        assert_eq!(
            target(&rules, Some("www.example.com"), "/a/b", Some("x=1")),
            Some((301, "https://example.com/a/b?x=1".into()))
        );
        assert_eq!(target(&rules, Some("example.com"), "/a/b", None), None);
        assert_eq!(target(&rules, None, "/a/b", None), None);
    }

    #[test]
    fn a_two_rule_loop_is_refused_once_naming_both_rules() {
        assert_eq!(
            loop_errors("/a /b\n/b /a\n"),
            ["_redirects:1: redirect loop: /a → /b → /a (rules at _redirects:1, _redirects:2)"]
        );
    }

    #[test]
    fn a_rule_to_its_own_path_is_a_loop() {
        assert_eq!(
            loop_errors("/ok /fine\n/a /a 302\n"),
            ["_redirects:2: redirect loop: /a → /a (rules at _redirects:2)"]
        );
        assert_eq!(
            loop_errors("/a /a?x=1 301\n"),
            ["_redirects:1: redirect loop: /a → /a?x=1 → /a?x=1 (rules at _redirects:1)"]
        );
    }

    #[test]
    fn a_trailing_slash_pair_is_a_loop() {
        assert_eq!(
            loop_errors("/x/ /x 301\n/x /x/ 301\n"),
            ["_redirects:1: redirect loop: /x/ → /x → /x/ (rules at _redirects:1, _redirects:2)"]
        );
    }

    #[test]
    fn a_splat_loop_through_placeholders_is_found() {
        let errors = loop_errors("/blog/* /news/:splat\n/news/:a/* /blog/:a/:splat\n");
        assert_eq!(
            errors,
            ["_redirects:1: redirect loop: /blog/s/t → /news/s/t → /blog/s/t (rules at _redirects:1, _redirects:2)"]
        );
    }

    #[test]
    fn a_chain_of_more_than_ten_redirects_is_refused() {
        let chain: String = (1..=11).map(|n| format!("/{n} /{}\n", n + 1)).collect();
        let errors = loop_errors(&chain);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("_redirects:1: a chain of more than 10 redirects: /1 → /2 → "),
            "{errors:?}"
        );
        let ten: String = (1..=10).map(|n| format!("/{n} /{}\n", n + 1)).collect();
        assert!(SiteRules::new(vec![], vec![], vec![], redirects(&ten)).is_ok());
    }

    #[test]
    fn a_same_host_absolute_redirect_that_grows_the_path_is_refused() {
        let errors = loop_errors("https://example.com/* https://example.com/:splat/ 301\n");
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(
                "_redirects:1: a chain of more than 10 redirects: https://example.com/s/t → \
                 https://example.com/s/t/ → https://example.com/s/t// → "
            ),
            "{errors:?}"
        );
    }

    #[test]
    fn a_canonical_host_rule_looping_back_is_refused() {
        let operator = redirects_file::parse(
            "rampart.toml",
            "https://:sub.example.com/* https://example.com/:sub/:splat 301!\nhttps://example.com/* https://example.com/:splat 301",
        )
        .unwrap();
        let errors = SiteRules::new(vec![], operator, vec![], vec![]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].to_string(),
            "rampart.toml:2: redirect loop: https://example.com/s/t → https://example.com/s/t \
             (rules at rampart.toml:2)"
        );
    }

    #[test]
    fn common_rules_are_not_loops() {
        let text = "https://www.example.com/* https://example.com/:splat 301!\n\
                    /old/* https://elsewhere.example/:splat 301!\n\
                    /* https://example.net/:splat 302\n\
                    /docs /docs/ 301\n\
                    /a /b 301\n\
                    /b /c 301\n\
                    /store id=:id /store 301\n\
                    /app/* /app/index.html 200\n\
                    /* /index.html 200\n";
        let rules = site(text);
        assert_eq!(rules.redirect_rules().len(), 9);
        assert!(!rules.is_empty());
        assert!(SiteRules::default().is_empty());
    }

    #[test]
    fn a_rewrite_does_not_continue_a_chain() {
        // `/a` is rewritten to `/b`'s content; `/b` redirects to `/a`: no loop when serving.
        assert!(
            SiteRules::new(vec![], vec![], vec![], redirects("/a /b 200\n/b /a 301\n")).is_ok()
        );
    }
}
