//! `range::parse` with the first 8 bytes as the representation length (little-endian u64,
//! zero-padded) and the rest as the header: never panics, and satisfiable ranges are 1 to
//! MAX_RANGES non-empty, in-bounds, sorted ranges with gaps between them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::app::range::{parse, Ranges, MAX_RANGES};

fuzz_target!(|data: &[u8]| {
    let split = data.len().min(8);
    let mut len_bytes = [0u8; 8];
    len_bytes[..split].copy_from_slice(&data[..split]);
    let len = u64::from_le_bytes(len_bytes);
    let header = &data[split..];
    if let Ranges::Satisfiable(v) = parse(header, len) {
        assert!(!v.is_empty() && v.len() <= MAX_RANGES, "{v:?}");
        for r in &v {
            assert!(r.start < r.end && r.end <= len, "{v:?} for {len}");
        }
        for w in v.windows(2) {
            assert!(w[0].end < w[1].start, "{v:?}");
        }
    }
});
