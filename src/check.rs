//! Start-up checks: everything that decides whether `serve` can start, as a [`Report`] of
//! `ok` / `warn` / `error` items naming the setting or file and the reason. `rampart check`
//! prints [`report`]; [`crate::Server::bind`] runs [`startup`] (the same checks, except the
//! probe that the listen addresses are free: binding reports that itself) and refuses to
//! start on errors. This module reads files and probes sockets; it never changes anything
//! (the development certificate is reported as "will be created", not created).

mod acme;
mod cert;
pub mod route;

use std::fmt;
use std::net::SocketAddr;

use crate::config::Config;
use crate::error::{Error, Result};
pub use crate::problem::{lines, Item, Level, Problem};

pub use crate::tls::inspect::EXPIRY_WARNING;

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

/// Every check of `rampart check`: settings, root, certificate, names, ticket key file,
/// whether each listen address can be bound now, and what the kernel offers for TLS.
#[must_use]
pub fn report(config: &Config) -> Report {
    let mut report = startup_report(config);
    probe_listeners(config, &mut report);
    report.ok(
        "kernel TLS",
        format!(
            "{}; rampart encrypts every connection in user space (rustls)",
            crate::tls::kernel::KernelTls::probe()
        ),
    );
    report
}

/// The checks `serve` runs before binding: everything in [`report`] except the probe of
/// the listen addresses.
#[must_use]
pub fn startup_report(config: &Config) -> Report {
    let mut report = Report::default();
    settings(config, &mut report);
    let names = match &config.cert {
        crate::config::CertSource::Acme(settings) => acme::certificate(settings, &mut report),
        _ => cert::certificate(config, &mut report),
    };
    if let Some(names) = names {
        cert::coverage(config, &names, &mut report);
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

fn settings(config: &Config, report: &mut Report) {
    match config.root_problem() {
        None => report.ok(
            format!("--root {}", config.root.display()),
            "a readable directory with index.html",
        ),
        Some(problem) => report.items.push(problem.item()),
    }
    let problems = config.setting_problems();
    report.items.extend(problems.iter().map(Problem::item));
    if problems.is_empty() {
        report.ok("settings", "every value is in range");
    }
    if config.root_problem().is_none() {
        route::rules(&config.site_options(), report);
    }
}

fn probe_listeners(config: &Config, report: &mut Report) {
    for (flag, addr) in config.listeners() {
        match probe(addr, config.reuse_port) {
            Ok(()) => report.ok(format!("{flag} {addr}"), "free (bound and released)"),
            Err(e) => report.error(format!("{flag} {addr}"), format!("cannot listen: {e}")),
        }
    }
    for (flag, addr) in config.http3_listeners() {
        let subject = format!("{flag} {addr} (UDP, HTTP/3)");
        match crate::server::h3::endpoint::udp_socket(addr, config.reuse_port) {
            Ok(_) => report.ok(subject, "available (bound and released)"),
            Err(e) => report.error(
                subject,
                format!("cannot bind: {e} (--no-http3 turns HTTP/3 off)"),
            ),
        }
    }
}

/// Binds `addr` as the server would (the same socket setup) and releases it at once.
fn probe(addr: SocketAddr, reuse_port: bool) -> std::io::Result<()> {
    crate::server::listen::socket(addr, reuse_port, 1).map(drop)
}

fn ticket_key_file(config: &Config, report: &mut Report) {
    let Some(path) = &config.ticket_key_file else {
        return;
    };
    let subject = format!("--ticket-key-file {}", path.display());
    // The same reader `serve` uses: format, line numbers, duplicate keys.
    match crate::tls::ticket::read_key_file(path) {
        Err(e) => report.error(subject, e.to_string()),
        Ok(file) => report.ok(
            subject,
            format!(
                "{} key(s); new tickets under key {}",
                file.keys.len(),
                file.keys
                    .first()
                    .map_or_else(String::new, |k| k.id().to_string())
            ),
        ),
    }
}
