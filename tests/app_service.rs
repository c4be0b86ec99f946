//! HTTP semantics of the app `Service` on its own, driven with `tower::ServiceExt::oneshot`
//! (no sockets): SPA routing, cache and security headers, content negotiation and sidecars,
//! conditional and range requests, HEAD, 405, path safety, 414, streaming from disk and
//! reload. Every fixture root is written from code into a fresh temporary directory.

use std::path::Path;

use bytes::Bytes;
use http::header;
use http::response::Parts;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use rampart::app::assets::{compress, decompress};
use rampart::app::encoding::Encoding;
use rampart::app::{AssetService, BuildOptions, Finding, SecurityHeaders, Site, SiteOptions};
use tempfile::TempDir;
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------
// Fixtures and helpers
// ---------------------------------------------------------------------------------------

const INDEX: &[u8] = b"<!doctype html><html><head><title>app</title></head><body><div id=app></div><script type=module src=/assets/app.3f9a1c2b.js></script></body></html>\n";
const DOCS_INDEX: &[u8] = b"<!doctype html><title>docs</title><p>documentation</p>\n";
const NOT_FOUND_PAGE: &[u8] = b"<!doctype html><title>not found</title><p>nothing here</p>\n";
const HASHED_JS: &[u8] = b"console.log('hashed app');\n";
const VITE_JS: &[u8] = b"export const vite = 1;\n";
const ROBOTS: &[u8] = b"User-agent: *\nDisallow:\n";
const SECURITY_TXT: &[u8] = b"Contact: mailto:security@example.com\n";
const SPACED: &[u8] = b"a file with a space in its name\n";
const ENV: &[u8] = b"SECRET_KEY=do-not-serve-me\n";
const GIT_CONFIG: &[u8] = b"[core]\n\trepositoryformatversion = 0\n# git-config-secret\n";

/// Writes `contents` at `rel` under `root`, creating parent directories.
fn write(root: &Path, rel: &str, contents: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

fn read(root: &Path, rel: &str) -> Vec<u8> {
    std::fs::read(root.join(rel)).unwrap()
}

/// About 20 KB of JavaScript-like text: compresses well, but not to nothing.
fn js_text(lines: usize) -> Vec<u8> {
    let mut s = String::new();
    for i in 0..lines {
        s.push_str(&format!(
            "export function handler{i}(event) {{ return event.value * {} + \"{:x}\"; }}\n",
            i * 7 + 3,
            i.wrapping_mul(2_654_435_761)
        ));
    }
    s.into_bytes()
}

/// Deterministic pseudo-random bytes (xorshift64*): incompressible, and distinct everywhere
/// so that a misplaced slice cannot pass for the right one.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A fake but plausible PNG (signature + random payload).
fn png_bytes() -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend(random_bytes(1200, 7));
    v
}

/// The standard site: index, hashed and plain assets, a directory index, a large text asset,
/// an image, `.well-known`, a name with a space, and dotfiles that must never be served.
fn populate(root: &Path) {
    write(root, "index.html", INDEX);
    write(root, "assets/app.3f9a1c2b.js", HASHED_JS);
    write(root, "assets/index-BtqZ8k3a.js", VITE_JS);
    write(root, "assets/big.js", &js_text(260));
    write(root, "favicon.ico", &random_bytes(100, 3));
    write(root, "robots.txt", ROBOTS);
    write(root, "img/pixel.png", &png_bytes());
    write(root, "docs/index.html", DOCS_INDEX);
    write(root, ".well-known/security.txt", SECURITY_TXT);
    write(root, "a b.txt", SPACED);
    write(root, "data.bin", &random_bytes(1000, 11));
    write(root, ".env", ENV);
    write(root, ".git/config", GIT_CONFIG);
}

fn options(root: &Path) -> SiteOptions {
    SiteOptions {
        root: root.to_owned(),
        spa: true,
        max_uri_length: 8192,
        build: BuildOptions {
            stream_threshold: 8 << 20,
            security: SecurityHeaders::new(31_536_000),
            rules: Default::default(),
            keep_old_assets: std::time::Duration::from_secs(86_400),
            alt_svc: None,
        },
    }
}

struct Fixture {
    dir: TempDir,
    svc: AssetService,
}

impl Fixture {
    /// The standard site with default options.
    fn new() -> Self {
        Self::with(populate, |_| {})
    }

    /// A site whose files are written by `files`, loaded with options changed by `tweak`.
    fn with(files: impl FnOnce(&Path), tweak: impl FnOnce(&mut SiteOptions)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        files(dir.path());
        let mut opts = options(dir.path());
        tweak(&mut opts);
        let svc = AssetService::new(Site::load(opts).unwrap());
        Self { dir, svc }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, rel: &str) -> Vec<u8> {
        read(self.root(), rel)
    }

    async fn get(&self, uri: &str) -> (Parts, Bytes) {
        self.send(Method::GET, uri, &[]).await
    }

    async fn get_with(&self, uri: &str, headers: &[(&str, &str)]) -> (Parts, Bytes) {
        self.send(Method::GET, uri, headers).await
    }

    async fn send(&self, method: Method, uri: &str, headers: &[(&str, &str)]) -> (Parts, Bytes) {
        send(&self.svc, method, uri, headers).await
    }
}

/// One request through the service; the body is collected in full.
async fn send(
    svc: &AssetService,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (Parts, Bytes) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(())
        .unwrap_or_else(|e| panic!("request {uri:?}: {e}"));
    let res = svc.clone().oneshot(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts, bytes)
}

/// Log lines written while the returned guard lives, on this thread (the tests' runtime is
/// current-thread, so the service's own lines land here too).
fn capture_logs() -> (Logs, tracing::subscriber::DefaultGuard) {
    let logs = Logs::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Logs {
    /// How many lines at `level` contain `needle`.
    fn count(&self, level: &str, needle: &str) -> usize {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(&format!(" {level} ")) && l.contains(needle))
            .count()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn h(parts: &Parts, name: impl http::header::AsHeaderName) -> Option<&str> {
    parts.headers.get(name).map(|v| v.to_str().unwrap())
}

fn content_length(parts: &Parts) -> usize {
    h(parts, header::CONTENT_LENGTH)
        .expect("Content-Length")
        .parse()
        .unwrap()
}

fn assert_security_headers(parts: &Parts, what: &str) {
    assert_eq!(
        h(parts, header::STRICT_TRANSPORT_SECURITY),
        Some("max-age=31536000"),
        "HSTS on {what}"
    );
    assert_eq!(
        h(parts, header::X_CONTENT_TYPE_OPTIONS),
        Some("nosniff"),
        "nosniff on {what}"
    );
    assert_eq!(
        h(parts, header::REFERRER_POLICY),
        Some("strict-origin-when-cross-origin"),
        "Referrer-Policy on {what}"
    );
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const SHORT: &str = "public, max-age=300, must-revalidate";

fn http_date_offset(date: &str, secs: i64) -> String {
    let t = httpdate::parse_http_date(date).unwrap();
    let d = std::time::Duration::from_secs(secs.unsigned_abs());
    httpdate::fmt_http_date(if secs >= 0 { t + d } else { t - d })
}

/// One part of a multipart/byteranges body.
#[derive(Debug)]
struct BodyPart {
    content_type: String,
    content_range: String,
    data: Bytes,
}

/// Parses a multipart/byteranges body strictly: each part's length is taken from its
/// Content-Range, and every delimiter must be exactly where RFC 2046 puts it.
fn parse_multipart(content_type: &str, body: &Bytes) -> Vec<BodyPart> {
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart/byteranges: {content_type}"));
    assert!(!boundary.is_empty());
    let mut rest = &body[..];
    let mut parts = Vec::new();
    let first = format!("--{boundary}\r\n");
    assert!(
        rest.starts_with(first.as_bytes()),
        "body opens with the boundary"
    );
    rest = &rest[first.len()..];
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("part headers end");
        let head = std::str::from_utf8(&rest[..end]).unwrap();
        rest = &rest[end + 4..];
        let mut content_type = None;
        let mut content_range = None;
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(": ").expect("part header line");
            match k.to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(v.to_owned()),
                "content-range" => content_range = Some(v.to_owned()),
                other => panic!("unexpected part header {other}"),
            }
        }
        let content_range = content_range.expect("part Content-Range");
        let (span, _) = content_range
            .strip_prefix("bytes ")
            .unwrap()
            .split_once('/')
            .unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let n = b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1;
        parts.push(BodyPart {
            content_type: content_type.expect("part Content-Type"),
            content_range,
            data: Bytes::copy_from_slice(&rest[..n]),
        });
        rest = &rest[n..];
        let delim = format!("\r\n--{boundary}");
        assert!(rest.starts_with(delim.as_bytes()), "delimiter after part");
        rest = &rest[delim.len()..];
        if rest == b"--\r\n" {
            return parts;
        }
        assert!(rest.starts_with(b"\r\n"), "CRLF after delimiter");
        rest = &rest[2..];
    }
}

// ---------------------------------------------------------------------------------------
// 1. SPA routing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_extensionless_path_gets_index_html_with_no_cache() {
    let f = Fixture::new();
    for uri in [
        "/dashboard/settings",
        "/dashboard/",
        "/dashboard",
        "/users/42?tab=profile",
        "/v1.2/page",
    ] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(&body[..], INDEX, "{uri}");
        assert_eq!(h(&p, header::CACHE_CONTROL), Some("no-cache"), "{uri}");
        assert_eq!(
            h(&p, header::CONTENT_TYPE),
            Some("text/html; charset=utf-8"),
            "{uri}"
        );
        assert_eq!(content_length(&p), INDEX.len(), "{uri}");
    }
}

#[tokio::test]
async fn unknown_path_with_extension_gets_404_not_index_html() {
    let f = Fixture::new();
    for uri in [
        "/assets/missing.4f3a.js",
        "/logo.png",
        "/dashboard/report.pdf",
        "/assets/app.3f9a1c2b.js.map",
    ] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{uri}");
        assert_ne!(&body[..], INDEX, "{uri}");
        assert_eq!(&body[..], b"404 Not Found\n", "{uri}");
        assert_eq!(
            h(&p, header::CONTENT_TYPE),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(h(&p, header::CACHE_CONTROL), Some("no-cache"));
    }
}

/// Routes with a dot in the last segment (`/u/john.doe`, `/docs/v1.2`, `/user/a@b.com`):
/// a browser navigation gets the app (deep link and reload), a missing script, style or
/// image request from the same browser keeps its 404, both with the `Vary` that names the
/// signals; a request without any signal (curl) keeps the extension heuristic.
#[tokio::test]
async fn a_navigation_to_a_route_with_a_dot_gets_the_app_and_a_missing_subresource_its_404() {
    let f = Fixture::new();
    let vary = "Accept-Encoding, Sec-Fetch-Dest, Sec-Fetch-Mode, Accept";
    let chrome_nav = [
        ("sec-fetch-dest", "document"),
        ("sec-fetch-mode", "navigate"),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
    ];
    // Safari before 16.4 sends no fetch metadata: Accept decides.
    let old_safari_nav = [(
        "accept",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    )];
    for uri in [
        "/u/john.doe",
        "/docs/v1.2",
        "/user/a@b.com",
        "/dashboard/settings",
    ] {
        for headers in [&chrome_nav[..], &old_safari_nav[..]] {
            let (p, body) = f.get_with(uri, headers).await;
            assert_eq!((p.status, &body[..]), (StatusCode::OK, INDEX), "{uri}");
            assert_eq!(h(&p, header::VARY), Some(vary), "{uri}");
            assert_eq!(h(&p, header::CACHE_CONTROL), Some("no-cache"), "{uri}");
        }
    }
    for (uri, dest) in [
        ("/assets/missing.4f3a.js", "script"),
        ("/assets/missing.css", "style"),
        ("/logo-missing.png", "image"),
        ("/api/user.json", "empty"),
        // Even without a dot: a script that is not there is not the app.
        ("/assets/chunk", "script"),
    ] {
        let (p, body) = f
            .get_with(
                uri,
                &[("sec-fetch-dest", dest), ("sec-fetch-mode", "no-cors")],
            )
            .await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(&body[..], b"404 Not Found\n", "{uri}");
        assert_eq!(h(&p, header::VARY), Some(vary), "{uri}");
    }
    // No signal at all: a dot means a file.
    let (p, _) = f.get("/u/john.doe").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    let (p, body) = f.get("/u/john").await;
    assert_eq!((p.status, &body[..]), (StatusCode::OK, INDEX));
    // A file that exists is the file, whatever the signals, with no navigation Vary.
    let (p, body) = f.get_with("/robots.txt", &chrome_nav).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_ne!(&body[..], INDEX);
    assert_ne!(h(&p, header::VARY), Some(vary));
    // `.well-known` never falls back.
    let (p, _) = f.get_with("/.well-known/x.y", &chrome_nav).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn unknown_well_known_path_gets_404_not_index_html() {
    let f = Fixture::new();
    let (p, body) = f.get("/.well-known/change-password").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_ne!(&body[..], INDEX);
}

#[tokio::test]
async fn without_spa_unknown_extensionless_path_gets_404() {
    let f = Fixture::with(populate, |o| o.spa = false);
    for uri in ["/dashboard/settings", "/dashboard/", "/dashboard"] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(&body[..], b"404 Not Found\n", "{uri}");
    }
    // Real files, the root and directory indexes are still served.
    let (p, body) = f.get("/").await;
    assert_eq!((p.status, &body[..]), (StatusCode::OK, INDEX));
    let (p, body) = f.get("/docs/").await;
    assert_eq!((p.status, &body[..]), (StatusCode::OK, DOCS_INDEX));
}

#[tokio::test]
async fn directory_with_index_html_is_served_at_its_slash_path() {
    let f = Fixture::new();
    for uri in ["/docs/", "/docs/index.html", "/docs/?q=1"] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(&body[..], DOCS_INDEX, "{uri}");
        assert_eq!(h(&p, header::CACHE_CONTROL), Some("no-cache"), "{uri}");
    }
    let (p, body) = f.get("/").await;
    assert_eq!((p.status, &body[..]), (StatusCode::OK, INDEX));
}

#[tokio::test]
async fn directory_without_its_slash_redirects_308_keeping_the_query() {
    let f = Fixture::new();
    let (p, _) = f.get("/docs").await;
    assert_eq!(p.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(h(&p, header::LOCATION), Some("/docs/"));
    assert_security_headers(&p, "308");

    let (p, _) = f.get("/docs?page=2&x=y").await;
    assert_eq!(p.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(h(&p, header::LOCATION), Some("/docs/?page=2&x=y"));

    let (p, body) = f.send(Method::HEAD, "/docs", &[]).await;
    assert_eq!(p.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(h(&p, header::LOCATION), Some("/docs/"));
    assert!(body.is_empty(), "HEAD has no body");
}

#[tokio::test]
async fn root_404_html_is_served_with_status_404_for_misses() {
    let files = |root: &Path| {
        populate(root);
        write(root, "404.html", NOT_FOUND_PAGE);
    };
    let f = Fixture::with(files, |_| {});
    let (p, body) = f.get("/assets/missing.4f3a.js").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_eq!(&body[..], NOT_FOUND_PAGE);
    assert_eq!(
        h(&p, header::CONTENT_TYPE),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(h(&p, header::CACHE_CONTROL), Some("no-cache"));
    assert_eq!(content_length(&p), NOT_FOUND_PAGE.len());
    assert_security_headers(&p, "404.html");

    // With the SPA fallback, extensionless misses still get index.html.
    let (p, body) = f.get("/dashboard").await;
    assert_eq!((p.status, &body[..]), (StatusCode::OK, INDEX));

    // A Range or a validator does not turn the 404 page into a 206 or a 304.
    let (p, body) = f
        .get_with(
            "/nope.js",
            &[("range", "bytes=0-3"), ("if-none-match", "*")],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_eq!(&body[..], NOT_FOUND_PAGE);

    // Without it, they get the 404 page too.
    let f = Fixture::with(files, |o| o.spa = false);
    let (p, body) = f.get("/dashboard").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_eq!(&body[..], NOT_FOUND_PAGE);
    // The 404 page itself is also an ordinary asset.
    let (p, body) = f.get("/404.html").await;
    assert_eq!((p.status, &body[..]), (StatusCode::OK, NOT_FOUND_PAGE));
}

// ---------------------------------------------------------------------------------------
// 2. Cache policy, security headers, content types
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn hashed_asset_names_are_cached_immutable_for_a_year() {
    let f = Fixture::new();
    for (uri, bytes) in [
        ("/assets/app.3f9a1c2b.js", HASHED_JS),
        ("/assets/index-BtqZ8k3a.js", VITE_JS),
    ] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(&body[..], bytes, "{uri}");
        assert_eq!(h(&p, header::CACHE_CONTROL), Some(IMMUTABLE), "{uri}");
    }
}

/// The bundler's manifest and the frameworks' immutable directories decide which names are
/// hashed; names that only look numbered (a date, dimensions, a model) are not `immutable`
/// (a corrected file would otherwise stay in browsers for a year).
#[tokio::test]
async fn the_manifest_and_immutable_directories_decide_and_lookalike_names_are_not_immutable() {
    let f = Fixture::with(
        |root| {
            populate(root);
            write(
                root,
                ".vite/manifest.json",
                br#"{"src/main.ts":{"file":"assets/index-Abcdefgh.js","css":["assets/index-DiwrgTda.css"],"isEntry":true}}"#,
            );
            for rel in [
                "assets/index-Abcdefgh.js",
                "assets/index-DiwrgTda.css",
                "_app/immutable/chunks/B5GhN4wE.js",
                "hero-1920x1080.jpg",
                "report-20241201.json",
                "screenshot-iPhone15.png",
                "logo-DarkMode.svg",
            ] {
                write(root, rel, b"x");
            }
        },
        |_| {},
    );
    for uri in [
        "/assets/index-Abcdefgh.js",
        "/assets/index-DiwrgTda.css",
        "/_app/immutable/chunks/B5GhN4wE.js",
        "/assets/app.3f9a1c2b.js",
    ] {
        let (p, _) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(h(&p, header::CACHE_CONTROL), Some(IMMUTABLE), "{uri}");
    }
    for uri in [
        "/hero-1920x1080.jpg",
        "/report-20241201.json",
        "/screenshot-iPhone15.png",
        "/logo-DarkMode.svg",
    ] {
        let (p, _) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(
            h(&p, header::CACHE_CONTROL),
            Some("public, max-age=300, must-revalidate"),
            "{uri}"
        );
    }
    // The manifest itself is a dotfile: never served.
    let (p, _) = f.get("/.vite/manifest.json").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn index_html_is_never_cached_without_revalidation() {
    let f = Fixture::new();
    for uri in ["/", "/index.html"] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(&body[..], INDEX, "{uri}");
        assert_eq!(h(&p, header::CACHE_CONTROL), Some("no-cache"), "{uri}");
    }
}

#[tokio::test]
async fn other_files_are_cached_briefly_then_revalidated() {
    let f = Fixture::new();
    for uri in [
        "/favicon.ico",
        "/robots.txt",
        "/assets/big.js",
        "/img/pixel.png",
    ] {
        let (p, _) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(h(&p, header::CACHE_CONTROL), Some(SHORT), "{uri}");
    }
}

/// Method, request-target, request headers, expected status.
type Case<'a> = (Method, &'a str, Vec<(&'a str, &'a str)>, StatusCode);

#[tokio::test]
async fn security_headers_are_on_every_response_including_errors() {
    let f = Fixture::new();
    let (p, _) = f.get("/assets/big.js").await;
    let etag = h(&p, header::ETAG).unwrap().to_owned();
    let long = format!("/{}", "x".repeat(9000));
    let cases: Vec<Case> = vec![
        (Method::GET, "/", vec![], StatusCode::OK),
        (Method::GET, "/dashboard", vec![], StatusCode::OK),
        (
            Method::GET,
            "/assets/big.js",
            vec![("accept-encoding", "br")],
            StatusCode::OK,
        ),
        (Method::HEAD, "/robots.txt", vec![], StatusCode::OK),
        (
            Method::GET,
            "/assets/big.js",
            vec![("range", "bytes=0-9")],
            StatusCode::PARTIAL_CONTENT,
        ),
        (
            Method::GET,
            "/assets/big.js",
            vec![("if-none-match", etag.as_str())],
            StatusCode::NOT_MODIFIED,
        ),
        (Method::GET, "/docs", vec![], StatusCode::PERMANENT_REDIRECT),
        (Method::GET, "/%zz", vec![], StatusCode::BAD_REQUEST),
        (Method::GET, "/missing.js", vec![], StatusCode::NOT_FOUND),
        (Method::GET, "/.env", vec![], StatusCode::NOT_FOUND),
        (Method::POST, "/", vec![], StatusCode::METHOD_NOT_ALLOWED),
        (
            Method::GET,
            "/robots.txt",
            vec![("if-match", "\"nope\"")],
            StatusCode::PRECONDITION_FAILED,
        ),
        (Method::GET, long.as_str(), vec![], StatusCode::URI_TOO_LONG),
        (
            Method::GET,
            "/robots.txt",
            vec![("range", "bytes=5000-")],
            StatusCode::RANGE_NOT_SATISFIABLE,
        ),
    ];
    for (method, uri, headers, status) in cases {
        let what = format!("{method} {} -> {status}", &uri[..uri.len().min(40)]);
        let (p, _) = f.send(method, uri, &headers).await;
        assert_eq!(p.status, status, "{what}");
        assert_security_headers(&p, &what);
    }
}

#[tokio::test]
async fn hsts_is_left_out_when_its_max_age_is_zero() {
    let f = Fixture::with(populate, |o| o.build.security = SecurityHeaders::new(0));
    for uri in ["/", "/robots.txt", "/missing.js", "/%zz"] {
        let (p, _) = f.get(uri).await;
        assert!(
            p.headers.get(header::STRICT_TRANSPORT_SECURITY).is_none(),
            "{uri}"
        );
        assert_eq!(h(&p, header::X_CONTENT_TYPE_OPTIONS), Some("nosniff"));
        assert_eq!(
            h(&p, header::REFERRER_POLICY),
            Some("strict-origin-when-cross-origin")
        );
    }
    let (p, _) = f.send(Method::DELETE, "/", &[]).await;
    assert!(p.headers.get(header::STRICT_TRANSPORT_SECURITY).is_none());
}

#[tokio::test]
async fn hsts_max_age_follows_the_configured_value() {
    let f = Fixture::with(populate, |o| o.build.security = SecurityHeaders::new(600));
    let (p, _) = f.get("/").await;
    assert_eq!(
        h(&p, header::STRICT_TRANSPORT_SECURITY),
        Some("max-age=600")
    );
}

#[tokio::test]
async fn text_content_types_carry_utf8_charset_and_binary_ones_do_not() {
    let f = Fixture::new();
    for (uri, ct) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/big.js", "text/javascript; charset=utf-8"),
        ("/robots.txt", "text/plain; charset=utf-8"),
        ("/img/pixel.png", "image/png"),
        ("/data.bin", "application/octet-stream"),
    ] {
        let (p, _) = f.get(uri).await;
        assert_eq!(h(&p, header::CONTENT_TYPE), Some(ct), "{uri}");
    }
    let f = Fixture::with(
        |root| {
            populate(root);
            write(root, "style.css", b"body{margin:0}\n");
            write(root, "m.json", b"{\"a\":1}\n");
            write(
                root,
                "icon.svg",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
            );
        },
        |_| {},
    );
    for (uri, ct) in [
        ("/style.css", "text/css; charset=utf-8"),
        ("/m.json", "application/json; charset=utf-8"),
        ("/icon.svg", "image/svg+xml; charset=utf-8"),
    ] {
        let (p, _) = f.get(uri).await;
        assert_eq!(h(&p, header::CONTENT_TYPE), Some(ct), "{uri}");
    }
}

// ---------------------------------------------------------------------------------------
// 3. Compression
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn large_text_asset_is_sent_brotli_compressed_when_accepted() {
    let f = Fixture::new();
    let original = f.file("assets/big.js");
    assert!(original.len() > 19_000, "fixture is about 20 KB");
    let (p, body) = f
        .get_with(
            "/assets/big.js",
            &[("accept-encoding", "gzip, deflate, br, zstd")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(h(&p, header::CONTENT_ENCODING), Some("br"));
    assert_eq!(content_length(&p), body.len());
    assert!(body.len() < original.len() / 2, "actually compressed");
    assert_eq!(decompress(Encoding::Brotli, &body).unwrap(), original);
    assert_eq!(
        h(&p, header::CONTENT_TYPE),
        Some("text/javascript; charset=utf-8")
    );
}

#[tokio::test]
async fn large_text_asset_is_sent_gzip_compressed_when_only_gzip_is_accepted() {
    let f = Fixture::new();
    let original = f.file("assets/big.js");
    for ae in ["gzip", "gzip, deflate", "x-gzip"] {
        let (p, body) = f
            .get_with("/assets/big.js", &[("accept-encoding", ae)])
            .await;
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(h(&p, header::CONTENT_ENCODING), Some("gzip"), "{ae}");
        assert_eq!(content_length(&p), body.len());
        assert_eq!(decompress(Encoding::Gzip, &body).unwrap(), original, "{ae}");
    }
}

#[tokio::test]
async fn accept_encoding_q_values_are_honoured() {
    let f = Fixture::new();
    let original = f.file("assets/big.js");
    for (ae, expected) in [
        ("br;q=0, gzip", Some("gzip")),
        ("br;q=0.2, gzip;q=0.5", Some("gzip")),
        ("gzip;q=0.5, br", Some("br")),
        ("br;q=0, gzip;q=0", None),
        ("*", Some("br")),
        ("*;q=0.5, identity", None),
        ("identity", None),
        ("deflate, zstd", None),
        ("", None),
    ] {
        let (p, body) = f
            .get_with("/assets/big.js", &[("accept-encoding", ae)])
            .await;
        assert_eq!(p.status, StatusCode::OK, "{ae}");
        assert_eq!(h(&p, header::CONTENT_ENCODING), expected, "{ae}");
        let plain = match expected {
            Some("br") => decompress(Encoding::Brotli, &body).unwrap(),
            Some("gzip") => decompress(Encoding::Gzip, &body).unwrap(),
            _ => body.to_vec(),
        };
        assert_eq!(plain, original, "{ae}");
    }
}

#[tokio::test]
async fn without_accept_encoding_the_identity_bytes_are_sent() {
    let f = Fixture::new();
    let original = f.file("assets/big.js");
    let (p, body) = f.get("/assets/big.js").await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(&body[..], &original[..]);
    assert_eq!(content_length(&p), original.len());
}

#[tokio::test]
async fn vary_accept_encoding_is_on_compressible_assets_and_not_on_images() {
    let f = Fixture::new();
    for (uri, ae) in [
        ("/assets/big.js", Some("br")),
        ("/assets/big.js", Some("gzip")),
        ("/assets/big.js", None),
        ("/", None),
        ("/robots.txt", Some("br")),
    ] {
        let headers: Vec<(&str, &str)> = ae.map(|v| ("accept-encoding", v)).into_iter().collect();
        let (p, _) = f.get_with(uri, &headers).await;
        assert_eq!(h(&p, header::VARY), Some("Accept-Encoding"), "{uri} {ae:?}");
    }
    for (uri, ae) in [
        ("/img/pixel.png", Some("br, gzip")),
        ("/img/pixel.png", None),
        ("/data.bin", Some("br")),
    ] {
        let headers: Vec<(&str, &str)> = ae.map(|v| ("accept-encoding", v)).into_iter().collect();
        let (p, body) = f.get_with(uri, &headers).await;
        assert!(p.headers.get(header::VARY).is_none(), "{uri} {ae:?}");
        assert!(p.headers.get(header::CONTENT_ENCODING).is_none(), "{uri}");
        assert_eq!(&body[..], &f.file(&uri[1..])[..]);
    }
}

#[tokio::test]
async fn tiny_and_incompressible_files_get_no_compressed_variant() {
    let f = Fixture::with(
        |root| {
            populate(root);
            // Text type but random content: neither coding makes it smaller.
            write(root, "noise.txt", &random_bytes(8192, 99));
            // Just under the 256-byte floor, very compressible.
            write(root, "tiny.js", &[b'a'; 255]);
        },
        |_| {},
    );
    for uri in [
        "/noise.txt",
        "/tiny.js",
        "/robots.txt",
        "/assets/app.3f9a1c2b.js",
    ] {
        for ae in ["br", "gzip", "br, gzip"] {
            let (p, body) = f.get_with(uri, &[("accept-encoding", ae)]).await;
            assert_eq!(p.status, StatusCode::OK, "{uri}");
            assert!(
                p.headers.get(header::CONTENT_ENCODING).is_none(),
                "{uri} {ae}"
            );
            assert_eq!(&body[..], &f.file(&uri[1..])[..], "{uri} {ae}");
        }
    }
    // 256 bytes is enough.
    let f = Fixture::with(
        |root| {
            populate(root);
            write(root, "small.js", &[b'a'; 256]);
        },
        |_| {},
    );
    let (p, body) = f.get_with("/small.js", &[("accept-encoding", "br")]).await;
    assert_eq!(h(&p, header::CONTENT_ENCODING), Some("br"));
    assert_eq!(
        decompress(Encoding::Brotli, &body).unwrap(),
        vec![b'a'; 256]
    );
}

#[tokio::test]
async fn each_content_coding_has_its_own_etag() {
    let f = Fixture::new();
    let mut tags = Vec::new();
    for ae in ["br", "gzip", "identity"] {
        let (p, _) = f
            .get_with("/assets/big.js", &[("accept-encoding", ae)])
            .await;
        let tag = h(&p, header::ETAG).unwrap().to_owned();
        assert!(
            tag.starts_with('"') && tag.ends_with('"'),
            "strong tag: {tag}"
        );
        tags.push(tag);
    }
    assert_ne!(tags[0], tags[1]);
    assert_ne!(tags[0], tags[2]);
    assert_ne!(tags[1], tags[2]);
    // Each tag validates its own representation only.
    let (p, body) = f
        .get_with(
            "/assets/big.js",
            &[
                ("accept-encoding", "br"),
                ("if-none-match", tags[0].as_str()),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
    let (p, _) = f
        .get_with(
            "/assets/big.js",
            &[
                ("accept-encoding", "br"),
                ("if-none-match", tags[2].as_str()),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(h(&p, header::CONTENT_ENCODING), Some("br"));
}

fn gzip_fast(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli_fast(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 1, 18);
        w.write_all(data).unwrap();
    }
    out
}

#[tokio::test]
async fn valid_precompressed_sidecars_are_served_as_they_are() {
    let source = js_text(300);
    let gz = gzip_fast(&source);
    let br = brotli_fast(&source);
    // The sidecars must be distinguishable from what the server would make itself.
    assert_ne!(gz, compress(Encoding::Gzip, &source).unwrap());
    assert_ne!(br, compress(Encoding::Brotli, &source).unwrap());
    let f = Fixture::with(
        |root| {
            populate(root);
            write(root, "app.js", &source);
            write(root, "app.js.gz", &gz);
            write(root, "app.js.br", &br);
        },
        |_| {},
    );
    let (p, body) = f.get_with("/app.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(h(&p, header::CONTENT_ENCODING), Some("gzip"));
    assert_eq!(&body[..], &gz[..]);
    assert_eq!(content_length(&p), gz.len());
    assert_eq!(
        h(&p, header::CONTENT_TYPE),
        Some("text/javascript; charset=utf-8")
    );

    let (p, body) = f.get_with("/app.js", &[("accept-encoding", "br")]).await;
    assert_eq!(h(&p, header::CONTENT_ENCODING), Some("br"));
    assert_eq!(&body[..], &br[..]);
    assert_eq!(content_length(&p), br.len());

    let (p, body) = f.get("/app.js").await;
    assert!(p.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(&body[..], &source[..]);
}

#[tokio::test]
async fn stale_or_corrupt_sidecar_is_not_served() {
    let source = js_text(300);
    let mut older = js_text(300);
    older.extend_from_slice(b"// the previous build\n");
    let stale_gz = gzip_fast(&older);
    let stale_br = brotli_fast(&older);
    let f = Fixture::with(
        |root| {
            populate(root);
            write(root, "app.js", &source);
            write(root, "app.js.gz", &stale_gz);
            write(root, "app.js.br", &stale_br);
            write(root, "other.js", &source);
            write(
                root,
                "other.js.gz",
                b"this is not gzip at all, not even close....",
            );
        },
        |_| {},
    );
    let (p, body) = f.get_with("/app.js", &[("accept-encoding", "gzip")]).await;
    assert_eq!(h(&p, header::CONTENT_ENCODING), Some("gzip"));
    assert_ne!(&body[..], &stale_gz[..]);
    assert_eq!(decompress(Encoding::Gzip, &body).unwrap(), source);

    let (p, body) = f.get_with("/app.js", &[("accept-encoding", "br")]).await;
    assert_eq!(h(&p, header::CONTENT_ENCODING), Some("br"));
    assert_ne!(&body[..], &stale_br[..]);
    assert_eq!(decompress(Encoding::Brotli, &body).unwrap(), source);

    let (p, body) = f
        .get_with("/other.js", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(h(&p, header::CONTENT_ENCODING), Some("gzip"));
    assert_eq!(decompress(Encoding::Gzip, &body).unwrap(), source);
}

#[tokio::test]
async fn sidecar_files_are_not_served_as_assets_of_their_own() {
    let source = js_text(300);
    let f = Fixture::with(
        |root| {
            populate(root);
            write(root, "app.js", &source);
            write(root, "app.js.gz", &gzip_fast(&source));
            write(root, "app.js.br", &brotli_fast(&source));
            // A .gz without a base file is an ordinary asset.
            write(root, "archive.tar.gz", &random_bytes(500, 5));
        },
        |_| {},
    );
    for uri in ["/app.js.gz", "/app.js.br"] {
        for ae in [None, Some("gzip, br")] {
            let headers: Vec<(&str, &str)> =
                ae.map(|v| ("accept-encoding", v)).into_iter().collect();
            let (p, body) = f.get_with(uri, &headers).await;
            assert_eq!(p.status, StatusCode::NOT_FOUND, "{uri}");
            assert_eq!(&body[..], b"404 Not Found\n", "{uri}");
        }
    }
    let (p, body) = f.get("/archive.tar.gz").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], &f.file("archive.tar.gz")[..]);
}

// ---------------------------------------------------------------------------------------
// 4. Conditional requests
// ---------------------------------------------------------------------------------------

async fn validators(f: &Fixture, uri: &str) -> (String, String) {
    let (p, _) = f.get(uri).await;
    (
        h(&p, header::ETAG).unwrap().to_owned(),
        h(&p, header::LAST_MODIFIED).unwrap().to_owned(),
    )
}

fn assert_not_modified(p: &Parts, body: &Bytes, etag: &str, cache_control: &str) {
    assert_eq!(p.status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty(), "304 has no body");
    assert_eq!(h(p, header::ETAG), Some(etag));
    assert_eq!(h(p, header::CACHE_CONTROL), Some(cache_control));
    assert!(p.headers.get(header::CONTENT_LENGTH).is_none());
    assert!(p.headers.get(header::CONTENT_ENCODING).is_none());
    assert_security_headers(p, "304");
}

#[tokio::test]
async fn if_none_match_with_the_etag_gives_304_without_body_or_content_length() {
    let f = Fixture::new();
    for (uri, cc) in [
        ("/assets/app.3f9a1c2b.js", IMMUTABLE),
        ("/robots.txt", SHORT),
        ("/", "no-cache"),
        ("/dashboard/settings", "no-cache"),
    ] {
        let (etag, _) = validators(&f, uri).await;
        let (p, body) = f.get_with(uri, &[("if-none-match", etag.as_str())]).await;
        assert_not_modified(&p, &body, &etag, cc);
        let (p, body) = f
            .send(Method::HEAD, uri, &[("if-none-match", etag.as_str())])
            .await;
        assert_not_modified(&p, &body, &etag, cc);
    }
}

#[tokio::test]
async fn if_none_match_star_gives_304() {
    let f = Fixture::new();
    let (etag, _) = validators(&f, "/robots.txt").await;
    let (p, body) = f.get_with("/robots.txt", &[("if-none-match", "*")]).await;
    assert_not_modified(&p, &body, &etag, SHORT);
}

#[tokio::test]
async fn if_none_match_weak_form_of_the_etag_gives_304() {
    let f = Fixture::new();
    let (etag, _) = validators(&f, "/robots.txt").await;
    let weak = format!("W/{etag}");
    let (p, body) = f
        .get_with("/robots.txt", &[("if-none-match", weak.as_str())])
        .await;
    assert_not_modified(&p, &body, &etag, SHORT);
    // Also inside a list.
    let list = format!("\"other\", W/\"x\",  {weak}");
    let (p, body) = f
        .get_with("/robots.txt", &[("if-none-match", list.as_str())])
        .await;
    assert_not_modified(&p, &body, &etag, SHORT);
}

#[tokio::test]
async fn if_none_match_with_a_different_etag_gives_200() {
    let f = Fixture::new();
    for inm in ["\"0123456789abcdef\"", "W/\"0123\"", "\"a\", \"b\""] {
        let (p, body) = f.get_with("/robots.txt", &[("if-none-match", inm)]).await;
        assert_eq!(p.status, StatusCode::OK, "{inm}");
        assert_eq!(&body[..], ROBOTS);
    }
}

#[tokio::test]
async fn if_modified_since_at_or_after_last_modified_gives_304_and_before_gives_200() {
    let f = Fixture::new();
    let (etag, lm) = validators(&f, "/robots.txt").await;
    let later = http_date_offset(&lm, 3600);
    for ims in [lm.as_str(), later.as_str()] {
        let (p, body) = f
            .get_with("/robots.txt", &[("if-modified-since", ims)])
            .await;
        assert_not_modified(&p, &body, &etag, SHORT);
    }
    let earlier = http_date_offset(&lm, -1);
    let (p, body) = f
        .get_with("/robots.txt", &[("if-modified-since", earlier.as_str())])
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], ROBOTS);
    // An unparseable date is ignored.
    let (p, _) = f
        .get_with("/robots.txt", &[("if-modified-since", "yesterday")])
        .await;
    assert_eq!(p.status, StatusCode::OK);
}

#[tokio::test]
async fn if_none_match_takes_precedence_over_if_modified_since() {
    let f = Fixture::new();
    let (etag, lm) = validators(&f, "/robots.txt").await;
    // Date says "not modified", tag says "changed": the tag wins.
    let later = http_date_offset(&lm, 3600);
    let (p, body) = f
        .get_with(
            "/robots.txt",
            &[
                ("if-none-match", "\"stale\""),
                ("if-modified-since", later.as_str()),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], ROBOTS);
    // Tag says "not modified", date says "changed": the tag wins.
    let earlier = http_date_offset(&lm, -3600);
    let (p, body) = f
        .get_with(
            "/robots.txt",
            &[
                ("if-none-match", etag.as_str()),
                ("if-modified-since", earlier.as_str()),
            ],
        )
        .await;
    assert_not_modified(&p, &body, &etag, SHORT);
}

#[tokio::test]
async fn if_match_mismatch_gives_412_and_a_match_gives_200() {
    let f = Fixture::new();
    let (etag, _) = validators(&f, "/robots.txt").await;
    let weak = format!("W/{etag}");
    for im in ["\"nope\"", weak.as_str()] {
        let (p, body) = f.get_with("/robots.txt", &[("if-match", im)]).await;
        assert_eq!(p.status, StatusCode::PRECONDITION_FAILED, "{im}");
        assert_eq!(&body[..], b"412 Precondition Failed\n");
        assert!(p.headers.get(header::ETAG).is_none());
    }
    let list = format!("\"nope\", {etag}");
    for im in [etag.as_str(), "*", list.as_str()] {
        let (p, body) = f.get_with("/robots.txt", &[("if-match", im)]).await;
        assert_eq!(p.status, StatusCode::OK, "{im}");
        assert_eq!(&body[..], ROBOTS);
    }
}

#[tokio::test]
async fn if_unmodified_since_in_the_past_gives_412() {
    let f = Fixture::new();
    let (_, lm) = validators(&f, "/robots.txt").await;
    let earlier = http_date_offset(&lm, -3600);
    let (p, _) = f
        .get_with("/robots.txt", &[("if-unmodified-since", earlier.as_str())])
        .await;
    assert_eq!(p.status, StatusCode::PRECONDITION_FAILED);
    for ok in [lm.as_str(), &http_date_offset(&lm, 3600)] {
        let (p, body) = f
            .get_with("/robots.txt", &[("if-unmodified-since", ok)])
            .await;
        assert_eq!(p.status, StatusCode::OK, "{ok}");
        assert_eq!(&body[..], ROBOTS);
    }
    // If-Match decides alone when both are present.
    let (etag, _) = validators(&f, "/robots.txt").await;
    let (p, _) = f
        .get_with(
            "/robots.txt",
            &[
                ("if-match", etag.as_str()),
                ("if-unmodified-since", earlier.as_str()),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
}

// ---------------------------------------------------------------------------------------
// 5. Range requests
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn single_byte_range_gives_206_with_the_exact_bytes() {
    let f = Fixture::new();
    let data = f.file("data.bin");
    let (p, body) = f.get_with("/data.bin", &[("range", "bytes=0-99")]).await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        h(&p, header::CONTENT_RANGE),
        Some(format!("bytes 0-99/{}", data.len()).as_str())
    );
    assert_eq!(h(&p, header::CONTENT_LENGTH), Some("100"));
    assert_eq!(&body[..], &data[..100]);
    assert_eq!(
        h(&p, header::CONTENT_TYPE),
        Some("application/octet-stream")
    );
    assert_eq!(h(&p, header::ACCEPT_RANGES), Some("bytes"));
    assert!(p.headers.get(header::ETAG).is_some());

    let (p, body) = f.get_with("/data.bin", &[("range", "bytes=10-10")]).await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&p, header::CONTENT_RANGE), Some("bytes 10-10/1000"));
    assert_eq!(&body[..], &data[10..11]);

    // An end past the length is clamped.
    let (p, body) = f
        .get_with("/data.bin", &[("range", "bytes=900-5000")])
        .await;
    assert_eq!(h(&p, header::CONTENT_RANGE), Some("bytes 900-999/1000"));
    assert_eq!(&body[..], &data[900..]);
}

#[tokio::test]
async fn suffix_range_gives_the_last_bytes() {
    let f = Fixture::new();
    let data = f.file("data.bin");
    let (p, body) = f.get_with("/data.bin", &[("range", "bytes=-100")]).await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&p, header::CONTENT_RANGE), Some("bytes 900-999/1000"));
    assert_eq!(h(&p, header::CONTENT_LENGTH), Some("100"));
    assert_eq!(&body[..], &data[900..]);
    // A suffix longer than the file is the whole file.
    let (p, body) = f.get_with("/data.bin", &[("range", "bytes=-5000")]).await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&p, header::CONTENT_RANGE), Some("bytes 0-999/1000"));
    assert_eq!(&body[..], &data[..]);
}

#[tokio::test]
async fn open_ended_range_gives_the_rest_of_the_file() {
    let f = Fixture::new();
    let data = f.file("data.bin");
    let (p, body) = f.get_with("/data.bin", &[("range", "bytes=250-")]).await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&p, header::CONTENT_RANGE), Some("bytes 250-999/1000"));
    assert_eq!(h(&p, header::CONTENT_LENGTH), Some("750"));
    assert_eq!(&body[..], &data[250..]);
}

#[tokio::test]
async fn multiple_ranges_give_a_multipart_byteranges_body() {
    let f = Fixture::new();
    let data = f.file("data.bin");
    let (p, body) = f
        .get_with("/data.bin", &[("range", "bytes=500-599, 0-9,-50")])
        .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert!(p.headers.get(header::CONTENT_RANGE).is_none());
    assert_eq!(content_length(&p), body.len());
    let ct = h(&p, header::CONTENT_TYPE).unwrap();
    let parts = parse_multipart(ct, &body);
    let expected = [(0usize, 9usize), (500, 599), (950, 999)];
    assert_eq!(parts.len(), expected.len());
    for (part, (a, b)) in parts.iter().zip(expected) {
        assert_eq!(part.content_type, "application/octet-stream");
        assert_eq!(part.content_range, format!("bytes {a}-{b}/1000"));
        assert_eq!(&part.data[..], &data[a..=b]);
    }
    // Text assets carry their content type in each part.
    let big = f.file("assets/big.js");
    let (p, body) = f
        .get_with("/assets/big.js", &[("range", "bytes=0-4,100-104")])
        .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(content_length(&p), body.len());
    let parts = parse_multipart(h(&p, header::CONTENT_TYPE).unwrap(), &body);
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].content_type, "text/javascript; charset=utf-8");
    assert_eq!(
        parts[1].content_range,
        format!("bytes 100-104/{}", big.len())
    );
    assert_eq!(&parts[1].data[..], &big[100..105]);
}

#[tokio::test]
async fn overlapping_ranges_are_merged_into_one_part() {
    let f = Fixture::new();
    let data = f.file("data.bin");
    let (p, body) = f
        .get_with("/data.bin", &[("range", "bytes=0-99,50-149,150-199")])
        .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&p, header::CONTENT_RANGE), Some("bytes 0-199/1000"));
    assert_eq!(
        h(&p, header::CONTENT_TYPE),
        Some("application/octet-stream")
    );
    assert_eq!(&body[..], &data[..200]);
}

#[tokio::test]
async fn unsatisfiable_range_gives_416_with_the_length() {
    let f = Fixture::new();
    for range in ["bytes=1000-", "bytes=1000-2000, 5000-6000", "bytes=-0"] {
        let (p, body) = f.get_with("/data.bin", &[("range", range)]).await;
        assert_eq!(p.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(
            h(&p, header::CONTENT_RANGE),
            Some("bytes */1000"),
            "{range}"
        );
        assert_eq!(content_length(&p), body.len());
        assert_security_headers(&p, "416");
    }
}

#[tokio::test]
async fn malformed_range_is_ignored_and_the_full_body_sent() {
    let f = Fixture::new();
    let data = f.file("data.bin");
    for range in [
        "bytes=",
        "bytes=a-b",
        "bytes=5-1",
        "items=0-1",
        "bytes 0-1",
        "bytes=0-1-2",
    ] {
        let (p, body) = f.get_with("/data.bin", &[("range", range)]).await;
        assert_eq!(p.status, StatusCode::OK, "{range}");
        assert!(p.headers.get(header::CONTENT_RANGE).is_none(), "{range}");
        assert_eq!(content_length(&p), 1000);
        assert_eq!(&body[..], &data[..], "{range}");
    }
}

#[tokio::test]
async fn if_range_with_the_current_etag_gives_206_and_with_a_stale_one_200() {
    let f = Fixture::new();
    let data = f.file("data.bin");
    let (etag, _) = validators(&f, "/data.bin").await;
    let (p, body) = f
        .get_with(
            "/data.bin",
            &[("range", "bytes=0-99"), ("if-range", etag.as_str())],
        )
        .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&body[..], &data[..100]);
    let weak = format!("W/{etag}");
    for stale in ["\"0000\"", weak.as_str()] {
        let (p, body) = f
            .get_with("/data.bin", &[("range", "bytes=0-99"), ("if-range", stale)])
            .await;
        assert_eq!(p.status, StatusCode::OK, "{stale}");
        assert!(p.headers.get(header::CONTENT_RANGE).is_none());
        assert_eq!(content_length(&p), data.len());
        assert_eq!(&body[..], &data[..]);
    }
}

#[tokio::test]
async fn if_range_with_the_last_modified_date_gives_206_and_another_date_200() {
    let f = Fixture::new();
    let data = f.file("data.bin");
    let (_, lm) = validators(&f, "/data.bin").await;
    let (p, body) = f
        .get_with(
            "/data.bin",
            &[("range", "bytes=100-199"), ("if-range", lm.as_str())],
        )
        .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(h(&p, header::CONTENT_RANGE), Some("bytes 100-199/1000"));
    assert_eq!(&body[..], &data[100..200]);
    let other = http_date_offset(&lm, -60);
    let (p, body) = f
        .get_with(
            "/data.bin",
            &[("range", "bytes=100-199"), ("if-range", other.as_str())],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], &data[..]);
}

#[tokio::test]
async fn range_on_a_compressible_asset_returns_identity_bytes_even_when_brotli_is_accepted() {
    let f = Fixture::new();
    let big = f.file("assets/big.js");
    let (p, body) = f
        .get_with(
            "/assets/big.js",
            &[
                ("accept-encoding", "br, gzip"),
                ("range", "bytes=1000-1999"),
            ],
        )
        .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert!(p.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(
        h(&p, header::CONTENT_RANGE),
        Some(format!("bytes 1000-1999/{}", big.len()).as_str())
    );
    assert_eq!(&body[..], &big[1000..2000]);
    // The identity validator, not the brotli one.
    let (p_id, _) = f.get("/assets/big.js").await;
    assert_eq!(h(&p, header::ETAG), h(&p_id, header::ETAG));
}

// ---------------------------------------------------------------------------------------
// 6. HEAD
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn head_has_the_same_status_and_headers_as_get_but_no_body() {
    let files = |root: &Path| {
        populate(root);
        write(root, "404.html", NOT_FOUND_PAGE);
    };
    let f = Fixture::with(files, |_| {});
    for (uri, headers) in [
        ("/assets/app.3f9a1c2b.js", vec![]),
        ("/assets/big.js", vec![]),
        ("/assets/big.js", vec![("accept-encoding", "br")]),
        ("/assets/big.js", vec![("accept-encoding", "gzip")]),
        ("/img/pixel.png", vec![]),
        ("/", vec![]),
        ("/dashboard/settings", vec![]),
        ("/missing.js", vec![]),
        ("/.env", vec![]),
    ] {
        let (get, get_body) = f.get_with(uri, &headers).await;
        let (head, head_body) = f.send(Method::HEAD, uri, &headers).await;
        assert_eq!(head.status, get.status, "{uri} {headers:?}");
        assert_eq!(head.headers, get.headers, "{uri} {headers:?}");
        assert!(head_body.is_empty(), "{uri}");
        assert!(!get_body.is_empty(), "{uri}");
        assert_eq!(content_length(&head), get_body.len(), "{uri} {headers:?}");
    }
    let (p, body) = f.send(Method::HEAD, "/dashboard/settings", &[]).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(content_length(&p), INDEX.len());
    assert_eq!(h(&p, header::CACHE_CONTROL), Some("no-cache"));
    assert!(body.is_empty());
}

#[tokio::test]
async fn head_ignores_range_and_describes_the_full_body() {
    let f = Fixture::new();
    let (p, body) = f
        .send(Method::HEAD, "/data.bin", &[("range", "bytes=0-9")])
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.headers.get(header::CONTENT_RANGE).is_none());
    assert_eq!(content_length(&p), 1000);
    assert!(body.is_empty());
}

// ---------------------------------------------------------------------------------------
// 7. Methods
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn other_methods_get_405_with_allow_get_head() {
    let f = Fixture::new();
    let patch = Method::PATCH;
    let custom = Method::from_bytes(b"PROPFIND").unwrap();
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        patch,
        Method::TRACE,
        custom,
    ] {
        for uri in ["/", "/robots.txt", "/dashboard", "/missing.js"] {
            let (p, body) = f.send(method.clone(), uri, &[]).await;
            assert_eq!(p.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
            assert_eq!(h(&p, header::ALLOW), Some("GET, HEAD"), "{method} {uri}");
            assert_eq!(content_length(&p), body.len());
            assert_ne!(&body[..], INDEX);
            assert_ne!(&body[..], ROBOTS);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 8. Path safety
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn traversal_and_encoded_separators_get_404_never_500() {
    let f = Fixture::new();
    for uri in [
        "/../etc/passwd",
        "/assets/../../etc/passwd",
        "/assets/../robots.txt",
        "/%2e%2e/x",
        "/%2E%2E/%2e%2e/etc/passwd",
        "/assets/%2e%2e/robots.txt",
        "/./robots.txt",
        "/a%2fb",
        "/assets%2fapp.3f9a1c2b.js",
        "/a%2Fb",
        "/a%5cb",
        "/a%5Cb",
        "/a%00b",
        "/robots.txt%00.html",
        "//x",
        "//robots.txt",
        "/assets//app.3f9a1c2b.js",
    ] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(&body[..], b"404 Not Found\n", "{uri}");
    }
}

#[tokio::test]
async fn raw_backslashes_get_404_never_500() {
    let f = Fixture::new();
    for uri in ["/a\\b", "/..\\..\\etc\\passwd", "/assets\\app.3f9a1c2b.js"] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(&body[..], b"404 Not Found\n", "{uri}");
    }
}

#[tokio::test]
async fn dotfiles_are_never_served() {
    let f = Fixture::new();
    for uri in [
        "/.env",
        "/.git/config",
        "/.git/",
        "/.git",
        "/%2eenv",
        "/%2egit/config",
        "/.well-known/../.env",
        "/assets/.env",
    ] {
        for method in [Method::GET, Method::HEAD] {
            let (p, body) = f.send(method.clone(), uri, &[]).await;
            assert_eq!(p.status, StatusCode::NOT_FOUND, "{method} {uri}");
            assert!(!body.windows(ENV.len()).any(|w| w == ENV), "{uri}");
            assert!(!body.windows(10).any(|w| w == b"git-config"), "{uri}");
            assert_ne!(&body[..], INDEX, "{uri}");
        }
    }
}

#[tokio::test]
async fn well_known_files_are_served() {
    let f = Fixture::new();
    let (p, body) = f.get("/.well-known/security.txt").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], SECURITY_TXT);
    assert_eq!(
        h(&p, header::CONTENT_TYPE),
        Some("text/plain; charset=utf-8")
    );
}

#[tokio::test]
async fn symlink_leaving_the_root_is_not_served() {
    let outside = tempfile::tempdir().unwrap();
    let secret = b"outside the root: never serve\n";
    write(outside.path(), "secret.txt", secret);
    write(outside.path(), "dir/inner.txt", secret);
    let target = outside.path().to_owned();
    let f = Fixture::with(
        |root| {
            populate(root);
            std::os::unix::fs::symlink(target.join("secret.txt"), root.join("leak.txt")).unwrap();
            std::os::unix::fs::symlink(target.join("dir"), root.join("leakdir")).unwrap();
        },
        |_| {},
    );
    for uri in ["/leak.txt", "/leakdir/inner.txt"] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(!body.windows(secret.len()).any(|w| w == secret), "{uri}");
    }
}

#[tokio::test]
async fn refused_symlinks_are_findings_and_leave_the_tree_unchanged_until_one_is_added() {
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", b"outside\n");
    let target = outside.path().join("secret.txt");
    let f = Fixture::with(
        |root| {
            populate(root);
            std::os::unix::fs::symlink(&target, root.join("leak.txt")).unwrap();
            std::os::unix::fs::symlink(root.join("gone.txt"), root.join("dangling.txt")).unwrap();
        },
        |_| {},
    );
    let site = f.svc.site();
    let findings = site.table().findings().to_vec();
    assert_eq!(findings.len(), 2, "{findings:?}");
    assert!(
        matches!(&findings[0], Finding::UnresolvableSymlink { path, .. } if path.ends_with("dangling.txt"))
    );
    assert_eq!(
        findings[1],
        Finding::SymlinkLeavesRoot {
            path: f.root().canonicalize().unwrap().join("leak.txt")
        }
    );
    // Refused on every walk, they are no change: no rebuild per poll.
    for _ in 0..3 {
        assert!(!site.table().is_stale(f.root()).unwrap());
        assert!(site.reload().unwrap().is_none());
    }
    assert_eq!(site.table().generation(), 1);
    // A newly refused entry is a change of the tree, so it is reported by a rebuild.
    std::os::unix::fs::symlink(&target, f.root().join("leak2.txt")).unwrap();
    assert!(site.table().is_stale(f.root()).unwrap());
    assert_eq!(site.reload().unwrap(), Some(2));
    assert_eq!(site.table().findings().len(), 3);
}

#[tokio::test]
async fn tree_warnings_are_logged_once_per_change_of_the_tree_not_per_reload_check() {
    let (logs, _guard) = capture_logs();
    let outside = tempfile::tempdir().unwrap();
    write(outside.path(), "secret.txt", b"outside\n");
    let target = outside.path().join("secret.txt");
    let source = js_text(300);
    let f = Fixture::with(
        |root| {
            populate(root);
            std::os::unix::fs::symlink(&target, root.join("leak.txt")).unwrap();
            write(root, "app.js", &source);
            write(root, "app.js.gz", b"not gzip, and stale besides..........");
        },
        |_| {},
    );
    let symlink = "skipping symlink that leaves the root";
    let sidecar = "precompressed file does not match its source";
    assert_eq!(
        logs.count("WARN", symlink),
        1,
        "logged by the start-up build"
    );
    assert_eq!(logs.count("WARN", sidecar), 1);
    let site = f.svc.site();
    for _ in 0..5 {
        assert!(!site.table().is_stale(f.root()).unwrap());
        assert!(site.reload().unwrap().is_none());
    }
    assert_eq!(
        logs.count("WARN", symlink),
        1,
        "a check that finds no change logs nothing"
    );
    assert_eq!(logs.count("WARN", sidecar), 1);

    write(f.root(), "new.txt", b"a new deploy\n");
    assert_eq!(site.reload().unwrap(), Some(2));
    // Each rebuild reports all of its table's findings, the reused app.js's included.
    assert_eq!(logs.count("WARN", symlink), 2);
    assert_eq!(logs.count("WARN", sidecar), 2);
    assert!(site.reload().unwrap().is_none());
    assert_eq!(logs.count("WARN", symlink), 2);

    // A failed rebuild logs its error (the caller does), not the findings.
    std::fs::remove_file(f.root().join("index.html")).unwrap();
    assert!(site.reload().is_err());
    assert!(site.reload().is_err());
    assert_eq!(logs.count("WARN", symlink), 2);
}

#[tokio::test]
async fn symlink_inside_the_root_is_served() {
    let f = Fixture::with(
        |root| {
            populate(root);
            std::os::unix::fs::symlink(root.join("robots.txt"), root.join("robots-link.txt"))
                .unwrap();
            // A relative link too.
            std::os::unix::fs::symlink("../robots.txt", root.join("assets/robots.txt")).unwrap();
        },
        |_| {},
    );
    for uri in ["/robots-link.txt", "/assets/robots.txt"] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(&body[..], ROBOTS, "{uri}");
        assert_eq!(
            h(&p, header::CONTENT_TYPE),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[tokio::test]
async fn malformed_percent_escapes_get_400() {
    let f = Fixture::new();
    for uri in [
        "/%zz",
        "/%ff",
        "/%",
        "/%4",
        "/a%2",
        "/%c3%28",
        "/dashboard/%zz",
    ] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(&body[..], b"400 Bad Request: malformed path\n", "{uri}");
        assert_eq!(h(&p, header::CACHE_CONTROL), Some("no-cache"));
    }
}

#[tokio::test]
async fn percent_encoded_names_are_decoded_once() {
    let f = Fixture::with(
        |root| {
            populate(root);
            write(root, "café.txt", b"cafe\n");
            write(root, "100%.txt", b"percent\n");
        },
        |_| {},
    );
    for (uri, body_expected) in [
        ("/a%20b.txt", SPACED),
        ("/caf%C3%A9.txt", b"cafe\n"),
        ("/100%25.txt", b"percent\n"),
        ("/robots%2Etxt", ROBOTS),
        ("/%72obots.txt", ROBOTS),
    ] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        assert_eq!(&body[..], body_expected, "{uri}");
    }
    // Decoded exactly once: `%2520` is a literal `%20`, which names no file.
    let (p, _) = f.get("/a%2520b.txt").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------
// 9. 414
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn request_target_longer_than_max_uri_length_gets_414() {
    let f = Fixture::with(populate, |o| o.max_uri_length = 64);
    // Exactly at the limit (path and query together) is fine.
    let at = format!("/robots.txt?{}", "q".repeat(64 - "/robots.txt?".len()));
    assert_eq!(at.len(), 64);
    let (p, body) = f.get(&at).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], ROBOTS);
    let over = format!("{at}q");
    let (p, body) = f.get(&over).await;
    assert_eq!(p.status, StatusCode::URI_TOO_LONG);
    assert_eq!(&body[..], b"414 URI Too Long\n");
    assert_security_headers(&p, "414");
    let long_path = format!("/{}", "d".repeat(100));
    for method in [Method::GET, Method::HEAD] {
        let (p, _) = f.send(method, &long_path, &[]).await;
        assert_eq!(p.status, StatusCode::URI_TOO_LONG);
    }
    // The default limit.
    let f = Fixture::new();
    let (p, _) = f.get(&format!("/{}", "d".repeat(8191))).await;
    assert_eq!(p.status, StatusCode::OK);
    let (p, _) = f.get(&format!("/{}", "d".repeat(8192))).await;
    assert_eq!(p.status, StatusCode::URI_TOO_LONG);
}

// ---------------------------------------------------------------------------------------
// 10. Large files streamed from disk
// ---------------------------------------------------------------------------------------

const MIB: usize = 1 << 20;

fn streamed_fixture() -> Fixture {
    Fixture::with(
        |root| {
            populate(root);
            write(root, "video.bin", &random_bytes(MIB, 42));
            write(root, "huge.js", &js_text(20_000));
        },
        |o| o.build.stream_threshold = 64 * 1024,
    )
}

#[tokio::test]
async fn large_file_is_streamed_from_disk_with_exact_bytes_and_length() {
    let f = streamed_fixture();
    let table = f.svc.site().table();
    assert!(table.get("/video.bin").unwrap().is_streamed());
    assert!(!table.get("/robots.txt").unwrap().is_streamed());
    let data = f.file("video.bin");
    let (p, body) = f.get("/video.bin").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(content_length(&p), MIB);
    assert_eq!(body.len(), MIB);
    assert!(body[..] == data[..], "streamed bytes differ");
    assert_eq!(h(&p, header::ACCEPT_RANGES), Some("bytes"));
    assert!(p.headers.get(header::ETAG).is_some());
    assert_security_headers(&p, "streamed");

    // A streamed text file is sent as it is, whatever the client accepts.
    let huge = f.file("huge.js");
    assert!(huge.len() > 64 * 1024);
    let (p, body) = f
        .get_with("/huge.js", &[("accept-encoding", "br, gzip")])
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.headers.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(content_length(&p), huge.len());
    assert!(body[..] == huge[..]);

    // Validators work on streamed files too.
    let etag = h(&p, header::ETAG).unwrap().to_owned();
    let (p, body) = f
        .get_with("/huge.js", &[("if-none-match", etag.as_str())])
        .await;
    assert_eq!(p.status, StatusCode::NOT_MODIFIED);
    assert!(body.is_empty());
}

#[tokio::test]
async fn ranges_on_a_streamed_file_return_exact_bytes() {
    let f = streamed_fixture();
    let data = f.file("video.bin");
    let len = data.len();

    let (p, body) = f
        .get_with("/video.bin", &[("range", "bytes=300000-899999")])
        .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        h(&p, header::CONTENT_RANGE),
        Some(format!("bytes 300000-899999/{len}").as_str())
    );
    assert_eq!(content_length(&p), 600_000);
    assert!(body[..] == data[300_000..900_000]);

    let (p, body) = f.get_with("/video.bin", &[("range", "bytes=-10")]).await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&body[..], &data[len - 10..]);

    let (p, body) = f
        .get_with("/video.bin", &[("range", "bytes=0-0,500000-799999,-70000")])
        .await;
    assert_eq!(p.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(content_length(&p), body.len());
    let parts = parse_multipart(h(&p, header::CONTENT_TYPE).unwrap(), &body);
    let expected = [(0, 0), (500_000, 799_999), (len - 70_000, len - 1)];
    assert_eq!(parts.len(), 3);
    for (part, (a, b)) in parts.iter().zip(expected) {
        assert_eq!(part.content_range, format!("bytes {a}-{b}/{len}"));
        assert!(part.data[..] == data[a..=b], "part {a}-{b}");
    }

    let (p, _) = f
        .get_with("/video.bin", &[("range", &format!("bytes={len}-"))])
        .await;
    assert_eq!(p.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        h(&p, header::CONTENT_RANGE),
        Some(format!("bytes */{len}").as_str())
    );
}

#[tokio::test]
async fn head_on_a_streamed_file_has_the_full_length_and_no_body() {
    let f = streamed_fixture();
    let (get, _) = f.get("/video.bin").await;
    let (head, body) = f.send(Method::HEAD, "/video.bin", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers, get.headers);
    assert_eq!(content_length(&head), MIB);
    assert!(body.is_empty());
}

#[tokio::test]
async fn streamed_file_replaced_on_disk_gets_503_until_the_reload() {
    let f = streamed_fixture();
    let replacement = random_bytes(MIB + 100, 43);
    write(f.root(), "video.bin", &replacement);
    let (p, body) = f.get("/video.bin").await;
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h(&p, header::RETRY_AFTER), Some("1"));
    assert!(!body.is_empty());
    assert_security_headers(&p, "503");
    assert!(f.svc.site().reload().unwrap().is_some());
    let (p, body) = f.get("/video.bin").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(content_length(&p), replacement.len());
    assert!(body[..] == replacement[..]);
}

#[tokio::test]
async fn a_streamed_file_changed_on_disk_is_warned_about_once_not_per_request() {
    let (logs, _guard) = capture_logs();
    let f = streamed_fixture();
    let changed = "streamed file changed or vanished";
    write(f.root(), "video.bin", &random_bytes(MIB + 100, 43));
    for _ in 0..5 {
        let (p, _) = f.get("/video.bin").await;
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(logs.count("WARN", changed), 1);
    assert_eq!(logs.count("DEBUG", changed), 4, "the others at debug");
    assert!(
        logs.count("WARN", "video.bin") >= 1,
        "the line names the file"
    );

    // The rebuilt entry is a new file: its own change is warned about again, once.
    assert!(f.svc.site().reload().unwrap().is_some());
    assert_eq!(f.get("/video.bin").await.0.status, StatusCode::OK);
    std::fs::remove_file(f.root().join("video.bin")).unwrap();
    for _ in 0..3 {
        let (p, _) = f.get("/video.bin").await;
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(logs.count("WARN", changed), 2);
}

// ---------------------------------------------------------------------------------------
// 11. Reload
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn reload_without_changes_returns_none() {
    let f = Fixture::new();
    let site = f.svc.site();
    assert_eq!(site.table().generation(), 1);
    assert!(site.reload().unwrap().is_none());
    assert!(site.reload().unwrap().is_none());
    assert_eq!(site.table().generation(), 1);
}

#[tokio::test]
async fn reload_after_a_change_serves_the_new_content_and_reuses_unchanged_assets() {
    let f = Fixture::new();
    let site = f.svc.site().clone();
    let (before, _) = f.get("/robots.txt").await;
    let (before_big, _) = f
        .get_with("/assets/big.js", &[("accept-encoding", "br")])
        .await;
    let old_table = site.table();

    let new_index = b"<!doctype html><title>app v2</title><p>second deploy</p>\n";
    write(f.root(), "index.html", new_index);
    write(f.root(), "new.txt", b"added\n");
    std::fs::remove_file(f.root().join("a b.txt")).unwrap();

    let generation = site.reload().unwrap().expect("a change was seen");
    assert_eq!(generation, 2);
    assert_eq!(site.table().generation(), 2);
    assert!(
        site.reload().unwrap().is_none(),
        "second reload has nothing to do"
    );

    // New content everywhere index.html is served.
    for uri in ["/", "/index.html", "/dashboard/settings"] {
        let (p, body) = f.get(uri).await;
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(&body[..], new_index, "{uri}");
        assert_eq!(content_length(&p), new_index.len());
    }
    let (p, body) = f.get("/new.txt").await;
    assert_eq!((p.status, &body[..]), (StatusCode::OK, &b"added\n"[..]));
    let (p, _) = f.get("/a%20b.txt").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);

    // Unchanged assets are reused, not rebuilt.
    let new_table = site.table();
    for url in ["/robots.txt", "/assets/big.js", "/docs/"] {
        assert!(
            std::sync::Arc::ptr_eq(old_table.get(url).unwrap(), new_table.get(url).unwrap()),
            "{url} reused"
        );
    }
    let (after, _) = f.get("/robots.txt").await;
    assert_eq!(h(&after, header::ETAG), h(&before, header::ETAG));
    assert_eq!(
        h(&after, header::LAST_MODIFIED),
        h(&before, header::LAST_MODIFIED)
    );
    let (after_big, _) = f
        .get_with("/assets/big.js", &[("accept-encoding", "br")])
        .await;
    assert_eq!(h(&after_big, header::ETAG), h(&before_big, header::ETAG));
}

#[tokio::test]
async fn reload_without_index_html_keeps_the_old_table_in_service() {
    let f = Fixture::new();
    let site = f.svc.site().clone();
    std::fs::remove_file(f.root().join("index.html")).unwrap();
    assert!(site.reload().is_err());
    assert_eq!(site.table().generation(), 1);
    let (p, body) = f.get("/").await;
    assert_eq!((p.status, &body[..]), (StatusCode::OK, INDEX));
    // Once the deploy is complete, the reload goes through.
    write(f.root(), "index.html", b"<!doctype html><p>v3</p>\n");
    assert_eq!(site.reload().unwrap(), Some(2));
    let (_, body) = f.get("/").await;
    assert_eq!(&body[..], b"<!doctype html><p>v3</p>\n");
}

/// Every response's `Date` is the time it was sent (the asset table is built with one, and
/// each response replaces it), one value per response header, never the table's build time.
#[tokio::test]
async fn asset_responses_carry_the_current_date_once() {
    let f = Fixture::new();
    // The table was stamped at load; let the clock move past that second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for (uri, range) in [
        ("/", None),
        ("/robots.txt", None),
        ("/robots.txt", Some("bytes=0-3")),
        ("/robots.txt", Some("bytes=0-1,3-4")),
    ] {
        let before = std::time::SystemTime::now();
        let headers: Vec<(&str, &str)> = range.map(|r| ("range", r)).into_iter().collect();
        let (p, _) = f.get_with(uri, &headers).await;
        let after = std::time::SystemTime::now();
        assert_eq!(p.headers.get_all(header::DATE).iter().count(), 1, "{uri}");
        let date = httpdate::parse_http_date(h(&p, header::DATE).unwrap()).unwrap();
        let secs =
            |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        assert!(
            secs(before) <= secs(date) && secs(date) <= secs(after),
            "{uri} {range:?}: Date {} is not the time of the response",
            secs(date)
        );
    }
    // A revalidation (304) is stamped too.
    let (p, _) = f.get("/robots.txt").await;
    let etag = h(&p, header::ETAG).unwrap().to_owned();
    let (p, _) = f.get_with("/robots.txt", &[("if-none-match", &etag)]).await;
    assert_eq!(p.status, StatusCode::NOT_MODIFIED);
    assert_eq!(p.headers.get_all(header::DATE).iter().count(), 1);
}
