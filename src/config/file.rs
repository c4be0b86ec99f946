//! The `--config` file (TOML). Its keys are the long flag names of `rampart serve` without
//! the leading `--` (`listen`, `max-connections`, `handshake-timeout`, ...): every flag except
//! `config` itself and the negations `no-spa` and `no-http3` (write `spa = false`,
//! `http3 = false`).
//!
//! Precedence comes from clap itself: each file value is checked with the flag's own value
//! parser and then installed as that flag's default before the real parse, so flags beat
//! `RAMPART_*` variables, which beat the file, which beats the built-in defaults; and a file
//! value is refused exactly as the same flag would be, but with the file, line and key named.
//!
//! The file may also hold structured, file-only sections (`[[headers]]`, `[[redirects]]`):
//! tables with no flag, taken out of the file first and checked by [`super::sections`]
//! into [`FileSections`], which [`parse_args`] hands on in
//! [`ServeArgs::file_sections`]. Every problem, in flag keys or sections, is reported as
//! `rampart.toml:LINE: key: reason`, sorted by line.
//!
//! This module reads the file and hands clap its values; it never interprets a setting.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, Args, Command, CommandFactory, FromArgMatches};
use serde::Deserialize;
use toml::de::DeTable;
use toml::{Spanned, Value};

use super::sections::{self, line_of, FileSections};
use crate::cli::{Cli, ServeArgs};
use crate::problem::did_you_mean;
pub use crate::problem::FileProblem;

/// Flags that are not file keys: the file's own path, and a negation whose positive form
/// (`spa = false`) says the same.
// `acme-renew-after` is a hidden, test-only flag: not a setting a file should carry.
const NOT_KEYS: [&str; 4] = ["config", "no-spa", "no-http3", "acme-renew-after"];

/// Declares the file's keys: one optional, spanned TOML value per flag. A unit test keeps
/// this list and [`ServeArgs`] in step.
macro_rules! file_keys {
    ($($field:ident),* $(,)?) => {
        /// The file as written: unknown keys are refused by serde.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields, rename_all = "kebab-case")]
        struct FileSettings {
            $($field: Option<Spanned<Value>>,)*
        }

        impl FileSettings {
            /// Every key, in declaration order.
            fn keys() -> Vec<String> {
                vec![$(stringify!($field).replace('_', "-")),*]
            }

            /// The keys present in the file, with their values.
            fn entries(&self) -> Vec<(String, &Spanned<Value>)> {
                let mut out = Vec::new();
                $(if let Some(v) = &self.$field {
                    out.push((stringify!($field).replace('_', "-"), v));
                })*
                out
            }
        }
    };
}

file_keys!(
    root,
    listen,
    cert,
    key,
    dev_cert_dir,
    server_name,
    http_listen,
    acme,
    acme_email,
    acme_directory,
    acme_ca_root,
    acme_state,
    acme_challenge,
    acme_eab_kid,
    acme_eab_hmac_key,
    reuse_port,
    http3,
    http3_listen,
    http3_0rtt,
    metrics_listen,
    proxy_protocol,
    trusted_proxy,
    ticket_key_file,
    workers,
    session_cache,
    spa,
    hsts_max_age,
    plaintext,
    log_level,
    log_format,
    access_log,
    handshake_timeout,
    header_timeout,
    idle_timeout,
    drain_delay,
    shutdown_timeout,
    max_connections,
    max_header_size,
    max_headers,
    max_uri_length,
    h2_max_streams,
    stream_threshold,
    watch_interval,
    keep_old_assets,
);

/// Why the command line and config file could not be turned into a [`Cli`].
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    /// A flag or environment variable was refused by clap (or `--help`/`--version` was
    /// asked for: print it with [`clap::Error::print`]).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The `--config` file cannot be read or holds bad keys or values.
    #[error(transparent)]
    File(#[from] FileError),
}

/// Problems found in a `--config` file, each with its line and key when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The file as given.
    pub path: PathBuf,
    /// One entry per problem (at least one).
    pub problems: Vec<FileProblem>,
}

impl std::error::Error for FileError {}

impl fmt::Display for FileError {
    /// One line per problem: `rampart.toml:7: listen: "\"0.0.0.0:443\"" is wrapped in stray
    /// quotes`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", self.path.display())?;
            if let Some(line) = p.line {
                write!(f, ":{line}")?;
            }
            if let Some(key) = &p.key {
                write!(f, ": {key}")?;
            }
            write!(f, ": {}", p.reason)?;
        }
        Ok(())
    }
}

/// Parses the command line like [`clap::Parser::try_parse_from`], reading the `--config`
/// file (flag or `RAMPART_CONFIG`) when one is given and using its values as the flags'
/// defaults: flags > `RAMPART_*` variables > file > built-in defaults.
///
/// # Errors
/// [`ArgsError::Clap`] for a bad flag or variable (and for `--help`), [`ArgsError::File`]
/// naming the file, line and key for a file that cannot be read or used.
pub fn parse_args<I, T>(args: I) -> Result<Cli, ArgsError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let first = Cli::from_arg_matches(&Cli::command().try_get_matches_from(&args)?)?;
    let path = match &first.command {
        None => first.serve.config.as_deref(),
        Some(
            crate::cli::Command::Serve(a)
            | crate::cli::Command::Check(crate::cli::CheckArgs { serve: a, .. }),
        ) => a.config.as_deref(),
        Some(
            crate::cli::Command::TicketKey(_)
            | crate::cli::Command::Completions { .. }
            | crate::cli::Command::Man
            | crate::cli::Command::HashPassword { .. },
        ) => None,
    };
    let Some(path) = path else {
        return Ok(first);
    };
    let (defaults, file_sections) = read(Path::new(path))?;
    let inject = |mut cmd: Command| {
        for (id, values) in &defaults {
            cmd = cmd.mut_arg(id, |a| a.default_values(values.clone()));
        }
        cmd
    };
    let cmd = inject(Cli::command())
        .mut_subcommand("serve", inject)
        .mut_subcommand("check", inject);
    let mut cli = Cli::from_arg_matches(&cmd.try_get_matches_from(&args)?)?;
    match &mut cli.command {
        None => cli.serve.file_sections = file_sections,
        Some(
            crate::cli::Command::Serve(a)
            | crate::cli::Command::Check(crate::cli::CheckArgs { serve: a, .. }),
        ) => {
            a.file_sections = file_sections;
        }
        Some(_) => {}
    }
    Ok(cli)
}

/// The clap argument id and the values of each flag key in the file.
type Defaults = Vec<(String, Vec<String>)>;

/// Reads and checks the file.
fn read(path: &Path) -> Result<(Defaults, FileSections), FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        path: path.to_owned(),
        problems: vec![FileProblem {
            line: None,
            key: None,
            reason: format!("cannot read the config file: {e}"),
        }],
    })?;
    parse(path, &text)
}

/// Checks the text of the file named `path`: its sections first, then its flag keys (an
/// unknown flag key stops the flag keys before their values are looked at).
fn parse(path: &Path, text: &str) -> Result<(Defaults, FileSections), FileError> {
    let fail = |problems| FileError {
        path: path.to_owned(),
        problems,
    };
    let root = DeTable::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        fail(vec![toml_problem(line, e.message())])
    })?;
    let span = root.span();
    let mut root = root.into_inner();
    let keys = FileSettings::keys();
    let is_flag_key = |k: &str| keys.iter().any(|f| f == k) || NOT_KEYS.contains(&k);
    let (file_sections, mut problems) =
        sections::take(&mut root, text, &path.display().to_string(), is_flag_key);
    let de = toml::de::Deserializer::from(Spanned::new(span, root));
    let settings = match FileSettings::deserialize(de) {
        Ok(settings) => settings,
        Err(e) => {
            let line = e.span().map(|s| line_of(text, s.start));
            problems.push(toml_problem(line, e.message()));
            problems.sort_by_key(|p| p.line);
            return Err(fail(problems));
        }
    };
    let validator = flags_only();
    let mut defaults = Vec::new();
    for (key, value) in settings.entries() {
        let line = Some(line_of(text, value.span().start));
        let problem = |reason| FileProblem {
            line,
            key: Some(key.clone()),
            reason,
        };
        let Some(arg) = validator
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()))
        else {
            // Only if the key list and ServeArgs drift apart, which a unit test prevents.
            problems.push(problem("is not a flag of `rampart serve`".into()));
            continue;
        };
        match values_of(arg, value.get_ref()).and_then(|v| check_values(&validator, arg, v)) {
            Ok(values) => defaults.push((arg.get_id().to_string(), values)),
            Err(reason) => problems.push(problem(reason)),
        }
    }
    problems.sort_by_key(|p| p.line);
    if problems.is_empty() {
        Ok((defaults, file_sections))
    } else {
        Err(fail(problems))
    }
}

/// The `serve` flags without their environment variables, to check file values alone.
fn flags_only() -> Command {
    ServeArgs::augment_args(Command::new("rampart"))
        .mut_args(|a| a.env(None))
        .no_binary_name(true)
}

/// A TOML value as the strings the flag would be given.
fn values_of(arg: &Arg, value: &Value) -> Result<Vec<String>, String> {
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, Value::Boolean(b)) => Ok(vec![b.to_string()]),
        (ArgAction::SetTrue, other) => {
            Err(format!("expects true or false, not {}", describe(other)))
        }
        (ArgAction::Append, Value::Array(items)) => items.iter().map(scalar).collect(),
        (_, Value::Array(_)) => Err("takes one value, not a list".into()),
        (_, other) => Ok(vec![scalar(other)?]),
    }
}

fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(x) => Ok(x.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        Value::Datetime(d) => Ok(d.to_string()),
        Value::Array(_) | Value::Table(_) => {
            Err(format!("expects a plain value, not {}", describe(value)))
        }
    }
}

/// A value as an error message shows it.
fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".into(),
        Value::Table(_) => "a table".into(),
        other => scalar(other).unwrap_or_default(),
    }
}

/// Runs the flag's own value parser over `values` (as `--flag=value`), so that the file
/// refuses exactly what the command line refuses.
fn check_values(
    validator: &Command,
    arg: &Arg,
    values: Vec<String>,
) -> Result<Vec<String>, String> {
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return Ok(values);
    }
    let long = arg.get_long().unwrap_or_default();
    let argv = values.iter().map(|v| format!("--{long}={v}"));
    match validator.clone().try_get_matches_from(argv) {
        Ok(_) => Ok(values),
        Err(e) => Err(clap_reason(&e, arg)),
    }
}

/// The reason in a clap error, without clap's framing (which names a flag, not the key).
fn clap_reason(e: &clap::Error, arg: &Arg) -> String {
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.clone(),
        _ => String::new(),
    };
    match e.kind() {
        ErrorKind::ValueValidation => {
            let why = std::error::Error::source(e).map_or_else(String::new, ToString::to_string);
            if why.contains(&format!("{value:?}")) {
                why
            } else {
                format!("{value:?}: {why}")
            }
        }
        ErrorKind::InvalidValue => {
            let valid: Vec<String> = arg
                .get_possible_values()
                .iter()
                .map(|p| p.get_name().to_owned())
                .collect();
            format!("{value:?} is not one of: {}", valid.join(", "))
        }
        _ => e
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned(),
    }
}

/// Turns toml's message into the house format, with a suggestion for a misspelt key.
fn toml_problem(line: Option<usize>, message: &str) -> FileProblem {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let key = rest.split('`').next().unwrap_or_default().to_owned();
        if NOT_KEYS.contains(&key.as_str()) {
            let reason = if key == "no-spa" {
                "not a file key: write `spa = false`"
            } else {
                "not a file key: a config file cannot name another"
            };
            return FileProblem {
                line,
                key: Some(key),
                reason: reason.into(),
            };
        }
        let keys = FileSettings::keys();
        let hint = did_you_mean(&key, keys.iter().map(String::as_str));
        return FileProblem {
            line,
            key: Some(key),
            reason: format!(
                "unknown key (keys are the flag names of `rampart serve --help` without \
                 the leading --){hint}"
            ),
        };
    }
    FileProblem {
        line,
        key: None,
        reason: message.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag_names() -> Vec<String> {
        let mut longs: Vec<String> = ServeArgs::augment_args(Command::new("x"))
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_owned))
            .filter(|l| !NOT_KEYS.contains(&l.as_str()))
            .collect();
        longs.sort();
        longs
    }

    #[test]
    fn every_serve_flag_is_a_file_key_and_every_file_key_is_a_flag() {
        let mut keys = FileSettings::keys();
        keys.sort();
        assert_eq!(keys, flag_names());
    }

    #[test]
    fn no_section_is_named_like_a_flag_key() {
        let keys = FileSettings::keys();
        for spec in sections::SECTIONS {
            assert!(!keys.iter().any(|k| k == spec.name), "{}", spec.name);
        }
    }

    #[test]
    fn the_example_file_shows_every_key() {
        let example = include_str!("../../examples/rampart.toml");
        for key in FileSettings::keys() {
            let shown = example.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            });
            assert!(shown, "examples/rampart.toml lacks `{key} = ...`");
        }
    }

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rampart.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn file_values_become_settings_below_flags() {
        let (_dir, path) = write(
            "listen = [\"127.0.0.2:1\", \"127.0.0.3:2\"]\nmax-connections = 20000\n\
             handshake-timeout = \"3s\"\nspa = false\nreuse-port = true\nworkers = 3\n",
        );
        let p = path.to_str().unwrap();
        let cli = parse_args(["rampart", "--config", p, "--workers", "5"]).unwrap();
        let a = cli.serve;
        assert_eq!(a.listen.len(), 2);
        assert_eq!(a.max_connections, 20000);
        assert_eq!(a.handshake_timeout, std::time::Duration::from_secs(3));
        assert!(!a.spa);
        assert!(a.reuse_port);
        assert_eq!(a.workers, Some(5));
        let cli = parse_args(["rampart", "check", "--config", p, "--spa"]).unwrap();
        let Some(crate::cli::Command::Check(a)) = cli.command else {
            panic!("check expected")
        };
        assert!(a.serve.spa);
        assert_eq!(a.serve.max_connections, 20000);
    }

    #[test]
    fn bad_values_name_the_file_line_and_key() {
        let (_dir, path) = write(
            "# comment\nroot = \"www\"\nlisten = [\"\\\"0.0.0.0:443\\\"\"]\nworkers = \"many\"\n\
             plaintext = \"maybe\"\nspa = \"no\"\n",
        );
        let err = read(&path).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(
                "rampart.toml:3: listen: \"\\\"0.0.0.0:443\\\"\" is wrapped in stray quotes"
            ),
            "{text}"
        );
        assert!(text.contains(":4: workers: \"many\""), "{text}");
        assert!(
            text.contains(":5: plaintext: \"maybe\" is not one of: redirect, reject"),
            "{text}"
        );
        assert!(text.contains(":6: spa: expects true or false"), "{text}");
        // Unknown keys stop the parse before values are looked at.
        let (_dir, path) = write("root = \"www\"\n\nlisen = [\"127.0.0.1:1\"]\n");
        let text = read(&path).unwrap_err().to_string();
        assert!(
            text.contains("rampart.toml:3: lisen: unknown key"),
            "{text}"
        );
        assert!(text.contains("did you mean `listen`?"), "{text}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = parse_args(["rampart", "--config", "/nonexistent/rampart.toml"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/rampart.toml: cannot read"),
            "{err}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 256,
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn no_file_text_panics_the_parser(
            lines in proptest::collection::vec(
                "\\[{1,2}(headers|redirects|headrs|listen|x)\\]{0,2}|\
                 (for|from|to|status|force|values|listen|workers|spa|x\\.y) ?= ?\
                 (\"[^\"\\n]{0,12}\"|-?[0-9]{1,6}|0x[0-9a-f]{1,4}|true|1\\.5|\\[\\]|\
                 \\{ ?[A-Za-z -]{0,6} ?= ?(\"[^\"\\n]{0,6}\"|[0-9]) ?\\}|\\[\"/a\", ?1\\])|\
                 [^\\n]{0,16}",
                0..10,
            )
        ) {
            let _ = parse(Path::new("rampart.toml"), &lines.join("\n"));
        }
    }
}
