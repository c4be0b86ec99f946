//! `loadtest attack` must be able to fail, and must refuse what it is not for: pointed at a
//! "server" that keeps a core busy and answers no one (a shell loop as the process, nothing
//! listening on the port), it exits 1 and says why; pointed at an address off loopback, it
//! refuses to start (exit 2). No TLS server is needed for either.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A CA certificate file for `--ca` (never used for a handshake here).
fn ca_file(dir: &Path) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("CA certificate");
    let path = dir.join("ca.pem");
    std::fs::write(&path, cert.pem()).expect("write the CA");
    path
}

/// A loopback port with nothing listening on it.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address").port()
}

/// Runs `loadtest attack ARGS`, killed after 60 s.
fn attack(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg("attack")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loadtest");
    let started = Instant::now();
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().expect("loadtest output"));
    while !waiter.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "loadtest attack (pid {id}) still running after 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().expect("waiter")
}

/// A process that burns one core until dropped.
struct Busy(Child);

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn attack_fails_a_server_that_keeps_a_core_busy_and_answers_no_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = ca_file(dir.path());
    let busy = Busy(
        Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("start a busy loop"),
    );
    let json = dir.path().join("report.json");
    let url = format!("https://127.0.0.1:{}/", closed_port());
    let pid = busy.0.id().to_string();
    let out = attack(&[
        "--kind",
        "pipeline",
        "--url",
        &url,
        "--ca",
        ca.to_str().expect("UTF-8 path"),
        "--server-pid",
        &pid,
        "--json",
        json.to_str().expect("UTF-8 path"),
    ]);
    drop(busy);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("verdict      FAIL"), "{stdout}");
    assert!(stdout.contains("1-2 s after the attacker left"), "{stdout}");
    assert!(stdout.contains("the legitimate client had"), "{stdout}");
    assert!(stdout.contains("attacker: connect_failed"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).expect("JSON");
    assert_eq!(report["passed"], false);
    assert_eq!(report["kind"], "pipeline");
    assert!(report["cpu"]["after_pct"].as_f64().expect("after_pct") > 20.0);
    assert_eq!(report["legitimate"]["answered"], 0);
}

#[test]
fn attack_refuses_a_server_that_is_not_on_loopback() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = ca_file(dir.path());
    let pid = std::process::id().to_string();
    let out = attack(&[
        "--kind",
        "h2-zero-window",
        "--url",
        "https://192.0.2.1:8443/",
        "--ca",
        ca.to_str().expect("UTF-8 path"),
        "--server-pid",
        &pid,
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("loopback addresses only"), "{stderr}");
    assert!(out.stdout.is_empty());
}
