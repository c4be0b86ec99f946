//! [`Body`]: the response body of every rampart response. In-memory assets are `Bytes`
//! slices of the table (no copy); large files are read from an already-open file in chunks.
//! Multipart range responses are a queue of both kinds of part. The exact remaining length
//! is always known, so `size_hint` is exact.
//!
//! File chunks: on Linux a chunk is first read on the worker with `preadv2(RWF_NOWAIT)`,
//! which copies what the page cache holds and refuses (`EAGAIN`) rather than wait for the
//! disk; only then does the read go to the blocking pool. A cached file (the common case for
//! a served app) is streamed without a thread hand-off per chunk, and a cold one never
//! blocks a worker. Chunk buffers go back to their body when the connection is done with
//! them, so a large file is streamed through one or two buffers, allocated and zeroed once.
//!
//! Memory: a body given a [`SendBudget`] takes each chunk's size from it before reading and
//! gives it back when the connection drops the chunk (app/budget.rs); the first chunk is
//! `FIRST_CHUNK` (16 KiB) and each next one twice the last, up to `FILE_CHUNK` (256 KiB), so a stream the
//! client never reads holds one small chunk.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use super::budget::{Permit, SendBudget, Waiter};

/// The most bytes read from disk per frame when streaming a file.
const FILE_CHUNK: u32 = 256 * 1024;

/// The first chunk of a file: one TLS record's worth. Each next chunk is twice the last, up
/// to [`FILE_CHUNK`]: a large file reaches full chunks after 240 KiB, and a stream whose
/// client grants no window holds 16 KiB, not 256.
const FIRST_CHUNK: u32 = 16 * 1024;

/// One piece of a response body.
#[derive(Debug)]
pub(crate) enum Part {
    Bytes(Bytes),
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

impl Part {
    fn len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::File { len, .. } => *len,
        }
    }
}

/// Something to run once when the body is finished or dropped: the connection's in-flight
/// counter (which tells an idle connection from a busy one), the response metrics and the
/// access log.
pub trait OnDone: Send + Sync + 'static {
    /// Called once: `unsent` is 0 after the last byte, more when the transfer was abandoned.
    fn done(self: Box<Self>, unsent: u64);
}

/// A response body.
#[derive(Default)]
pub struct Body {
    parts: VecDeque<Part>,
    pending: Option<JoinHandle<io::Result<Vec<u8>>>>,
    /// Buffers of chunks the connection has finished with, for the next reads.
    spare: Option<Arc<Spare>>,
    remaining: u64,
    guard: Option<Box<dyn OnDone>>,
    /// The size of the next file chunk.
    chunk_size: u32,
    /// The connection's send budget, for bodies that stream from a file.
    budget: Option<Box<Waiter>>,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// An empty body.
    #[must_use]
    pub fn empty() -> Self {
        Self::default()
    }

    /// A body of in-memory bytes.
    #[must_use]
    pub fn from_bytes(bytes: Bytes) -> Self {
        Self::from_parts(vec![Part::Bytes(bytes)])
    }

    pub(crate) fn from_parts(parts: Vec<Part>) -> Self {
        let remaining = parts.iter().map(Part::len).sum();
        Self {
            parts: parts.into(),
            pending: None,
            spare: None,
            remaining,
            guard: None,
            chunk_size: FIRST_CHUNK,
            budget: None,
        }
    }

    /// File chunks of this body take their size from `budget` before they are read, and
    /// give it back when the connection drops them (sent or abandoned). In-memory bodies
    /// take nothing, and keep no reference to it.
    #[must_use]
    pub fn with_budget(mut self, budget: &SendBudget) -> Self {
        if self.parts.iter().any(|p| matches!(p, Part::File { .. })) {
            self.budget = Some(Box::new(Waiter::new(budget)));
        }
        self
    }

    /// Attaches a value dropped together with the body (after the last byte is sent, or
    /// when the transfer is abandoned).
    #[must_use]
    pub fn with_guard(mut self, guard: impl OnDone) -> Self {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Bytes not yet produced.
    #[must_use]
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = &mut *self;
        loop {
            if let Some(task) = this.pending.as_mut() {
                let res = ready!(Pin::new(task).poll(cx));
                this.pending = None;
                let buf = res.map_err(io::Error::other).and_then(|r| r)?;
                let permit = this.budget.as_mut().and_then(|w| w.reading.take());
                return Poll::Ready(Some(Ok(this.chunk(buf, permit))));
            }
            // The next file chunk's size, and its room in the send budget before it is read.
            let next = match this.parts.front() {
                Some(Part::File { len, .. }) if *len > 0 => Some(*len),
                _ => None,
            };
            // At most FILE_CHUNK, so the cast is lossless.
            #[allow(clippy::cast_possible_truncation)]
            let n = next.map_or(0, |len| len.min(u64::from(this.chunk_size)) as usize);
            let permit = match (next, this.budget.as_mut()) {
                (Some(_), Some(waiter)) => ready!(waiter.poll_permit(cx, n)),
                _ => None,
            };
            let n = permit.as_ref().map_or(n, |p| n.min(p.bytes()));
            match this.parts.pop_front() {
                None => {
                    if let Some(guard) = this.guard.take() {
                        guard.done(0);
                    }
                    return Poll::Ready(None);
                }
                Some(Part::Bytes(b)) if b.is_empty() => {}
                Some(Part::Bytes(b)) => {
                    this.remaining -= b.len() as u64;
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Some(Part::File { len: 0, .. }) => {}
                Some(Part::File { file, offset, len }) => {
                    this.chunk_size = (this.chunk_size * 2).min(FILE_CHUNK);
                    let mut buf = this.spare().take(n);
                    // Some(count) read from the page cache, None: the disk must be waited for.
                    let cached = match read_cached(&file, &mut buf, offset) {
                        Ok(0) => return Poll::Ready(Some(Err(shrank()))),
                        Ok(got) => Some(got),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                        Err(e) => return Poll::Ready(Some(Err(e))),
                    };
                    let taken = cached.unwrap_or(n) as u64;
                    if len > taken {
                        this.parts.push_front(Part::File {
                            file: Arc::clone(&file),
                            offset: offset + taken,
                            len: len - taken,
                        });
                    }
                    if let Some(got) = cached {
                        buf.truncate(got);
                        return Poll::Ready(Some(Ok(this.chunk(buf, permit))));
                    }
                    if let Some(waiter) = this.budget.as_mut() {
                        waiter.reading = permit;
                    }
                    this.pending = Some(tokio::task::spawn_blocking(move || {
                        read_exact_at(&file, &mut buf, offset).map(|()| buf)
                    }));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0 && self.pending.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl Body {
    /// Wraps a filled buffer as the next frame; its allocation comes back to `spare` when
    /// the connection drops the frame.
    fn chunk(&mut self, buf: Vec<u8>, permit: Option<Permit>) -> Frame<Bytes> {
        self.remaining -= buf.len() as u64;
        let home = Arc::clone(self.spare());
        Frame::data(Bytes::from_owner(Chunk {
            buf,
            home,
            _permit: permit,
        }))
    }

    /// The buffers of this body's file chunks (made with the first; in-memory bodies have
    /// none).
    fn spare(&mut self) -> &Arc<Spare> {
        self.spare.get_or_insert_with(Arc::default)
    }
}

/// Buffers returned by a body's dropped chunks (at most [`SPARE_MAX`]).
#[derive(Default)]
struct Spare(Mutex<Vec<Vec<u8>>>);

/// A connection holds one chunk while it encrypts and writes it, sometimes two.
const SPARE_MAX: usize = 2;

impl Spare {
    /// A buffer of exactly `n` initialised bytes: a returned one when there is one (no
    /// allocation, no zeroing), else a new one.
    fn take(&self, n: usize) -> Vec<u8> {
        let spare = self.0.lock().ok().and_then(|mut v| v.pop());
        match spare {
            Some(mut buf) if buf.capacity() >= n => {
                // Shrinking or regrowing within the old length costs nothing: those bytes
                // are initialised already; only a grow past it zeroes.
                buf.resize(n, 0);
                buf
            }
            _ => vec![0; n],
        }
    }
}

/// The owner of one frame's bytes: gives its buffer back, and its send budget, on drop.
struct Chunk {
    buf: Vec<u8>,
    home: Arc<Spare>,
    _permit: Option<Permit>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut spare) = self.home.0.lock() {
            if spare.len() < SPARE_MAX {
                spare.push(buf);
            }
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.done(self.remaining);
        }
    }
}

fn shrank() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank while being sent")
}

/// Fills `buf` from `offset`. A file that shrank under us is an error (the connection is
/// then aborted), never a short body under a longer Content-Length.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => shrank(),
        _ => e,
    })
}

/// Set once `RWF_NOWAIT` turned out unsupported: every read then goes to the blocking pool.
static NOWAIT_UNSUPPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Reads what the page cache holds at `offset` into `buf` without waiting for the disk:
/// the count read (0 at end of file), or `WouldBlock` when the first byte is not cached (or
/// the kernel or file system cannot tell, once seen for the whole process).
#[cfg(target_os = "linux")]
fn read_cached(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use rustix::io::{preadv2, Errno, ReadWriteFlags};
    use std::sync::atomic::Ordering;
    if NOWAIT_UNSUPPORTED.load(Ordering::Relaxed) {
        return Err(io::ErrorKind::WouldBlock.into());
    }
    match preadv2(
        file,
        &mut [io::IoSliceMut::new(buf)],
        offset,
        ReadWriteFlags::NOWAIT,
    ) {
        Ok(n) => Ok(n),
        Err(Errno::AGAIN) => Err(io::ErrorKind::WouldBlock.into()),
        // Before Linux 4.14, or a file system without non-blocking reads.
        Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
            NOWAIT_UNSUPPORTED.store(true, Ordering::Relaxed);
            Err(io::ErrorKind::WouldBlock.into())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn read_cached(_: &File, _: &mut [u8], _: u64) -> io::Result<usize> {
    Err(io::ErrorKind::WouldBlock.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::SendPool;
    use http_body_util::BodyExt;
    use std::io::Write;
    use std::time::Duration;

    #[tokio::test]
    async fn file_parts_stream_exact_bytes_in_chunks() {
        let mut tmp = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        tmp.write_all(&data).unwrap();
        let file = Arc::new(tmp);
        let body = Body::from_parts(vec![
            Part::Bytes(Bytes::from_static(b"head")),
            Part::File {
                file: Arc::clone(&file),
                offset: 10,
                len: 600_000,
            },
            Part::Bytes(Bytes::from_static(b"tail")),
        ]);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(600_008));
        let out = body.collect().await.unwrap().to_bytes();
        assert_eq!(&out[..4], b"head");
        assert_eq!(&out[4..600_004], &data[10..600_010]);
        assert_eq!(&out[600_004..], b"tail");
    }

    /// Streams `len` bytes at `offset` frame by frame, dropping each frame before asking for
    /// the next, so that chunk buffers are recycled (and shrunk for the last chunk).
    async fn stream_dropping_frames(file: Arc<File>, offset: u64, len: u64) -> Vec<u8> {
        let mut body = Body::from_parts(vec![Part::File { file, offset, len }]);
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= FILE_CHUNK as usize);
            out.extend_from_slice(&data);
        }
        assert_eq!(body.remaining(), 0);
        out
    }

    fn patterned_file(len: u32) -> (Arc<File>, Vec<u8>) {
        let mut tmp = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
            .collect();
        tmp.write_all(&data).unwrap();
        (Arc::new(tmp), data)
    }

    #[tokio::test]
    async fn recycled_chunk_buffers_carry_no_stale_bytes() {
        let (file, data) = patterned_file(1_000_003);
        let out = stream_dropping_frames(Arc::clone(&file), 5, 999_990).await;
        assert_eq!(out, &data[5..999_995]);
        // A short range after long chunks reuses a larger buffer, shrunk.
        let out = stream_dropping_frames(file, 77, 1000).await;
        assert_eq!(out, &data[77..1077]);
    }

    #[tokio::test]
    async fn chunks_start_small_double_and_wait_for_room_in_the_send_budget() {
        let (file, data) = patterned_file(1_000_000);
        let pool = SendPool::new(1 << 20);
        let budget = SendBudget::for_connection(&pool, 64 * 1024);
        let mut body = Body::from_parts(vec![Part::File {
            file,
            offset: 0,
            len: 1_000_000,
        }])
        .with_budget(&budget);
        // Held frames keep their budget: 16 + 32 KiB fit in 64 KiB, the next 64 KiB not.
        let a = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let b = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!((a.len(), b.len()), (16 * 1024, 32 * 1024));
        let waiting = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(
            waiting.is_err(),
            "a chunk was read beyond the connection's budget"
        );
        let mut out = [a, b].concat();
        // Once they are sent (dropped), the rest streams, whole and in order; each chunk is
        // at most the connection's budget.
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.len() <= 64 * 1024);
            out.extend_from_slice(&data);
        }
        assert_eq!(out, data);
        // An in-memory body keeps no budget.
        assert!(Body::from_bytes(Bytes::from_static(b"x"))
            .with_budget(&budget)
            .budget
            .is_none());
    }

    #[tokio::test]
    async fn the_blocking_pool_path_streams_the_same_bytes() {
        // As on a kernel without RWF_NOWAIT: every chunk is read on the blocking pool.
        // (Other tests in this process may then take that path too; it is equally correct.)
        NOWAIT_UNSUPPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
        let (file, data) = patterned_file(700_000);
        let out = stream_dropping_frames(Arc::clone(&file), 3, 699_990).await;
        NOWAIT_UNSUPPORTED.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(out, &data[3..699_993]);
    }

    #[tokio::test]
    async fn a_file_that_shrank_is_an_error_not_a_short_body() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(&[1; 100]).unwrap();
        let body = Body::from_parts(vec![Part::File {
            file: Arc::new(tmp),
            offset: 0,
            len: 200,
        }]);
        assert!(body.collect().await.is_err());
    }
}
