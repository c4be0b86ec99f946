//! The `pipeline` attack: one HTTP/1.1 connection writes thousands of pipelined GETs in one
//! write and stops reading, so that the responses back up in the server; after a pause it
//! reads some of them and leaves without close_notify. rampart used to spin a worker at
//! 100% until the connection's idle deadline (60 s) and stop completing handshakes. Raw
//! HTTP/1.1 over TLS; hyper's client would never pipeline.

use super::{attacker, each_connection, Figures, Options, CONNECT_TIMEOUT, HOST};
use crate::net::Proto;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The pause between the burst and the reads.
const PAUSE: Duration = Duration::from_millis(500);
/// Response bytes read before leaving.
const READ: usize = 3 << 20;
/// The deadline of one read, and of all reads together.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const READS_TIMEOUT: Duration = Duration::from_secs(6);

/// Per connection: (bytes written, burst stuck, bytes read, status lines).
type PipelineConn = (u64, bool, u64, u64);

pub(super) async fn run(opts: &Arc<Options>) -> (Figures, Vec<String>) {
    let results = each_connection(opts, |opts| async move {
        let mut tls = attacker(&opts, Proto::H1).await?.stream;
        let one = format!("GET {} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", opts.path);
        let burst = one.repeat(usize::try_from(opts.requests).unwrap_or(usize::MAX));
        // One write of the whole burst; the server takes it in while it can.
        let write = async {
            tls.write_all(burst.as_bytes()).await?;
            tls.flush().await
        };
        let stuck = tokio::time::timeout(CONNECT_TIMEOUT, write).await.is_err();
        tokio::time::sleep(PAUSE).await;
        // Read some of the backed-up responses, then leave (no close_notify).
        let mut got = Vec::with_capacity(READ);
        let mut buf = vec![0u8; 64 * 1024];
        let deadline = Instant::now() + READS_TIMEOUT;
        while got.len() < READ && Instant::now() < deadline {
            match tokio::time::timeout(READ_TIMEOUT, tls.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        drop(tls);
        let statuses = got.windows(9).filter(|w| w == b"HTTP/1.1 ").count() as u64;
        Ok::<PipelineConn, String>((burst.len() as u64, stuck, got.len() as u64, statuses))
    })
    .await;
    let mut failures = Vec::new();
    let (mut written, mut stuck, mut read, mut responses) = (0, 0, 0, 0);
    for r in results {
        match r {
            Ok((w, s, b, n)) => {
                if !s {
                    written += w;
                }
                stuck += u64::from(s);
                read += b;
                responses += n;
            }
            Err(e) => failures.push(e),
        }
    }
    if responses == 0 {
        failures.push("the pipelining client got no response at all".to_owned());
    }
    let figures = Figures::Pipeline {
        requests: opts.requests,
        bytes_written: written,
        bursts_stuck: stuck,
        bytes_read: read,
        responses,
    };
    (figures, failures)
}
