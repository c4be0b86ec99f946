//! Benchmarks of the asset path: [`AssetService::call`] from a parsed request to a built
//! response (path decode, table lookup, coding negotiation, preconditions, ranges, header
//! map clone, body slice) over the demo SPA in `www/`, loaded with the options
//! `rampart serve` uses by default.
//!
//! Run: `cargo bench --bench asset_path` (add `-- --quick` for a short run, or a filter
//! such as `-- asset_path/range`).
//!
//! What is timed: only `call` and polling its future (ready at once for in-memory assets),
//! plus counting the response's headers so the build is not optimised away. Each request is
//! built once before the loop and cloned per iteration in `iter_batched`'s untimed setup;
//! the responses are dropped after the timed batch, so neither request construction nor
//! response teardown is measured.
//!
//! A second group, `asset_table`, times the redeploy check (`is_stale`) and a rebuild that
//! reuses every entry (what the watcher does when nothing changed in content).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_main, BatchSize, Criterion};
use futures_util::FutureExt;
use http::{header, Request, Response, StatusCode};
use rampart::app::{AssetTable, Body};
use rampart::{AssetService, Config, Site, SiteOptions};
use tower::Service;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("www")
}

/// The site options `Server::bind` derives from a default [`Config`].
fn default_options() -> SiteOptions {
    Config::new(root()).site_options()
}

/// The URL of the file in `www/assets` named `<stem>.<hash>.<ext>`.
fn hashed(stem: &str, ext: &str) -> String {
    let dir = root().join("assets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| {
            n.strip_prefix(stem)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_suffix(ext))
                .and_then(|r| r.strip_suffix('.'))
                .is_some_and(|hash| !hash.is_empty() && !hash.contains('.'))
        })
        .collect();
    names.sort();
    let name = names
        .pop()
        .unwrap_or_else(|| panic!("no {stem}.<hash>.{ext} in {}", dir.display()));
    format!("/assets/{name}")
}

fn get(uri: &str, headers: &[(header::HeaderName, &str)]) -> Request<()> {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(name, *value);
    }
    builder.body(()).expect("valid request")
}

/// One call: the timed unit. The future of an in-memory asset is ready on its first poll.
fn call(svc: &mut AssetService, req: Request<()>) -> Response<Body> {
    let response = match svc.call(req).now_or_never() {
        Some(Ok(r)) => r,
        Some(Err(never)) => match never {},
        None => panic!("response future not ready: asset streamed from disk?"),
    };
    black_box(response.headers().len());
    black_box(response)
}

fn asset_path(c: &mut Criterion) {
    let site = Site::load(default_options()).expect("loading www/");
    let mut svc = AssetService::new(Arc::clone(&site));

    let app_js = hashed("app", "js");
    let vendor_js = hashed("vendor", "js");
    let all_codings = "gzip, deflate, br, zstd";

    // A browser's revalidation of a cached br response: the ETag comes from a first answer.
    let first = call(
        &mut svc,
        get(&app_js, &[(header::ACCEPT_ENCODING, all_codings)]),
    );
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first
        .headers()
        .get(header::ETAG)
        .expect("ETag on a 200")
        .to_str()
        .expect("ASCII ETag")
        .to_owned();

    let deep = format!(
        "/{}?{}",
        (0..32)
            .map(|i| format!("segment-{i}"))
            .collect::<Vec<_>>()
            .join("/"),
        (0..64)
            .map(|i| format!("key{i}=value-{i}"))
            .collect::<Vec<_>>()
            .join("&"),
    );
    let deep_escaped = format!(
        "/{}",
        (0..32)
            .map(|i| format!("caf%C3%A9%20{i}"))
            .collect::<Vec<_>>()
            .join("/"),
    );

    // (benchmark name, request, expected status, expected Content-Encoding)
    let cases: Vec<(&str, Request<()>, StatusCode, Option<&str>)> = vec![
        ("index", get("/", &[]), StatusCode::OK, None),
        (
            "app_js_br",
            get(&app_js, &[(header::ACCEPT_ENCODING, all_codings)]),
            StatusCode::OK,
            Some("br"),
        ),
        (
            "vendor_js_gzip",
            get(&vendor_js, &[(header::ACCEPT_ENCODING, "gzip")]),
            StatusCode::OK,
            Some("gzip"),
        ),
        (
            "spa_fallback",
            get("/settings/profile", &[]),
            StatusCode::OK,
            None,
        ),
        (
            "not_modified",
            get(
                &app_js,
                &[
                    (header::ACCEPT_ENCODING, all_codings),
                    (header::IF_NONE_MATCH, &etag),
                ],
            ),
            StatusCode::NOT_MODIFIED,
            None,
        ),
        (
            "range",
            get(&app_js, &[(header::RANGE, "bytes=100-199")]),
            StatusCode::PARTIAL_CONTENT,
            None,
        ),
        (
            "not_found",
            get("/missing.js", &[]),
            StatusCode::NOT_FOUND,
            None,
        ),
        (
            "deep_path_long_query",
            get(&deep, &[]),
            StatusCode::OK,
            None,
        ),
        (
            "deep_path_escaped",
            get(&deep_escaped, &[]),
            StatusCode::OK,
            None,
        ),
    ];

    let mut group = c.benchmark_group("asset_path");
    for (name, req, status, coding) in cases {
        // Check the case is what it claims before timing it.
        let r = call(&mut svc, req.clone());
        assert_eq!(r.status(), status, "{name}");
        assert_eq!(
            r.headers()
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok()),
            coding,
            "{name}"
        );
        group.bench_function(name, |b| {
            b.iter_batched(
                || req.clone(),
                |req| call(&mut svc, req),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn asset_table(c: &mut Criterion) {
    let options = default_options();
    let table = AssetTable::build(&options.root, &options.build, None).expect("loading www/");
    let mut group = c.benchmark_group("asset_table");
    group.bench_function("is_stale", |b| {
        b.iter(|| table.is_stale(black_box(&options.root)).expect("scan"));
    });
    group.bench_function("rebuild_unchanged", |b| {
        b.iter(|| {
            AssetTable::build(black_box(&options.root), &options.build, Some(&table))
                .expect("rebuild")
        });
    });
    group.finish();
}

/// `criterion_group!` writes an undocumented `pub fn`; keep the lint off only for it.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::asset_path, super::asset_table);
}

criterion_main!(group::benches);
