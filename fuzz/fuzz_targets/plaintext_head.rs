//! `plaintext::parse_head` + `https_url` on arbitrary request heads: never panics, the target
//! is origin-form printable ASCII, the host is a clean hostname or IPv6 literal, and the
//! redirect URL's authority is exactly that host (no userinfo, CR/LF or whitespace). An ACME
//! HTTP-01 token is only read from GET/HEAD of the challenge path, and one the lookup
//! accepts is base64url only (it can name no other file).
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use rampart::acme::challenge::{valid_token, Challenges};
use rampart::server::plaintext::{
    acme_challenge_token, head_complete, https_url, parse_head, ACME_CHALLENGE_PATH,
};

fn host_is_clean(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        !inner.is_empty()
            && inner
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b':' || b == b'.')
    } else {
        !h.is_empty()
            && h.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = head_complete(data);
    let Some(req) = parse_head(data) else {
        return;
    };
    assert!(req.target.starts_with('/'), "{req:?}");
    assert!(
        req.target.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{req:?}"
    );
    if let Some(h) = &req.host {
        assert!(host_is_clean(h), "{req:?}");
    }
    if let Some(token) = acme_challenge_token(&req) {
        assert!(req.method == "GET" || req.method == "HEAD", "{req:?}");
        let path = req.target.split('?').next().unwrap_or_default();
        assert_eq!(path, format!("{ACME_CHALLENGE_PATH}{token}"), "{req:?}");
        if valid_token(token) {
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token:?}"
            );
        }
        assert_eq!(Challenges::new(None).http_answer(token), None);
    }
    let locals: [SocketAddr; 2] = [
        SocketAddr::from(([127, 0, 0, 1], 8080)),
        SocketAddr::from(([0xfe80, 0, 0, 0, 0, 0, 0, 1], 8080)),
    ];
    for local in locals {
        for port in [443, 8443] {
            let url = https_url(&req, local, port);
            let rest = url.strip_prefix("https://").expect("https:// URL");
            assert!(
                !url.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{url:?}"
            );
            let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
            assert!(!authority.contains('@'), "{url:?}");
            assert_eq!(&rest[authority.len()..], req.target, "{url:?}");
        }
    }
});
