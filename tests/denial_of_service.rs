//! One client must never deny service to the others (issue 14): attacks against the real
//! binary, with a legitimate client fetching throughout, and the server's CPU and memory read
//! from /proc while and after they run. Loopback only; every loop is bounded in count and
//! time.

mod support;

use support::binary::Rampart;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The server process's CPU time so far (user + system), from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat has a command") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on every Linux this runs on.
    Duration::from_millis(ticks * 10)
}

/// The server process's resident memory, from /proc/PID/status.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc status")
}

/// Fetches `/` over a new TLS connection every 200 ms until `stop`; counts the fetches and
/// records each failure (a fetch must complete within 2 s: a handshake that waits behind a
/// spinning worker fails here).
fn legitimate_client(
    server: &Rampart,
    stop: Arc<AtomicBool>,
) -> (tokio::task::JoinHandle<Vec<String>>, Arc<AtomicUsize>) {
    let addr = server.addr;
    let config = server.client(&[b"http/1.1"]);
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    let task = tokio::spawn(async move {
        let mut failures = Vec::new();
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(60) {
            let at = started.elapsed();
            let fetch = async {
                let mut tls = support::tls_connect(addr, Arc::clone(&config), "localhost")
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                let mut all = Vec::new();
                tls.read_to_end(&mut all)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if all.starts_with(b"HTTP/1.1 200 ") {
                    Ok(())
                } else {
                    Err("not a 200".to_owned())
                }
            };
            match tokio::time::timeout(Duration::from_secs(2), fetch).await {
                Ok(Ok(())) => {
                    count.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Err(e)) => failures.push(format!("at {at:?}: {e}")),
                Err(_) => failures.push(format!("at {at:?}: no answer within 2 s")),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        failures
    });
    (task, served)
}

/// Finding 1: a client pipelines thousands of small GETs in one write without reading, so
/// that the responses back up, reads a little, then leaves. The server used to spin one
/// worker at 100% until the connection's idle deadline, and stop completing handshakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelining_client_that_stops_reading_then_leaves_costs_no_cpu_and_blocks_no_one() {
    let mut server = Rampart::start_with(&["--workers", "2"], |root| {
        std::fs::write(
            root.join("small.txt"),
            b"small file for the pipelining attack\n",
        )
        .unwrap();
    });
    let pid = server.child.id();
    let stop = Arc::new(AtomicBool::new(false));
    let (legit, served) = legitimate_client(&server, Arc::clone(&stop));

    // (requests in the burst, bytes read before leaving): the smallest trigger, and
    // one that reproduced the spin every time (a write of 1.8 MB, 3 MB read back).
    for (round, (requests, read)) in [(8000, 1 << 20), (40_000, 3 << 20)].into_iter().enumerate() {
        let mut rogue = server.connect(&[b"http/1.1"]).await;
        let one = b"GET /small.txt HTTP/1.1\r\nHost: localhost\r\n\r\n";
        let burst: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * requests)
            .collect();
        // One write of the whole burst; the server reads it while it can.
        let wrote = tokio::time::timeout(Duration::from_secs(5), rogue.write_all(&burst)).await;
        assert!(wrote.is_ok(), "round {round}: the burst was not taken in");
        tokio::time::sleep(Duration::from_millis(500)).await;
        // Read some of the backed-up responses, then leave.
        let mut sink = vec![0u8; 64 * 1024];
        let mut got = 0;
        while got < read {
            match tokio::time::timeout(Duration::from_secs(2), rogue.read(&mut sink)).await {
                Ok(Ok(n)) if n > 0 => got += n,
                _ => break,
            }
        }
        assert!(
            got > 0,
            "round {round}: the rogue client got no response at all"
        );
        drop(rogue);
        // A second after it left, the server must be idle: less than 10% of a core over
        // the next second (the legitimate client's fetches included).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = cpu_time(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = cpu_time(pid) - before;
        assert!(
            used < Duration::from_millis(100),
            "round {round}: the server used {used:?} of CPU in the second after the client left:\n{}",
            server.log()
        );
    }

    stop.store(true, Ordering::Relaxed);
    let failures = legit.await.unwrap();
    assert!(
        failures.is_empty(),
        "the legitimate client was not served throughout: {failures:?}\n{}",
        server.log()
    );
    assert!(
        served.load(Ordering::Relaxed) >= 10,
        "too few legitimate fetches"
    );
    server.assert_alive();
}

/// A file streamed from disk in chunks (above the in-memory limit).
const BIG: usize = 32 * 1024 * 1024;

fn with_big_file(root: &std::path::Path) {
    let data: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), data).unwrap();
}

/// Opens an HTTP/2 connection that grants no window (SETTINGS_INITIAL_WINDOW_SIZE = 0) and
/// asks for the large file on `streams` streams; returns once every response head came.
async fn zero_window_streams(
    server: &Rampart,
    streams: u32,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use support::h2raw;
    let mut tls = server.connect(&[b"h2"]).await;
    let mut out = h2raw::preface(&[(h2raw::INITIAL_WINDOW_SIZE, 0)]);
    for i in 0..streams {
        out.extend(h2raw::get(1 + 2 * i, "/big.bin"));
    }
    h2raw::send(&mut tls, &out).await;
    let mut heads = 0;
    let started = Instant::now();
    while heads < streams {
        let f = tokio::time::timeout(Duration::from_secs(10), h2raw::read_frame(&mut tls))
            .await
            .expect("response heads in time")
            .expect("the connection stays open");
        assert_ne!(f.kind, h2raw::DATA, "DATA sent without window");
        assert_ne!(f.kind, h2raw::RST_STREAM, "a stream was refused: {f:?}");
        if f.kind == h2raw::SETTINGS && f.flags & h2raw::ACK == 0 {
            h2raw::send(&mut tls, &h2raw::frame(h2raw::SETTINGS, h2raw::ACK, 0, &[])).await;
        }
        if f.kind == h2raw::HEADERS {
            heads += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(20));
    }
    tls
}

/// Finding 2: HTTP/2 streams for a large file on connections that grant no window used to
/// make the server read and hold a 256 KiB chunk per stream (26 MiB for 100 streams, 131 MiB
/// for 4 x 128, and it stayed). Chunks are now read against a per-connection and a total
/// budget, and the first chunk of a stream is small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_that_get_no_window_hold_little_memory_and_block_no_one() {
    let mut server = Rampart::start_with(&["--workers", "2"], with_big_file);
    let pid = server.child.id();
    // Warm up: one full download of the file over HTTP/2, as a legitimate client.
    let mut client = support::H2::over(server.connect(&[b"h2"]).await, server.addr).await;
    let (parts, body) = client.request("/big.bin", &[]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(body.len(), BIG);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib(pid);

    let mut attackers = Vec::new();
    for _ in 0..4 {
        attackers.push(zero_window_streams(&server, 128).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = rss_kib(pid);
    let per_connection = (during.saturating_sub(before)) / 4;
    eprintln!("RSS {before} KiB before, {during} KiB with 4 x 128 zero-window streams: +{per_connection} KiB per connection");
    assert!(
        per_connection < 4 * 1024,
        "RSS grew by {per_connection} KiB per attacking connection"
    );

    // Others are served throughout, the large file included.
    let (parts, body) = client.request("/big.bin", &[]).await;
    assert_eq!(parts.status, 200);
    assert_eq!(body.len(), BIG);
    drop(attackers);
    server.assert_alive();
}

/// Finding 6: a client that opens its window a byte at a time got a one-byte DATA frame per
/// WINDOW_UPDATE, millions of them. Such a connection is now closed once it sends more than
/// a thousand tiny updates within a second; the other clients are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_that_opens_its_window_a_byte_at_a_time_is_closed() {
    use support::h2raw;
    let mut server = Rampart::start_with(&["--workers", "2"], with_big_file);
    let stop = Arc::new(AtomicBool::new(false));
    let (legit, served) = legitimate_client(&server, Arc::clone(&stop));

    let tls = server.connect(&[b"h2"]).await;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let mut hello = h2raw::preface(&[(h2raw::INITIAL_WINDOW_SIZE, 0)]);
    hello.extend(h2raw::frame(h2raw::SETTINGS, h2raw::ACK, 0, &[]));
    hello.extend(h2raw::get(1, "/big.bin"));
    h2raw::send(&mut wr, &hello).await;
    // A byte of window at a time, 100 updates per write, at most 50,000 in all.
    let dribble = tokio::spawn(async move {
        let batch: Vec<u8> = (0..100).flat_map(|_| h2raw::window_update(1, 1)).collect();
        let mut sent = 0;
        while sent < 50_000 {
            if wr.write_all(&batch).await.is_err() {
                break;
            }
            sent += 100;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        sent
    });
    let started = Instant::now();
    let (mut data_frames, mut data_bytes) = (0usize, 0usize);
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        let mut head = [0u8; 9];
        loop {
            if rd.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let mut payload = vec![0u8; len];
            if rd.read_exact(&mut payload).await.is_err() {
                return;
            }
            if head[3] == h2raw::DATA {
                data_frames += 1;
                data_bytes += len;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the dribbling connection stayed open");
    let took = started.elapsed();
    let sent = dribble.await.unwrap();
    eprintln!("closed after {took:?}: {sent} updates sent, {data_frames} DATA frames ({data_bytes} bytes) received");
    assert!(
        data_frames <= 1100,
        "{data_frames} DATA frames before the close"
    );
    assert!(sent < 50_000, "every update was taken in");
    let line = server
        .wait_line("a misbehaving HTTP/2 connection", Duration::from_secs(2))
        .await;
    assert!(
        line.contains(" WARN ") && line.contains("peer=127.0.0.1:"),
        "{line}"
    );

    stop.store(true, Ordering::Relaxed);
    let failures = legit.await.unwrap();
    assert!(failures.is_empty(), "legitimate client: {failures:?}");
    assert!(served.load(Ordering::Relaxed) > 0);
    server.assert_alive();
}
