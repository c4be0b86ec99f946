//! The certificate checks of [`super`]: the findings of the certificate inspector
//! ([`crate::tls::inspect`]: parse, key match, chain order and signatures, validity) as
//! report items, and whether the leaf covers the `--server-name`s and listen IPs. The
//! development certificate is looked at, never created.

use std::time::SystemTime;

use super::Report;
use crate::config::{CertSource, Config};
use crate::tls::devcert::{self, DEV_NAMES};
use crate::tls::inspect::{inspect, Name, Names, Part};

/// Checks the certificate source; returns the names it covers when they are known.
pub(super) fn certificate(config: &Config, report: &mut Report) -> Option<Names> {
    match &config.cert {
        CertSource::Files { cert, key } => {
            let cert_label = format!("--cert {}", cert.display());
            let key_label = format!("--key {}", key.display());
            files(cert, key, &cert_label, &key_label, report)
        }
        // Checked by check/acme.rs (check.rs dispatches it there).
        CertSource::Acme(_) => None,
        CertSource::Dev { dir } => {
            let label = format!("--dev-cert-dir {}", dir.display());
            if devcert::reusable(dir) {
                report.ok(
                    &label,
                    "no --cert/--key: the development certificate here will be used \
                     (localhost, 127.0.0.1, ::1; never for production)",
                );
                files(
                    &dir.join("cert.pem"),
                    &dir.join("key.pem"),
                    &label,
                    &label,
                    report,
                )
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
                Some(Names(
                    DEV_NAMES
                        .iter()
                        .map(|n| n.parse().map_or_else(|_| Name::Dns((*n).into()), Name::Ip))
                        .collect(),
                ))
            }
        }
    }
}

/// The inspector's findings about a pair, each under the flag of its file.
pub(super) fn files(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
    cert_label: &str,
    key_label: &str,
    report: &mut Report,
) -> Option<Names> {
    let inspection = inspect(cert_path, key_path, SystemTime::now());
    for finding in &inspection.findings {
        let label = match finding.part() {
            Part::Cert => cert_label,
            Part::Key => key_label,
        };
        report.push(finding.level(), label, finding.to_string());
    }
    inspection.names
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
    // A CA issues ACME certificates for names only: an IP address is never covered.
    let listen = if matches!(config.cert, CertSource::Acme(_)) {
        &[][..]
    } else {
        &config.listen[..]
    };
    for addr in listen {
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
        } else if !names.ips().any(|i| i == ip) {
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
