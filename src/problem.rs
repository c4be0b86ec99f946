//! Findings, shared by the checks and the errors: [`Item`], one finding about a setting or
//! file at a [`Level`] (what `rampart check` prints and what
//! [`Error::Checks`](crate::Error::Checks) carries), and [`Problem`], one thing wrong with
//! the settings (what [`Config::problems`](crate::Config::problems) yields, `rampart check`
//! renders as an item and [`Error::Setting`](crate::Error::Setting) wraps), and
//! [`FileProblem`], one thing wrong at a line of the `--config` file, with the "did you
//! mean" hint its messages share. It depends on nothing else in the crate, so that the
//! settings (config.rs and config/), the checks (check.rs) and the errors (error.rs) can
//! all use it without importing each other.

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

/// One problem in a `--config` file; [`FileError`](crate::config::file::FileError) shows
/// it as `rampart.toml:LINE: key: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// The key involved, when there is one (`listen`, `redirects.status`).
    pub key: Option<String>,
    /// What is wrong, showing the value.
    pub reason: String,
}

impl FileProblem {
    /// A problem at `line` with `key`.
    pub fn at(line: usize, key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            key: Some(key.into()),
            reason: reason.into(),
        }
    }
}

/// `"; did you mean `KEY`?"` for the candidate closest to `word` (at most two edits
/// away), or an empty string.
#[must_use]
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    candidates
        .into_iter()
        .map(|c| (edit_distance(c, word), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map_or_else(String::new, |(_, c)| format!("; did you mean `{c}`?"))
}

/// Levenshtein distance, for "did you mean" on short keys.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

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

    #[test]
    fn the_hint_names_the_closest_candidate_within_two_edits() {
        let keys = ["listen", "http-listen", "headers"];
        assert_eq!(did_you_mean("lisen", keys), "; did you mean `listen`?");
        assert_eq!(did_you_mean("header", keys), "; did you mean `headers`?");
        assert_eq!(did_you_mean("workers", keys), "");
    }
}
