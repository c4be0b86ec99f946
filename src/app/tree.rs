//! The walk of the root: which files are served under which URL, their precompressed
//! sidecars, and a metadata stamp per file whose hash (the fingerprint) tells a redeploy
//! from an unchanged tree. A walk reads metadata only (one `stat` per entry); file contents
//! are read by the table build in [`super::assets`].
//!
//! What the walk refuses (a symlink that leaves the root, an unreadable directory, a name
//! that is not UTF-8) it records as a [`Finding`] and never logs: the redeploy watcher walks
//! the root every interval, and a warning logged by the walk was a line per poll, forever.
//! The owner of a table build reports the findings ([`super::Site`]: at start-up and on each
//! rebuild), so a tree's problems are logged once per change of the tree. The findings are
//! part of the fingerprint: an entry refused on every walk leaves it unchanged (no rebuild),
//! while a newly refused entry is a change and is reported at once.
//!
//! A sidecar without its source (`app.wasm.br` alone) stays a file of its own and also
//! gives an encoded-only entry at the source's URL (app/precompressed.rs).

use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata};
use std::hash::{Hash, Hasher};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Directory depth walked below the root.
const MAX_DEPTH: usize = 32;

/// Something wrong under the root that the build works around: the entry is skipped, or a
/// precompressed sidecar is ignored and the variant compressed anew. Field names are the
/// log line's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Finding {
    /// A directory below the root that cannot be listed; skipped with all under it.
    UnreadableDir {
        /// The directory.
        dir: PathBuf,
        /// Why it cannot be listed.
        error: String,
    },
    /// A name that is not UTF-8 (no URL can name it); skipped.
    NonUtf8Name {
        /// The entry, with the name shown lossily.
        path: PathBuf,
    },
    /// A symlink whose target lies outside the root; skipped, never followed.
    SymlinkLeavesRoot {
        /// The symlink.
        path: PathBuf,
    },
    /// A symlink whose target cannot be resolved (dangling, or a loop); skipped.
    UnresolvableSymlink {
        /// The symlink.
        path: PathBuf,
        /// Why it cannot be resolved.
        error: String,
    },
    /// A `.br`/`.gz` file that does not decompress to its source; compressed anew.
    SidecarMismatch {
        /// The precompressed file.
        sidecar: PathBuf,
    },
    /// A `.br`/`.gz` file that cannot be read; compressed anew.
    SidecarUnreadable {
        /// The precompressed file.
        sidecar: PathBuf,
        /// Why it cannot be read.
        error: String,
    },
    /// A site rule file (`_headers`, `_redirects`) that does not parse, or rules with a
    /// redirect loop: the previous rules stay in force.
    RulesKept {
        /// Each problem, with its file and line.
        errors: Vec<crate::rules::RuleError>,
    },
}

impl Finding {
    /// The entry the finding is about.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::UnreadableDir { dir: p, .. }
            | Self::NonUtf8Name { path: p }
            | Self::SymlinkLeavesRoot { path: p }
            | Self::UnresolvableSymlink { path: p, .. }
            | Self::SidecarMismatch { sidecar: p }
            | Self::SidecarUnreadable { sidecar: p, .. } => p,
            Self::RulesKept { errors } => errors
                .first()
                .map_or(Path::new(""), |e| Path::new(&*e.origin.file)),
        }
    }

    /// Logs the finding at warn: the operator deployed something that is not served as it
    /// is. Called by whoever built the table, once per build (see the module docs).
    pub fn log(&self) {
        match self {
            Self::UnreadableDir { dir, error } => {
                tracing::warn!(dir = %dir.display(), error = %error, "skipping unreadable directory");
            }
            Self::NonUtf8Name { path } => {
                tracing::warn!(path = %path.display(), "skipping file whose name is not UTF-8");
            }
            Self::SymlinkLeavesRoot { path } => {
                tracing::warn!(path = %path.display(), "skipping symlink that leaves the root");
            }
            Self::UnresolvableSymlink { path, error } => {
                tracing::warn!(path = %path.display(), error = %error, "skipping symlink whose target cannot be resolved");
            }
            Self::SidecarMismatch { sidecar } => {
                tracing::warn!(sidecar = %sidecar.display(), "precompressed file does not match its source; compressing anew");
            }
            Self::SidecarUnreadable { sidecar, error } => {
                tracing::warn!(sidecar = %sidecar.display(), error = %error, "cannot read precompressed file");
            }
            Self::RulesKept { errors } => {
                for e in errors {
                    tracing::warn!(file = %e.origin.file, line = e.origin.line, reason = %e.reason, "site rule refused; the previous rules stay in force");
                }
            }
        }
    }
}

/// The root (or the directory it resolves to) could not be read.
#[derive(Debug)]
pub(crate) struct Unreadable {
    pub(crate) path: PathBuf,
    pub(crate) source: io::Error,
}

/// A servable file found by the walk.
pub(crate) struct Found {
    pub(crate) url: String,
    pub(crate) path: PathBuf,
    pub(crate) meta: Metadata,
    /// Precompressed files next to it, if any.
    pub(crate) br: Option<PathBuf>,
    pub(crate) gz: Option<PathBuf>,
    /// Hash of the metadata of the file and its sidecars: equal stamps, same bytes.
    pub(crate) stamp: u64,
    /// No file of this name, only its sidecars (`app.wasm.br` without `app.wasm`): served
    /// only in a coding the client accepts (see app/precompressed.rs). `path` and `meta`
    /// are those of the first sidecar (br, else gz).
    pub(crate) encoded_only: bool,
}

/// One walk of the root.
pub(crate) struct Tree {
    root: PathBuf,
    files: Vec<Found>,
    findings: Vec<Finding>,
    fingerprint: u64,
}

impl Tree {
    /// Walks `root`: UTF-8 names only, no dotfiles but `/.well-known/`, symlinks followed
    /// only while they stay inside the root, directory cycles cut.
    pub(crate) fn walk(root: &Path) -> Result<Self, Unreadable> {
        let unreadable = |path: &Path| {
            let path = path.to_owned();
            move |source| Unreadable { path, source }
        };
        let canon_root = fs::canonicalize(root).map_err(unreadable(root))?;
        let mut files: Vec<(String, PathBuf, Metadata)> = Vec::new();
        let mut findings = Vec::new();
        let mut visited = HashSet::new();
        visited.insert(canon_root.clone());
        let mut stack = vec![(canon_root.clone(), String::new(), 0usize)];
        while let Some((dir, url_prefix, depth)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if depth > 0 => {
                    findings.push(Finding::UnreadableDir {
                        dir,
                        error: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(unreadable(&dir)(e)),
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else {
                    findings.push(Finding::NonUtf8Name { path: entry.path() });
                    continue;
                };
                if name.starts_with('.') && !(depth == 0 && name == ".well-known") {
                    continue;
                }
                let path = entry.path();
                let Ok(link_meta) = entry.metadata() else {
                    continue;
                };
                let (real, meta) = if link_meta.file_type().is_symlink() {
                    match fs::canonicalize(&path) {
                        Ok(target) if target.starts_with(&canon_root) => {
                            match fs::metadata(&target) {
                                Ok(m) => (target, m),
                                Err(_) => continue,
                            }
                        }
                        Ok(_) => {
                            findings.push(Finding::SymlinkLeavesRoot { path });
                            continue;
                        }
                        Err(e) => {
                            findings.push(Finding::UnresolvableSymlink {
                                path,
                                error: e.to_string(),
                            });
                            continue;
                        }
                    }
                } else {
                    (path, link_meta)
                };
                let url = format!("{url_prefix}/{name}");
                if meta.is_dir() {
                    if depth + 1 < MAX_DEPTH
                        && visited.insert(fs::canonicalize(&real).unwrap_or(real.clone()))
                    {
                        stack.push((real, url, depth + 1));
                    }
                } else if meta.is_file() {
                    files.push((url, real, meta));
                }
            }
        }
        let files = with_sidecars(files);
        findings.sort_by(|a, b| a.path().cmp(b.path()));
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for f in &files {
            (&f.url, f.stamp).hash(&mut h);
        }
        // The kind and the entry, not the error text: an entry refused on every walk must
        // not look like a change.
        for f in &findings {
            (std::mem::discriminant(f), f.path()).hash(&mut h);
        }
        Ok(Self {
            root: root.to_owned(),
            files,
            findings,
            fingerprint: h.finish(),
        })
    }

    /// The root as given.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The servable files, sorted by URL (sidecars are not among them).
    pub(crate) fn files(&self) -> &[Found] {
        &self.files
    }

    /// What the walk refused, sorted by path.
    pub(crate) fn findings(&self) -> &[Finding] {
        &self.findings
    }

    /// A hash of every URL and stamp and of what was refused: equal fingerprints,
    /// unchanged tree.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

/// A file as the walk lists it: URL, path, metadata.
type WalkedFile = (String, PathBuf, Metadata);

/// Sorts the files by URL and folds `x.br` / `x.gz` next to `x` into x's entry: they are
/// variants of x, not assets of their own.
fn with_sidecars(mut files: Vec<(String, PathBuf, Metadata)>) -> Vec<Found> {
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let urls: HashSet<&str> = files.iter().map(|f| f.0.as_str()).collect();
    let sidecar = |url: &str| {
        [".br", ".gz"].iter().any(|ext| {
            url.strip_suffix(ext)
                .is_some_and(|base| urls.contains(base))
        })
    };
    let sidecars: HashSet<String> = files
        .iter()
        .filter(|f| sidecar(&f.0))
        .map(|f| f.0.clone())
        .collect();
    let by_url: HashMap<&str, &(String, PathBuf, Metadata)> =
        files.iter().map(|f| (f.0.as_str(), f)).collect();
    let mut out = Vec::with_capacity(files.len());
    for (url, path, meta) in &files {
        if sidecars.contains(url) {
            continue;
        }
        let br = by_url
            .get(format!("{url}.br").as_str())
            .map(|f| f.1.clone());
        let gz = by_url
            .get(format!("{url}.gz").as_str())
            .map(|f| f.1.clone());
        let mut h = std::collections::hash_map::DefaultHasher::new();
        stamp_of(meta).hash(&mut h);
        for side in [format!("{url}.br"), format!("{url}.gz")] {
            by_url
                .get(side.as_str())
                .map(|f| stamp_of(&f.2))
                .hash(&mut h);
        }
        out.push(Found {
            url: url.clone(),
            path: path.clone(),
            meta: meta.clone(),
            br,
            gz,
            stamp: h.finish(),
            encoded_only: false,
        });
    }
    out.extend(encoded_only(&files, &urls));
    out.sort_by(|a, b| a.url.cmp(&b.url));
    out
}

/// The encoded-only entries of a walk (app/precompressed.rs): for each `X.br` / `X.gz`
/// whose `X` is not a file (and is not an index.html), one entry at `X` with those sidecars. `files` are the walk's
/// files sorted by URL, `urls` their URLs.
fn encoded_only(files: &[WalkedFile], urls: &HashSet<&str>) -> Vec<Found> {
    // Per source URL: its `.br` and its `.gz`.
    let mut by_base: HashMap<&str, [Option<&WalkedFile>; 2]> = HashMap::new();
    for f in files {
        for (i, ext) in [".br", ".gz"].iter().enumerate() {
            if let Some(base) = f.0.strip_suffix(ext) {
                if !base.ends_with('/') && !base.ends_with("/index.html") && !urls.contains(base) {
                    by_base.entry(base).or_default()[i] = Some(f);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(by_base.len());
    for (base, [br, gz]) in by_base {
        let Some(first) = br.or(gz) else { continue };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        "encoded-only".hash(&mut h);
        for side in [br, gz] {
            side.map(|f| stamp_of(&f.2)).hash(&mut h);
        }
        out.push(Found {
            url: base.to_owned(),
            path: first.1.clone(),
            meta: first.2.clone(),
            br: br.map(|f| f.1.clone()),
            gz: gz.map(|f| f.1.clone()),
            stamp: h.finish(),
            encoded_only: true,
        });
    }
    out
}

fn stamp_of(meta: &Metadata) -> (u64, i64, i64, u64, u64) {
    (
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ino(),
        meta.dev(),
    )
}
