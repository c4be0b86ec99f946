//! Start-up errors from the real binary: each is a clear one-line message naming the flag,
//! file or address and the problem, exit status 1, and never a panic.

use std::path::Path;
use std::process::{Command, Output};

fn rampart(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_clean_failure(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!o.status.success(), "must fail: {err}");
    assert!(!err.contains("panicked"), "must not panic: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr should mention {n:?}: {err}");
    }
}

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("www")).unwrap();
    std::fs::write(
        dir.path().join("www/index.html"),
        "<!doctype html><title>t</title>",
    )
    .unwrap();
    dir
}

#[test]
fn a_missing_root_is_named_in_the_error() {
    let dir = site();
    let o = rampart(&["--root", "nope", "--listen", "127.0.0.1:0"], dir.path());
    assert_clean_failure(&o, &["--root nope", "no such directory"]);
}

#[test]
fn a_root_without_index_html_is_refused() {
    let dir = site();
    std::fs::remove_file(dir.path().join("www/index.html")).unwrap();
    let o = rampart(&["--root", "www", "--listen", "127.0.0.1:0"], dir.path());
    assert_clean_failure(&o, &["--root www", "index.html"]);
}

#[test]
fn bad_flag_values_name_the_flag_and_the_value() {
    let dir = site();
    for (args, needles) in [
        (
            vec!["--listen", "\"0.0.0.0:443\""],
            vec!["--listen", "stray quotes", "0.0.0.0:443"],
        ),
        (
            vec!["--listen", "localhost"],
            vec!["--listen", "localhost", "IP:PORT"],
        ),
        (vec!["--workers", "0"], vec!["--workers", "\"0\""]),
        (vec!["--idle-timeout", "ten"], vec!["--idle-timeout", "ten"]),
        (
            vec!["--max-header-size", "100"],
            vec!["--max-header-size", "100"],
        ),
        (vec!["--log-level", "rampart=[[["], vec!["--log-level"]),
        (vec!["--plaintext", "maybe"], vec!["--plaintext", "maybe"]),
        (vec!["--cert", "c.pem"], vec!["--key"]),
    ] {
        let mut all = vec!["--root", "www"];
        all.extend(args.iter());
        let o = rampart(&all, dir.path());
        assert_clean_failure(&o, &needles);
    }
}

#[test]
fn unreadable_or_mismatched_certificates_are_refused_with_the_file_named() {
    let dir = site();
    let certs = dir.path().join("certs");
    // Two development CAs: a leaf from one and the key from the other do not match.
    let a = rampart::tls::devcert::ensure(&certs.join("a")).unwrap();
    let b = rampart::tls::devcert::ensure(&certs.join("b")).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let o = rampart(
        &[
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            &s(&a.cert),
            "--key",
            &s(&b.key),
        ],
        dir.path(),
    );
    assert_clean_failure(&o, &["does not match", &s(&a.cert)]);
    let o = rampart(
        &[
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "missing.pem",
            "--key",
            &s(&a.key),
        ],
        dir.path(),
    );
    assert_clean_failure(&o, &["--cert missing.pem: cannot read"]);
    std::fs::write(dir.path().join("junk.pem"), "not a pem").unwrap();
    let o = rampart(
        &[
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "junk.pem",
            "--key",
            &s(&a.key),
        ],
        dir.path(),
    );
    assert_clean_failure(&o, &["junk.pem", "no CERTIFICATE"]);
    let o = rampart(
        &[
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            &s(&a.cert),
            "--key",
            "junk.pem",
        ],
        dir.path(),
    );
    assert_clean_failure(&o, &["--key junk.pem: no usable private key"]);
}

#[test]
fn a_port_in_use_is_reported_with_the_address() {
    let dir = site();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = rampart(
        &[
            "--root",
            "www",
            "--listen",
            &addr,
            "--dev-cert-dir",
            "certs",
        ],
        dir.path(),
    );
    assert_clean_failure(
        &o,
        &[&format!("cannot listen on {addr} (--listen)"), "in use"],
    );
}
