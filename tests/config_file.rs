//! The `--config` file's structured sections (`[[headers]]`, `[[redirects]]`), through the
//! library's own parser ([`rampart::config::parse_args`]) over a real file: a valid file
//! becomes typed rules with their lines, and every mistake is one
//! `rampart.toml:LINE: key: reason` line, with "did you mean" for misspelt names and the
//! expected type for a wrong one.

use rampart::cli::{Cli, Command};
use rampart::config::parse_args;
use rampart::rules::{HeaderOp, QueryCondition, QueryValue};

/// Parses `text` as the `--config` file of `rampart serve`.
fn parse(text: &str) -> Result<Cli, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, text).unwrap();
    let arg = path.to_str().unwrap();
    parse_args(["rampart", "--config", arg]).map_err(|e| {
        // The path is the temporary one: show it as the file's name alone.
        e.to_string()
            .replace(path.to_str().unwrap(), "rampart.toml")
    })
}

/// The problems in `text`, as the binary prints them (empty when there are none).
fn problems(text: &str) -> String {
    parse(text).err().unwrap_or_default()
}

#[test]
fn headers_and_redirects_sections_are_read_into_typed_rules_with_their_lines() {
    let text = "listen = [\"127.0.0.1:0\"]\n\
                \n\
                [[headers]]\n\
                for = \"/assets/*\"\n\
                values = { Cache-Control = \"public, max-age=31536000\", X-Robots-Tag = \"noindex\" }\n\
                \n\
                [[redirects]]\n\
                from = \"/old\"\n\
                to = \"https://example.com/new\"\n\
                status = 302\n\
                force = true\n\
                \n\
                [[redirects]]\n\
                from = \"/app/*\"\n\
                to = \"/index.html\"\n";
    let cli = parse(text).unwrap();
    assert_eq!(cli.serve.listen, ["127.0.0.1:0".parse().unwrap()]);
    let sections = cli.serve.file_sections;
    let [header] = sections.headers.as_slice() else {
        panic!("{sections:?}")
    };
    assert_eq!(
        (header.origin.line, header.pattern.as_str()),
        (3, "/assets/*")
    );
    assert!(header.origin.file.ends_with("rampart.toml"));
    let values: Vec<(&str, &str)> = header
        .ops
        .iter()
        .map(|op| match op {
            HeaderOp::Set(n, v) => (n.as_str(), v.to_str().unwrap()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        values,
        [
            ("cache-control", "public, max-age=31536000"),
            ("x-robots-tag", "noindex")
        ]
    );
    let [first, second] = sections.redirects.as_slice() else {
        panic!("{sections:?}")
    };
    assert_eq!(
        (first.origin.line, first.from.as_str(), first.to.as_str()),
        (7, "/old", "https://example.com/new")
    );
    assert_eq!((first.status.as_u16(), first.force), (302, true));
    assert_eq!(second.origin.line, 13);
    assert_eq!((second.status.as_u16(), second.force), (301, false));
}

#[test]
fn sections_reach_serve_and_check_through_parse_args() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rampart.toml");
    std::fs::write(&path, "[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\n").unwrap();
    let p = path.to_str().unwrap();
    let cli = parse_args(["rampart", "--config", p]).unwrap();
    assert_eq!(cli.serve.file_sections.redirects.len(), 1);
    let cli = parse_args(["rampart", "check", "--config", p]).unwrap();
    let Some(Command::Check(a)) = cli.command else {
        panic!("check expected")
    };
    let mut config = rampart::Config::from_cli_unvalidated(&a.serve).unwrap();
    assert_eq!(config.file_sections.redirects[0].to, "/b");
    // `rampart check` merges them with the root's rule files and reports the result.
    config.root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("www");
    let report = rampart::check::report(&config);
    let ok: Vec<String> = report
        .at(rampart::check::Level::Ok)
        .map(ToString::to_string)
        .collect();
    assert!(
        ok.iter().any(|w| w.contains("site rules")
            && w.contains("0 header rule(s) and 1 redirect rule(s) from the config file")),
        "{ok:?}"
    );
}

#[test]
fn a_section_of_the_wrong_kind_says_how_to_write_it() {
    assert_eq!(
        problems("root = \"www\"\n[redirects]\nfrom = \"/a\"\nto = \"/b\"\n"),
        "rampart.toml:2: redirects: is a table; write each entry as `[[redirects]]` \
         (an array of tables), not `[redirects]`"
    );
    assert_eq!(
        problems("headers = \"/x\"\n"),
        "rampart.toml:1: headers: expects an array of tables (`[[headers]]`), not \"/x\""
    );
}

#[test]
fn an_unknown_section_gets_a_did_you_mean() {
    assert_eq!(
        problems("[[redirect]]\nfrom = \"/a\"\nto = \"/b\"\n"),
        "rampart.toml:1: redirect: unknown section (sections: headers, redirects); \
         did you mean `redirects`?"
    );
    assert_eq!(
        problems("workers = 2\n[tls]\nciphers = \"x\"\n"),
        "rampart.toml:2: tls: unknown section (sections: headers, redirects)"
    );
}

#[test]
fn an_unknown_field_gets_a_did_you_mean() {
    assert_eq!(
        problems("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstauts = 301\n"),
        "rampart.toml:4: redirects.stauts: unknown field (fields of `redirects`: from, \
         to, status, force, query); did you mean `status`?"
    );
}

#[test]
fn a_field_of_the_wrong_type_names_the_expected_type() {
    assert_eq!(
        problems("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = \"301\"\n"),
        "rampart.toml:4: redirects.status: expects an integer, not \"301\""
    );
    assert_eq!(
        problems("[[headers]]\nfor = \"/\"\nvalues = { X-A = 1 }\n"),
        "rampart.toml:3: headers.values.X-A: expects a string, not 1"
    );
    assert_eq!(
        problems("[[headers]]\nfor = [\"/\"]\nvalues = { X-A = \"1\" }\n"),
        "rampart.toml:2: headers.for: expects a string, not a list"
    );
}

#[test]
fn values_that_can_never_work_are_refused_with_the_line() {
    assert_eq!(
        problems("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = 999\n"),
        "rampart.toml:4: redirects.status: 999 is not one of 200, 301, 302, 303, 307, 308, \
         404, 410"
    );
    assert_eq!(
        problems("[[redirects]]\nfrom = \"old\"\nto = \"/b\"\n"),
        "rampart.toml:2: redirects.from: \"old\" must start with / (a path) or http:// \
         or https:// (a URL)"
    );
    assert_eq!(
        problems("\n[[redirects]]\nfrom = \"/a\"\n"),
        "rampart.toml:2: redirects.to: is missing: every `redirects` entry needs a string"
    );
    let text =
        problems("[[headers]]\nfor = \"/\"\nvalues = { \"Bad Name\" = \"x\", X-B = \"a\\nb\" }\n");
    assert_eq!(
        text,
        "rampart.toml:3: headers.values.Bad Name: \"Bad Name\" is not a valid header name\n\
         rampart.toml:3: headers.values.X-B: \"a\\nb\" is not a valid header value \
         (visible ASCII, spaces and tabs only)"
    );
}

#[test]
fn section_and_flag_problems_are_reported_together_in_line_order() {
    assert_eq!(
        problems("workers = \"many\"\n[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nstatus = 1\n"),
        "rampart.toml:1: workers: \"many\": invalid digit found in string\n\
         rampart.toml:5: redirects.status: 1 is not one of 200, 301, 302, 303, 307, 308, \
         404, 410"
    );
}

#[test]
fn redirects_take_query_conditions_and_refuse_proxying() {
    let text = "[[redirects]]\nfrom = \"/store\"\nquery = { id = \":id\", tab = \"all\" }\n\
                to = \"/items/:id\"\n";
    let cli = parse(text).unwrap();
    let [rule] = cli.serve.file_sections.redirects.as_slice() else {
        panic!("one rule expected")
    };
    assert_eq!(
        rule.query,
        [
            QueryCondition {
                name: "id".into(),
                value: QueryValue::Capture("id".into())
            },
            QueryCondition {
                name: "tab".into(),
                value: QueryValue::Exact("all".into())
            }
        ]
    );
    assert_eq!(
        problems(
            "[[redirects]]\nfrom = \"/a\"\nto = \"https://api.example.com/a\"\nstatus = 200\n"
        ),
        "rampart.toml:3: redirects.to: https://api.example.com/a: proxying to another origin \
         is not supported; a 200 rewrite needs a local path"
    );
    assert_eq!(
        problems("[[redirects]]\nfrom = \"/a\"\nto = \"/b\"\nquery = { id = \":\" }\n"),
        "rampart.toml:4: redirects.query.id: \":\": a captured value is `:placeholder` \
         (letters, digits and _)"
    );
}

#[test]
fn patterns_are_checked_by_the_site_rules_parser() {
    assert_eq!(
        problems("[[headers]]\nfor = \"/*/*\"\nvalues = { X-A = \"1\" }\n"),
        "rampart.toml:2: headers.for: \"/*/*\" has more than one *; a pattern has at most one \
         splat"
    );
    assert_eq!(
        problems("[[redirects]]\nfrom = \"/:id.json\"\nto = \"/b\"\n"),
        "rampart.toml:2: redirects.from: \"/:id.json\": the placeholder in \":id.json\" is \
         mixed with other text; a placeholder is a whole segment (or host label), `:name` \
         (letters, digits and _)"
    );
}

#[test]
fn headers_take_removal_and_bcrypt_basic_auth() {
    let hash = "$2b$10$rXJ3m1ZpQ3sQk8v3C6mD2OQx0iQb1VJw8m0a4lXJjv3a6yQ0mKx3u";
    let text = format!(
        "[[headers]]\nfor = \"/staging/*\"\nvalues = {{ X-Frame-Options = \"\", \
         Basic-Auth = \"ann:{hash}\" }}\n"
    );
    let cli = parse(&text).unwrap();
    let [rule] = cli.serve.file_sections.headers.as_slice() else {
        panic!("one rule expected")
    };
    assert_eq!(rule.ops.len(), 2, "{:?}", rule.ops);
    assert!(rule
        .ops
        .iter()
        .any(|op| matches!(op, HeaderOp::Remove(n) if n == "x-frame-options")));
    assert!(rule
        .ops
        .iter()
        .any(|op| matches!(op, HeaderOp::BasicAuth(users) if users[0].user == "ann")));
    assert_eq!(
        problems("[[headers]]\nfor = \"/\"\nvalues = { Basic-Auth = \"ann:hunter2\" }\n"),
        "rampart.toml:3: headers.values.Basic-Auth: the password of ann is not a bcrypt hash: \
         store `ann:$(rampart hash-password)` (or the hash from `htpasswd -nB ann`), never the \
         password itself"
    );
}
