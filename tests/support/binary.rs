//! The real `rampart` binary as a test fixture: a temporary copy of www/ and a temporary
//! development CA, stderr captured line by line, helpers to wait for log lines, signal and
//! reap the process. Loopback only; killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A running `rampart` process; killed on drop.
pub struct Rampart {
    pub child: Child,
    log: Arc<Mutex<String>>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Rampart {
    pub fn start(args: &[&str]) -> Self {
        Self::start_with(args, |_| {})
    }

    /// Starts the binary over a fresh copy of www/ (`prepare` may add files to it) and waits
    /// for its `listening` line.
    pub fn start_with(args: &[&str], prepare: impl FnOnce(&Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        super::copy_tree(&super::www(), &root);
        prepare(&root);
        let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--dev-cert-dir")
            .arg(dir.path().join("certs"))
            .arg("--root")
            .arg(&root)
            // `--log-level` in `args` replaces the default (clap refuses it twice).
            .args(if args.contains(&"--log-level") {
                &[][..]
            } else {
                &["--log-level", "info"][..]
            })
            // Likewise `--watch-interval` (off unless a test turns it on).
            .args(if args.contains(&"--watch-interval") {
                &[][..]
            } else {
                &["--watch-interval", "0"][..]
            })
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rampart");
        Self::capture(child, dir)
    }

    /// Starts the binary with exactly `args` and `--root` over a fresh copy of www/ (no
    /// `--listen 127.0.0.1:0`, no development CA, no default log level), and waits for the
    /// `listening` line of its first HTTPS listener: for tests that choose every address and
    /// the certificate source themselves (ACME).
    pub fn start_exact(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        super::copy_tree(&super::www(), &root);
        let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start rampart");
        Self::capture(child, dir)
    }

    /// Collects the child's stderr into the log and waits for its first TLS `listening`
    /// line, which gives `addr`.
    fn capture(mut child: Child, dir: tempfile::TempDir) -> Self {
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
        let mut server = Self {
            child,
            log,
            addr: "127.0.0.1:0".parse().unwrap(),
            dir,
        };
        let start = Instant::now();
        let line = loop {
            if let Some(line) = server.find_line(" INFO listening addr=") {
                break line;
            }
            // --log-format json: {"timestamp":..,"level":"INFO","message":"listening","addr":..}
            if let Some(line) = server.find_line("\"message\":\"listening\"") {
                break line;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("rampart exited ({status}) at start:\n{}", server.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "no listening line:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            line.contains("kind=Tls") || line.contains("\"kind\":\"Tls\""),
            "{line}"
        );
        server.addr = field(&line, "addr")
            .or_else(|| json_field(&line, "addr"))
            .unwrap()
            .parse()
            .unwrap();
        server
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("certs").join("ca.pem")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn find_line(&self, needle: &str) -> Option<String> {
        self.log
            .lock()
            .unwrap()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
    }

    /// The first log line containing `needle`, waiting up to `timeout` for it.
    pub async fn wait_line(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.find_line(needle) {
                return line;
            }
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} in the log after {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The log lines containing `needle`, waiting up to `timeout` until there are `n`.
    pub async fn wait_lines(&self, needle: &str, n: usize, timeout: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines: Vec<String> = self
                .log()
                .lines()
                .filter(|l| l.contains(needle))
                .map(str::to_owned)
                .collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                start.elapsed() < timeout,
                "fewer than {n} {needle:?} lines after {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        super::client_config(&self.ca(), alpn, None)
    }

    pub async fn connect(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        tokio::time::timeout(
            Duration::from_secs(5),
            super::tls_connect(self.addr, self.client(alpn), "localhost"),
        )
        .await
        .expect("handshake in time")
        .expect("tls connect")
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < timeout,
                "still running after {timeout:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "rampart exited:\n{}",
            self.log()
        );
        let log = self.log();
        assert!(!log.contains("panicked"), "a task panicked:\n{log}");
    }
}

impl Drop for Rampart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The string value of `"key":"..."` in a JSON log line.
pub fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let rest = &line[start..];
    Some(&rest[..rest.find('"')?])
}

/// The value of `key=` in a log line (quotes removed, escapes kept).
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[start..];
    match rest.as_bytes().first()? {
        b'"' => {
            let mut escaped = false;
            for (i, c) in rest.char_indices().skip(1) {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => return Some(&rest[1..i]),
                    _ => {}
                }
            }
            None
        }
        b'[' => rest.find(']').map(|i| &rest[..=i]),
        _ => Some(rest.split(' ').next().unwrap_or(rest)),
    }
}
