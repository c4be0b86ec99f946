//! Consistent deploy swaps: what the root index.html loads at start (`<script src>`,
//! `<link rel="stylesheet" | "modulepreload" href>`, `<link rel="preload" as="script" |
//! "style" href>`) must be in the tree before that index.html is served. A deploy that
//! copies index.html before its bundles would otherwise serve an app whose entry script is a
//! 404 until the copy ends.
//!
//! [`references`] is a pure, tolerant scanner of those tags: any bytes in, never a panic,
//! no HTML parser (comments, `<script>` and `<style>` bodies are skipped; an attribute is
//! `name`, `name=value`, `name='value'` or `name="value"`). Only local references count:
//! relative (`assets/x.js`, `./x.js`) and root-relative (`/assets/x.js`) ones, resolved
//! against `/` (or a local `<base href>`); absolute URLs, protocol-relative `//cdn/...` and
//! `data:` are not. The query and fragment are dropped and the path percent-decoded.
//!
//! `DeployGate` holds the one piece of state: when an incomplete tree was first seen.
//! [`super::Site::reload`] asks it before building; it refuses the tree
//! ([`BuildError::Incomplete`]) for at most [`INCOMPLETE_WAIT`], then lets it through with a
//! warning naming what is missing. At start-up there is no previous table to keep, so the
//! site is served and the missing files are named at warn (`warn_missing`). It never
//! builds, serves or swaps a table itself.

use std::io::Read;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::assets::BuildError;
use super::tree::Tree;

/// How long a tree whose index.html references missing files is kept out of service,
/// counted from the poll that first saw it incomplete. Long enough for a deploy tool to
/// copy a large app's bundles (rsync of a few hundred MB on a local disk); short enough
/// that a deploy that is simply broken (a typo in a script name) goes live soon, with a
/// warning, rather than leaving the old version up indefinitely.
pub const INCOMPLETE_WAIT: Duration = Duration::from_secs(10);

/// The most of index.html read for the check: an index.html is a few KB; a larger one is
/// checked on its first 4 MiB.
const MAX_INDEX: u64 = 4 * 1024 * 1024;

/// The bounded wait for an incomplete deploy (see the module docs). Lives in the
/// [`super::Site`], so the redeploy poller and SIGHUP share it.
#[derive(Debug, Default)]
pub(crate) struct DeployGate {
    /// When the tree in the root was first seen incomplete; `None` while it is complete.
    first_seen: Mutex<Option<Instant>>,
}

impl DeployGate {
    /// Lets `tree` through when its index.html's local references are all in it. Otherwise
    /// refuses it with [`BuildError::Incomplete`] until [`INCOMPLETE_WAIT`] has passed since
    /// an incomplete tree was first seen, then lets it through with a warning naming the
    /// missing files.
    ///
    /// # Errors
    /// [`BuildError::Incomplete`] while waiting.
    pub(crate) fn check(&self, tree: &Tree) -> Result<(), BuildError> {
        self.check_at(tree, Instant::now())
    }

    fn check_at(&self, tree: &Tree, now: Instant) -> Result<(), BuildError> {
        let missing = missing(tree);
        let mut first_seen = self
            .first_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if missing.is_empty() {
            *first_seen = None;
            return Ok(());
        }
        let since = *first_seen.get_or_insert(now);
        let waited = now.saturating_duration_since(since);
        if waited < INCOMPLETE_WAIT {
            return Err(BuildError::Incomplete { missing });
        }
        *first_seen = None;
        tracing::warn!(
            missing = %missing.join(", "),
            waited_s = waited.as_secs(),
            "deploy still incomplete: index.html references files not in the root; swapping it in anyway"
        );
        Ok(())
    }
}

/// Logs at warn what the tree's index.html references but the tree lacks (start-up: there
/// is no previous table to keep serving).
pub(crate) fn warn_missing(tree: &Tree) {
    let missing = missing(tree);
    if !missing.is_empty() {
        tracing::warn!(
            missing = %missing.join(", "),
            "index.html references files not in the root; serving it anyway"
        );
    }
}

/// The local references of the tree's `/index.html` that name no file of the tree. An
/// index.html that cannot be read has none (the build reports that itself).
pub(crate) fn missing(tree: &Tree) -> Vec<String> {
    let Some(index) = tree.files().iter().find(|f| f.url == "/index.html") else {
        return Vec::new();
    };
    let mut html = Vec::new();
    let read =
        std::fs::File::open(&index.path).and_then(|f| f.take(MAX_INDEX).read_to_end(&mut html));
    if read.is_err() {
        return Vec::new();
    }
    let present = |url: &str| {
        let url = if url.ends_with('/') {
            format!("{url}index.html")
        } else {
            url.to_owned()
        };
        tree.files()
            .binary_search_by(|f| f.url.as_str().cmp(&url))
            .is_ok()
    };
    references(&html)
        .into_iter()
        .filter(|r| !present(r))
        .collect()
}

/// The local URL paths (decoded, starting with `/`, without query or fragment) that the
/// document loads at start through `<script src>` and `<link rel=stylesheet | modulepreload
/// | preload as=script|style>`, in document order, each once. Total on any bytes.
#[must_use]
pub fn references(html: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut base = String::from("/");
    let mut i = 0;
    while let Some(lt) = find(html, i, b"<") {
        i = lt + 1;
        if html[i..].starts_with(b"!--") {
            i = find(html, i + 3, b"-->").map_or(html.len(), |e| e + 3);
            continue;
        }
        let name_len = html[i..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        let name = &html[i..i + name_len];
        i += name_len;
        if name_len == 0 {
            continue;
        }
        let (attrs, end) = attributes(html, i);
        i = end;
        let attr = |key: &str| {
            attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        };
        let url = if name.eq_ignore_ascii_case(b"script") {
            // The body is script, not markup: `'<script src=x>'` in it loads nothing.
            i = find_ci(html, i, b"</script").unwrap_or(html.len());
            attr("src")
        } else if name.eq_ignore_ascii_case(b"style") {
            i = find_ci(html, i, b"</style").unwrap_or(html.len());
            None
        } else if name.eq_ignore_ascii_case(b"base") {
            if let Some(href) = attr("href").filter(|h| !h.trim().is_empty()) {
                base = resolve(&base, href).unwrap_or_default();
            }
            None
        } else if name.eq_ignore_ascii_case(b"link") && loads_at_start(attr("rel"), attr("as")) {
            attr("href")
        } else {
            None
        };
        // An empty base: a `<base href>` elsewhere, so relative references are not local.
        if let Some(path) = url.and_then(|u| resolve(&base, u)) {
            if !out.contains(&path) {
                out.push(path);
            }
        }
    }
    out
}

/// Whether a `<link>` with these `rel` and `as` values is fetched when the page loads.
fn loads_at_start(rel: Option<&str>, as_: Option<&str>) -> bool {
    let Some(rel) = rel else { return false };
    rel.split_ascii_whitespace().any(|token| {
        token.eq_ignore_ascii_case("stylesheet")
            || token.eq_ignore_ascii_case("modulepreload")
            || (token.eq_ignore_ascii_case("preload")
                && as_.is_some_and(|a| {
                    let a = a.trim();
                    a.eq_ignore_ascii_case("script") || a.eq_ignore_ascii_case("style")
                }))
    })
}

/// The attributes of the tag whose name ends at `i`, and the index after its `>` (or the
/// end of the input). Names are as written; values have `&amp;` decoded.
fn attributes(html: &[u8], mut i: usize) -> (Vec<(String, String)>, usize) {
    let mut attrs = Vec::new();
    loop {
        while i < html.len() && (html[i].is_ascii_whitespace() || html[i] == b'/') {
            i += 1;
        }
        if i >= html.len() {
            return (attrs, html.len());
        }
        if html[i] == b'>' {
            return (attrs, i + 1);
        }
        let start = i;
        while i < html.len()
            && !matches!(html[i], b'=' | b'>' | b'/')
            && !html[i].is_ascii_whitespace()
        {
            i += 1;
        }
        // A stray `=` (or a quote) where a name belongs: step over it.
        if i == start {
            i += 1;
            continue;
        }
        let name = String::from_utf8_lossy(&html[start..i]).into_owned();
        let mut j = i;
        while j < html.len() && html[j].is_ascii_whitespace() {
            j += 1;
        }
        let mut value = String::new();
        if html.get(j) == Some(&b'=') {
            j += 1;
            while j < html.len() && html[j].is_ascii_whitespace() {
                j += 1;
            }
            let (raw, next) = match html.get(j) {
                Some(&q @ (b'"' | b'\'')) => {
                    let end = find(html, j + 1, &[q]).unwrap_or(html.len());
                    (&html[j + 1..end], (end + 1).min(html.len()))
                }
                _ => {
                    let end = html[j..]
                        .iter()
                        .position(|b| b.is_ascii_whitespace() || *b == b'>')
                        .map_or(html.len(), |p| j + p);
                    (&html[j..end], end)
                }
            };
            value = String::from_utf8_lossy(raw).replace("&amp;", "&");
            i = next;
        }
        attrs.push((name, value));
    }
}

/// The decoded local path `reference` names when resolved against the local directory
/// `base` (`/` or `/app/`); `None` when it is not local (another origin, `data:`, a base
/// that is not local) or empty.
fn resolve(base: &str, reference: &str) -> Option<String> {
    let reference = reference.trim();
    let reference = reference.split(['?', '#']).next().unwrap_or_default();
    if reference.is_empty() || reference.starts_with("//") || reference.starts_with("\\\\") {
        return None;
    }
    // A scheme (`https:`, `data:`, `blob:`) before any `/`: not a path on this server.
    if let Some(colon) = reference.find(':') {
        if !reference[..colon].contains('/') {
            return None;
        }
    }
    let joined = if base.is_empty() {
        // `<base href>` names another origin: every path is resolved against it.
        return None;
    } else if reference.starts_with('/') {
        reference.to_owned()
    } else {
        let dir = &base[..=base.rfind('/').unwrap_or(0)];
        format!("{dir}{reference}")
    };
    let decoded = percent_decode(&joined);
    let mut segments: Vec<&str> = Vec::new();
    let trailing = decoded.ends_with('/') || decoded.ends_with("/.") || decoded.ends_with("/..");
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut path = format!("/{}", segments.join("/"));
    if trailing && path.len() > 1 {
        path.push('/');
    }
    Some(path)
}

/// `%XX` escapes decoded; a bad escape is kept as written, bytes that are not UTF-8 are
/// replaced.
fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        if let Some((hi, lo)) = escape {
            // Two hex digits: at most 255.
            out.push(u8::try_from(hi << 4 | lo).unwrap_or(b'%'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The index of the first `needle` at or after `from`.
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// [`find`], ignoring ASCII case.
fn find_ci(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(html: &str) -> Vec<String> {
        references(html.as_bytes())
    }

    #[test]
    fn vite_index_references_its_entry_script_styles_and_preloads() {
        let html = r#"<!doctype html><html><head>
            <link rel="icon" href="/favicon.ico">
            <link rel="manifest" href="/manifest.webmanifest">
            <link rel="preload" href="/assets/inter.woff2" as="font" crossorigin>
            <link rel="preload" href="/assets/pre.js" as="script">
            <link rel="preload" href="/assets/pre.css" as=style>
            <link rel="modulepreload" crossorigin href="/assets/vendor-BtqZ8k3a.js">
            <link rel="stylesheet" crossorigin href="/assets/index-DY650DRT.css">
            <script type="module" crossorigin src="/assets/index-DY650DRT.js"></script>
            </head><body><a href="/robots.txt">robots</a><img src="/logo.png"></body></html>"#;
        assert_eq!(
            refs(html),
            [
                "/assets/pre.js",
                "/assets/pre.css",
                "/assets/vendor-BtqZ8k3a.js",
                "/assets/index-DY650DRT.css",
                "/assets/index-DY650DRT.js",
            ]
        );
    }

    #[test]
    fn relative_references_resolve_against_the_root_and_queries_are_dropped() {
        let html = r"<script src=assets/a.js?v=2></script><script src='./b.js#x'></script>
            <LINK REL=STYLESHEET HREF=../c%20d.css><script src=/e/./f/../g.js></script>";
        assert_eq!(refs(html), ["/assets/a.js", "/b.js", "/c d.css", "/e/g.js"]);
    }

    #[test]
    fn other_origins_data_urls_and_inline_scripts_are_not_local() {
        let html = r#"<script src="https://cdn.example/x.js"></script>
            <script src="//cdn.example/y.js"></script>
            <link rel=stylesheet href="data:text/css,body{}">
            <script>document.write('<script src="/in-js.js"></scr' + 'ipt>')</script>
            <!-- <script src="/commented.js"></script> -->
            <style>/* <link rel=stylesheet href=/in-css.css> */</style>
            <script src=""></script><script src></script><link rel=stylesheet>"#;
        assert!(refs(html).is_empty(), "{:?}", refs(html));
    }

    #[test]
    fn a_base_href_moves_relative_references() {
        assert_eq!(
            refs(
                r#"<base href="/app/"><script src="main.js"></script><script src="/x.js"></script>"#
            ),
            ["/app/main.js", "/x.js"]
        );
        assert_eq!(
            refs(
                r#"<base href="https://cdn.example/"><script src="main.js"></script><script src="/x.js"></script>"#
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn truncated_and_odd_markup_is_tolerated() {
        for html in [
            "<",
            "<script",
            "<script src=",
            "<script src=\"/a.js",
            "<link rel=stylesheet href='/a.css",
            "<!--",
            "<script src=/a.js>",
            "<a = = '>",
            "<%41>",
            "<script src=%zz%4>",
        ] {
            let _ = refs(html);
        }
        assert_eq!(refs("<script src=/a.js>"), ["/a.js"]);
        assert_eq!(refs("<script src=\"/a.js"), ["/a.js"]);
    }

    #[test]
    fn the_gate_holds_an_incomplete_tree_for_the_wait_then_lets_it_through() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("index.html"),
            r#"<script type="module" src="/assets/index-DY650DRT.js"></script>
               <link rel="stylesheet" href="assets/index-BtqZ8k3a.css">"#,
        )
        .unwrap();
        std::fs::create_dir(root.join("assets")).unwrap();
        std::fs::write(root.join("assets/index-BtqZ8k3a.css"), "body{}").unwrap();
        let tree = Tree::walk(root).unwrap();
        assert_eq!(missing(&tree), ["/assets/index-DY650DRT.js"]);

        let gate = DeployGate::default();
        let t0 = Instant::now();
        match gate.check_at(&tree, t0) {
            Err(BuildError::Incomplete { missing }) => {
                assert_eq!(missing, ["/assets/index-DY650DRT.js"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(gate.check_at(&tree, t0 + INCOMPLETE_WAIT / 2).is_err());
        assert!(gate.check_at(&tree, t0 + INCOMPLETE_WAIT).is_ok());
        // The wait starts again for the next incomplete tree.
        assert!(gate.check_at(&tree, t0 + INCOMPLETE_WAIT * 2).is_err());

        std::fs::write(root.join("assets/index-DY650DRT.js"), "export {}").unwrap();
        let complete = Tree::walk(root).unwrap();
        assert!(missing(&complete).is_empty());
        assert!(gate.check_at(&complete, t0 + INCOMPLETE_WAIT * 2).is_ok());
    }

    mod props {
        use super::super::references;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn the_scanner_never_panics_on_any_bytes(html in proptest::collection::vec(any::<u8>(), 0..512)) {
                for r in references(&html) {
                    prop_assert!(r.starts_with('/'));
                }
            }

            #[test]
            fn the_scanner_never_panics_on_tag_soup(
                html in proptest::string::string_regex(
                    "(<|>|<script|<link|<base|<style|</script|<!--|-->|rel=|src=|href=|as=|stylesheet|preload|modulepreload|script|\"|'|=| |/|\\.|\\.\\.|%|%2|%41|\\?|#|a|:|//)*"
                ).expect("valid regex")
            ) {
                for r in references(html.as_bytes()) {
                    prop_assert!(r.starts_with('/'));
                }
            }
        }
    }
}
