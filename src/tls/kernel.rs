//! What the kernel offers for TLS (kTLS: record encryption in the kernel, so that a file can
//! go from the page cache to the socket with `sendfile`), found once at start-up and
//! reported in the start-up log and by `rampart check`. rampart encrypts every connection in
//! user space with rustls; this says whether the kernel path would be there to take.
//!
//! The kernel lists the upper-layer protocols it has loaded in
//! `/proc/sys/net/ipv4/tcp_available_ulp` (`tls` among them once the module is in); a
//! kernel built with `CONFIG_TLS=m` has `kernel/net/tls/tls.ko*` under its modules directory
//! and loads it on first use; a kernel without either has no kTLS (`CONFIG_TLS` not set).

use std::fmt;
use std::path::Path;

/// Where the kernel lists its loaded TCP upper-layer protocols.
const AVAILABLE_ULP: &str = "/proc/sys/net/ipv4/tcp_available_ulp";

/// What the kernel offers for TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelTls {
    /// The `tls` upper-layer protocol is loaded.
    Loaded,
    /// The kernel has `tls` as a module, not loaded yet (`modprobe tls`).
    Module,
    /// This kernel has no TLS (built without `CONFIG_TLS`), or it cannot be told.
    Absent {
        /// What the kernel lists instead, or why it could not be read.
        detail: String,
    },
}

impl KernelTls {
    /// Looks at this machine's kernel.
    #[must_use]
    pub fn probe() -> Self {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Self::from_parts(
            std::fs::read_to_string(AVAILABLE_ULP),
            Path::new("/lib/modules").join(release.trim()),
        )
    }

    /// The verdict from what `tcp_available_ulp` read and the kernel's modules directory.
    fn from_parts(ulps: std::io::Result<String>, modules: std::path::PathBuf) -> Self {
        let listed = match &ulps {
            Ok(text) => text.split_whitespace().any(|u| u == "tls"),
            Err(_) => false,
        };
        if listed {
            return Self::Loaded;
        }
        let dir = modules.join("kernel/net/tls");
        let has_module = std::fs::read_dir(&dir).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("tls.ko"))
        });
        if has_module {
            return Self::Module;
        }
        Self::Absent {
            detail: match ulps {
                Ok(text) if text.trim().is_empty() => {
                    format!("{AVAILABLE_ULP} is empty, no tls module")
                }
                Ok(text) => format!("{AVAILABLE_ULP} lists {}, no tls module", text.trim()),
                Err(e) => format!("{AVAILABLE_ULP}: {e}"),
            },
        }
    }
}

impl fmt::Display for KernelTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Loaded => f.write_str("the kernel has TLS loaded (kTLS)"),
            Self::Module => f.write_str("the kernel has TLS as a module (kTLS, not loaded)"),
            Self::Absent { detail } => write!(f, "this kernel has no TLS ({detail})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listed_ulp_a_module_file_or_neither() {
        let none = tempfile::tempdir().unwrap();
        assert_eq!(
            KernelTls::from_parts(Ok("mptcp tls\n".into()), none.path().into()),
            KernelTls::Loaded
        );
        let modules = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(modules.path().join("kernel/net/tls")).unwrap();
        std::fs::write(modules.path().join("kernel/net/tls/tls.ko.zst"), b"").unwrap();
        assert_eq!(
            KernelTls::from_parts(Ok("mptcp\n".into()), modules.path().into()),
            KernelTls::Module
        );
        let absent = KernelTls::from_parts(Ok("mptcp\n".into()), none.path().into());
        assert_eq!(
            absent.to_string(),
            "this kernel has no TLS (/proc/sys/net/ipv4/tcp_available_ulp lists mptcp, no tls module)"
        );
        let unreadable = KernelTls::from_parts(
            Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            none.path().into(),
        );
        assert!(
            matches!(unreadable, KernelTls::Absent { .. }),
            "{unreadable}"
        );
    }
}
