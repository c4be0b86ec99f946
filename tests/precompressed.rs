//! Precompressed files over real TLS: a large (streamed) file's `.br`/`.gz` sidecars are
//! negotiated like in-memory variants, byte-exact, while ranges keep addressing the identity
//! bytes; a sidecar without its source is served in its coding or answered 406; a sidecar
//! that does not decode to its source is ignored with a finding.

mod support;

use std::path::Path;

use rampart::app::assets::compress;
use rampart::app::encoding::Encoding;
use rampart::app::Finding;
use support::{TestServer, H2};

/// Files above this are streamed from disk in these tests.
const THRESHOLD: u64 = 64 * 1024;

/// `n` bytes that compress (a repeating pattern with noise), like a wasm bundle.
fn bundle(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 7 == 0 {
                x.to_le_bytes()[0]
            } else {
                b"(module (func $f (result i32)))"[i % 30]
            }
        })
        .collect()
}

async fn start(files: impl FnOnce(&Path)) -> TestServer {
    TestServer::start(|c| {
        c.stream_threshold = THRESHOLD;
        files(&c.root);
    })
    .await
}

fn header<'a>(p: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    p.headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_with_br_and_gz_sidecars_is_sent_in_the_coding_the_client_accepts() {
    let data = bundle(400_000, 1);
    let br = compress(Encoding::Brotli, &data).unwrap();
    let gz = compress(Encoding::Gzip, &data).unwrap();
    let server = start(|root| {
        std::fs::write(root.join("app.wasm"), &data).unwrap();
        std::fs::write(root.join("app.wasm.br"), &br).unwrap();
        std::fs::write(root.join("app.wasm.gz"), &gz).unwrap();
    })
    .await;
    let asset = server.site.table().get("/app.wasm").cloned().unwrap();
    assert!(asset.is_streamed());
    assert_eq!(asset.encodings(), [Encoding::Brotli, Encoding::Gzip]);

    let mut etags = Vec::new();
    for (accept, coding, want) in [
        ("gzip, deflate, br", Some("br"), &br),
        ("gzip", Some("gzip"), &gz),
        ("identity", None, &data),
    ] {
        let (p, body) = server
            .request(
                http::Method::GET,
                "/app.wasm",
                &[("accept-encoding", accept)],
            )
            .await;
        assert_eq!(p.status, 200, "{accept}");
        assert_eq!(header(&p, "content-encoding"), coding, "{accept}");
        assert_eq!(header(&p, "content-type"), Some("application/wasm"));
        assert_eq!(
            header(&p, "content-length"),
            Some(want.len().to_string().as_str()),
            "{accept}"
        );
        assert_eq!(header(&p, "vary"), Some("Accept-Encoding"), "{accept}");
        assert!(body[..] == want[..], "{accept}: body differs");
        etags.push(header(&p, "etag").unwrap().to_owned());
    }
    assert!(etags[0].ends_with("-br\""), "{etags:?}");
    assert!(etags[1].ends_with("-gz\""), "{etags:?}");
    assert_eq!(
        etags[0],
        format!("{}-br\"", etags[2].trim_end_matches('"')),
        "one hash, the coding appended"
    );

    // Over HTTP/2 too, and a validator of the br form answers 304 for it.
    let mut h2 = H2::connect(&server).await;
    let (p, body) = h2.request("/app.wasm", &[("accept-encoding", "br")]).await;
    assert_eq!(header(&p, "content-encoding"), Some("br"));
    assert!(body[..] == br[..]);
    let (p, body) = h2
        .request(
            "/app.wasm",
            &[("accept-encoding", "br"), ("if-none-match", &etags[0])],
        )
        .await;
    assert_eq!(p.status, 304);
    assert!(body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_large_precompressed_file_returns_identity_bytes() {
    let data = bundle(300_000, 2);
    let br = compress(Encoding::Brotli, &data).unwrap();
    let server = start(|root| {
        std::fs::write(root.join("app.wasm"), &data).unwrap();
        std::fs::write(root.join("app.wasm.br"), &br).unwrap();
    })
    .await;
    let (p, body) = server
        .request(
            http::Method::GET,
            "/app.wasm",
            &[("accept-encoding", "br"), ("range", "bytes=100000-199999")],
        )
        .await;
    assert_eq!(p.status, 206);
    assert_eq!(header(&p, "content-encoding"), None);
    assert_eq!(
        header(&p, "content-range"),
        Some(format!("bytes 100000-199999/{}", data.len()).as_str())
    );
    assert!(body[..] == data[100_000..200_000]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_without_its_source_is_served_in_its_coding_or_answered_406() {
    // Mostly noise, so that even compressed it is above the stream threshold.
    let mut x = 0x9e37_79b9_u32;
    let big: Vec<u8> = (0..200_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[1]
        })
        .collect();
    let big_br = compress(Encoding::Brotli, &big).unwrap();
    let small = b"export const answer = 42;\n".repeat(40);
    let small_gz = compress(Encoding::Gzip, &small).unwrap();
    let server = start(|root| {
        std::fs::write(root.join("lib.wasm.br"), &big_br).unwrap();
        std::fs::write(root.join("assets/util.js.gz"), &small_gz).unwrap();
    })
    .await;
    assert!(
        big_br.len() as u64 > THRESHOLD,
        "the br-only file is streamed"
    );
    let table = server.site.table();
    assert!(!table.get("/lib.wasm").unwrap().has_identity());

    for (path, accept, coding, want, content_type) in [
        (
            "/lib.wasm",
            "gzip, deflate, br",
            "br",
            &big_br,
            "application/wasm",
        ),
        (
            "/assets/util.js",
            "gzip",
            "gzip",
            &small_gz,
            "text/javascript; charset=utf-8",
        ),
    ] {
        let (p, body) = server
            .request(
                http::Method::GET,
                path,
                &[("accept-encoding", accept), ("range", "bytes=0-9")],
            )
            .await;
        assert_eq!(p.status, 200, "{path}: a range is ignored");
        assert_eq!(header(&p, "content-encoding"), Some(coding), "{path}");
        assert_eq!(header(&p, "content-type"), Some(content_type), "{path}");
        assert!(body[..] == want[..], "{path}: body differs");

        for refused in [&[][..], &[("accept-encoding", "identity")][..]] {
            let (p, body) = server.request(http::Method::GET, path, refused).await;
            assert_eq!(p.status, 406, "{path} {refused:?}");
            assert_eq!(header(&p, "vary"), Some("Accept-Encoding"));
            let text = String::from_utf8_lossy(&body);
            assert!(text.contains("only precompressed"), "{text}");
        }
    }
    // A client that accepts only the other coding is refused too.
    let (p, _) = server
        .request(
            http::Method::GET,
            "/assets/util.js",
            &[("accept-encoding", "br")],
        )
        .await;
    assert_eq!(p.status, 406);
    // The sidecar's own URL still serves the file as it is.
    let (p, body) = server.request(http::Method::GET, "/lib.wasm.br", &[]).await;
    assert_eq!(p.status, 200);
    assert_eq!(header(&p, "content-encoding"), None);
    assert!(body[..] == big_br[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_sidecar_of_a_large_file_is_ignored_with_a_finding() {
    let data = bundle(200_000, 4);
    let stale = compress(Encoding::Brotli, &bundle(200_000, 5)).unwrap();
    let server = start(|root| {
        std::fs::write(root.join("app.wasm"), &data).unwrap();
        std::fs::write(root.join("app.wasm.br"), &stale).unwrap();
    })
    .await;
    let table = server.site.table();
    assert!(
        table.findings().iter().any(|f| matches!(
            f,
            Finding::SidecarMismatch { sidecar } if sidecar.ends_with("app.wasm.br")
        )),
        "{:?}",
        table.findings()
    );
    assert!(table.get("/app.wasm").unwrap().encodings().is_empty());
    let (p, body) = server
        .request(http::Method::GET, "/app.wasm", &[("accept-encoding", "br")])
        .await;
    assert_eq!(p.status, 200);
    assert_eq!(header(&p, "content-encoding"), None);
    assert!(body[..] == data[..]);
}
