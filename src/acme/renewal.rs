//! The renewal task: keeps the certificate of the `--acme` names issued and fresh, for as
//! long as the server runs. Each round reads what is stored, works out when it is due
//! (acme/schedule.rs; the CA's ARI window when its directory offers one), sleeps until
//! then, takes the state directory's lock (one instance of a fleet orders at a time),
//! looks again (another instance may have renewed meanwhile), orders, stores, and has the
//! resolver swap the new certificate in. A failure is logged, counted and retried with
//! backoff; the certificate in service stays in service.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::{Account, CertificateIdentifier};
use tokio_util::sync::CancellationToken;

use super::challenge::Challenges;
use super::schedule::{self, rfc3339, Backoff, Lifetime, Window};
use super::state::{OrderLock, StateDir};
use super::{account, order, AcmeError, Progress};
use crate::config::AcmeSettings;
use crate::telemetry::Metrics;
use crate::tls::CertResolver;

/// The longest sleep between two looks at the schedule: the CA's ARI window can move (a
/// revocation campaign), and RFC 9773 asks clients to poll it about twice a day.
const RECHECK: Duration = Duration::from_secs(6 * 3600);

/// How often an instance waiting for another's lock looks again.
const LOCK_POLL: Duration = Duration::from_secs(1);

/// Everything the renewal task works with.
pub struct Renewal {
    /// The `--acme*` settings.
    pub settings: AcmeSettings,
    /// The opened state directory.
    pub state: StateDir,
    /// The resolver serving the certificate (swapped on success).
    pub resolver: Arc<CertResolver>,
    /// Where the challenge answers are published.
    pub challenges: Arc<Challenges>,
    /// Attempt count and last error, for the handshake log line.
    pub progress: Arc<Progress>,
    /// Counters and the next-renewal gauge.
    pub metrics: Arc<Metrics>,
}

/// The stored certificate as the schedule needs it.
struct Stored {
    life: Lifetime,
    id: Option<CertificateIdentifier<'static>>,
}

impl Renewal {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let jitter = jitter();
        let mut backoff = Backoff::default();
        let mut account: Option<Account> = None;
        // Set once a new account replaced one the CA forgot: only once in a row.
        let mut recreated = false;
        let name = self.settings.domains.first().cloned().unwrap_or_default();
        loop {
            let stored = self.stored().await;
            let due = match &stored {
                Some(s) => {
                    let window = self.window(&mut account, s).await;
                    schedule::renew_at(s.life, window, jitter, self.settings.renew_after)
                }
                None => SystemTime::now(),
            };
            self.metrics.acme_next_renewal.store(
                due.duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                Ordering::Relaxed,
            );
            let now = SystemTime::now();
            if let (Some(s), Ok(wait)) = (&stored, due.duration_since(now)) {
                tracing::info!(
                    name,
                    not_after = %rfc3339(s.life.not_after),
                    renewal = %rfc3339(due),
                    "ACME certificate in service"
                );
                if sleep_or_stop(wait.min(RECHECK), &stop).await {
                    return;
                }
                continue;
            }
            // Due (or none yet): one instance of a fleet orders at a time.
            let lock = match self.lock(&stop).await {
                Locked::Held(lock) => Some(lock),
                Locked::Unsupported => None,
                Locked::Stopped => return,
            };
            if self.stored().await.map(|s| s.life) != stored.as_ref().map(|s| s.life) {
                // Another instance stored a new certificate while this one waited (the
                // resolver has it now): look at the schedule again.
                drop(lock);
                continue;
            }
            let attempt = self.progress.attempt();
            tracing::info!(name, attempt, directory = %self.settings.directory, challenge = %self.settings.challenge, "ordering a certificate from the ACME CA");
            let result = tokio::select! {
                r = self.order(&mut account, stored.as_ref().and_then(|s| s.id.clone())) => r,
                () = stop.cancelled() => return,
            };
            drop(lock);
            match result {
                Ok(not_after) => {
                    recreated = false;
                    Metrics::inc(&self.metrics.acme_renewals_success);
                    self.progress.succeeded();
                    backoff.succeeded();
                    tracing::info!(name, names = %self.settings.domains.join(","), not_after = %rfc3339(not_after), "certificate issued");
                }
                Err(e) if e.account_gone() && !recreated => {
                    // The CA no longer knows the account (a CA that lost its state, an
                    // account deactivated): a new one, and the order again at once.
                    tracing::info!(name, reason = %e, "the ACME CA no longer knows the account; creating a new one");
                    account = None;
                    recreated = true;
                    self.forget_account().await;
                }
                Err(e) => {
                    recreated = false;
                    Metrics::inc(&self.metrics.acme_renewals_failure);
                    self.progress.failed(e.to_string());
                    let wait = backoff.failed(e.retry_after());
                    let serving = self.resolver.current().is_some();
                    tracing::warn!(
                        name,
                        attempt,
                        reason = %e,
                        retry_in_s = wait.as_secs(),
                        serving = if serving { "the previous certificate" } else { "nothing yet" },
                        "ACME order failed"
                    );
                    if sleep_or_stop(wait, &stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// The stored certificate, if the resolver accepts it (it is swapped in then).
    async fn stored(&self) -> Option<Stored> {
        let resolver = Arc::clone(&self.resolver);
        let (cert_path, _) = self.state.cert_paths(&self.settings.domains);
        tokio::task::spawn_blocking(move || {
            resolver.reload().ok()?;
            let (life, leaf) = Lifetime::of_pem(&std::fs::read(&cert_path).ok()?)?;
            let id = CertificateIdentifier::try_from(&leaf)
                .ok()
                .map(CertificateIdentifier::into_owned);
            Some(Stored { life, id })
        })
        .await
        .ok()
        .flatten()
    }

    /// The CA's suggested window (ARI), when its directory offers one and answers.
    async fn window(&self, account: &mut Option<Account>, stored: &Stored) -> Option<Window> {
        if self.settings.renew_after.is_some() {
            return None;
        }
        let id = stored.id.as_ref()?;
        let acct = self.account(account).await.ok()?;
        match acct.renewal_info(id).await {
            Ok((info, _)) => {
                let to = |t: time::OffsetDateTime| {
                    SystemTime::UNIX_EPOCH
                        + Duration::from_secs(u64::try_from(t.unix_timestamp()).unwrap_or_default())
                };
                Some(Window {
                    start: to(info.suggested_window.start),
                    end: to(info.suggested_window.end),
                })
            }
            Err(instant_acme::Error::Unsupported(_)) => None,
            Err(e) => {
                tracing::debug!(error = %e, "ACME renewal information unavailable; using two thirds of the lifetime");
                None
            }
        }
    }

    /// Removes the stored account of this CA (it no longer exists there).
    async fn forget_account(&self) {
        let path = self.state.account_path(&self.settings.directory);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_file(path)).await;
    }

    /// The account, made or loaded on first use (a CA that is down at start-up does not
    /// stop rampart).
    async fn account<'a>(&self, slot: &'a mut Option<Account>) -> Result<&'a Account, AcmeError> {
        if slot.is_none() {
            *slot = Some(account::account(&self.settings, &self.state).await?);
        }
        slot.as_ref()
            .ok_or_else(|| AcmeError::Other("no account".into()))
    }

    /// One order: issued, stored, swapped in; the new certificate's notAfter.
    async fn order(
        &self,
        slot: &mut Option<Account>,
        replaces: Option<CertificateIdentifier<'static>>,
    ) -> Result<SystemTime, AcmeError> {
        let acct = self.account(slot).await?;
        let result = order::obtain(acct, &self.settings, &self.challenges, replaces.clone()).await;
        let issued = match result {
            // A CA without ARI refuses `replaces`: order without it.
            Err(AcmeError::Ca(instant_acme::Error::Unsupported(_))) if replaces.is_some() => {
                order::obtain(acct, &self.settings, &self.challenges, None).await?
            }
            other => other?,
        };
        let state = self.state.clone();
        let domains = self.settings.domains.clone();
        let resolver = Arc::clone(&self.resolver);
        let (cert_path, _) = self.state.cert_paths(&self.settings.domains);
        tokio::task::spawn_blocking(move || {
            state
                .store_cert(&domains, &issued.chain_pem, &issued.key_pem)
                .map_err(|source| AcmeError::State {
                    path: cert_path,
                    source,
                })?;
            resolver
                .reload()
                .map(|c| c.not_after)
                .map_err(|e| AcmeError::Other(format!("the issued certificate was refused: {e}")))
        })
        .await
        .map_err(|e| AcmeError::Other(e.to_string()))?
    }

    /// The state directory's lock, waiting for another instance that holds it.
    async fn lock(&self, stop: &CancellationToken) -> Locked {
        let mut announced = false;
        loop {
            let state = self.state.clone();
            match tokio::task::spawn_blocking(move || state.try_lock()).await {
                Ok(Ok(Some(lock))) => return Locked::Held(lock),
                Ok(Ok(None)) => {
                    if !announced {
                        announced = true;
                        tracing::info!(dir = %self.state.root().display(), "another instance is ordering; waiting for its certificate");
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(dir = %self.state.root().display(), error = %e, "cannot lock the ACME state directory; ordering without the lock");
                    return Locked::Unsupported;
                }
                Err(_) => return Locked::Stopped,
            }
            if sleep_or_stop(LOCK_POLL, stop).await {
                return Locked::Stopped;
            }
        }
    }
}

/// What waiting for the state directory's lock gave.
enum Locked {
    /// Held until dropped.
    Held(OrderLock),
    /// The file system has no locks: order without (a single instance is safe).
    Unsupported,
    /// The server is stopping.
    Stopped,
}

/// Sleeps; whether `stop` came first.
async fn sleep_or_stop(wait: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        () = stop.cancelled() => true,
    }
}

/// A number in `[0, 1)` of this process (the std hasher's random keys).
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    #[allow(clippy::cast_precision_loss)]
    let x = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
    x
}
