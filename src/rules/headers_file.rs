//! The `_headers` file: blocks of a path line followed by indented `Name: value` lines.
//!
//! ```text
//! # a comment
//! /*
//!   X-Frame-Options: DENY
//!   Content-Security-Policy: default-src 'self'
//! /embed/*
//!   ! X-Frame-Options
//! /sw.js
//!   Cache-Control: no-cache
//! /staging/*
//!   Basic-Auth: alice:$2b$12$...
//! ```
//!
//! The grammar (Netlify's, with Cloudflare Pages' `! Name` detach): a line that starts
//! with a space or tab is a header line of the block above it, `Name: value` (split at the
//! first `:`), `Name:` (remove the header) or `! Name` (remove it); any other line that is
//! not blank or a `#` comment is the path pattern that starts a block. A name given twice
//! in a block is one header with both values joined by `, `. A UTF-8 byte order mark and
//! `\r\n` endings are accepted. The parser is total: any text gives rules or errors, each
//! error with its line, and a file over [`MAX_RULES`] rules or with a line over
//! [`MAX_LINE`] bytes is refused.

use super::{header_op, numbered_lines, HeaderRule, Origin, Pattern, RuleError, MAX_LINE};

/// The most rules (blocks) a `_headers` file may have.
pub const MAX_RULES: usize = 1000;

/// A block being read: its path line and, if the pattern was valid, the rule so far.
struct Block {
    line: usize,
    pattern: Option<Pattern>,
    ops: Vec<super::HeaderOp>,
    header_lines: usize,
}

/// Parses the text of a `_headers` file named `file` (for origins and errors). Every
/// problem is reported, each with its line; on any error no rule is returned.
///
/// # Errors
/// Every line that cannot be read, each as a [`RuleError`].
pub fn parse(file: &str, text: &str) -> Result<Vec<HeaderRule>, Vec<RuleError>> {
    let file: std::sync::Arc<str> = file.into();
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut block: Option<Block> = None;
    let mut blocks = 0;
    let finish = |block: Option<Block>,
                  rules: &mut Vec<HeaderRule>,
                  errors: &mut Vec<RuleError>| {
        let Some(block) = block else { return };
        let origin = Origin::new(file.clone(), block.line);
        let Some(pattern) = block.pattern else {
            return;
        };
        if block.header_lines == 0 {
            errors.push(RuleError::new(
                origin,
                format!("the block for {pattern} has no headers; indent its header lines below it"),
            ));
        } else {
            rules.push(HeaderRule {
                origin,
                pattern,
                ops: block.ops,
            });
        }
    };
    for (line, text) in numbered_lines(text) {
        let at = || Origin::new(file.clone(), line);
        if text.len() > MAX_LINE {
            if let (Some(current), true) = (block.as_mut(), text.starts_with([' ', '\t'])) {
                current.header_lines += 1;
            }
            errors.push(RuleError::new(
                at(),
                format!("the line is longer than {MAX_LINE} bytes"),
            ));
            continue;
        }
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if !text.starts_with([' ', '\t']) {
            finish(block.take(), &mut rules, &mut errors);
            blocks += 1;
            if blocks > MAX_RULES {
                errors.push(RuleError::new(
                    at(),
                    format!("more than {MAX_RULES} rules; join rules with the same headers under one pattern"),
                ));
                break;
            }
            let pattern = Pattern::parse(trimmed)
                .map_err(|reason| errors.push(RuleError::new(at(), reason)))
                .ok();
            block = Some(Block {
                line,
                pattern,
                ops: Vec::new(),
                header_lines: 0,
            });
            continue;
        }
        let Some(current) = block.as_mut() else {
            errors.push(RuleError::new(
                at(),
                "a header line needs a path above it: start the block with an unindented \
                 pattern such as /*",
            ));
            continue;
        };
        current.header_lines += 1;
        let op = if let Some(name) = trimmed.strip_prefix('!') {
            header_op::name(name.trim()).map(super::HeaderOp::Remove)
        } else if let Some((name, value)) = trimmed.split_once(':') {
            header_op::parse(name.trim(), value.trim())
        } else {
            Err(format!(
                "{trimmed:?} is not a header line: write `Name: value`, `Name:` or `! Name`"
            ))
        };
        match op {
            Ok(op) => header_op::push(&mut current.ops, op),
            Err(reason) => errors.push(RuleError::new(at(), reason)),
        }
    }
    finish(block, &mut rules, &mut errors);
    errors.sort_by_key(|e| e.origin.line);
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::rules::{HeaderOp, TEST_HASH};

    fn set(name: &'static str, value: &'static str) -> HeaderOp {
        HeaderOp::Set(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    }

    fn remove(name: &'static str) -> HeaderOp {
        HeaderOp::Remove(HeaderName::from_static(name))
    }

    /// The errors as `line: reason`.
    fn errors(text: &str) -> Vec<String> {
        parse("_headers", text)
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{}: {}", e.origin.line, e.reason))
            .collect()
    }

    #[test]
    fn blocks_become_rules_with_the_line_of_their_path() {
        let text = "# Netlify's example\n\
                    /*\n\
                    \x20 X-Frame-Options: DENY\n\
                    \x20 X-XSS-Protection: 1; mode=block\n\
                    \n\
                    /templates/index.html\n\
                    \t# a comment inside a block\n\
                    \tX-Robots-Tag: noindex\n";
        let rules = parse("_headers", text).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].origin, Origin::new("_headers", 2));
        assert_eq!(rules[0].pattern.as_str(), "/*");
        assert_eq!(
            rules[0].ops,
            [
                set("x-frame-options", "DENY"),
                set("x-xss-protection", "1; mode=block")
            ]
        );
        assert_eq!(rules[1].origin.line, 6);
        assert_eq!(rules[1].ops, [set("x-robots-tag", "noindex")]);
    }

    #[test]
    fn a_value_keeps_its_colons() {
        let rules = parse(
            "_headers",
            "/*\n  Link: <https://x.com/a.css>; rel=preload\n",
        )
        .unwrap();
        assert_eq!(
            rules[0].ops,
            [set("link", "<https://x.com/a.css>; rel=preload")]
        );
    }

    #[test]
    fn detach_and_an_empty_value_remove_the_header() {
        let rules = parse(
            "_headers",
            "/embed/*\n  ! X-Frame-Options\n  Content-Security-Policy:\n",
        )
        .unwrap();
        assert_eq!(
            rules[0].ops,
            [remove("x-frame-options"), remove("content-security-policy")]
        );
    }

    #[test]
    fn a_name_given_twice_in_a_block_is_one_header_with_both_values() {
        let text = "/*\n  Cache-Control: max-age=0\n  X-A: 1\n  cache-control: no-cache\n";
        let rules = parse("_headers", text).unwrap();
        assert_eq!(
            rules[0].ops,
            [set("cache-control", "max-age=0, no-cache"), set("x-a", "1")]
        );
    }

    #[test]
    fn basic_auth_takes_bcrypt_hashed_users() {
        let text = format!("/staging/*\n  Basic-Auth: ann:{TEST_HASH} bob:{TEST_HASH}\n");
        let rules = parse("_headers", &text).unwrap();
        let [HeaderOp::BasicAuth(users)] = rules[0].ops.as_slice() else {
            panic!("{:?}", rules[0].ops)
        };
        let names: Vec<&str> = users.iter().map(|u| u.user.as_str()).collect();
        assert_eq!(names, ["ann", "bob"]);
    }

    #[test]
    fn basic_auth_with_a_plaintext_password_says_how_to_hash_it() {
        let errors = errors("/*\n  X-A: 1\n\n/staging/*\n  basic-auth: ann:secret\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with("5: the password of ann is not a bcrypt hash"));
        assert!(errors[0].contains("rampart hash-password"));
        assert!(!errors[0].contains("secret"));
    }

    #[test]
    fn a_byte_order_mark_and_crlf_endings_are_accepted() {
        let rules = parse("_headers", "\u{feff}/a\r\n  X-A: 1\r\n/b\r\n  X-B: 2\r\n").unwrap();
        assert_eq!(rules[0].pattern.as_str(), "/a");
        assert_eq!(rules[0].ops, [set("x-a", "1")]);
        assert_eq!(rules[1].origin.line, 3);
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = "  X-Early: 1\n\
                    /ok\n\
                    \x20 X-A: 1\n\
                    /empty\n\
                    blog/*\n\
                    \x20 X-B: 2\n\
                    /bad\n\
                    \x20 Bad Name: x\n\
                    \x20 X-C: a\x01b\n\
                    \x20 no colon here\n\
                    \x20 ! \n\
                    \x20 Content-Length: 5\n\
                    /last\n";
        assert_eq!(
            errors(text),
            [
                "1: a header line needs a path above it: start the block with an unindented \
                 pattern such as /*",
                "4: the block for /empty has no headers; indent its header lines below it",
                "5: \"blog/*\" must start with / (a path) or http:// or https:// (a URL)",
                "8: \"Bad Name\" is not a valid header name",
                "9: \"a\\u{1}b\" is not a valid header value (visible ASCII, spaces and tabs only)",
                "10: \"no colon here\" is not a header line: write `Name: value`, `Name:` or \
                 `! Name`",
                "11: \"\" is not a valid header name",
                "12: Content-Length frames the message or belongs to the connection; the server \
                 writes it and a rule may not set or remove it",
                "13: the block for /last has no headers; indent its header lines below it",
            ]
        );
    }

    #[test]
    fn long_lines_and_too_many_rules_are_refused() {
        let long = format!("/a\n  X-A: {}\n", "x".repeat(MAX_LINE));
        assert_eq!(errors(&long), ["2: the line is longer than 2000 bytes"]);
        let many = "/a\n  X-A: 1\n".repeat(MAX_RULES + 1);
        let errors = errors(&many);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("2001: more than 1000 rules"),
            "{errors:?}"
        );
        assert!(parse("_headers", &"/a\n  X-A: 1\n".repeat(MAX_RULES)).is_ok());
    }

    #[test]
    fn an_empty_file_has_no_rules() {
        assert_eq!(parse("_headers", ""), Ok(vec![]));
        assert_eq!(parse("_headers", "# only a comment\n\n"), Ok(vec![]));
    }

    #[test]
    fn non_ascii_text_gives_errors_not_panics() {
        assert!(parse("_headers", "/é\n  X-É: ü\n").is_err());
        assert!(parse("_headers", "/é\n  X-A: 1\n").is_ok());
    }
}
