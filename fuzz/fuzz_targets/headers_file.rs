//! `rules::headers_file::parse` on arbitrary text: never panics; on error, every error names
//! a line of the text; on success, every rule has an operation and a pattern that parses
//! back to itself and matches the paths it can (never panicking).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::rules::{headers_file, Pattern};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    match headers_file::parse("_headers", &text) {
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!((1..=lines).contains(&e.origin.line), "{e} of {lines} lines");
            }
        }
        Ok(rules) => {
            assert!(rules.len() <= headers_file::MAX_RULES);
            for rule in &rules {
                assert!(!rule.ops.is_empty(), "{rule:?}");
                assert!((1..=lines).contains(&rule.origin.line), "{rule:?}");
                assert_eq!(
                    Pattern::parse(rule.pattern.as_str()).as_ref(),
                    Ok(&rule.pattern)
                );
                for path in ["/", "/a", "/a/b/", "/\u{e9}"] {
                    let _ = rule.pattern.matches(Some("example.com"), path);
                }
            }
        }
    }
});
