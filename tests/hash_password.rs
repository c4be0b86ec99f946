//! `rampart hash-password`: the password on standard input, the bcrypt hash (and nothing
//! else) on standard output, refusals with a message and exit status 1.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn hash_password(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("hash-password")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rampart");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn the_printed_hash_verifies_the_password_read_on_stdin() {
    let out = hash_password(&["--cost", "4"], b"correct horse battery\n");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let hash = stdout.strip_suffix('\n').expect("one line");
    assert!(!hash.contains('\n'), "only the hash: {stdout:?}");
    assert!(hash.starts_with("$2b$04$"), "{hash}");
    assert!(bcrypt::verify("correct horse battery", hash).unwrap());
    // The newline was not part of the password.
    assert!(!bcrypt::verify("correct horse battery\n", hash).unwrap());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_default_cost_is_12() {
    let out = hash_password(&[], b"pw");
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$2b$12$"), "{hash}");
    assert!(bcrypt::verify("pw", hash.trim_end()).unwrap());
}

#[test]
fn an_empty_password_is_refused() {
    for input in [&b""[..], b"\n", b"\r\n"] {
        let out = hash_password(&["--cost", "4"], input);
        assert_eq!(out.status.code(), Some(1), "{input:?}: {out:?}");
        assert!(out.stdout.is_empty());
        assert!(String::from_utf8_lossy(&out.stderr).contains("empty password"));
    }
}

#[test]
fn a_cost_outside_4_to_31_is_refused() {
    for cost in ["3", "32", "twelve"] {
        let out = hash_password(&["--cost", cost], b"pw\n");
        assert!(!out.status.success(), "--cost {cost}");
        assert!(out.stdout.is_empty());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--cost"),
            "{out:?}"
        );
    }
}
