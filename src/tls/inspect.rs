//! The certificate inspector: the one reader of a PEM chain and key. It parses both, checks
//! that the chain is in order with verifying signatures (aws-lc-rs through x509-parser's
//! `verify-aws`), that the key matches the leaf, that every certificate is inside its
//! validity window, and collects the names (DNS and IP SANs) the leaf covers.
//!
//! It never stops at the first problem: an [`Inspection`] holds every [`Finding`], each at a
//! [`Level`] and about one [`Part`] (the certificate or the key file). `rampart check`
//! (check/cert.rs) renders the findings as report items; the certificate
//! sources ([`super::source`]) turn an inspection without errors into the [`LoadedCert`] the
//! resolver serves, and refuse with the first error otherwise. So start-up, reload and
//! `check` accept and refuse exactly the same pairs, with the same words.
//!
//! It reads files and nothing else: no logging, no state.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Error};

use super::{LoadedCert, TlsError};
use crate::problem::Level;

/// Certificates expiring sooner than this get a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// Which file a [`Finding`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The PEM certificate chain.
    Cert,
    /// The PEM private key.
    Key,
}

/// A certificate of the chain, as findings name it: its position (1 = the leaf) and subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Which {
    /// 1-based position in the file.
    pub position: usize,
    /// The subject's distinguished name.
    pub subject: String,
}

impl fmt::Display for Which {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.position == 1 {
            write!(f, "the leaf certificate ({})", self.subject)
        } else {
            write!(f, "certificate {} ({})", self.position, self.subject)
        }
    }
}

/// What the inspector can find out of order in a chain, beyond the mismatch itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderHint {
    /// Certificate `n + 1` is issued by certificate `n`: the two are swapped.
    Swapped,
    /// The issuer of certificate `n` is elsewhere in the file, at this position.
    IssuerAt(usize),
}

/// One fact about a certificate pair: good, worth a warning, or a reason to refuse it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A file could not be read.
    Unreadable {
        /// Which file.
        part: Part,
        /// The operating system's reason.
        reason: String,
    },
    /// The certificate file holds no CERTIFICATE block.
    NoCertificate,
    /// The certificate file is not PEM.
    NotPem(String),
    /// A certificate of the chain is not valid DER X.509.
    Unparsable {
        /// 1-based position in the file.
        position: usize,
        /// x509-parser's reason.
        reason: String,
    },
    /// The key file holds no usable key.
    NoKey(String),
    /// The key does not belong to the leaf.
    KeyMismatch {
        /// The certificate file (named in the message about the key).
        cert: PathBuf,
        /// rustls' reason.
        reason: String,
    },
    /// The key belongs to the leaf.
    KeyMatches,
    /// Certificate `child` is not issued by the next one.
    OutOfOrder {
        /// The certificate whose issuer should follow it.
        child: Which,
        /// Its issuer's name.
        issuer: String,
        /// The certificate that follows it.
        next: Which,
        /// Where the issuer really is, when the file holds it.
        hint: Option<OrderHint>,
    },
    /// The signature on `child` cannot be checked: an algorithm the verifier lacks.
    UnsupportedSignature {
        /// The signed certificate.
        child: Which,
        /// The signing algorithm's OID.
        algorithm: String,
    },
    /// The next certificate has the issuer's name but its key did not sign `child`.
    BadSignature {
        /// The signed certificate.
        child: Which,
        /// The certificate that should have signed it.
        next: Which,
        /// The verifier's reason.
        reason: String,
    },
    /// The chain (more than one certificate) is in order and every signature verifies.
    ChainInOrder(usize),
    /// A certificate's validity ended.
    Expired {
        /// The certificate.
        which: Which,
        /// Its notAfter.
        on: SystemTime,
    },
    /// A certificate's validity has not begun.
    NotYetValid {
        /// The certificate.
        which: Which,
        /// Its notBefore.
        before: SystemTime,
    },
    /// A certificate ends within [`EXPIRY_WARNING`].
    ExpiresSoon {
        /// The certificate.
        which: Which,
        /// Its notAfter.
        on: SystemTime,
        /// Whole days left.
        days: u64,
    },
    /// The leaf is valid, and for longer than [`EXPIRY_WARNING`].
    ValidUntil {
        /// The leaf.
        which: Which,
        /// Its notAfter.
        until: SystemTime,
        /// Whole days left.
        days: u64,
    },
}

impl Finding {
    /// How serious it is: [`Level::Error`] findings make a pair unusable.
    #[must_use]
    pub fn level(&self) -> Level {
        match self {
            Self::KeyMatches | Self::ChainInOrder(_) | Self::ValidUntil { .. } => Level::Ok,
            Self::UnsupportedSignature { .. } | Self::ExpiresSoon { .. } => Level::Warn,
            _ => Level::Error,
        }
    }

    /// The file it is about.
    #[must_use]
    pub fn part(&self) -> Part {
        match self {
            Self::Unreadable { part, .. } => *part,
            Self::NoKey(_) | Self::KeyMismatch { .. } | Self::KeyMatches => Part::Key,
            _ => Part::Cert,
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = |t: &SystemTime| httpdate::fmt_http_date(*t);
        match self {
            Self::Unreadable { reason, .. } => write!(f, "cannot read: {reason}"),
            Self::NoCertificate => f.write_str("no CERTIFICATE block found (PEM expected)"),
            Self::NotPem(e) => write!(f, "not a PEM certificate chain: {e}"),
            Self::Unparsable { position, reason } => {
                write!(
                    f,
                    "certificate {position} of the chain does not parse: {reason}"
                )
            }
            Self::NoKey(e) => write!(
                f,
                "no usable private key (PKCS#8, RSA or SEC1 PEM expected): {e}"
            ),
            Self::KeyMismatch { cert, reason } => write!(
                f,
                "does not match the first certificate in {} (rustls: {reason})",
                cert.display()
            ),
            Self::KeyMatches => f.write_str("matches the leaf certificate"),
            Self::OutOfOrder {
                child,
                issuer,
                next,
                hint,
            } => {
                let (n, m) = (child.position, next.position);
                write!(
                    f,
                    "chain out of order: certificate {n} ({}) is issued by {issuer}, not by \
                     certificate {m} ({})",
                    child.subject, next.subject
                )?;
                match hint {
                    Some(OrderHint::Swapped) => write!(
                        f,
                        "; certificate {m} is issued by certificate {n}: the two are swapped"
                    )?,
                    Some(OrderHint::IssuerAt(j)) => write!(f, "; its issuer is certificate {j}")?,
                    None => {}
                }
                f.write_str("; the file must hold the leaf first, then each certificate's issuer")
            }
            Self::UnsupportedSignature { child, algorithm } => write!(
                f,
                "cannot verify the signature on certificate {} by certificate {}: \
                 unsupported algorithm {algorithm}",
                child.position,
                child.position + 1
            ),
            Self::BadSignature {
                child,
                next,
                reason,
            } => write!(
                f,
                "certificate {} ({}) names {} as its issuer, but the signature does not \
                 verify with certificate {}'s key ({reason}): a different certificate with \
                 the same name?",
                child.position, child.subject, next.subject, next.position
            ),
            Self::ChainInOrder(len) => {
                write!(f, "chain of {len} certificates in order, signatures verify")
            }
            Self::Expired { which, on } => write!(f, "{which} expired on {}", date(on)),
            Self::NotYetValid { which, before } => {
                write!(f, "{which} is not valid before {}", date(before))
            }
            Self::ExpiresSoon { which, on, days } => {
                write!(f, "{which} expires on {} ({days} days left)", date(on))
            }
            Self::ValidUntil { which, until, days } => {
                write!(f, "{which} valid until {} ({days} days left)", date(until))
            }
        }
    }
}

/// A name in the leaf's subject alternative names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// A DNS name, wildcards kept (`*.example.com`).
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(d) => f.write_str(d),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// The names a leaf covers, in the certificate's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names(pub Vec<Name>);

impl Names {
    /// The DNS names.
    pub fn dns(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|n| match n {
            Name::Dns(d) => Some(d.as_str()),
            Name::Ip(_) => None,
        })
    }

    /// The IP addresses.
    pub fn ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.0.iter().filter_map(|n| match n {
            Name::Ip(ip) => Some(*ip),
            Name::Dns(_) => None,
        })
    }

    /// Whether `host` (a host name or an IP address) is covered: an IP exactly, a name
    /// exactly (case-insensitive, trailing dot ignored) or by a `*.` wildcard for one
    /// leftmost label.
    #[must_use]
    pub fn covers(&self, host: &str) -> bool {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ips().any(|i| i == ip);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns().any(|n| {
            let n = n.to_ascii_lowercase();
            if let Some(suffix) = n.strip_prefix("*.") {
                host.split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
            } else {
                n == host
            }
        })
    }

    /// The names for a message: DNS names, then IPs, `, `-separated; "no names" if none.
    #[must_use]
    pub fn list(&self) -> String {
        let all: Vec<String> = self
            .dns()
            .map(str::to_owned)
            .chain(self.ips().map(|ip| ip.to_string()))
            .collect();
        if all.is_empty() {
            "no names".into()
        } else {
            all.join(", ")
        }
    }
}

impl fmt::Display for Names {
    /// `,`-separated in the certificate's order (a log field).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

/// Everything the inspector learned about one pair.
pub struct Inspection {
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file.
    pub key_file: PathBuf,
    /// Every finding, in the order `rampart check` prints them.
    pub findings: Vec<Finding>,
    /// The leaf's names, when the chain parsed.
    pub names: Option<Names>,
    /// The leaf's notAfter, when the chain parsed.
    pub not_after: Option<SystemTime>,
    /// The rustls pair, when the key parsed and matched.
    pub certified: Option<Arc<CertifiedKey>>,
}

impl fmt::Debug for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspection")
            .field("cert", &self.cert)
            .field("key_file", &self.key_file)
            .field("findings", &self.findings)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl Inspection {
    /// The file a finding is about.
    #[must_use]
    pub fn path(&self, part: Part) -> &Path {
        match part {
            Part::Cert => &self.cert,
            Part::Key => &self.key_file,
        }
    }

    /// The first [`Level::Error`] finding, if any.
    #[must_use]
    pub fn first_error(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| f.level() == Level::Error)
    }

    /// The pair the resolver can serve, or the first reason it cannot.
    ///
    /// # Errors
    /// [`TlsError::Refused`] naming the file and the first error finding.
    pub fn into_loaded(self) -> Result<LoadedCert, TlsError> {
        if let Some(finding) = self.first_error() {
            return Err(TlsError::Refused {
                file: self.path(finding.part()).to_owned(),
                finding: Box::new(finding.clone()),
            });
        }
        match (self.certified, self.names, self.not_after) {
            (Some(key), Some(names), Some(not_after)) => Ok(LoadedCert {
                key,
                names,
                not_after,
            }),
            // Unreachable: a missing part is always an error finding.
            _ => Err(TlsError::Refused {
                file: self.cert,
                finding: Box::new(Finding::NoCertificate),
            }),
        }
    }
}

/// Reads and inspects a PEM chain (leaf first) and key (PKCS#8, RSA or SEC1) at `now`.
#[must_use]
pub fn inspect(cert_path: &Path, key_path: &Path, now: SystemTime) -> Inspection {
    let mut out = Inspection {
        cert: cert_path.to_owned(),
        key_file: key_path.to_owned(),
        findings: Vec::new(),
        names: None,
        not_after: None,
        certified: None,
    };
    let mut read = |path: &Path, part: Part| match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            out.findings.push(Finding::Unreadable {
                part,
                reason: e.to_string(),
            });
            None
        }
    };
    let cert_pem = read(cert_path, Part::Cert);
    let key_pem = read(key_path, Part::Key);
    let Some(cert_pem) = cert_pem else {
        return out;
    };
    let chain = match CertificateDer::pem_slice_iter(&cert_pem).collect::<Result<Vec<_>, _>>() {
        Ok(chain) if chain.is_empty() => {
            out.findings.push(Finding::NoCertificate);
            return out;
        }
        Ok(chain) => chain,
        Err(e) => {
            out.findings.push(Finding::NotPem(e.to_string()));
            return out;
        }
    };
    let mut parsed = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        match X509Certificate::from_der(der.as_ref()) {
            Ok((_, c)) => parsed.push(c),
            Err(e) => {
                out.findings.push(Finding::Unparsable {
                    position: i + 1,
                    reason: e.to_string(),
                });
                return out;
            }
        }
    }
    if let Some(key_pem) = key_pem {
        match PrivateKeyDer::from_pem_slice(&key_pem) {
            Err(e) => out.findings.push(Finding::NoKey(e.to_string())),
            Ok(key) => {
                let provider = rustls::crypto::aws_lc_rs::default_provider();
                match CertifiedKey::from_der(chain.clone(), key, &provider) {
                    Ok(certified) => {
                        out.certified = Some(Arc::new(certified));
                        out.findings.push(Finding::KeyMatches);
                    }
                    Err(e) => out.findings.push(Finding::KeyMismatch {
                        cert: cert_path.to_owned(),
                        reason: e.to_string(),
                    }),
                }
            }
        }
    }
    chain_order(&parsed, &mut out.findings);
    for (i, c) in parsed.iter().enumerate() {
        validity(i, c, now, &mut out.findings);
    }
    out.names = Some(names(&parsed[0]));
    out.not_after = Some(to_time(parsed[0].validity().not_after.timestamp()));
    out
}

fn which(i: usize, cert: &X509Certificate<'_>) -> Which {
    Which {
        position: i + 1,
        subject: cert.subject().to_string(),
    }
}

/// Leaf first, then each certificate's issuer: names must chain and signatures verify.
fn chain_order(chain: &[X509Certificate<'_>], findings: &mut Vec<Finding>) {
    let mut good = true;
    for (i, pair) in chain.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        if child.issuer().as_raw() != parent.subject().as_raw() {
            good = false;
            let hint = if parent.issuer().as_raw() == child.subject().as_raw() {
                Some(OrderHint::Swapped)
            } else {
                chain
                    .iter()
                    .position(|c| c.subject().as_raw() == child.issuer().as_raw())
                    .map(|j| OrderHint::IssuerAt(j + 1))
            };
            findings.push(Finding::OutOfOrder {
                child: which(i, child),
                issuer: child.issuer().to_string(),
                next: which(i + 1, parent),
                hint,
            });
            continue;
        }
        match child.verify_signature(Some(parent.public_key())) {
            Ok(()) => {}
            Err(X509Error::SignatureUnsupportedAlgorithm) => {
                findings.push(Finding::UnsupportedSignature {
                    child: which(i, child),
                    algorithm: child.signature_algorithm.algorithm.to_string(),
                });
            }
            Err(e) => {
                good = false;
                findings.push(Finding::BadSignature {
                    child: which(i, child),
                    next: which(i + 1, parent),
                    reason: e.to_string(),
                });
            }
        }
    }
    if good && chain.len() > 1 {
        findings.push(Finding::ChainInOrder(chain.len()));
    }
}

fn to_time(secs: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or_default())
}

fn validity(i: usize, cert: &X509Certificate<'_>, now: SystemTime, findings: &mut Vec<Finding>) {
    let not_before = to_time(cert.validity().not_before.timestamp());
    let not_after = to_time(cert.validity().not_after.timestamp());
    let which = which(i, cert);
    if now > not_after {
        findings.push(Finding::Expired {
            which,
            on: not_after,
        });
    } else if now < not_before {
        findings.push(Finding::NotYetValid {
            which,
            before: not_before,
        });
    } else {
        let left = not_after.duration_since(now).unwrap_or_default();
        let days = left.as_secs() / (24 * 3600);
        if left < EXPIRY_WARNING {
            findings.push(Finding::ExpiresSoon {
                which,
                on: not_after,
                days,
            });
        } else if i == 0 {
            findings.push(Finding::ValidUntil {
                which,
                until: not_after,
                days,
            });
        }
    }
}

fn names(leaf: &X509Certificate<'_>) -> Names {
    let mut names = Vec::new();
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.push(Name::Dns((*d).to_owned())),
                GeneralName::IPAddress(ip) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                        names.push(Name::Ip(IpAddr::from(v4)));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                        names.push(Name::Ip(IpAddr::from(v6)));
                    }
                }
                _ => {}
            }
        }
    }
    Names(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Names {
        Names(
            list.iter()
                .map(|n| {
                    n.parse()
                        .map_or_else(|_| Name::Dns((*n).to_owned()), Name::Ip)
                })
                .collect(),
        )
    }

    #[test]
    fn a_wildcard_covers_one_leftmost_label_only() {
        let n = names(&["*.example.com"]);
        assert!(n.covers("www.example.com"));
        assert!(n.covers("WWW.Example.com."));
        assert!(!n.covers("example.com"));
        assert!(!n.covers("a.b.example.com"));
    }

    #[test]
    fn ip_addresses_are_covered_by_ip_names_only() {
        let n = names(&["localhost", "127.0.0.1", "::1"]);
        assert!(n.covers("127.0.0.1"));
        assert!(n.covers("::1"));
        assert!(!n.covers("127.0.0.2"));
        assert_eq!(n.list(), "localhost, 127.0.0.1, ::1");
        assert_eq!(n.to_string(), "localhost,127.0.0.1,::1");
        assert_eq!(Names::default().list(), "no names");
    }

    #[test]
    fn missing_files_are_findings_about_each_file() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        let i = inspect(&c, &k, SystemTime::now());
        let parts: Vec<Part> = i.findings.iter().map(Finding::part).collect();
        assert_eq!(parts, [Part::Cert, Part::Key]);
        assert!(i.findings[0].to_string().starts_with("cannot read: "));
        let e = i.into_loaded().unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}: cannot read", c.display())),
            "{e}"
        );
    }

    #[test]
    fn a_generated_pair_loads_with_its_names_and_a_mismatched_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, names: Vec<String>| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(names)
                .unwrap()
                .self_signed(&key)
                .unwrap();
            let (c, k) = (
                dir.path().join(format!("{name}.pem")),
                dir.path().join(format!("{name}.key")),
            );
            std::fs::write(&c, cert.pem()).unwrap();
            std::fs::write(&k, key.serialize_pem()).unwrap();
            (c, k)
        };
        let (c, k) = write("a", vec!["example.com".into(), "192.0.2.1".into()]);
        let loaded = inspect(&c, &k, SystemTime::now()).into_loaded().unwrap();
        assert_eq!(loaded.names.to_string(), "example.com,192.0.2.1");
        let (_, other) = write("b", vec!["example.com".into()]);
        let i = inspect(&c, &other, SystemTime::now());
        assert_eq!(i.first_error().map(Finding::part), Some(Part::Key));
        let e = i.into_loaded().unwrap_err().to_string();
        assert!(e.contains("does not match the first certificate in"), "{e}");
    }
}
