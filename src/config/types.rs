//! The values settings take, as domain types: [`Cidr`], [`LogFormat`], [`PlaintextMode`],
//! and the parsers of the textual forms shared by flags, `RAMPART_*` variables and the
//! `--config` file (`10s`, `IP:PORT`, `IP/PREFIX`). Each type has `FromStr` and `Display`
//! (the enums also a list of their words), so that `cli.rs` wires them into clap's value
//! parsers and [`crate::Config`] holds them without any clap type in its API. Every parser
//! is total: a bad value is an error message that shows it, never a panic.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// How log lines (and access-log lines) are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// Every format, in the order `--help` lists them.
    pub const ALL: [Self; 2] = [Self::Pretty, Self::Json];

    /// The word that names it (`pretty`, `json`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pretty => "pretty",
            Self::Json => "json",
        }
    }

    /// One line for `--help`.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::Pretty => "Human-readable lines",
            Self::Json => "One JSON object per line",
        }
    }
}

/// What to do with a plaintext HTTP request that arrives on the HTTPS port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaintextMode {
    /// Answer `308 Permanent Redirect` to the https:// URL.
    Redirect,
    /// Answer `400 Bad Request` with a body saying the port speaks HTTPS.
    Reject,
}

impl PlaintextMode {
    /// Every mode, in the order `--help` lists them.
    pub const ALL: [Self; 2] = [Self::Redirect, Self::Reject];

    /// The word that names it (`redirect`, `reject`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Redirect => "redirect",
            Self::Reject => "reject",
        }
    }

    /// One line for `--help`.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::Redirect => "Answer `308 Permanent Redirect` to the https:// URL",
            Self::Reject => "Answer `400 Bad Request` with a body saying the port speaks HTTPS",
        }
    }
}

/// How the ACME CA validates that rampart answers for a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// RFC 8737: a TLS handshake with ALPN `acme-tls/1` on the HTTPS listeners (port 443
    /// for a public CA) gets a certificate that carries the answer.
    TlsAlpn01,
    /// RFC 8555 8.3: `GET /.well-known/acme-challenge/TOKEN` on the cleartext listener
    /// (`--http-listen`, port 80 for a public CA).
    Http01,
}

impl AcmeChallenge {
    /// Every challenge type, in the order `--help` lists them.
    pub const ALL: [Self; 2] = [Self::TlsAlpn01, Self::Http01];

    /// The word that names it (`tls-alpn-01`, `http-01`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::TlsAlpn01 => "tls-alpn-01",
            Self::Http01 => "http-01",
        }
    }

    /// One line for `--help`.
    #[must_use]
    pub const fn description(self) -> &'static str {
        match self {
            Self::TlsAlpn01 => "Answered on the HTTPS listeners (ALPN acme-tls/1)",
            Self::Http01 => "Answered on --http-listen (/.well-known/acme-challenge/)",
        }
    }
}

/// Implements `FromStr` (exact, case-sensitive words) and `Display` for a word enum.
macro_rules! words {
    ($ty:ty, $what:literal) => {
        impl FromStr for $ty {
            type Err = String;

            fn from_str(value: &str) -> Result<Self, String> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == value)
                    .ok_or_else(|| {
                        let words: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!("{value:?} is not {}: one of {}", $what, words.join(", "))
                    })
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

words!(LogFormat, "a log format");
words!(PlaintextMode, "a plaintext mode");
words!(AcmeChallenge, "an ACME challenge type");

/// Refuses values wrapped in quotes or padded with whitespace: a config that writes
/// `"0.0.0.0:443"` with its quotes is a mistake to report, never to guess around.
///
/// # Errors
/// Returns a message that shows the value.
pub fn no_stray_quotes(value: &str) -> Result<String, String> {
    if value.trim() != value {
        return Err(format!("{value:?} has surrounding whitespace"));
    }
    if value.starts_with(['"', '\'']) || value.ends_with(['"', '\'']) {
        return Err(format!("{value:?} is wrapped in stray quotes"));
    }
    Ok(value.to_owned())
}

/// Parses `IP:PORT` (IPv6 as `[::1]:8443`), refusing stray quotes and whitespace.
///
/// # Errors
/// Returns a message that shows the value and the expected form.
pub fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    let value = no_stray_quotes(value)?;
    value.parse().map_err(|_| {
        format!("{value:?} is not an IP:PORT address (e.g. 127.0.0.1:8443 or [::1]:8443)")
    })
}

/// Parses an address range `IP/PREFIX` (a bare IP is a single address).
///
/// # Errors
/// Returns a message that shows the value and the expected form.
pub fn parse_cidr(value: &str) -> Result<Cidr, String> {
    let value = no_stray_quotes(value)?;
    value.parse()
}

/// An IP address range (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the range (an IPv4-mapped IPv6 address counts as IPv4).
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.net, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        let bad =
            || format!("{value:?} is not an address range (e.g. 10.0.0.0/8, 127.0.0.1, ::1/128)");
        let (ip, prefix) = match value.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (value, None),
        };
        let net: IpAddr = ip.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Self { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// Parses a duration: `250ms`, `10s`, `5m`, `1h`, `1d`, or plain seconds (`30`).
///
/// # Errors
/// Returns a message that shows the value and the accepted units.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = no_stray_quotes(value)?;
    let bad = || format!("{value:?} is not a duration (e.g. 500ms, 10s, 5m, 1h, 1d)");
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(n.checked_mul(3600).ok_or_else(bad)?),
        "d" => Duration::from_secs(n.checked_mul(86_400).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10 s").is_err());
        assert!(parse_duration("ten").is_err());
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5w").is_err());
    }

    #[test]
    fn quoted_or_padded_values_are_refused_with_the_value_shown() {
        let err = parse_addr("\"0.0.0.0:443\"").unwrap_err();
        assert!(
            err.contains("stray quotes") && err.contains("0.0.0.0:443"),
            "{err}"
        );
        assert!(parse_addr(" 127.0.0.1:1")
            .unwrap_err()
            .contains("whitespace"));
        assert_eq!(parse_addr("[::1]:8443").unwrap().port(), 8443);
    }

    #[test]
    fn word_enums_parse_their_words_and_print_them_back() {
        for f in LogFormat::ALL {
            assert_eq!(f.to_string().parse::<LogFormat>(), Ok(f));
        }
        for m in PlaintextMode::ALL {
            assert_eq!(m.to_string().parse::<PlaintextMode>(), Ok(m));
        }
        assert_eq!(
            "Json".parse::<LogFormat>(),
            Err("\"Json\" is not a log format: one of pretty, json".into())
        );
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c = parse_cidr("10.0.0.0/8").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(c.contains("::ffff:10.9.9.9".parse().unwrap()));
        let one = parse_cidr("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = parse_cidr("::1/128").unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!(!v6.contains("127.0.0.1".parse().unwrap()));
        assert!(parse_cidr("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(parse_cidr("::/0")
            .unwrap()
            .contains("2001:db8::1".parse().unwrap()));
        for bad in [
            "10.0.0.0/33",
            "::1/129",
            "10.0.0/8",
            "x",
            "10.0.0.0/",
            "\"10.0.0.0/8\"",
        ] {
            assert!(parse_cidr(bad).is_err(), "{bad}");
        }
    }
}
