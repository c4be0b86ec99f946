//! Start-up checks: everything that decides whether `serve` can start, as a [`Report`] of
//! `ok` / `warn` / `error` items naming the setting or file and the reason. `rampart check`
//! prints [`report`]; [`crate::Server::bind`] runs [`startup`] (the same checks, except the
//! probe that the listen addresses are free: binding reports that itself) and refuses to
//! start on errors. This module reads files and probes sockets; it never changes anything
//! (the development certificate is reported as "will be created", not created).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Error};

use crate::config::{CertSource, Config};
use crate::error::{Error, Result};
use crate::tls::devcert::DEV_NAMES;

/// Certificates expiring sooner than this get a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// How serious an [`Item`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The check passed.
    Ok,
    /// Serving works, but the operator should look.
    Warn,
    /// Serving would fail (or refuse to start).
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Error => "error",
        })
    }
}

/// One finding: its level, what it is about (a flag with its value, or a file) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Ok, warning or error.
    pub level: Level,
    /// The setting or file, e.g. `--listen 127.0.0.1:8443` or `--cert fullchain.pem`.
    pub subject: String,
    /// What was found.
    pub message: String,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<5}  {}: {}", self.level, self.subject, self.message)
    }
}

/// The findings of every check, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// All items, ok ones included.
    pub items: Vec<Item>,
}

impl Report {
    /// Whether serving would succeed: no error items (warnings allowed).
    #[must_use]
    pub fn passed(&self) -> bool {
        self.count(Level::Error) == 0
    }

    /// The items of one level.
    pub fn at(&self, level: Level) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.level == level)
    }

    fn count(&self, level: Level) -> usize {
        self.at(level).count()
    }

    fn push(&mut self, level: Level, subject: impl Into<String>, message: impl Into<String>) {
        self.items.push(Item {
            level,
            subject: subject.into(),
            message: message.into(),
        });
    }

    fn ok(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(Level::Ok, subject, message);
    }

    fn warn(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(Level::Warn, subject, message);
    }

    fn error(&mut self, subject: impl Into<String>, message: impl Into<String>) {
        self.push(Level::Error, subject, message);
    }
}

impl fmt::Display for Report {
    /// One line per item, then a summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for item in &self.items {
            writeln!(f, "{item}")?;
        }
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        writeln!(
            f,
            "\n{} ok, {}, {}: {}",
            self.count(Level::Ok),
            plural(self.count(Level::Warn), "warning"),
            plural(self.count(Level::Error), "error"),
            if self.passed() {
                "rampart serve would start"
            } else {
                "rampart serve would refuse to start"
            }
        )
    }
}

/// Every check of `rampart check`: settings, root, certificate, names, ticket key file, and
/// whether each listen address can be bound now.
#[must_use]
pub fn report(config: &Config) -> Report {
    let mut report = startup_report(config);
    probe_listeners(config, &mut report);
    report
}

/// The checks `serve` runs before binding: everything in [`report`] except the probe of
/// the listen addresses.
#[must_use]
pub fn startup_report(config: &Config) -> Report {
    let mut report = Report::default();
    settings(config, &mut report);
    let names = certificate(config, &mut report);
    if let Some(names) = names {
        coverage(config, &names, &mut report);
    }
    ticket_key_file(config, &mut report);
    report
}

/// Runs [`startup_report`], logs its warnings, and refuses on errors; called by
/// [`crate::Server::bind`] so that embedders get the same checks as the binary.
///
/// # Errors
/// [`Error::Checks`] listing the failed checks.
pub fn startup(config: &Config) -> Result<()> {
    let report = startup_report(config);
    for item in report.at(Level::Warn) {
        tracing::warn!(setting = %item.subject, reason = %item.message, "start-up check");
    }
    if report.passed() {
        Ok(())
    } else {
        Err(Error::Checks(report.at(Level::Error).cloned().collect()))
    }
}

/// The lines of failed checks, for [`Error::Checks`]'s message.
#[must_use]
pub fn lines(items: &[Item]) -> String {
    items.iter().map(|i| format!("\n  {i}")).collect()
}

fn settings(config: &Config, report: &mut Report) {
    let problems = config.problems();
    if !problems.iter().any(|e| matches!(e, Error::Root { .. })) {
        report.ok(
            format!("--root {}", config.root.display()),
            "a readable directory with index.html",
        );
    }
    for e in &problems {
        match e {
            Error::Root { path, reason } => {
                report.error(format!("--root {}", path.display()), reason.clone());
            }
            Error::InvalidSetting {
                setting,
                value,
                reason,
            } if value.is_empty() => report.error(*setting, reason.clone()),
            Error::InvalidSetting {
                setting,
                value,
                reason,
            } => report.error(format!("{setting} {value}"), reason.clone()),
            other => report.error("settings", other.to_string()),
        }
    }
    if !problems.iter().any(|e| !matches!(e, Error::Root { .. })) {
        report.ok("settings", "every value is in range");
    }
}

fn probe_listeners(config: &Config, report: &mut Report) {
    for (flag, addr) in config.listeners() {
        match probe(addr, config.reuse_port) {
            Ok(()) => report.ok(format!("{flag} {addr}"), "free (bound and released)"),
            Err(e) => report.error(format!("{flag} {addr}"), format!("cannot listen: {e}")),
        }
    }
}

/// Binds `addr` as the server would (SO_REUSEADDR, SO_REUSEPORT when asked, IPv6 only for
/// IPv6 addresses) and releases it at once.
fn probe(addr: SocketAddr, reuse_port: bool) -> std::io::Result<()> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(1)?;
    Ok(())
}

/// The names a certificate covers: DNS names (wildcards kept) and IP addresses.
struct Names {
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
fn certificate(config: &Config, report: &mut Report) -> Option<Names> {
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
fn coverage(config: &Config, names: &Names, report: &mut Report) {
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

fn ticket_key_file(config: &Config, report: &mut Report) {
    let Some(path) = &config.ticket_key_file else {
        return;
    };
    let subject = format!("--ticket-key-file {}", path.display());
    match std::fs::read(path) {
        Err(e) => report.error(subject, format!("cannot read: {e}")),
        Ok(bytes) if bytes.is_empty() => report.error(
            subject,
            format!(
                "is empty (create it with `rampart ticket-key new {}`)",
                path.display()
            ),
        ),
        Ok(bytes) => match validate_ticket_key_format(&bytes) {
            Ok(()) => report.ok(subject, "readable"),
            Err(why) => report.error(subject, why),
        },
    }
}

/// The format check of a ticket key file. The format belongs to `src/tls/ticket.rs` (the
/// ticket-key work of the same issue); its parser is to be called here once both are on
/// one branch. Until then readability and non-emptiness are all that is checked.
fn validate_ticket_key_format(_bytes: &[u8]) -> std::result::Result<(), String> {
    Ok(())
}
