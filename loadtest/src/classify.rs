//! Failure classes: every error is reduced to one stable label, the unit of the summary.
//!
//! Labels: `tls_alert_received:<alert>`, `tls_error:<kind>` (detected by this client, e.g.
//! `tls_error:bad_record_mac` for a record that fails to decrypt), `eof_without_close_notify`,
//! `truncated` (clean close before the end of a message), `reset_by_server`, `timeout`,
//! `unexpected_status:<code>`, `body_mismatch`, `bad_encoding`, `connect_failed`,
//! `h2_reset:<reason>`, `h2_goaway:<reason>`, `other`.

use std::error::Error as StdError;
use std::io;

/// One failure: its class label and a human-readable detail for samples.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The stable class label.
    pub class: String,
    /// What happened, for the first few samples.
    pub detail: String,
    /// The server closed the connection cleanly (close_notify, or HTTP/2 GOAWAY / refused
    /// stream) before any byte of the response, on a connection that served requests
    /// before: a browser resends such a request on a new connection (Chromium's
    /// `ShouldResendRequest`; RFC 9112 9.3.1, RFC 9113 8.7), and so does the storm.
    pub retry_safe: bool,
}

impl Failure {
    /// A failure with a fixed class.
    pub fn new(class: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            class: class.into(),
            detail: detail.into(),
            retry_safe: false,
        }
    }

    /// Classifies any error by walking its source chain.
    pub fn from_error(context: &str, err: &(dyn StdError + 'static)) -> Self {
        Self::new(classify(err), format!("{context}: {}", chain(err)))
    }
}

/// The whole chain as one line.
pub fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let t = e.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = e.source();
    }
    s
}

/// The class label of an error (see the module docs).
pub fn classify(err: &(dyn StdError + 'static)) -> String {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    let mut incomplete = false;
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<rustls::Error>() {
            return tls_label(t);
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return io_label(io);
        }
        if let Some(h) = e.downcast_ref::<h2::Error>() {
            if let Some(io) = h.get_io() {
                return io_label(io);
            }
            if let Some(reason) = h.reason() {
                let kind = if h.is_go_away() {
                    "h2_goaway"
                } else {
                    "h2_reset"
                };
                return format!("{kind}:{}", snake(&format!("{reason:?}")));
            }
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() {
                incomplete = true;
            }
            if h.is_timeout() {
                return "timeout".into();
            }
        }
        if e.downcast_ref::<tokio::time::error::Elapsed>().is_some() {
            return "timeout".into();
        }
        cur = e.source();
    }
    if incomplete {
        "truncated".into()
    } else {
        "other".into()
    }
}

fn io_label(io: &io::Error) -> String {
    if let Some(inner) = io.get_ref() {
        if let Some(t) = inner.downcast_ref::<rustls::Error>() {
            return tls_label(t);
        }
        if let Some(h) = inner.downcast_ref::<h2::Error>() {
            return classify(h);
        }
    }
    match io.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => "reset_by_server".into(),
        io::ErrorKind::UnexpectedEof if io.to_string().contains("close_notify") => {
            "eof_without_close_notify".into()
        }
        io::ErrorKind::UnexpectedEof => "truncated".into(),
        io::ErrorKind::TimedOut => "timeout".into(),
        io::ErrorKind::ConnectionRefused => "connect_failed".into(),
        _ => "other".into(),
    }
}

/// The label of a rustls error: alerts the server sent, or what this client detected.
pub fn tls_label(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::AlertReceived(a) => format!("tls_alert_received:{}", snake(&format!("{a:?}"))),
        E::DecryptError => "tls_error:bad_record_mac".into(),
        E::InvalidMessage(_) => "tls_error:decode_error".into(),
        E::InvalidCertificate(_) => "tls_error:invalid_certificate".into(),
        E::PeerMisbehaved(_) => "tls_error:peer_misbehaved".into(),
        E::PeerIncompatible(_) => "tls_error:peer_incompatible".into(),
        E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            "tls_error:unexpected_message".into()
        }
        _ => "tls_error:other".into(),
    }
}

/// `BadRecordMac` -> `bad_record_mac`.
fn snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::AlertDescription;

    #[test]
    fn alerts_and_local_tls_errors_have_distinct_labels() {
        let alert = rustls::Error::AlertReceived(AlertDescription::BadRecordMac);
        assert_eq!(classify(&alert), "tls_alert_received:bad_record_mac");
        let io = io::Error::new(io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert_eq!(classify(&io), "tls_error:bad_record_mac");
        let io = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(AlertDescription::DecodeError),
        );
        assert_eq!(classify(&io), "tls_alert_received:decode_error");
    }

    #[test]
    fn io_kinds_map_to_classes() {
        let eof = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify",
        );
        assert_eq!(classify(&eof), "eof_without_close_notify");
        let early = io::Error::new(io::ErrorKind::UnexpectedEof, "early eof");
        assert_eq!(classify(&early), "truncated");
        let rst = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(classify(&rst), "reset_by_server");
        assert_eq!(snake("CertificateRequired"), "certificate_required");
    }
}
