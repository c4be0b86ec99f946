//! One header line of a rule, `Name: value`, as both `_headers` and `rampart.toml` write
//! it, read into a [`HeaderOp`]; and how a rule's lines combine (a name given twice is one
//! header with both values). The reasons are the same words for both files.

use http::{HeaderName, HeaderValue};

use super::{credential, HeaderOp};

/// Headers a rule may not set or remove: they frame the message or belong to one
/// connection, so the server alone writes them (HTTP/2 forbids the connection-specific
/// ones outright, RFC 9113 section 8.2.2).
const RESERVED: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A header name a rule may name.
///
/// # Errors
/// Not a valid header name, or one the server alone writes.
pub fn name(name: &str) -> Result<HeaderName, String> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{name:?} is not a valid header name"))?;
    if RESERVED.contains(&parsed.as_str()) {
        return Err(format!(
            "{name} frames the message or belongs to the connection; the server writes it \
             and a rule may not set or remove it"
        ));
    }
    Ok(parsed)
}

/// Whether `name` is the `Basic-Auth` pseudo-header (any case).
#[must_use]
pub fn is_basic_auth(name: &str) -> bool {
    name.eq_ignore_ascii_case("basic-auth")
}

/// The operation of `Name: value` (both already trimmed): `Basic-Auth` protects the
/// paths, an empty value removes the header, any other value sets it.
///
/// # Errors
/// A bad name or value, or a bad `Basic-Auth` user list.
pub fn parse(header: &str, value: &str) -> Result<HeaderOp, String> {
    if is_basic_auth(header) {
        return credential::parse(value).map(HeaderOp::BasicAuth);
    }
    let name = name(header)?;
    if value.is_empty() {
        return Ok(HeaderOp::Remove(name));
    }
    // `HeaderValue` would take bytes above 0x7F; a rule's value must be plain ASCII so
    // that every client reads it the same way.
    let visible = value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    match HeaderValue::from_str(value) {
        Ok(v) if visible => Ok(HeaderOp::Set(name, v)),
        _ => Err(format!(
            "{value:?} is not a valid header value (visible ASCII, spaces and tabs only)"
        )),
    }
}

/// Adds `op` to a rule's operations: a second `Set` of a name joins its value to the
/// first's with `, ` (one header with both values, as Netlify does), a second
/// `Basic-Auth` adds its users to the first's; anything else is appended.
pub fn push(ops: &mut Vec<HeaderOp>, op: HeaderOp) {
    match op {
        HeaderOp::Set(name, value) => {
            let earlier = ops.iter_mut().find_map(|o| match o {
                HeaderOp::Set(n, v) if *n == name => Some(v),
                _ => None,
            });
            match earlier {
                Some(v) => {
                    let mut joined = v.as_bytes().to_vec();
                    joined.extend_from_slice(b", ");
                    joined.extend_from_slice(value.as_bytes());
                    // Both parts were valid values and ", " is too.
                    if let Ok(j) = HeaderValue::from_bytes(&joined) {
                        *v = j;
                    }
                }
                None => ops.push(HeaderOp::Set(name, value)),
            }
        }
        HeaderOp::BasicAuth(users) => {
            let earlier = ops.iter_mut().find_map(|o| match o {
                HeaderOp::BasicAuth(u) => Some(u),
                _ => None,
            });
            match earlier {
                Some(u) => u.extend(users),
                None => ops.push(HeaderOp::BasicAuth(users)),
            }
        }
        HeaderOp::Remove(_) => ops.push(op),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::TEST_HASH;

    fn set(name: &'static str, value: &'static str) -> HeaderOp {
        HeaderOp::Set(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    }

    #[test]
    fn a_value_sets_and_an_empty_value_removes() {
        assert_eq!(
            parse("X-Frame-Options", "DENY"),
            Ok(set("x-frame-options", "DENY"))
        );
        assert_eq!(
            parse("X-Frame-Options", ""),
            Ok(HeaderOp::Remove(HeaderName::from_static("x-frame-options")))
        );
    }

    #[test]
    fn basic_auth_is_read_in_any_case() {
        let op = parse("basic-AUTH", &format!("ann:{TEST_HASH}")).unwrap();
        let HeaderOp::BasicAuth(users) = op else {
            panic!("{op:?}")
        };
        assert_eq!(users[0].user, "ann");
    }

    #[test]
    fn bad_names_values_and_framing_headers_are_refused() {
        assert_eq!(
            parse("Bad Name", "x"),
            Err("\"Bad Name\" is not a valid header name".into())
        );
        assert!(parse("X-A", "a\nb")
            .unwrap_err()
            .contains("not a valid header value"));
        assert!(parse("X-A", "é")
            .unwrap_err()
            .contains("not a valid header value"));
        assert!(parse("Content-Length", "1")
            .unwrap_err()
            .contains("server writes it"));
        assert!(parse("Connection", "")
            .unwrap_err()
            .contains("server writes it"));
    }

    #[test]
    fn a_name_set_twice_is_one_header_with_both_values_in_order() {
        let mut ops = Vec::new();
        push(&mut ops, set("link", "</a.css>; rel=preload"));
        push(&mut ops, set("x-a", "1"));
        push(&mut ops, set("link", "</b.js>; rel=preload"));
        assert_eq!(
            ops,
            [
                set("link", "</a.css>; rel=preload, </b.js>; rel=preload"),
                set("x-a", "1")
            ]
        );
    }
}
