//! The Cache-Control rampart gives every file of real bundler builds: Vite, SvelteKit,
//! webpack (Create React App's names and `asset-manifest.json`), Parcel and Angular.
//!
//! The fixtures under `tests/fixtures/bundlers/` were written by `build.sh` there from
//! real builds: each bundler's list of output paths, its manifests, and the ground truth
//! (`expected.txt`: `immutable`, `short` or `no-cache` per path, found by building twice
//! with every source changed; the method is in that directory's README). Each test
//! rebuilds the output tree with tiny files at the listed paths plus the real manifests,
//! serves it through the app `Service` and compares every answer with the ground truth,
//! reporting all the mismatches at once.
//!
//! `.ci/run` also builds the Vite app for real and points `RAMPART_VITE_BUILD` at it: the
//! live test then serves that build itself and fails if it is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use http::{header, Request, StatusCode};
use rampart::app::{AssetService, BuildOptions, SecurityHeaders, Site, SiteOptions};
use tower::ServiceExt;

/// The manifests `build.sh` copies next to the listings, at their paths in the build.
const MANIFESTS: [&str; 2] = [".vite/manifest.json", "asset-manifest.json"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundlers")
}

/// `expected.txt` of one bundler: `(path, class)` in file order.
fn expected(bundler: &str) -> Vec<(String, String)> {
    let path = fixtures().join(bundler).join("expected.txt");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run build.sh)", path.display()));
    text.lines()
        .map(|line| {
            let (p, class) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("{}: bad line {line:?}", path.display()));
            (p.to_owned(), class.to_owned())
        })
        .collect()
}

/// `files.txt` of one bundler.
fn listed(bundler: &str) -> Vec<String> {
    let path = fixtures().join(bundler).join("files.txt");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run build.sh)", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A temporary build root: a tiny file at every listed path, then the real manifests.
fn rebuild(bundler: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for rel in listed(bundler) {
        let path = dir.path().join(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("{rel}\n")).unwrap();
    }
    for m in MANIFESTS {
        let from = fixtures().join(bundler).join(m);
        if from.is_file() {
            std::fs::copy(&from, dir.path().join(m)).unwrap();
        }
    }
    dir
}

fn service(root: &Path) -> AssetService {
    let options = SiteOptions {
        root: root.to_owned(),
        spa: true,
        max_uri_length: 8192,
        build: BuildOptions {
            stream_threshold: 8 << 20,
            security: SecurityHeaders::new(31_536_000),
            rules: Default::default(),
            keep_old_assets: std::time::Duration::ZERO,
            alt_svc: None,
        },
    };
    AssetService::new(Site::load(options).expect("the build root loads"))
}

/// The Cache-Control each class of `expected.txt` stands for.
fn header_for(class: &str) -> &'static str {
    match class {
        "immutable" => "public, max-age=31536000, immutable",
        "short" => "public, max-age=300, must-revalidate",
        "no-cache" => "no-cache",
        other => panic!("unknown class {other:?} in expected.txt"),
    }
}

/// Requests every path and returns one line per answer that differs from `expected`.
/// Paths under a dot directory (`.vite/`) are never served: they must be 404.
async fn mismatches(svc: &AssetService, expected: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, class) in expected {
        let req = Request::get(format!("/{path}")).body(()).unwrap();
        let res = svc.clone().oneshot(req).await.unwrap();
        let hidden = path.split('/').any(|c| c.starts_with('.'));
        if hidden {
            if res.status() != StatusCode::NOT_FOUND {
                out.push(format!("{path}: {} (a dotfile must be 404)", res.status()));
            }
            continue;
        }
        let got = res
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)");
        if res.status() != StatusCode::OK || got != header_for(class) {
            out.push(format!(
                "{path}: {} {got:?}, expected {class} ({:?})",
                res.status(),
                header_for(class)
            ));
        }
    }
    out
}

/// Serves the fixture of `bundler` and panics with every mismatch.
async fn check_fixture(bundler: &str) {
    let expected = expected(bundler);
    let paths: Vec<&str> = expected.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        listed(bundler),
        "{bundler}: expected.txt and files.txt list different paths"
    );
    let root = rebuild(bundler);
    let bad = mismatches(&service(root.path()), &expected).await;
    assert!(
        bad.is_empty(),
        "{bundler}: {} of {} files get the wrong Cache-Control:\n{}",
        bad.len(),
        expected.len(),
        bad.join("\n")
    );
    // The traps are in every fixture: the public copies (short) and hashed variants of
    // the same names, so a fixture regenerated without them fails here.
    for trap in [
        "hero-1920x1080.jpg",
        "screenshot-iPhone15.png",
        "logo-DarkMode.svg",
    ] {
        assert!(
            expected.iter().any(|(p, c)| p == trap && c == "short"),
            "{bundler}: no public {trap}"
        );
        let stem = trap.split('.').next().unwrap();
        assert!(
            expected
                .iter()
                .any(|(p, c)| p != trap && p.contains(stem) && c == "immutable"),
            "{bundler}: no hashed {stem}"
        );
    }
}

#[tokio::test]
async fn vite_outputs_get_the_cache_policy_of_their_ground_truth() {
    check_fixture("vite").await;
}

#[tokio::test]
async fn sveltekit_outputs_get_the_cache_policy_of_their_ground_truth() {
    check_fixture("sveltekit").await;
}

#[tokio::test]
async fn webpack_outputs_get_the_cache_policy_of_their_ground_truth() {
    check_fixture("webpack").await;
}

#[tokio::test]
async fn parcel_outputs_get_the_cache_policy_of_their_ground_truth() {
    check_fixture("parcel").await;
}

#[tokio::test]
async fn angular_outputs_get_the_cache_policy_of_their_ground_truth() {
    check_fixture("angular").await;
}

/// Every file under `root`, relative, sorted.
fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                go(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy();
                out.push(rel.replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

/// With `RAMPART_VITE_BUILD` set (`.ci/run` does, after `vite-live.sh`), the real Vite
/// build there is served as it is, and must have exactly the fixture's names (the lock
/// file pins the bundler; a difference means the fixture is stale: rerun build.sh). A set
/// variable naming a missing directory fails. Unset, the checked-in fixture is checked.
#[tokio::test]
async fn live_vite_build_has_the_fixture_names_and_their_cache_policy() {
    let Some(dir) = std::env::var_os("RAMPART_VITE_BUILD") else {
        println!("RAMPART_VITE_BUILD is unset: checked the checked-in Vite fixture instead");
        check_fixture("vite").await;
        return;
    };
    let mut root = PathBuf::from(dir);
    if root.is_relative() {
        // Cargo runs tests in the package root; `.ci/run` passes a path relative to it.
        root = Path::new(env!("CARGO_MANIFEST_DIR")).join(root);
    }
    assert!(
        root.join("index.html").is_file(),
        "RAMPART_VITE_BUILD={} has no Vite build (index.html missing): run \
         tests/fixtures/bundlers/vite-live.sh {0}",
        root.display()
    );
    let expected = expected("vite");
    let live = walk(&root);
    let want: Vec<&str> = expected.iter().map(|(p, _)| p.as_str()).collect();
    if live != want {
        let mut diff = String::new();
        for p in &live {
            if !want.contains(&p.as_str()) {
                let _ = writeln!(diff, "+ {p}");
            }
        }
        for p in &want {
            if !live.contains(&(*p).to_owned()) {
                let _ = writeln!(diff, "- {p}");
            }
        }
        panic!(
            "the live Vite build at {} differs from tests/fixtures/bundlers/vite/files.txt \
             (rerun build.sh vite if the app or its lock file changed):\n{diff}",
            root.display()
        );
    }
    let bad = mismatches(&service(&root), &expected).await;
    assert!(
        bad.is_empty(),
        "live Vite build: {} of {} files get the wrong Cache-Control:\n{}",
        bad.len(),
        expected.len(),
        bad.join("\n")
    );
    println!("served the live Vite build at {}", root.display());
}
