//! The HTTP/2 write cork and its flush gate: [`Cork`] holds hyper's small writes until a
//! flush, so that what hyper writes between two flushes leaves as one TLS record and one
//! `writev`; [`FlushGate`] lets the driver (server/driver.rs) put those flushes off until
//! the end of a wake-up, so that the responses to one read of requests leave together.
//! The gate is the only state the driver and the IO share for this; both halves of the
//! protocol are here.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;

use super::write::{poll_drain, poll_write_behind, total_len};

/// The most a [`Cork`] holds back until a flush: one full TLS record of plaintext. hyper's
/// HTTP/2 writes each response whose body is over 256 bytes as its own write (frame
/// headers, then the body), and the TLS stream sends every write at once: without the cork,
/// ten responses to one read of ten requests cost ten records and ten `writev`s. A write
/// that does not fit goes out behind what is held, in the same write.
pub(crate) const CORK_MAX: usize = 16 * 1024;

/// Writes held until the next flush (or a write that does not fit). Off, it holds nothing
/// and every write goes straight through (HTTP/1.1 writes each response once, vectored).
#[derive(Debug, Default)]
pub(super) struct Cork {
    held: Vec<u8>,
    on: bool,
}

impl Cork {
    /// From now on writes up to [`CORK_MAX`] in all are held.
    pub(super) fn turn_on(&mut self) {
        self.on = true;
    }

    /// Whether writes are held (the stream then reports no vectored writes, so that h2
    /// copies small DATA frames into its own buffer).
    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    /// Whether bytes are held.
    pub(super) fn holds_bytes(&self) -> bool {
        !self.held.is_empty()
    }

    /// Takes `bufs` when the cork is on and they fit with what it holds; `None` when not.
    pub(super) fn take(&mut self, bufs: &[io::IoSlice<'_>]) -> Option<usize> {
        let len = total_len(bufs);
        if !self.on || self.held.len() + len > CORK_MAX {
            return None;
        }
        if self.held.capacity() == 0 {
            // Room for a few small responses; it grows up to CORK_MAX when more come.
            self.held.reserve(len.max(CORK_MAX / 4));
        }
        for b in bufs {
            self.held.extend_from_slice(b);
        }
        Some(len)
    }

    /// Writes `bufs` behind what is held, in one write to `inner` (one TLS record and one
    /// `writev` when they fit); the count is of `bufs`' bytes only.
    pub(super) fn poll_write_through<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_write_behind(inner, cx, &mut self.held, bufs)
    }

    /// Writes out what is held; whether any of it went out rides along.
    pub(super) fn poll_uncork<W: AsyncWrite + Unpin>(
        &mut self,
        inner: &mut W,
        cx: &mut Context<'_>,
    ) -> (Poll<io::Result<()>>, bool) {
        if self.held.is_empty() {
            return (Poll::Ready(Ok(())), false);
        }
        let before = self.held.len();
        let res = poll_drain(inner, cx, &mut self.held);
        (res, self.held.len() < before)
    }

    /// What is held, taken (for the close path: it leaves ahead of close_notify).
    pub(super) fn take_held(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.held.capacity()
    }
}

/// Whether a flush of the cork is put off. hyper's HTTP/2 flushes before each response
/// body over 1 KiB, so responses to one read of requests would still leave one write
/// each; the driver holds the gate while it polls the connection, then (when
/// [`FlushGate::take_owed`] says a flush was put off) polls it once more with the gate
/// open, and that poll's flush (h2 flushes at the end of every poll) writes them all at
/// once. Only the connection's own task touches it.
#[derive(Debug, Default)]
pub(crate) struct FlushGate {
    held: AtomicBool,
    owed: AtomicBool,
}

impl FlushGate {
    /// The driver: hold (`true`) or open the gate.
    pub(crate) fn hold(&self, on: bool) {
        self.held.store(on, Ordering::Relaxed);
    }

    /// The driver: whether a flush was put off since the last real one (and clears it).
    pub(crate) fn take_owed(&self) -> bool {
        self.owed.swap(false, Ordering::Relaxed)
    }

    /// The IO, on a flush: whether to put it off (the gate is held and the cork holds
    /// bytes); a flush put off is owed.
    pub(super) fn put_off(&self, cork: &Cork) -> bool {
        if cork.holds_bytes() && self.held.load(Ordering::Relaxed) {
            self.owed.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// The IO: a real flush happened; nothing is owed.
    pub(super) fn flushed(&self) {
        self.owed.store(false, Ordering::Relaxed);
    }
}
