//! `sniff::classify` on arbitrary first bytes: never panics, TLS records are TLS, at most
//! `MAX_SNIFF` bytes are ever needed, and a decision never changes as more bytes arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::server::sniff::{classify, Sniff, MAX_SNIFF};

fuzz_target!(|data: &[u8]| {
    let got = classify(data);
    if data.starts_with(&[0x16, 0x03]) {
        assert_eq!(got, Sniff::Tls);
    }
    if data.len() >= MAX_SNIFF {
        assert_ne!(got, Sniff::NeedMore);
    }
    // Every shorter prefix either asked for more or already decided the same thing.
    for k in 0..data.len().min(MAX_SNIFF + 1) {
        let earlier = classify(&data[..k]);
        assert!(
            earlier == Sniff::NeedMore || earlier == got,
            "{:?} -> {earlier:?}, {data:?} -> {got:?}",
            &data[..k]
        );
    }
});
