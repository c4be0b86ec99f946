//! Fleet-wide session resumption with a shared ticket key file, against the real binary: two
//! instances serving the same certificate and reading the same `--ticket-key-file` resume
//! each other's TLS 1.3 and TLS 1.2 sessions (and without the flag they do not); rotation
//! with `rampart ticket-key new` keeps old tickets resuming once while new tickets come
//! under the new key, until the old key is dropped; a bad file refuses start-up and is
//! ignored on reload; SIGHUP re-reads the file. Loopback only; every wait is bounded.
//!
//! The client's session store records each ticket's raw bytes, so the tests check which key
//! sealed a ticket (its first 8 bytes are the key id) against
//! [`rampart::tls::ticket::read_key_file`].

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart::tls::ticket::{read_key_file, KeyId, KEY_ID_LEN};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;
use rustls::{HandshakeKind, NamedGroup, SupportedProtocolVersion};
use support::binary::Rampart;
use support::{client_config, tls_connect, H1};

const TLS12: &SupportedProtocolVersion = &rustls::version::TLS12;
const TLS13: &SupportedProtocolVersion = &rustls::version::TLS13;

/// Generous bound for anything that should take milliseconds on loopback.
const STEP: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// a client session store that shows the tickets

/// The raw ticket in a session value. rustls keeps it private; its `Debug` output shows it
/// as `ticket: <hex>`.
fn ticket_bytes(value: &impl std::fmt::Debug) -> Vec<u8> {
    let debug = format!("{value:?}");
    let start = debug
        .find("ticket: ")
        .expect("a ticket field in the session value")
        + 8;
    let hex: String = debug[start..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(bytes.len() > KEY_ID_LEN, "no ticket in {debug}");
    bytes
}

/// A TLS 1.3 ticket taken out of the jar, to be offered again later.
#[derive(Debug)]
struct Stashed {
    bytes: Vec<u8>,
    value: Tls13ClientSessionValue,
}

impl Stashed {
    fn key_id(&self) -> KeyId {
        key_id_of(&self.bytes)
    }
}

fn key_id_of(ticket: &[u8]) -> KeyId {
    KeyId(ticket[..KEY_ID_LEN].try_into().unwrap())
}

/// One client's sessions, for the single server name `localhost` that every instance
/// answers to (so a session from A is offered to B). TLS 1.3 tickets are offered last in,
/// first out, once each.
#[derive(Debug, Default)]
struct Jar {
    kx: Mutex<Option<NamedGroup>>,
    tls12: Mutex<Option<Tls12ClientSessionValue>>,
    tls13: Mutex<Vec<Tls13ClientSessionValue>>,
}

impl Jar {
    /// Takes every TLS 1.3 ticket out of the jar.
    fn stash_tls13(&self) -> Vec<Stashed> {
        std::mem::take(&mut *self.tls13.lock().unwrap())
            .into_iter()
            .map(|value| Stashed {
                bytes: ticket_bytes(&value),
                value,
            })
            .collect()
    }

    /// Makes `ticket` the only TLS 1.3 ticket the client will offer.
    fn offer_tls13(&self, ticket: Stashed) {
        *self.tls13.lock().unwrap() = vec![ticket.value];
    }

    fn tls12(&self) -> Tls12ClientSessionValue {
        self.tls12
            .lock()
            .unwrap()
            .clone()
            .expect("a TLS 1.2 session")
    }

    fn offer_tls12(&self, value: Tls12ClientSessionValue) {
        *self.tls12.lock().unwrap() = Some(value);
    }
}

impl ClientSessionStore for Jar {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        *self.kx.lock().unwrap() = Some(group);
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        *self.kx.lock().unwrap()
    }

    fn set_tls12_session(&self, _: ServerName<'static>, value: Tls12ClientSessionValue) {
        *self.tls12.lock().unwrap() = Some(value);
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.tls12.lock().unwrap().clone()
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        *self.tls12.lock().unwrap() = None;
    }

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.tls13.lock().unwrap().push(value);
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.tls13.lock().unwrap().pop()
    }
}

// ---------------------------------------------------------------------------------------
// a fleet: one certificate, one key file, several instances

struct Fleet {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    keys: PathBuf,
    dir: tempfile::TempDir,
}

impl Fleet {
    /// A development certificate every instance serves, and a key file made by
    /// `rampart ticket-key new`.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let dev = rampart::tls::devcert::ensure(&dir.path().join("pki")).unwrap();
        let keys = dir.path().join("ticket.keys");
        let out = ticket_key(&["new", keys.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("created") && said.contains(keys.to_str().unwrap()),
            "{said}"
        );
        Self {
            cert: dev.cert,
            key: dev.key,
            ca: dev.ca,
            keys,
            dir,
        }
    }

    /// An instance on the fleet's certificate, with the key file or without.
    fn start(&self, shared_keys: bool) -> Rampart {
        let mut args = vec![
            "--cert",
            self.cert.to_str().unwrap(),
            "--key",
            self.key.to_str().unwrap(),
        ];
        if shared_keys {
            args.extend(["--ticket-key-file", self.keys.to_str().unwrap()]);
        }
        Rampart::start(&args)
    }

    /// An instance on the fleet's certificate reading the key file at `keys`.
    fn start_with_keys(&self, keys: &Path) -> Rampart {
        Rampart::start(&[
            "--cert",
            self.cert.to_str().unwrap(),
            "--key",
            self.key.to_str().unwrap(),
            "--ticket-key-file",
            keys.to_str().unwrap(),
        ])
    }

    /// A client config limited to `version`, storing sessions in `jar`.
    fn client(
        &self,
        version: &'static SupportedProtocolVersion,
        jar: &Arc<Jar>,
    ) -> Arc<rustls::ClientConfig> {
        let shared = client_config(&self.ca, &[b"http/1.1"], Some(&[version]));
        let mut config = Arc::try_unwrap(shared).unwrap_or_else(|s| (*s).clone());
        config.resumption = Resumption::store(Arc::clone(jar) as Arc<dyn ClientSessionStore>);
        Arc::new(config)
    }

    /// The id of the key that encrypts, per the file now.
    fn current_key(&self) -> KeyId {
        read_key_file(&self.keys).unwrap().keys[0].id()
    }

    /// `rampart ticket-key new` on the fleet's file.
    fn rotate(&self) {
        let out = ticket_key(&["new", self.keys.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("rotated"));
    }
}

fn ticket_key(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("ticket-key")
        .args(args)
        .output()
        .expect("binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Connects, notes the handshake kind, and completes one `GET /` (so TLS 1.3 tickets, sent
/// after the handshake, have arrived in the jar).
async fn visit(server: &Rampart, config: &Arc<rustls::ClientConfig>) -> HandshakeKind {
    let tls = tokio::time::timeout(
        STEP,
        tls_connect(server.addr, Arc::clone(config), "localhost"),
    )
    .await
    .expect("handshake within the time bound")
    .expect("tls handshake");
    let kind = tls.get_ref().1.handshake_kind().expect("handshake done");
    let mut h1 = H1::over(tls, server.addr).await;
    let (parts, _) = tokio::time::timeout(STEP, h1.request(http::Method::GET, "/", &[]))
        .await
        .expect("response within the time bound");
    assert_eq!(parts.status, 200);
    kind
}

/// Waits until `server` logs a ticket key reload that reached `generation`.
async fn wait_reload(server: &Rampart, generation: u64) -> String {
    let needle = format!("generation={generation}");
    let start = Instant::now();
    loop {
        if let Some(line) = server
            .log()
            .lines()
            .find(|l| l.contains("ticket keys reloaded") && l.contains(&needle))
        {
            return line.to_owned();
        }
        assert!(
            start.elapsed() < STEP,
            "no reload to {needle} within {STEP:?}:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// (a), (b): resumption across instances

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls13_session_from_one_instance_resumes_on_another_sharing_the_key_file() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.start(true), fleet.start(true));
    let jar = Arc::new(Jar::default());
    let client = fleet.client(TLS13, &jar);

    assert_eq!(visit(&a, &client).await, HandshakeKind::Full);
    let tickets = jar.stash_tls13();
    assert!(!tickets.is_empty(), "A issued no TLS 1.3 ticket");
    for t in &tickets {
        assert_eq!(
            t.key_id(),
            fleet.current_key(),
            "A sealed with the file's first key"
        );
    }
    jar.offer_tls13(tickets.into_iter().next().unwrap());
    assert_eq!(visit(&b, &client).await, HandshakeKind::Resumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls12_ticket_from_one_instance_resumes_on_another_sharing_the_key_file() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.start(true), fleet.start(true));
    let jar = Arc::new(Jar::default());
    let client = fleet.client(TLS12, &jar);

    assert_eq!(visit(&a, &client).await, HandshakeKind::Full);
    // B never saw A's session ID, and a server offered a ticket does not look the ID up:
    // only the ticket can resume.
    assert_eq!(key_id_of(&ticket_bytes(&jar.tls12())), fleet.current_key());
    assert_eq!(visit(&b, &client).await, HandshakeKind::Resumed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_file_a_session_from_one_instance_does_not_resume_on_another() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.start(false), fleet.start(false));

    let jar = Arc::new(Jar::default());
    let client = fleet.client(TLS13, &jar);
    assert_eq!(visit(&a, &client).await, HandshakeKind::Full);
    let mut tickets = jar.stash_tls13().into_iter();
    jar.offer_tls13(tickets.next().expect("a ticket"));
    assert_eq!(visit(&b, &client).await, HandshakeKind::Full);
    // The ticket itself was good: A takes it back.
    jar.offer_tls13(tickets.next().expect("a second ticket"));
    assert_eq!(visit(&a, &client).await, HandshakeKind::Resumed);

    let jar = Arc::new(Jar::default());
    let client = fleet.client(TLS12, &jar);
    assert_eq!(visit(&a, &client).await, HandshakeKind::Full);
    let from_a = jar.tls12();
    assert_eq!(visit(&b, &client).await, HandshakeKind::Full);
    jar.offer_tls12(from_a);
    assert_eq!(visit(&a, &client).await, HandshakeKind::Resumed);
}

// ---------------------------------------------------------------------------------------
// (c): rotation

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rotation_old_tickets_resume_once_and_get_new_ones_until_their_key_is_dropped() {
    let fleet = Fleet::new();
    let (a, b) = (fleet.start(true), fleet.start(true));
    let k1 = fleet.current_key();
    let jar13 = Arc::new(Jar::default());
    let tls13 = fleet.client(TLS13, &jar13);
    let jar12 = Arc::new(Jar::default());
    let tls12 = fleet.client(TLS12, &jar12);

    // Sessions from A under the first key.
    assert_eq!(visit(&a, &tls13).await, HandshakeKind::Full);
    let mut old13 = jar13.stash_tls13();
    assert!(
        old13.len() >= 2,
        "rustls sends two TLS 1.3 tickets: {old13:?}"
    );
    assert!(old13.iter().all(|t| t.key_id() == k1));
    assert_eq!(visit(&a, &tls12).await, HandshakeKind::Full);
    let old12 = jar12.tls12();
    assert_eq!(key_id_of(&ticket_bytes(&old12)), k1);

    // Rotation 1: [k2, k1]. Both instances pick it up.
    fleet.rotate();
    let k2 = fleet.current_key();
    assert_ne!(k2, k1);
    for server in [&a, &b] {
        let line = wait_reload(server, 2).await;
        assert!(
            line.contains("keys=2") && line.contains(&k2.to_string()),
            "{line}"
        );
    }

    // An old ticket resumes on B, and B's new tickets are under k2.
    jar13.offer_tls13(old13.pop().unwrap());
    assert_eq!(visit(&b, &tls13).await, HandshakeKind::Resumed);
    let mut new13 = jar13.stash_tls13();
    assert!(!new13.is_empty(), "no ticket after resumption");
    assert!(new13.iter().all(|t| t.key_id() == k2), "{new13:?}");
    // TLS 1.2: rustls sends a fresh ticket on a resumption by ticket (server/tls12.rs
    // start_resumption), and the client keeps it in place of the old one.
    jar12.offer_tls12(old12.clone());
    assert_eq!(visit(&b, &tls12).await, HandshakeKind::Resumed);
    let new12 = jar12.tls12();
    assert_eq!(key_id_of(&ticket_bytes(&new12)), k2);

    // Rotation 2: [k3, k2]; k1 is dropped.
    fleet.rotate();
    wait_reload(&b, 3).await;
    jar13.offer_tls13(old13.pop().unwrap());
    assert_eq!(visit(&b, &tls13).await, HandshakeKind::Full, "k1 is gone");
    jar13.offer_tls13(new13.pop().unwrap());
    assert_eq!(
        visit(&b, &tls13).await,
        HandshakeKind::Resumed,
        "k2 still decrypts"
    );
    jar12.offer_tls12(old12);
    assert_eq!(visit(&b, &tls12).await, HandshakeKind::Full, "k1 is gone");
    jar12.offer_tls12(new12);
    assert_eq!(
        visit(&b, &tls12).await,
        HandshakeKind::Resumed,
        "k2 still decrypts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staged_key_decrypts_everywhere_before_promote_makes_it_encrypt() {
    // Each instance has its own copy of the file, as on separate machines.
    let fleet = Fleet::new();
    let copy_b = fleet.dir.path().join("ticket.keys.b");
    std::fs::copy(&fleet.keys, &copy_b).unwrap();
    let (a, b) = (fleet.start(true), fleet.start_with_keys(&copy_b));
    let k1 = fleet.current_key();
    let path = fleet.keys.to_str().unwrap();

    // Stage a key and distribute the file.
    let out = ticket_key(&["new", "--staged", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("staged"));
    let k2 = read_key_file(&fleet.keys).unwrap().keys[1].id();
    std::fs::copy(&fleet.keys, &copy_b).unwrap();
    wait_reload(&a, 2).await;
    wait_reload(&b, 2).await;

    // Staged: A still encrypts with k1.
    let jar = Arc::new(Jar::default());
    let client = fleet.client(TLS13, &jar);
    assert_eq!(visit(&a, &client).await, HandshakeKind::Full);
    assert!(jar.stash_tls13().iter().all(|t| t.key_id() == k1));

    // Promoted on A's file only: B has not been given it yet, but it resumes A's k2
    // tickets because it holds k2 staged.
    let out = ticket_key(&["promote", path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fleet.current_key(), k2);
    wait_reload(&a, 3).await;
    assert_eq!(visit(&a, &client).await, HandshakeKind::Full);
    let tickets = jar.stash_tls13();
    assert!(tickets.iter().all(|t| t.key_id() == k2), "{tickets:?}");
    jar.offer_tls13(tickets.into_iter().next().unwrap());
    assert_eq!(visit(&b, &client).await, HandshakeKind::Resumed);
    assert!(
        b.find_line("generation=3").is_none(),
        "B never saw the promote"
    );
}

// ---------------------------------------------------------------------------------------
// (d), (e): bad files, SIGHUP

/// Runs `serve` with `args`, expecting it to exit within the time bound.
fn serve_to_exit(fleet: &Fleet, args: &[&str]) -> (Option<i32>, String) {
    let root = fleet.dir.path().join("www");
    if !root.exists() {
        support::copy_tree(&support::www(), &root);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["--listen", "127.0.0.1:0", "--root", root.to_str().unwrap()])
        .args([
            "--cert",
            fleet.cert.to_str().unwrap(),
            "--key",
            fleet.key.to_str().unwrap(),
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > STEP {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rampart kept running with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[test]
fn a_garbled_or_missing_key_file_at_start_is_refused_naming_the_file_and_line() {
    let fleet = Fleet::new();
    let bad = fleet.dir.path().join("bad.keys");
    std::fs::write(&bad, "# fleet keys\nnot a key\n").unwrap();
    let (code, err) = serve_to_exit(&fleet, &["--ticket-key-file", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "ticket key file {}: line 2: expected 64 hex characters",
            bad.display()
        )),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let missing = fleet.dir.path().join("missing.keys");
    let (code, err) = serve_to_exit(&fleet, &["--ticket-key-file", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("ticket key file {}", missing.display())),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_key_file_on_reload_is_logged_and_the_keys_in_use_stay() {
    let fleet = Fleet::new();
    let a = fleet.start(true);
    let k1 = fleet.current_key();
    let jar = Arc::new(Jar::default());
    let client = fleet.client(TLS13, &jar);
    assert_eq!(visit(&a, &client).await, HandshakeKind::Full);
    let ticket = jar.stash_tls13().pop().unwrap();

    let good = std::fs::read_to_string(&fleet.keys).unwrap();
    std::fs::write(&fleet.keys, format!("{good}0123 not a key\n")).unwrap();
    let line = a.wait_line("ticket key reload refused", STEP).await;
    assert!(line.contains(" WARN "), "{line}");
    let lines = good.lines().count() + 1;
    assert!(
        line.contains(&format!(
            "ticket key file {}: line {lines}: expected 64 hex",
            fleet.keys.display()
        )),
        "{line}"
    );
    assert!(line.contains("generation=1"), "{line}");

    jar.offer_tls13(ticket);
    assert_eq!(visit(&a, &client).await, HandshakeKind::Resumed);
    assert!(jar.stash_tls13().iter().all(|t| t.key_id() == k1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_re_reads_the_key_file() {
    let fleet = Fleet::new();
    fleet.rotate();
    let a = fleet.start(true);
    let old = read_key_file(&fleet.keys).unwrap().keys;
    assert_eq!(old.len(), 2);

    // Rewrite the file in place with another two keys: same length, inode and mtime, so
    // that only SIGHUP can tell it changed.
    let fresh = rampart::tls::ticket::TicketKey::generate().unwrap();
    let text = rampart::tls::ticket::file::render(&[fresh.clone(), old[0].clone()]);
    let meta = std::fs::metadata(&fleet.keys).unwrap();
    assert_eq!(meta.len(), u64::try_from(text.len()).unwrap());
    let file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&fleet.keys)
        .unwrap();
    std::io::Write::write_all(&mut &file, text.as_bytes()).unwrap();
    file.set_modified(meta.modified().unwrap()).unwrap();
    drop(file);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(a.find_line("ticket keys reloaded").is_none(), "{}", a.log());

    a.signal("-HUP");
    let line = wait_reload(&a, 2).await;
    assert!(line.contains("SIGHUP"), "{line}");
    let jar = Arc::new(Jar::default());
    let client = fleet.client(TLS13, &jar);
    assert_eq!(visit(&a, &client).await, HandshakeKind::Full);
    assert!(jar.stash_tls13().iter().all(|t| t.key_id() == fresh.id()));
}
