//! Certificate reload on SIGHUP, against the real binary: new connections get the new
//! certificate, an established connection keeps working, a stored session still resumes,
//! and a broken pair is refused with a clear log while the current certificate stays.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use support::{tls_connect, H1};

struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    fn start(args: &[&str], cwd: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(args)
            .current_dir(cwd)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&log);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Self { child, log }
    }

    fn wait_for(&self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            let log = self.log.lock().unwrap().clone();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_owned();
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no {needle:?} in log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

fn both_cas(a: &Path, b: &Path, out: &Path) {
    let mut pem = std::fs::read(a).unwrap();
    pem.extend(std::fs::read(b).unwrap());
    std::fs::write(out, pem).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_in_a_valid_certificate_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::www(), &dir.path().join("www"));
    let a = rampart::tls::devcert::ensure(&dir.path().join("a")).unwrap();
    let b = rampart::tls::devcert::ensure(&dir.path().join("b")).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&a.cert, &cert).unwrap();
    std::fs::copy(&a.key, &key).unwrap();
    let cas = dir.path().join("cas.pem");
    both_cas(&a.ca, &b.ca, &cas);

    let p = Proc::start(
        &[
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "cert.pem",
            "--key",
            "key.pem",
            "--watch-interval",
            "0",
        ],
        dir.path(),
    );
    let line = p.wait_for("listening");
    let port: u16 = line
        .rsplit("127.0.0.1:")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

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
    p.wait_for("certificate reloaded");

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
    let refusal = p.wait_for("certificate reload refused");
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
    let dir = tempfile::tempdir().unwrap();
    support::copy_tree(&support::www(), &dir.path().join("www"));
    let a = rampart::tls::devcert::ensure(&dir.path().join("a")).unwrap();
    let b = rampart::tls::devcert::ensure(&dir.path().join("b")).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&a.cert, &cert).unwrap();
    std::fs::copy(&a.key, &key).unwrap();
    let cas = dir.path().join("cas.pem");
    both_cas(&a.ca, &b.ca, &cas);
    let p = Proc::start(
        &[
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "cert.pem",
            "--key",
            "key.pem",
        ],
        dir.path(),
    );
    let line = p.wait_for("listening");
    let port: u16 = line
        .rsplit("127.0.0.1:")
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    // Write the key first, then the certificate, as a renewal tool might.
    std::fs::copy(&b.key, &key).unwrap();
    std::fs::copy(&b.cert, &cert).unwrap();
    p.wait_for("certificate reloaded");
    let tls = tls_connect(addr, support::client_config(&cas, &[], None), "localhost")
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.peer_certificates().unwrap()[0].to_vec(),
        leaf_der(&b.cert)
    );
}
