//! [`AcmeSettings`]: the `--acme*` flags as the ACME client (src/acme/) takes them, and
//! their checks (names a CA can validate, the directory's shortcuts, the EAB pair, the
//! listener the challenge needs). Reads nothing from disk.

use std::path::PathBuf;
use std::time::Duration;

use super::types::AcmeChallenge;
use crate::problem::Problem;

/// Let's Encrypt's production directory (`--acme-directory letsencrypt`, the default).
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`--acme-directory letsencrypt-staging`).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How rampart obtains its certificate from an ACME CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The names of the one certificate (`--acme`), in the order given; the first names
    /// the certificate in logs and in the state directory.
    pub domains: Vec<String>,
    /// Account contact (`--acme-email`).
    pub email: Option<String>,
    /// The directory URL, shortcuts resolved (`--acme-directory`).
    pub directory: String,
    /// Extra trust anchor for the directory's HTTPS (`--acme-ca-root`).
    pub ca_root: Option<PathBuf>,
    /// Account key, certificates, keys, the lock (`--acme-state`).
    pub state_dir: PathBuf,
    /// How the CA validates the names (`--acme-challenge`).
    pub challenge: AcmeChallenge,
    /// External Account Binding: key id and HMAC key (base64url).
    pub eab: Option<(String, String)>,
    /// Test-only: renew this long after issuance (`--acme-renew-after`, hidden).
    pub renew_after: Option<Duration>,
}

/// The directory URL for `--acme-directory`'s value: a shortcut or the URL itself.
#[must_use]
pub fn directory_url(value: &str) -> String {
    match value {
        "letsencrypt" => LETSENCRYPT.to_owned(),
        "letsencrypt-staging" => LETSENCRYPT_STAGING.to_owned(),
        url => url.to_owned(),
    }
}

impl AcmeSettings {
    /// Every problem with these settings; `has_http_listener`: whether `--http-listen` is
    /// set (HTTP-01 is answered there).
    #[must_use]
    pub fn problems(&self, has_http_listener: bool) -> Vec<Problem> {
        let mut out = Vec::new();
        for name in &self.domains {
            if let Err(why) = check_name(name, self.challenge) {
                out.push(Problem::invalid("--acme", name, why));
            }
        }
        for (i, name) in self.domains.iter().enumerate() {
            if self.domains[..i]
                .iter()
                .any(|n| n.eq_ignore_ascii_case(name))
            {
                out.push(Problem::invalid("--acme", name, "is given twice"));
            }
        }
        if !(self.directory.starts_with("https://") || self.directory.starts_with("http://")) {
            out.push(Problem::invalid(
                "--acme-directory",
                &self.directory,
                "is neither a URL nor one of letsencrypt, letsencrypt-staging",
            ));
        } else if self.directory.starts_with("http://") {
            out.push(Problem::invalid(
                "--acme-directory",
                &self.directory,
                "must be https:// (RFC 8555 requires HTTPS for the directory)",
            ));
        }
        if let Some(email) = &self.email {
            let ok = email
                .split_once('@')
                .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'))
                && !email.contains(char::is_whitespace)
                && !email.starts_with("mailto:");
            if !ok {
                out.push(Problem::invalid(
                    "--acme-email",
                    email,
                    "is not an e-mail address (user@example.com)",
                ));
            }
        }
        if self.challenge == AcmeChallenge::Http01 && !has_http_listener {
            out.push(Problem::invalid(
                "--acme-challenge",
                "http-01",
                "needs --http-listen (the CA fetches /.well-known/acme-challenge/ there)",
            ));
        }
        if let Some((kid, key)) = &self.eab {
            if kid.is_empty() {
                out.push(Problem::invalid("--acme-eab-kid", kid, "is empty"));
            }
            if base64url_decode(key).is_none_or(|k| k.is_empty()) {
                out.push(Problem::invalid(
                    "--acme-eab-hmac-key",
                    "(hidden)",
                    "is not base64url (the CA's HMAC key as it gives it)",
                ));
            }
        }
        out
    }
}

/// Whether a CA can validate `name` with `challenge`: a DNS name of letters, digits and
/// hyphens, at least two labels, no wildcard (that needs DNS-01), no IP address.
fn check_name(name: &str, challenge: AcmeChallenge) -> Result<(), String> {
    if name.starts_with("*.") {
        return Err(format!(
            "is a wildcard: a CA validates wildcards only by DNS-01, not {challenge}"
        ));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an IP address: ACME certificates here are for DNS names".into());
    }
    if name.len() > 253 || !name.contains('.') {
        return Err("is not a fully qualified DNS name (example.com)".into());
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(format!(
                "has an invalid label {label:?} (letters, digits and inner hyphens; \
                 write internationalized names in their xn-- form)"
            ));
        }
    }
    Ok(())
}

/// Decodes base64url without padding (padding tolerated), as CAs hand out EAB keys.
#[must_use]
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(domains: &[&str]) -> AcmeSettings {
        AcmeSettings {
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
            email: None,
            directory: directory_url("letsencrypt"),
            ca_root: None,
            state_dir: "acme".into(),
            challenge: AcmeChallenge::TlsAlpn01,
            eab: None,
            renew_after: None,
        }
    }

    fn reasons(s: &AcmeSettings, http: bool) -> Vec<String> {
        s.problems(http).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn names_a_ca_can_validate_pass_and_others_are_named_with_why() {
        assert!(reasons(&settings(&["example.com", "www.example.com"]), false).is_empty());
        let got = reasons(
            &settings(&[
                "*.example.com",
                "localhost",
                "10.0.0.1",
                "a_b.example.com",
                "x.com",
                "X.com",
            ]),
            false,
        );
        assert_eq!(got.len(), 5, "{got:#?}");
        assert!(got[0].contains("wildcard") && got[0].contains("tls-alpn-01"));
        assert!(got[1].contains("\"localhost\"") && got[1].contains("fully qualified"));
        assert!(got[2].contains("IP address"));
        assert!(got[3].contains("invalid label \"a_b\""));
        assert!(got[4].contains("\"X.com\"") && got[4].contains("twice"));
    }

    #[test]
    fn shortcuts_resolve_and_the_directory_must_be_https() {
        assert_eq!(directory_url("letsencrypt"), LETSENCRYPT);
        assert_eq!(directory_url("letsencrypt-staging"), LETSENCRYPT_STAGING);
        let mut s = settings(&["example.com"]);
        s.directory = "http://ca.internal/directory".into();
        assert!(reasons(&s, false)[0].contains("must be https://"));
        s.directory = "letsencrypt-prod".into();
        assert!(reasons(&s, false)[0].contains("neither a URL"));
    }

    #[test]
    fn http01_needs_the_cleartext_listener_and_eab_keys_must_decode() {
        let mut s = settings(&["example.com"]);
        s.challenge = AcmeChallenge::Http01;
        assert!(reasons(&s, false)[0].contains("needs --http-listen"));
        assert!(reasons(&s, true).is_empty());
        s.eab = Some(("kid-1".into(), "not base64!".into()));
        let got = reasons(&s, true);
        assert!(got[0].contains("--acme-eab-hmac-key") && !got[0].contains("not base64!"));
        s.eab = Some((
            "kid-1".into(),
            "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W".into(),
        ));
        assert!(reasons(&s, true).is_empty());
        assert_eq!(base64url_decode("AQID"), Some(vec![1, 2, 3]));
        assert_eq!(base64url_decode("_-8"), Some(vec![0xff, 0xef]));
    }

    #[test]
    fn an_email_is_checked_for_its_shape_only() {
        let mut s = settings(&["example.com"]);
        s.email = Some("ops@example.com".into());
        assert!(reasons(&s, false).is_empty());
        s.email = Some("mailto:ops@example.com".into());
        assert!(reasons(&s, false)[0].contains("--acme-email"));
    }
}
