//! Certificate reload on SIGHUP, against the real binary: new connections get the new
//! certificate, an established connection keeps working, a stored session still resumes,
//! and a broken pair is refused with a clear log while the current certificate stays. And
//! the redeploy watcher: what it finds wrong with the root is logged once per change of the
//! tree, not once per poll. And one SIGHUP reaches every reload target: the certificate and
//! the root (rescanned even with watching off).

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use support::binary::Rampart;
use support::{tls_connect, H1};

/// Two development CAs (a, b), the served pair at `cert.pem`/`key.pem` (a copy of a's), a
/// client trust file holding both CAs, and the binary started on that pair.
struct Fixture {
    a: rampart::tls::devcert::DevCert,
    b: rampart::tls::devcert::DevCert,
    cert: PathBuf,
    key: PathBuf,
    cas: PathBuf,
    server: Rampart,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let a = rampart::tls::devcert::ensure(&dir.path().join("a")).unwrap();
    let b = rampart::tls::devcert::ensure(&dir.path().join("b")).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&a.cert, &cert).unwrap();
    std::fs::copy(&a.key, &key).unwrap();
    let cas = dir.path().join("cas.pem");
    let mut pem = std::fs::read(&a.ca).unwrap();
    pem.extend(std::fs::read(&b.ca).unwrap());
    std::fs::write(&cas, pem).unwrap();
    let server = Rampart::start(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    Fixture {
        a,
        b,
        cert,
        key,
        cas,
        server,
        _dir: dir,
    }
}

fn leaf_der(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_in_a_valid_certificate_and_refuses_a_broken_one() {
    let Fixture {
        a,
        b,
        cert,
        key,
        cas,
        server: p,
        _dir,
    } = fixture();
    let addr = p.addr;

    // TLS 1.3 client with a session store; one connection stays open across the reload.
    let client = support::client_config(&cas, &[b"http/1.1"], Some(&[&rustls::version::TLS13]));
    let first = tls_connect(addr, Arc::clone(&client), "localhost")
        .await
        .unwrap();
    let presented = first.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    assert_eq!(presented, leaf_der(&a.cert));
    let mut established = H1::over(first, addr).await;
    assert_eq!(
        established
            .request(http::Method::GET, "/", &[])
            .await
            .0
            .status,
        200
    );

    // Replace the pair on disk and SIGHUP.
    std::fs::copy(&b.cert, &cert).unwrap();
    std::fs::copy(&b.key, &key).unwrap();
    p.signal("-HUP");
    p.wait_line("certificate reloaded", Duration::from_secs(10))
        .await;

    let fresh_client = support::client_config(&cas, &[b"http/1.1"], None);
    let fresh = tls_connect(addr, fresh_client, "localhost").await.unwrap();
    assert_eq!(
        fresh.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        leaf_der(&b.cert),
        "new connections get the new certificate"
    );
    let (parts, _) = established
        .request(http::Method::GET, "/robots.txt", &[])
        .await;
    assert_eq!(
        parts.status, 200,
        "the established connection keeps working"
    );

    let resumed = tls_connect(addr, Arc::clone(&client), "localhost")
        .await
        .unwrap();
    assert_eq!(
        resumed.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "a stored session still resumes"
    );

    // A broken pair (B's certificate with A's key) is refused; B stays in service.
    std::fs::copy(&a.key, &key).unwrap();
    p.signal("-HUP");
    let refusal = p
        .wait_line("certificate reload refused", Duration::from_secs(10))
        .await;
    assert!(refusal.contains("does not match"), "{refusal}");
    let after = tls_connect(
        addr,
        support::client_config(&cas, &[b"http/1.1"], None),
        "localhost",
    )
    .await
    .unwrap();
    assert_eq!(
        after.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        leaf_der(&b.cert)
    );
    let mut h1 = H1::over(after, addr).await;
    assert_eq!(h1.request(http::Method::GET, "/", &[]).await.0.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_file_is_picked_up_without_a_signal() {
    let Fixture {
        a: _,
        b,
        cert,
        key,
        cas,
        server: p,
        _dir,
    } = fixture();
    let addr = p.addr;
    // Write the key first, then the certificate, as a renewal tool might.
    std::fs::copy(&b.key, &key).unwrap();
    std::fs::copy(&b.cert, &cert).unwrap();
    p.wait_line("certificate reloaded", Duration::from_secs(10))
        .await;
    let tls = tls_connect(addr, support::client_config(&cas, &[], None), "localhost")
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        leaf_der(&b.cert)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_warnings_are_logged_once_per_change_of_the_tree_not_on_every_poll() {
    let p = Rampart::start_with(&["--watch-interval", "100ms"], |root| {
        let outside = root.parent().unwrap().join("outside.txt");
        std::fs::write(&outside, "outside the root: never served\n").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("leak.txt")).unwrap();
        // A text asset worth compressing, with a sidecar that is not its gzip.
        std::fs::write(root.join("app.js"), "export const x = 1;\n".repeat(40)).unwrap();
        std::fs::write(root.join("app.js.gz"), "not gzip at all").unwrap();
    });
    let root = p.dir.path().join("www");
    let symlink = "skipping symlink that leaves the root";
    let sidecar = "precompressed file does not match its source";
    let count = |needle: &str| p.log().lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count(symlink), 1, "the start-up build:\n{}", p.log());
    assert_eq!(count(sidecar), 1, "the start-up build:\n{}", p.log());

    // About 20 polls of an unchanged tree: no warning, and no rebuild.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(symlink), 1, "a poll logged a warning:\n{}", p.log());
    assert_eq!(count(sidecar), 1, "{}", p.log());
    assert!(p.find_line("redeploy picked up").is_none(), "{}", p.log());

    // A real change: the rebuild reports its table's findings, all of them, once.
    std::fs::write(root.join("new.txt"), "a new deploy\n").unwrap();
    p.wait_line("redeploy picked up", Duration::from_secs(10))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(symlink), 2, "{}", p.log());
    assert_eq!(count(sidecar), 2, "{}", p.log());
    assert_eq!(count("redeploy picked up"), 1, "{}", p.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sighup_reloads_the_certificate_and_rescans_the_root_with_watching_off() {
    // The harness starts the binary with --watch-interval 0: only SIGHUP can rescan.
    let p = Rampart::start(&[]);
    let root = p.dir.path().join("www");
    std::fs::write(root.join("after-hup.txt"), "deployed before the signal\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut h1 = H1::over(p.connect(&[b"http/1.1"]).await, p.addr).await;
    assert_eq!(
        h1.request(http::Method::GET, "/after-hup.txt", &[])
            .await
            .0
            .status,
        404,
        "no rescan before the signal"
    );
    p.signal("-HUP");
    p.wait_line("SIGHUP: asset table rebuilt", Duration::from_secs(10))
        .await;
    let reloaded = p
        .wait_line("certificate reloaded", Duration::from_secs(10))
        .await;
    assert!(reloaded.contains("SIGHUP"), "{reloaded}");
    let mut h1 = H1::over(p.connect(&[b"http/1.1"]).await, p.addr).await;
    assert_eq!(
        h1.request(http::Method::GET, "/after-hup.txt", &[])
            .await
            .0
            .status,
        200
    );
    assert_eq!(
        p.log().matches("cannot listen for SIGHUP").count(),
        0,
        "{}",
        p.log()
    );
}
