//! Which files carry a content hash in their name, and so are served `immutable` for a
//! year: decided when the table is built, from the most reliable source the build has.
//!
//! 1. The bundler's manifest, when the build has one: Vite's `.vite/manifest.json` (every
//!    `file`, `css` and `assets` entry: only bundled outputs, never `public/` copies) and
//!    webpack / Create React App's `asset-manifest.json` (the files it lists under a name
//!    other than their source's: webpack-manifest-plugin lists every emitted file, the
//!    copied `robots.txt` and `index.html` included, so being listed is not enough).
//! 2. The frameworks' immutable directories: SvelteKit's `/_app/immutable/` and Next.js's
//!    `/_next/static/` (their file names are hashes, sometimes nothing else).
//! 3. Otherwise the name: a piece that looks like a bundler's hash (see [`looks_hashed`]),
//!    tuned to miss rather than to err, because a false positive keeps a changed file in
//!    browsers for a year and a miss only costs a revalidation.

use std::collections::HashSet;
use std::path::Path;

/// The largest manifest read (a big app's Vite manifest is a few hundred KB).
const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

/// Directories whose files are content-addressed by their framework.
const IMMUTABLE_DIRS: [&str; 2] = ["/_app/immutable/", "/_next/static/"];

/// The hashed files of one build.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HashedNames {
    /// URLs (`/assets/index-BtqZ8k3a.js`) the bundler's manifests list.
    listed: HashSet<String>,
}

impl HashedNames {
    /// Reads the manifests under `root` (a missing or unreadable one is simply absent).
    #[must_use]
    pub fn from_root(root: &Path) -> Self {
        let mut out = Self::default();
        if let Some(json) = read_json(&root.join(".vite/manifest.json")) {
            if let Some(entries) = json.as_object() {
                for entry in entries.values() {
                    if let Some(file) = entry.get("file").and_then(|f| f.as_str()) {
                        out.add(file);
                    }
                    for list in ["css", "assets"] {
                        for f in entry
                            .get(list)
                            .and_then(|l| l.as_array())
                            .into_iter()
                            .flatten()
                        {
                            if let Some(f) = f.as_str() {
                                out.add(f);
                            }
                        }
                    }
                }
            }
        }
        if let Some(json) = read_json(&root.join("asset-manifest.json")) {
            if let Some(files) = json.get("files").and_then(|f| f.as_object()) {
                for (name, file) in files {
                    if let Some(file) = file.as_str().filter(|f| renamed(name, f)) {
                        out.add(file);
                    }
                }
            }
        }
        out
    }

    fn add(&mut self, file: &str) {
        // Manifests write paths relative to the output (Vite) or with the public path in
        // front (webpack: usually `/`); a full URL's path is what the table holds.
        let path = file
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            .unwrap_or(file);
        let path = path.trim_start_matches("./");
        let url = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        self.listed.insert(url);
    }

    /// Whether the file at `url` (`/assets/app-BtqZ8k3a.js`) is content-hashed.
    #[must_use]
    pub fn is_hashed(&self, url: &str) -> bool {
        if self.listed.contains(url) || IMMUTABLE_DIRS.iter().any(|d| url.starts_with(d)) {
            return true;
        }
        let name = url.rsplit('/').next().unwrap_or(url);
        looks_hashed(name)
    }
}

/// Whether an `asset-manifest.json` entry maps a source name to another file name, as
/// a `[contenthash]` template does (`main.js` to `/static/js/main.3c25dd3d.js`). The
/// manifest lists every emitted file, so files copied as they are (copy-webpack-plugin's
/// `robots.txt`, `hero-1920x1080.jpg`) and the HTML are there too, under their own names:
/// those are left to the name rule, as are chunks keyed by their emitted name.
fn renamed(name: &str, file: &str) -> bool {
    let base = |p: &str| {
        let p = p.split(['?', '#']).next().unwrap_or(p);
        p.rsplit('/').next().unwrap_or(p).to_owned()
    };
    base(name) != base(file)
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_MANIFEST {
        return None;
    }
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether a file name carries a piece that looks like a bundler's content hash:
/// - hex of 8 to 64 characters that is not all digits (webpack, Parcel:
///   `app.3f9a1c2b.js`, `main.a1b2c3d4e5.chunk.js`), or all digits before `.chunk`
///   (Create React App: `55.99172998.chunk.js`), or
/// - the last 8 characters of the stem after a `-` or `.`, from the base64url alphabet
///   (Vite/Rollup, which may use `-` and `_` inside: `Reports-CIwc-Tsr.js`; esbuild and
///   Angular: `chunk-7HQV2XKA.js`), that look random: digits among letters, case changing
///   inside the piece in a way words do not (`BtqZ8k3a`, `CIwc-Tsr`), or capitals with at
///   most one vowel before final digits (`FBMTKBZ3`).
///
/// Not hashed: words and CamelCase words (`logo-DarkMode.svg`, `settings.component.js`),
/// dates and numbers (`report-20241201.json`), dimensions (`hero-1920x1080.jpg`), a word
/// followed by a number (`screenshot-iPhone15.png`, `IPHONE15`).
#[must_use]
pub fn looks_hashed(file_name: &str) -> bool {
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    let hex = stem
        .split(['.', '-', '_'])
        .skip(1)
        .any(|piece| is_hex(piece) && !piece.bytes().all(|b| b.is_ascii_digit()));
    if hex {
        return true;
    }
    // Create React App's `[id].[contenthash:8].chunk.js`: there even a hash of digits only
    // (one 8-character hash in 43) is one, found in a real webpack build's fixture.
    if let Some((_, piece)) = stem
        .strip_suffix(".chunk")
        .and_then(|rest| rest.rsplit_once('.'))
    {
        if is_hex(piece) {
            return true;
        }
    }
    // Vite/Rollup/esbuild: `[name]-[hash]` with an 8-character hash at the end.
    let bytes = stem.as_bytes();
    if bytes.len() < 10 {
        return false;
    }
    let (head, piece) = bytes.split_at(bytes.len() - 8);
    if !matches!(head.last(), Some(b'-' | b'.')) {
        return false;
    }
    let base64url = piece
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
    base64url && random_looking(piece)
}

/// Lower-case hex of 8 to 64 characters, the length of webpack's, Parcel's and Angular's
/// hashes.
fn is_hex(piece: &str) -> bool {
    (8..=64).contains(&piece.len())
        && piece
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether an 8-character piece looks random rather than like a word, a number, a word and
/// a number, or words in CamelCase.
fn random_looking(piece: &[u8]) -> bool {
    let digits = piece.iter().filter(|b| b.is_ascii_digit()).count();
    let letters = piece.iter().filter(|b| b.is_ascii_alphabetic()).count();
    if letters == 0 {
        // All digits (a date, a number), or digits with `x` is handled below as letters.
        return false;
    }
    // `1920x1080`-like: digits around one letter.
    if letters == 1 && digits >= 4 {
        return false;
    }
    if digits > 0 {
        // A word then a number (`iPhone15`, `report24`): digits only at the end.
        let first_digit = piece
            .iter()
            .position(u8::is_ascii_digit)
            .unwrap_or(piece.len());
        let digits_at_end = piece[first_digit..].iter().all(u8::is_ascii_digit);
        if !digits_at_end {
            return true;
        }
        // esbuild's upper-case base32 ends in digits too, one hash in 18 (Angular's
        // `chunk-FBMTKBZ3.js`, from a real build): capitals with at most one vowel are
        // not a word written in capitals (`IPHONE15`, `WINDOWS7`, `GALAXY22`).
        let word = &piece[..first_digit];
        let vowels = word.iter().filter(|b| b"AEIOU".contains(b)).count();
        return word.len() >= 5 && word.iter().all(u8::is_ascii_uppercase) && vowels <= 1;
    }
    // Letters only: random when case changes where CamelCase words would not put it: an
    // upper-case letter followed by fewer than two lower-case ones (`CIwc`, `BtqZ`), or a
    // lower-case letter first with an upper-case inside (`aXbYcZde`).
    let mut i = 0;
    while i < piece.len() {
        let b = piece[i];
        if b.is_ascii_uppercase() {
            let run = piece[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_lowercase())
                .count();
            if run < 2 {
                return true;
            }
            i += 1 + run;
        } else if b.is_ascii_lowercase() {
            i += 1;
        } else {
            // `-` or `_` inside the piece: only hashes have them there.
            return true;
        }
    }
    // CamelCase words (`DarkMode`) or a lower-case word (`settings`). A Vite hash of that
    // shape (`DiwrgTda`) is missed here: the manifest names it (see the tests).
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_bundler_names_are_hashed() {
        for n in [
            // webpack / Create React App / Angular / Parcel (hex)
            "main.8f2c1a3b.js",
            "main.a1b2c3d4e5.chunk.js",
            "787.5c1e0f2a9b8d7c6e.js",
            "styles.ef46db3751d8e999.css",
            "logo.deadbeef.png",
            "inter.6fb50190.woff2",
            // Vite / Rollup (base64url, `-` and `_` inside)
            "index-BtqZ8k3a.js",
            "Reports-CIwc-Tsr.js",
            "vendor-B_x9kQ2p.js",
            // esbuild
            "chunk-7HQV2XKA.js",
            // Create React App's unnamed chunk, a hash of digits only
            "55.99172998.chunk.js",
            // esbuild (Angular): upper-case base32 ending in a digit
            "chunk-FBMTKBZ3.js",
            "main-6PXN3VV5.js",
            "polyfills-TTTPWFMZ.js",
        ] {
            assert!(looks_hashed(n), "{n}");
        }
    }

    #[test]
    fn words_dates_dimensions_and_numbered_words_are_not() {
        for n in [
            "hero-1920x1080.jpg",
            "report-20241201.json",
            "screenshot-iPhone15.png",
            "screenshot-IPHONE15.png",
            "logo-WINDOWS7.svg",
            "photo-GALAXY22.jpg",
            "logo-DarkMode.svg",
            "index.html",
            "favicon.ico",
            "app.js",
            "settings.component.js",
            "my-settings.css",
            "MyComponent.js",
            "app-Settings.js",
            "3f9a1c2b.js",
            "icon-settings.svg",
            "font-Regular.woff2",
            "photo-12345678.jpg",
        ] {
            assert!(!looks_hashed(n), "{n}");
        }
    }

    #[test]
    fn manifests_and_immutable_directories_decide_before_the_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".vite")).unwrap();
        std::fs::write(
            dir.path().join(".vite/manifest.json"),
            r#"{"index.html":{"file":"assets/index-Abcdefgh.js","css":["assets/index-Qwertyui.css"],
               "assets":["assets/logo-Zxcvbnma.svg"],"isEntry":true}}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("asset-manifest.json"),
            r#"{"files":{"main.js":"/static/js/main.12345678.js","index.html":"/index.html",
               "robots.txt":"/robots.txt","static/media/logo.svg?url":"/static/media/logo.svg"}}"#,
        )
        .unwrap();
        let h = HashedNames::from_root(dir.path());
        // webpack lists every emitted file: only the renamed one counts.
        assert_eq!(h.listed.len(), 4, "{h:?}");
        assert!(!h.is_hashed("/robots.txt"));
        assert!(!h.is_hashed("/static/media/logo.svg"));
        // Listed: hashed even though the name alone would not say so.
        for url in [
            "/assets/index-Abcdefgh.js",
            "/assets/index-Qwertyui.css",
            "/assets/logo-Zxcvbnma.svg",
            "/static/js/main.12345678.js",
        ] {
            assert!(h.is_hashed(url), "{url}");
        }
        // SvelteKit and Next.js immutable directories.
        assert!(h.is_hashed("/_app/immutable/chunks/B5GhN4wE.js"));
        assert!(h.is_hashed("/_next/static/chunks/pages/index.js"));
        assert!(!h.is_hashed("/hero-1920x1080.jpg"));
        // No manifest: the name alone.
        let empty = tempfile::tempdir().unwrap();
        let h = HashedNames::from_root(empty.path());
        assert_eq!(h, HashedNames::default());
        assert!(h.is_hashed("/assets/index-BtqZ8k3a.js"));
        assert!(!h.is_hashed("/assets/index-Abcdefgh.js"));
        // A Vite hash shaped like CamelCase words is a miss without the manifest (it is
        // revalidated after 5 minutes), never a false `immutable`.
        assert!(!h.is_hashed("/assets/index-DiwrgTda.css"));
    }
}
