//! `rampart check --route PATH`: what rampart would answer to a GET of a path, with the
//! rule (file and line) or default behind the status and each header, so that a team sees
//! its policy before deploying. The answer comes from the real [`AssetService`] over a table
//! built from the root (the same build `serve` runs); the request carries no navigation
//! signals, as curl sends it (a browser's navigation to a missing path would get the SPA
//! fallback: the output says so when it applies).

use std::fmt::Write as _;

use http::{HeaderName, Request, StatusCode};
use tower::ServiceExt;

use super::Report;
use crate::app::{AssetService, Site, SiteOptions};
use crate::rules::HeaderOp;

/// The explanation of one path, as printed; or why the site cannot be loaded.
///
/// # Errors
/// The table build's error (no index.html, a rule file that does not parse).
pub fn explain(options: &SiteOptions, route: &str) -> Result<String, String> {
    let site = Site::load(options.clone()).map_err(|e| e.to_string())?;
    let (host, target) = split_route(route);
    let uri: http::Uri = target
        .parse()
        .map_err(|e| format!("--route {route}: not a path: {e}"))?;
    let request = Request::get(uri.clone())
        .header(http::header::HOST, host)
        .body(())
        .map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let response = runtime
        .block_on(AssetService::new(std::sync::Arc::clone(&site)).oneshot(request))
        .unwrap_or_else(|never| match never {});

    let table = site.table();
    let rules = table.rules().set();
    let path = crate::app::path::decode(uri.path()).unwrap_or_default();
    let exists = table.get(&path).is_some();
    let routed = rules.route(Some(host), &path, uri.query(), exists);
    let ops = rules.header_ops(Some(host), &path);
    let status = response.status();
    let why = match &routed {
        Some(r) if r.status.is_redirection() => {
            format!("redirect rule at {} to {}", r.rule.origin, r.target)
        }
        Some(r) => format!(
            "rule at {} serves {} ({})",
            r.rule.origin, r.target, r.status
        ),
        None if exists => "the file".to_owned(),
        None if status == StatusCode::PERMANENT_REDIRECT => {
            "a directory: the slash is added".to_owned()
        }
        None if status == StatusCode::OK => {
            "no file: the SPA fallback serves index.html".to_owned()
        }
        None if status == StatusCode::UNAUTHORIZED => "a Basic-Auth rule".to_owned(),
        None => "no file and no rule".to_owned(),
    };
    let mut out = String::new();
    let _ = writeln!(out, "GET https://{host}{target}");
    let _ = writeln!(out, "  {status}  ({why})");
    let origin_of = |name: &HeaderName| {
        ops.iter()
            .rev()
            .find(|(_, op)| matches!(op, HeaderOp::Set(n, _) | HeaderOp::Remove(n) if n == name))
            .map(|(origin, _)| origin.to_string())
    };
    let mut names: Vec<&HeaderName> = response.headers().keys().collect();
    names.sort_by_key(|n| n.as_str());
    for name in names {
        if *name == http::header::DATE {
            continue;
        }
        for value in response.headers().get_all(name) {
            let from = origin_of(name)
                .or_else(|| match &routed {
                    Some(r) if *name == http::header::LOCATION => Some(r.rule.origin.to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "default".to_owned());
            let _ = writeln!(
                out,
                "  {name}: {}    <- {from}",
                String::from_utf8_lossy(value.as_bytes())
            );
        }
    }
    for (origin, op) in &ops {
        match op {
            HeaderOp::Remove(name) if !response.headers().contains_key(name) => {
                let _ = writeln!(out, "  {name}: (removed)    <- {origin}");
            }
            HeaderOp::BasicAuth(users) => {
                let _ = writeln!(
                    out,
                    "  (Basic-Auth: {} user(s))    <- {origin}",
                    users.len()
                );
            }
            _ => {}
        }
    }
    if !exists && routed.is_none() && status == StatusCode::NOT_FOUND && options.spa {
        let _ = writeln!(
            out,
            "  (a browser navigation to this path would get index.html: see \"SPA routes\" in the README)"
        );
    }
    Ok(out)
}

/// `https://host/path` -> (host, /path); `/path` -> (localhost, /path).
fn split_route(route: &str) -> (&str, &str) {
    let rest = route
        .strip_prefix("https://")
        .or_else(|| route.strip_prefix("http://"));
    match rest {
        Some(rest) => match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        },
        None => ("localhost", route),
    }
}

/// Adds the site rules' check to the report: each rule file read and the rules merged, or
/// each error with its file and line.
pub(super) fn rules(options: &SiteOptions, report: &mut Report) {
    match crate::app::routes::check(options) {
        Ok(summary) => report.ok("site rules", summary),
        Err(errors) => {
            for e in errors {
                report.error(format!("site rule {}", e.origin), e.reason);
            }
        }
    }
}
