//! The development certificate: a local CA and a leaf for localhost, 127.0.0.1 and ::1,
//! created on first start without `--cert/--key` and reused afterwards (so that a browser or
//! system store that trusts the CA keeps trusting it). Never for production: the CA key sits
//! next to the certificate. Once created it is a certificate [`super::source`] like any
//! other, reloaded on SIGHUP or when its files change.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::source::{Files, ProvidesCert};
use super::TlsError;

/// The names the development leaf covers.
pub const DEV_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Paths of the development files.
#[derive(Debug, Clone)]
pub struct DevCert {
    /// The CA certificate clients must trust.
    pub ca: PathBuf,
    /// The leaf chain the server presents.
    pub cert: PathBuf,
    /// The leaf key.
    pub key: PathBuf,
    /// Whether this start created them.
    pub created: bool,
}

/// Reuses the development CA and leaf in `dir` if they are [`reusable`], otherwise creates
/// new ones.
///
/// # Errors
/// [`TlsError::DevCert`] when the directory or files cannot be written.
pub fn ensure(dir: &Path) -> Result<DevCert, TlsError> {
    let files = DevCert::in_dir(dir);
    if reusable(dir) {
        return Ok(files);
    }
    create(dir)?;
    Ok(DevCert {
        created: true,
        ..files
    })
}

/// Whether the development files in `dir` can serve as they are: the CA is there, and the
/// leaf and key pass the inspector, cover [`DEV_NAMES`] and stay valid for a week more.
/// Reads only; `rampart check` asks this too.
#[must_use]
pub fn reusable(dir: &Path) -> bool {
    let files = DevCert::in_dir(dir);
    let week = std::time::Duration::from_secs(7 * 24 * 3600);
    files.ca.is_file()
        && files.load().is_ok_and(|loaded| {
            DEV_NAMES.iter().all(|n| loaded.names.covers(n))
                && loaded.not_after > std::time::SystemTime::now() + week
        })
}

impl fmt::Display for DevCert {
    /// The leaf file (what logs name as `cert`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cert.display())
    }
}

/// A certificate source: created (or found reusable) once by [`ensure`], then read and
/// re-read like [`Files`].
impl ProvidesCert for DevCert {
    fn load(&self) -> Result<super::LoadedCert, TlsError> {
        self.as_files().load()
    }

    fn files(&self) -> Vec<PathBuf> {
        self.as_files().files()
    }
}

impl DevCert {
    fn as_files(&self) -> Files {
        Files {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    /// The file names in `dir`, not created by this start.
    fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            created: false,
        }
    }
}

fn create(dir: &Path) -> Result<(), TlsError> {
    let err = |reason: String| TlsError::DevCert {
        dir: dir.to_owned(),
        reason,
    };
    fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let now = time::OffsetDateTime::now_utc();

    let ca_key = KeyPair::generate().map_err(|e| err(e.to_string()))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| err(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rampart development CA");
    dn.push(DnType::OrganizationName, "rampart (development only)");
    ca.distinguished_name = dn;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| err(e.to_string()))?;
    let issuer = Issuer::new(ca, &ca_key);

    let leaf_key = KeyPair::generate().map_err(|e| err(e.to_string()))?;
    let mut leaf = CertificateParams::new(
        DEV_NAMES
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>(),
    )
    .map_err(|e| err(e.to_string()))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    leaf.distinguished_name = dn;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = now - time::Duration::days(1);
    // Browsers refuse leaf certificates valid for more than 398 days.
    leaf.not_after = now + time::Duration::days(397);
    let leaf_cert = leaf
        .signed_by(&leaf_key, &issuer)
        .map_err(|e| err(e.to_string()))?;

    write(&dir.join("ca.pem"), ca_cert.pem().as_bytes(), false).map_err(&err)?;
    write(
        &dir.join("ca-key.pem"),
        ca_key.serialize_pem().as_bytes(),
        true,
    )
    .map_err(&err)?;
    write(&dir.join("cert.pem"), leaf_cert.pem().as_bytes(), false).map_err(&err)?;
    write(
        &dir.join("key.pem"),
        leaf_key.serialize_pem().as_bytes(),
        true,
    )
    .map_err(&err)?;
    Ok(())
}

fn write(path: &Path, data: &[u8], secret: bool) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = fs::OpenOptions::new();
    opts.write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 });
    let mut f = opts
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", path.display()))
}
