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
        let limits = (MAX_RETIRED_BYTES, MAX_RETIRED_ENTRIES);
        Self::carry_at(previous, next, keep, Instant::now(), limits)
    }

    fn carry_at(
        previous: Option<&AssetTable>,
        next: &HashMap<Box<str>, Arc<Asset>>,
        keep: Duration,
        now: Instant,
        (max_bytes, max_entries): (u64, usize),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::assets::BuildOptions;
    use crate::app::SecurityHeaders;
    use std::path::Path;

    fn options(keep: Duration) -> BuildOptions {
        BuildOptions {
            stream_threshold: 8 << 20,
            security: SecurityHeaders::new(0),
            keep_old_assets: keep,
        }
    }

    fn deploy(root: &Path, files: &[(&str, &str)]) {
        if root.exists() {
            std::fs::remove_dir_all(root).unwrap();
        }
        for (name, text) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn superseded_hashed_assets_are_kept_and_unhashed_ones_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        let opts = options(Duration::from_secs(60));
        deploy(
            &root,
            &[
                ("index.html", "v1"),
                ("assets/app-Ab12Cd34.js", "chunk v1"),
                ("notes.txt", "v1"),
            ],
        );
        let v1 = AssetTable::build(&root, &opts, None).unwrap();
        assert!(v1.retired().is_empty());
        deploy(
            &root,
            &[("index.html", "v2"), ("assets/app-Ef56Gh78.js", "chunk v2")],
        );
        let v2 = AssetTable::build(&root, &opts, Some(&v1)).unwrap();
        assert_eq!(v2.retired().len(), 1);
        assert!(v2.retired().get("/assets/app-Ab12Cd34.js").is_some());
        assert!(v2.retired().get("/notes.txt").is_none());
        deploy(
            &root,
            &[("index.html", "v3"), ("assets/app-Ij90Kl12.js", "chunk v3")],
        );
        let v3 = AssetTable::build(&root, &opts, Some(&v2)).unwrap();
        assert_eq!(v3.retired().len(), 2);
        assert!(v3.retired().get("/assets/app-Ab12Cd34.js").is_some());
        assert!(v3.retired().get("/assets/app-Ef56Gh78.js").is_some());
        assert_eq!(v3.retired().bytes(), 16);

        // Deployed again: the table serves it, the store lets it go.
        deploy(
            &root,
            &[("index.html", "v4"), ("assets/app-Ab12Cd34.js", "chunk v1")],
        );
        let v4 = AssetTable::build(&root, &opts, Some(&v3)).unwrap();
        assert!(v4.retired().get("/assets/app-Ab12Cd34.js").is_none());
        assert!(v4.retired().get("/assets/app-Ij90Kl12.js").is_some());
    }

    #[test]
    fn zero_keeps_nothing_and_entries_expire_by_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        deploy(&root, &[("index.html", "v1"), ("app.3f9a1c2b.js", "x")]);
        let v1 = AssetTable::build(&root, &options(Duration::ZERO), None).unwrap();
        deploy(&root, &[("index.html", "v2")]);
        let off = AssetTable::build(&root, &options(Duration::ZERO), Some(&v1)).unwrap();
        assert!(off.retired().is_empty());

        let now = Instant::now();
        let keep = Duration::from_secs(60);
        let limits = (MAX_RETIRED_BYTES, MAX_RETIRED_ENTRIES);
        let kept = Retired::carry_at(Some(&v1), &off.assets, keep, now, limits);
        assert_eq!(kept.len(), 1);
        assert!(kept.get("/app.3f9a1c2b.js").is_some());
        // Retired long ago (a clock that can go back that far): expired at lookup.
        if let Some(then) = now.checked_sub(Duration::from_secs(61)) {
            let stale = Retired::carry_at(Some(&v1), &off.assets, keep, then, limits);
            assert!(stale.get("/app.3f9a1c2b.js").is_none());
        }
    }

    #[test]
    fn the_bounds_drop_the_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        let opts = options(Duration::from_secs(600));
        let names = [
            "a.aaaa1111.js",
            "b.bbbb2222.js",
            "c.cccc3333.js",
            "d.dddd4444.js",
        ];
        deploy(&root, &[("index.html", "0"), (names[0], "0123456789")]);
        let mut table = AssetTable::build(&root, &opts, None).unwrap();
        for (i, name) in names.iter().enumerate().skip(1) {
            std::thread::sleep(Duration::from_millis(5));
            deploy(
                &root,
                &[("index.html", &i.to_string()), (name, "0123456789")],
            );
            table = AssetTable::build(&root, &opts, Some(&table)).unwrap();
        }
        // Three generations kept; the next build retires the fourth's chunk too.
        assert_eq!(table.retired().len(), 3);
        deploy(&root, &[("index.html", "5")]);
        let next = AssetTable::build(&root, &options(Duration::ZERO), None).unwrap();
        let now = Instant::now() + Duration::from_millis(5);
        let keep = Duration::from_secs(600);
        let by_bytes = Retired::carry_at(Some(&table), &next.assets, keep, now, (25, 100));
        assert_eq!(by_bytes.len(), 2, "{by_bytes:?}");
        assert!(by_bytes.get("/d.dddd4444.js").is_some());
        assert!(by_bytes.get("/c.cccc3333.js").is_some());
        assert_eq!(by_bytes.bytes(), 20);
        let by_count = Retired::carry_at(Some(&table), &next.assets, keep, now, (1 << 20, 3));
        assert_eq!(by_count.len(), 3);
        assert!(
            by_count.get("/a.aaaa1111.js").is_none(),
            "the oldest goes first"
        );
    }
}
