//! Skew protection: the content-hashed assets of previous deploys, kept servable for a
//! while after a redeploy (`--keep-old-assets`, default 1 day). A tab opened before the
//! redeploy still runs the old build and asks for its lazy chunks
//! (`/assets/Settings-CIwc-Tsr.js`) by their old names; without this store they are a 404
//! and the app breaks at the next route change.
//!
//! Only assets the table serves `immutable` (a hash in the name, app/hashed.rs) are kept:
//! index.html and every unhashed file are always the newest. [`Retired`] is an immutable
//! part of each asset table: the build carries the previous table's store forward, adds
//! the previous table's hashed assets the new tree no longer has (superseded now), and
//! drops the expired ones, the ones the new table serves again and, oldest first, whatever
//! exceeds [`MAX_RETIRED_BYTES`] or [`MAX_RETIRED_ENTRIES`]. A lookup checks the age against
//! a monotonic clock, so an entry expires on time even when no redeploy prunes it.
//!
//! Streamed (large) assets are not kept: their bytes are read from disk per request, and a
//! deploy that deletes the old file leaves nothing to serve (keeping open handles would
//! hold disk space the operator believes freed). The service looks here only after the
//! table missed and before the SPA fallback or 404 (app/mod.rs `resolve`); this module
//! never serves and never logs but through `Retired::log_kept`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most bytes of old assets kept (all representations): 256 MiB is a few dozen
/// generations of a large app's chunks (a few MB each, with br and gzip), while bounding
/// what a burst of deploys can pin in memory.
pub const MAX_RETIRED_BYTES: u64 = 256 * 1024 * 1024;

/// The most old assets kept: a big app has a few hundred chunks per build, so this is
/// dozens of deploys, and bounds the map however small the files are.
pub const MAX_RETIRED_ENTRIES: usize = 10_000;

/// The hashed assets of previous tables that are still servable (see the module docs).
/// `A` is what is kept per URL (the table's `Arc<Asset>`): the store only needs to clone it.
#[derive(Debug)]
pub struct Retired<A> {
    /// How long an asset stays servable after it was superseded; zero keeps none.
    keep: Duration,
    entries: HashMap<Box<str>, Retiree<A>>,
    bytes: u64,
}

#[derive(Debug, Clone)]
struct Retiree<A> {
    asset: A,
    /// When the build that dropped it from the table ran.
    since: Instant,
    bytes: u64,
}

impl<A: Clone> Retired<A> {
    /// An empty store for a first table.
    pub(crate) fn new(keep: Duration) -> Self {
        Self {
            keep,
            entries: HashMap::new(),
            bytes: 0,
        }
    }

    /// The store of the next table: what `previous` kept and is still fresh, plus
    /// `superseded` (URL, asset, bytes: the previous table's hashed in-memory assets the
    /// next table lacks), minus what the next table `serves` again, within the bounds.
    pub(crate) fn carry<'a>(
        previous: Option<&'a Self>,
        superseded: impl IntoIterator<Item = (&'a str, A, u64)>,
        serves: impl Fn(&str) -> bool,
        keep: Duration,
    ) -> Self {
        let limits = (MAX_RETIRED_BYTES, MAX_RETIRED_ENTRIES);
        Self::carry_at(previous, superseded, serves, keep, Instant::now(), limits)
    }

    fn carry_at<'a>(
        previous: Option<&'a Self>,
        superseded: impl IntoIterator<Item = (&'a str, A, u64)>,
        serves: impl Fn(&str) -> bool,
        keep: Duration,
        now: Instant,
        (max_bytes, max_entries): (u64, usize),
    ) -> Self {
        let mut out = Self::new(keep);
        if keep.is_zero() {
            return out;
        }
        let fresh = |since: Instant| now.saturating_duration_since(since) < keep;
        let mut all: Vec<(&str, Retiree<A>)> = previous
            .into_iter()
            .flat_map(|p| &p.entries)
            .filter(|(url, r)| fresh(r.since) && !serves(url))
            .map(|(url, r)| (&**url, r.clone()))
            .collect();
        all.extend(superseded.into_iter().map(|(url, asset, bytes)| {
            let since = now;
            (
                url,
                Retiree {
                    asset,
                    since,
                    bytes,
                },
            )
        }));
        // Newest first (then by URL, so a build is deterministic); the oldest go first.
        all.sort_by(|a, b| b.1.since.cmp(&a.1.since).then_with(|| a.0.cmp(b.0)));
        for (url, r) in all {
            if out.entries.len() >= max_entries || out.bytes.saturating_add(r.bytes) > max_bytes {
                break;
            }
            out.bytes += r.bytes;
            out.entries.insert(url.into(), r);
        }
        out
    }

    /// The old asset at a decoded request path, if it is still servable.
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&A> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: (u64, usize) = (MAX_RETIRED_BYTES, MAX_RETIRED_ENTRIES);
    const KEEP: Duration = Duration::from_secs(60);

    /// One redeploy at `now`: `dropped` leave the table, `served` are in the next one.
    fn step(
        prev: &Retired<&'static str>,
        dropped: &[&'static str],
        served: &[&str],
        now: Instant,
        limits: (u64, usize),
    ) -> Retired<&'static str> {
        let superseded = dropped.iter().map(|u| (*u, *u, u.len() as u64));
        Retired::carry_at(
            Some(prev),
            superseded,
            |u| served.contains(&u),
            KEEP,
            now,
            limits,
        )
    }

    #[test]
    fn superseded_assets_are_kept_until_served_again() {
        let t0 = Instant::now();
        let v1 = Retired::new(KEEP);
        let v2 = step(&v1, &["/a-Ab12Cd34.js"], &[], t0, LIMITS);
        let v3 = step(&v2, &["/b-Ef56Gh78.js"], &[], t0, LIMITS);
        assert_eq!(v3.len(), 2);
        assert_eq!(v3.get("/a-Ab12Cd34.js"), Some(&"/a-Ab12Cd34.js"));
        assert_eq!(v3.bytes(), 28);
        let v4 = step(&v3, &[], &["/a-Ab12Cd34.js"], t0, LIMITS);
        assert!(
            v4.get("/a-Ab12Cd34.js").is_none(),
            "served by the table again"
        );
        assert!(v4.get("/b-Ef56Gh78.js").is_some());
    }

    #[test]
    fn zero_keeps_nothing_and_entries_expire_by_the_clock() {
        let now = Instant::now();
        let off: Retired<&str> = Retired::carry_at(
            None,
            [("/x", "/x", 2)],
            |_| false,
            Duration::ZERO,
            now,
            LIMITS,
        );
        assert!(off.is_empty());
        let kept = step(&Retired::new(KEEP), &["/x"], &[], now, LIMITS);
        assert!(kept.get("/x").is_some());
        // Retired long ago (on a clock that goes back that far): expired at lookup, and
        // pruned by the next build.
        if let Some(then) = now.checked_sub(KEEP + Duration::from_secs(1)) {
            let stale = step(&Retired::new(KEEP), &["/x"], &[], then, LIMITS);
            assert!(stale.get("/x").is_none());
            assert!(step(&stale, &[], &[], now, LIMITS).is_empty());
        }
    }

    #[test]
    fn the_bounds_drop_the_oldest_first() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut store = Retired::new(KEEP);
        for (i, url) in ["/a.js", "/b.js", "/c.js"].into_iter().enumerate() {
            store = step(&store, &[url], &[], t0 + ms(i as u64), LIMITS);
        }
        let by_bytes = step(&store, &["/d.js"], &[], t0 + ms(3), (10, 100));
        assert_eq!(by_bytes.len(), 2);
        assert!(by_bytes.get("/d.js").is_some() && by_bytes.get("/c.js").is_some());
        let by_count = step(&store, &["/d.js"], &[], t0 + ms(3), (100, 3));
        assert_eq!(by_count.len(), 3);
        assert!(by_count.get("/a.js").is_none(), "the oldest goes first");
    }
}
