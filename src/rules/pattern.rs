//! Path patterns of site rules, as `_headers` and `_redirects` write them: `/blog/*`,
//! `/u/:user`, `/docs/:version/*`, `https://www.example.com/*`, `https://:sub.example.com/*`.
//!
//! A pattern is an optional host (labels, each literal or a `:placeholder`; the scheme is
//! accepted and ignored, rampart serves one) and a path of `/`-separated segments, each
//! literal, a `:placeholder` (one whole non-empty segment), or containing the one `*`
//! (the splat: any run of characters, `/` included, possibly empty). Matching is on the
//! decoded request path, case-sensitive, and exact about a trailing slash.
//!
//! A pattern is compiled once by [`Pattern::parse`] into literal runs and placeholders; a
//! match walks them without allocating until it captures. Parsing and matching are total:
//! any text is either a pattern or a reason, and any path either matches or not.

use std::fmt;

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    /// The host labels, when the pattern names a host.
    host: Option<Vec<Label>>,
    /// The path before the splat (the whole path when there is none).
    head: Vec<Token>,
    /// The path after the splat, when there is one.
    tail: Option<Vec<Token>>,
}

/// One label of a host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Label {
    /// Matched case-insensitively; stored lowercase.
    Literal(String),
    /// Any non-empty label, captured under this name.
    Placeholder(String),
}

/// A piece of a path pattern between splats.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// Exactly this text (never empty).
    Literal(String),
    /// One whole non-empty segment, captured under this name.
    Placeholder(String),
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
        if name == "splat" {
            if let Some(splat) = &self.splat {
                return Some(splat);
            }
        }
        self.named
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether `b` may be part of a placeholder name.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The placeholder name in a segment or label that starts with `:`, or why it is not one.
fn placeholder<'a>(text: &str, part: &'a str) -> Result<&'a str, String> {
    let name = &part[1..];
    if name.is_empty() || !name.bytes().next().is_some_and(is_name_byte) {
        return Err(format!(
            "{text:?} has a `:` with no name; a placeholder is `:name` (letters, digits and _)"
        ));
    }
    if !name.bytes().all(is_name_byte) {
        return Err(format!(
            "{text:?}: the placeholder in {part:?} is mixed with other text; a placeholder \
             is a whole segment (or host label), `:name` (letters, digits and _)"
        ));
    }
    Ok(name)
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong in words.
    ///
    /// # Errors
    /// Not starting with `/`, `http://` or `https://`; two splats; an empty placeholder
    /// name; a placeholder mixed with other text in one segment; a control character.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(format!("{text:?} contains a space or control character"));
        }
        let (host, path) = if let Some(rest) = text
            .strip_prefix("https://")
            .or_else(|| text.strip_prefix("http://"))
        {
            let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
            (Some(host), path)
        } else if text.starts_with('/') {
            (None, text)
        } else {
            return Err(format!(
                "{text:?} must start with / (a path) or http:// or https:// (a URL)"
            ));
        };
        if text.matches('*').count() > 1 {
            return Err(format!(
                "{text:?} has more than one *; a pattern has at most one splat"
            ));
        }
        let mut names: Vec<&str> = Vec::new();
        let mut check_name = |name| {
            if names.contains(&name) {
                Err(format!("{text:?} names the placeholder :{name} twice"))
            } else {
                names.push(name);
                Ok(())
            }
        };
        let host = match host {
            None => None,
            Some(host) => {
                if host.is_empty() {
                    return Err(format!("{text:?} has no host after the scheme"));
                }
                let mut labels = Vec::new();
                for label in host.split('.') {
                    if label.starts_with(':') {
                        let name = placeholder(text, label)?;
                        check_name(name)?;
                        labels.push(Label::Placeholder(name.to_owned()));
                    } else if label.contains(':') {
                        return Err(format!(
                            "{text:?}: the host has a port; a pattern names the host without one"
                        ));
                    } else if label.is_empty()
                        || !label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    {
                        return Err(format!(
                            "{text:?}: the host label {label:?} is not a name or a \
                             `:placeholder` (wildcard hosts are not supported)"
                        ));
                    } else {
                        labels.push(Label::Literal(label.to_ascii_lowercase()));
                    }
                }
                Some(labels)
            }
        };
        let mut head = Vec::new();
        let mut tail = None;
        let mut literal = String::new();
        // `path` starts with `/`: the first piece of the split is the empty text before it.
        for segment in path.split('/').skip(1) {
            literal.push('/');
            let current = tail.as_mut().unwrap_or(&mut head);
            if segment.starts_with(':') {
                let name = placeholder(text, segment)?;
                check_name(name)?;
                current.push(Token::Literal(std::mem::take(&mut literal)));
                current.push(Token::Placeholder(name.to_owned()));
            } else if let Some((before, after)) = segment.split_once('*') {
                literal.push_str(before);
                head.push(Token::Literal(std::mem::take(&mut literal)));
                literal.push_str(after);
                tail = Some(Vec::new());
            } else {
                literal.push_str(segment);
            }
        }
        tail.as_mut()
            .unwrap_or(&mut head)
            .push(Token::Literal(literal));
        let keep = |t: &Token| !matches!(t, Token::Literal(s) if s.is_empty());
        head.retain(keep);
        if let Some(tail) = &mut tail {
            tail.retain(keep);
        }
        Ok(Self {
            source: text.to_owned(),
            host,
            head,
            tail,
        })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern names a host (and so can match only requests for it).
    #[must_use]
    pub fn has_host(&self) -> bool {
        self.host.is_some()
    }

    /// Whether the pattern has a splat (`*`).
    #[must_use]
    pub fn has_splat(&self) -> bool {
        self.tail.is_some()
    }

    /// Matches a request: `host` is the request's host without port (`None`: any host
    /// pattern fails), `path` the decoded path.
    #[must_use]
    pub fn matches(&self, host: Option<&str>, path: &str) -> Option<Captures> {
        let mut captures = Captures::default();
        if self.host.is_some() {
            self.match_host(host?, &mut captures)?;
        }
        self.match_path(path, &mut captures)?;
        Some(captures)
    }

    /// Matches the path part only, as if the host matched: whether the rule could ever
    /// apply to this path (used when building the table).
    #[must_use]
    pub fn matches_path(&self, path: &str) -> Option<Captures> {
        let mut captures = Captures::default();
        self.match_path(path, &mut captures)?;
        Some(captures)
    }

    /// Whether the host part matches `host` (true for a pattern without one).
    #[must_use]
    pub fn matches_host(&self, host: &str) -> bool {
        self.host.is_none() || self.match_host(host, &mut Captures::default()).is_some()
    }

    fn match_host(&self, host: &str, captures: &mut Captures) -> Option<()> {
        let labels = self.host.as_ref()?;
        if host.split('.').count() != labels.len() {
            return None;
        }
        for (label, part) in labels.iter().zip(host.split('.')) {
            match label {
                Label::Literal(l) if l.eq_ignore_ascii_case(part) => {}
                Label::Placeholder(name) if !part.is_empty() => {
                    captures
                        .named
                        .push((name.clone(), part.to_ascii_lowercase()));
                }
                _ => return None,
            }
        }
        Some(())
    }

    fn match_path(&self, path: &str, captures: &mut Captures) -> Option<()> {
        // Placeholders are whole segments, so both directions are deterministic: the head
        // from the start, the tail from the end, and the splat is what lies between.
        let mut start = 0;
        for token in &self.head {
            let rest = path.get(start..)?;
            match token {
                Token::Literal(l) => {
                    rest.starts_with(l.as_str()).then_some(())?;
                    start += l.len();
                }
                Token::Placeholder(name) => {
                    let len = rest.find('/').unwrap_or(rest.len());
                    if len == 0 {
                        return None;
                    }
                    captures.named.push((name.clone(), rest[..len].to_owned()));
                    start += len;
                }
            }
        }
        let Some(tail) = &self.tail else {
            return (start == path.len()).then_some(());
        };
        let mut end = path.len();
        let mut named = Vec::new();
        for token in tail.iter().rev() {
            let region = path.get(start..end)?;
            match token {
                Token::Literal(l) => {
                    region.ends_with(l.as_str()).then_some(())?;
                    end -= l.len();
                }
                Token::Placeholder(name) => {
                    let from = region.rfind('/')? + 1;
                    if from == region.len() {
                        return None;
                    }
                    named.push((name.clone(), region[from..].to_owned()));
                    end = start + from;
                }
            }
        }
        captures.splat = Some(path.get(start..end)?.to_owned());
        captures.named.extend(named.into_iter().rev());
        Some(())
    }

    /// A request this pattern matches, for checking rules against each other: each host
    /// placeholder `x1`, `x2`, ..., each path placeholder likewise, the splat `s/t`.
    #[must_use]
    pub(crate) fn sample(&self) -> (Option<String>, String) {
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("x{n}")
        };
        let host = self.host.as_ref().map(|labels| {
            let labels: Vec<String> = labels
                .iter()
                .map(|l| match l {
                    Label::Literal(l) => l.clone(),
                    Label::Placeholder(_) => next(),
                })
                .collect();
            labels.join(".")
        });
        let mut path = String::new();
        let mut push = |tokens: &[Token], path: &mut String| {
            for token in tokens {
                match token {
                    Token::Literal(l) => path.push_str(l),
                    Token::Placeholder(_) => path.push_str(&next()),
                }
            }
        };
        push(&self.head, &mut path);
        if let Some(tail) = &self.tail {
            path.push_str("s/t");
            push(tail, &mut path);
        }
        (host, path)
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
    expand_with(template, captures, |v, out| out.push_str(v))
}

/// [`expand`], each captured value written by `write` (to encode it for a URL).
pub(crate) fn expand_with(
    template: &str,
    captures: &Captures,
    write: impl Fn(&str, &mut String),
) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find(':') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let len = after.bytes().take_while(|b| is_name_byte(*b)).count();
        match captures.get(&after[..len]).filter(|_| len > 0) {
            Some(value) => write(value, &mut out),
            None => {
                out.push(':');
                out.push_str(&after[..len]);
            }
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::parse(text).unwrap()
    }

    fn named(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        p(pattern).matches(None, path).map(|c| c.named)
    }

    fn splat(pattern: &str, path: &str) -> Option<String> {
        p(pattern).matches(None, path).and_then(|c| c.splat)
    }

    #[test]
    fn a_literal_pattern_matches_exactly_its_own_path() {
        let pattern = p("/about/team");
        assert!(pattern.matches(None, "/about/team").is_some());
        assert!(pattern.matches(None, "/about/team/").is_none());
        assert!(pattern.matches(None, "/about/Team").is_none());
        assert!(pattern.matches(None, "/about").is_none());
        assert!(p("/").matches(None, "/").is_some());
        assert!(p("/").matches(None, "/a").is_none());
        assert!(!pattern.has_host() && !pattern.has_splat());
    }

    #[test]
    fn a_trailing_slash_is_matched_exactly() {
        assert!(p("/x/").matches(None, "/x").is_none());
        assert!(p("/x").matches(None, "/x/").is_none());
        assert!(p("/x/").matches(None, "/x/").is_some());
    }

    #[test]
    fn a_splat_matches_any_run_including_slashes() {
        assert_eq!(splat("/*", "/").as_deref(), Some(""));
        assert_eq!(splat("/*", "/a").as_deref(), Some("a"));
        assert_eq!(splat("/*", "/a/b").as_deref(), Some("a/b"));
        assert_eq!(splat("/blog/*", "/blog/").as_deref(), Some(""));
        assert_eq!(splat("/blog/*", "/blog/x/y").as_deref(), Some("x/y"));
        assert_eq!(splat("/blog/*", "/blog"), None);
        assert_eq!(splat("/blog/*", "/blogs/x"), None);
    }

    #[test]
    fn a_splat_may_stand_mid_path_or_mid_segment() {
        assert_eq!(splat("/*/edit", "/a/b/edit").as_deref(), Some("a/b"));
        assert_eq!(splat("/*/edit", "//edit").as_deref(), Some(""));
        assert_eq!(splat("/*/edit", "/edit"), None);
        assert_eq!(
            splat("/assets/*.js", "/assets/app.js").as_deref(),
            Some("app")
        );
        assert_eq!(
            splat("/assets/*.js", "/assets/a/b.js").as_deref(),
            Some("a/b")
        );
        assert_eq!(splat("/assets/*.js", "/assets/app.css"), None);
        assert_eq!(splat("/assets/*.js", "/assets.js"), None);
        assert_eq!(splat("/a*", "/abc").as_deref(), Some("bc"));
    }

    #[test]
    fn placeholders_capture_one_whole_non_empty_segment() {
        assert_eq!(
            named("/u/:user/posts/:id", "/u/ann/posts/7"),
            Some(vec![
                ("user".into(), "ann".into()),
                ("id".into(), "7".into())
            ])
        );
        assert_eq!(named("/u/:user", "/u/"), None);
        assert_eq!(named("/u/:user", "/u/a/b"), None);
        assert_eq!(
            named("/u/:user/", "/u/a/"),
            Some(vec![("user".into(), "a".into())])
        );
    }

    #[test]
    fn placeholders_and_a_splat_combine_on_both_sides() {
        let caps = p("/docs/:version/*/:page")
            .matches(None, "/docs/v2/a/b/intro")
            .unwrap();
        assert_eq!(caps.get("version"), Some("v2"));
        assert_eq!(caps.get("splat"), Some("a/b"));
        assert_eq!(caps.get("page"), Some("intro"));
        assert_eq!(caps.get("other"), None);
        assert!(p("/docs/:version/*/:page")
            .matches(None, "/docs/v2/intro")
            .is_none());
        let caps = p("/*/:id/edit").matches(None, "/x/y/42/edit").unwrap();
        assert_eq!(
            (caps.get("splat"), caps.get("id")),
            (Some("x/y"), Some("42"))
        );
    }

    #[test]
    fn a_host_pattern_matches_its_host_case_insensitively_and_only_with_a_host() {
        let pattern = p("https://www.Example.com/*");
        assert!(pattern.has_host());
        assert!(pattern.matches(Some("www.example.com"), "/a").is_some());
        assert!(pattern.matches(Some("WWW.EXAMPLE.COM"), "/a").is_some());
        assert!(pattern.matches(Some("example.com"), "/a").is_none());
        assert!(pattern.matches(None, "/a").is_none());
        assert!(pattern.matches_path("/a").is_some());
        assert!(pattern.matches_host("www.example.com"));
        assert!(!pattern.matches_host("example.com"));
    }

    #[test]
    fn a_host_placeholder_captures_one_label() {
        let caps = p("http://:sub.example.com/:page")
            .matches(Some("docs.example.com"), "/intro")
            .unwrap();
        assert_eq!(caps.get("sub"), Some("docs"));
        assert_eq!(caps.get("page"), Some("intro"));
        assert!(p("http://:sub.example.com/")
            .matches(Some("a.b.example.com"), "/")
            .is_none());
        assert!(p("http://:sub.example.com/")
            .matches(Some("example.com"), "/")
            .is_none());
    }

    #[test]
    fn a_host_without_a_path_is_the_root() {
        let pattern = p("https://example.com");
        assert!(pattern.matches(Some("example.com"), "/").is_some());
        assert!(pattern.matches(Some("example.com"), "/a").is_none());
    }

    #[test]
    fn a_colon_inside_a_segment_is_literal() {
        assert!(p("/a:b").matches(None, "/a:b").is_some());
        assert!(p("/a:b").matches(None, "/a:c").is_none());
    }

    #[test]
    fn bad_patterns_are_refused_with_a_reason() {
        let err = |t: &str| Pattern::parse(t).unwrap_err();
        assert_eq!(
            err("old"),
            "\"old\" must start with / (a path) or http:// or https:// (a URL)"
        );
        assert!(err("").contains("must start with /"));
        assert!(err("ftp://x/").contains("must start with /"));
        assert!(err("/*/*").contains("more than one *"));
        assert!(err("/:/x").contains("with no name"));
        assert!(err("/:id.json").contains("mixed with other text"));
        assert!(err("/:*").contains("with no name"));
        assert!(err("/a b").contains("space or control"));
        assert!(err("/a\u{7}").contains("space or control"));
        assert!(err("https:///x").contains("no host"));
        assert!(err("https://example.com:8443/").contains("port"));
        assert!(err("https://*.example.com/").contains("wildcard"));
        assert!(err("https://a..b/").contains("host label"));
        assert!(err("/:a/:a").contains("twice"));
    }

    #[test]
    fn expand_fills_placeholders_and_the_splat_and_keeps_the_rest() {
        let caps = p("/u/:user/*").matches(None, "/u/ann/a/b").unwrap();
        assert_eq!(expand("/people/:user/:splat", &caps), "/people/ann/a/b");
        assert_eq!(expand("/:user_x/:user.html", &caps), "/:user_x/ann.html");
        assert_eq!(
            expand("https://x.com/:unknown", &caps),
            "https://x.com/:unknown"
        );
        assert_eq!(expand("/a:/b:", &caps), "/a:/b:");
        assert_eq!(expand("::user", &caps), ":ann");
        assert_eq!(expand("/é/:user", &caps), "/é/ann");
    }

    #[test]
    fn the_sample_request_matches_its_pattern() {
        for text in [
            "/",
            "/a/:b/*",
            "/*/:id/edit",
            "/assets/*.js",
            "https://:sub.example.com/:x",
        ] {
            let pattern = p(text);
            let (host, path) = pattern.sample();
            assert!(
                pattern.matches(host.as_deref(), &path).is_some(),
                "{text}: {path}"
            );
        }
    }
}
