//! Skew protection: the content-hashed assets of previous deploys, kept servable for a
//! while after a redeploy (`--keep-old-assets`, default 1 day). A tab opened before the
//! redeploy still runs the old build and asks for its lazy chunks
//! (`/assets/Settings-CIwc-Tsr.js`) by their old names; without this store they are a 404
//! and the app breaks at the next route change.
//!
//! Only assets the table serves `immutable` (a hash in the name, app/hashed.rs) are kept:
//! index.html and every unhashed file are always the newest. [`Retired`] is an immutable
//! part of each [`AssetTable`]: the build carries the previous table's store forward, adds
//! the previous table's hashed assets the new tree no longer has (superseded now), and
//! drops the expired ones, the ones the new table serves again and, oldest first, whatever
//! exceeds [`MAX_RETIRED_BYTES`] or [`MAX_RETIRED_ENTRIES`]. A lookup checks the age against
//! a monotonic clock, so an entry expires on time even when no redeploy prunes it.
//!
//! Streamed (large) assets are not kept: their bytes are read from disk per request, and a
//! deploy that deletes the old file leaves nothing to serve (keeping open handles would
//! hold disk space the operator believes freed). The service looks here only after the
//! table missed and before the SPA fallback or 404 (app/mod.rs `resolve`); this module
//! never serves and never logs but through [`Retired::log_kept`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::assets::{Asset, AssetTable};

/// The most bytes of old assets kept (all representations): 256 MiB is a few dozen
/// generations of a large app's chunks (a few MB each, with br and gzip), while bounding
/// what a burst of deploys can pin in memory.
pub const MAX_RETIRED_BYTES: u64 = 256 * 1024 * 1024;

/// The most old assets kept: a big app has a few hundred chunks per build, so this is
/// dozens of deploys, and bounds the map however small the files are.
pub const MAX_RETIRED_ENTRIES: usize = 10_000;

/// The hashed assets of previous tables that are still servable (see the module docs).
#[derive(Debug, Default)]
pub struct Retired {
    /// How long an asset stays servable after it was superseded; zero keeps none.
    keep: Duration,
    entries: HashMap<Box<str>, Retiree>,
    bytes: u64,
}

#[derive(Debug, Clone)]
struct Retiree {
    asset: Arc<Asset>,
    /// When the build that dropped it from the table ran.
    since: Instant,
    bytes: u64,
}

impl Retired {
    /// The store of the table that follows `previous` and serves `next`.
    pub(crate) fn carry(
        previous: Option<&AssetTable>,
        next: &HashMap<Box<str>, Arc<Asset>>,
        keep: Duration,
    ) -> Self {
        Self::carry_at(previous, next, keep, Instant::now())
    }

    fn carry_at(
        previous: Option<&AssetTable>,
        next: &HashMap<Box<str>, Arc<Asset>>,
        keep: Duration,
        now: Instant,
    ) -> Self {
        let mut out = Self {
            keep,
            ..Self::default()
        };
        let Some(prev) = previous.filter(|_| !keep.is_zero()) else {
            return out;
        };
        let fresh = |since: Instant| now.saturating_duration_since(since) < keep;
        let mut all: Vec<(&str, Retiree)> = prev
            .retired()
            .entries
            .iter()
            .filter(|(url, r)| fresh(r.since) && !next.contains_key(*url))
            .map(|(url, r)| (&**url, r.clone()))
            .collect();
        for (url, asset) in &prev.assets {
            if asset.is_hashed() && !asset.is_streamed() && !next.contains_key(url) {
                let bytes = asset.reps.iter().map(|r| r.bytes.len() as u64).sum();
                let since = now;
                all.push((
                    url,
                    Retiree {
                        asset: Arc::clone(asset),
                        since,
                        bytes,
                    },
                ));
            }
        }
        // Newest first (then by URL, so a build is deterministic); the oldest go first.
        all.sort_by(|a, b| b.1.since.cmp(&a.1.since).then_with(|| a.0.cmp(b.0)));
        for (url, r) in all {
            if out.entries.len() >= MAX_RETIRED_ENTRIES
                || out.bytes.saturating_add(r.bytes) > MAX_RETIRED_BYTES
            {
                break;
            }
            out.bytes += r.bytes;
            out.entries.insert(url.into(), r);
        }
        out
    }

    /// The old asset at a decoded request path, if it is still servable.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&Arc<Asset>> {
        self.entries
            .get(path)
            .filter(|r| r.since.elapsed() < self.keep)
            .map(|r| &r.asset)
    }

    /// Old assets kept (some may have expired since the build).
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no old asset is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes the old assets hold (all representations).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Logs at info how many old assets the table swapped in keeps (nothing when none).
    pub(crate) fn log_kept(&self) {
        if !self.is_empty() {
            tracing::info!(
                retained = self.len(),
                bytes = self.bytes,
                keep_s = self.keep.as_secs(),
                "previous deploys' hashed assets stay servable for tabs opened before the redeploy"
            );
        }
    }
}
