//! Site rules against the real server over real TLS: `_headers` and `_redirects` at the root
//! and `[[headers]]`/`[[redirects]]` in `rampart.toml` (both formats, and their merge order);
//! header add/override/remove including rampart's defaults; redirects, rewrites, forced
//! rules, placeholders, splats, query conditions, a canonical host; several apps under one
//! root; custom status pages; the SPA fallback's interaction with the rules; CORS
//! preflights; Basic-Auth; bad rule files (start-up refuses with the line, a redeploy keeps
//! the previous rules); loops; and `rampart check --route`. Loopback only.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};
use support::binary::Rampart;
use support::{TestServer, H1, H2};

fn h<'a>(parts: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).map(|v| v.to_str().unwrap())
}

const HEADERS: &str = "\
# Site-wide policy
/*
  X-Frame-Options: DENY
  Content-Security-Policy: default-src 'self'
  Strict-Transport-Security: max-age=63072000; includeSubDomains; preload

/embed/*
  ! X-Frame-Options

/sw.js
  Cache-Control: no-cache

/assets/*
  Referrer-Policy:

/app/*
  X-Route: app

/index.html
  X-File: index

/fonts/*
  Access-Control-Allow-Origin: *
  Access-Control-Allow-Headers: X-Requested-With
";

const REDIRECTS: &str = "\
# Moved pages
/home              /                   301
/blog/*            /news/:splat        302
/u/:user/profile   /people/:user       307
/store  id=:id     /products/:id       301
/robots.txt        /                   302
/forced.txt        /                   308!
/admin/*           /admin/index.html   200
/closed/*          /gone.html          410
/private/*         /404.html           404
https://www.example.com/*  https://example.com/:splat  301!
";

/// A copy of the demo SPA with the rule files and a few more files.
fn site(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("www");
    support::copy_tree(&support::www(), &root);
    std::fs::write(root.join("_headers"), HEADERS).unwrap();
    std::fs::write(root.join("_redirects"), REDIRECTS).unwrap();
    std::fs::write(
        root.join("sw.js"),
        "self.addEventListener('fetch', () => {});\n",
    )
    .unwrap();
    std::fs::write(root.join("forced.txt"), "never served\n").unwrap();
    std::fs::create_dir_all(root.join("embed")).unwrap();
    std::fs::write(root.join("embed/widget.html"), "<p>widget</p>\n").unwrap();
    std::fs::create_dir_all(root.join("admin")).unwrap();
    std::fs::write(root.join("admin/index.html"), "<title>admin app</title>\n").unwrap();
    std::fs::create_dir_all(root.join("fonts")).unwrap();
    std::fs::write(root.join("fonts/a.woff2"), b"wOF2 not really a font").unwrap();
    std::fs::write(root.join("gone.html"), "<p>this shop has closed</p>\n").unwrap();
    std::fs::write(root.join("404.html"), "<p>custom not found</p>\n").unwrap();
    root
}

async fn server(dir: &Path) -> TestServer {
    let root = site(dir);
    TestServer::start(move |c| c.root = root).await
}

#[tokio::test]
async fn header_rules_add_override_and_remove_headers_defaults_included() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let mut h2 = H2::connect(&s).await;
    for (p, _) in [h2.request("/", &[]).await, s.get("/").await] {
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(h(&p, "x-frame-options"), Some("DENY"));
        assert_eq!(h(&p, "content-security-policy"), Some("default-src 'self'"));
        // rampart's default HSTS, overridden.
        assert_eq!(
            h(&p, "strict-transport-security"),
            Some("max-age=63072000; includeSubDomains; preload")
        );
        assert_eq!(
            h(&p, "referrer-policy"),
            Some("strict-origin-when-cross-origin")
        );
        // `/index.html`'s rule is for that path, not for `/`.
        assert_eq!(h(&p, "x-file"), None);
    }
    let (p, _) = s.get("/index.html").await;
    assert_eq!(h(&p, "x-file"), Some("index"));

    // `! Name` removes what an earlier rule set.
    let (p, body) = s.get("/embed/widget.html").await;
    assert_eq!(&body[..], b"<p>widget</p>\n");
    assert_eq!(h(&p, "x-frame-options"), None);
    assert_eq!(h(&p, "content-security-policy"), Some("default-src 'self'"));

    // Cache policy per path: sw.js revalidates instead of the 5-minute default.
    let (p, _) = s.get("/sw.js").await;
    assert_eq!(h(&p, "cache-control"), Some("no-cache"));
    // An empty value removes a default (Referrer-Policy) under /assets/, and the hashed
    // asset keeps its immutable policy.
    let (p, _) = s.get("/assets/app.3dd227a0.js").await;
    assert_eq!(h(&p, "referrer-policy"), None);
    assert_eq!(
        h(&p, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    // A 304 carries the same rule-made headers.
    let etag = h(&p, "etag").unwrap().to_owned();
    let (p, _) = s
        .request(Method::GET, "/sw.js", &[("if-none-match", "\"nope\"")])
        .await;
    assert_eq!(p.status, StatusCode::OK);
    let (p, _) = s
        .request(
            Method::GET,
            "/assets/app.3dd227a0.js",
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_MODIFIED);
    assert_eq!(h(&p, "x-frame-options"), Some("DENY"));
    assert_eq!(h(&p, "referrer-policy"), None);

    // The rule files are never served.
    for f in ["/_headers", "/_redirects"] {
        let (p, body) = s.get(f).await;
        assert_eq!(p.status, StatusCode::NOT_FOUND, "{f}");
        assert!(!String::from_utf8_lossy(&body).contains("X-Frame-Options"));
    }
}

#[tokio::test]
async fn an_spa_route_gets_its_own_routes_headers_and_a_404_keeps_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let index = support::www_file("index.html");
    let nav = [
        ("sec-fetch-mode", "navigate"),
        ("sec-fetch-dest", "document"),
    ];
    let (p, body) = s.request(Method::GET, "/app/settings", &nav).await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], &index[..]);
    assert_eq!(h(&p, "x-route"), Some("app"), "the route's rule applies");
    assert_eq!(h(&p, "x-file"), None, "index.html's file rule does not");
    assert_eq!(h(&p, "x-frame-options"), Some("DENY"));
    assert_eq!(h(&p, "cache-control"), Some("no-cache"));

    // A missing script under /assets/ (a rule sets nothing there that would cache it):
    // 404, never cached, with the site-wide headers.
    let (p, _) = s
        .request(
            Method::GET,
            "/assets/index-DY650DRT.js",
            &[("sec-fetch-dest", "script")],
        )
        .await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_eq!(h(&p, "cache-control"), Some("no-cache"));
    assert_eq!(h(&p, "x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn redirect_rules_redirect_with_splats_placeholders_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let cases = [
        ("/home", 301, "/"),
        ("/home?utm=x", 301, "/?utm=x"),
        ("/blog/2024/hello", 302, "/news/2024/hello"),
        ("/u/john.doe/profile", 307, "/people/john.doe"),
        ("/store?id=42&ref=mail", 301, "/products/42"),
        ("/forced.txt", 308, "/"),
    ];
    for (path, status, location) in cases {
        let (p, _) = s.get(path).await;
        assert_eq!(p.status.as_u16(), status, "{path}");
        assert_eq!(h(&p, "location"), Some(location), "{path}");
        assert_eq!(h(&p, "x-frame-options"), Some("DENY"), "{path}");
    }
    // A rule without `!` does not shadow a file that exists.
    let (p, body) = s.get("/robots.txt").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], &support::www_file("robots.txt")[..]);
    // A query condition that is not met: no redirect (an SPA route, here).
    let (p, _) = s.get("/store?other=1").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(h(&p, "location"), None);
    // Over HTTP/2 too.
    let mut h2 = H2::connect(&s).await;
    let (p, _) = h2.request("/blog/x", &[]).await;
    assert_eq!(p.status.as_u16(), 302);
    assert_eq!(h(&p, "location"), Some("/news/x"));
}

#[tokio::test]
async fn a_canonical_host_rule_redirects_only_its_host() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let mut h1 = H1::connect(&s, s.client(&[b"http/1.1"])).await;
    h1.authority = "www.example.com".into();
    let (p, _) = h1.request(Method::GET, "/docs/intro?x=1", &[]).await;
    assert_eq!(p.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        h(&p, "location"),
        Some("https://example.com/docs/intro?x=1")
    );
    // Forced: even a file that exists.
    let (p, _) = h1.request(Method::GET, "/robots.txt", &[]).await;
    assert_eq!(p.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(h(&p, "location"), Some("https://example.com/robots.txt"));
    // Another host is served.
    let (p, _) = s.get("/robots.txt").await;
    assert_eq!(p.status, StatusCode::OK);
}

#[tokio::test]
async fn rewrites_serve_apps_under_one_root_and_status_pages() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let nav = [("sec-fetch-mode", "navigate")];
    // /admin/* is the admin app's own SPA.
    for path in ["/admin/users/7", "/admin/settings.v2"] {
        let (p, body) = s.request(Method::GET, path, &nav).await;
        assert_eq!(p.status, StatusCode::OK, "{path}");
        assert_eq!(&body[..], b"<title>admin app</title>\n", "{path}");
        assert_eq!(h(&p, "cache-control"), Some("no-cache"));
    }
    // Its files are still files.
    let (p, body) = s.get("/admin/index.html").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(&body[..], b"<title>admin app</title>\n");
    // The main app's routes still fall back to the main index.html.
    let (_, body) = s.request(Method::GET, "/settings", &nav).await;
    assert_eq!(&body[..], &support::www_file("index.html")[..]);
    // Status pages: 410 with its page; 404 with the site's page, no SPA fallback there.
    let (p, body) = s.get("/closed/item/3").await;
    assert_eq!(p.status, StatusCode::GONE);
    assert_eq!(&body[..], b"<p>this shop has closed</p>\n");
    assert_eq!(h(&p, "cache-control"), Some("no-cache"));
    let (p, body) = s.request(Method::GET, "/private/x", &nav).await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert_eq!(&body[..], b"<p>custom not found</p>\n");
    // HEAD of a rewrite: the GET's status and headers, no body.
    let (p, body) = s.request(Method::HEAD, "/admin/users/7", &nav).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(body.is_empty());
}

#[tokio::test]
async fn cors_rules_answer_preflights_for_their_paths_only() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path()).await;
    let (p, _) = s
        .request(
            Method::GET,
            "/fonts/a.woff2",
            &[("origin", "https://other.example")],
        )
        .await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(h(&p, "access-control-allow-origin"), Some("*"));
    let preflight = [
        ("origin", "https://other.example"),
        ("access-control-request-method", "GET"),
        ("access-control-request-headers", "x-requested-with"),
    ];
    let (p, body) = s
        .request(Method::OPTIONS, "/fonts/a.woff2", &preflight)
        .await;
    assert_eq!(p.status, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert_eq!(h(&p, "access-control-allow-origin"), Some("*"));
    assert_eq!(h(&p, "access-control-allow-methods"), Some("GET, HEAD"));
    assert_eq!(
        h(&p, "access-control-allow-headers"),
        Some("X-Requested-With")
    );
    assert_eq!(h(&p, "access-control-max-age"), Some("86400"));
    // A path no rule opens keeps its 405, preflight or not.
    let (p, _) = s.request(Method::OPTIONS, "/", &preflight).await;
    assert_eq!(p.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(h(&p, "access-control-allow-origin"), None);
    let mut h2 = H2::connect(&s).await;
    let req = http::Request::builder()
        .method(Method::OPTIONS)
        .uri(format!("https://{}/fonts/a.woff2", h2.authority))
        .header("origin", "https://other.example")
        .header("access-control-request-method", "GET")
        .body(http_body_util::Empty::new())
        .unwrap();
    let res = h2.send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn basic_auth_guards_its_paths_with_bcrypt_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let root = site(dir.path());
    let hash = bcrypt::hash("s3cret pass", 4).unwrap();
    std::fs::create_dir_all(root.join("staging")).unwrap();
    std::fs::write(root.join("staging/index.html"), "<p>staging</p>\n").unwrap();
    std::fs::write(
        root.join("_headers"),
        format!("{HEADERS}\n/staging/*\n  Basic-Auth: alice:{hash}\n"),
    )
    .unwrap();
    let s = TestServer::start(move |c| c.root = root).await;
    let (p, body) = s.get("/staging/").await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(h(&p, "www-authenticate")
        .unwrap()
        .starts_with("Basic realm="));
    assert!(!String::from_utf8_lossy(&body).contains("staging"));
    let basic = |user: &str, pass: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    for (user, pass) in [("alice", "wrong"), ("bob", "s3cret pass"), ("alice", "")] {
        let (p, _) = s
            .request(
                Method::GET,
                "/staging/",
                &[("authorization", &basic(user, pass))],
            )
            .await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED, "{user}:{pass}");
    }
    let good = basic("alice", "s3cret pass");
    for _ in 0..2 {
        let (p, body) = s
            .request(Method::GET, "/staging/", &[("authorization", &good)])
            .await;
        assert_eq!(p.status, StatusCode::OK);
        assert_eq!(&body[..], b"<p>staging</p>\n");
    }
    // Other paths are open; the password hash never leaves the server as a header.
    let (p, _) = s.get("/").await;
    assert_eq!(p.status, StatusCode::OK);
    assert_eq!(h(&p, "basic-auth"), None);
}

#[test]
fn a_bad_rule_file_refuses_start_up_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    support::copy_tree(&support::www(), &root);
    std::fs::write(
        root.join("_headers"),
        "/*\n  X-Ok: yes\n  Bad Header Name: x\n",
    )
    .unwrap();
    std::fs::write(root.join("_redirects"), "/a /b 301\n/c /d 999\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["--listen", "127.0.0.1:0", "--dev-cert-dir"])
        .arg(dir.path().join("certs"))
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("_headers:3"), "{err}");
    assert!(err.contains("_redirects:2"), "{err}");
    assert!(err.contains("999"), "{err}");
}

#[test]
fn a_redirect_loop_refuses_start_up_and_check_names_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("www");
    support::copy_tree(&support::www(), &root);
    std::fs::write(root.join("_redirects"), "/a /b 301\n/b /a 302\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["check", "--listen", "127.0.0.1:0", "--dev-cert-dir"])
        .arg(dir.path().join("certs"))
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("loop"), "{report}");
    assert!(report.contains("_redirects:1"), "{report}");
}

#[tokio::test]
async fn a_redeploy_with_a_bad_rule_file_keeps_the_previous_rules() {
    let mut r = Rampart::start_with(&["--watch-interval", "200ms"], |root| {
        std::fs::write(root.join("_headers"), "/*\n  X-Version: one\n").unwrap();
    });
    let root = r.dir.path().join("www");
    let get = |r: &Rampart| {
        let r_addr = r.addr;
        let ca = r.ca();
        async move {
            let tls = support::tls_connect(
                r_addr,
                support::client_config(&ca, &[b"http/1.1"], None),
                "localhost",
            )
            .await
            .unwrap();
            let mut h1 = H1::over(tls, r_addr).await;
            h1.request(Method::GET, "/", &[]).await.0
        }
    };
    assert_eq!(h(&get(&r).await, "x-version"), Some("one"));
    // A good change is picked up by the redeploy watcher.
    std::fs::write(root.join("_headers"), "/*\n  X-Version: two\n").unwrap();
    r.wait_line("redeploy picked up", Duration::from_secs(10))
        .await;
    assert_eq!(h(&get(&r).await, "x-version"), Some("two"));
    // A bad one: the files are redeployed, the rules stay, the warning names the line.
    std::fs::write(
        root.join("_headers"),
        "/*\n  X-Version: three\nno-slash\n  X: y\n",
    )
    .unwrap();
    std::fs::write(root.join("robots.txt"), "User-agent: *\nDisallow: /new\n").unwrap();
    let line = r
        .wait_line("the previous rules stay in force", Duration::from_secs(10))
        .await;
    assert!(line.contains("line=3"), "{line}");
    assert!(line.contains("_headers"), "{line}");
    assert_eq!(h(&get(&r).await, "x-version"), Some("two"));
    r.assert_alive();
}

#[tokio::test]
async fn toml_rules_merge_with_the_root_files_in_the_documented_order() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rampart.toml");
    std::fs::write(
        &config,
        r#"
[[headers]]
for = "/*"
values = { X-Frame-Options = "SAMEORIGIN", X-Operator = "yes" }

[[headers]]
for = "/assets/*"
values = { Cache-Control = "public, max-age=600" }

[[redirects]]
from = "/home"
to = "/welcome"
status = 302

[[redirects]]
from = "/shop"
to = "/store/:id"
query = { id = ":id" }
status = 301
force = true
"#,
    )
    .unwrap();
    let config_arg = config.to_str().unwrap().to_owned();
    let r = Rampart::start_with(&["--config", &config_arg], |root| {
        std::fs::write(root.join("_headers"), HEADERS).unwrap();
        std::fs::write(root.join("_redirects"), REDIRECTS).unwrap();
    });
    let tls = support::tls_connect(
        r.addr,
        support::client_config(&r.ca(), &[b"http/1.1"], None),
        "localhost",
    )
    .await
    .unwrap();
    let mut h1 = H1::over(tls, r.addr).await;
    let (p, _) = h1.request(Method::GET, "/", &[]).await;
    // Header rules: _headers, then the config file (the operator has the last word).
    assert_eq!(h(&p, "x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(h(&p, "x-operator"), Some("yes"));
    assert_eq!(h(&p, "content-security-policy"), Some("default-src 'self'"));
    let (p, _) = h1
        .request(Method::GET, "/assets/app.3dd227a0.js", &[])
        .await;
    assert_eq!(h(&p, "cache-control"), Some("public, max-age=600"));
    // Redirects: the config file first (its /home wins over _redirects' /home).
    let (p, _) = h1.request(Method::GET, "/home", &[]).await;
    assert_eq!(p.status.as_u16(), 302);
    assert_eq!(h(&p, "location"), Some("/welcome"));
    let (p, _) = h1.request(Method::GET, "/shop?id=9", &[]).await;
    assert_eq!(p.status.as_u16(), 301);
    assert_eq!(h(&p, "location"), Some("/store/9"));
    // _redirects still applies where the config file has nothing.
    let (p, _) = h1.request(Method::GET, "/blog/a", &[]).await;
    assert_eq!(h(&p, "location"), Some("/news/a"));
}

#[test]
fn check_route_prints_the_answer_and_the_rule_behind_each_header() {
    let dir = tempfile::tempdir().unwrap();
    let root = site(dir.path());
    let run = |route: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["check", "--listen", "127.0.0.1:0", "--dev-cert-dir"])
            .arg(dir.path().join("certs"))
            .arg("--root")
            .arg(&root)
            .args(["--route", route])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let out = run("/sw.js");
    assert!(out.contains("site rules"), "{out}");
    let line = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} in {out}"))
            .to_owned()
    };
    assert!(line("GET https://localhost/sw.js").contains("sw.js"));
    assert!(line("200 OK").contains("the file"));
    assert!(
        line("cache-control: no-cache").ends_with("_headers:10"),
        "{out}"
    );
    assert!(
        line("x-frame-options: DENY").ends_with("_headers:2"),
        "{out}"
    );
    assert!(
        line("x-content-type-options: nosniff").ends_with("default"),
        "{out}"
    );

    let out = run("/blog/2024/post");
    assert!(out.contains("302 Found"), "{out}");
    assert!(out.contains("redirect rule at"), "{out}");
    assert!(out.contains("_redirects:3"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("location: /news/2024/post") && l.ends_with("_redirects:3")),
        "{out}"
    );

    let out = run("/embed/widget.html");
    assert!(out.contains("x-frame-options: (removed)"), "{out}");

    let out = run("https://www.example.com/x");
    assert!(out.contains("301 Moved Permanently"), "{out}");
    assert!(out.contains("location: https://example.com/x"), "{out}");
}

/// The examples: `_headers` + `_redirects` at the root, and their `rampart.toml`
/// equivalent, give the same answers (status, `Location`, every header but `Date`).
#[tokio::test]
async fn the_example_rule_files_and_their_toml_equivalent_answer_alike() {
    use tower::ServiceExt as _;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site-rules");
    let dir = tempfile::tempdir().unwrap();
    let with_files = dir.path().join("files");
    let plain = dir.path().join("plain");
    for root in [&with_files, &plain] {
        support::copy_tree(&support::www(), root);
        std::fs::write(root.join("sw.js"), "// sw\n").unwrap();
        std::fs::create_dir_all(root.join("admin")).unwrap();
        std::fs::write(root.join("admin/index.html"), "<p>admin</p>\n").unwrap();
        std::fs::write(root.join("404.html"), "<p>gone</p>\n").unwrap();
    }
    for f in ["_headers", "_redirects"] {
        std::fs::copy(examples.join(f), with_files.join(f)).unwrap();
    }
    let service = |args: Vec<String>| {
        let cli = rampart::config::parse_args(args).unwrap();
        let config = rampart::Config::from_cli(&cli.serve).unwrap();
        rampart::AssetService::new(rampart::Site::load(config.site_options()).unwrap())
    };
    let files = service(vec![
        "rampart".into(),
        "--root".into(),
        with_files.display().to_string(),
    ]);
    let toml = service(vec![
        "rampart".into(),
        "--config".into(),
        examples.join("rampart.toml").display().to_string(),
        "--root".into(),
        plain.display().to_string(),
    ]);
    let mut compared = 0;
    for (host, path) in [
        ("example.com", "/"),
        ("example.com", "/index.html"),
        ("example.com", "/sw.js"),
        ("example.com", "/embed/widget"),
        ("example.com", "/studio/"),
        ("example.com", "/assets/inter.6fb50190.woff2"),
        ("example.com", "/assets/app.3dd227a0.js"),
        ("example.com", "/data/prices.json"),
        ("example.com", "/home"),
        ("example.com", "/blog/2024/post"),
        ("example.com", "/u/bob/profile"),
        ("example.com", "/shop?id=3"),
        ("example.com", "/shop"),
        ("example.com", "/admin/users"),
        ("example.com", "/promo/winter"),
        ("www.example.com", "/robots.txt"),
        ("www.example.com", "/a/b?c=d"),
    ] {
        let answer = |svc: rampart::AssetService| async move {
            let req = http::Request::get(path)
                .header("host", host)
                .header("sec-fetch-mode", "navigate")
                .header("accept-encoding", "br")
                .body(())
                .unwrap();
            let mut r = svc.oneshot(req).await.unwrap();
            r.headers_mut().remove("date");
            (r.status(), r.headers().clone())
        };
        let a = answer(files.clone()).await;
        let b = answer(toml.clone()).await;
        assert_eq!(a, b, "{host}{path}");
        compared += 1;
    }
    assert_eq!(compared, 17);
    // And the rules did something: a redirect, a removal, an override.
    let req = http::Request::get("/home").body(()).unwrap();
    let r = files.clone().oneshot(req).await.unwrap();
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    let req = http::Request::get("/embed/x").body(()).unwrap();
    let r = files.oneshot(req).await.unwrap();
    assert!(r.headers().get("x-frame-options").is_none());
}
