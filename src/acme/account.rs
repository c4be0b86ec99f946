//! The ACME account: the HTTPS client that talks to the CA (Mozilla's root store, plus
//! `--acme-ca-root` for a private CA) and the account itself, created once per CA and kept
//! in the state directory (its key never leaves it).

use std::path::Path;

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, BodyWrapper, ExternalAccountKey, HttpClient, NewAccount,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::state::StateDir;
use super::AcmeError;
use crate::config::acme::base64url_decode;
use crate::config::AcmeSettings;

/// The HTTPS client for the CA's API: TLS 1.2/1.3 with rampart's crypto provider, trusting
/// Mozilla's roots (built in, so that a container without a CA bundle works) and the
/// certificates of `ca_root`.
///
/// # Errors
/// [`AcmeError::CaRoot`] when `ca_root` cannot be read or holds no certificate.
pub fn http_client(ca_root: Option<&Path>) -> Result<Box<dyn HttpClient>, AcmeError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_root {
        let bad = |reason: String| AcmeError::CaRoot {
            path: path.to_owned(),
            reason,
        };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("holds no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AcmeError::Other(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    let client: Client<_, BodyWrapper<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    Ok(Box::new(client))
}

/// The account at the CA of `settings`: the stored one, or a new one (stored at once).
///
/// # Errors
/// [`AcmeError`]: the CA could not be reached or refused, or the state directory failed.
pub async fn account(settings: &AcmeSettings, state: &StateDir) -> Result<Account, AcmeError> {
    let path = state.account_path(&settings.directory);
    let read_path = path.clone();
    let stored = tokio::task::spawn_blocking(move || StateDir::read(&read_path))
        .await
        .map_err(|e| AcmeError::Other(e.to_string()))?
        .map_err(|e| AcmeError::State {
            path: path.clone(),
            source: e,
        })?;
    let http = http_client(settings.ca_root.as_deref())?;
    if let Some(json) = stored {
        let credentials: AccountCredentials =
            serde_json::from_str(&json).map_err(|e| AcmeError::State {
                path: path.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
        return Ok(Account::builder_with_http(http)
            .from_credentials(credentials)
            .await?);
    }
    let contact: Vec<String> = settings
        .email
        .iter()
        .map(|e| format!("mailto:{e}"))
        .collect();
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let eab = settings.eab.as_ref().map(|(kid, key)| {
        ExternalAccountKey::new(kid.clone(), &base64url_decode(key).unwrap_or_default())
    });
    let (account, credentials) = Account::builder_with_http(http)
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory.clone(),
            eab.as_ref(),
        )
        .await?;
    let json =
        serde_json::to_vec_pretty(&credentials).map_err(|e| AcmeError::Other(e.to_string()))?;
    let write_path = path.clone();
    tokio::task::spawn_blocking(move || StateDir::write(&write_path, &json))
        .await
        .map_err(|e| AcmeError::Other(e.to_string()))?
        .map_err(|e| AcmeError::State { path, source: e })?;
    tracing::info!(id = account.id(), directory = %settings.directory, "ACME account created");
    Ok(account)
}
