//! [`SendBudget`]: a bound on the file bytes read for responses and not yet sent, per
//! connection and for the whole process.
//!
//! A file chunk is read into memory before the protocol can send it, and it is freed only
//! once it has been written to the client. hyper's HTTP/2 server asks a body for its next
//! chunk before it knows whether the stream has window to send it, so a client that opens
//! many streams for a large file and grants no window (SETTINGS_INITIAL_WINDOW_SIZE = 0) made
//! the server read and hold a chunk per stream: 26 MiB for 100 streams, for nothing. Here a
//! body takes a chunk's size from its connection's budget and from the process's before it
//! reads; the permits ride on the chunk and come back when the connection drops it (sent, or
//! the stream reset). A body that finds no budget waits, woken when another chunk is sent.
//!
//! Chunks start small and double (see [`Body`](super::Body)), so a stream that is never
//! given window holds one small chunk, and the connection budget is above what every
//! stream's first chunk needs at once: a stream the client does read from always finds
//! room. Budgets count whole KiB. In-memory assets (slices of the table) cost nothing and
//! take no budget.

use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// File bytes one connection may hold read and unsent: every stream's first chunk at the
/// default stream limit (128 x 16 KiB), and as much again for the streams being read.
pub const CONNECTION_MAX: usize = 4 * 1024 * 1024;

/// File bytes all connections together may hold read and unsent.
pub const TOTAL_MAX: usize = 256 * 1024 * 1024;

/// A connection's share of the bytes read for responses and not yet sent, and the process's;
/// each response body that streams from a file waits on it as it reads each chunk.
/// The connection's semaphore is made when its first file chunk is read: an idle
/// connection, or one that only gets in-memory assets, allocates nothing for it.
#[derive(Debug)]
pub struct SendBudget {
    connection: OnceLock<Arc<Semaphore>>,
    connection_kib: u32,
    total: SendPool,
}

/// The process-wide pool that [`SendBudget::for_connection`] draws on.
#[derive(Clone, Debug)]
pub struct SendPool {
    sem: Arc<Semaphore>,
    kib: u32,
}

impl SendPool {
    /// A pool of `bytes` (rounded down to whole KiB).
    #[must_use]
    pub fn new(bytes: usize) -> Self {
        let kib = kib(bytes);
        Self {
            sem: Arc::new(Semaphore::new(kib as usize)),
            kib,
        }
    }
}

/// `bytes` in whole KiB, saturating.
fn kib(bytes: usize) -> u32 {
    u32::try_from(bytes / 1024).unwrap_or(u32::MAX)
}

impl Default for SendPool {
    fn default() -> Self {
        Self::new(TOTAL_MAX)
    }
}

impl SendBudget {
    /// A new connection's budget of `bytes` (whole KiB), drawing on `pool`.
    #[must_use]
    pub fn for_connection(pool: &SendPool, bytes: usize) -> Self {
        Self {
            connection: OnceLock::new(),
            connection_kib: kib(bytes),
            total: pool.clone(),
        }
    }
}

/// Held by a chunk while it is unsent: its bytes in both budgets.
#[derive(Debug)]
pub(crate) struct Permit {
    connection: OwnedSemaphorePermit,
    total: OwnedSemaphorePermit,
}

impl Permit {
    /// The most bytes the chunk may hold: what was asked for, or less when a budget is
    /// smaller than that.
    pub(crate) fn bytes(&self) -> usize {
        self.connection.num_permits().min(self.total.num_permits()) * 1024
    }
}

/// A body's place in the budgets' queues while it waits for a chunk's worth.
pub(crate) struct Waiter {
    connection: PollSemaphore,
    connection_kib: u32,
    total: PollSemaphore,
    total_kib: u32,
    /// Taken from the connection while the process's pool is waited for.
    held: Option<OwnedSemaphorePermit>,
    /// The permit of the chunk being read on the blocking pool (its body keeps it here).
    pub(crate) reading: Option<Permit>,
}

impl Waiter {
    pub(crate) fn new(budget: &SendBudget) -> Self {
        Self {
            connection: PollSemaphore::new(Arc::clone(
                budget
                    .connection
                    .get_or_init(|| Arc::new(Semaphore::new(budget.connection_kib as usize))),
            )),
            connection_kib: budget.connection_kib,
            total: PollSemaphore::new(Arc::clone(&budget.total.sem)),
            total_kib: budget.total.kib,
            held: None,
            reading: None,
        }
    }

    /// A permit for `bytes` (rounded up to whole KiB): ready when both budgets have room,
    /// else pending with the task registered. A request larger than a budget is cut to it
    /// (it never waits forever; see [`Permit::bytes`]); `None` when a budget was closed
    /// (never, here).
    pub(crate) fn poll_permit(
        &mut self,
        cx: &mut Context<'_>,
        bytes: usize,
    ) -> Poll<Option<Permit>> {
        let need = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if self.held.is_none() {
            let want = need.min(self.connection_kib);
            match ready!(self.connection.poll_acquire_many(cx, want)) {
                Some(p) => self.held = Some(p),
                None => return Poll::Ready(None),
            }
        }
        let want = need.min(self.total_kib);
        let Some(total) = ready!(self.total.poll_acquire_many(cx, want)) else {
            return Poll::Ready(None);
        };
        let Some(connection) = self.held.take() else {
            return Poll::Ready(None);
        };
        Poll::Ready(Some(Permit { connection, total }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll(w: &mut Waiter, bytes: usize) -> Poll<Option<Permit>> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        w.poll_permit(&mut cx, bytes)
    }

    #[tokio::test]
    async fn a_chunk_waits_for_room_in_its_connection_and_is_woken_when_a_chunk_is_sent() {
        let pool = SendPool::new(1 << 20);
        let budget = SendBudget::for_connection(&pool, 64 * 1024);
        let mut a = Waiter::new(&budget);
        let mut b = Waiter::new(&budget);
        let first = match poll(&mut a, 48 * 1024) {
            Poll::Ready(Some(p)) => p,
            other => panic!("room for the first chunk: {:?}", other.is_ready()),
        };
        // 16 KiB left on this connection: 32 KiB must wait.
        assert!(poll(&mut b, 32 * 1024).is_pending());
        // Another connection is not held up.
        let other = SendBudget::for_connection(&pool, 64 * 1024);
        assert!(matches!(
            poll(&mut Waiter::new(&other), 32 * 1024),
            Poll::Ready(Some(_))
        ));
        // The first chunk is sent (dropped): the waiter gets its turn.
        drop(first);
        assert!(matches!(poll(&mut b, 32 * 1024), Poll::Ready(Some(_))));
    }

    #[tokio::test]
    async fn the_process_pool_bounds_all_connections_together() {
        let pool = SendPool::new(100 * 1024);
        let held: Vec<Permit> = (0..3)
            .map(|_| {
                let budget = SendBudget::for_connection(&pool, 64 * 1024);
                match poll(&mut Waiter::new(&budget), 32 * 1024) {
                    Poll::Ready(Some(p)) => p,
                    _ => panic!("room in the pool"),
                }
            })
            .collect();
        let budget = SendBudget::for_connection(&pool, 64 * 1024);
        let mut late = Waiter::new(&budget);
        assert!(
            poll(&mut late, 32 * 1024).is_pending(),
            "4 KiB left in the pool"
        );
        drop(held);
        assert!(matches!(poll(&mut late, 32 * 1024), Poll::Ready(Some(_))));
    }
}
