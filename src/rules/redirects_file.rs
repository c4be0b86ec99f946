//! The `_redirects` file: one rule per line, `from [query conditions] to [status[!]]`.
//!
//! ```text
//! # a comment
//! /home               /                  301
//! /blog/*             /news/:splat       302
//! /admin/*            /admin/index.html  200
//! /old                /new               301!
//! /store id=:id       /blog/:id          301
//! https://www.example.com/*  https://example.com/:splat  301!
//! ```
//!
//! The grammar (Netlify's): fields split on whitespace; the first is the `from` pattern;
//! `name=value` fields before the target are query conditions (`name=:placeholder`
//! captures the value); then the target (a path, or an `http(s)://` URL for a redirect);
//! then an optional status, 301 by default, one of [`RULE_STATUSES`](super::RULE_STATUSES),
//! with `!` to force it over an existing file. Blank lines and lines starting with `#` are
//! skipped. Netlify's `Country=`, `Language=`, `Role=` and `Cookie=` conditions and
//! proxying (a `200` to another origin) are refused, not ignored. A UTF-8 byte order mark
//! and `\r\n` endings are accepted. The parser is total: any text gives rules or errors,
//! each error with its line, and a file over [`MAX_RULES`] rules or with a line over
//! [`MAX_LINE`] bytes is refused.

use http::StatusCode;

use super::{
    numbered_lines, rule_status, statuses_list, target_problem, Origin, Pattern, QueryCondition,
    QueryValue, RedirectRule, RuleError, MAX_LINE,
};

/// The most rules a `_redirects` file may have.
pub const MAX_RULES: usize = 10_000;

/// Netlify's conditions other than the query, which rampart cannot evaluate.
const UNSUPPORTED_CONDITIONS: [&str; 4] = ["country", "language", "role", "cookie"];

/// Parses the text of a `_redirects` file named `file` (for origins and errors). Every
/// problem is reported, each with its line; on any error no rule is returned.
///
/// # Errors
/// Every line that cannot be read, each as a [`RuleError`].
pub fn parse(file: &str, text: &str) -> Result<Vec<RedirectRule>, Vec<RuleError>> {
    let file: std::sync::Arc<str> = file.into();
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    let mut count = 0;
    for (line, text) in numbered_lines(text) {
        let origin = Origin::new(file.clone(), line);
        if text.len() > MAX_LINE {
            errors.push(RuleError::new(
                origin,
                format!("the line is longer than {MAX_LINE} bytes"),
            ));
            continue;
        }
        let trimmed = text.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        count += 1;
        if count > MAX_RULES {
            errors.push(RuleError::new(
                origin,
                format!("more than {MAX_RULES} rules; use placeholders and splats to join rules"),
            ));
            break;
        }
        match rule(origin.clone(), trimmed) {
            Ok(rule) => rules.push(rule),
            Err(reasons) => errors.extend(
                reasons
                    .into_iter()
                    .map(|r| RuleError::new(origin.clone(), r)),
            ),
        }
    }
    if errors.is_empty() {
        Ok(rules)
    } else {
        Err(errors)
    }
}

/// Whether a field is a condition (`name=value`) rather than a target.
fn is_condition(field: &str) -> bool {
    field.contains('=')
        && !field.starts_with('/')
        && !field.starts_with("http://")
        && !field.starts_with("https://")
}

/// The reason a condition cannot be used, or the query condition it is.
fn condition(field: &str) -> Result<QueryCondition, String> {
    let (name, value) = field.split_once('=').unwrap_or((field, ""));
    if UNSUPPORTED_CONDITIONS
        .iter()
        .any(|c| c.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "{field}: conditions on Country/Language/Role/Cookie are not supported"
        ));
    }
    if name.is_empty() {
        return Err(format!(
            "{field:?}: a query condition needs a parameter name, `name=value`"
        ));
    }
    let value = QueryValue::parse(value, |v| super::percent::decode(v, true)).map_err(|()| {
        format!("{field:?}: a captured value is `name=:placeholder` (letters, digits and _)")
    })?;
    Ok(QueryCondition {
        name: name.to_owned(),
        value,
    })
}

/// One rule line (trimmed, not blank, not a comment), or every reason it is wrong.
fn rule(origin: Origin, line: &str) -> Result<RedirectRule, Vec<String>> {
    let mut reasons = Vec::new();
    let mut fields = line.split_whitespace();
    let from = fields
        .next()
        .map(Pattern::parse)
        .unwrap_or_else(|| Err("the line is empty".into()))
        .map_err(|r| reasons.push(r))
        .ok();
    let mut fields = fields.peekable();
    let mut query = Vec::new();
    while let Some(field) = fields.next_if(|f| is_condition(f)) {
        match condition(field) {
            Ok(c) => query.push(c),
            Err(r) => reasons.push(r),
        }
    }
    let Some(to) = fields.next() else {
        reasons.push("has no target: write `from to [status]`".into());
        return Err(reasons);
    };
    let (status, force) = match fields.next() {
        None => (Some(StatusCode::MOVED_PERMANENTLY), false),
        Some(field) => {
            let (digits, force) = field
                .strip_suffix('!')
                .map_or((field, false), |d| (d, true));
            let status = digits.parse::<i64>().ok().and_then(rule_status);
            if status.is_none() {
                reasons.push(if is_condition(field) {
                    match condition(field) {
                        Err(r) => r,
                        Ok(_) => format!(
                            "{field}: query conditions go between the pattern and the target"
                        ),
                    }
                } else {
                    format!(
                        "{field:?} is not a status: write one of {} (with ! to force)",
                        statuses_list()
                    )
                });
            }
            (status, force)
        }
    };
    for extra in fields {
        reasons.push(match condition(extra) {
            Err(r) if is_condition(extra) => r,
            _ => format!("unexpected {extra:?} after the status: a rule is `from to [status]`"),
        });
    }
    if let Some(status) = status {
        if let Some(problem) = target_problem(to, status) {
            reasons.push(problem);
        }
    }
    match (from, status) {
        (Some(from), Some(status)) if reasons.is_empty() => Ok(RedirectRule {
            origin,
            from,
            query,
            to: to.to_owned(),
            status,
            force,
        }),
        _ => Err(reasons),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(line: &str) -> RedirectRule {
        let mut rules = parse("_redirects", line).unwrap();
        assert_eq!(rules.len(), 1);
        rules.remove(0)
    }

    /// The errors as `line: reason`.
    fn errors(text: &str) -> Vec<String> {
        parse("_redirects", text)
            .unwrap_err()
            .into_iter()
            .map(|e| format!("{}: {}", e.origin.line, e.reason))
            .collect()
    }

    #[test]
    fn netlify_examples_become_rules() {
        let text = "# Redirects from what the browser requests to what we serve\n\
                    /home              /\n\
                    /blog/my-post.php  /blog/my-post\n\
                    /news              /blog                302\n\
                    /cuties            https://www.petsofnetlify.com\n\
                    /news/*            /blog/:splat\n\
                    /blog/:year/:month/:date/:slug  /posts/:year-:month-:date-:slug  301\n\
                    /*                 /index.html          200\n";
        let rules = parse("_redirects", text).unwrap();
        let got: Vec<(usize, &str, &str, u16, bool)> = rules
            .iter()
            .map(|r| {
                (
                    r.origin.line,
                    r.from.as_str(),
                    r.to.as_str(),
                    r.status.as_u16(),
                    r.force,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (2, "/home", "/", 301, false),
                (3, "/blog/my-post.php", "/blog/my-post", 301, false),
                (4, "/news", "/blog", 302, false),
                (5, "/cuties", "https://www.petsofnetlify.com", 301, false),
                (6, "/news/*", "/blog/:splat", 301, false),
                (
                    7,
                    "/blog/:year/:month/:date/:slug",
                    "/posts/:year-:month-:date-:slug",
                    301,
                    false
                ),
                (8, "/*", "/index.html", 200, false),
            ]
        );
        assert!(rules.iter().all(|r| r.query.is_empty()));
        assert!(rules[0].is_redirect() && !rules[6].is_redirect());
    }

    #[test]
    fn a_bang_forces_the_rule() {
        let rule = one("/app/*  /app/index.html  200!");
        assert_eq!((rule.status.as_u16(), rule.force), (200, true));
        assert!(!rule.is_redirect());
        assert!(one("/old /new 301!").force);
    }

    #[test]
    fn query_conditions_come_before_the_target() {
        let rule = one("/store id=:id  tab=reviews  /blog/:id  301");
        assert_eq!(
            rule.query,
            [
                QueryCondition {
                    name: "id".into(),
                    value: QueryValue::Capture("id".into())
                },
                QueryCondition {
                    name: "tab".into(),
                    value: QueryValue::Exact("reviews".into())
                },
            ]
        );
        assert_eq!(rule.to, "/blog/:id");
    }

    #[test]
    fn absolute_urls_and_host_patterns_are_read() {
        let rule = one("https://www.example.com/*  https://example.com/:splat  301!");
        assert!(rule.from.has_host());
        assert_eq!(rule.to, "https://example.com/:splat");
        assert!(rule.force);
    }

    #[test]
    fn a_byte_order_mark_crlf_and_tabs_are_accepted() {
        let rules = parse("_redirects", "\u{feff}/a\t/b\r\n\r\n/c /d 302\r\n").unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!((rules[1].origin.line, rules[1].status.as_u16()), (3, 302));
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let text = "/a\n\
                    /b /c 999\n\
                    /d /e abc\n\
                    /f https://other.example/f 200\n\
                    /g https://other.example/g 404\n\
                    /h /i 301 extra\n\
                    /j /k 302 Country=au,nz\n\
                    /l language=en /m\n\
                    old /n\n\
                    /o p\n\
                    /q =x /r\n\
                    /s id=: /t\n\
                    /u /v 301!x\n";
        assert_eq!(
            errors(text),
            [
                "1: has no target: write `from to [status]`",
                "2: \"999\" is not a status: write one of 200, 301, 302, 303, 307, 308, 404, 410 \
                 (with ! to force)",
                "3: \"abc\" is not a status: write one of 200, 301, 302, 303, 307, 308, 404, 410 \
                 (with ! to force)",
                "4: https://other.example/f: proxying to another origin is not supported; a 200 \
                 rewrite needs a local path",
                "5: https://other.example/g: proxying to another origin is not supported; a 404 \
                 page needs a local path",
                "6: unexpected \"extra\" after the status: a rule is `from to [status]`",
                "7: Country=au,nz: conditions on Country/Language/Role/Cookie are not supported",
                "8: language=en: conditions on Country/Language/Role/Cookie are not supported",
                "9: \"old\" must start with / (a path) or http:// or https:// (a URL)",
                "10: \"p\" must start with / (a path) or http:// or https:// (a URL)",
                "11: \"=x\": a query condition needs a parameter name, `name=value`",
                "12: \"id=:\": a captured value is `name=:placeholder` (letters, digits and _)",
                "13: \"301!x\" is not a status: write one of 200, 301, 302, 303, 307, 308, 404, \
                 410 (with ! to force)",
            ]
        );
    }

    #[test]
    fn a_condition_after_the_status_is_refused_in_words() {
        assert_eq!(
            errors("/a /b 301 Role=admin\n/c /d id=1\n"),
            [
                "1: Role=admin: conditions on Country/Language/Role/Cookie are not supported",
                "2: id=1: query conditions go between the pattern and the target",
            ]
        );
    }

    #[test]
    fn long_lines_and_too_many_rules_are_refused() {
        let long = format!("/a /{}\n/b /c\n", "x".repeat(MAX_LINE));
        assert_eq!(errors(&long), ["1: the line is longer than 2000 bytes"]);
        let many = "/a /b\n".repeat(MAX_RULES + 1);
        let errors = errors(&many);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("10001: more than 10000 rules"),
            "{errors:?}"
        );
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        assert_eq!(parse("_redirects", "# x\n\n   \n  # y\n"), Ok(vec![]));
    }

    #[test]
    fn non_ascii_text_gives_rules_or_errors_not_panics() {
        assert_eq!(one("/é /ü").to, "/ü");
        assert!(parse("_redirects", "/a /b é\n").is_err());
        assert!(parse("_redirects", "é\n").is_err());
    }
}
