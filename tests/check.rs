//! `rampart check` and the start-up checks of `serve`, through the real binary: each bad
//! input is an error naming the setting or file and the reason (exit 1), warnings keep exit
//! 0, the config file obeys flags > RAMPART_* > file > defaults, and `serve` refuses to start
//! on the same errors with the same message. Certificates are made here with rcgen.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::OffsetDateTime;

/// Runs the binary in `cwd` with only the given RAMPART_* variables; killed after 30 s (a
/// `serve` that failed to refuse would otherwise run forever).
fn rampart(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rampart"));
    cmd.args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars() {
        if k.starts_with("RAMPART_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("binary runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("rampart {args:?} still running after 30 s:\n{}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn assert_fails(o: &Output, needles: &[&str]) -> String {
    let all = text(o);
    eprintln!("=====\n{all}");
    assert_eq!(o.status.code(), Some(1), "must exit 1:\n{all}");
    assert!(!all.contains("panicked"), "must not panic:\n{all}");
    for n in needles {
        assert!(all.contains(n), "output should mention {n:?}:\n{all}");
    }
    all
}

fn assert_passes(o: &Output, needles: &[&str]) -> String {
    let all = text(o);
    eprintln!("=====\n{all}");
    assert_eq!(o.status.code(), Some(0), "must exit 0:\n{all}");
    for n in needles {
        assert!(all.contains(n), "output should mention {n:?}:\n{all}");
    }
    all
}

/// The report line (or error line) holding `needle`.
fn line_with<'a>(all: &'a str, needle: &str) -> &'a str {
    all.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?}:\n{all}"))
        .trim()
}

/// A directory holding www/index.html.
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

fn days(n: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::days(n)
}

/// A certificate authority: its parameters and key sign children; `pem` is its certificate.
struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl Ca {
    fn root(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let pem = params.self_signed(&key).unwrap().pem();
        Self { params, key, pem }
    }

    fn intermediate(&self, name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(name);
        let pem = params.signed_by(&key, &self.issuer()).unwrap().pem();
        Self { params, key, pem }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::from_params(&self.params, &self.key)
    }

    /// A leaf for localhost and 127.0.0.1 valid from `from` to `to` days from now: (cert
    /// PEM, key PEM).
    fn leaf(&self, from: i64, to: i64) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "localhost");
        params.distinguished_name = dn;
        params.not_before = days(from);
        params.not_after = days(to);
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = days(-10);
    params.not_after = days(3650);
    params
}

/// Writes cert.pem (the given PEM blocks, in order) and key.pem into `dir`.
fn write_pair(dir: &Path, chain: &[&str], key: &str) {
    std::fs::write(dir.join("cert.pem"), chain.concat()).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

/// `check` (or `serve`) with cert.pem/key.pem of `dir`, on a free port, and `extra` flags.
fn with_pair(cmd: &str, dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        cmd,
        "--root",
        "www",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        "cert.pem",
        "--key",
        "key.pem",
    ];
    args.extend(extra);
    rampart(&args, dir, &[])
}

/// A leaf signed by an intermediate, in a site directory.
fn good_chain() -> (String, String, String) {
    let root = Ca::root("Test Root");
    let inter = root.intermediate("Test Intermediate");
    let (leaf, key) = inter.leaf(-1, 90);
    (leaf, inter.pem, key)
}

#[test]
fn a_good_configuration_from_flags_passes_with_every_check_reported() {
    let dir = site();
    let (leaf, inter, key) = good_chain();
    write_pair(dir.path(), &[&leaf, &inter], &key);
    let o = with_pair("check", dir.path(), &["--server-name", "localhost"]);
    let all = assert_passes(
        &o,
        &[
            "ok     --root www",
            "--key key.pem: matches the leaf certificate",
            "chain of 2 certificates in order, signatures verify",
            "--server-name localhost: covered",
            "--listen 127.0.0.1:0: free",
            "0 errors: rampart serve would start",
        ],
    );
    assert!(!all.contains("warn "), "no warnings expected:\n{all}");
}

#[test]
fn a_good_configuration_from_a_file_passes() {
    let dir = site();
    let (leaf, inter, key) = good_chain();
    write_pair(dir.path(), &[&leaf, &inter], &key);
    std::fs::write(
        dir.path().join("rampart.toml"),
        "root = \"www\"\nlisten = [\"127.0.0.1:0\"]\ncert = \"cert.pem\"\nkey = \"key.pem\"\n\
         server-name = [\"localhost\"]\nmax-connections = 20000\nhandshake-timeout = \"5s\"\n\
         spa = false\n",
    )
    .unwrap();
    let o = rampart(&["check", "--config", "rampart.toml"], dir.path(), &[]);
    assert_passes(
        &o,
        &[
            "--server-name localhost: covered",
            "rampart serve would start",
        ],
    );
}

#[test]
fn the_example_file_passes_from_the_repository_root() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = ["check", "--config", "examples/rampart.toml"];
    let o = rampart(&args, repo, &[]);
    // The example listens on 127.0.0.1:8443; if something else holds that port on this
    // machine, only that probe may fail, and everything else must pass.
    if text(&o).contains("--listen 127.0.0.1:8443: cannot listen") {
        let o = rampart(&args, repo, &[("RAMPART_LISTEN", "127.0.0.1:0")]);
        assert_passes(&o, &["--root www", "rampart serve would start"]);
    } else {
        assert_passes(&o, &["--root www", "--listen 127.0.0.1:8443: free"]);
    }
}

#[test]
fn a_missing_root_is_an_error_naming_it() {
    let dir = site();
    let o = rampart(
        &["check", "--root", "nope", "--listen", "127.0.0.1:0"],
        dir.path(),
        &[],
    );
    assert_fails(
        &o,
        &[
            "error  --root nope: no such directory",
            "would refuse to start",
        ],
    );
}

#[test]
fn a_root_without_index_html_is_an_error() {
    let dir = site();
    std::fs::remove_file(dir.path().join("www/index.html")).unwrap();
    let o = rampart(
        &["check", "--root", "www", "--listen", "127.0.0.1:0"],
        dir.path(),
        &[],
    );
    assert_fails(&o, &["error  --root www: has no index.html"]);
}

#[test]
fn an_unparsable_certificate_is_an_error_naming_the_file() {
    let dir = site();
    let (_, _, key) = good_chain();
    write_pair(dir.path(), &["not a certificate\n"], &key);
    let o = with_pair("check", dir.path(), &[]);
    assert_fails(&o, &["error  --cert cert.pem: no CERTIFICATE block found"]);
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_an_error() {
    let dir = site();
    let ca = Ca::root("Test CA");
    let (leaf, _) = ca.leaf(-1, 90);
    let (_, other_key) = ca.leaf(-1, 90);
    write_pair(dir.path(), &[&leaf], &other_key);
    let o = with_pair("check", dir.path(), &[]);
    assert_fails(
        &o,
        &["error  --key key.pem: does not match the first certificate in cert.pem"],
    );
}

#[test]
fn a_chain_with_the_intermediate_first_is_out_of_order() {
    let dir = site();
    let (leaf, inter, key) = good_chain();
    write_pair(dir.path(), &[&inter, &leaf], &key);
    let o = with_pair("check", dir.path(), &[]);
    assert_fails(
        &o,
        &[
            "error  --cert cert.pem: chain out of order: certificate 1 (CN=Test Intermediate) \
             is issued by CN=Test Root, not by certificate 2 (CN=localhost); certificate 2 is \
             issued by certificate 1: the two are swapped; the file must hold the leaf first",
        ],
    );
}

#[test]
fn a_chain_whose_issuer_has_the_right_name_but_another_key_does_not_verify() {
    let dir = site();
    let signer = Ca::root("Test CA");
    let impostor = Ca::root("Test CA");
    let (leaf, key) = signer.leaf(-1, 90);
    write_pair(dir.path(), &[&leaf, &impostor.pem], &key);
    let o = with_pair("check", dir.path(), &[]);
    assert_fails(
        &o,
        &[
            "error  --cert cert.pem: certificate 1",
            "the signature does not verify",
        ],
    );
}

#[test]
fn an_expired_certificate_is_an_error_with_its_date() {
    let dir = site();
    let (leaf, key) = Ca::root("Test CA").leaf(-30, -1);
    write_pair(dir.path(), &[&leaf], &key);
    let o = with_pair("check", dir.path(), &[]);
    assert_fails(
        &o,
        &["error  --cert cert.pem: the leaf certificate (CN=localhost) expired on"],
    );
}

#[test]
fn a_not_yet_valid_certificate_is_an_error_with_its_date() {
    let dir = site();
    let (leaf, key) = Ca::root("Test CA").leaf(2, 60);
    write_pair(dir.path(), &[&leaf], &key);
    let o = with_pair("check", dir.path(), &[]);
    assert_fails(
        &o,
        &["error  --cert cert.pem: the leaf certificate (CN=localhost) is not valid before"],
    );
}

#[test]
fn a_certificate_expiring_in_ten_days_is_a_warning_that_still_passes() {
    let dir = site();
    let (leaf, key) = Ca::root("Test CA").leaf(-1, 10);
    write_pair(dir.path(), &[&leaf], &key);
    let o = with_pair("check", dir.path(), &[]);
    let all = assert_passes(&o, &["1 warning"]);
    let warn = line_with(&all, "expires on");
    assert!(warn.starts_with("warn   --cert cert.pem"), "{warn}");
    assert!(
        warn.contains("(9 days left)") || warn.contains("(10 days left)"),
        "{warn}"
    );
}

#[test]
fn a_server_name_the_certificate_does_not_cover_is_an_error() {
    let dir = site();
    let (leaf, key) = Ca::root("Test CA").leaf(-1, 90);
    write_pair(dir.path(), &[&leaf], &key);
    let o = with_pair("check", dir.path(), &["--server-name", "example.com"]);
    assert_fails(
        &o,
        &["error  --server-name example.com: not covered by the certificate (it covers localhost, 127.0.0.1)"],
    );
}

#[test]
fn a_listen_ip_the_certificate_does_not_cover_is_a_warning_that_still_passes() {
    let dir = site();
    let o = rampart(
        &[
            "check",
            "--root",
            "www",
            "--listen",
            "127.0.0.2:0",
            "--dev-cert-dir",
            "certs",
        ],
        dir.path(),
        &[],
    );
    let all = assert_passes(&o, &["development certificate", "will be created"]);
    let warn = line_with(&all, "does not cover 127.0.0.2");
    assert!(warn.starts_with("warn   --listen 127.0.0.2:0"), "{warn}");
    assert!(
        !dir.path().join("certs").exists(),
        "check must not create the development certificate"
    );
}

#[test]
fn a_listen_address_in_use_is_an_error() {
    let dir = site();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let o = rampart(
        &[
            "check",
            "--root",
            "www",
            "--listen",
            &addr,
            "--dev-cert-dir",
            "certs",
        ],
        dir.path(),
        &[],
    );
    assert_fails(
        &o,
        &[&format!("error  --listen {addr}: cannot listen"), "in use"],
    );
}

#[test]
fn an_http3_port_in_use_on_udp_is_an_error_and_no_http3_skips_it() {
    let dir = site();
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = [
        "check",
        "--root",
        "www",
        "--listen",
        &addr,
        "--dev-cert-dir",
        "certs",
    ];
    let o = rampart(&args, dir.path(), &[]);
    assert_fails(
        &o,
        &[
            &format!("error  --listen {addr} (UDP, HTTP/3): cannot bind"),
            "--no-http3",
        ],
    );
    let mut off = args.to_vec();
    off.push("--no-http3");
    let o = rampart(&off, dir.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("UDP"), "{}", text(&o));
    // What the kernel offers for TLS, whatever this machine's kernel is.
    assert!(
        text(&o)
            .lines()
            .any(|l| l.starts_with("ok     kernel TLS: ")
                && (l.contains("has TLS loaded")
                    || l.contains("as a module")
                    || l.contains("has no TLS"))
                && l.ends_with("rampart encrypts every connection in user space (rustls)")),
        "{}",
        text(&o)
    );
    // --http3-listen moves HTTP/3 off the --listen port.
    let mut moved = args.to_vec();
    moved.extend(["--http3-listen", "127.0.0.1:0"]);
    let o = rampart(&moved, dir.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("--http3-listen 127.0.0.1:0 (UDP, HTTP/3): available"),
        "{}",
        text(&o)
    );
}

#[test]
fn two_colliding_listeners_are_an_error() {
    let dir = site();
    let o = rampart(
        &[
            "check",
            "--root",
            "www",
            "--listen",
            "0.0.0.0:18443",
            "--metrics-listen",
            "127.0.0.1:18443",
            "--dev-cert-dir",
            "certs",
        ],
        dir.path(),
        &[],
    );
    assert_fails(
        &o,
        &["error  --metrics-listen 127.0.0.1:18443: collides with --listen 0.0.0.0:18443"],
    );
    let o = rampart(
        &[
            "check",
            "--listen",
            "127.0.0.1:18443",
            "--http-listen",
            "127.0.0.1:18443",
        ],
        dir.path(),
        &[],
    );
    assert_fails(
        &o,
        &["error  --http-listen 127.0.0.1:18443: the same address is already given to --listen"],
    );
}

#[test]
fn a_stray_quoted_flag_value_names_the_flag_and_shows_the_value() {
    let dir = site();
    let o = rampart(&["check", "--listen", "\"127.0.0.1:0\""], dir.path(), &[]);
    assert_fails(
        &o,
        &[
            "--listen",
            r#""\"127.0.0.1:0\"" is wrapped in stray quotes"#,
        ],
    );
}

#[test]
fn a_stray_quoted_file_value_names_the_file_line_and_key() {
    let dir = site();
    std::fs::write(
        dir.path().join("rampart.toml"),
        "root = \"www\"\nlisten = [\"\\\"127.0.0.1:0\\\"\"]\n",
    )
    .unwrap();
    let o = rampart(&["check", "--config", "rampart.toml"], dir.path(), &[]);
    assert_fails(
        &o,
        &[r#"rampart.toml:2: listen: "\"127.0.0.1:0\"" is wrapped in stray quotes"#],
    );
}

#[test]
fn an_unknown_file_key_names_the_file_line_and_key() {
    let dir = site();
    std::fs::write(
        dir.path().join("rampart.toml"),
        "root = \"www\"\nlisen = [\"127.0.0.1:0\"]\n",
    )
    .unwrap();
    let o = rampart(&["check", "--config", "rampart.toml"], dir.path(), &[]);
    assert_fails(
        &o,
        &[
            "rampart.toml:2: lisen: unknown key",
            "did you mean `listen`?",
        ],
    );
}

#[test]
fn a_bad_file_value_names_the_file_line_and_key() {
    let dir = site();
    std::fs::write(
        dir.path().join("rampart.toml"),
        "# limits\nroot = \"www\"\nmax-connections = \"lots\"\nidle-timeout = \"ten\"\n",
    )
    .unwrap();
    let o = rampart(&["check", "--config", "rampart.toml"], dir.path(), &[]);
    assert_fails(
        &o,
        &[
            "rampart.toml:3: max-connections: \"lots\"",
            "rampart.toml:4: idle-timeout: \"ten\" is not a duration",
        ],
    );
}

#[test]
fn flags_beat_environment_beats_file_beats_defaults() {
    let dir = site();
    std::fs::write(
        dir.path().join("rampart.toml"),
        "listen = [\"127.0.0.2:0\"]\n",
    )
    .unwrap();
    let listen = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["check", "--root", "www", "--dev-cert-dir", "certs"];
        all.extend(args);
        let all = text(&rampart(&all, dir.path(), env));
        let found: Vec<String> = all
            .lines()
            .filter(|l| l.contains(": free") || l.contains(": cannot listen"))
            .map(|l| {
                l.split_whitespace()
                    .nth(2)
                    .unwrap_or_default()
                    .trim_end_matches(':')
                    .to_owned()
            })
            .collect();
        found
    };
    let config = ["--config", "rampart.toml"];
    assert_eq!(listen(&[], &[]), ["127.0.0.1:8443"], "built-in default");
    assert_eq!(listen(&config, &[]), ["127.0.0.2:0"], "file over default");
    let env = [("RAMPART_LISTEN", "127.0.0.3:0")];
    assert_eq!(
        listen(&config, &env),
        ["127.0.0.3:0"],
        "environment over file"
    );
    let flag = ["--config", "rampart.toml", "--listen", "127.0.0.4:0"];
    assert_eq!(
        listen(&flag, &env),
        ["127.0.0.4:0"],
        "flag over environment"
    );
    // The file may come from the environment too.
    let env = [("RAMPART_CONFIG", "rampart.toml")];
    assert_eq!(listen(&[], &env), ["127.0.0.2:0"], "RAMPART_CONFIG");
}

/// `serve` (the default command) refuses with the line `check` prints.
fn assert_serve_refuses_like_check(dir: &Path, args: &[&str], needle: &str) {
    let mut check = vec!["check"];
    check.extend(args);
    let checked = assert_fails(&rampart(&check, dir, &[]), &[needle]);
    let served = assert_fails(&rampart(args, dir, &[]), &[needle]);
    let line = line_with(&checked, needle);
    assert!(
        served.contains(line),
        "serve should say {line:?}:\n{served}"
    );
}

#[test]
fn serve_refuses_to_start_on_the_errors_check_reports() {
    let dir = site();
    let pair = [
        "--root",
        "www",
        "--listen",
        "127.0.0.1:0",
        "--cert",
        "cert.pem",
        "--key",
        "key.pem",
    ];

    let (leaf, inter, key) = good_chain();
    write_pair(dir.path(), &[&inter, &leaf], &key);
    assert_serve_refuses_like_check(dir.path(), &pair, "chain out of order");

    let (leaf, key) = Ca::root("Test CA").leaf(-30, -1);
    write_pair(dir.path(), &[&leaf], &key);
    assert_serve_refuses_like_check(dir.path(), &pair, "expired on");

    let (leaf, key) = Ca::root("Test CA").leaf(-1, 90);
    write_pair(dir.path(), &[&leaf], &key);
    let mut named = pair.to_vec();
    named.extend(["--server-name", "example.com"]);
    assert_serve_refuses_like_check(dir.path(), &named, "--server-name example.com: not covered");

    std::fs::write(
        dir.path().join("rampart.toml"),
        "root = \"www\"\nlisen = [\"127.0.0.1:0\"]\n",
    )
    .unwrap();
    assert_serve_refuses_like_check(
        dir.path(),
        &["--config", "rampart.toml"],
        "rampart.toml:2: lisen: unknown key",
    );
}

#[test]
fn a_missing_empty_or_garbled_ticket_key_file_is_an_error() {
    let dir = site();
    let args = |file: &'static str| {
        [
            "check",
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--dev-cert-dir",
            "certs",
            "--ticket-key-file",
            file,
        ]
    };
    let o = rampart(&args("missing.keys"), dir.path(), &[]);
    assert_fails(
        &o,
        &["error  --ticket-key-file missing.keys: ticket key file missing.keys: No such file"],
    );
    std::fs::write(dir.path().join("empty.keys"), "# nothing yet\n").unwrap();
    let o = rampart(&args("empty.keys"), dir.path(), &[]);
    assert_fails(
        &o,
        &["error  --ticket-key-file empty.keys: ticket key file empty.keys"],
    );
    std::fs::write(dir.path().join("bad.keys"), "# a comment\nnot-hex\n").unwrap();
    let o = rampart(&args("bad.keys"), dir.path(), &[]);
    assert_fails(
        &o,
        &["error  --ticket-key-file bad.keys: ticket key file bad.keys: line 2: expected 64 hex characters"],
    );
    let o = rampart(&["ticket-key", "new", "good.keys"], dir.path(), &[]);
    assert!(o.status.success(), "{o:?}");
    let o = rampart(&args("good.keys"), dir.path(), &[]);
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("ok     --ticket-key-file good.keys: 1 key(s); new tickets under key"),
        "{out}"
    );
}

#[test]
fn acme_settings_are_checked_and_exclude_certificate_files() {
    let dir = site();
    // --acme and --cert/--key: one source of certificates, named in the error.
    let (leaf, inter, key) = good_chain();
    write_pair(dir.path(), &[&leaf, &inter], &key);
    let o = with_pair("check", dir.path(), &["--acme", "example.com"]);
    assert_fails(&o, &["--cert", "conflicts with --acme example.com"]);
    // Names a CA cannot validate, http-01 without its listener, a plain-http directory.
    let o = rampart(
        &[
            "check",
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--acme",
            "*.example.com",
            "--acme",
            "localhost",
            "--acme-challenge",
            "http-01",
            "--acme-directory",
            "http://ca.internal/directory",
        ],
        dir.path(),
        &[],
    );
    assert_fails(
        &o,
        &[
            "error  --acme *.example.com: is a wildcard: a CA validates wildcards only by DNS-01",
            "error  --acme localhost: is not a fully qualified DNS name",
            "error  --acme-challenge http-01: needs --http-listen",
            "error  --acme-directory http://ca.internal/directory: must be https://",
        ],
    );
    // A good setting: the state directory will be created, nothing is stored yet, and the
    // listen IP (which no ACME certificate covers) is not warned about.
    let o = rampart(
        &[
            "check",
            "--root",
            "www",
            "--listen",
            "127.0.0.1:0",
            "--acme",
            "example.com",
            "--acme",
            "www.example.com",
            "--acme-email",
            "ops@example.com",
        ],
        dir.path(),
        &[],
    );
    let all = assert_passes(
        &o,
        &[
            "--acme example.com,www.example.com: the certificate comes from https://acme-v02.api.letsencrypt.org/directory by tls-alpn-01",
            "--acme-state acme: will be created (0700)",
            "no certificate stored yet: it is ordered at start",
            "rampart serve would start",
        ],
    );
    assert!(!all.contains("does not cover 127.0.0.1"), "{all}");
    assert!(!dir.path().join("acme").exists(), "check creates nothing");
}
