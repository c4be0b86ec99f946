//! The ACME checks of [`super`]: the settings (`--acme*`), the state directory (a
//! directory rampart can write, or one it can create), `--acme-ca-root`, and the stored
//! certificate's state (inspected like any pair, its names, when it is due). Looks, never
//! creates or orders.

use std::path::Path;
use std::time::SystemTime;

use super::cert::files;
use super::Report;
use crate::acme::schedule::{self, Lifetime};
use crate::acme::state::StateDir;
use crate::config::AcmeSettings;
use crate::tls::inspect::{Name, Names};

/// Checks the ACME source; returns the names the certificate will cover.
pub(super) fn certificate(settings: &AcmeSettings, report: &mut Report) -> Option<Names> {
    let label = format!("--acme {}", settings.domains.join(","));
    report.ok(
        &label,
        format!(
            "the certificate comes from {} by {} (answered on {})",
            settings.directory,
            settings.challenge,
            match settings.challenge {
                crate::config::AcmeChallenge::TlsAlpn01 => "the --listen addresses",
                crate::config::AcmeChallenge::Http01 => "--http-listen",
            }
        ),
    );
    if let Some(root) = &settings.ca_root {
        let subject = format!("--acme-ca-root {}", root.display());
        match crate::acme::account::http_client(Some(root)) {
            Ok(_) => report.ok(subject, "a readable PEM trust anchor"),
            Err(e) => report.error(subject, e.to_string()),
        }
    }
    state_dir(&settings.state_dir, report);
    let state = StateDir::at(&settings.state_dir);
    let (cert, key) = state.cert_paths(&settings.domains);
    let stored_label = format!("--acme-state {}", cert.display());
    if cert.exists() {
        let names = files(&cert, &key, &stored_label, &stored_label, report);
        if let Some(names) = &names {
            match settings.domains.iter().find(|d| !names.covers(d)) {
                Some(d) => report.warn(
                    &stored_label,
                    format!("does not cover {d}: a new certificate is ordered at start"),
                ),
                None => {
                    if let Some((life, _)) = std::fs::read(&cert)
                        .ok()
                        .and_then(|pem| Lifetime::of_pem(&pem))
                    {
                        let due = schedule::renew_at(life, None, 0.0, settings.renew_after);
                        let when = if due <= SystemTime::now() {
                            "due now: renewed at start".to_owned()
                        } else {
                            format!(
                                "renewal due in {} days (or in the CA's renewal window)",
                                due.duration_since(SystemTime::now())
                                    .map_or(0, |d| d.as_secs() / 86_400)
                            )
                        };
                        report.ok(
                            &stored_label,
                            format!("stored certificate in service; {when}"),
                        );
                    }
                }
            }
        }
    } else {
        report.ok(
            &stored_label,
            "no certificate stored yet: it is ordered at start (/readyz 503 until issued)",
        );
    }
    Some(Names(
        settings
            .domains
            .iter()
            .map(|d| Name::Dns(d.clone()))
            .collect(),
    ))
}

/// The state directory: writable when it exists, creatable when not.
fn state_dir(dir: &Path, report: &mut Report) {
    let subject = format!("--acme-state {}", dir.display());
    if dir.exists() {
        if !dir.is_dir() {
            report.error(subject, "is not a directory");
        } else if rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_err() {
            report.error(subject, "is not writable by this user");
        } else {
            report.ok(
                subject,
                "a writable directory (account, certificates, the fleet's lock)",
            );
        }
        return;
    }
    let parent = dir
        .ancestors()
        .skip(1)
        .find(|a| a.as_os_str().is_empty() || a.exists())
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        });
    match parent {
        Some(p) if rustix::fs::access(p, rustix::fs::Access::WRITE_OK).is_ok() => {
            report.ok(subject, "will be created (0700) in a writable directory");
        }
        _ => report.error(subject, "does not exist and cannot be created here"),
    }
}
