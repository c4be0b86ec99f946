//! [`Item`]: one finding about a setting or file, at a [`Level`]; what `rampart check`
//! prints and what [`Error::Checks`](crate::Error::Checks) carries. It depends on nothing
//! else in the crate, so that the checks (check.rs) and the errors (error.rs) can both use
//! it without importing each other.

use std::fmt;

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

/// The lines of failed checks, for [`Error::Checks`](crate::Error::Checks)'s message.
#[must_use]
pub fn lines(items: &[Item]) -> String {
    items.iter().map(|i| format!("\n  {i}")).collect()
}
