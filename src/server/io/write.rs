//! Writing held bytes ahead of new ones in one write (the TLS 1.3 ticket hold and the HTTP/2
//! cork both hold bytes back), and the small helpers around it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

/// The stream of a [`ConnIo`] until its drop hands it to the close path.
pub(super) fn connected<S>(inner: &mut Option<S>) -> io::Result<&mut S> {
    inner
        .as_mut()
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
}

/// The bytes in `bufs`.
pub(super) fn total_len(bufs: &[io::IoSlice<'_>]) -> usize {
    bufs.iter().map(|b| b.len()).sum()
}

/// Writes `bufs` behind `held` in one write to `inner`; `Ready(n)` counts `bufs`' bytes
/// only. What of `held` went out leaves it; its allocation is freed once it is empty (an
/// idle connection keeps none).
pub(super) fn poll_write_behind<W: AsyncWrite + Unpin>(
    inner: &mut W,
    cx: &mut Context<'_>,
    held: &mut Vec<u8>,
    bufs: &[io::IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    loop {
        let before = held.len();
        if before == 0 {
            return Pin::new(&mut *inner).poll_write_vectored(cx, bufs);
        }
        let mut all = Vec::with_capacity(bufs.len() + 1);
        all.push(io::IoSlice::new(held));
        all.extend(bufs.iter().map(|b| io::IoSlice::new(b)));
        let n = std::task::ready!(Pin::new(&mut *inner).poll_write_vectored(cx, &all))?;
        if n == 0 {
            return Poll::Ready(Ok(0));
        }
        if n < before {
            held.drain(..n);
            continue;
        }
        *held = Vec::new();
        if n > before || bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(n - before));
        }
    }
}

/// Writes out all of `held`, freeing its allocation once it is empty.
pub(super) fn poll_drain<W: AsyncWrite + Unpin>(
    inner: &mut W,
    cx: &mut Context<'_>,
    held: &mut Vec<u8>,
) -> Poll<io::Result<()>> {
    while !held.is_empty() {
        let n = std::task::ready!(Pin::new(&mut *inner).poll_write(cx, held))?;
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        if n == held.len() {
            *held = Vec::new();
        } else {
            held.drain(..n);
        }
    }
    Poll::Ready(Ok(()))
}
