//! HTTP Basic authentication (RFC 7617) against bcrypt hashes: parsing an `Authorization`
//! value, verifying its password off the async workers under a bound, and remembering
//! successes for a while. Also `rampart hash-password`'s hashing.
//!
//! It owns no policy about which paths need a password (the site rules do) and writes no
//! response: the caller turns an [`Outcome`] into the request, a 401 with
//! [`BasicAuth::challenge`], or a 503 with `Retry-After`.
//!
//! Costs, measured by design rather than left to chance:
//! - bcrypt takes tens to hundreds of milliseconds by design, so it runs on tokio's
//!   blocking pool, and at most [`VerifyPool`]'s permits at once (the number of CPUs by
//!   default): a flood of wrong passwords gets [`Outcome::Busy`] instead of taking every
//!   blocking thread (which would stall the file streaming that shares them).
//! - An unknown user costs one bcrypt verification, like a known one (against a dummy hash
//!   at the credentials' highest cost), so timing does not tell which users exist.
//! - A header value that verified is remembered for [`CACHE_TTL`] (at most
//!   [`CACHE_ENTRIES`] of them), so a browser that sends it with every request pays bcrypt
//!   once every five minutes, not once per asset.

use std::collections::HashMap;
use std::io::BufRead;
use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use http::HeaderValue;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::rules::Credential;

/// How long a verified `Authorization` value is accepted without bcrypt: 5 minutes.
pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// The most verified values remembered; when full, expired ones go, else any one.
pub const CACHE_ENTRIES: usize = 1024;

/// The cost `rampart hash-password` uses without `--cost` (bcrypt's own default).
pub const DEFAULT_COST: u32 = bcrypt::DEFAULT_COST;

/// The longest `Authorization` value parsed (longer ones are denied unread): user and
/// password far beyond bcrypt's 72 bytes.
const MAX_HEADER: usize = 4096;

/// The salt and hash of a well-formed bcrypt hash (from the bcrypt crate's tests), behind
/// the credentials' cost so that verifying against it takes as long as a real one. Its
/// password does not matter: an unknown user is denied whatever the verification says.
const DUMMY_SALT_AND_HASH: &str = "L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u";

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The user and password match a credential.
    Allowed {
        /// The user name from the header.
        user: String,
    },
    /// Malformed, unknown user or wrong password (the three are not told apart).
    Denied,
    /// Every verification permit is taken: answer 503 with `Retry-After`.
    Busy,
}

/// Why a [`BasicAuth`] could not be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BasicAuthError {
    /// A credential's hash is not a bcrypt hash this module verifies.
    #[error("the password hash of user {user:?} is not a bcrypt hash ($2a$, $2b$ or $2y$): {why}")]
    BadHash {
        /// The credential's user.
        user: String,
        /// What is wrong with it.
        why: String,
    },
    /// A user name with a colon can never be sent (the colon ends the user in the header).
    #[error("the user name {0:?} contains a colon, which Basic authentication cannot send")]
    ColonInUser(String),
    /// The realm goes into a quoted string: no `"`, `\` or control characters.
    #[error("the realm {0:?} may not contain '\"', '\\' or control characters")]
    BadRealm(String),
}

/// Why `hash-password` made no hash.
#[derive(Debug, thiserror::Error)]
pub enum HashPasswordError {
    /// Nothing was read, or only a newline.
    #[error("empty password: write one line with the password on standard input")]
    Empty,
    /// The input could not be read or is not UTF-8.
    #[error("reading the password: {0}")]
    Read(#[from] std::io::Error),
    /// bcrypt only uses a password's first 72 bytes; longer ones are refused, not cut.
    #[error("the password is {0} bytes long; bcrypt uses at most 71 (refused rather than cut)")]
    TooLong(usize),
    /// The cost is outside bcrypt's 4..=31.
    #[error("cost {0} is outside bcrypt's range 4..=31")]
    Cost(u32),
    /// bcrypt failed otherwise (no randomness).
    #[error("bcrypt: {0}")]
    Bcrypt(String),
}

/// A bound on concurrent bcrypt verifications, shared by every [`BasicAuth`] built with
/// it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct VerifyPool {
    permits: Arc<Semaphore>,
}

impl VerifyPool {
    /// A pool of `limit` concurrent verifications (at least 1).
    #[must_use]
    pub fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.max(1))),
        }
    }

    /// The process-wide pool [`BasicAuth::new`] uses: one verification per CPU
    /// (`available_parallelism`, 1 when unknown).
    #[must_use]
    pub fn shared() -> Self {
        static SHARED: OnceLock<VerifyPool> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let cpus = std::thread::available_parallelism().map_or(1, usize::from);
                Self::new(cpus)
            })
            .clone()
    }
}

/// A verified header value remembered until `expires`.
#[derive(Debug)]
struct Remembered {
    user: String,
    expires: Instant,
}

/// The Basic authentication of one set of credentials and one realm.
#[derive(Debug)]
pub struct BasicAuth {
    /// User name to bcrypt hash.
    users: HashMap<String, Arc<str>>,
    /// Verified against for unknown users, at the credentials' highest cost.
    dummy: Arc<str>,
    challenge: HeaderValue,
    pool: VerifyPool,
    /// SHA-256 of a verified `Authorization` value to its user.
    cache: Mutex<HashMap<[u8; 32], Remembered>>,
}

impl BasicAuth {
    /// Checks the credentials and the realm; verifications share [`VerifyPool::shared`].
    /// A user listed twice keeps the last hash.
    ///
    /// # Errors
    /// [`BasicAuthError`] for a hash that is not `$2a$`/`$2b$`/`$2y$` bcrypt, a user with
    /// a colon, or a realm that cannot be quoted.
    pub fn new(credentials: &[Credential], realm: &str) -> Result<Self, BasicAuthError> {
        if realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
        {
            return Err(BasicAuthError::BadRealm(realm.to_owned()));
        }
        let mut users = HashMap::with_capacity(credentials.len());
        let mut max_cost = 0;
        for c in credentials {
            if c.user.contains(':') {
                return Err(BasicAuthError::ColonInUser(c.user.clone()));
            }
            let bad = |why: &str| BasicAuthError::BadHash {
                user: c.user.clone(),
                why: why.to_owned(),
            };
            if !["$2a$", "$2b$", "$2y$"]
                .iter()
                .any(|v| c.hash.starts_with(v))
            {
                return Err(bad("it must start with $2a$, $2b$ or $2y$"));
            }
            let parts = bcrypt::HashParts::from_str(&c.hash).map_err(|e| bad(&e.to_string()))?;
            if !(4..=31).contains(&parts.get_cost()) {
                return Err(bad(&format!("cost {} is outside 4..=31", parts.get_cost())));
            }
            max_cost = max_cost.max(parts.get_cost());
            users.insert(c.user.clone(), Arc::from(c.hash.as_str()));
        }
        let cost = if max_cost == 0 {
            DEFAULT_COST
        } else {
            max_cost
        };
        let dummy = format!("$2b${cost:02}${DUMMY_SALT_AND_HASH}");
        let challenge = format!("Basic realm=\"{realm}\", charset=\"UTF-8\"");
        let challenge = HeaderValue::from_str(&challenge)
            .map_err(|_| BasicAuthError::BadRealm(realm.into()))?;
        Ok(Self {
            users,
            dummy: dummy.into(),
            challenge,
            pool: VerifyPool::shared(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// The same, with verifications bounded by `pool` (shared with whoever else holds it).
    #[must_use]
    pub fn with_pool(mut self, pool: VerifyPool) -> Self {
        self.pool = pool;
        self
    }

    /// The `WWW-Authenticate` value of a 401: `Basic realm="...", charset="UTF-8"`.
    #[must_use]
    pub fn challenge(&self) -> &HeaderValue {
        &self.challenge
    }

    /// Checks an `Authorization` header value (`Basic base64(user:password)`).
    ///
    /// Denied without bcrypt: a value that does not parse (see [`parse`]). Allowed without
    /// bcrypt: a value verified within [`CACHE_TTL`]. Otherwise one bcrypt verification on
    /// the blocking pool, or [`Outcome::Busy`] when the pool has no permit free.
    pub async fn check(&self, authorization: &[u8]) -> Outcome {
        let Some((user, password)) = parse(authorization) else {
            return Outcome::Denied;
        };
        let key = cache_key(authorization);
        let now = Instant::now();
        if let Some(user) = self.cached(&key, now) {
            return Outcome::Allowed { user };
        }
        let (hash, known) = match self.users.get(&user) {
            Some(hash) => (Arc::clone(hash), true),
            None => (Arc::clone(&self.dummy), false),
        };
        let Ok(permit) = Arc::clone(&self.pool.permits).try_acquire_owned() else {
            return Outcome::Busy;
        };
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // A hash that fails to parse was refused in `new`; any error is a denial.
            bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if verified && known {
            self.remember(key, &user);
            Outcome::Allowed { user }
        } else {
            Outcome::Denied
        }
    }

    fn cached(&self, key: &[u8; 32], now: Instant) -> Option<String> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .filter(|r| r.expires > now)
            .map(|r| r.user.clone())
    }

    fn remember(&self, key: [u8; 32], user: &str) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHE_ENTRIES {
            cache.retain(|_, r| r.expires > now);
        }
        if cache.len() >= CACHE_ENTRIES {
            // Any entry: the cost of a wrong choice is one more bcrypt for its owner.
            if let Some(victim) = cache.keys().next().copied() {
                cache.remove(&victim);
            }
        }
        cache.insert(
            key,
            Remembered {
                user: user.to_owned(),
                expires: now + CACHE_TTL,
            },
        );
    }
}

/// The cache key of a header value: its SHA-256. The cache is a `HashMap` looked up by
/// this digest, not compared in constant time, and need not be: a lookup's timing can at
/// most tell an attacker something about the digests of values that verified, and a
/// digest does not give back a value that hashes to it (SHA-256 is preimage-resistant).
/// The header itself, with its password, is never kept.
fn cache_key(authorization: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, authorization);
    let mut key = [0u8; 32];
    key.copy_from_slice(digest.as_ref());
    key
}

/// Parses `Basic <base64 of user:password>`: the scheme in any case, spaces or tabs
/// around and between the parts, the credentials in standard base64 with padding, UTF-8
/// once decoded, the user ending at the first colon (the password may hold more). `None`
/// for anything else: another scheme, a second token, bad base64, not UTF-8, no colon, or
/// a value over 4096 bytes.
#[must_use]
pub fn parse(authorization: &[u8]) -> Option<(String, String)> {
    if authorization.len() > MAX_HEADER {
        return None;
    }
    let value = std::str::from_utf8(authorization).ok()?;
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() || token.contains([' ', '\t']) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Reads the password for `hash-password`: the first line of `input`, its `\n` or `\r\n`
/// removed.
///
/// # Errors
/// [`HashPasswordError::Empty`] for an empty line or no input, `Read` when the input fails
/// or is not UTF-8.
pub fn read_password(mut input: impl BufRead) -> Result<String, HashPasswordError> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let password = line
        .strip_suffix('\n')
        .map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    if password.is_empty() {
        return Err(HashPasswordError::Empty);
    }
    Ok(password.to_owned())
}

/// A bcrypt hash (`$2b$`) of `password` at `cost` (4..=31; [`DEFAULT_COST`] is 12) with a
/// random salt. Passwords of 72 bytes or more are refused: bcrypt would ignore the rest.
///
/// # Errors
/// [`HashPasswordError`]: empty, too long, a cost out of range, no randomness.
pub fn hash_password(password: &str, cost: u32) -> Result<String, HashPasswordError> {
    if password.is_empty() {
        return Err(HashPasswordError::Empty);
    }
    if !(4..=31).contains(&cost) {
        return Err(HashPasswordError::Cost(cost));
    }
    bcrypt::non_truncating_hash(password, cost).map_err(|e| match e {
        bcrypt::BcryptError::Truncation(_) => HashPasswordError::TooLong(password.len()),
        bcrypt::BcryptError::CostNotAllowed(c) => HashPasswordError::Cost(c),
        other => HashPasswordError::Bcrypt(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cost 4 keeps most tests fast; the cache test uses a dearer hash to measure.
    fn credential(user: &str, password: &str, cost: u32) -> Credential {
        Credential {
            user: user.to_owned(),
            hash: bcrypt::hash(password, cost).unwrap(),
        }
    }

    fn header(user_pass: &str) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(user_pass);
        format!("Basic {b64}").into_bytes()
    }

    fn auth(cost: u32) -> BasicAuth {
        BasicAuth::new(
            &[credential("alice", "s3cret: with colon", cost)],
            "staging",
        )
        .unwrap()
        .with_pool(VerifyPool::new(4))
    }

    fn allowed(user: &str) -> Outcome {
        Outcome::Allowed { user: user.into() }
    }

    #[tokio::test]
    async fn the_right_password_is_allowed_and_a_wrong_one_denied() {
        let a = auth(4);
        assert_eq!(
            a.check(&header("alice:s3cret: with colon")).await,
            allowed("alice")
        );
        assert_eq!(a.check(&header("alice:s3cret")).await, Outcome::Denied);
        assert_eq!(a.check(&header("alice:")).await, Outcome::Denied);
    }

    #[tokio::test]
    async fn an_unknown_user_is_denied_even_with_a_known_password() {
        let a = auth(4);
        assert_eq!(
            a.check(&header("bob:s3cret: with colon")).await,
            Outcome::Denied
        );
        assert_eq!(
            a.check(&header(":s3cret: with colon")).await,
            Outcome::Denied
        );
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_spaces_are_tolerated() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:pw");
        for v in [
            format!("Basic {b64}"),
            format!("basic {b64}"),
            format!("BASIC   {b64}"),
            format!("  Basic\t{b64}  "),
        ] {
            assert_eq!(
                parse(v.as_bytes()),
                Some(("alice".into(), "pw".into())),
                "{v:?}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_values_are_denied_without_bcrypt() {
        let a = auth(4).with_pool(VerifyPool::new(1));
        // Hold the only permit: a value that reached bcrypt would answer Busy.
        let _held = Arc::clone(&a.pool.permits).try_acquire_owned().unwrap();
        let not_utf8 = base64::engine::general_purpose::STANDARD.encode(b"alice:\xff\xfe");
        let no_colon = base64::engine::general_purpose::STANDARD.encode("alice");
        let long = format!("Basic {}", "A".repeat(MAX_HEADER));
        for v in [
            "".to_owned(),
            "Basic".to_owned(),
            "Basic ".to_owned(),
            "Bearer YWxpY2U6cHc=".to_owned(),
            "Basicx YWxpY2U6cHc=".to_owned(),
            "Basic YWxpY2U6cHc".to_owned(),
            "Basic YWxp!2U6cHc=".to_owned(),
            "Basic YWxpY2U6cHc= extra".to_owned(),
            format!("Basic {not_utf8}"),
            format!("Basic {no_colon}"),
            long,
        ] {
            assert_eq!(a.check(v.as_bytes()).await, Outcome::Denied, "{v:?}");
        }
        assert_eq!(a.check(b"Basic \xff").await, Outcome::Denied);
    }

    #[tokio::test]
    async fn a_cached_value_skips_bcrypt() {
        // Cost 10: a few tens of milliseconds even with blowfish optimised in tests.
        let a = auth(10);
        let value = header("alice:s3cret: with colon");
        let t = std::time::Instant::now();
        assert_eq!(a.check(&value).await, allowed("alice"));
        let first = t.elapsed();
        let t = std::time::Instant::now();
        assert_eq!(a.check(&value).await, allowed("alice"));
        let second = t.elapsed();
        assert!(
            second * 20 < first,
            "first {first:?}, second {second:?}: the second should skip bcrypt"
        );
        // Only the verified value is remembered, not the user: a wrong password still
        // goes to bcrypt and is denied.
        assert_eq!(a.check(&header("alice:nope")).await, Outcome::Denied);
        assert_eq!(a.cache.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cached_value_expires_after_five_minutes() {
        let a = auth(4).with_pool(VerifyPool::new(1));
        let value = header("alice:s3cret: with colon");
        assert_eq!(a.check(&value).await, allowed("alice"));
        let held = Arc::clone(&a.pool.permits).try_acquire_owned().unwrap();
        // Cached: no permit needed.
        assert_eq!(a.check(&value).await, allowed("alice"));
        tokio::time::advance(CACHE_TTL + Duration::from_secs(1)).await;
        // Expired: back to bcrypt, whose only permit is held.
        assert_eq!(a.check(&value).await, Outcome::Busy);
        drop(held);
        assert_eq!(a.check(&value).await, allowed("alice"));
    }

    #[tokio::test]
    async fn the_cache_stays_bounded() {
        let a = auth(4);
        for i in 0..CACHE_ENTRIES + 10 {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_le_bytes());
            a.remember(key, "alice");
        }
        assert_eq!(a.cache.lock().unwrap().len(), CACHE_ENTRIES);
    }

    #[tokio::test]
    async fn checks_beyond_the_pool_are_busy() {
        let a = auth(8).with_pool(VerifyPool::new(1));
        let right = header("alice:s3cret: with colon");
        let wrong = header("alice:wrong");
        // `join!` polls in order: the first takes the only permit and waits on bcrypt;
        // the second finds none.
        let (first, second) = tokio::join!(a.check(&right), a.check(&wrong));
        assert_eq!(first, allowed("alice"));
        assert_eq!(second, Outcome::Busy);
        // The permit is back once the first is done.
        assert_eq!(a.check(&wrong).await, Outcome::Denied);
    }

    #[test]
    fn bad_hashes_users_and_realms_are_refused() {
        let good = credential("alice", "pw", 4);
        let bad = |hash: &str| Credential {
            user: "alice".into(),
            hash: hash.into(),
        };
        for hash in [
            "plain",
            "$1$abc$def",
            "$2x$04$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u",
            "$2b$04$short",
            "$2b$99$L6Bc/AlTQHyd9liGgGEZyOFLPHNgyxeEPfgYfBCVxJ7JIlwxyVU3u",
        ] {
            assert!(
                matches!(
                    BasicAuth::new(&[bad(hash)], "r"),
                    Err(BasicAuthError::BadHash { .. })
                ),
                "{hash}"
            );
        }
        let colon = Credential {
            user: "a:b".into(),
            hash: good.hash.clone(),
        };
        assert!(matches!(
            BasicAuth::new(&[colon], "r"),
            Err(BasicAuthError::ColonInUser(_))
        ));
        for realm in ["a\"b", "a\\b", "a\nb"] {
            assert!(matches!(
                BasicAuth::new(std::slice::from_ref(&good), realm),
                Err(BasicAuthError::BadRealm(_))
            ));
        }
    }

    #[test]
    fn the_challenge_names_the_realm_and_utf8() {
        let a = auth(4);
        assert_eq!(a.challenge(), "Basic realm=\"staging\", charset=\"UTF-8\"");
    }

    #[test]
    fn the_dummy_hash_is_valid_at_the_credentials_cost() {
        let a = BasicAuth::new(&[credential("alice", "pw", 5)], "r").unwrap();
        let parts = bcrypt::HashParts::from_str(&a.dummy).unwrap();
        assert_eq!(parts.get_cost(), 5);
        assert!(!bcrypt::verify("pw", &a.dummy).unwrap());
    }

    #[test]
    fn hash_password_makes_a_verifiable_hash_and_refuses_bad_input() {
        let h = hash_password("correct horse", 4).unwrap();
        assert!(h.starts_with("$2b$04$"), "{h}");
        assert!(bcrypt::verify("correct horse", &h).unwrap());
        assert!(matches!(
            hash_password("", 4),
            Err(HashPasswordError::Empty)
        ));
        assert!(matches!(
            hash_password("pw", 3),
            Err(HashPasswordError::Cost(3))
        ));
        assert!(matches!(
            hash_password("pw", 32),
            Err(HashPasswordError::Cost(32))
        ));
        assert!(matches!(
            hash_password(&"x".repeat(72), 4),
            Err(HashPasswordError::TooLong(72))
        ));
    }

    #[test]
    fn read_password_takes_one_line_without_its_newline() {
        assert_eq!(read_password(&b"pw one\nsecond\n"[..]).unwrap(), "pw one");
        assert_eq!(read_password(&b"pw\r\n"[..]).unwrap(), "pw");
        assert_eq!(read_password(&b"pw"[..]).unwrap(), "pw");
        assert!(matches!(
            read_password(&b"\n"[..]),
            Err(HashPasswordError::Empty)
        ));
        assert!(matches!(
            read_password(&b""[..]),
            Err(HashPasswordError::Empty)
        ));
        assert!(matches!(
            read_password(&b"\xff\n"[..]),
            Err(HashPasswordError::Read(_))
        ));
    }
}
