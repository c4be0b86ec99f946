//! Property tests for the parsers a network peer reaches: the connection sniffer, the
//! PROXY protocol header, the plaintext-HTTP head parser (with the ACME HTTP-01 token it
//! may ask for), request-path decoding, `Range` and `Accept-Encoding`; and the site-rule
//! files a deploy ships (`_headers`, `_redirects`) with their path patterns.
//! Every function must be total (never panic) on arbitrary input and keep its documented
//! invariants. Bounded for CI (2000 cases per property by default; set `PROPTEST_CASES` for a
//! longer run). The same functions are fuzzed by the targets in `fuzz/`.

#![allow(clippy::single_range_in_vec_init)] // one-range vectors are expected values

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use rampart::acme::challenge::{self, Challenges};
use rampart::app::encoding::{self, Encoding};
use rampart::app::path;
use rampart::app::range::{self, Ranges, MAX_RANGES};
use rampart::rules::pattern::expand;
use rampart::rules::{headers_file, redirects_file, Pattern, RuleError, SiteRules};
use rampart::server::plaintext::{self, PlainRequest};
use rampart::server::proxy::{self, Parse, V2_MAX, V2_SIGNATURE};
use rampart::server::sniff::{self, Sniff, MAX_SNIFF};

/// 2000 cases per property unless `PROPTEST_CASES` asks for more (or fewer); no regression
/// files are written into the source tree.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// A string strategy from a regex compiled once (a `&str` strategy re-parses its regex for
/// every case, which dominates the run time in a debug build).
fn re(regex: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(regex).expect("valid regex")
}

/// Arbitrary bytes, up to a few KB. Long inputs repeat a random chunk: generating thousands
/// of independent bytes per case is slow in a debug build and finds nothing more here.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(any::<u8>(), 0..512),
        1 => (prop::collection::vec(any::<u8>(), 1..64), 1usize..100)
            .prop_map(|(chunk, n)| chunk.repeat(n)),
    ]
}

/// Numbers that stress arithmetic: small, around powers of ten, near `u64::MAX`, and beyond
/// (as digit strings of up to 30 digits).
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (0u64..24).prop_map(|n| n.to_string()),
        2 => (0u64..2000).prop_map(|n| n.to_string()),
        2 => any::<u64>().prop_map(|n| n.to_string()),
        1 => (0u64..16).prop_map(|d| (u64::MAX - d).to_string()),
        1 => re("[0-9]{18,30}"),
        1 => re("0{1,25}[0-9]{0,3}"),
    ]
}

/// Representation lengths: zero, small, and huge.
fn length() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        1u64..30,
        1u64..2000,
        any::<u64>(),
        (0u64..4).prop_map(|d| u64::MAX - d),
    ]
}

/// Optional whitespace as a peer might send it.
fn ows() -> impl Strategy<Value = &'static str> {
    prop_oneof![4 => Just(""), 1 => Just(" "), 1 => Just("\t"), 1 => Just("  ")]
}

/// `Range`-like header values: mostly well-formed specs with extreme numbers, sometimes
/// junk pieces.
fn range_header() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => (number_text(), ows(), ows(), number_text())
            .prop_map(|(a, w1, w2, b)| format!("{a}{w1}-{w2}{b}")),
        2 => number_text().prop_map(|a| format!("{a}-")),
        2 => number_text().prop_map(|n| format!("-{n}")),
        1 => re("[0-9 ,=+-]{0,12}"),
        1 => Just(String::new()),
        1 => re(".{0,8}"),
    ];
    (
        prop_oneof![
            Just("bytes"),
            Just("Bytes"),
            Just("BYTES"),
            Just("items"),
            Just("")
        ],
        ows(),
        prop::collection::vec((piece, ows()), 0..12),
        prop_oneof![4 => Just(1usize), 1 => 2usize..40],
    )
        .prop_map(|(unit, w, pieces, repeat)| {
            // Repeating the pieces reaches the spec-count and MAX_RANGES limits cheaply.
            let specs: Vec<String> = pieces.into_iter().map(|(p, w)| format!("{w}{p}")).collect();
            format!("{unit}{w}={}", vec![specs.join(","); repeat].join(","))
        })
}

/// One well-formed byte-range spec, as data.
#[derive(Debug, Clone, Copy)]
enum Spec {
    /// `a-b`, `a <= b`.
    Closed(u64, u64),
    /// `a-`.
    Open(u64),
    /// `-n`.
    Suffix(u64),
}

impl Spec {
    fn text(self) -> String {
        match self {
            Self::Closed(a, b) => format!("{a}-{b}"),
            Self::Open(a) => format!("{a}-"),
            Self::Suffix(n) => format!("-{n}"),
        }
    }

    /// The bytes of a `len`-byte representation this spec selects (maybe empty).
    fn clipped(self, len: u64) -> Range<u64> {
        match self {
            Self::Closed(a, b) => a.min(len)..b.saturating_add(1).min(len),
            Self::Open(a) => a.min(len)..len,
            Self::Suffix(n) => len.saturating_sub(n)..len,
        }
    }
}

fn spec_number() -> impl Strategy<Value = u64> {
    prop_oneof![
        // A small universe makes overlapping and adjacent ranges common.
        4 => 0u64..24,
        2 => 0u64..1500,
        1 => any::<u64>(),
        1 => (0u64..4).prop_map(|d| u64::MAX - d),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => (spec_number(), spec_number()).prop_map(|(a, b)| Spec::Closed(a.min(b), a.max(b))),
        1 => spec_number().prop_map(Spec::Open),
        1 => spec_number().prop_map(Spec::Suffix),
    ]
}

/// Sorted, merged (overlapping or adjacent) non-empty ranges: the reference for `range::parse`.
fn merge(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|r| r.start < r.end);
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(prev) if r.start <= prev.end => prev.end = prev.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Path-like strings built from the pieces that matter to the safety rules.
fn path_like() -> impl Strategy<Value = String> {
    // At most 10 arms per `prop_oneof!`: a bigger union builds a value for every arm per case.
    let token = prop_oneof![
        4 => re("[a-zA-Z0-9_~-]{1,6}"),
        9 => prop::sample::select(vec![
            "/", "/", "/", ".", "..", ".well-known", "/.well-known", "/.well-known/", "\\",
            "\0", "%", "%2e", "%2E%2e", "%2f", "%5C", "%00", "%25", "%C3%A9", "%ff", "%e6%97",
        ])
        .prop_map(str::to_owned),
        2 => any::<u8>().prop_map(|b| format!("%{b:02X}")),
        1 => re("%[0-9a-zA-Z%]{0,2}"),
        1 => re(".{1,3}"),
    ];
    (
        prop_oneof![8 => Just("/"), 1 => Just(""), 1 => Just("*")],
        prop::collection::vec(token, 0..24),
    )
        .prop_map(|(lead, tokens)| format!("{lead}{}", tokens.concat()))
}

/// A safe path: `/` then alphanumeric segments (ASCII and a few multi-byte letters), with an
/// optional trailing `/`.
fn safe_path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(re("[a-zA-Z0-9\u{e9}\u{65e5}]{1,10}"), 0..8),
        any::<bool>(),
    )
        .prop_map(|(segments, trailing)| {
            let mut p = format!("/{}", segments.join("/"));
            if trailing && !segments.is_empty() {
                p.push('/');
            }
            p
        })
}

/// Checks the documented guarantees of a path `decode` accepted.
fn assert_safe_decoded(p: &str) -> Result<(), TestCaseError> {
    prop_assert!(p.starts_with('/'), "{p:?}");
    prop_assert!(!p.contains('\0'), "{p:?}");
    prop_assert!(!p.contains('\\'), "{p:?}");
    let segments: Vec<&str> = p[1..].split('/').collect();
    let count = segments.len();
    for (i, seg) in segments.iter().enumerate() {
        prop_assert!(*seg != "." && *seg != "..", "{p:?}");
        prop_assert!(!seg.is_empty() || i + 1 == count, "empty segment in {p:?}");
        prop_assert!(
            !seg.starts_with('.') || (i == 0 && *seg == ".well-known"),
            "hidden segment in {p:?}"
        );
    }
    Ok(())
}

/// Plaintext request heads: a request line with a mix of good and bad methods, targets and
/// versions, then headers (Host among them) with hostile values.
fn plain_head() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        6 => Just("GET".to_owned()),
        1 => Just("HEAD".to_owned()),
        1 => Just("POST".to_owned()),
        1 => Just("get".to_owned()),
        1 => Just(String::new()),
        1 => re("[A-Z]{1,8}"),
    ];
    let target_piece = prop_oneof![
        4 => re("[a-zA-Z0-9._~-]{1,6}"),
        8 => prop::sample::select(vec![
            "/", "/", "/", "http://", "@", "[::1]", ":8080", "?q=1&x", "%0d%0a", "\\",
            "..", "/.well-known/acme-challenge/",
        ])
        .prop_map(str::to_owned),
        1 => re("[\\x00-\\x7f]{1,3}"),
        1 => re(".{1,2}"),
    ];
    let target = (
        prop_oneof![
            4 => Just("/"),
            2 => Just("/.well-known/acme-challenge/"),
            2 => Just("http://"),
            1 => Just("http://[::1]"),
            1 => Just(""),
        ],
        prop::collection::vec(target_piece, 0..10),
    )
        .prop_map(|(lead, pieces)| format!("{lead}{}", pieces.concat()));
    let version = prop_oneof![
        6 => Just("HTTP/1.1".to_owned()),
        2 => Just("HTTP/1.0".to_owned()),
        1 => Just("HTTP/2".to_owned()),
        1 => re("[ -~]{0,10}"),
    ];
    let host_value = prop_oneof![
        3 => re("[a-zA-Z0-9.-]{1,20}(:[0-9]{1,5})?"),
        1 => re("\\[[0-9a-fA-F:.]{0,20}\\](:[0-9]{1,5})?"),
        1 => re("\\[[ -~]{0,10}\\]?[ -~]{0,6}"),
        1 => re("[a-z.]{1,10}[@/ \\\\?#\\t][a-z.]{0,10}"),
        1 => re("[\\x00-\\x7f]{0,30}"),
        1 => re(".{0,20}"),
        1 => re("[a-z]{254,300}"),
    ];
    let header = (
        prop_oneof![
            4 => Just("Host"),
            1 => Just("host"),
            1 => Just("HOST"),
            1 => Just("X-Other"),
            1 => Just(""),
        ],
        prop_oneof![4 => Just(": "), 1 => Just(":"), 1 => Just(" "), 1 => Just(":\t")],
        host_value,
        prop_oneof![4 => Just("\r\n"), 1 => Just("\n"), 1 => Just("\r")],
    )
        .prop_map(|(n, sep, v, eol)| format!("{n}{sep}{v}{eol}"));
    (
        method,
        prop_oneof![6 => Just(" "), 1 => Just("  "), 1 => Just("\t")],
        target,
        version,
        prop_oneof![4 => Just("\r\n"), 1 => Just("\n")],
        prop::collection::vec(header, 0..4),
        prop_oneof![4 => Just("\r\n"), 1 => Just("\n"), 1 => Just("")],
    )
        .prop_map(|(m, sp, t, v, eol, headers, end)| {
            format!("{m}{sp}{t} {v}{eol}{}{end}", headers.concat()).into_bytes()
        })
}

fn socket_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port))),
        (any::<u128>(), any::<u16>(), any::<u32>()).prop_map(|(ip, port, scope)| {
            SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, scope))
        }),
    ]
}

fn https_port() -> impl Strategy<Value = u16> {
    prop_oneof![Just(443u16), Just(8443u16), any::<u16>()]
}

/// A host `parse_head` may return: a lowercase hostname or a bracketed IPv6 literal.
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

/// Checks everything promised about a parsed plaintext request and the URL built from it,
/// and about the ACME HTTP-01 token it may ask for.
fn check_plain_request(
    req: &PlainRequest,
    local: SocketAddr,
    port: u16,
) -> Result<(), TestCaseError> {
    prop_assert!(
        !req.method.is_empty() && req.method.bytes().all(|b| b.is_ascii_uppercase()),
        "{req:?}"
    );
    if let Some(token) = plaintext::acme_challenge_token(req) {
        prop_assert!(req.method == "GET" || req.method == "HEAD", "{req:?}");
        let path = req.target.split('?').next().unwrap_or_default();
        prop_assert_eq!(path, format!("{}{token}", plaintext::ACME_CHALLENGE_PATH));
        // A token the lookup accepts can name nothing but a file in its directory.
        if challenge::valid_token(token) {
            prop_assert!(token.len() <= challenge::MAX_TOKEN, "{token:?}");
            prop_assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{token:?}"
            );
        }
        prop_assert_eq!(Challenges::new(None).http_answer(token), None);
    }
    prop_assert!(req.target.starts_with('/'), "{req:?}");
    prop_assert!(
        req.target.bytes().all(|b| (0x21..=0x7e).contains(&b)),
        "{req:?}"
    );
    if let Some(h) = &req.host {
        prop_assert!(host_is_clean(h), "{req:?}");
    }
    let url = plaintext::https_url(req, local, port);
    prop_assert!(url.starts_with("https://"), "{url:?}");
    prop_assert!(
        !url.contains(['\r', '\n']) && !url.chars().any(char::is_whitespace),
        "{url:?}"
    );
    prop_assert!(!url.chars().any(char::is_control), "{url:?}");
    // The authority (up to the target's leading '/') is exactly host[:port]: no '@'
    // userinfo, nothing a crafted Host header could smuggle in. The target itself may
    // contain '@' (a legal path character), which cannot change where the URL points.
    let rest = &url["https://".len()..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    prop_assert!(!authority.contains('@'), "{url:?}");
    prop_assert_eq!(&rest[authority.len()..], req.target.as_str());
    let host = req.host.clone().unwrap_or_else(|| match local {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    });
    let expected = if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    };
    prop_assert_eq!(authority, expected.as_str());
    Ok(())
}

/// `Accept-Encoding`-like values built from known and unknown codings and q parameters.
fn accept_encoding_header() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        Just("br"),
        Just("BR"),
        Just("gzip"),
        Just("x-gzip"),
        Just("identity"),
        Just("*"),
        Just("deflate"),
        Just("zstd"),
        Just(""),
    ];
    let param = prop::sample::select(vec![
        ";q=0",
        ";q=1",
        ";q=0.5",
        ";q=1.000",
        ";Q=0.001",
        ";q=2",
        ";q=",
        ";q=0.1234",
        ";q=1.001",
        "; q=0.9",
        ";level=1",
        ";",
    ]);
    prop::collection::vec(
        (ows(), name, prop::collection::vec(param, 0..3), ows()),
        0..8,
    )
    .prop_map(|items| {
        items
            .into_iter()
            .map(|(w1, n, ps, w2)| format!("{w1}{n}{}{w2}", ps.concat()))
            .collect::<Vec<_>>()
            .join(",")
            .into_bytes()
    })
}

fn available() -> impl Strategy<Value = Vec<Encoding>> {
    prop::collection::vec(
        prop_oneof![
            Just(Encoding::Brotli),
            Just(Encoding::Gzip),
            Just(Encoding::Identity)
        ],
        0..4,
    )
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    // --- totality: nothing a peer sends panics -------------------------------------------

    #[test]
    fn sniff_classify_is_total(input in bytes()) {
        let _ = sniff::classify(&input);
    }

    #[test]
    fn plaintext_is_total_on_arbitrary_bytes(
        input in bytes(),
        local in socket_addr(),
        port in https_port(),
    ) {
        let _ = plaintext::head_complete(&input);
        if let Some(req) = plaintext::parse_head(&input) {
            let _ = plaintext::https_url(&req, local, port);
        }
    }

    #[test]
    fn path_functions_are_total(
        input in bytes(),
        s in re(".{0,64}"),
        p in path_like(),
    ) {
        let lossy = String::from_utf8_lossy(&input);
        for text in [&*lossy, s.as_str(), p.as_str()] {
            let _ = path::decode(text);
            let _ = path::has_extension(text);
            let slashed = format!("/{text}");
            if let Ok(d) = path::decode(&slashed) {
                let _ = path::has_extension(&d);
            }
        }
    }

    #[test]
    fn range_parse_is_total(
        input in bytes(),
        header in range_header(),
        len in length(),
    ) {
        let _ = range::parse(&input, len);
        let _ = range::parse(header.as_bytes(), len);
        let mut prefixed = b"bytes=".to_vec();
        prefixed.extend_from_slice(&input);
        let _ = range::parse(&prefixed, len);
    }

    #[test]
    fn encoding_negotiate_is_total(
        input in bytes(),
        header in accept_encoding_header(),
        avail in available(),
    ) {
        let _ = encoding::negotiate(Some(&input), &avail);
        let _ = encoding::negotiate(Some(&header), &avail);
        let _ = encoding::negotiate(None, &avail);
    }

    // --- range::parse --------------------------------------------------------------------

    #[test]
    fn range_satisfiable_results_are_well_formed(
        header in range_header(),
        len in length(),
    ) {
        if let Ranges::Satisfiable(v) = range::parse(header.as_bytes(), len) {
            prop_assert!(!v.is_empty() && v.len() <= MAX_RANGES, "{v:?}");
            for r in &v {
                prop_assert!(r.start < r.end, "empty range in {v:?}");
                prop_assert!(r.end <= len, "{v:?} beyond {len}");
            }
            for w in v.windows(2) {
                // Sorted, non-overlapping and non-adjacent (adjacent ones are merged).
                prop_assert!(w[0].end < w[1].start, "{v:?}");
            }
        }
    }

    #[test]
    fn range_single_closed_spec_is_exact(
        len in prop_oneof![1u64..5000, 1u64..=u64::MAX],
        x in any::<u64>(),
        y in any::<u64>(),
        w in ows(),
    ) {
        let (a, b) = (x.min(y) % len, x.max(y) % len);
        let (a, b) = (a.min(b), a.max(b));
        let header = format!("bytes={w}{a}-{b}{w}");
        prop_assert_eq!(
            range::parse(header.as_bytes(), len),
            Ranges::Satisfiable(vec![a..b + 1])
        );
    }

    #[test]
    fn range_single_suffix_spec_is_exact(
        len in prop_oneof![1u64..5000, 1u64..=u64::MAX],
        n in prop_oneof![1u64..5000, 1u64..=u64::MAX],
    ) {
        let header = format!("bytes=-{n}");
        prop_assert_eq!(
            range::parse(header.as_bytes(), len),
            Ranges::Satisfiable(vec![len - n.min(len)..len])
        );
    }

    #[test]
    fn range_well_formed_specs_match_a_reference(
        specs in prop_oneof![
            3 => prop::collection::vec(spec(), 1..6),
            1 => prop::collection::vec(spec(), 1..40),
        ],
        len in prop_oneof![1 => length(), 1 => 0u64..30],
    ) {
        let header = format!(
            "bytes={}",
            specs.iter().map(|s| s.text()).collect::<Vec<_>>().join(", ")
        );
        let expected = merge(specs.iter().map(|s| s.clipped(len)).collect());
        let got = range::parse(header.as_bytes(), len);
        if expected.is_empty() {
            prop_assert_eq!(got, Ranges::Unsatisfiable);
        } else if expected.len() > MAX_RANGES {
            prop_assert_eq!(got, Ranges::Ignore);
        } else {
            prop_assert_eq!(got, Ranges::Satisfiable(expected));
        }
    }

    // --- path::decode --------------------------------------------------------------------

    #[test]
    fn path_decode_accepts_only_safe_paths(
        p in path_like(),
        s in re(".{0,40}"),
    ) {
        for raw in [p.as_str(), s.as_str()] {
            if let Ok(d) = path::decode(raw) {
                assert_safe_decoded(&d)?;
            }
        }
    }

    #[test]
    fn path_decode_is_idempotent_on_decoded_paths(p in path_like()) {
        // A decoded path without '%' is its own decoding (escapes are decoded exactly once,
        // so a decoded '%' may legitimately be malformed on a second pass).
        if let Ok(d) = path::decode(&p) {
            if !d.contains('%') {
                prop_assert_eq!(path::decode(&d), Ok(d.clone()));
            }
        }
    }

    #[test]
    fn path_safe_paths_decode_to_themselves(p in safe_path()) {
        let d = path::decode(&p);
        prop_assert!(matches!(d, Ok(std::borrow::Cow::Borrowed(s)) if s == p), "{p:?}");
        let d = path::decode(&p).unwrap();
        prop_assert_eq!(path::decode(&d), Ok(d.clone()));
    }

    #[test]
    fn path_percent_encoded_safe_paths_round_trip(
        p in safe_path(),
        mask in prop::collection::vec(any::<(bool, bool)>(), 64..65),
    ) {
        // Encode every byte of every segment (`all`), or a mix, in upper or lower case hex;
        // the separators stay literal ('%2F' is refused by design).
        for all in [true, false] {
            let mut enc = String::new();
            for (i, b) in p.bytes().enumerate() {
                let (encode, lower) = mask[i % mask.len()];
                if b == b'/' {
                    enc.push('/');
                } else if all || encode || !b.is_ascii() {
                    if lower {
                        enc.push_str(&format!("%{b:02x}"));
                    } else {
                        enc.push_str(&format!("%{b:02X}"));
                    }
                } else {
                    enc.push(char::from(b));
                }
            }
            let decoded = path::decode(&enc);
            prop_assert_eq!(decoded.as_deref(), Ok(p.as_str()), "{}", enc);
        }
    }

    // --- sniff::classify -----------------------------------------------------------------

    #[test]
    fn sniff_tls_record_prefix_is_tls(rest in bytes()) {
        let mut input = vec![0x16, 0x03];
        input.extend_from_slice(&rest);
        prop_assert_eq!(sniff::classify(&input), Sniff::Tls);
    }

    #[test]
    fn sniff_prefixes_of_a_request_line(n in 0usize..=16, tail in bytes()) {
        let line = b"GET / HTTP/1.1";
        let prefix = &line[..n.min(line.len())];
        let got = sniff::classify(prefix);
        prop_assert!(got == Sniff::NeedMore || got == Sniff::Http, "{prefix:?}: {got:?}");
        if prefix.len() >= 4 {
            // Once the method and its space are in, anything may follow.
            let mut more = prefix.to_vec();
            more.extend_from_slice(&tail);
            prop_assert_eq!(sniff::classify(&more), Sniff::Http);
        }
    }

    #[test]
    fn sniff_never_needs_more_than_max_sniff(
        input in prop::collection::vec(any::<u8>(), MAX_SNIFF..MAX_SNIFF + 64),
        method in prop_oneof![
            Just(&b"GET "[..]), Just(&b"OPTIONS "[..]), Just(&b"CONNECT "[..]),
            Just(&b"PRI "[..]), Just(&b"OPTIONS"[..]), Just(&b"\x16"[..]),
        ],
        cut in 0usize..=MAX_SNIFF,
    ) {
        prop_assert_ne!(sniff::classify(&input), Sniff::NeedMore);
        // Near misses: a method (or a prefix of one) padded to MAX_SNIFF bytes.
        let mut near = method[..cut.min(method.len())].to_vec();
        near.extend_from_slice(&input);
        near.truncate(MAX_SNIFF + 8);
        prop_assert_ne!(sniff::classify(&near), Sniff::NeedMore);
    }

    // --- plaintext -----------------------------------------------------------------------

    #[test]
    fn plaintext_parsed_requests_and_urls_are_safe(
        head in plain_head(),
        input in bytes(),
        local in socket_addr(),
        port in https_port(),
    ) {
        for buf in [&head[..], &input[..]] {
            let _ = plaintext::head_complete(buf);
            if let Some(req) = plaintext::parse_head(buf) {
                check_plain_request(&req, local, port)?;
            }
        }
    }

    // --- encoding::negotiate -------------------------------------------------------------

    #[test]
    fn encoding_result_is_identity_or_available(
        header in accept_encoding_header(),
        input in bytes(),
        avail in available(),
    ) {
        for h in [Some(&header[..]), Some(&input[..]), None] {
            let got = encoding::negotiate(h, &avail);
            prop_assert!(
                got == Encoding::Identity || avail.contains(&got),
                "{got:?} not in {avail:?}"
            );
        }
    }

    #[test]
    fn encoding_q_zero_for_all_but_identity_gives_identity(
        items in prop::collection::vec(
            (
                prop_oneof![
                    Just("br"), Just("BR"), Just("gzip"), Just("x-gzip"), Just("*"),
                    Just("deflate"), Just("zstd"),
                ],
                prop_oneof![
                    Just("q=0"), Just("Q=0"), Just("q=0."), Just("q=0.0"), Just("q=0.00"),
                    Just("q=0.000"),
                ],
                ows(),
            ),
            1..8,
        ),
        identity in prop_oneof![
            Just(None), Just(Some("identity")), Just(Some("identity;q=0.5")),
            Just(Some("identity;q=0")), Just(Some("IDENTITY;q=1")),
        ],
        at in any::<prop::sample::Index>(),
        avail in available(),
    ) {
        let mut parts: Vec<String> = items
            .into_iter()
            .map(|(name, q, w)| format!("{w}{name}{w};{w}{q}{w}"))
            .collect();
        if let Some(id) = identity {
            let i = at.index(parts.len() + 1);
            parts.insert(i, id.to_owned());
        }
        let header = parts.join(",");
        prop_assert_eq!(
            encoding::negotiate(Some(header.as_bytes()), &avail),
            Encoding::Identity,
            "{}",
            header
        );
    }
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol header (server/proxy.rs)
// ---------------------------------------------------------------------------------------------

/// Arbitrary bytes, often behind a PROXY prefix so that the parser gets past its first check.
fn proxyish() -> impl Strategy<Value = Vec<u8>> {
    let prefix = prop_oneof![
        Just(Vec::new()),
        Just(b"PROXY ".to_vec()),
        Just(b"PROXY TCP4 ".to_vec()),
        Just(b"PROXY TCP6 ".to_vec()),
        Just(b"PROXY UNKNOWN".to_vec()),
        Just(V2_SIGNATURE.to_vec()),
        (0x20u8..0x22, 0u8..0x40).prop_map(|(vc, fam)| [&V2_SIGNATURE[..], &[vc, fam]].concat()),
    ];
    (prefix, bytes()).prop_map(|(p, rest)| [p, rest].concat())
}

/// A client and a destination address of the same family.
fn address_pair() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    prop_oneof![
        (any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>()).prop_map(|(a, p, b, q)| (
            SocketAddr::new(Ipv4Addr::from(a).into(), p),
            SocketAddr::new(Ipv4Addr::from(b).into(), q),
        )),
        (any::<u128>(), any::<u16>(), any::<u128>(), any::<u16>()).prop_map(|(a, p, b, q)| (
            SocketAddr::new(Ipv6Addr::from(a).into(), p),
            SocketAddr::new(Ipv6Addr::from(b).into(), q),
        )),
    ]
}

fn proxy_v1(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let family = if src.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// TLVs: (type, value) pairs that the parser must skip.
fn tlvs() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    prop::collection::vec(
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40)),
        0..4,
    )
}

fn proxy_v2(src: SocketAddr, dst: SocketAddr, tlvs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    let family = match (src, dst) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            body.extend_from_slice(&s.ip().octets());
            body.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => unreachable!("address_pair gives one family"),
    };
    body.extend_from_slice(&src.port().to_be_bytes());
    body.extend_from_slice(&dst.port().to_be_bytes());
    for (kind, value) in tlvs {
        body.push(*kind);
        body.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, family]);
    h.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
    h.extend_from_slice(&body);
    h
}

/// A valid v1 or v2 header and the client address it carries.
fn proxy_header() -> impl Strategy<Value = (Vec<u8>, SocketAddr)> {
    (address_pair(), tlvs(), any::<bool>()).prop_map(|((src, dst), tlvs, v2)| {
        let h = if v2 {
            proxy_v2(src, dst, &tlvs)
        } else {
            proxy_v1(src, dst)
        };
        (h, src)
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn proxy_parse_is_total_and_consumes_at_most_the_input(input in proxyish()) {
        match proxy::parse(&input) {
            Ok(h) => {
                prop_assert!(h.consumed <= input.len());
                prop_assert!(h.consumed >= 15, "shortest header is PROXY UNKNOWN\\r\\n");
                prop_assert!(h.consumed <= V2_MAX);
                prop_assert!(proxy::looks_like_proxy(&input));
                prop_assert!(proxy::is_proxy_start(&input));
            }
            Err(Parse::NeedMore) => {
                prop_assert!(input.is_empty() || proxy::looks_like_proxy(&input));
                prop_assert!(input.len() < V2_MAX);
            }
            Err(Parse::Invalid(why)) => prop_assert!(!why.is_empty()),
        }
        if !input.is_empty() && !proxy::looks_like_proxy(&input) {
            prop_assert!(matches!(proxy::parse(&input), Err(Parse::Invalid(_))));
        }
    }

    #[test]
    fn proxy_valid_headers_round_trip_and_leave_what_follows(
        (header, src) in proxy_header(),
        tail in bytes(),
    ) {
        let buf = [&header[..], &tail[..]].concat();
        let got = proxy::parse(&buf);
        prop_assert!(got.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(&header), got);
        let got = got.unwrap();
        prop_assert_eq!(got.consumed, header.len());
        prop_assert_eq!(got.source, Some(src));
        prop_assert_eq!(&buf[got.consumed..], &tail[..]);
    }

    #[test]
    fn proxy_header_split_anywhere_needs_more_then_parses((header, src) in proxy_header()) {
        for k in 0..header.len() {
            prop_assert_eq!(proxy::parse(&header[..k]), Err(Parse::NeedMore), "cut at {}", k);
        }
        let got = proxy::parse(&header).map(|h| (h.consumed, h.source));
        prop_assert_eq!(got, Ok((header.len(), Some(src))));
    }
}

// ---------------------------------------------------------------------------------------------
// Site rules (rules/): `_headers`, `_redirects` and their patterns
// ---------------------------------------------------------------------------------------------

/// Pattern-like text: the pieces patterns are made of, sometimes misplaced, and junk.
fn pattern_like() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => re("[a-z0-9._-]{0,6}"),
        2 => Just(":".to_string()),
        2 => re(":[a-z_]{1,4}"),
        2 => Just("*".to_string()),
        1 => re("[^/]{0,4}"),
    ];
    let path = prop::collection::vec((piece, any::<bool>()), 0..6).prop_map(|parts| {
        parts
            .into_iter()
            .map(|(p, slash)| if slash { format!("/{p}") } else { p })
            .collect::<String>()
    });
    (
        prop_oneof![
            6 => Just("".to_string()),
            1 => Just("https://".to_string()),
            1 => Just("http://example.com".to_string()),
            1 => Just("https://:sub.example.com".to_string()),
            1 => re("https?://[a-z:.*0-9]{0,12}"),
        ],
        prop_oneof![8 => Just("/".to_string()), 1 => Just("".to_string()), 1 => re(".{0,2}")],
        path,
    )
        .prop_map(|(host, slash, path)| format!("{host}{slash}{path}"))
}

/// Rules-file-like text: lines from both grammars, well-formed and not, with CRLF, a BOM,
/// indentation, comments and junk.
fn rules_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        3 => pattern_like(),
        3 => (ows(), re("[A-Za-z-]{0,8}"), re("[ -~]{0,12}"))
            .prop_map(|(w, n, v)| format!(" {w}{n}: {v}")),
        1 => re("[A-Za-z-]{0,8}").prop_map(|n| format!("  ! {n}")),
        1 => re("[a-z]{0,3}:[$./A-Za-z0-9]{0,60}").prop_map(|c| format!("  Basic-Auth: {c}")),
        3 => (pattern_like(), prop::collection::vec(re("[a-zA-Z]{0,4}=:?[a-z]{0,3}"), 0..3),
              pattern_like(), re("[0-9]{0,3}!?"))
            .prop_map(|(from, q, to, status)| format!("{from} {} {to} {status}", q.join(" "))),
        1 => re("#.{0,10}"),
        1 => Just(String::new()),
        1 => re(".{0,20}"),
    ];
    (
        prop::collection::vec(line, 0..16),
        prop_oneof![Just("\n"), Just("\r\n")],
        any::<bool>(),
    )
        .prop_map(|(lines, eol, bom)| {
            let bom = if bom { "\u{feff}" } else { "" };
            format!("{bom}{}", lines.join(eol))
        })
}

/// Every error names a line of the text.
fn lines_in_range(errors: &[RuleError], text: &str) -> Result<(), TestCaseError> {
    let count = text.lines().count();
    for e in errors {
        prop_assert!(
            (1..=count).contains(&e.origin.line),
            "{e} outside 1..={count} of {text:?}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rules_parsers_are_total_and_name_lines_of_the_text(
        text in rules_text(),
        junk in bytes(),
    ) {
        let lossy = String::from_utf8_lossy(&junk);
        for text in [text.as_str(), &*lossy] {
            let headers = headers_file::parse("_headers", text);
            let redirects = redirects_file::parse("_redirects", text);
            if let Err(errors) = &headers {
                prop_assert!(!errors.is_empty());
                lines_in_range(errors, text)?;
            }
            if let Err(errors) = &redirects {
                prop_assert!(!errors.is_empty());
                lines_in_range(errors, text)?;
            }
            if let (Ok(h), Ok(r)) = (headers, redirects) {
                if let Ok(rules) = SiteRules::new(vec![], vec![], h, r) {
                    for path in ["/", "/a", "/a/b/", "/é"] {
                        let _ = rules.route(Some("example.com"), path, Some("a=1&b=%zz"), false);
                        let _ = rules.header_ops(None, path);
                        let _ = rules.may_force(path);
                        let _ = rules.depends_on_host(path);
                    }
                }
            }
        }
    }

    #[test]
    fn patterns_are_total_and_matching_never_panics(
        text in pattern_like(),
        junk in re(".{0,24}"),
        path in re("/[ -~]{0,40}"),
        host in re("[a-z.:]{0,12}"),
    ) {
        for text in [&text, &junk] {
            if let Ok(pattern) = Pattern::parse(text) {
                prop_assert_eq!(pattern.as_str(), text.as_str());
                let m = pattern.matches(Some(&host), &path);
                let _ = pattern.matches(None, &path);
                let by_path = pattern.matches_path(&path);
                if m.is_some() {
                    prop_assert!(by_path.is_some());
                }
                if let Some(c) = m {
                    let _ = expand(text, &c);
                    prop_assert_eq!(c.splat.is_some(), pattern.has_splat());
                }
            }
        }
    }

    #[test]
    fn a_literal_pattern_matches_exactly_its_own_text(
        lit in re("(/[A-Za-z0-9._~-]{0,6}){1,5}"),
        other in re("/[ -~]{0,30}"),
    ) {
        let pattern = Pattern::parse(&lit).unwrap();
        prop_assert!(pattern.matches(None, &lit).is_some());
        prop_assert_eq!(pattern.matches(None, &other).is_some(), other == lit);
        let longer = format!("{lit}/");
        prop_assert!(pattern.matches(None, &longer).is_none());
        prop_assert!(pattern.matches(None, &lit[..lit.len() - 1]).is_none());
        prop_assert_eq!(expand(&lit, &Default::default()), lit);
    }
}
