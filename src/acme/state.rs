//! The ACME state directory (`--acme-state`): the account per CA directory, the certificate
//! and key per set of names, and the lock that lets one instance of a fleet order at a
//! time. Created 0700, files 0600, every file written whole (a temporary file renamed into
//! place), so that an instance reading it (the certificate reload of server/reload.rs)
//! never sees half a file. Blocking: call it from the blocking pool.
//!
//! ```text
//! STATE/accounts/<directory host>-<hash>.json     the account's key and URL (instant-acme credentials)
//! STATE/certificates/<first name>/cert.pem        the chain, leaf first
//! STATE/certificates/<first name>/key.pem         its ECDSA P-256 key (PKCS#8)
//! STATE/challenges/                               pending answers, for every instance (acme/challenge.rs)
//! STATE/lock                                      held (flock) by the instance that orders
//! ```

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// An opened state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// The exclusive lock of a state directory; released when dropped.
#[derive(Debug)]
pub struct OrderLock {
    _file: fs::File,
}

impl StateDir {
    /// Opens `root`, creating it (0700) and its subdirectories when missing; an existing
    /// directory readable by others is tightened to 0700 (it holds private keys).
    ///
    /// # Errors
    /// The IO error, for the caller to name with the directory.
    pub fn open(root: &Path) -> io::Result<Self> {
        for dir in [
            root.to_path_buf(),
            root.join("accounts"),
            root.join("certificates"),
        ] {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
        }
        let mode = fs::metadata(root)?.permissions().mode();
        if mode & 0o077 != 0 {
            fs::set_permissions(root, fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory as it would be opened, without creating or changing anything (for
    /// `rampart check`).
    #[must_use]
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The directory.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the pending challenge answers are shared (acme/challenge.rs).
    #[must_use]
    pub fn challenges(&self) -> PathBuf {
        self.root.join("challenges")
    }

    /// The account file for a CA directory URL: one account per CA.
    #[must_use]
    pub fn account_path(&self, directory: &str) -> PathBuf {
        let host: String = directory
            .trim_start_matches("https://")
            .split(['/', ':'])
            .next()
            .unwrap_or("ca")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        // Stable across runs and versions (FNV-1a), unlike std's hasher.
        let mut hash = Fnv(0xcbf2_9ce4_8422_2325);
        directory.hash(&mut hash);
        self.root
            .join("accounts")
            .join(format!("{host}-{:016x}.json", hash.finish()))
    }

    /// The certificate and key files of a set of names (named by the first).
    #[must_use]
    pub fn cert_paths(&self, domains: &[String]) -> (PathBuf, PathBuf) {
        let dir = self
            .root
            .join("certificates")
            .join(domains.first().map_or("default", String::as_str));
        (dir.join("cert.pem"), dir.join("key.pem"))
    }

    /// Reads a file of the directory; `None` when it does not exist.
    ///
    /// # Errors
    /// Any other IO error.
    pub fn read(path: &Path) -> io::Result<Option<String>> {
        match fs::read_to_string(path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `contents` to `path` whole (0600, renamed into place), creating its
    /// directory (0700).
    ///
    /// # Errors
    /// The IO error.
    pub fn write(path: &Path, contents: &[u8]) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    }

    /// Stores a new certificate: the key first, then the chain, so that a reader that sees
    /// the new chain finds its key (the inspector refuses a pair that does not match, and
    /// the reload tries again).
    ///
    /// # Errors
    /// The IO error.
    pub fn store_cert(&self, domains: &[String], chain_pem: &str, key_pem: &str) -> io::Result<()> {
        let (cert, key) = self.cert_paths(domains);
        Self::write(&key, key_pem.as_bytes())?;
        Self::write(&cert, chain_pem.as_bytes())
    }

    /// Takes the exclusive lock of the directory, waiting for another instance that holds
    /// it.
    ///
    /// # Errors
    /// The IO error (a file system without locks reports one).
    pub fn lock(&self) -> io::Result<OrderLock> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.root.join("lock"))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(OrderLock { _file: file })
    }

    /// Whether another instance holds the lock now (for `rampart check`).
    ///
    /// # Errors
    /// The IO error.
    pub fn try_lock(&self) -> io::Result<Option<OrderLock>> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(self.root.join("lock"))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(OrderLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// FNV-1a, for file names that must not change between versions.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_directory_is_private_and_files_are_written_whole_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("acme");
        fs::create_dir(&root).unwrap();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
        let state = StateDir::open(&root).unwrap();
        assert_eq!(mode(&root), 0o700, "tightened: it holds private keys");
        let names = vec!["example.com".to_owned(), "www.example.com".to_owned()];
        state.store_cert(&names, "CHAIN", "KEY").unwrap();
        let (cert, key) = state.cert_paths(&names);
        assert!(cert.ends_with("certificates/example.com/cert.pem"));
        assert_eq!(StateDir::read(&cert).unwrap().as_deref(), Some("CHAIN"));
        assert_eq!(StateDir::read(&key).unwrap().as_deref(), Some("KEY"));
        assert_eq!(mode(&cert), 0o600);
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(cert.parent().unwrap()), 0o700);
        assert_eq!(StateDir::read(&root.join("nothing")).unwrap(), None);
        // No temporary file is left behind.
        let left: Vec<_> = fs::read_dir(cert.parent().unwrap()).unwrap().collect();
        assert_eq!(left.len(), 2);
    }

    #[test]
    fn one_account_file_per_ca_directory_stable_across_runs() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        let le = state.account_path("https://acme-v02.api.letsencrypt.org/directory");
        let staging = state.account_path("https://acme-staging-v02.api.letsencrypt.org/directory");
        assert_ne!(le, staging);
        let name = le.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(name.starts_with("acme-v02.api.letsencrypt.org-"), "{name}");
        assert_eq!(
            le,
            state.account_path("https://acme-v02.api.letsencrypt.org/directory")
        );
        let pebble = state.account_path("https://127.0.0.1:14000/dir");
        assert!(pebble
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("127.0.0.1-"));
    }

    #[test]
    fn the_lock_is_exclusive_between_openers() {
        let tmp = tempfile::tempdir().unwrap();
        let a = StateDir::open(tmp.path()).unwrap();
        let b = StateDir::open(tmp.path()).unwrap();
        let held = a.lock().unwrap();
        assert!(b.try_lock().unwrap().is_none(), "another instance holds it");
        drop(held);
        assert!(b.try_lock().unwrap().is_some());
    }
}
