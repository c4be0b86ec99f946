//! The asset table: every file under the root, loaded once into memory with everything a
//! response needs precomputed (content type, strong ETag from the content hash, Last-Modified,
//! Cache-Control, security headers, gzip/brotli variants, the full 200 header block). A
//! request is a hash lookup plus a header-map clone. Files above the stream threshold keep
//! only their metadata and hash here and are streamed from disk, with their checked
//! `.br`/`.gz` sidecars (app/precompressed.rs).
//!
//! The table is immutable: a redeploy builds a new one (reusing unchanged entries) and swaps
//! it in atomically ([`super::Site::reload`]). This module never serves; it only builds.
//!
//! Nor does it log: what the walk refused and the sidecars the build ignored are the
//! table's [`Finding`]s, reported by whoever swaps the table in (see [`super::tree`]).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};

use super::encoding::Encoding;
use super::hashed::HashedNames;
use super::headers::{self as policy, SecurityHeaders};
use super::precompressed;
use super::retired::Retired;
use super::routes::{self, OperatorRules, Rules};
use super::tree::{Finding, Found, Tree, Unreadable};
use crate::rules::{HeaderOp, RuleError, SiteRules};

/// Text assets smaller than this are not compressed: the saving would not pay the header.
const MIN_COMPRESS: u64 = 256;
/// Brotli quality 11 is slow; above this size quality 9 keeps redeploys quick.
const BROTLI_MAX_QUALITY_LIMIT: u64 = 1024 * 1024;

/// Why a table could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The root or a file under it could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The root has no index.html (a deploy may be half-copied).
    #[error("{0}: no index.html")]
    MissingIndex(PathBuf),
    /// The new index.html references scripts or styles that are not in the root yet (a
    /// deploy still copying its bundles); the previous table stays in service for a while
    /// (app/deploy_check.rs).
    #[error("index.html references files not in the root yet: {}", missing.join(", "))]
    Incomplete {
        /// The missing URL paths, in document order.
        missing: Vec<String>,
    },
    /// A site rule file does not parse, or the rules have a redirect loop.
    #[error("{}", RuleErrors(.0))]
    Rules(Vec<RuleError>),
}

/// Rule errors as one message, one per line.
struct RuleErrors<'a>(&'a [RuleError]);

impl std::fmt::Display for RuleErrors<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<Unreadable> for BuildError {
    fn from(Unreadable { path, source }: Unreadable) -> Self {
        Self::Io { path, source }
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Options fixed for the life of the server.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Files above this many bytes are streamed from disk.
    pub stream_threshold: u64,
    /// Headers added to every response.
    pub security: SecurityHeaders,
    /// The operator's site rules (`rampart.toml`), merged with the root's rule files at
    /// each build (app/routes.rs).
    pub rules: Arc<OperatorRules>,
    /// How long a previous deploy's hashed assets stay servable after a redeploy dropped
    /// them (`--keep-old-assets`; zero keeps none). See app/retired.rs.
    pub keep_old_assets: Duration,
    /// The `Alt-Svc` header advertising HTTP/3 that every listener shares, stored in each
    /// representation's headers (server/alt_svc.rs); None when HTTP/3 is off. A site rule
    /// that sets `Alt-Svc` replaces it.
    pub alt_svc: Option<HeaderValue>,
}

/// Where an asset's bytes live.
#[derive(Debug)]
pub(crate) enum Content {
    /// In the table (each representation holds its bytes).
    Memory,
    /// On disk, read per request; the length and mtime are checked when it is opened.
    File(PathBuf),
}

/// One encoded form of an asset with its complete `200 OK` header block.
#[derive(Debug)]
pub(crate) struct Representation {
    pub(crate) encoding: Encoding,
    pub(crate) bytes: Bytes,
    pub(crate) etag: HeaderValue,
    pub(crate) headers: HeaderMap,
    /// Streamed: the file read per request (the source's or a sidecar's, app/precompressed.rs).
    pub(crate) disk: Option<precompressed::OnDisk>,
}

/// A servable file.
#[derive(Debug)]
pub struct Asset {
    pub(crate) len: u64,
    pub(crate) modified_secs: u64,
    pub(crate) content: Content,
    /// Identity first, then the variants worth sending (br, gzip); no identity for a file
    /// that exists only precompressed (app/precompressed.rs).
    pub(crate) reps: Vec<Representation>,
    pub(crate) encodings: Vec<Encoding>,
    pub(crate) content_type: HeaderValue,
    /// Served `immutable`: its name carries a content hash (app/hashed.rs).
    hashed: bool,
    stamp: u64,
    /// Sidecars ignored while loading it; kept so a table that reuses the asset still has
    /// them among its findings.
    findings: Vec<Finding>,
    /// Set by the first request that finds a streamed file changed on disk.
    changed_on_disk: AtomicBool,
}

impl Asset {
    /// Length of the identity representation in bytes (of the first precompressed form for
    /// a file that exists only precompressed).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether its name carries a content hash, so it is served `immutable` (app/hashed.rs).
    #[must_use]
    pub fn is_hashed(&self) -> bool {
        self.hashed
    }

    /// Whether the bytes are streamed from disk rather than held in memory.
    #[must_use]
    pub fn is_streamed(&self) -> bool {
        matches!(self.content, Content::File(_))
    }

    /// The content codings available besides identity.
    #[must_use]
    pub fn encodings(&self) -> &[Encoding] {
        &self.encodings
    }

    /// The file a streamed asset is read from; `None` for one held in memory.
    pub(crate) fn disk_path(&self) -> Option<&Path> {
        match &self.content {
            Content::File(path) => Some(path),
            Content::Memory => None,
        }
    }

    /// Records that the streamed file no longer matches this entry; true the first time
    /// only. A rebuild makes a new entry for the new file, so this is once per change.
    pub(crate) fn first_seen_changed(&self) -> bool {
        !self.changed_on_disk.swap(true, Ordering::Relaxed)
    }

    /// Whether the asset has an identity form (not only a precompressed file).
    #[must_use]
    pub fn has_identity(&self) -> bool {
        self.reps
            .first()
            .is_some_and(|r| r.encoding == Encoding::Identity)
    }

    pub(crate) fn rep(&self, encoding: Encoding) -> &Representation {
        &self.reps[self.rep_index(encoding)]
    }

    /// The index of the representation in `encoding` (identity, 0, when there is none).
    pub(crate) fn rep_index(&self, encoding: Encoding) -> usize {
        self.reps
            .iter()
            .position(|r| r.encoding == encoding)
            .unwrap_or(0)
    }
}

/// A path of the table: its asset, and what the rules decided for this path.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) asset: Arc<Asset>,
    /// The asset's header maps (one per representation, in the asset's order) with this
    /// path's header rules applied; `None` when no rule touches the path.
    pub(crate) headers: Option<Arc<[HeaderMap]>>,
    /// The rules must be asked on each request for this path: a forced rule may take it
    /// whatever the host, or Basic-Auth guards it.
    pub(crate) ask_rules: bool,
    /// A host-qualified rule may apply: the rules are asked when the request's host is one
    /// such a rule names (a canonical-host rule costs requests for other hosts nothing).
    pub(crate) ask_host: bool,
    /// A rule allows cross-origin requests here: an `OPTIONS` asks the rules for the
    /// preflight's answer (a GET does not: the header is in the maps).
    pub(crate) preflight: bool,
}

impl Entry {
    /// The entry of `url`: the asset's header maps with the path's rules applied.
    pub(crate) fn new(url: &str, asset: Arc<Asset>, rules: &SiteRules) -> Self {
        if rules.is_empty() {
            return Entry {
                asset,
                headers: None,
                ask_rules: false,
                ask_host: false,
                preflight: false,
            };
        }
        let ops = rules.header_ops(None, url);
        let ask_host = rules.depends_on_host(url);
        let ask_rules = rules.may_force_any_host(url)
            || ops
                .iter()
                .any(|(_, op)| matches!(op, HeaderOp::BasicAuth(_)));
        let preflight = ops.iter().any(
            |(_, op)| matches!(op, HeaderOp::Set(name, _) if *name == header::ACCESS_CONTROL_ALLOW_ORIGIN),
        );
        let headers = (!ops.is_empty()).then(|| {
            asset
                .reps
                .iter()
                .map(|rep| {
                    let mut map = rep.headers.clone();
                    routes::apply(&mut map, &ops, true);
                    with_room(map)
                })
                .collect::<Arc<[HeaderMap]>>()
        });
        Entry {
            asset,
            headers,
            ask_rules,
            ask_host,
            preflight,
        }
    }
}

/// `map` with a free slot in its index table. A response clones these maps, and a clone
/// keeps the index table's size: hyper makes an `entry()` for `content-length` on every
/// HTTP/2 response, and `entry` reserves a slot before it looks, so a full table was
/// regrown and rehashed on every response (HTTP/2 small files -10% when `Alt-Svc` made
/// the favicon's map full). Only a full map grows: a larger table costs each clone too.
fn with_room(mut map: HeaderMap) -> HeaderMap {
    if map.len() >= map.capacity() {
        map.reserve(1);
    }
    map
}

/// An immutable snapshot of the served tree.
#[derive(Debug)]
pub struct AssetTable {
    /// Every servable path with its asset and what the site rules decided for it.
    pub(crate) assets: HashMap<Box<str>, Entry>,
    /// The site rules this table was built with.
    pub(crate) rules: Arc<Rules>,
    /// Directories (no trailing slash) that have an index.html: `/docs` redirects to `/docs/`.
    pub(crate) dirs: HashSet<Box<str>>,
    pub(crate) index: Arc<Asset>,
    pub(crate) not_found: Option<Arc<Asset>>,
    generation: u64,
    files: usize,
    bytes: u64,
    fingerprint: u64,
    findings: Vec<Finding>,
    retired: Retired<Arc<Asset>>,
}

impl AssetTable {
    /// Looks up a decoded request path (`/`, `/docs/` and `/x/index.html` all resolve).
    #[must_use]
    pub fn get(&self, path: &str) -> Option<&Arc<Asset>> {
        self.assets.get(path).map(|e| &e.asset)
    }

    /// The entry for a decoded request path: the asset and its rule-applied headers.
    pub(crate) fn entry(&self, path: &str) -> Option<&Entry> {
        self.assets.get(path)
    }

    /// The site rules in force for this table.
    #[must_use]
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// The previous deploys' hashed assets still servable (app/retired.rs).
    #[must_use]
    pub fn retired(&self) -> &Retired<Arc<Asset>> {
        &self.retired
    }

    /// Number of files served.
    #[must_use]
    pub fn files(&self) -> usize {
        self.files
    }

    /// Bytes held in memory (all representations).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Build counter: 1 for the first table, +1 per reload.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// What the build refused or worked around: the walk's findings (sorted by path), then
    /// the ignored sidecars of every asset (reused ones included), in URL order. Not logged
    /// here: see [`Finding::log`].
    #[must_use]
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// Builds a table from `root`, reusing entries of `previous` whose files are unchanged.
    /// Logs nothing; its [`findings`](Self::findings) are the caller's to report.
    ///
    /// # Errors
    /// [`BuildError`] when the root cannot be read or has no index.html.
    pub fn build(
        root: &Path,
        options: &BuildOptions,
        previous: Option<&AssetTable>,
    ) -> Result<Self, BuildError> {
        Self::from_tree(&Tree::walk(root)?, options, previous)
    }

    /// Builds a table from a walk of the root (see [`Self::build`]).
    pub(crate) fn from_tree(
        tree: &Tree,
        options: &BuildOptions,
        previous: Option<&AssetTable>,
    ) -> Result<Self, BuildError> {
        // Before loading anything: a half-copied deploy is refused on every poll until it
        // is complete, and costs only its walk each time.
        if !tree.files().iter().any(|f| f.url == "/index.html") {
            return Err(BuildError::MissingIndex(tree.root().to_owned()));
        }
        let (rules, kept) = routes::load(tree, &options.rules, previous.map(|p| &p.rules))
            .map_err(BuildError::Rules)?;
        let mut reuse: HashMap<&str, &Arc<Asset>> = HashMap::new();
        if let Some(prev) = previous {
            for (url, entry) in &prev.assets {
                reuse.insert(url, &entry.asset);
            }
        }
        // The rule files are read above, never served.
        let served = |f: &&Found| f.url != routes::HEADERS_FILE && f.url != routes::REDIRECTS_FILE;
        // Load what changed, in parallel: compression dominates start-up.
        // Which names are content-hashed: the bundler's manifest when the build has one.
        let hashed = HashedNames::from_root(tree.root());
        let todo: Vec<&Found> = tree
            .files()
            .iter()
            .filter(served)
            .filter(|f| {
                reuse
                    .get(f.url.as_str())
                    .is_none_or(|a| a.stamp != f.stamp || a.hashed != hashed.is_hashed(&f.url))
            })
            .collect();
        let loaded = load_parallel(&todo, options, &hashed)?;
        let mut assets: HashMap<Box<str>, Entry> = HashMap::with_capacity(tree.files().len() * 2);
        let mut dirs = HashSet::new();
        let (mut files, mut bytes) = (0, 0);
        let mut findings = tree.findings().to_vec();
        findings.extend(kept);
        let entry = |url: &str, asset: &Arc<Asset>| Entry::new(url, Arc::clone(asset), &rules.set);
        for f in tree.files().iter().filter(served) {
            let asset = match loaded.get(f.url.as_str()) {
                Some(a) => Arc::clone(a),
                None => Arc::clone(reuse[f.url.as_str()]),
            };
            files += 1;
            findings.extend(asset.findings.iter().cloned());
            bytes += asset.reps.iter().map(|r| r.bytes.len() as u64).sum::<u64>();
            if let Some(dir) = f.url.strip_suffix("/index.html") {
                let url = format!("{dir}/");
                assets.insert(url.as_str().into(), entry(&url, &asset));
                if !dir.is_empty() {
                    dirs.insert(dir.into());
                }
            }
            assets.insert(f.url.as_str().into(), entry(&f.url, &asset));
        }
        let index = assets
            .get("/index.html")
            .map(|e| Arc::clone(&e.asset))
            .ok_or_else(|| BuildError::MissingIndex(tree.root().to_owned()))?;
        let not_found = assets.get("/404.html").map(|e| Arc::clone(&e.asset));
        let generation = previous.map_or(1, |p| p.generation + 1);
        let retired = Retired::carry(
            previous.map(|p| &p.retired),
            superseded(previous, &assets),
            |url| assets.contains_key(url),
            options.keep_old_assets,
        );
        Ok(Self {
            assets,
            rules,
            dirs,
            index,
            not_found,
            generation,
            files,
            bytes,
            fingerprint: tree.fingerprint(),
            findings,
            retired,
        })
    }

    /// Whether the files under `root` differ from this table (cheap: metadata only). An
    /// entry the walk refuses on every poll (a symlink out of the root) is no difference.
    ///
    /// # Errors
    /// [`BuildError::Io`] when the root cannot be read.
    pub fn is_stale(&self, root: &Path) -> Result<bool, BuildError> {
        Ok(Tree::walk(root)?.fingerprint() != self.fingerprint)
    }

    /// The fingerprint of the walk this table was built from.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// The previous table's hashed, in-memory assets that `next` no longer serves, with the
/// bytes they hold: what app/retired.rs keeps servable for a while. Streamed ones are read
/// from disk per request, so a deploy that deletes them leaves nothing to keep.
fn superseded<'a>(
    previous: Option<&'a AssetTable>,
    next: &'a HashMap<Box<str>, Entry>,
) -> impl Iterator<Item = (&'a str, Arc<Asset>, u64)> + 'a {
    previous
        .into_iter()
        .flat_map(|p| &p.assets)
        .map(|(url, e)| (url, &e.asset))
        .filter(|(url, a)| a.hashed && !a.is_streamed() && !next.contains_key(*url))
        .map(|(url, a)| {
            let bytes = a.reps.iter().map(|r| r.bytes.len() as u64).sum();
            (&**url, Arc::clone(a), bytes)
        })
}

fn load_parallel<'a>(
    todo: &[&'a Found],
    options: &BuildOptions,
    hashed: &HashedNames,
) -> Result<HashMap<&'a str, Arc<Asset>>, BuildError> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(todo.len().max(1));
    let next = AtomicUsize::new(0);
    let out = Mutex::new(HashMap::with_capacity(todo.len()));
    let first_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = todo.get(i) else { break };
                match load(f, options, hashed.is_hashed(&f.url)) {
                    Ok(asset) => {
                        out.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(f.url.as_str(), Arc::new(asset));
                    }
                    Err(e) => {
                        first_error
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    Ok(out
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

fn load(f: &Found, options: &BuildOptions, hashed: bool) -> Result<Asset, BuildError> {
    let content_type = policy::content_type(&f.url);
    let cache_control = policy::cache_control(hashed, &content_type);
    let compressible = policy::compressible(&content_type);
    let modified = f.meta.modified().unwrap_or(UNIX_EPOCH);
    let modified_secs = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let modified = UNIX_EPOCH + std::time::Duration::from_secs(modified_secs);
    let len = f.meta.len();

    let mut findings = Vec::new();
    // Every form the asset is served in: identity first (none for an encoded-only file),
    // then the codings worth sending.
    let (content, hash, forms) = if f.encoded_only {
        // ETags from the first sidecar's bytes (br if there is one).
        let (streamed, forms) = precompressed::encoded_only_forms(f, options.stream_threshold)?;
        match forms.first() {
            Some((_, _, Some(disk))) if streamed => {
                (Content::File(f.path.clone()), hash_file(&disk.path)?, forms)
            }
            Some((_, bytes, _)) => (Content::Memory, sha256_hex(bytes), forms),
            // The walk makes an encoded-only entry only for a sidecar it found.
            None => {
                return Err(BuildError::Io {
                    path: f.path.clone(),
                    source: io::Error::other("no precompressed file"),
                })
            }
        }
    } else if len > options.stream_threshold {
        let hash = hash_file(&f.path)?;
        let disk = precompressed::OnDisk {
            path: f.path.clone(),
            len,
            modified_secs,
        };
        let mut forms = vec![(Encoding::Identity, Bytes::new(), Some(disk))];
        // A sidecar counts when it decodes to `len` bytes with the source's hash.
        let is_source = |n: u64, digest: &[u8]| n == len && hex(digest) == hash;
        forms.extend(precompressed::streamed_sidecars(
            f,
            len,
            &is_source,
            &mut findings,
        ));
        (Content::File(f.path.clone()), hash, forms)
    } else {
        let identity = Bytes::from(fs::read(&f.path).map_err(io_err(&f.path))?);
        let hash = sha256_hex(&identity);
        let mut forms = Vec::with_capacity(3);
        if compressible && identity.len() as u64 >= MIN_COMPRESS {
            for (enc, sidecar) in [(Encoding::Brotli, &f.br), (Encoding::Gzip, &f.gz)] {
                if let Some(bytes) = variant(enc, sidecar.as_deref(), &identity, &mut findings) {
                    forms.push((enc, bytes, None));
                }
            }
        }
        forms.insert(0, (Encoding::Identity, identity, None));
        (Content::Memory, hash, forms)
    };
    let len = match (&content, forms.first()) {
        (Content::Memory, Some((_, bytes, _))) => bytes.len() as u64,
        (Content::File(_), Some((_, _, Some(disk)))) => disk.len,
        _ => len,
    };
    let varies = compressible || forms.len() > 1 || f.encoded_only;

    let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(modified))
        .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
    let ct = HeaderValue::from_str(&content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut reps = Vec::with_capacity(forms.len());
    for (encoding, bytes, disk) in forms {
        let etag = match encoding {
            Encoding::Identity => format!("\"{hash}\""),
            Encoding::Brotli => format!("\"{hash}-br\""),
            Encoding::Gzip => format!("\"{hash}-gz\""),
        };
        let etag = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"0\""));
        let mut headers = HeaderMap::with_capacity(12);
        headers.insert(header::CONTENT_TYPE, ct.clone());
        let body_len = match &disk {
            Some(disk) => disk.len,
            None => bytes.len() as u64,
        };
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
        headers.insert(header::ETAG, etag.clone());
        headers.insert(header::LAST_MODIFIED, last_modified.clone());
        headers.insert(header::CACHE_CONTROL, cache_control.clone());
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        if varies {
            headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        }
        if encoding != Encoding::Identity {
            headers.insert(
                header::CONTENT_ENCODING,
                HeaderValue::from_static(encoding.token()),
            );
        }
        options.security.apply(&mut headers);
        if let Some(alt_svc) = &options.alt_svc {
            headers.insert(header::ALT_SVC, alt_svc.clone());
        }
        // Stamped with the time of each response (see `stamped`).
        headers.insert(header::DATE, super::date_now());
        let headers = with_room(headers);
        reps.push(Representation {
            encoding,
            bytes,
            etag,
            headers,
            disk,
        });
    }
    let encodings = reps
        .iter()
        .map(|r| r.encoding)
        .filter(|&e| e != Encoding::Identity)
        .collect();
    Ok(Asset {
        len,
        modified_secs,
        content,
        reps,
        encodings,
        content_type: ct,
        hashed,
        stamp: f.stamp,
        findings,
        changed_on_disk: AtomicBool::new(false),
    })
}

/// A compressed variant: the sidecar file if it decompresses to exactly `identity` (a stale
/// sidecar would serve wrong bytes), else compressed here; kept only if smaller. A sidecar
/// not used is pushed onto `findings`.
fn variant(
    enc: Encoding,
    sidecar: Option<&Path>,
    identity: &Bytes,
    findings: &mut Vec<Finding>,
) -> Option<Bytes> {
    if let Some(path) = sidecar {
        match fs::read(path) {
            Ok(data) if decompress(enc, &data).is_ok_and(|d| d == identity[..]) => {
                return Some(data.into())
            }
            Ok(_) => findings.push(Finding::SidecarMismatch {
                sidecar: path.to_owned(),
            }),
            Err(e) => findings.push(Finding::SidecarUnreadable {
                sidecar: path.to_owned(),
                error: e.to_string(),
            }),
        }
    }
    let compressed = compress(enc, identity).ok()?;
    (compressed.len() < identity.len()).then(|| compressed.into())
}

/// Compresses with gzip level 9 or brotli quality 11 (9 for large files).
///
/// # Errors
/// Only on an internal encoder failure.
pub fn compress(enc: Encoding, data: &[u8]) -> io::Result<Vec<u8>> {
    match enc {
        Encoding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 3),
                flate2::Compression::best(),
            );
            e.write_all(data)?;
            e.finish()
        }
        Encoding::Brotli => {
            let quality = if data.len() as u64 > BROTLI_MAX_QUALITY_LIMIT {
                9
            } else {
                11
            };
            let mut out = Vec::with_capacity(data.len() / 3);
            {
                let mut w = brotli::CompressorWriter::new(&mut out, 64 * 1024, quality, 22);
                w.write_all(data)?;
            }
            Ok(out)
        }
        Encoding::Identity => Ok(data.to_vec()),
    }
}

/// Decompresses gzip or brotli (used to check sidecars; tests use it too).
///
/// # Errors
/// When the data is not valid for the coding.
pub fn decompress(enc: Encoding, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match enc {
        Encoding::Gzip => {
            flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
        }
        Encoding::Brotli => {
            brotli::Decompressor::new(data, 64 * 1024).read_to_end(&mut out)?;
        }
        Encoding::Identity => out.extend_from_slice(data),
    }
    Ok(out)
}

fn sha256_hex(data: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

fn hash_file(path: &Path) -> Result<String, BuildError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(hex(ctx.finish().as_ref()))
}

/// The first 16 bytes of a digest in hex: 128 bits is plenty for an ETag.
fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    digest
        .iter()
        .take(16)
        .fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
