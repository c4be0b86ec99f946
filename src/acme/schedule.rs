//! When to renew, as pure functions of the certificate's lifetime, the CA's suggested
//! window and the time: [`renew_at`] (two thirds of the lifetime with jitter, or a random
//! point in the ACME Renewal Information window, RFC 9773) and [`Backoff`] (the wait after
//! failed attempts, never shorter than the CA's `Retry-After`), and a certificate's
//! [`Lifetime`] read from its PEM. No clock and no IO here.

use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// The validity of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// Start of validity.
    pub not_before: SystemTime,
    /// End of validity.
    pub not_after: SystemTime,
}

impl Lifetime {
    /// The validity of the first certificate of a PEM chain (the leaf), with the leaf.
    #[must_use]
    pub fn of_pem(pem: &[u8]) -> Option<(Self, CertificateDer<'static>)> {
        let leaf = CertificateDer::pem_slice_iter(pem).next()?.ok()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).ok()?;
        let at = |t: x509_parser::time::ASN1Time| {
            SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or_default())
        };
        let life = Self {
            not_before: at(parsed.validity().not_before),
            not_after: at(parsed.validity().not_after),
        };
        Some((life, leaf))
    }
}

/// A time in RFC 3339 (UTC), for log lines and `rampart check`.
#[must_use]
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or_default())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// The window the CA suggests for renewal (ARI); `end` after `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Renew no earlier than this.
    pub start: SystemTime,
    /// Renew before this.
    pub end: SystemTime,
}

/// When to renew a certificate. `jitter` in `[0, 1)` spreads the instances of a fleet and
/// the certificates of a CA: with a window from the CA, a point in it chosen by `jitter`
/// (RFC 9773 4.2: uniformly random within the window); without one, at two thirds of the
/// lifetime, up to a thirtieth of the lifetime earlier. `renew_after` (test-only) renews
/// that long after the start of validity.
#[must_use]
pub fn renew_at(
    life: Lifetime,
    window: Option<Window>,
    jitter: f64,
    renew_after: Option<Duration>,
) -> SystemTime {
    let jitter = jitter.clamp(0.0, 0.999_999);
    if let Some(after) = renew_after {
        return life.not_before + after;
    }
    if let Some(w) = window {
        let span = w.end.duration_since(w.start).unwrap_or_default();
        return w.start + span.mul_f64(jitter);
    }
    let lifetime = life
        .not_after
        .duration_since(life.not_before)
        .unwrap_or_default();
    life.not_before + lifetime * 2 / 3 - lifetime.mul_f64(jitter / 30.0)
}

/// The wait after failed attempts in a row: 15 seconds, doubling up to 6 hours, and never
/// shorter than the CA's `Retry-After` (a rate limit answer waits an hour at least, see
/// `AcmeError::retry_after`). A CA that is down for a minute costs a minute; a name that
/// fails validation reaches Let's Encrypt's limit of 5 failures an hour within a few
/// minutes, and then waits for it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
}

/// The first wait after a failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(15);
/// The longest wait between two attempts (unless the CA asks for longer).
pub const MAX_RETRY: Duration = Duration::from_secs(6 * 3600);

impl Backoff {
    /// Failures in a row so far.
    #[must_use]
    pub fn failures(self) -> u32 {
        self.failures
    }

    /// One more failure: how long to wait before the next attempt.
    pub fn failed(&mut self, retry_after: Option<Duration>) -> Duration {
        let ours = FIRST_RETRY
            .saturating_mul(1 << self.failures.min(16))
            .min(MAX_RETRY);
        self.failures = self.failures.saturating_add(1);
        retry_after.map_or(ours, |theirs| ours.max(theirs))
    }

    /// An attempt succeeded.
    pub fn succeeded(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn ninety_days() -> Lifetime {
        let not_before = SystemTime::UNIX_EPOCH + DAY * 20_000;
        Lifetime {
            not_before,
            not_after: not_before + DAY * 90,
        }
    }

    #[test]
    fn without_a_window_renewal_is_at_two_thirds_less_up_to_a_thirtieth() {
        let life = ninety_days();
        assert_eq!(renew_at(life, None, 0.0, None), life.not_before + DAY * 60);
        let latest_jitter = renew_at(life, None, 0.999_999, None);
        assert!(latest_jitter > life.not_before + DAY * 57);
        assert!(latest_jitter < life.not_before + DAY * 60);
        // Out-of-range jitter is clamped, never past two thirds.
        assert_eq!(renew_at(life, None, -1.0, None), life.not_before + DAY * 60);
    }

    #[test]
    fn the_ca_window_wins_and_a_point_in_it_is_chosen() {
        let life = ninety_days();
        let w = Window {
            start: life.not_before + DAY * 70,
            end: life.not_before + DAY * 72,
        };
        assert_eq!(renew_at(life, Some(w), 0.0, None), w.start);
        assert_eq!(renew_at(life, Some(w), 0.5, None), w.start + DAY);
        // A window that ends before it starts: its start.
        let odd = Window {
            start: w.end,
            end: w.start,
        };
        assert_eq!(renew_at(life, Some(odd), 0.5, None), w.end);
    }

    #[test]
    fn the_test_setting_renews_that_long_after_issuance() {
        let life = ninety_days();
        let at = renew_at(life, None, 0.3, Some(Duration::from_secs(3)));
        assert_eq!(at, life.not_before + Duration::from_secs(3));
    }

    #[test]
    fn backoff_doubles_to_six_hours_respects_retry_after_and_resets() {
        let mut b = Backoff::default();
        let waits: Vec<u64> = (0..14).map(|_| b.failed(None).as_secs()).collect();
        assert_eq!(
            waits,
            [15, 30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 15360, 21600, 21600, 21600]
        );
        assert_eq!(b.failures(), 14);
        b.succeeded();
        assert_eq!(b.failed(Some(Duration::from_secs(3600))).as_secs(), 3600);
        assert_eq!(b.failed(Some(Duration::from_secs(5))).as_secs(), 30);
    }
}
