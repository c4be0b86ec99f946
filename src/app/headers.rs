//! Cache and security header policy, content types. Everything here runs at table-build time,
//! never per request: its results are stored in each asset's precomputed header maps.

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `Cache-Control` for assets whose file name carries a content hash.
pub const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
/// `Cache-Control` for HTML entry points (index.html, also as SPA fallback): always revalidate
/// so that a redeploy is seen at once.
pub const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
/// `Cache-Control` for other assets (favicon, manifest, robots.txt): short, then revalidate.
pub const SHORT: HeaderValue = HeaderValue::from_static("public, max-age=300, must-revalidate");

/// Headers sent on every response (HSTS, nosniff, referrer policy).
#[derive(Debug, Clone)]
pub struct SecurityHeaders(HeaderMap);

impl SecurityHeaders {
    /// Builds the set; `hsts_max_age == 0` leaves out Strict-Transport-Security.
    #[must_use]
    pub fn new(hsts_max_age: u64) -> Self {
        let mut map = HeaderMap::new();
        if hsts_max_age > 0 {
            let v = HeaderValue::from_str(&format!("max-age={hsts_max_age}"))
                .unwrap_or(HeaderValue::from_static("max-age=31536000"));
            map.insert(http::header::STRICT_TRANSPORT_SECURITY, v);
        }
        map.insert(
            http::header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        map.insert(
            http::header::REFERRER_POLICY,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        );
        Self(map)
    }

    /// Copies the headers into `map`.
    pub fn apply(&self, map: &mut HeaderMap) {
        for (k, v) in &self.0 {
            map.insert(k.clone(), v.clone());
        }
    }

    /// The headers as a map.
    #[must_use]
    pub fn map(&self) -> &HeaderMap {
        &self.0
    }
}

/// The `Cache-Control` policy for a file: `no-cache` for HTML, `immutable` for a
/// content-hashed file (app/hashed.rs decides which), a short life for the rest.
#[must_use]
pub fn cache_control(hashed: bool, content_type: &str) -> HeaderValue {
    if content_type.starts_with("text/html") {
        NO_CACHE
    } else if hashed {
        IMMUTABLE
    } else {
        SHORT
    }
}

/// The `Content-Type` for a path, with `charset=utf-8` on text types.
#[must_use]
pub fn content_type(path: &str) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|name| name.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase());
    let essence = match (ext.as_deref(), mime.essence_str()) {
        // Source maps are JSON (devtools accept it; octet-stream made some tools refuse).
        (Some("map"), _) => "application/json",
        // The registered types of the font formats (RFC 8081), not the legacy ones.
        (Some("woff"), _) => "font/woff",
        (Some("woff2"), _) => "font/woff2",
        (Some("webmanifest"), _) => "application/manifest+json",
        // Apple's universal links file has no extension and must be JSON.
        (None, _) if path.ends_with("/.well-known/apple-app-site-association") => {
            "application/json"
        }
        // The current registration; browsers accept both for modules.
        (_, "application/javascript") => "text/javascript",
        (_, other) => other,
    };
    let texty = essence.starts_with("text/")
        || matches!(
            essence,
            "application/json" | "application/manifest+json" | "application/xml" | "image/svg+xml"
        );
    if texty {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

/// Whether a content type is worth compressing (text, JSON, SVG, wasm, uncompressed fonts).
#[must_use]
pub fn compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.starts_with("text/")
        || matches!(
            essence,
            "application/json"
                | "application/manifest+json"
                | "application/xml"
                | "application/wasm"
                | "image/svg+xml"
                | "image/x-icon"
                | "image/vnd.microsoft.icon"
                | "image/bmp"
                | "font/ttf"
                | "font/otf"
                | "application/vnd.ms-fontobject"
        )
}

/// Sets a header from a string known to be a valid value (digits, tokens we produced).
pub(crate) fn set(map: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        map.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundler_hashes_are_recognised() {
        for n in [
            "app.3f9a1c2b.js",
            "index-BtqZ8k3a.js",
            "main.a1b2c3d4e5.chunk.js",
            "chunk-7HQV2XKA.js",
            "inter.6fb50190.woff2",
            "logo.deadbeef.png",
            "vendor_5c1e0f2a9b.js",
        ] {
            assert!(super::super::hashed::looks_hashed(n), "{n}");
        }
    }

    #[test]
    fn plain_names_are_not_hashed() {
        for n in [
            "index.html",
            "favicon.ico",
            "robots.txt",
            "app.js",
            "settings.component.js",
            "my-settings.css",
            "MyComponent.js",
            "app-Settings.js",
            "3f9a1c2b.js",
            "readme.md",
        ] {
            assert!(!super::super::hashed::looks_hashed(n), "{n}");
        }
    }

    #[test]
    fn text_types_carry_utf8_charset() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("/a.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("/a.css"), "text/css; charset=utf-8");
        assert_eq!(
            content_type("/m.webmanifest"),
            "application/manifest+json; charset=utf-8"
        );
        assert_eq!(content_type("/f.woff2"), "font/woff2");
        assert_eq!(content_type("/f.woff"), "font/woff");
        assert_eq!(
            content_type("/assets/index-BtqZ8k3a.js.map"),
            "application/json; charset=utf-8"
        );
        assert_eq!(
            content_type("/.well-known/apple-app-site-association"),
            "application/json; charset=utf-8"
        );
        assert_eq!(
            content_type("/site.webmanifest"),
            "application/manifest+json; charset=utf-8"
        );
        assert_eq!(content_type("/a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("/x.png"), "image/png");
        assert_eq!(content_type("/noext"), "application/octet-stream");
    }

    #[test]
    fn cache_policy_follows_the_name() {
        assert_eq!(cache_control(false, "text/html; charset=utf-8"), NO_CACHE);
        assert_eq!(cache_control(true, "text/javascript"), IMMUTABLE);
        assert_eq!(cache_control(false, "image/x-icon"), SHORT);
    }
}
