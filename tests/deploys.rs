//! Redeploys against the real binary over TLS: skew protection (`--keep-old-assets`: tabs
//! opened before a redeploy still get their build's hashed chunks, index.html and unhashed
//! files are the newest, the store can be off and expires), and consistent swaps (an
//! index.html whose bundles are not copied yet is held back until they arrive, or for a
//! bounded wait, after which it goes live with a warning naming them).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::binary::Rampart;
use support::H1;

async fn get(p: &Rampart, path: &str) -> (u16, Bytes) {
    let mut h1 = H1::over(p.connect(&[b"http/1.1"]).await, p.addr).await;
    let (parts, body) = h1.request(http::Method::GET, path, &[]).await;
    (parts.status.as_u16(), body)
}

/// Polls `path` until its body is `want`, for up to `timeout`.
async fn wait_body(p: &Rampart, path: &str, want: &str, timeout: Duration) {
    let start = Instant::now();
    loop {
        let (_, body) = get(p, path).await;
        if body == want.as_bytes() {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{path} is not {want:?} after {timeout:?}: {body:?}\n{}",
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One build of an app: an entry script named by index.html, a lazy chunk it would load
/// later, and an unhashed file of that build only.
struct Build {
    index: String,
    entry: (String, String),
    lazy: (String, String),
    unhashed: (String, String),
}

fn build(v: u32, entry_hash: &str, lazy_hash: &str) -> Build {
    let entry = format!("/assets/index-{entry_hash}.js");
    Build {
        index: format!(
            "<!doctype html><title>v{v}</title><script type=module src=\"{entry}\"></script>\n"
        ),
        entry: (entry, format!("import('./Lazy-{lazy_hash}.js') // v{v}\n")),
        lazy: (
            format!("/assets/Lazy-{lazy_hash}.js"),
            format!("export const v = {v};\n"),
        ),
        unhashed: (format!("/notes-v{v}.txt"), format!("notes of v{v}\n")),
    }
}

/// Deploys `next` over `prev` the way a careful tool does: bundles first, then index.html,
/// then the previous build's files are deleted.
fn deploy(root: &Path, next: &Build, prev: Option<&Build>) {
    for (url, text) in [&next.entry, &next.lazy, &next.unhashed] {
        std::fs::write(root.join(url.trim_start_matches('/')), text).unwrap();
    }
    let tmp = root.join(".index.html.tmp");
    std::fs::write(&tmp, &next.index).unwrap();
    std::fs::rename(&tmp, root.join("index.html")).unwrap();
    if let Some(prev) = prev {
        for (url, _) in [&prev.entry, &prev.lazy, &prev.unhashed] {
            std::fs::remove_file(root.join(url.trim_start_matches('/'))).unwrap();
        }
    }
}

/// The binary over `v1` with `args`, watching every 100 ms.
fn start(args: &[&str], v1: &Build) -> Rampart {
    let mut all = vec!["--watch-interval", "100ms"];
    all.extend_from_slice(args);
    Rampart::start_with(&all, |root| {
        std::fs::remove_dir_all(root).unwrap();
        std::fs::create_dir_all(root.join("assets")).unwrap();
        deploy(root, v1, None);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn previous_builds_hashed_chunks_stay_servable_after_two_redeploys() {
    let v1 = build(1, "Ab12Cd34", "Qr56St78");
    let v2 = build(2, "Ef56Gh78", "Uv90Wx12");
    let v3 = build(3, "Ij90Kl12", "Yz34Ab56");
    let p = start(&[], &v1);
    let root = p.dir.path().join("www");
    assert_eq!(get(&p, &v1.lazy.0).await.0, 200);

    deploy(&root, &v2, Some(&v1));
    wait_body(&p, "/", &v2.index, Duration::from_secs(10)).await;
    // The old files are gone from disk: the next poll's table has no v1 entry.
    p.wait_line("stay servable", Duration::from_secs(10)).await;
    deploy(&root, &v3, Some(&v2));
    wait_body(&p, "/", &v3.index, Duration::from_secs(10)).await;
    wait_body(&p, &v3.unhashed.0, &v3.unhashed.1, Duration::from_secs(10)).await;
    // Until the build that sees v2's files deleted has run.
    let start = Instant::now();
    while get(&p, &v2.unhashed.0).await.0 != 404 {
        assert!(start.elapsed() < Duration::from_secs(10), "{}", p.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    for old in [&v1.entry, &v1.lazy, &v2.entry, &v2.lazy] {
        let (status, body) = get(&p, &old.0).await;
        assert_eq!(status, 200, "{}:\n{}", old.0, p.log());
        assert_eq!(body, old.1.as_bytes(), "{}", old.0);
    }
    let (status, body) = get(&p, "/index.html").await;
    assert_eq!((status, &body[..]), (200, v3.index.as_bytes()));
    for gone in [&v1.unhashed.0, &v2.unhashed.0] {
        assert_eq!(
            get(&p, gone).await.0,
            404,
            "{gone}: unhashed files are the newest"
        );
    }
    let kept = p.find_line("stay servable").unwrap();
    assert!(kept.contains("retained="), "{kept}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_old_assets_zero_turns_it_off_and_a_short_duration_expires() {
    let v1 = build(1, "Ab12Cd34", "Qr56St78");
    let v2 = build(2, "Ef56Gh78", "Uv90Wx12");
    let off = start(&["--keep-old-assets", "0"], &v1);
    let short = start(&["--keep-old-assets", "2s"], &v1);
    for p in [&off, &short] {
        deploy(&p.dir.path().join("www"), &v2, Some(&v1));
    }
    for p in [&off, &short] {
        wait_body(p, "/", &v2.index, Duration::from_secs(10)).await;
        let start = Instant::now();
        while get(p, &v1.unhashed.0).await.0 != 404 {
            assert!(start.elapsed() < Duration::from_secs(10), "{}", p.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(get(&off, &v1.lazy.0).await.0, 404, "{}", off.log());
    let (status, body) = get(&short, &v1.lazy.0).await;
    assert_eq!((status, &body[..]), (200, v1.lazy.1.as_bytes()));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(get(&short, &v1.lazy.0).await.0, 404, "expired after 2 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_whose_bundle_is_not_copied_yet_waits_for_it() {
    let v1 = build(1, "Ab12Cd34", "Qr56St78");
    let v2 = build(2, "Ef56Gh78", "Uv90Wx12");
    let p = start(&[], &v1);
    let root = p.dir.path().join("www");
    // index.html first, as a plain `cp -r` may do.
    std::fs::write(root.join("index.html"), &v2.index).unwrap();
    let line = p
        .wait_line("redeploy waiting", Duration::from_secs(10))
        .await;
    assert!(line.contains(&v2.entry.0), "{line}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = get(&p, "/").await;
    assert_eq!(
        (status, &body[..]),
        (200, v1.index.as_bytes()),
        "{}",
        p.log()
    );

    std::fs::write(root.join(v2.entry.0.trim_start_matches('/')), &v2.entry.1).unwrap();
    wait_body(&p, "/", &v2.index, Duration::from_secs(5)).await;
    let (status, body) = get(&p, &v2.entry.0).await;
    assert_eq!((status, &body[..]), (200, v2.entry.1.as_bytes()));
    assert!(p.find_line("anyway").is_none(), "{}", p.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_whose_bundle_never_arrives_goes_live_after_the_wait_with_a_warning() {
    let v1 = build(1, "Ab12Cd34", "Qr56St78");
    let v2 = build(2, "Ef56Gh78", "Uv90Wx12");
    let p = start(&[], &v1);
    let written = Instant::now();
    std::fs::write(p.dir.path().join("www/index.html"), &v2.index).unwrap();
    wait_body(&p, "/", &v2.index, Duration::from_secs(20)).await;
    let waited = written.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "swapped after {waited:?}:\n{}",
        p.log()
    );
    let warning = p.find_line("swapping it in anyway").expect("a warning");
    assert!(warning.contains("WARN"), "{warning}");
    assert!(warning.contains(&v2.entry.0), "{warning}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_up_an_incomplete_index_is_served_with_a_warning() {
    let v1 = build(1, "Ab12Cd34", "Qr56St78");
    let p = Rampart::start_with(&[], |root| {
        std::fs::write(root.join("index.html"), &v1.index).unwrap();
    });
    let warning = p
        .find_line("index.html references files not in the root; serving it anyway")
        .unwrap_or_else(|| panic!("{}", p.log()));
    assert!(warning.contains(&v1.entry.0), "{warning}");
    let (status, body) = get(&p, "/").await;
    assert_eq!((status, &body[..]), (200, v1.index.as_bytes()));
}
