//! `rules::redirects_file::parse` on arbitrary text: never panics; on error, every error
//! names a line of the text; on success, every status is one of `RULE_STATUSES`, a rewrite
//! or status page has a local target, and checking the rules together (loops) and routing
//! requests through them never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart::rules::{redirects_file, SiteRules, RULE_STATUSES};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count();
    let rules = match redirects_file::parse("_redirects", &text) {
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!((1..=lines).contains(&e.origin.line), "{e} of {lines} lines");
            }
            return;
        }
        Ok(rules) => rules,
    };
    assert!(rules.len() <= redirects_file::MAX_RULES);
    for rule in &rules {
        assert!(RULE_STATUSES.contains(&rule.status.as_u16()), "{rule:?}");
        assert!(rule.is_redirect() || rule.to.starts_with('/'), "{rule:?}");
    }
    let Ok(site) = SiteRules::new(vec![], vec![], vec![], rules) else {
        return;
    };
    for path in ["/", "/a", "/a/b/", "/\u{e9}"] {
        for file_exists in [false, true] {
            if let Some(routed) =
                site.route(Some("example.com"), path, Some("id=1&a=%zz"), file_exists)
            {
                assert!(routed.rule.force || !file_exists);
            }
        }
        let _ = site.may_force(path);
    }
});
