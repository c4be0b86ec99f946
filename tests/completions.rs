//! `rampart completions SHELL` and `rampart man`: generated from the clap definitions, so
//! they list the real flags and subcommands; the bash script is valid bash.

use std::process::{Command, Stdio};

fn rampart(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rampart");
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn completion_scripts_name_the_flags_and_subcommands_and_bash_parses_its_own() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = rampart(&["completions", shell]);
        for word in [
            "listen",
            "shutdown-timeout",
            "check",
            "ticket-key",
            "hash-password",
        ] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let bash = rampart(&["completions", "bash"]);
    let mut check = Command::new("bash")
        .arg("-n")
        .stdin(Stdio::piped())
        .spawn()
        .expect("bash");
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), bash.as_bytes()).unwrap();
    assert!(
        check.wait().unwrap().success(),
        "bash -n refused the script"
    );
}

#[test]
fn the_man_page_is_roff_with_every_flag() {
    let page = rampart(&["man"]);
    assert!(
        page.contains(".TH rampart 1"),
        "{}",
        &page[..200.min(page.len())]
    );
    for flag in [
        "\\-\\-listen",
        "\\-\\-root",
        "\\-\\-shutdown\\-timeout",
        "\\-\\-config",
    ] {
        assert!(page.contains(flag), "no {flag} in the man page");
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_list() {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bash") && err.contains("zsh"), "{err}");
}
