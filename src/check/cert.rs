//! The certificate checks of [`super`]: the PEM chain and key parse and match, the chain is
//! in order with verifying signatures (aws-lc-rs through x509-parser's `verify-aws`), every
//! certificate is inside its validity window, and the leaf covers the `--server-name`s and
//! listen IPs. The development certificate is looked at, never created.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Error};

use super::{Report, EXPIRY_WARNING};
use crate::config::{CertSource, Config};
use crate::tls::devcert::DEV_NAMES;

/// The names a certificate covers: DNS names (wildcards kept) and IP addresses.
pub(super) struct Names {
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

impl Names {
    fn covers(&self, name: &str) -> bool {
        match name.parse::<IpAddr>() {
            Ok(ip) => self.ips.contains(&ip),
            Err(_) => crate::tls::covers(&self.dns, name),
        }
    }

    fn list(&self) -> String {
        let all: Vec<String> = self
            .dns
            .iter()
            .cloned()
            .chain(self.ips.iter().map(ToString::to_string))
            .collect();
        if all.is_empty() {
            "no names".into()
        } else {
            all.join(", ")
        }
    }
}

/// Checks the certificate source; returns the names it covers when they are known.
pub(super) fn certificate(config: &Config, report: &mut Report) -> Option<Names> {
    match &config.cert {
        CertSource::Files { cert, key } => {
            let cert_label = format!("--cert {}", cert.display());
            let key_label = format!("--key {}", key.display());
            files(cert, key, &cert_label, &key_label, report)
        }
        CertSource::Dev { dir } => {
            let label = format!("--dev-cert-dir {}", dir.display());
            let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
            let reusable = crate::tls::load_cert(&cert, &key).is_ok_and(|c| {
                DEV_NAMES.iter().all(|n| c.names.iter().any(|m| m == n))
                    && c.not_after > SystemTime::now() + Duration::from_secs(7 * 24 * 3600)
            }) && dir.join("ca.pem").is_file();
            if reusable {
                report.ok(
                    &label,
                    "no --cert/--key: the development certificate here will be used \
                     (localhost, 127.0.0.1, ::1; never for production)",
                );
                files(&cert, &key, &label, &label, report)
            } else {
                if dir.exists() && !dir.is_dir() {
                    report.error(&label, "is not a directory");
                    return None;
                }
                report.ok(
                    &label,
                    "no --cert/--key: a development certificate for localhost, 127.0.0.1 and \
                     ::1 will be created here (never for production)",
                );
                Some(Names {
                    dns: vec!["localhost".into()],
                    ips: DEV_NAMES.iter().filter_map(|n| n.parse().ok()).collect(),
                })
            }
        }
    }
}

/// Reads, parses and cross-checks a PEM chain and key.
fn files(
    cert_path: &Path,
    key_path: &Path,
    cert_label: &str,
    key_label: &str,
    report: &mut Report,
) -> Option<Names> {
    let read = |path: &Path, label: &str, report: &mut Report| match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            report.error(label, format!("cannot read: {e}"));
            None
        }
    };
    let cert_pem = read(cert_path, cert_label, report);
    let key_pem = read(key_path, key_label, report);
    let chain: Vec<CertificateDer<'static>> = match cert_pem
        .map(|pem| CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>())?
    {
        Ok(chain) if chain.is_empty() => {
            report.error(cert_label, "no CERTIFICATE block found (PEM expected)");
            return None;
        }
        Ok(chain) => chain,
        Err(e) => {
            report.error(cert_label, format!("not a PEM certificate chain: {e}"));
            return None;
        }
    };
    let mut parsed = Vec::new();
    for (i, der) in chain.iter().enumerate() {
        match X509Certificate::from_der(der.as_ref()) {
            Ok((_, c)) => parsed.push(c),
            Err(e) => {
                report.error(
                    cert_label,
                    format!("certificate {} of the chain does not parse: {e}", i + 1),
                );
                return None;
            }
        }
    }
    if let Some(key_pem) = key_pem {
        match PrivateKeyDer::from_pem_slice(&key_pem) {
            Err(e) => report.error(
                key_label,
                format!("no usable private key (PKCS#8, RSA or SEC1 PEM expected): {e}"),
            ),
            Ok(key) => {
                let provider = rustls::crypto::aws_lc_rs::default_provider();
                match rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider) {
                    Ok(_) => report.ok(key_label, "matches the leaf certificate"),
                    Err(e) => report.error(
                        key_label,
                        format!(
                            "does not match the first certificate in {} (rustls: {e})",
                            cert_path.display()
                        ),
                    ),
                }
            }
        }
    }
    chain_order(&parsed, cert_label, report);
    for (i, c) in parsed.iter().enumerate() {
        validity(i, c, cert_label, report);
    }
    Some(names(&parsed[0]))
}

/// Leaf first, then each certificate's issuer: names must chain and signatures verify.
fn chain_order(chain: &[X509Certificate<'_>], label: &str, report: &mut Report) {
    let mut good = true;
    for (i, pair) in chain.windows(2).enumerate() {
        let (child, parent) = (&pair[0], &pair[1]);
        let (n, m) = (i + 1, i + 2);
        if child.issuer().as_raw() != parent.subject().as_raw() {
            good = false;
            let hint = if parent.issuer().as_raw() == child.subject().as_raw() {
                format!("; certificate {m} is issued by certificate {n}: the two are swapped")
            } else {
                chain
                    .iter()
                    .position(|c| c.subject().as_raw() == child.issuer().as_raw())
                    .map_or_else(String::new, |j| {
                        format!("; its issuer is certificate {}", j + 1)
                    })
            };
            report.error(
                label,
                format!(
                    "chain out of order: certificate {n} ({}) is issued by {}, not by \
                     certificate {m} ({}){hint}; the file must hold the leaf first, then each \
                     certificate's issuer",
                    child.subject(),
                    child.issuer(),
                    parent.subject()
                ),
            );
            continue;
        }
        match child.verify_signature(Some(parent.public_key())) {
            Ok(()) => {}
            Err(X509Error::SignatureUnsupportedAlgorithm) => report.warn(
                label,
                format!(
                    "cannot verify the signature on certificate {n} by certificate {m}: \
                     unsupported algorithm {}",
                    child.signature_algorithm.algorithm
                ),
            ),
            Err(e) => {
                good = false;
                report.error(
                    label,
                    format!(
                        "certificate {n} ({}) names {} as its issuer, but the signature does not \
                         verify with certificate {m}'s key ({e}): a different certificate with \
                         the same name?",
                        child.subject(),
                        parent.subject()
                    ),
                );
            }
        }
    }
    if good && chain.len() > 1 {
        report.ok(
            label,
            format!(
                "chain of {} certificates in order, signatures verify",
                chain.len()
            ),
        );
    }
}

fn validity(i: usize, cert: &X509Certificate<'_>, label: &str, report: &mut Report) {
    let to_time = |secs: i64| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or_default())
    };
    let not_before = to_time(cert.validity().not_before.timestamp());
    let not_after = to_time(cert.validity().not_after.timestamp());
    let which = if i == 0 {
        format!("the leaf certificate ({})", cert.subject())
    } else {
        format!("certificate {} ({})", i + 1, cert.subject())
    };
    let now = SystemTime::now();
    let date = httpdate::fmt_http_date;
    if now > not_after {
        report.error(label, format!("{which} expired on {}", date(not_after)));
    } else if now < not_before {
        report.error(
            label,
            format!("{which} is not valid before {}", date(not_before)),
        );
    } else {
        let left = not_after.duration_since(now).unwrap_or_default();
        let days = left.as_secs() / (24 * 3600);
        if left < EXPIRY_WARNING {
            report.warn(
                label,
                format!("{which} expires on {} ({days} days left)", date(not_after)),
            );
        } else if i == 0 {
            report.ok(
                label,
                format!("{which} valid until {} ({days} days left)", date(not_after)),
            );
        }
    }
}

fn names(leaf: &X509Certificate<'_>) -> Names {
    let mut names = Names {
        dns: Vec::new(),
        ips: Vec::new(),
    };
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        for n in &san.value.general_names {
            match n {
                GeneralName::DNSName(d) => names.dns.push((*d).to_owned()),
                GeneralName::IPAddress(ip) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                        names.ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                        names.ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    names
}

/// Each --server-name must be covered; listen IPs should be.
pub(super) fn coverage(config: &Config, names: &Names, report: &mut Report) {
    for name in &config.server_names {
        let subject = format!("--server-name {name}");
        if names.covers(name) {
            report.ok(subject, "covered by the certificate");
        } else {
            report.error(
                subject,
                format!(
                    "not covered by the certificate (it covers {})",
                    names.list()
                ),
            );
        }
    }
    for addr in &config.listen {
        let subject = format!("--listen {addr}");
        let ip = addr.ip();
        if ip.is_unspecified() {
            if config.server_names.is_empty() {
                report.warn(
                    subject,
                    "listens on every address, so the names clients use cannot be checked; \
                     give --server-name for each host name to check the certificate covers it",
                );
            }
        } else if !names.ips.contains(&ip) {
            report.warn(
                subject,
                format!(
                    "the certificate does not cover {ip}: clients connecting by this IP \
                     address get a name mismatch (it covers {})",
                    names.list()
                ),
            );
        }
    }
}
