//! `proxy::parse` on arbitrary bytes: never panics; a header consumes at most the input,
//! lies within the caps, starts like a PROXY header and parses the same with anything after
//! it; every strict prefix of a header asks for more; a decision never changes as bytes
//! arrive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::server::proxy::{is_proxy_start, looks_like_proxy, parse, Parse, V1_MAX, V2_MAX};

fuzz_target!(|data: &[u8]| {
    let got = parse(data);
    match got {
        Ok(h) => {
            assert!(h.consumed <= data.len());
            assert!(h.consumed <= if h.version == 1 { V1_MAX } else { V2_MAX });
            assert!(is_proxy_start(data));
            // What follows the header never changes it.
            let mut more = data[..h.consumed].to_vec();
            more.extend_from_slice(b"\x16\x03\x01");
            assert_eq!(parse(&more), Ok(h));
            for k in 0..h.consumed {
                assert_eq!(parse(&data[..k]), Err(Parse::NeedMore), "cut at {k}");
            }
        }
        Err(Parse::NeedMore) => assert!(data.is_empty() || looks_like_proxy(data)),
        Err(Parse::Invalid(_)) => {
            // Once invalid, more bytes never make it valid.
            let mut more = data.to_vec();
            more.extend_from_slice(b"\r\n");
            assert!(matches!(parse(&more), Err(Parse::Invalid(_))));
        }
    }
});
