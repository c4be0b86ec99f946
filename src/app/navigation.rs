//! Whether a request for a path the table does not hold is a browser navigation (it wants
//! a page: the SPA's index.html, so that a deep link or a reload of `/u/john.doe` works) or
//! a subresource (a script, style, image, font or data fetch: a missing one stays a 404),
//! from the request's own signals: `Sec-Fetch-Dest`, then `Sec-Fetch-Mode`, then `Accept`.
//! Only a request that carries none of them falls back to the extension heuristic (a last
//! segment with a dot is a file). Three header lookups, no allocation; asked only for paths
//! that miss the table.

use http::header::{HeaderMap, HeaderValue, ACCEPT};

/// What a request says it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    /// A document: a navigation (address bar, link, reload) or a frame.
    Page,
    /// Anything else a page loads: scripts, styles, images, fonts, `fetch()`.
    Resource,
    /// The request does not say (curl, an old client): decide from the path.
    Unknown,
}

/// `Vary` of a response whose choice (index.html or 404) depended on these signals; the
/// encoding is negotiated on the same responses.
pub const VARY: HeaderValue =
    HeaderValue::from_static("Accept-Encoding, Sec-Fetch-Dest, Sec-Fetch-Mode, Accept");

/// What the request's signals say, strongest first: `Sec-Fetch-Dest` (browsers since 2020),
/// `Sec-Fetch-Mode`, then whether `Accept` lists `text/html` (every browser navigation
/// does; a script, style or image request does not).
#[must_use]
pub fn wants(req: &HeaderMap) -> Wants {
    if let Some(dest) = req.get("sec-fetch-dest") {
        return match dest.as_bytes() {
            b"document" | b"iframe" | b"frame" => Wants::Page,
            _ => Wants::Resource,
        };
    }
    if let Some(mode) = req.get("sec-fetch-mode") {
        return if mode.as_bytes() == b"navigate" {
            Wants::Page
        } else {
            Wants::Resource
        };
    }
    match req.get(ACCEPT).map(HeaderValue::as_bytes) {
        None => Wants::Unknown,
        Some(accept) if lists_html(accept) => Wants::Page,
        // `*/*` alone (curl, many libraries) says nothing.
        Some(accept) if accept.trim_ascii() == b"*/*" => Wants::Unknown,
        Some(_) => Wants::Resource,
    }
}

/// Whether an `Accept` value lists `text/html` with a quality above zero.
fn lists_html(accept: &[u8]) -> bool {
    accept.split(|b| *b == b',').any(|item| {
        let mut parts = item.split(|b| *b == b';');
        let range = parts.next().unwrap_or_default().trim_ascii();
        if !range.eq_ignore_ascii_case(b"text/html") {
            return false;
        }
        !parts.any(|p| {
            let p = p.trim_ascii();
            p.len() >= 2
                && p[..2].eq_ignore_ascii_case(b"q=")
                && p[2..].iter().all(|b| *b == b'0' || *b == b'.')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn fetch_metadata_decides_first() {
        for dest in ["document", "iframe", "frame"] {
            assert_eq!(
                wants(&req(&[("sec-fetch-dest", dest)])),
                Wants::Page,
                "{dest}"
            );
        }
        for dest in [
            "script", "style", "image", "font", "empty", "manifest", "worker",
        ] {
            let r = req(&[("sec-fetch-dest", dest), ("accept", "text/html")]);
            assert_eq!(wants(&r), Wants::Resource, "{dest}");
        }
        assert_eq!(wants(&req(&[("sec-fetch-mode", "navigate")])), Wants::Page);
        assert_eq!(wants(&req(&[("sec-fetch-mode", "cors")])), Wants::Resource);
    }

    #[test]
    fn accept_decides_for_clients_without_fetch_metadata() {
        // What browsers send for a navigation, a script, a style sheet, an image.
        let nav = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert_eq!(wants(&req(&[("accept", nav)])), Wants::Page);
        assert_eq!(
            wants(&req(&[("accept", "text/css,*/*;q=0.1")])),
            Wants::Resource
        );
        let img = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";
        assert_eq!(wants(&req(&[("accept", img)])), Wants::Resource);
        assert_eq!(
            wants(&req(&[("accept", "application/json")])),
            Wants::Resource
        );
        assert_eq!(wants(&req(&[("accept", "TEXT/HTML ; q=0.5")])), Wants::Page);
        assert_eq!(
            wants(&req(&[("accept", "text/html;q=0, */*")])),
            Wants::Resource
        );
        // curl and friends say nothing.
        assert_eq!(wants(&req(&[("accept", "*/*")])), Wants::Unknown);
        assert_eq!(wants(&req(&[])), Wants::Unknown);
    }
}
