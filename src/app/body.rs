//! [`Body`]: the response body of every rampart response. In-memory assets are `Bytes`
//! slices of the table (no copy); large files are read from an already-open file in chunks
//! on the blocking pool. Multipart range responses are a queue of both kinds of part.
//! The exact remaining length is always known, so `size_hint` is exact.

use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

/// Bytes read from disk per frame when streaming a file.
const FILE_CHUNK: u64 = 256 * 1024;

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
    pending: Option<JoinHandle<io::Result<Bytes>>>,
    remaining: u64,
    guard: Option<Box<dyn OnDone>>,
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
            remaining,
            guard: None,
        }
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
                let chunk = res.map_err(io::Error::other).and_then(|r| r)?;
                this.remaining -= chunk.len() as u64;
                return Poll::Ready(Some(Ok(Frame::data(chunk))));
            }
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
                    let n = len.min(FILE_CHUNK);
                    if len > n {
                        this.parts.push_front(Part::File {
                            file: Arc::clone(&file),
                            offset: offset + n,
                            len: len - n,
                        });
                    }
                    this.pending = Some(tokio::task::spawn_blocking(move || {
                        read_at(&file, offset, n)
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

impl Drop for Body {
    fn drop(&mut self) {
        if let Some(guard) = self.guard.take() {
            guard.done(self.remaining);
        }
    }
}

/// Reads exactly `len` bytes at `offset`. A file that shrank under us is an error (the
/// connection is then aborted), never a short body under a longer Content-Length.
fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    file.read_exact_at(&mut buf, offset)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;

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
