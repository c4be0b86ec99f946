//! Precompressed files the table serves from disk or from their sidecar alone.
//!
//! 1. Large files (above the stream threshold) with `.br` / `.gz` sidecars: each sidecar is
//!    a representation streamed from its own file, with its own Content-Length and ETag
//!    (`"HASH-br"`). A sidecar is checked once per change of the file or the sidecar (the
//!    walk's stamp covers both, so an unchanged pair is reused, not checked again): it is
//!    decompressed as a stream (constant memory, stopping one byte past the source's length)
//!    and must hash to the source's own hash. Brotli and gzip decompress at several hundred
//!    MB/s, about the speed of the SHA-256 the build already runs over the source, so this
//!    costs at most as much again; an mtime rule was not used because `cp -r` gives a
//!    correct sidecar copied before its source an older mtime. A sidecar that does not match
//!    is a [`Finding`] and is not served. Its length and mtime, from the handle it was
//!    checked through, are checked again when a request opens it (like the source's).
//! 2. Encoded-only files: `app.wasm.br` (or `.gz`, or both) with no `app.wasm`. The walk
//!    gives them an entry at `/app.wasm` (the sidecar's own URL still serves it as a file)
//!    whose representations are the sidecars alone: in memory up to the stream threshold,
//!    streamed above it. They are never decompressed here, at any size: a client whose
//!    `Accept-Encoding` allows none of their codings gets `406 Not Acceptable`, and ranges
//!    are ignored (a range would address an identity form that does not exist).
//!    `index.html` is never encoded-only: the app's entry point must be readable by all.
//!
//! This module decides which representations exist and which one a response uses; the
//! table build (app/assets.rs) makes their header blocks and the service (app/mod.rs)
//! opens and sends them.

use std::collections::{HashMap, HashSet};
use std::fs::{File, Metadata};
use std::hash::{Hash, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::assets::{self, Asset, BuildError, Content};
use super::encoding::{self, Encoding};
use super::tree::{stamp_of, Finding, Found};

/// A representation read from disk per request: the file and what it was when the table
/// was built (checked again when a request opens it).
#[derive(Debug, Clone)]
pub(crate) struct OnDisk {
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    pub(crate) modified_secs: u64,
}

/// One form of an asset before its header block is made: its coding, its bytes (empty when
/// on disk) and its file when it is streamed.
pub(crate) type Form = (Encoding, Bytes, Option<OnDisk>);

/// Seconds since the epoch of a file's mtime, as the table records it.
pub(crate) fn modified_secs(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// The encoded-only entries of a walk: for each `X.br` / `X.gz` whose `X` is not a file
/// (and is not an index.html), one entry at `X` with those sidecars. `files` are the walk's
/// files sorted by URL, `urls` their URLs.
pub(crate) fn encoded_only(
    files: &[(String, PathBuf, Metadata)],
    urls: &HashSet<&str>,
) -> Vec<Found> {
    let mut by_base: HashMap<&str, [Option<&(String, PathBuf, Metadata)>; 2]> = HashMap::new();
    for f in files {
        for (i, ext) in [".br", ".gz"].iter().enumerate() {
            if let Some(base) = f.0.strip_suffix(ext) {
                if !base.ends_with('/') && !base.ends_with("/index.html") && !urls.contains(base) {
                    by_base.entry(base).or_default()[i] = Some(f);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(by_base.len());
    for (base, [br, gz]) in by_base {
        let Some(first) = br.or(gz) else { continue };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        "encoded-only".hash(&mut h);
        for side in [br, gz] {
            side.map(|f| stamp_of(&f.2)).hash(&mut h);
        }
        out.push(Found {
            url: base.to_owned(),
            path: first.1.clone(),
            meta: first.2.clone(),
            br: br.map(|f| f.1.clone()),
            gz: gz.map(|f| f.1.clone()),
            stamp: h.finish(),
            encoded_only: true,
        });
    }
    out
}

/// The sidecars of a streamed file that decompress to exactly its bytes (`len` bytes whose
/// hash is `hash`), as streamed forms; the others are pushed onto `findings`.
pub(crate) fn streamed_sidecars(
    f: &Found,
    len: u64,
    hash: &str,
    findings: &mut Vec<Finding>,
) -> Vec<Form> {
    let mut out = Vec::new();
    for (enc, sidecar) in [(Encoding::Brotli, &f.br), (Encoding::Gzip, &f.gz)] {
        let Some(path) = sidecar else { continue };
        match check_sidecar(enc, path, len, hash) {
            Ok(Some(disk)) => out.push((enc, Bytes::new(), Some(disk))),
            Ok(None) => findings.push(Finding::SidecarMismatch {
                sidecar: path.clone(),
            }),
            Err(e) => findings.push(Finding::SidecarUnreadable {
                sidecar: path.clone(),
                error: e.to_string(),
            }),
        }
    }
    out
}

/// Decompresses the sidecar as a stream and compares it with the source; `None` when it
/// decodes to other bytes (or does not decode).
fn check_sidecar(enc: Encoding, path: &Path, len: u64, hash: &str) -> io::Result<Option<OnDisk>> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let disk = OnDisk {
        path: path.to_owned(),
        len: meta.len(),
        modified_secs: modified_secs(&meta),
    };
    let reader = io::BufReader::with_capacity(256 * 1024, file);
    let decoded: Box<dyn Read> = match enc {
        Encoding::Brotli => Box::new(brotli::Decompressor::new(reader, 256 * 1024)),
        Encoding::Gzip => Box::new(flate2::read::GzDecoder::new(reader)),
        Encoding::Identity => return Ok(None),
    };
    // One byte past the source is enough to know it differs (and bounds a bomb).
    let mut decoded = decoded.take(len.saturating_add(1));
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut buf = vec![0; 1024 * 1024];
    let mut total = 0u64;
    loop {
        let n = match decoded.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Corrupt data: a mismatch, not an unreadable file.
            Err(_) => return Ok(None),
        };
        ctx.update(&buf[..n]);
        total += n as u64;
    }
    let same = total == len && assets::hex(ctx.finish().as_ref()) == hash;
    Ok(same.then_some(disk))
}

/// The forms of an encoded-only entry (its sidecars as they are), where they live, and the
/// hash its ETags are made from (the first sidecar's). In memory when every sidecar fits
/// under `stream_threshold`, else all streamed.
pub(crate) fn encoded_only_forms(
    f: &Found,
    stream_threshold: u64,
) -> Result<(Content, String, Vec<Form>), BuildError> {
    let sidecars: Vec<(Encoding, &PathBuf)> = [(Encoding::Brotli, &f.br), (Encoding::Gzip, &f.gz)]
        .into_iter()
        .filter_map(|(enc, p)| p.as_ref().map(|p| (enc, p)))
        .collect();
    let io_err = |path: &Path| {
        let path = path.to_owned();
        move |source| BuildError::Io { path, source }
    };
    let mut opened = Vec::with_capacity(sidecars.len());
    let mut streamed = false;
    for (enc, path) in sidecars {
        let file = File::open(path).map_err(io_err(path))?;
        let meta = file.metadata().map_err(io_err(path))?;
        streamed |= meta.len() > stream_threshold;
        opened.push((enc, path, file, meta));
    }
    let mut out = Vec::with_capacity(opened.len());
    let mut hash = String::new();
    for (enc, path, mut file, meta) in opened {
        if streamed {
            if hash.is_empty() {
                hash = assets::hash_file(path)?;
            }
            let disk = OnDisk {
                path: path.clone(),
                len: meta.len(),
                modified_secs: modified_secs(&meta),
            };
            out.push((enc, Bytes::new(), Some(disk)));
        } else {
            let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            file.read_to_end(&mut data).map_err(io_err(path))?;
            if hash.is_empty() {
                hash = assets::sha256_hex(&data);
            }
            out.push((enc, Bytes::from(data), None));
        }
    }
    let content = if streamed {
        Content::File(f.path.clone())
    } else {
        Content::Memory
    };
    Ok((content, hash, out))
}

/// The representation a `200`/`206` response to this request uses: identity when a range
/// is asked for (ranges address the identity bytes), else the negotiated coding. The
/// service decides with it which file to open before [`super::AssetService`] serves.
pub(crate) fn response_encoding(
    asset: &Asset,
    status: StatusCode,
    method: &Method,
    req: &HeaderMap,
) -> Encoding {
    let range =
        status == StatusCode::OK && *method != Method::HEAD && req.contains_key(header::RANGE);
    if range {
        Encoding::Identity
    } else {
        encoding::negotiate(
            req.get(header::ACCEPT_ENCODING).map(HeaderValue::as_bytes),
            &asset.encodings,
        )
    }
}

/// For an encoded-only asset: the request's headers with `Accept-Encoding` narrowed to the
/// coding to send (the acceptable one with the highest q; br on a tie) and without `Range`
/// and `If-Range`; `None` when the client accepts none of the asset's codings (answer
/// 406).
pub(crate) fn pin_coding(asset: &Asset, req: &HeaderMap) -> Option<HeaderMap> {
    let accept = req.get(header::ACCEPT_ENCODING).map(HeaderValue::as_bytes);
    let (enc, _) = asset
        .encodings
        .iter()
        .map(|&e| (e, encoding::accepted(accept, e)))
        .filter(|&(_, q)| q > 0)
        .min_by_key(|&(e, q)| (std::cmp::Reverse(q), e))?;
    let mut pinned = req.clone();
    pinned.remove(header::RANGE);
    pinned.remove(header::IF_RANGE);
    pinned.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static(enc.token()),
    );
    Some(pinned)
}

/// The body of the 406 for an encoded-only file.
pub(crate) const NOT_ACCEPTABLE: &str = "406 Not Acceptable: this file exists only precompressed \
     (br or gzip) and the request's Accept-Encoding allows neither\n";

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn found(dir: &Path, name: &str, br: bool, gz: bool) -> Found {
        let path = dir.join(name);
        let side = |ext: &str| Some(dir.join(format!("{name}.{ext}")));
        Found {
            url: format!("/{name}"),
            meta: std::fs::metadata(&path).unwrap(),
            path,
            br: if br { side("br") } else { None },
            gz: if gz { side("gz") } else { None },
            stamp: 0,
            encoded_only: false,
        }
    }

    #[test]
    fn a_sidecar_is_used_only_when_it_decodes_to_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        std::fs::write(dir.path().join("app.wasm"), &data).unwrap();
        let br = assets::compress(Encoding::Brotli, &data).unwrap();
        std::fs::write(dir.path().join("app.wasm.br"), &br).unwrap();
        // A gzip of other bytes: stale.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data[..data.len() - 1]).unwrap();
        std::fs::write(dir.path().join("app.wasm.gz"), e.finish().unwrap()).unwrap();

        let f = found(dir.path(), "app.wasm", true, true);
        let hash = assets::hash_file(&f.path).unwrap();
        let mut findings = Vec::new();
        let forms = streamed_sidecars(&f, data.len() as u64, &hash, &mut findings);
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].0, Encoding::Brotli);
        assert_eq!(forms[0].2.as_ref().unwrap().len, br.len() as u64);
        assert_eq!(
            findings,
            [Finding::SidecarMismatch {
                sidecar: dir.path().join("app.wasm.gz")
            }]
        );
    }

    #[test]
    fn garbage_or_a_longer_stream_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"hello").unwrap();
        std::fs::write(dir.path().join("a.bin.br"), b"not brotli at all").unwrap();
        let longer = assets::compress(Encoding::Gzip, b"hello, world").unwrap();
        std::fs::write(dir.path().join("a.bin.gz"), longer).unwrap();
        let f = found(dir.path(), "a.bin", true, true);
        let hash = assets::hash_file(&f.path).unwrap();
        let mut findings = Vec::new();
        assert!(streamed_sidecars(&f, 5, &hash, &mut findings).is_empty());
        assert_eq!(findings.len(), 2);
    }
}
