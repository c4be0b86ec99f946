//! Site rules at table-build time: reading the root's `_headers` and `_redirects`, merging
//! them with the operator's rules (`[[headers]]`/`[[redirects]]` of `rampart.toml`) into one
//! [`SiteRules`], and the operations that fold them into the table (app/assets.rs gives
//! each path a header rule touches its own header maps, with `apply`), so that a request
//! for a file is still one lookup. A path that a rule must look at per request (a forced or
//! host-qualified redirect, Basic-Auth) is marked in its table entry, and so is one whose
//! `OPTIONS` is a CORS preflight; every other request for a file never asks the rules again.
//!
//! The rule files themselves are never served. A rule file that does not parse (or a set of
//! rules with a redirect loop) refuses the first table; on a rebuild the previous rules stay
//! in force and the table carries a [`Finding::RulesKept`] that names each file and line.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::sync::Arc;

use http::header::{self, HeaderMap};

use super::basic_auth::BasicAuth;
use super::tree::{Finding, Tree};
use crate::rules::{
    headers_file, redirects_file, Credential, HeaderOp, HeaderRule, Origin, RedirectRule,
    RuleError, SiteRules,
};

/// The URL of the site's header rules file (never served).
pub const HEADERS_FILE: &str = "/_headers";
/// The URL of the site's redirect rules file (never served).
pub const REDIRECTS_FILE: &str = "/_redirects";
/// A rule file larger than this is refused: rules are a few kilobytes.
const MAX_RULE_FILE: u64 = 1024 * 1024;

/// The rules the operator configured (`rampart.toml`), fixed for the life of the server.
#[derive(Debug, Clone, Default)]
pub struct OperatorRules {
    /// `[[headers]]`, in file order.
    pub headers: Vec<HeaderRule>,
    /// `[[redirects]]`, in file order.
    pub redirects: Vec<RedirectRule>,
}

/// The rules of one table, with the verifiers their Basic-Auth operations need (each kept
/// from table to table while its rule is unchanged, so that its cache of verified
/// passwords survives a redeploy).
#[derive(Debug, Default)]
pub struct Rules {
    pub(crate) set: SiteRules,
    /// Each Basic-Auth rule's users and verifier.
    pub(crate) auth: HashMap<Origin, (Vec<Credential>, Arc<BasicAuth>)>,
}

impl Rules {
    /// The merged rules.
    #[must_use]
    pub fn set(&self) -> &SiteRules {
        &self.set
    }

    /// The Basic-Auth verifier a request for `path` must pass, if a rule asks for one (the
    /// last rule that does, as for any header).
    pub(crate) fn auth_for(&self, host: Option<&str>, path: &str) -> Option<&Arc<BasicAuth>> {
        self.set
            .header_ops(host, path)
            .into_iter()
            .rev()
            .find(|(_, op)| matches!(op, HeaderOp::BasicAuth(_)))
            .and_then(|(origin, _)| self.auth.get(origin))
            .map(|(_, auth)| auth)
    }
}

/// Reads the root's rule files and merges them with the operator's. On a rule error: the
/// first table is refused (the errors are returned); a rebuild keeps `previous` rules with
/// a finding.
pub(crate) fn load(
    tree: &Tree,
    operator: &OperatorRules,
    previous: Option<&Arc<Rules>>,
) -> Result<(Arc<Rules>, Option<Finding>), Vec<RuleError>> {
    match read(tree, operator) {
        Ok(set) => {
            let auth = verifiers(&set, previous.map(|p| &**p));
            Ok((Arc::new(Rules { set, auth }), None))
        }
        Err(errors) => match previous {
            Some(rules) => Ok((Arc::clone(rules), Some(Finding::RulesKept { errors }))),
            None => Err(errors),
        },
    }
}

fn read(tree: &Tree, operator: &OperatorRules) -> Result<SiteRules, Vec<RuleError>> {
    let mut errors = Vec::new();
    let mut file = |url: &str| -> Option<(String, String)> {
        let found = tree.files().iter().find(|f| f.url == url)?;
        let name = found.path.display().to_string();
        match read_text(&found.path) {
            Ok(text) => Some((name, text)),
            Err(reason) => {
                errors.push(RuleError::new(Origin::new(name, 0), reason));
                None
            }
        }
    };
    let headers_text = file(HEADERS_FILE);
    let redirects_text = file(REDIRECTS_FILE);
    let site_headers = match headers_text {
        Some((name, text)) => headers_file::parse(&name, &text).unwrap_or_else(|e| {
            errors.extend(e);
            Vec::new()
        }),
        None => Vec::new(),
    };
    let site_redirects = match redirects_text {
        Some((name, text)) => redirects_file::parse(&name, &text).unwrap_or_else(|e| {
            errors.extend(e);
            Vec::new()
        }),
        None => Vec::new(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let none = operator.headers.is_empty()
        && operator.redirects.is_empty()
        && site_headers.is_empty()
        && site_redirects.is_empty();
    if none {
        return Ok(SiteRules::default());
    }
    SiteRules::new(
        operator.headers.clone(),
        operator.redirects.clone(),
        site_headers,
        site_redirects,
    )
}

fn read_text(path: &std::path::Path) -> Result<String, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_RULE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_RULE_FILE {
        return Err(format!("larger than {MAX_RULE_FILE} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())
}

/// One verifier per Basic-Auth rule, reusing the previous table's for an unchanged rule.
fn verifiers(
    set: &SiteRules,
    previous: Option<&Rules>,
) -> HashMap<Origin, (Vec<Credential>, Arc<BasicAuth>)> {
    let mut out = HashMap::new();
    for rule in set.header_rules() {
        for op in &rule.ops {
            let HeaderOp::BasicAuth(users) = op else {
                continue;
            };
            let kept = previous
                .and_then(|p| p.auth.get(&rule.origin))
                .filter(|(before, _)| before == users)
                .map(|(_, auth)| Arc::clone(auth));
            // The parser checked every hash; the realm is the pattern, made quotable.
            let realm: String = rule
                .pattern
                .as_str()
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                .collect();
            let auth = kept.or_else(|| match BasicAuth::new(users, &realm) {
                Ok(auth) => Some(Arc::new(auth)),
                Err(e) => {
                    // Closed, never open: a verifier without users refuses everyone.
                    tracing::error!(rule = %rule.origin, error = %e, "Basic-Auth rule refused by the verifier; its paths answer 401 to everyone");
                    BasicAuth::new(&[], "restricted").ok().map(Arc::new)
                }
            });
            if let Some(auth) = auth {
                out.insert(rule.origin.clone(), (users.clone(), auth));
            }
        }
    }
    out
}

/// Applies header operations to a response's headers, in order. `success`: whether the
/// response is a 2xx or 304; an error page keeps its `Cache-Control: no-cache` whatever a
/// rule says (a rule that makes `/assets/*` immutable must not make their 404s so).
pub(crate) fn apply(map: &mut HeaderMap, ops: &[(&Origin, &HeaderOp)], success: bool) {
    for (_, op) in ops {
        match op {
            HeaderOp::Set(name, _) | HeaderOp::Remove(name)
                if !success && *name == header::CACHE_CONTROL => {}
            HeaderOp::Set(name, value) => {
                map.insert(name.clone(), value.clone());
            }
            HeaderOp::Remove(name) => {
                map.remove(name);
            }
            HeaderOp::BasicAuth(_) => {}
        }
    }
}

/// What `rampart check` says of the site rules: a summary of what was read, or every
/// error with its file and line.
///
/// # Errors
/// Each rule that does not parse, and each redirect loop.
pub fn check(options: &super::SiteOptions) -> Result<String, Vec<RuleError>> {
    let tree = Tree::walk(&options.root).map_err(|e| {
        vec![RuleError::new(
            Origin::new(e.path.display().to_string(), 0),
            e.source.to_string(),
        )]
    })?;
    let set = read(&tree, &options.build.rules)?;
    let from = |url: &str| tree.files().iter().any(|f| f.url == url);
    let mut sources = Vec::new();
    if from(HEADERS_FILE) {
        sources.push("_headers");
    }
    if from(REDIRECTS_FILE) {
        sources.push("_redirects");
    }
    if !options.build.rules.headers.is_empty() || !options.build.rules.redirects.is_empty() {
        sources.push("the config file");
    }
    Ok(if sources.is_empty() {
        "none (no _headers or _redirects in the root, no [[headers]] or [[redirects]] in a config file)".to_owned()
    } else {
        format!(
            "{} header rule(s) and {} redirect rule(s) from {}; no redirect loop",
            set.header_rules().len(),
            set.redirect_rules().len(),
            sources.join(", ")
        )
    })
}
