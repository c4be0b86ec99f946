//! `encoding::negotiate` with the first byte choosing the available codings and the rest as
//! the `Accept-Encoding` value: never panics and only ever picks identity or an available
//! coding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::app::encoding::{negotiate, Encoding};

fuzz_target!(|data: &[u8]| {
    let (&select, header) = data.split_first().unwrap_or((&0, &[]));
    let available: Vec<Encoding> = [Encoding::Brotli, Encoding::Gzip, Encoding::Identity]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| select & (1 << i) != 0)
        .map(|(_, e)| e)
        .collect();
    for h in [Some(header), None] {
        let got = negotiate(h, &available);
        assert!(
            got == Encoding::Identity || available.contains(&got),
            "{got:?} not in {available:?}"
        );
    }
});
