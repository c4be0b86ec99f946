//! Typed errors of the library. Each variant names the setting, file or address involved so
//! that the operator can act on the message alone; `main.rs` adds nothing but an exit code.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can stop rampart from starting (or a reload from being applied).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting cannot be used (the first of
    /// [`Config::problems`](crate::Config::problems)).
    #[error(transparent)]
    Setting(#[from] crate::problem::Problem),
    /// A file could not be read.
    #[error("{what} {path}: {source}")]
    Io {
        /// What the file is for (e.g. "certificate file").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The certificate or key is unusable.
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({flag}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The flag it came from.
        flag: &'static str,
        /// The underlying error (e.g. address in use).
        source: io::Error,
    },
    /// Building the asset table failed.
    #[error("loading assets: {0}")]
    Assets(#[from] crate::app::assets::BuildError),
    /// Start-up checks failed (see [`crate::check`]); each item names the setting or file.
    #[error("start-up checks failed:{}", crate::problem::lines(.0))]
    Checks(Vec<crate::problem::Item>),
    /// Any other I/O failure at start-up.
    #[error("{context}: {source}")]
    Other {
        /// What rampart was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
