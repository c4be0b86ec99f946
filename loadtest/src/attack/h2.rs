//! The HTTP/2 attacks, spoken in hand-built frames ([`super::frames`]) with an initial
//! window of 0:
//!
//! - `h2-zero-window`: many streams for a large file that never get a byte of window, held
//!   open. rampart used to read and hold a 256 KiB chunk per stream (+32 MiB per connection).
//! - `h2-tiny-window`: one stream whose window is opened a byte at a time. rampart used to
//!   send a one-byte DATA frame (and a TLS record) per update.

use super::frames;
use super::{attacker, each_connection, Figures, Options, CONNECT_TIMEOUT, HOST};
use crate::net::{Proto, TlsConn};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Zero window: the deadline for every response head.
const HEADS_TIMEOUT: Duration = Duration::from_secs(5);
/// Tiny window: updates per write, and the hard deadline of the whole dribble.
const DRIBBLE_BATCH: u64 = 100;
const DRIBBLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Tiny window: how long after the last update the server may still close.
const DRIBBLE_GRACE: Duration = Duration::from_secs(1);

/// One zero-window connection once its response heads came.
struct ZeroWindowConn {
    /// The connection to hold; `None` when the server already ended it.
    tls: Option<TlsConn>,
    /// Response heads received.
    heads: u64,
    /// Streams reset by the server.
    resets: u64,
    /// DATA frames with a payload (sent without window).
    data_frames: u64,
}

pub(super) async fn zero_window(opts: &Arc<Options>) -> (Figures, Vec<String>) {
    let results = each_connection(opts, |opts| async move {
        let mut conn = attacker(&opts, Proto::H2).await?;
        let mut out = frames::preface(&[(frames::INITIAL_WINDOW_SIZE, 0)]);
        for i in 0..opts.streams {
            out.extend(frames::get(1 + 2 * i, HOST, &opts.path));
        }
        let tls = &mut conn.stream;
        let wrote = async {
            tls.write_all(&out).await?;
            tls.flush().await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, wrote).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("attacker: writing the streams: {e}")),
            Err(_) => return Err("attacker: the streams were not taken in within 5 s".into()),
        }
        let mut zw = ZeroWindowConn {
            tls: None,
            heads: 0,
            resets: 0,
            data_frames: 0,
        };
        let deadline = tokio::time::Instant::now() + HEADS_TIMEOUT;
        let mut open = true;
        while zw.heads + zw.resets < u64::from(opts.streams) {
            let f = match tokio::time::timeout_at(deadline, frames::read_frame(tls)).await {
                Err(_) => break,
                Ok(Ok(Some(f))) => f,
                Ok(Ok(None) | Err(_)) => {
                    open = false;
                    break;
                }
            };
            match f.kind {
                frames::SETTINGS if f.flags & frames::ACK == 0 => {
                    let ack = async {
                        tls.write_all(&frames::settings_ack()).await?;
                        tls.flush().await
                    };
                    let _ = tokio::time::timeout(CONNECT_TIMEOUT, ack).await;
                }
                frames::HEADERS => zw.heads += 1,
                frames::RST_STREAM => zw.resets += 1,
                frames::DATA if f.len > 0 => zw.data_frames += 1,
                frames::GOAWAY => {
                    open = false;
                    break;
                }
                _ => {}
            }
        }
        if open {
            zw.tls = Some(conn);
        }
        Ok(zw)
    })
    .await;
    let mut failures = Vec::new();
    let mut held = Vec::new();
    let (mut heads, mut resets, mut data_frames, mut closed_early) = (0, 0, 0, 0);
    for r in results {
        match r {
            Ok(zw) => {
                heads += zw.heads;
                resets += zw.resets;
                data_frames += zw.data_frames;
                match zw.tls {
                    Some(tls) => held.push(tls),
                    None => closed_early += 1,
                }
            }
            Err(e) => failures.push(e),
        }
    }
    // Hold the connections, granting nothing; the memory is read meanwhile (Peak).
    let held_from = Instant::now();
    tokio::time::sleep(opts.hold).await;
    let hold_s = held_from.elapsed().as_secs_f64();
    // A connection the server ended during the hold reads as the end of the stream at once;
    // one still held has nothing to read (it granted no window).
    for conn in &mut held {
        let mut byte = [0u8; 1];
        let peek = tokio::time::timeout(Duration::from_millis(1), conn.stream.read(&mut byte));
        if matches!(peek.await, Ok(Ok(0) | Err(_))) {
            closed_early += 1;
        }
    }
    drop(held);
    if data_frames > 0 {
        failures.push(format!(
            "the server sent {data_frames} DATA frames with a payload to streams that had no window"
        ));
    }
    let figures = Figures::ZeroWindow {
        streams: opts.streams,
        heads,
        resets,
        data_frames,
        closed_early,
        hold_s,
    };
    (figures, failures)
}

/// One tiny-window connection: (updates sent before the close, DATA frames, DATA bytes,
/// closed by the server).
type TinyConn = (u64, u64, u64, bool);

pub(super) async fn tiny_window(opts: &Arc<Options>) -> (Figures, Vec<String>) {
    let started = Instant::now();
    let results = each_connection(opts, |opts| async move {
        let conn = attacker(&opts, Proto::H2).await?;
        let (mut rd, mut wr) = tokio::io::split(conn.stream);
        let mut hello = frames::preface(&[(frames::INITIAL_WINDOW_SIZE, 0)]);
        hello.extend(frames::settings_ack());
        hello.extend(frames::get(1, HOST, &opts.path));
        let write = async {
            wr.write_all(&hello).await?;
            wr.flush().await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("attacker: writing the request: {e}")),
            Err(_) => return Err("attacker: the request was not taken in within 5 s".into()),
        }
        let sent = Arc::new(AtomicU64::new(0));
        let closed = Arc::new(AtomicBool::new(false));
        let deadline = Instant::now() + DRIBBLE_TIMEOUT;
        // A byte of window at a time, 100 updates per write, until the bound, the deadline,
        // or the server closes.
        let dribble = {
            let (sent, closed, max) = (Arc::clone(&sent), Arc::clone(&closed), opts.updates);
            tokio::spawn(async move {
                let batch: Vec<u8> = (0..DRIBBLE_BATCH)
                    .flat_map(|_| frames::window_update(1, 1))
                    .collect();
                while sent.load(Ordering::Relaxed) < max
                    && !closed.load(Ordering::Relaxed)
                    && Instant::now() < deadline
                {
                    let n = DRIBBLE_BATCH.min(max - sent.load(Ordering::Relaxed));
                    let bytes = &batch[..batch.len() / DRIBBLE_BATCH as usize * n as usize];
                    let write = async {
                        wr.write_all(bytes).await?;
                        wr.flush().await
                    };
                    match tokio::time::timeout(Duration::from_secs(1), write).await {
                        Ok(Ok(())) => sent.fetch_add(n, Ordering::Relaxed),
                        _ => break,
                    };
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                wr
            })
        };
        let (frames_in, bytes_in) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let reader = {
            let (frames_in, bytes_in) = (Arc::clone(&frames_in), Arc::clone(&bytes_in));
            let (sent, closed) = (Arc::clone(&sent), Arc::clone(&closed));
            tokio::spawn(async move {
                let read = async {
                    while let Ok(Some(f)) = frames::read_frame(&mut rd).await {
                        if f.kind == frames::DATA {
                            frames_in.fetch_add(1, Ordering::Relaxed);
                            bytes_in.fetch_add(f.len as u64, Ordering::Relaxed);
                        }
                    }
                };
                let limit = deadline + DRIBBLE_GRACE;
                if tokio::time::timeout_at(limit.into(), read).await.is_ok() {
                    // The updates the server had taken when it closed.
                    let at_close = sent.load(Ordering::Relaxed);
                    closed.store(true, Ordering::Relaxed);
                    Some(at_close)
                } else {
                    None
                }
            })
        };
        let wr = dribble.await.ok();
        // The server may still close shortly after the last update.
        let mut reader = reader;
        let closed_at = match tokio::time::timeout(DRIBBLE_GRACE, &mut reader).await {
            Ok(Ok(at)) => at,
            _ => {
                reader.abort();
                None
            }
        };
        drop(wr);
        Ok::<TinyConn, String>((
            closed_at.unwrap_or_else(|| sent.load(Ordering::Relaxed)),
            frames_in.load(Ordering::Relaxed),
            bytes_in.load(Ordering::Relaxed),
            closed_at.is_some(),
        ))
    })
    .await;
    let took_s = started.elapsed().as_secs_f64();
    let mut failures = Vec::new();
    let (mut updates_sent, mut data_frames, mut data_bytes, mut closed) = (0, 0, 0, 0);
    for r in results {
        match r {
            Ok((u, f, b, c)) => {
                updates_sent += u;
                data_frames += f;
                data_bytes += b;
                closed += u64::from(c);
            }
            Err(e) => failures.push(e),
        }
    }
    let open = opts.connections as u64 - closed;
    if open > 0 {
        failures.push(format!(
            "{open} connection(s) still open after {} one-byte window updates each: the server answers them all",
            opts.updates
        ));
    }
    let figures = Figures::TinyWindow {
        updates_sent,
        updates_max: opts.updates,
        data_frames,
        data_bytes,
        closed,
        took_s,
    };
    (figures, failures)
}
