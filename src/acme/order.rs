//! One ACME order, from new-order to the issued chain: a challenge published for each
//! pending authorization through [`Challenges`] (and withdrawn when the order ends, however
//! it ends), the order polled at the CA's pace, the certificate's key (ECDSA P-256) made
//! for the CSR here. The caller holds the fleet's lock and stores the result.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, ChallengeType, Identifier, NewOrder,
    OrderStatus, RetryPolicy,
};

use super::challenge::Challenges;
use super::AcmeError;
use crate::config::{AcmeChallenge, AcmeSettings};

/// How long the CA may take to validate, and then to issue.
const POLL: RetryPolicy = RetryPolicy::new()
    .initial_delay(Duration::from_millis(250))
    .backoff(1.5)
    .timeout(Duration::from_secs(120));

/// A certificate the CA issued, with its key.
#[derive(Debug)]
pub struct Issued {
    /// The chain, leaf first (PEM).
    pub chain_pem: String,
    /// The key (PKCS#8 PEM).
    pub key_pem: String,
}

/// Answers published for an order; withdrawn when dropped.
struct Published<'a> {
    challenges: &'a Challenges,
    tls_alpn: Vec<String>,
    http: Vec<String>,
}

impl Drop for Published<'_> {
    fn drop(&mut self) {
        for domain in &self.tls_alpn {
            self.challenges.withdraw_tls_alpn(domain);
        }
        for token in &self.http {
            self.challenges.withdraw_http(token);
        }
    }
}

/// Orders a certificate for the names of `settings`, answering with its challenge type;
/// `replaces` names the certificate it renews (ARI, when the CA offers it).
///
/// # Errors
/// [`AcmeError`]: the CA refused or failed, a validation failed, the answer could not be
/// published.
pub async fn obtain(
    account: &Account,
    settings: &AcmeSettings,
    challenges: &Challenges,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, AcmeError> {
    let identifiers: Vec<Identifier> = settings
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut new = NewOrder::new(&identifiers);
    if let Some(id) = replaces {
        new = new.replaces(id);
    }
    let mut order = account.new_order(&new).await?;
    let kind = match settings.challenge {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
    };
    let mut published = Published {
        challenges,
        tls_alpn: Vec::new(),
        http: Vec::new(),
    };
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        let name = authz.identifier().to_string();
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => {
                return Err(AcmeError::Authorization {
                    name,
                    reason: format!("the CA reports it {other:?}"),
                })
            }
        }
        let Some(mut challenge) = authz.challenge(kind.clone()) else {
            return Err(AcmeError::Authorization {
                name,
                reason: format!("the CA offers no {} challenge for it", settings.challenge),
            });
        };
        let answer = challenge.key_authorization();
        match settings.challenge {
            AcmeChallenge::TlsAlpn01 => {
                challenges.publish_tls_alpn(&name, answer.as_str())?;
                published.tls_alpn.push(name.clone());
            }
            AcmeChallenge::Http01 => {
                challenges.publish_http(&challenge.token, answer.as_str())?;
                published.http.push(challenge.token.clone());
            }
        }
        challenge.set_ready().await?;
        tracing::debug!(name, challenge = %settings.challenge, "ACME challenge ready");
    }
    let status = order.poll_ready(&POLL).await?;
    if status != OrderStatus::Ready {
        let mut reasons = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            let name = authz.identifier().to_string();
            if let Ok(state) = authz.refresh().await {
                for c in &state.challenges {
                    if let Some(problem) = &c.error {
                        reasons.push(format!("{name}: {problem}"));
                    }
                }
            }
        }
        return Err(AcmeError::Invalid(if reasons.is_empty() {
            format!("the order ended {status:?}")
        } else {
            reasons.join("; ")
        }));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&POLL).await?;
    drop(published);
    Ok(Issued { chain_pem, key_pem })
}
