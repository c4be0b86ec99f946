//! A real ACME CA for the tests: Debian's `pebble` (2.4.0 in bookworm) and its
//! `pebble-challtestsrv`, started on free loopback ports and killed on drop.
//!
//! `pebble-challtestsrv` is only a DNS server here: it answers every A query with 127.0.0.1
//! (no AAAA), so pebble's validation of any name connects to rampart on loopback, on the
//! ports of pebble's config (`httpPort` for HTTP-01, `tlsPort` for TLS-ALPN-01).
//!
//! The Debian package ships no certificate for pebble's own HTTPS (upstream's
//! `test/certs/pebble.minica.pem` is left out), so one is made here with rcgen: a CA
//! ([`Pebble::ca_root_path`], what rampart gets as `--acme-ca-root`) and a leaf for
//! `localhost` and `127.0.0.1`. The CA that pebble issues with is another one, made afresh at
//! every start of pebble: [`Pebble::issuing_root_pem`].
//!
//! Pebble keeps nothing across a [`Pebble::restart`]: accounts, orders and the issuing root
//! are new afterwards (an ACME client meets `accountDoesNotExist` for its stored account).
//! Nothing is skipped: without the package installed, [`Pebble::start`] panics saying how to
//! install it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// How long pebble gets to answer its directory after a start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The log line pebble 2.4.0 writes for every certificate it issues (ca/ca.go).
const ISSUED_LINE: &str = "Issued certificate serial";

/// A free TCP port on 127.0.0.1 (bound, then released: another process could take it
/// before it is used, which loopback tests accept).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

/// A running pebble and its DNS server; both killed on drop.
pub struct Pebble {
    dir: tempfile::TempDir,
    config: PathBuf,
    acme: SocketAddr,
    management: SocketAddr,
    dns: SocketAddr,
    dns_management: SocketAddr,
    pebble: Option<Child>,
    challtestsrv: Child,
    log: Arc<Mutex<String>>,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` of
    /// 127.0.0.1 (rampart's `--http-listen` and `--listen` ports), and waits until its
    /// directory and management API answer.
    pub fn start(http_port: u16, tls_port: u16) -> Self {
        Self::start_with_validity(http_port, tls_port, None)
    }

    /// Like [`Pebble::start`], with the lifetime of issued certificates in seconds
    /// (`certificateValidityPeriod`; pebble's default is 5 years).
    pub fn start_with_validity(http_port: u16, tls_port: u16, validity: Option<u64>) -> Self {
        Self::start_with_options(http_port, tls_port, validity, None)
    }

    /// Like [`Pebble::start`], requiring External Account Binding with this key id and
    /// base64url HMAC key (`externalAccountBindingRequired`, `externalAccountMACKeys`).
    pub fn start_with_eab(http_port: u16, tls_port: u16, kid: &str, hmac_key: &str) -> Self {
        Self::start_with_options(http_port, tls_port, None, Some((kid, hmac_key)))
    }

    fn start_with_options(
        http_port: u16,
        tls_port: u16,
        validity: Option<u64>,
        eab: Option<(&str, &str)>,
    ) -> Self {
        for tool in ["pebble", "pebble-challtestsrv"] {
            installed(tool);
        }
        let dir = tempfile::tempdir().unwrap();
        write_https_certificate(dir.path());
        let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let acme = loopback(free_port());
        let management = loopback(free_port());
        let dns = loopback(free_port());
        let dns_management = loopback(free_port());
        let mut settings = serde_json::json!({
            "listenAddress": acme.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": dir.path().join("pebble-cert.pem"),
            "privateKey": dir.path().join("pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(seconds) = validity {
            settings["certificateValidityPeriod"] = seconds.into();
        }
        if let Some((kid, key)) = eab {
            settings["externalAccountBindingRequired"] = true.into();
            settings["externalAccountMACKeys"] = serde_json::json!({ kid: key });
        }
        let config = dir.path().join("pebble-config.json");
        std::fs::write(
            &config,
            serde_json::to_vec_pretty(&serde_json::json!({ "pebble": settings })).unwrap(),
        )
        .unwrap();

        let log = Arc::new(Mutex::new(String::new()));
        let challtestsrv = spawn_logged(
            Command::new("pebble-challtestsrv").args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-dns01",
                &dns.to_string(),
                "-management",
                &dns_management.to_string(),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ]),
            "challtestsrv",
            &log,
        );
        let mut pebble = Self {
            dir,
            config,
            acme,
            management,
            dns,
            dns_management,
            pebble: None,
            challtestsrv,
            log,
        };
        // The DNS server also answers over TCP: connecting tells that it is up.
        pebble.wait_until("pebble-challtestsrv's DNS port", |p| {
            TcpStream::connect_timeout(&p.dns, Duration::from_millis(200)).is_ok()
        });
        pebble.restart();
        pebble
    }

    /// The ACME directory URL (HTTPS, certificate from [`Pebble::ca_root_path`]).
    pub fn directory_url(&self) -> String {
        format!("https://{}/dir", self.acme)
    }

    /// The address of the ACME API.
    pub fn acme_addr(&self) -> SocketAddr {
        self.acme
    }

    /// The trust anchor of pebble's own HTTPS (its ACME API and management API): what
    /// rampart gets as `--acme-ca-root`.
    pub fn ca_root_path(&self) -> PathBuf {
        self.dir.path().join("pebble-ca.pem")
    }

    /// The root (PEM) of the certificates pebble issues, from its management API: what a
    /// client verifies rampart's certificate with. New at every (re)start of pebble.
    pub fn issuing_root_pem(&self) -> Vec<u8> {
        let (status, body) = https_get(self.management, &self.ca_root_path(), "/roots/0")
            .unwrap_or_else(|e| panic!("GET /roots/0 from pebble: {e}\n{}", self.log()));
        assert_eq!(
            status,
            200,
            "GET /roots/0: {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// The directory object (JSON), fetched now.
    pub fn directory(&self) -> serde_json::Value {
        let (status, body) = https_get(self.acme, &self.ca_root_path(), "/dir")
            .unwrap_or_else(|e| panic!("GET /dir from pebble: {e}\n{}", self.log()));
        assert_eq!(status, 200, "GET /dir: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("the directory is JSON")
    }

    /// Stops pebble (a CA outage); its DNS server keeps running.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts pebble again on the same ports and waits until it answers. It remembers
    /// nothing: accounts, orders and the issuing root are new.
    pub fn restart(&mut self) {
        self.stop();
        let child = spawn_logged(
            Command::new("pebble")
                .arg("-config")
                .arg(&self.config)
                .arg("-dnsserver")
                .arg(self.dns.to_string())
                // No random 0-5 s sleep before each validation.
                .env("PEBBLE_VA_NOSLEEP", "1")
                // Pebble rejects 5% of valid nonces by default (to test that clients retry
                // badNonce): off, so that the counts of attempts in the tests are exact.
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                // Pebble reuses a valid authorization in half of new orders by default: off,
                // so that every order (a renewal too) is validated again.
                .env("PEBBLE_AUTHZREUSE", "0"),
            "pebble",
            &self.log,
        );
        self.pebble = Some(child);
        self.wait_until("pebble's directory and /roots/0", |p| {
            let ca = p.ca_root_path();
            matches!(https_get(p.acme, &ca, "/dir"), Ok((200, _)))
                && matches!(https_get(p.management, &ca, "/roots/0"), Ok((200, _)))
        });
    }

    /// Makes pebble's DNS answer `ip` for every name (127.0.0.1 at start): with an address
    /// where nothing listens, such as 127.0.0.2, every validation fails with a refused
    /// connection, while the ACME API keeps working.
    pub fn resolve_names_to(&self, ip: &str) {
        let body = format!("{{\"ip\":\"{ip}\"}}");
        let mut tcp = TcpStream::connect_timeout(&self.dns_management, Duration::from_secs(2))
            .expect("connect to pebble-challtestsrv's management port");
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            tcp,
            "POST /set-default-ipv4 HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.dns_management,
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "set-default-ipv4 {ip}: {answer}"
        );
    }

    /// How many certificates pebble has issued (counted in its log, across restarts).
    pub fn issued_count(&self) -> usize {
        self.log().matches(ISSUED_LINE).count()
    }

    /// The output of pebble and its DNS server so far, each line prefixed with its name.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_until(&mut self, what: &str, ready: impl Fn(&Self) -> bool) {
        let start = Instant::now();
        loop {
            if ready(self) {
                return;
            }
            let exited = [
                ("pebble", self.pebble.as_mut()),
                ("pebble-challtestsrv", Some(&mut self.challtestsrv)),
            ]
            .into_iter()
            .find_map(|(name, child)| match child.map(Child::try_wait) {
                Some(Ok(Some(status))) => Some(format!("{name} exited ({status})")),
                _ => None,
            });
            if let Some(exited) = exited {
                panic!("{exited} at start:\n{}", self.log());
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "{what} did not answer within {START_TIMEOUT:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.challtestsrv.kill();
        let _ = self.challtestsrv.wait();
    }
}

/// Panics, saying how to install it, when `tool` is not on PATH.
fn installed(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    assert!(
        found,
        "`{tool}` is not installed: the ACME tests run against a real ACME CA, Debian's \
         pebble package. Install it with `apt-get install -y pebble` (as root; `bash .ci/run` \
         does this when it is missing)."
    );
}

/// Starts `cmd` with its stdout and stderr appended, line by line, to `log`.
fn spawn_logged(cmd: &mut Command, name: &'static str, log: &Arc<Mutex<String>>) -> Child {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    let out: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap());
    let err: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap());
    for stream in [out, err] {
        let sink = Arc::clone(log);
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(name);
                l.push_str(": ");
                l.push_str(&line);
                l.push('\n');
            }
        });
    }
    child
}

/// Writes pebble-ca.pem, and pebble-cert.pem + pebble-key.pem (a leaf for localhost and
/// 127.0.0.1 signed by it) into `dir`.
fn write_https_certificate(dir: &Path) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rampart tests: pebble's HTTPS CA");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::from_params(&ca, &ca_key);

    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    leaf.distinguished_name = dn;
    let leaf_pem = leaf.signed_by(&key, &issuer).unwrap().pem();

    std::fs::write(dir.join("pebble-ca.pem"), ca_pem).unwrap();
    std::fs::write(dir.join("pebble-cert.pem"), leaf_pem).unwrap();
    std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();
}

/// One HTTPS GET over a new connection (blocking, 5 s deadline), trusting `ca`:
/// (status, body).
pub fn https_get(addr: SocketAddr, ca: &Path, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
    let config = super::client_config(ca, &[b"http/1.1"], None);
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut all = Vec::new();
    match tls.read_to_end(&mut all) {
        Ok(_) => {}
        // A peer that closes without close_notify after a complete response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !all.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&all).ok_or_else(|| {
        std::io::Error::other(format!(
            "not an HTTP response: {:?}",
            String::from_utf8_lossy(&all)
        ))
    })
}

/// (status, body) of an HTTP/1.1 response read to its end (Content-Length or chunked).
fn parse_response(all: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = all.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&all[..split]).ok()?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let body = &all[split + 4..];
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}
