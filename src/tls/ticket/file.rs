//! The ticket key file shared by a fleet, and the `rampart ticket-key` commands that write it.
//!
//! # Format
//! A text file; blank lines and lines starting with `#` are ignored. Every other line is
//! one key: 64 hex characters (32 random bytes, AES-256). The first key encrypts new
//! tickets; every key decrypts tickets made with it. At most [`MAX_KEYS`] keys, no key
//! twice. A key's id (the first 8 bytes of every ticket it seals) is derived from the key
//! ([`super::KeyId::of`]), so every instance reading the same file agrees on it. The file is
//! a secret: whoever holds it can decrypt recorded TLS 1.2 traffic resumed with its keys.
//! rampart warns when group or others can read it.
//!
//! # Rotation
//! - `rampart ticket-key new PATH`: a new key first (it encrypts), the previous first key
//!   after it (it still decrypts tickets already issued); older keys are dropped. Creates
//!   PATH with one key when it does not exist.
//! - `rampart ticket-key new --staged PATH`: the new key goes second, decrypt-only; the
//!   current first key keeps encrypting and the previous one keeps decrypting. Once every
//!   instance has the file, `rampart ticket-key promote PATH` makes the staged key encrypt
//!   (and keeps the old first key, decrypt-only). This is the gap-free fleet rotation: no
//!   instance issues tickets under a key another instance does not have yet.
//!
//! Every write goes to a temporary file (mode 0600) in the same directory, then is renamed
//! over PATH, so a reader sees the old file or the new one, never half of one. This module
//! must not keep keys around: it reads, writes and returns.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{KeyId, TicketKey, KEY_LEN};

/// Most keys a key file may hold.
pub const MAX_KEYS: usize = 8;

/// Why ticket keys cannot be read, written or made.
#[derive(Debug, thiserror::Error)]
pub enum TicketKeyError {
    /// The file could not be read.
    #[error("ticket key file {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A line is not a key.
    #[error("ticket key file {path}: line {line}: {reason}")]
    Line {
        /// The key file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file as a whole is unusable (no keys, too many).
    #[error("ticket key file {path}: {reason}")]
    File {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be written.
    #[error("ticket key file {path}: cannot write: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The system's random generator failed.
    #[error("session ticket keys: the system random generator failed")]
    Random,
    /// A key ring was asked for with no keys.
    #[error("session ticket keys: at least one key is needed")]
    NoKeys,
}

/// A parsed key file.
#[derive(Debug, Clone)]
pub struct KeyFile {
    /// The file.
    pub path: PathBuf,
    /// Its keys, newest (encrypting) first; never empty.
    pub keys: Vec<TicketKey>,
    /// Unix permission bits of the file.
    pub mode: u32,
}

impl KeyFile {
    /// Logs a warning when group or others may read the file (mode & 0o077).
    pub fn warn_if_exposed(&self) {
        if self.mode & 0o077 != 0 {
            tracing::warn!(
                file = %self.path.display(),
                mode = %format!("{:o}", self.mode & 0o777),
                "ticket key file is readable by group or others; it is a secret: chmod 600 it"
            );
        }
    }
}

/// Reads and parses the key file at `path`.
///
/// # Errors
/// [`TicketKeyError`] naming the file, and the line for a bad line.
pub fn read_key_file(path: &Path) -> Result<KeyFile, TicketKeyError> {
    use std::os::unix::fs::PermissionsExt;
    let read = |source| TicketKeyError::Read {
        path: path.to_owned(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(read)?;
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
    Ok(KeyFile {
        path: path.to_owned(),
        keys: parse(path, &text)?,
        mode,
    })
}

/// Parses key file text (`path` only names the file in errors).
///
/// # Errors
/// [`TicketKeyError::Line`] for a line that is not 64 hex characters or repeats a key;
/// [`TicketKeyError::File`] for no keys or more than [`MAX_KEYS`].
pub fn parse(path: &Path, text: &str) -> Result<Vec<TicketKey>, TicketKeyError> {
    let mut keys: Vec<(usize, TicketKey)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: String| TicketKeyError::Line {
            path: path.to_owned(),
            line: i + 1,
            reason,
        };
        let key = TicketKey::new(decode_hex(line).ok_or_else(|| {
            bad(format!(
                "expected {} hex characters (a {KEY_LEN}-byte key), found {} characters",
                KEY_LEN * 2,
                line.chars().count()
            ))
        })?);
        if let Some((first, _)) = keys.iter().find(|(_, k)| k.id() == key.id()) {
            return Err(bad(format!("the same key as line {first}")));
        }
        keys.push((i + 1, key));
    }
    if keys.is_empty() {
        return Err(TicketKeyError::File {
            path: path.to_owned(),
            reason: format!("no keys (expected lines of {} hex characters)", KEY_LEN * 2),
        });
    }
    if keys.len() > MAX_KEYS {
        return Err(TicketKeyError::File {
            path: path.to_owned(),
            reason: format!("{} keys; at most {MAX_KEYS} are allowed", keys.len()),
        });
    }
    Ok(keys.into_iter().map(|(_, k)| k).collect())
}

fn decode_hex(s: &str) -> Option<[u8; KEY_LEN]> {
    let s = s.as_bytes();
    if s.len() != KEY_LEN * 2 {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16);
    let mut out = [0; KEY_LEN];
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let v = nibble(pair[0])? * 16 + nibble(pair[1])?;
        *o = u8::try_from(v).ok()?;
    }
    Some(out)
}

/// The text of a key file holding `keys`, newest first, with a header and each key's id.
#[must_use]
pub fn render(keys: &[TicketKey]) -> String {
    let mut s = String::from(
        "# rampart session-ticket keys (`rampart ticket-key`), newest first: the first key\n\
         # encrypts new tickets, every key decrypts. One key a line, 64 hex characters.\n\
         # A secret: keep it mode 0600 and identical on every instance of the fleet.\n",
    );
    for (i, k) in keys.iter().enumerate() {
        let role = if i == 0 { "encrypts" } else { "decrypts" };
        s.push_str(&format!("# key id {}: {role}\n{}\n", k.id(), k.to_hex()));
    }
    s
}

/// Writes `keys` to `path` atomically: a temporary file (mode 0600) in the same directory,
/// flushed, then renamed over `path`.
///
/// # Errors
/// [`TicketKeyError::Write`] naming `path`.
pub fn write_key_file(path: &Path, keys: &[TicketKey]) -> Result<(), TicketKeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| TicketKeyError::Write {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| err(std::io::Error::other("not a file name")))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(render(keys).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // Make the rename durable; a failure here leaves a correct file, so it is ignored.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// What a `ticket-key` command did to the file, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The key file.
    pub path: PathBuf,
    /// What happened.
    pub action: Action,
    /// Key ids now in the file, encrypting key first.
    pub keys: Vec<KeyId>,
    /// Key ids that were in the file and are no longer.
    pub dropped: Vec<KeyId>,
}

/// The kind of change a `ticket-key` command made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A new file with one key.
    Created,
    /// A new key first; the previous first key kept second.
    Rotated,
    /// A new key second (decrypt-only); the first key unchanged.
    Staged,
    /// The second key moved first; the previous first key kept second.
    Promoted,
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.path.display();
        let k = &self.keys;
        match self.action {
            Action::Created => write!(f, "created {p} with one new key {} (encrypts)", k[0])?,
            Action::Rotated => write!(
                f,
                "rotated {p}: new key {} encrypts; previous key {} still decrypts",
                k[0], k[1]
            )?,
            Action::Staged => write!(
                f,
                "staged a new key in {p}: {} decrypts only, {} still encrypts; copy the file \
                 to every instance, then run `rampart ticket-key promote {p}`",
                k[1], k[0]
            )?,
            Action::Promoted => write!(
                f,
                "promoted in {p}: key {} now encrypts; previous key {} still decrypts",
                k[0], k[1]
            )?,
        }
        if !self.dropped.is_empty() {
            let ids: Vec<String> = self.dropped.iter().map(ToString::to_string).collect();
            write!(f, "; dropped {}", ids.join(", "))?;
        }
        write!(
            f,
            ". Instances using --ticket-key-file {p} reload it within seconds (or on SIGHUP)."
        )
    }
}

/// The keys in `path`, or `None` when it does not exist.
fn existing(path: &Path) -> Result<Option<Vec<TicketKey>>, TicketKeyError> {
    match read_key_file(path) {
        Ok(f) => Ok(Some(f.keys)),
        Err(TicketKeyError::Read { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn finish(
    path: &Path,
    action: Action,
    before: &[TicketKey],
    keys: Vec<TicketKey>,
) -> Result<Written, TicketKeyError> {
    write_key_file(path, &keys)?;
    let ids: Vec<KeyId> = keys.iter().map(TicketKey::id).collect();
    Ok(Written {
        path: path.to_owned(),
        action,
        dropped: before
            .iter()
            .map(TicketKey::id)
            .filter(|id| !ids.contains(id))
            .collect(),
        keys: ids,
    })
}

/// `ticket-key new [--staged] PATH`: see the module docs.
///
/// # Errors
/// [`TicketKeyError`] naming the file: it exists but does not parse (it is left alone), or
/// it cannot be written.
pub fn new_key(path: &Path, staged: bool) -> Result<Written, TicketKeyError> {
    let fresh = TicketKey::generate()?;
    let Some(before) = existing(path)? else {
        return finish(path, Action::Created, &[], vec![fresh]);
    };
    let mut keys = vec![before[0].clone()];
    if staged {
        // current, staged, and the previous key (it still decrypts tickets issued before the
        // current key was promoted).
        keys.push(fresh);
        keys.extend(before.get(1).cloned());
        finish(path, Action::Staged, &before, keys)
    } else {
        keys.insert(0, fresh);
        finish(path, Action::Rotated, &before, keys)
    }
}

/// `ticket-key promote PATH`: see the module docs.
///
/// # Errors
/// [`TicketKeyError`] naming the file: it does not parse, holds one key only, or cannot be
/// written.
pub fn promote(path: &Path) -> Result<Written, TicketKeyError> {
    let before = read_key_file(path)?.keys;
    if before.len() < 2 {
        return Err(TicketKeyError::File {
            path: path.to_owned(),
            reason: "one key only: nothing to promote (stage one first with `rampart \
                     ticket-key new --staged`)"
                .into(),
        });
    }
    let keys = vec![before[1].clone(), before[0].clone()];
    finish(path, Action::Promoted, &before, keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const B: &str = "FFEEDDCCBBAA99887766554433221100ffeeddccbbaa99887766554433221100";

    fn p() -> &'static Path {
        Path::new("/x")
    }

    #[test]
    fn comments_blank_lines_and_surrounding_space_are_ignored() {
        let keys = parse(p(), &format!("# fleet keys\n\n  {A}  \n# old\n{B}\n")).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].to_hex(), A);
        assert_eq!(keys[1].to_hex(), B.to_ascii_lowercase());
    }

    #[test]
    fn a_bad_line_is_named_with_its_number() {
        let e = parse(p(), &format!("# c\n{A}\nnot hex\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket key file /x: line 3: expected 64 hex characters (a 32-byte key), found 7 characters"
        );
        let e = parse(p(), &format!("{}\n", &A[..62])).unwrap_err();
        assert!(e.to_string().contains("line 1: expected 64 hex"), "{e}");
        let e = parse(p(), &format!("{}zz\n", &A[..62])).unwrap_err();
        assert!(e.to_string().contains("line 1: expected 64 hex"), "{e}");
    }

    #[test]
    fn a_repeated_key_is_refused_naming_both_lines() {
        let e = parse(p(), &format!("{A}\n\n{A}\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket key file /x: line 3: the same key as line 1"
        );
    }

    #[test]
    fn an_empty_file_and_too_many_keys_are_refused() {
        let e = parse(p(), "# nothing\n\n").unwrap_err();
        assert!(
            e.to_string().starts_with("ticket key file /x: no keys"),
            "{e}"
        );
        let many: String = (0..=MAX_KEYS)
            .map(|i| {
                format!(
                    "{}\n",
                    TicketKey::new([u8::try_from(i).unwrap(); KEY_LEN]).to_hex()
                )
            })
            .collect();
        let e = parse(p(), &many).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ticket key file /x: 9 keys; at most 8 are allowed"
        );
    }

    #[test]
    fn rendered_files_parse_back_to_the_same_keys() {
        let keys = vec![
            TicketKey::generate().unwrap(),
            TicketKey::generate().unwrap(),
        ];
        assert_eq!(parse(p(), &render(&keys)).unwrap(), keys);
    }

    #[test]
    fn new_creates_then_rotates_keeping_only_the_previous_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let w1 = new_key(&path, false).unwrap();
        assert_eq!((w1.action, w1.keys.len()), (Action::Created, 1));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let w2 = new_key(&path, false).unwrap();
        assert_eq!(w2.action, Action::Rotated);
        assert_eq!(w2.keys[1], w1.keys[0]);
        let w3 = new_key(&path, false).unwrap();
        assert_eq!(w3.keys, vec![w3.keys[0], w2.keys[0]]);
        assert_eq!(w3.dropped, vec![w1.keys[0]]);
        let ids: Vec<KeyId> = read_key_file(&path)
            .unwrap()
            .keys
            .iter()
            .map(TicketKey::id)
            .collect();
        assert_eq!(ids, w3.keys);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn staging_adds_a_decrypt_only_key_and_promote_makes_it_encrypt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let k1 = new_key(&path, false).unwrap().keys[0];
        let staged = new_key(&path, true).unwrap();
        assert_eq!(staged.keys[0], k1, "the current key keeps encrypting");
        let k2 = staged.keys[1];
        let promoted = promote(&path).unwrap();
        assert_eq!(promoted.keys, vec![k2, k1]);
        let staged = new_key(&path, true).unwrap();
        let k3 = staged.keys[1];
        assert_eq!(
            staged.keys,
            vec![k2, k3, k1],
            "the previous key still decrypts"
        );
        assert_eq!(promote(&path).unwrap().keys, vec![k3, k2]);
    }

    #[test]
    fn a_file_that_does_not_parse_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, "garbage\n").unwrap();
        let e = new_key(&path, false).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "garbage\n");
        let e = promote(&dir.path().join("missing")).unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
