//! The answers to an ACME CA's pending challenges: HTTP-01 (RFC 8555 section 8.3, a body
//! for `/.well-known/acme-challenge/TOKEN`) and TLS-ALPN-01 (RFC 8737, a self-signed
//! certificate presented to a ClientHello offering `acme-tls/1`). The order code publishes
//! an answer while the CA validates and withdraws it afterwards; the listeners ask for one.
//!
//! Owns the challenge certificate and the layout of the shared directory that makes the
//! answers of one instance visible to every instance of a fleet (`http-01/TOKEN` and
//! `tls-alpn-01/DOMAIN`, each holding the key authorization; files 0600, written
//! atomically). It must not speak ACME, and it trusts no name it is given: a token or a
//! domain becomes a file name only once validated (base64url characters; LDH labels), so
//! that no request can make rampart read or write outside that directory.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

/// The ALPN protocol a CA offers, alone, to validate a TLS-ALPN-01 challenge (RFC 8737
/// section 6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The sub-directory of the shared directory that holds HTTP-01 answers, one file per token.
const HTTP_DIR: &str = "http-01";
/// The sub-directory that holds TLS-ALPN-01 answers, one file per domain.
const TLS_ALPN_DIR: &str = "tls-alpn-01";

/// Longest token accepted: a longer one could not be a file name (`NAME_MAX`). CAs send 43
/// characters (256 bits in base64url).
pub const MAX_TOKEN: usize = 255;
/// Longest key authorization accepted (`token.thumbprint`: a token and 43 characters).
const MAX_KEY_AUTHORIZATION: usize = MAX_TOKEN + 1 + 64;

/// Why an answer could not be published.
#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    /// The domain is not a DNS name of LDH labels (TLS-ALPN-01 validates DNS names only).
    #[error("not a DNS name for a tls-alpn-01 challenge: {0:?}")]
    InvalidDomain(String),
    /// The token holds characters outside base64url, is empty or longer than [`MAX_TOKEN`].
    #[error("not an ACME challenge token (base64url, 1 to {MAX_TOKEN} characters): {0:?}")]
    InvalidToken(String),
    /// The key authorization is not `token.thumbprint` in base64url.
    #[error("not an ACME key authorization (token.thumbprint in base64url)")]
    InvalidKeyAuthorization,
    /// The challenge certificate could not be made.
    #[error("tls-alpn-01 certificate for {domain}: {reason}")]
    Certificate {
        /// The domain being validated.
        domain: String,
        /// What failed (key generation, signing).
        reason: String,
    },
    /// The shared directory (or a file in it) could not be written.
    #[error("{}: {source}", .path.display())]
    Write {
        /// The directory or file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The answers to the CA's pending challenges: those this instance published, in memory,
/// and with a shared directory those any instance published. `Send + Sync`, used behind an
/// `Arc` by the order code and the listeners.
#[derive(Debug)]
pub struct Challenges {
    /// Where answers are also written (the ACME state directory's `challenges/`).
    shared_dir: Option<PathBuf>,
    /// TLS-ALPN-01 certificates published here, by (lowercase) domain.
    tls_alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// HTTP-01 key authorizations published here, by token.
    http: RwLock<HashMap<String, String>>,
    /// Certificates built for answers found in the shared directory, by domain, with the
    /// key authorization each was built for (a new challenge for the name rebuilds it).
    built: Mutex<HashMap<String, (String, Arc<CertifiedKey>)>>,
}

impl Challenges {
    /// No answers yet. `shared_dir`: where answers are also written so that every instance
    /// of a fleet sharing the ACME state directory can answer (the caller passes
    /// `STATE/challenges`); it is created (0700) on the first publish.
    #[must_use]
    pub fn new(shared_dir: Option<PathBuf>) -> Self {
        Self {
            shared_dir,
            tls_alpn: RwLock::default(),
            http: RwLock::default(),
            built: Mutex::default(),
        }
    }

    /// Publishes the TLS-ALPN-01 answer (RFC 8737) for `domain`: a self-signed certificate
    /// (ECDSA P-256) whose only SAN is `domain` and whose critical acmeIdentifier extension
    /// (id-pe-acmeIdentifier, 1.3.6.1.5.5.7.1.31) holds the SHA-256 digest of
    /// `key_authorization`. Replaces an earlier answer for the name. Nothing is published
    /// on error.
    ///
    /// # Errors
    /// [`ChallengeError::InvalidDomain`], [`ChallengeError::InvalidKeyAuthorization`],
    /// [`ChallengeError::Certificate`], or [`ChallengeError::Write`] naming the path.
    pub fn publish_tls_alpn(
        &self,
        domain: &str,
        key_authorization: &str,
    ) -> Result<(), ChallengeError> {
        let domain =
            dns_name(domain).ok_or_else(|| ChallengeError::InvalidDomain(domain.to_owned()))?;
        if !valid_key_authorization(key_authorization) {
            return Err(ChallengeError::InvalidKeyAuthorization);
        }
        let cert = challenge_cert(&domain, key_authorization)?;
        self.write_shared(TLS_ALPN_DIR, &domain, key_authorization)?;
        write_lock(&self.tls_alpn).insert(domain, cert);
        Ok(())
    }

    /// Publishes the HTTP-01 answer (RFC 8555 section 8.3): `GET
    /// /.well-known/acme-challenge/{token}` answers `key_authorization`. Nothing is
    /// published on error.
    ///
    /// # Errors
    /// [`ChallengeError::InvalidToken`], [`ChallengeError::InvalidKeyAuthorization`], or
    /// [`ChallengeError::Write`] naming the path.
    pub fn publish_http(&self, token: &str, key_authorization: &str) -> Result<(), ChallengeError> {
        if !valid_token(token) {
            return Err(ChallengeError::InvalidToken(token.to_owned()));
        }
        if !valid_key_authorization(key_authorization) {
            return Err(ChallengeError::InvalidKeyAuthorization);
        }
        self.write_shared(HTTP_DIR, token, key_authorization)?;
        write_lock(&self.http).insert(token.to_owned(), key_authorization.to_owned());
        Ok(())
    }

    /// Withdraws the TLS-ALPN-01 answer for `domain`, here and in the shared directory.
    pub fn withdraw_tls_alpn(&self, domain: &str) {
        let Some(domain) = dns_name(domain) else {
            return;
        };
        write_lock(&self.tls_alpn).remove(&domain);
        self.built
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&domain);
        self.remove_shared(TLS_ALPN_DIR, &domain);
    }

    /// Withdraws the HTTP-01 answer for `token`, here and in the shared directory.
    pub fn withdraw_http(&self, token: &str) {
        if !valid_token(token) {
            return;
        }
        write_lock(&self.http).remove(token);
        self.remove_shared(HTTP_DIR, token);
    }

    /// What to present to a ClientHello with ALPN `acme-tls/1` and this SNI: the answer
    /// published here, else one found in the shared directory (its certificate built on
    /// first use and kept while the file holds the same key authorization). May read a
    /// file: call it off the async workers.
    #[must_use]
    pub fn tls_alpn_answer(&self, domain: &str) -> Option<Arc<CertifiedKey>> {
        let domain = dns_name(domain)?;
        if let Some(cert) = read_lock(&self.tls_alpn).get(&domain) {
            return Some(Arc::clone(cert));
        }
        let mut built = self.built.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(key_authorization) = self.read_shared(TLS_ALPN_DIR, &domain) else {
            built.remove(&domain);
            return None;
        };
        if let Some((made_for, cert)) = built.get(&domain) {
            if *made_for == key_authorization {
                return Some(Arc::clone(cert));
            }
        }
        match challenge_cert(&domain, &key_authorization) {
            Ok(cert) => {
                built.insert(domain, (key_authorization, Arc::clone(&cert)));
                Some(cert)
            }
            Err(e) => {
                tracing::warn!(error = %e, "tls-alpn-01 answer from the shared directory unusable");
                None
            }
        }
    }

    /// The body for `/.well-known/acme-challenge/{token}`: the key authorization published
    /// here, else one in the shared directory. May read a file: call it off the async
    /// workers.
    #[must_use]
    pub fn http_answer(&self, token: &str) -> Option<String> {
        if !valid_token(token) {
            return None;
        }
        if let Some(answer) = read_lock(&self.http).get(token) {
            return Some(answer.clone());
        }
        self.read_shared(HTTP_DIR, token)
    }

    /// Writes `contents` to `kind/name` in the shared directory, if there is one: a
    /// temporary file (0600) renamed over the old one, so that a reader on another instance
    /// sees the old answer or the new, never half of one. `name` is validated.
    fn write_shared(&self, kind: &str, name: &str, contents: &str) -> Result<(), ChallengeError> {
        let Some(root) = &self.shared_dir else {
            return Ok(());
        };
        let dir = root.join(kind);
        create_private_dir(&dir).map_err(|source| ChallengeError::Write {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(name);
        write_atomically(&dir, &path, contents.as_bytes())
            .map_err(|source| ChallengeError::Write { path, source })
    }

    /// Removes `kind/name` from the shared directory; a file already gone is no error.
    fn remove_shared(&self, kind: &str, name: &str) {
        let Some(root) = &self.shared_dir else {
            return;
        };
        let path = root.join(kind).join(name);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a withdrawn ACME challenge answer");
            }
            _ => {}
        }
    }

    /// The key authorization in `kind/name` of the shared directory: `None` when there is
    /// no directory, no such file, or the file does not hold a key authorization.
    fn read_shared(&self, kind: &str, name: &str) -> Option<String> {
        let path = self.shared_dir.as_ref()?.join(kind).join(name);
        let mut text = String::new();
        let read = std::fs::File::open(&path).and_then(|f| {
            // One byte over the limit tells a file that is too long from one that fits.
            f.take(MAX_KEY_AUTHORIZATION as u64 + 1)
                .read_to_string(&mut text)
        });
        match read {
            Ok(_) if valid_key_authorization(&text) => Some(text),
            Ok(_) => {
                tracing::debug!(path = %path.display(), "shared ACME challenge file holds no key authorization");
                None
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "shared ACME challenge file unreadable");
                None
            }
        }
    }
}

/// Whether `token` is an ACME challenge token as rampart accepts one: 1 to [`MAX_TOKEN`]
/// base64url characters (RFC 8555 section 8.1), so never a path separator, a dot or a
/// non-ASCII character.
#[must_use]
pub fn valid_token(token: &str) -> bool {
    (1..=MAX_TOKEN).contains(&token.len()) && token.bytes().all(is_base64url)
}

/// `domain` in lowercase when it is a DNS name of LDH labels (1 to 63 letters, digits or
/// hyphens, no hyphen first or last), 253 characters at most, without a trailing dot.
fn dns_name(domain: &str) -> Option<String> {
    let ok = (1..=253).contains(&domain.len())
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    ok.then(|| domain.to_ascii_lowercase())
}

/// `token.thumbprint` (RFC 8555 section 8.1): two non-empty base64url parts.
fn valid_key_authorization(text: &str) -> bool {
    text.len() <= MAX_KEY_AUTHORIZATION
        && text.split_once('.').is_some_and(|(token, thumbprint)| {
            valid_token(token) && !thumbprint.is_empty() && thumbprint.bytes().all(is_base64url)
        })
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The TLS-ALPN-01 certificate (RFC 8737 section 3): self-signed, ECDSA P-256, `domain`
/// its only SAN, the critical acmeIdentifier extension holding SHA-256(key authorization).
fn challenge_cert(
    domain: &str,
    key_authorization: &str,
) -> Result<Arc<CertifiedKey>, ChallengeError> {
    let fail = |reason: String| ChallengeError::Certificate {
        domain: domain.to_owned(),
        reason,
    };
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| fail(e.to_string()))?;
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, domain);
    // Set as a DNS name explicitly: a name made of digits and dots is no IP address here.
    let name = rcgen::string::Ia5String::try_from(domain).map_err(|e| fail(e.to_string()))?;
    params.subject_alt_names = vec![rcgen::SanType::DnsName(name)];
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest.as_ref()));
    let cert = params.self_signed(&key).map_err(|e| fail(e.to_string()))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer = rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&key_der)
        .map_err(|e| fail(e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = vec![cert.der().clone()];
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

/// Creates `dir` and its missing parents, 0700 (a directory that exists keeps its mode).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `path` (in `dir`) by way of a temporary file (0600) renamed over it. The
/// temporary name starts with a dot, which no token or domain does.
fn write_atomically(dir: &Path, path: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        // No fsync: an answer is worthless after a crash (the order starts again), and
        // close-then-rename is what makes it whole for readers on other hosts.
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::{FromDer, X509Certificate};

    const KEY_AUTH: &str =
        "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";

    fn parse(cert: &CertifiedKey) -> X509Certificate<'_> {
        X509Certificate::from_der(cert.end_entity_cert().unwrap())
            .unwrap()
            .1
    }

    #[test]
    fn tls_alpn_certificate_names_only_the_domain_and_holds_the_digest_in_a_critical_extension() {
        let challenges = Challenges::new(None);
        challenges
            .publish_tls_alpn("Example.COM", KEY_AUTH)
            .unwrap();
        let answer = challenges.tls_alpn_answer("example.com").unwrap();
        let cert = parse(&answer);

        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::DNSName("example.com")]
        );
        let acme: Vec<_> = cert
            .extensions()
            .iter()
            .filter(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .collect();
        assert_eq!(acme.len(), 1);
        assert!(acme[0].critical);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, KEY_AUTH.as_bytes());
        // The extension's value is a DER OCTET STRING of the 32-byte digest.
        let mut expected = vec![0x04, 0x20];
        expected.extend_from_slice(digest.as_ref());
        assert_eq!(acme[0].value, &expected[..]);
        // Self-signed with ECDSA P-256 / SHA-256, and the key is the one presented.
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.2"
        );
        cert.verify_signature(None).unwrap();
        // (Not `keys_match`: webpki refuses to parse a certificate with an unknown critical
        // extension, which is also why the answer cannot go through `with_single_cert`.)
        assert_eq!(
            answer.key.public_key().unwrap().as_ref(),
            cert.public_key().raw
        );
    }

    #[test]
    fn http_answer_is_the_key_authorization_and_withdraw_removes_both_copies() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("challenges");
        let challenges = Challenges::new(Some(shared.clone()));
        challenges.publish_http("tok-EN_1", KEY_AUTH).unwrap();
        challenges
            .publish_tls_alpn("www.example.com", KEY_AUTH)
            .unwrap();
        assert_eq!(
            challenges.http_answer("tok-EN_1").as_deref(),
            Some(KEY_AUTH)
        );
        assert!(shared.join("http-01/tok-EN_1").is_file());
        assert!(shared.join("tls-alpn-01/www.example.com").is_file());

        challenges.withdraw_http("tok-EN_1");
        challenges.withdraw_tls_alpn("WWW.example.com");
        assert_eq!(challenges.http_answer("tok-EN_1"), None);
        assert!(challenges.tls_alpn_answer("www.example.com").is_none());
        assert!(!shared.join("http-01/tok-EN_1").exists());
        assert!(!shared.join("tls-alpn-01/www.example.com").exists());
        // Withdrawing what is gone is no error.
        challenges.withdraw_http("tok-EN_1");
    }

    #[test]
    fn another_instance_on_the_shared_directory_answers_what_the_first_published() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("state/challenges");
        let first = Challenges::new(Some(shared.clone()));
        let second = Challenges::new(Some(shared));
        assert_eq!(second.http_answer("token"), None);
        assert!(second.tls_alpn_answer("example.com").is_none());

        first.publish_http("token", KEY_AUTH).unwrap();
        first.publish_tls_alpn("example.com", KEY_AUTH).unwrap();
        assert_eq!(second.http_answer("token").as_deref(), Some(KEY_AUTH));
        let built = second.tls_alpn_answer("example.com").unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, KEY_AUTH.as_bytes());
        assert!(parse(&built)
            .extensions()
            .iter()
            .any(|e| e.critical && e.value.ends_with(digest.as_ref())));
        // Built once, then reused while the file holds the same key authorization.
        let again = second.tls_alpn_answer("example.com").unwrap();
        assert!(Arc::ptr_eq(&built, &again));

        // A new challenge for the name: the other instance builds the new certificate.
        let other = "bm90LXRoZS1zYW1lLXRva2Vu.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";
        first.publish_tls_alpn("example.com", other).unwrap();
        let rebuilt = second.tls_alpn_answer("example.com").unwrap();
        assert!(!Arc::ptr_eq(&built, &rebuilt));

        first.withdraw_http("token");
        first.withdraw_tls_alpn("example.com");
        assert_eq!(second.http_answer("token"), None);
        assert!(second.tls_alpn_answer("example.com").is_none());
    }

    #[test]
    fn shared_files_are_private_and_no_temporary_file_is_left() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("challenges");
        let challenges = Challenges::new(Some(shared.clone()));
        challenges.publish_http("t", KEY_AUTH).unwrap();
        challenges.publish_http("t", KEY_AUTH).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&shared), 0o700);
        assert_eq!(mode(&shared.join("http-01")), 0o700);
        assert_eq!(mode(&shared.join("http-01/t")), 0o600);
        let names: Vec<_> = std::fs::read_dir(shared.join("http-01"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["t"]);
    }

    #[test]
    fn an_unwritable_shared_directory_is_an_error_naming_the_path_and_nothing_is_published() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let challenges = Challenges::new(Some(file.clone()));
        let err = challenges.publish_http("t", KEY_AUTH).unwrap_err();
        assert!(err.to_string().contains(&*file.to_string_lossy()), "{err}");
        assert_eq!(challenges.http_answer("t"), None);
    }

    #[test]
    fn hostile_tokens_and_domains_are_refused_and_never_answered() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("challenges");
        // A file outside the shared directory that a traversal would reach.
        std::fs::create_dir_all(shared.join("http-01")).unwrap();
        std::fs::write(dir.path().join("challenges/x"), KEY_AUTH).unwrap();
        std::fs::write(dir.path().join("x"), KEY_AUTH).unwrap();
        let challenges = Challenges::new(Some(shared.clone()));
        let long = "a".repeat(2048);
        for token in [
            "../x",
            "..",
            ".",
            "a/b",
            "",
            "tök",
            "a b",
            "a.b",
            "a%2fb",
            long.as_str(),
        ] {
            assert!(
                matches!(
                    challenges.publish_http(token, KEY_AUTH),
                    Err(ChallengeError::InvalidToken(_))
                ),
                "{token:?}"
            );
            assert_eq!(challenges.http_answer(token), None, "{token:?}");
            assert_eq!(challenges.http_answer(&format!("../{token}")), None);
            challenges.withdraw_http(token);
        }
        let long_label = format!("{}.com", "a".repeat(64));
        for domain in [
            "../x",
            "a/b",
            "..",
            "",
            "example.com.",
            ".example.com",
            "-a.com",
            "a-.com",
            "*.example.com",
            "exämple.com",
            "a_b.com",
            long_label.as_str(),
            long.as_str(),
        ] {
            assert!(
                matches!(
                    challenges.publish_tls_alpn(domain, KEY_AUTH),
                    Err(ChallengeError::InvalidDomain(_))
                ),
                "{domain:?}"
            );
            assert!(challenges.tls_alpn_answer(domain).is_none(), "{domain:?}");
            challenges.withdraw_tls_alpn(domain);
        }
        for key_authorization in ["", "token", "token.", ".thumb", "a.b.c", "a.b\n", "a/b.c"] {
            assert!(matches!(
                challenges.publish_http("token", key_authorization),
                Err(ChallengeError::InvalidKeyAuthorization)
            ));
        }
        // Nothing was written anywhere, and the files outside are untouched.
        assert_eq!(
            std::fs::read_dir(shared.join("http-01")).unwrap().count(),
            0
        );
        assert!(dir.path().join("x").is_file());
        assert!(!shared.join("tls-alpn-01").exists());
    }

    #[test]
    fn a_shared_file_without_a_key_authorization_is_no_answer() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().to_owned();
        std::fs::create_dir_all(shared.join("http-01")).unwrap();
        std::fs::write(shared.join("http-01/big"), "a".repeat(10_000) + ".b").unwrap();
        std::fs::write(shared.join("http-01/junk"), "<script>").unwrap();
        let challenges = Challenges::new(Some(shared));
        assert_eq!(challenges.http_answer("big"), None);
        assert_eq!(challenges.http_answer("junk"), None);
    }
}
