//! Session-ticket keys: rampart's own [`ProducesTickets`] over a small key ring, so that a
//! fleet of instances sharing one key file (`--ticket-key-file`) resumes each other's TLS
//! 1.2 and 1.3 sessions, and so that the ring is visible (generation, key count, key ids)
//! whichever way its keys come.
//!
//! # Tickets
//! A ticket is `key id (8 bytes) || nonce (12 bytes) || AES-256-GCM ciphertext + tag (16
//! bytes)`, sealed with the newest key of the ring under a fresh random nonce, with the key
//! id as associated data. Any key of the ring opens a ticket whose id it carries; an unknown
//! id, a short ticket or a failed tag check yields `None`, and rustls falls back to a full
//! handshake. Random 96-bit nonces keep GCM within its bounds for up to 2^32 tickets per key
//! (NIST SP 800-38D): at the 6-hour rotation below that is ~200 000 tickets a second.
//!
//! # Where the keys come from
//! - [`TicketKeys::from_file`]: the key file (format in [`mod@file`]), re-read by [`reload`] when
//!   it changes or on SIGHUP. Rotation is the operator's: `rampart ticket-key new`.
//! - [`TicketKeys::in_memory`]: a random key, replaced every [`ROTATION`]; the previous key
//!   keeps decrypting, so a ticket stays usable for one to two rotation periods. This is what
//!   rustls' own `Ticketer` does; rampart's version makes both modes expose the same things.
//!
//! # Lifetime
//! [`LIFETIME`] (6 hours, rustls' default) is the hint sent with every ticket. With a
//! rotation every 6 hours and the previous key kept, every ticket is decryptable for at least
//! its advertised lifetime; rotating the key file at that cadence keeps the same promise.
//!
//! This module must not log per ticket: `encrypt`/`decrypt` run on every handshake.

pub mod file;
pub mod reload;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use rustls::server::ProducesTickets;

pub use file::{read_key_file, KeyFile, TicketKeyError, MAX_KEYS};

/// Ticket lifetime hint sent to clients: 6 hours (rustls' default ticketer uses the same).
pub const LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// How often in-memory keys are replaced (the previous key keeps decrypting): 6 hours.
pub const ROTATION: Duration = Duration::from_secs(6 * 3600);

/// Length of a key id in bytes (prefix of every ticket).
pub const KEY_ID_LEN: usize = 8;

/// Length of a ticket key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

const TAG_LEN: usize = 16;

/// Domain-separation label of the key id: `SHA-256(label || key)[..8]`.
const KEY_ID_LABEL: &[u8] = b"rampart session ticket key id v1\0";

/// The public name of a key: the first 8 bytes of SHA-256 over a fixed label and the key.
/// Every instance computes the same id for the same key; it reveals nothing usable about
/// the key. Shown in logs and in the key file's comments as 16 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The id of `key`.
    #[must_use]
    pub fn of(key: &[u8; KEY_LEN]) -> Self {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(KEY_ID_LABEL);
        ctx.update(key);
        let digest = ctx.finish();
        let mut id = [0; KEY_ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..KEY_ID_LEN]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 32-byte ticket key with its id. `Debug` shows the id only.
#[derive(Clone, PartialEq, Eq)]
pub struct TicketKey {
    id: KeyId,
    bytes: [u8; KEY_LEN],
}

impl TicketKey {
    /// Wraps key bytes.
    #[must_use]
    pub fn new(bytes: [u8; KEY_LEN]) -> Self {
        Self {
            id: KeyId::of(&bytes),
            bytes,
        }
    }

    /// A new key from the system's secure random generator.
    ///
    /// # Errors
    /// [`TicketKeyError::Random`] if the generator fails.
    pub fn generate() -> Result<Self, TicketKeyError> {
        let mut bytes = [0; KEY_LEN];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TicketKeyError::Random)?;
        Ok(Self::new(bytes))
    }

    /// The key's public id.
    #[must_use]
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// The key as 64 lowercase hex characters (the key file's line format).
    #[must_use]
    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// One key of the ring, ready to seal and open.
struct RingKey {
    key: TicketKey,
    aead: LessSafeKey,
}

/// The keys in use, newest (the one that encrypts) first; never empty.
struct Ring {
    keys: Vec<RingKey>,
}

impl Ring {
    fn new(keys: &[TicketKey]) -> Result<Self, TicketKeyError> {
        if keys.is_empty() {
            return Err(TicketKeyError::NoKeys);
        }
        let keys = keys
            .iter()
            .map(|k| {
                // Fails only for a key of the wrong length, which `TicketKey` rules out.
                let unbound =
                    UnboundKey::new(&AES_256_GCM, &k.bytes).map_err(|_| TicketKeyError::Random)?;
                Ok(RingKey {
                    key: k.clone(),
                    aead: LessSafeKey::new(unbound),
                })
            })
            .collect::<Result<_, TicketKeyError>>()?;
        Ok(Self { keys })
    }

    fn ids(&self) -> Vec<KeyId> {
        self.keys.iter().map(|k| k.key.id).collect()
    }
}

/// Where the ring's keys come from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Memory { rotation: Duration },
}

/// The session-ticket key ring, shared by the rustls `ServerConfig` (as its ticketer), the
/// reload module and whoever reports on it (metrics). Cheap to read on every handshake: the
/// ring is an `ArcSwap`, swapped whole on a reload or rotation.
pub struct TicketKeys {
    ring: ArcSwap<Ring>,
    generation: AtomicU64,
    source: Source,
    /// In-memory mode: when the current key was made, and a lock so one thread rotates.
    rotated_at: Mutex<Instant>,
}

impl fmt::Debug for TicketKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketKeys")
            .field("source", &self.source)
            .field("generation", &self.generation())
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

impl TicketKeys {
    /// Keys from the key file at `path` (newest first); see [`mod@file`] for the format. Warns
    /// (tracing) when the file is readable by group or others.
    ///
    /// # Errors
    /// [`TicketKeyError`] naming the file (and the line) when it cannot be read or parsed.
    pub fn from_file(path: &Path) -> Result<Self, TicketKeyError> {
        let file = read_key_file(path)?;
        file.warn_if_exposed();
        Self::with_source(&file.keys, Source::File(path.to_owned()))
    }

    /// A random in-memory key, replaced every `rotation` (the previous key keeps decrypting
    /// for one more period). [`ROTATION`] is the server's choice.
    ///
    /// # Errors
    /// [`TicketKeyError::Random`] if the random generator fails.
    pub fn in_memory(rotation: Duration) -> Result<Self, TicketKeyError> {
        Self::with_source(&[TicketKey::generate()?], Source::Memory { rotation })
    }

    /// A ring over `keys` (newest first) that never rotates by itself: for tests and
    /// embedders that manage keys themselves through [`TicketKeys::replace`].
    ///
    /// # Errors
    /// [`TicketKeyError::NoKeys`] for an empty list.
    pub fn fixed(keys: &[TicketKey]) -> Result<Self, TicketKeyError> {
        Self::with_source(
            keys,
            Source::Memory {
                rotation: Duration::MAX,
            },
        )
    }

    fn with_source(keys: &[TicketKey], source: Source) -> Result<Self, TicketKeyError> {
        Ok(Self {
            ring: ArcSwap::from_pointee(Ring::new(keys)?),
            generation: AtomicU64::new(1),
            source,
            rotated_at: Mutex::new(Instant::now()),
        })
    }

    /// How many times the ring has changed: 1 for the keys it started with, +1 for every
    /// reload that changed the keys and every in-memory rotation.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Number of keys in the ring (the first encrypts, all decrypt).
    #[must_use]
    pub fn key_count(&self) -> usize {
        self.ring.load().keys.len()
    }

    /// Ids of the keys in the ring, newest (encrypting) first.
    #[must_use]
    pub fn key_ids(&self) -> Vec<KeyId> {
        self.ring.load().ids()
    }

    /// The key file, when the keys come from one.
    #[must_use]
    pub fn file(&self) -> Option<&Path> {
        match &self.source {
            Source::File(p) => Some(p),
            Source::Memory { .. } => None,
        }
    }

    /// Swaps in `keys` (newest first) if they differ from the ring's; returns whether the
    /// ring changed (and the generation with it).
    ///
    /// # Errors
    /// [`TicketKeyError::NoKeys`] for an empty list; the ring is unchanged.
    pub fn replace(&self, keys: &[TicketKey]) -> Result<bool, TicketKeyError> {
        let ids: Vec<KeyId> = keys.iter().map(TicketKey::id).collect();
        if ids == self.key_ids() {
            return Ok(false);
        }
        self.ring.store(Arc::new(Ring::new(keys)?));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    /// Re-reads the key file and swaps in its keys; returns whether the ring changed.
    /// In-memory rings have no file: `Ok(false)`.
    ///
    /// # Errors
    /// [`TicketKeyError`] naming the file and line; the ring is unchanged.
    pub fn reload(&self) -> Result<bool, TicketKeyError> {
        let Source::File(path) = &self.source else {
            return Ok(false);
        };
        let file = read_key_file(path)?;
        file.warn_if_exposed();
        self.replace(&file.keys)
    }

    /// In-memory mode: makes a new key the encrypting one, keeping the current one for
    /// decryption only. Returns the generation after the call. Keys from a file are the
    /// file's alone: for them this changes nothing (rotate the file instead).
    ///
    /// # Errors
    /// [`TicketKeyError::Random`] if the random generator fails; the ring is unchanged.
    pub fn rotate(&self) -> Result<u64, TicketKeyError> {
        if self.file().is_some() {
            return Ok(self.generation());
        }
        let mut at = self
            .rotated_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.rotate_locked(&mut at)
    }

    fn rotate_locked(&self, at: &mut Instant) -> Result<u64, TicketKeyError> {
        let mut keys = vec![TicketKey::generate()?];
        // The previous encrypting key moves to decrypt-only; older ones are dropped.
        keys.extend(self.ring.load().keys.first().map(|k| k.key.clone()));
        self.ring.store(Arc::new(Ring::new(&keys)?));
        *at = Instant::now();
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::info!(
            generation,
            current = %self.key_ids()[0],
            "in-memory ticket key rotated"
        );
        Ok(generation)
    }

    /// In-memory mode: rotates when the current key is older than the rotation period.
    /// Called on the encrypt path; a thread that finds another rotating does not wait.
    fn rotate_if_due(&self) {
        let Source::Memory { rotation } = self.source else {
            return;
        };
        let Ok(mut at) = self.rotated_at.try_lock() else {
            return;
        };
        if at.elapsed() >= rotation {
            if let Err(e) = self.rotate_locked(&mut at) {
                tracing::error!(error = %e, "in-memory ticket key rotation failed; keeping the current key");
                *at = Instant::now();
            }
        }
    }
}

impl ProducesTickets for TicketKeys {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(LIFETIME.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.rotate_if_due();
        let ring = self.ring.load();
        let key = ring.keys.first()?;
        let mut nonce = [0; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).ok()?;
        let mut out = Vec::with_capacity(KEY_ID_LEN + NONCE_LEN + plain.len() + TAG_LEN);
        let id = key.key.id.0;
        out.extend_from_slice(&id);
        out.extend_from_slice(&nonce);
        let mut sealed = plain.to_vec();
        key.aead
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&id),
                &mut sealed,
            )
            .ok()?;
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, ticket: &[u8]) -> Option<Vec<u8>> {
        if ticket.len() < KEY_ID_LEN + NONCE_LEN + TAG_LEN {
            return None;
        }
        let (id, rest) = ticket.split_at(KEY_ID_LEN);
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let ring = self.ring.load();
        let key = ring.keys.iter().find(|k| k.key.id.0 == id)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = sealed.to_vec();
        let plain = key
            .aead
            .open_in_place(nonce, Aad::from(&key.key.id.0), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> TicketKey {
        TicketKey::new([byte; KEY_LEN])
    }

    #[test]
    fn a_ticket_opens_with_the_key_that_sealed_it() {
        let keys = TicketKeys::fixed(&[key(1)]).unwrap();
        let ticket = keys.encrypt(b"session state").unwrap();
        assert_eq!(&ticket[..KEY_ID_LEN], &key(1).id().0);
        assert_eq!(
            ticket.len(),
            KEY_ID_LEN + NONCE_LEN + b"session state".len() + TAG_LEN
        );
        assert_eq!(keys.decrypt(&ticket).unwrap(), b"session state");
    }

    #[test]
    fn two_tickets_for_the_same_state_differ() {
        let keys = TicketKeys::fixed(&[key(1)]).unwrap();
        assert_ne!(keys.encrypt(b"x"), keys.encrypt(b"x"));
    }

    #[test]
    fn a_ticket_from_a_previous_key_opens_while_that_key_is_in_the_ring() {
        let keys = TicketKeys::fixed(&[key(1)]).unwrap();
        let old = keys.encrypt(b"old").unwrap();
        assert!(keys.replace(&[key(2), key(1)]).unwrap());
        let new = keys.encrypt(b"new").unwrap();
        assert_eq!(&new[..KEY_ID_LEN], &key(2).id().0);
        assert_eq!(keys.decrypt(&old).unwrap(), b"old");
        assert_eq!(keys.decrypt(&new).unwrap(), b"new");
    }

    #[test]
    fn a_ticket_from_a_removed_key_gives_none() {
        let keys = TicketKeys::fixed(&[key(1)]).unwrap();
        let old = keys.encrypt(b"old").unwrap();
        keys.replace(&[key(3), key(2)]).unwrap();
        assert_eq!(keys.decrypt(&old), None);
    }

    #[test]
    fn a_tampered_or_truncated_ticket_gives_none() {
        let keys = TicketKeys::fixed(&[key(1)]).unwrap();
        let ticket = keys.encrypt(b"session state").unwrap();
        for i in 0..ticket.len() {
            let mut bad = ticket.clone();
            bad[i] ^= 0x01;
            assert_eq!(keys.decrypt(&bad), None, "flipped byte {i}");
        }
        for len in 0..ticket.len() {
            assert_eq!(keys.decrypt(&ticket[..len]), None, "truncated to {len}");
        }
        assert_eq!(keys.decrypt(&[]), None);
    }

    #[test]
    fn a_ticket_whose_id_is_swapped_to_another_ring_key_gives_none() {
        // The id is associated data: relabelling a ticket does not move it to another key.
        let keys = TicketKeys::fixed(&[key(1), key(2)]).unwrap();
        let mut ticket = keys.encrypt(b"state").unwrap();
        ticket[..KEY_ID_LEN].copy_from_slice(&key(2).id().0);
        assert_eq!(keys.decrypt(&ticket), None);
    }

    #[test]
    fn generation_counts_changes_of_the_ring_only() {
        let keys = TicketKeys::fixed(&[key(1)]).unwrap();
        assert_eq!(keys.generation(), 1);
        assert!(!keys.replace(&[key(1)]).unwrap());
        assert_eq!(keys.generation(), 1);
        assert!(keys.replace(&[key(2), key(1)]).unwrap());
        assert_eq!((keys.generation(), keys.key_count()), (2, 2));
        assert!(keys.replace(&[]).is_err());
        assert_eq!((keys.generation(), keys.key_count()), (2, 2));
    }

    #[test]
    fn in_memory_rotation_keeps_the_previous_key_for_decryption_only() {
        let keys = TicketKeys::in_memory(ROTATION).unwrap();
        let first = keys.key_ids()[0];
        let old = keys.encrypt(b"old").unwrap();
        assert_eq!(keys.rotate().unwrap(), 2);
        let ids = keys.key_ids();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1], first);
        assert_ne!(ids[0], first);
        assert_eq!(&keys.encrypt(b"new").unwrap()[..KEY_ID_LEN], &ids[0].0);
        assert_eq!(keys.decrypt(&old).unwrap(), b"old");
        keys.rotate().unwrap();
        assert_eq!(keys.key_count(), 2);
        assert_eq!(
            keys.decrypt(&old),
            None,
            "two rotations later the key is gone"
        );
    }

    #[test]
    fn keys_from_a_file_are_not_rotated_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, file::render(&[key(1)])).unwrap();
        let keys = TicketKeys::from_file(&path).unwrap();
        assert_eq!(keys.rotate().unwrap(), 1);
        assert_eq!(keys.key_ids(), vec![key(1).id()]);
        std::fs::write(&path, file::render(&[key(2), key(1)])).unwrap();
        assert!(keys.reload().unwrap());
        assert_eq!((keys.generation(), keys.key_count()), (2, 2));
        std::fs::write(&path, "bad\n").unwrap();
        assert!(keys.reload().is_err());
        assert_eq!(keys.key_ids(), vec![key(2).id(), key(1).id()]);
    }

    #[test]
    fn in_memory_keys_rotate_on_the_encrypt_path_when_due() {
        let keys = TicketKeys::in_memory(Duration::ZERO).unwrap();
        let before = keys.generation();
        keys.encrypt(b"x").unwrap();
        assert!(keys.generation() > before);
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        assert_eq!(key(1).id(), KeyId::of(&[1; KEY_LEN]));
        assert_ne!(key(1).id(), key(2).id());
        assert_eq!(key(1).id().to_string().len(), 2 * KEY_ID_LEN);
        assert!(!format!("{:?}", key(7)).contains("0707"));
    }
}
