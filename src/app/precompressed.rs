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

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::encoding::{self, Encoding};
use super::tree::{Finding, Found, Unreadable};

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

/// The sidecars of a streamed file that decompress to exactly its bytes, as streamed forms;
/// the others are pushed onto `findings`. `is_source(n, digest)` tells whether `n` bytes
/// with this SHA-256 digest are the source's (the caller knows its length and hash).
pub(crate) fn streamed_sidecars(
    f: &Found,
    len: u64,
    is_source: &dyn Fn(u64, &[u8]) -> bool,
    findings: &mut Vec<Finding>,
) -> Vec<Form> {
    let mut out = Vec::new();
    for (enc, sidecar) in [(Encoding::Brotli, &f.br), (Encoding::Gzip, &f.gz)] {
        let Some(path) = sidecar else { continue };
        match check_sidecar(enc, path, len, is_source) {
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
fn check_sidecar(
    enc: Encoding,
    path: &Path,
    len: u64,
    is_source: &dyn Fn(u64, &[u8]) -> bool,
) -> io::Result<Option<OnDisk>> {
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
    let same = total == len && is_source(total, ctx.finish().as_ref());
    Ok(same.then_some(disk))
}

/// The forms of an encoded-only entry (its sidecars as they are, br first) and whether
/// they are streamed: in memory when every sidecar fits under `stream_threshold`, else all
/// streamed. The caller hashes the first one for the ETags.
pub(crate) fn encoded_only_forms(
    f: &Found,
    stream_threshold: u64,
) -> Result<(bool, Vec<Form>), Unreadable> {
    let sidecars = [(Encoding::Brotli, &f.br), (Encoding::Gzip, &f.gz)]
        .into_iter()
        .filter_map(|(enc, p)| p.as_ref().map(|p| (enc, p)));
    let unreadable = |path: &Path| {
        let path = path.to_owned();
        move |source| Unreadable { path, source }
    };
    let mut opened = Vec::with_capacity(2);
    let mut streamed = false;
    for (enc, path) in sidecars {
        let file = File::open(path).map_err(unreadable(path))?;
        let meta = file.metadata().map_err(unreadable(path))?;
        streamed |= meta.len() > stream_threshold;
        opened.push((enc, path, file, meta));
    }
    let mut out = Vec::with_capacity(opened.len());
    for (enc, path, mut file, meta) in opened {
        if streamed {
            let disk = OnDisk {
                path: path.clone(),
                len: meta.len(),
                modified_secs: modified_secs(&meta),
            };
            out.push((enc, Bytes::new(), Some(disk)));
        } else {
            let mut data = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
            file.read_to_end(&mut data).map_err(unreadable(path))?;
            out.push((enc, Bytes::from(data), None));
        }
    }
    Ok((streamed, out))
}

/// The representation a `200`/`206` response to this request uses: identity when a range
/// is asked for (ranges address the identity bytes), else the negotiated coding. The
/// service decides with it which file to open before [`super::AssetService`] serves.
pub(crate) fn response_encoding(
    available: &[Encoding],
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
            available,
        )
    }
}

/// For an encoded-only asset (its codings `available`): the request's headers with `Accept-Encoding` narrowed to the
/// coding to send (the acceptable one with the highest q; br on a tie) and without `Range`
/// and `If-Range`; `None` when the client accepts none of the asset's codings (answer
/// 406).
pub(crate) fn pin_coding(available: &[Encoding], req: &HeaderMap) -> Option<HeaderMap> {
    let accept = req.get(header::ACCEPT_ENCODING).map(HeaderValue::as_bytes);
    let (enc, _) = available
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
    use crate::app::encoding::Encoding;
    use std::io::Write;

    fn compress(enc: Encoding, data: &[u8]) -> Vec<u8> {
        match enc {
            Encoding::Brotli => {
                let mut out = Vec::new();
                let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                w.write_all(data).unwrap();
                drop(w);
                out
            }
            _ => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    /// The source test: `len` bytes with this SHA-256.
    fn source(data: &[u8]) -> impl Fn(u64, &[u8]) -> bool {
        let len = data.len() as u64;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
        let digest = digest.as_ref().to_vec();
        move |n, d| n == len && d == digest
    }

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
        let br = compress(Encoding::Brotli, &data);
        std::fs::write(dir.path().join("app.wasm.br"), &br).unwrap();
        // A gzip of other bytes: stale.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&data[..data.len() - 1]).unwrap();
        std::fs::write(dir.path().join("app.wasm.gz"), e.finish().unwrap()).unwrap();

        let f = found(dir.path(), "app.wasm", true, true);
        let mut findings = Vec::new();
        let forms = streamed_sidecars(&f, data.len() as u64, &source(&data), &mut findings);
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
        let longer = compress(Encoding::Gzip, b"hello, world");
        std::fs::write(dir.path().join("a.bin.gz"), longer).unwrap();
        let f = found(dir.path(), "a.bin", true, true);
        let mut findings = Vec::new();
        assert!(streamed_sidecars(&f, 5, &source(b"hello"), &mut findings).is_empty());
        assert_eq!(findings.len(), 2);
    }
}
