//! Shutdown against clients that do not help it end (issue 14): the real binary, raw HTTP/2
//! clients that never answer the server's PING after its GOAWAY. Loopback only.

mod support;

use support::binary::{field, Rampart};
use support::h2raw::{self, Frame};

use std::time::{Duration, Instant};

/// An HTTP/2 connection that had one 200 and then goes silent: it answers neither the
/// server's SETTINGS nor its PING.
async fn silent_h2_client_after_one_response(
    server: &Rampart,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut tls = server.connect(&[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    h2raw::send(&mut tls, &h2raw::preface(&[])).await;
    h2raw::send(&mut tls, &h2raw::get(1, "/")).await;
    let (_, before) = h2raw::read_until(&mut tls, Duration::from_secs(5), |f: &Frame| {
        f.kind == h2raw::DATA && f.stream == 1 && f.flags & h2raw::END_STREAM != 0
    })
    .await;
    assert!(
        before
            .iter()
            .any(|f| f.kind == h2raw::HEADERS && f.stream == 1),
        "a response to the GET: {before:?}"
    );
    tls
}

/// Finding 4: after SIGTERM an idle HTTP/2 connection gets GOAWAY; a client that does not
/// answer the PING that follows used to hold the connection, and the process, for the whole
/// --shutdown-timeout (forced=true). It is now closed within a second, with close_notify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_an_idle_h2_client_that_ignores_goaway_and_ping_within_a_second() {
    let mut server = Rampart::start(&["--shutdown-timeout", "30s"]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(silent_h2_client_after_one_response(&server).await);
    }
    let sigterm = Instant::now();
    server.signal("-TERM");
    for (i, tls) in clients.iter_mut().enumerate() {
        let (_, _) = h2raw::read_until(tls, Duration::from_secs(5), |f: &Frame| {
            f.kind == h2raw::GOAWAY
        })
        .await;
        // Then the end: close_notify (a clean end of the TLS stream), within the bound.
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(f) = h2raw::read_frame(tls).await {
                assert!(
                    matches!(f.kind, h2raw::GOAWAY | h2raw::PING | h2raw::SETTINGS),
                    "client {i}: unexpected frame after GOAWAY: {f:?}"
                );
            }
        })
        .await;
        assert!(end.is_ok(), "client {i}: the connection stayed open");
    }
    let closed = sigterm.elapsed();
    assert!(
        closed < Duration::from_secs(3),
        "closed {closed:?} after SIGTERM"
    );
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(
        sigterm.elapsed() < Duration::from_secs(5),
        "exit {:?} after SIGTERM",
        sigterm.elapsed()
    );
    let line = server
        .wait_line("shutdown complete", Duration::from_secs(1))
        .await;
    assert_eq!(field(&line, "forced"), Some("false"), "{line}");
    assert_eq!(field(&line, "open_at_start"), Some("3"), "{line}");
    let counters = server.wait_line(" counters ", Duration::from_secs(1)).await;
    assert_eq!(
        field(&counters, "closed_after_shutdown"),
        Some("3"),
        "{counters}"
    );
}
