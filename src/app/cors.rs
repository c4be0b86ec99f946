//! CORS preflights. A header rule that sets `Access-Control-Allow-Origin` for a pattern
//! (fonts for another origin, a public JSON file) opens those paths to cross-origin
//! requests: the header itself is precomputed into the paths' header maps like any rule,
//! and this module answers the `OPTIONS` preflight a browser sends before a request it may
//! not send unasked. Every other `OPTIONS` stays a 405.
//!
//! The answer takes its values from the same rules, so a team writes its policy once:
//! `Access-Control-Allow-Methods` (default `GET, HEAD`), `Access-Control-Allow-Headers`
//! (default: the headers the preflight asks for), `Access-Control-Max-Age` (default one
//! day) and `Access-Control-Allow-Credentials` are sent when a rule sets them.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::headers::SecurityHeaders;
use super::Body;
use crate::rules::{HeaderOp, Origin};

/// How long a browser may cache a preflight when no rule says.
const DEFAULT_MAX_AGE: HeaderValue = HeaderValue::from_static("86400");

/// The answer to an `OPTIONS` request for a path whose rules allow an origin, or `None`
/// when none does (the caller answers 405). `ops` are the path's header operations in
/// order.
#[must_use]
pub fn preflight(
    ops: &[(&Origin, &HeaderOp)],
    req: &HeaderMap,
    security: &SecurityHeaders,
) -> Option<Response<Body>> {
    let allow_origin = last_value(ops, &header::ACCESS_CONTROL_ALLOW_ORIGIN)?;
    let mut headers = security.map().clone();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    headers.insert(header::CACHE_CONTROL, super::headers::NO_CACHE);
    let is_preflight =
        req.contains_key(header::ORIGIN) && req.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if !is_preflight {
        headers.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, OPTIONS"),
        );
        return Some(no_content(headers));
    }
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        last_value(ops, &header::ACCESS_CONTROL_ALLOW_METHODS)
            .unwrap_or(HeaderValue::from_static("GET, HEAD")),
    );
    let allow_headers = last_value(ops, &header::ACCESS_CONTROL_ALLOW_HEADERS)
        .or_else(|| req.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned());
    if let Some(v) = allow_headers {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        last_value(ops, &header::ACCESS_CONTROL_MAX_AGE).unwrap_or(DEFAULT_MAX_AGE),
    );
    if let Some(v) = last_value(ops, &header::ACCESS_CONTROL_ALLOW_CREDENTIALS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, v);
    }
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    Some(no_content(headers))
}

/// The value the rules leave for `name`: the last operation on it, if it sets one.
fn last_value(ops: &[(&Origin, &HeaderOp)], name: &HeaderName) -> Option<HeaderValue> {
    ops.iter().rev().find_map(|(_, op)| match op {
        HeaderOp::Set(n, v) if n == name => Some(Some(v.clone())),
        HeaderOp::Remove(n) if n == name => Some(None),
        _ => None,
    })?
}

fn no_content(headers: HeaderMap) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::NO_CONTENT;
    *r.headers_mut() = headers;
    r
}
