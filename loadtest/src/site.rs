//! The expected content: every file under `--root`, keyed by URL path, and the asset URLs
//! a browser would fetch after index.html.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::collections::HashMap;
use std::path::Path;

/// The files a correct server returns, byte for byte.
#[derive(Debug, Default)]
pub struct Site {
    files: HashMap<String, Bytes>,
    index: Bytes,
    /// Same-origin URLs referenced by index.html (`src=` / `href=`), in document order.
    pub assets: Vec<String>,
}

/// Extension-less client routes that an SPA server answers with index.html.
pub const DEEP_ROUTES: [&str; 4] = [
    "/settings",
    "/files/report-2026",
    "/about",
    "/users/42/edit",
];

impl Site {
    /// Reads `root` recursively; `extra` URLs are fetched on every page load too.
    pub fn load(root: &Path, extra: &[String]) -> Result<Self> {
        let mut files = HashMap::new();
        walk(root, root, &mut files).with_context(|| format!("reading {}", root.display()))?;
        let Some(index) = files.get("/index.html").cloned() else {
            bail!("{} has no index.html", root.display());
        };
        let mut assets = asset_urls(&String::from_utf8_lossy(&index));
        for e in extra {
            if !files.contains_key(e.as_str()) {
                bail!("--also {e}: no such file under {}", root.display());
            }
            if !assets.contains(e) {
                assets.push(e.clone());
            }
        }
        assets.retain(|a| files.contains_key(a.as_str()));
        Ok(Self {
            files,
            index,
            assets,
        })
    }

    /// The body a correct server sends for `path` (index.html for `/` and SPA routes).
    pub fn expected(&self, path: &str) -> Option<&Bytes> {
        let path = path.split(['?', '#']).next().unwrap_or(path);
        if path == "/" {
            return Some(&self.index);
        }
        if let Some(b) = self.files.get(path) {
            return Some(b);
        }
        let last = path.rsplit('/').next().unwrap_or("");
        (!last.contains('.')).then_some(&self.index)
    }

    /// Identity size of one page load (index plus assets): the abort point is drawn from it.
    pub fn page_bytes(&self) -> u64 {
        let assets: usize = self
            .assets
            .iter()
            .filter_map(|a| self.files.get(a.as_str()))
            .map(Bytes::len)
            .sum();
        (assets + self.index.len()) as u64
    }
}

fn walk(root: &Path, dir: &Path, out: &mut HashMap<String, Bytes>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ft = entry.file_type()?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path
                .strip_prefix(root)?
                .to_string_lossy()
                .replace('\\', "/");
            out.insert(format!("/{rel}"), Bytes::from(std::fs::read(&path)?));
        }
    }
    Ok(())
}

/// Same-origin absolute paths in `src="..."` and `href="..."` attributes (not `//host`).
pub fn asset_urls(html: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for attr in ["src=\"", "href=\""] {
        let mut rest = html;
        while let Some(i) = rest.find(attr) {
            rest = &rest[i + attr.len()..];
            let Some(end) = rest.find('"') else { break };
            let url = &rest[..end];
            if url.starts_with('/') && !url.starts_with("//") && !out.iter().any(|u| u == url) {
                out.push(url.to_owned());
            }
            rest = &rest[end..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_same_origin_assets_once() {
        let html = r##"<link href="/a.css"><script src="/b.js"></script><a href="//x/y">
            <img src="https://x/y.png"><a href="/a.css"><a href="#top">"##;
        assert_eq!(asset_urls(html), vec!["/b.js", "/a.css"]);
    }

    #[test]
    fn routes_get_index_and_files_get_themselves() {
        let www = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
        let site = Site::load(&www, &[]).unwrap();
        let index = site.expected("/").unwrap().clone();
        assert_eq!(site.expected("/settings/x?y=1"), Some(&index));
        assert_ne!(site.expected("/robots.txt"), Some(&index));
        assert_eq!(site.expected("/missing.js"), None);
        assert!(site.assets.iter().any(|a| a.ends_with(".js")));
        assert!(site.page_bytes() > 90_000);
    }
}
