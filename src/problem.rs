//! Findings, shared by the checks and the errors: [`Item`], one finding about a setting or
//! file at a [`Level`] (what `rampart check` prints and what
//! [`Error::Checks`](crate::Error::Checks) carries), and [`Problem`], one thing wrong with
//! the settings (what [`Config::problems`](crate::Config::problems) yields, `rampart check`
//! renders as an item and [`Error::Setting`](crate::Error::Setting) wraps). It depends on
//! nothing else in the crate, so that the settings (config.rs), the checks (check.rs) and
//! the errors (error.rs) can all use it without importing each other.

use std::fmt;
use std::path::PathBuf;

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

/// One thing wrong with the settings, naming the setting and the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A flag or setting has a value that cannot be used.
    Invalid {
        /// The flag or setting, e.g. `--workers`.
        setting: &'static str,
        /// The value as given (empty when the problem is a value that is missing).
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The document root cannot be served.
    Root {
        /// The root directory as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Problem {
    /// A refused value of `setting`.
    pub fn invalid(setting: &'static str, value: impl ToString, reason: impl Into<String>) -> Self {
        Self::Invalid {
            setting,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The problem as `rampart check` reports it: an error item whose subject is the
    /// setting and its value (`--workers 0`, `--root dist`), or the setting alone when no
    /// value was given.
    #[must_use]
    pub fn item(&self) -> Item {
        let (subject, reason) = match self {
            Self::Invalid {
                setting,
                value,
                reason,
            } if value.is_empty() => ((*setting).to_owned(), reason),
            Self::Invalid {
                setting,
                value,
                reason,
            } => (format!("{setting} {value}"), reason),
            Self::Root { path, reason } => (format!("--root {}", path.display()), reason),
        };
        Item {
            level: Level::Error,
            subject,
            message: reason.clone(),
        }
    }
}

impl fmt::Display for Problem {
    /// `invalid value for --workers: "0": must be between 1 and 1024`, or
    /// `--root dist: no such directory`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid {
                setting,
                value,
                reason,
            } => write!(f, "invalid value for {setting}: {value:?}: {reason}"),
            Self::Root { path, reason } => write!(f, "--root {}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for Problem {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_names_the_setting_and_value_as_an_error_and_as_a_check_item() {
        let p = Problem::invalid("--workers", 0, "must be between 1 and 1024");
        assert_eq!(
            p.to_string(),
            "invalid value for --workers: \"0\": must be between 1 and 1024"
        );
        assert_eq!(
            p.item().to_string(),
            "error  --workers 0: must be between 1 and 1024"
        );
        let missing = Problem::invalid("--listen", "", "at least one address is needed");
        assert_eq!(missing.item().subject, "--listen");
        let root = Problem::Root {
            path: "dist".into(),
            reason: "no such directory".into(),
        };
        assert_eq!(root.to_string(), "--root dist: no such directory");
        assert_eq!(root.item().subject, "--root dist");
    }
}
