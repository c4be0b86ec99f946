//! `path::decode` + `has_extension` on arbitrary paths: never panics, and anything accepted
//! is absolute with no NUL, backslash, `.`/`..` or empty segments and no hidden segment but a
//! leading `.well-known`; a decoded path without `%` decodes to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::app::path::{decode, has_extension};

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let _ = has_extension(&raw);
    let Ok(p) = decode(&raw) else {
        return;
    };
    let _ = has_extension(&p);
    assert!(p.starts_with('/'), "{p:?}");
    assert!(!p.contains(['\0', '\\']), "{p:?}");
    let segments: Vec<&str> = p[1..].split('/').collect();
    for (i, seg) in segments.iter().enumerate() {
        assert!(*seg != "." && *seg != "..", "{p:?}");
        assert!(!seg.is_empty() || i + 1 == segments.len(), "{p:?}");
        assert!(
            !seg.starts_with('.') || (i == 0 && *seg == ".well-known"),
            "{p:?}"
        );
    }
    if !p.contains('%') {
        assert_eq!(decode(&p).as_deref(), Ok(&*p));
    }
});
