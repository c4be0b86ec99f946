//! The HTTP application: ONE `tower::Service` ([`AssetService`]) that answers every request
//! from the current [`AssetTable`]. It owns routing (exact asset, directory index, SPA
//! fallback for navigations (app/navigation.rs), 404), method rules, conditional and range requests, content negotiation and
//! the header policy. It knows nothing about sockets or TLS, so it is tested with `oneshot`.
//!
//! Hot path: decode the path (no copy unless it has `%`), one hash lookup, negotiate the
//! coding, clone a precomputed header map, slice `Bytes`. Only assets streamed from disk
//! take an async step (opening the file on the blocking pool).
//!
//! Files: assets.rs builds the table (tree.rs walks the root, hashed.rs tells hashed names,
//! precompressed.rs handles `.br`/`.gz` of streamed and source-less files, retired.rs keeps
//! previous deploys' hashed assets, deploy_check.rs holds back a half-copied deploy);
//! redeploy.rs polls; path.rs, encoding.rs, range.rs, navigation.rs, headers.rs parse and
//! decide per request; body.rs and budget.rs send.
//!
//! [`Site`] owns the table's life: it logs what a build found wrong with the tree
//! ([`Finding`]) when that table is swapped in (at start-up and on each rebuild), so a
//! tree's problems are logged once per change of the tree, all of them each time: the log
//! of the latest deploy is complete on its own. A poll that finds nothing changed logs
//! nothing, and neither does a failed rebuild beyond its error (the redeploy poller logs that once).

pub mod assets;
pub mod basic_auth;
pub mod body;
pub mod budget;
pub mod cors;
pub mod deploy_check;
pub mod encoding;
pub mod hashed;
pub mod headers;
pub mod navigation;
pub mod path;
pub(crate) mod precompressed;
pub mod range;
pub(crate) mod redeploy;
pub mod retired;
pub mod routes;
pub mod tree;

use std::convert::Infallible;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::rules::{HeaderOp, Origin, Routed};
pub use assets::{Asset, AssetTable, BuildError, BuildOptions};
use basic_auth::BasicAuth;
use body::Part;
pub use body::{Body, OnDone};
pub use budget::{SendBudget, SendPool};
use encoding::Encoding;
pub use headers::SecurityHeaders;
use range::Ranges;
pub use tree::Finding;
use tree::Tree;

/// How the site is served; fixed for the life of the server.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// Directory of the built app.
    pub root: PathBuf,
    /// SPA fallback: unknown extensionless paths get index.html.
    pub spa: bool,
    /// Request-target length limit (414 beyond).
    pub max_uri_length: usize,
    /// Table build options (stream threshold, security headers).
    pub build: BuildOptions,
}

/// The served site: options plus the current asset table, swappable at run time.
#[derive(Debug)]
pub struct Site {
    options: SiteOptions,
    table: ArcSwap<AssetTable>,
    boundary: Box<str>,
    /// Held by a rebuild: a SIGHUP during the watcher's rebuild then finds nothing to do,
    /// rather than building (and reporting) the same tree twice.
    reloading: Mutex<()>,
    /// Holds back a tree whose index.html references files not yet copied (app/deploy_check.rs).
    gate: deploy_check::DeployGate,
}

impl Site {
    /// Loads the root into a first table and logs its findings at warn.
    ///
    /// # Errors
    /// [`BuildError`] when the root cannot be read or has no index.html (what the walk
    /// refused is logged first: index.html may be a symlink out of the root).
    pub fn load(options: SiteOptions) -> Result<Arc<Self>, BuildError> {
        let tree = Tree::walk(&options.root)?;
        let table = match AssetTable::from_tree(&tree, &options.build, None) {
            Ok(table) => table,
            Err(e) => {
                tree.findings().iter().for_each(Finding::log);
                return Err(e);
            }
        };
        table.findings().iter().for_each(Finding::log);
        deploy_check::warn_missing(&tree);
        let mut seed = [0u8; 12];
        // A random boundary per process; failure only makes it predictable, not wrong.
        let _ = aws_lc_rs::rand::fill(&mut seed);
        let boundary = seed.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Ok(Arc::new(Self {
            options,
            table: ArcSwap::from_pointee(table),
            boundary: boundary.into(),
            reloading: Mutex::new(()),
            gate: deploy_check::DeployGate::default(),
        }))
    }

    /// The current table.
    #[must_use]
    pub fn table(&self) -> Arc<AssetTable> {
        self.table.load_full()
    }

    /// The options the site was loaded with.
    #[must_use]
    pub fn options(&self) -> &SiteOptions {
        &self.options
    }

    /// Rebuilds the table if files changed on disk and swaps it in; requests in flight
    /// finish on the old one. Returns the new generation, or `None` if nothing changed. A
    /// tree without index.html (a deploy half-copied) keeps the old table, and so does one
    /// whose index.html references scripts or styles not yet in it, for a bounded wait
    /// ([`BuildError::Incomplete`], app/deploy_check.rs). The new table's
    /// findings are logged at warn; nothing is logged when nothing changed or on an error.
    ///
    /// # Errors
    /// [`BuildError`]; the old table stays in service.
    pub fn reload(&self) -> Result<Option<u64>, BuildError> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.table.load_full();
        // One walk decides and builds: the tree seen is the tree served.
        let tree = Tree::walk(&self.options.root)?;
        if tree.fingerprint() == current.fingerprint() {
            return Ok(None);
        }
        self.gate.check(&tree)?;
        let next = AssetTable::from_tree(&tree, &self.options.build, Some(&current))?;
        next.findings().iter().for_each(Finding::log);
        let generation = next.generation();
        self.table.store(Arc::new(next));
        Ok(Some(generation))
    }
}

/// The asset-serving tower `Service`. Cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct AssetService {
    site: Arc<Site>,
}

impl AssetService {
    /// A service over a loaded site.
    #[must_use]
    pub fn new(site: Arc<Site>) -> Self {
        Self { site }
    }

    /// The site this service answers from.
    #[must_use]
    pub fn site(&self) -> &Arc<Site> {
        &self.site
    }
}

impl<B> tower::Service<Request<B>> for AssetService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        self.respond(req.method(), req.uri(), req.headers())
    }
}

/// The future of [`AssetService`]: ready at once unless a file must be opened.
pub enum ResponseFuture {
    /// The response is built.
    Ready(Option<Response<Body>>),
    /// Opening a streamed file on the blocking pool.
    Open(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl std::fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Ready(_) => "ResponseFuture::Ready",
            Self::Open(_) => "ResponseFuture::Open",
        })
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Self::Ready(r) => {
                Poll::Ready(Ok(r.take().unwrap_or_else(|| Response::new(Body::empty()))))
            }
            Self::Open(f) => f.as_mut().poll(cx).map(Ok),
        }
    }
}

/// What a request resolved to, borrowed from the table in service (no reference count is
/// touched unless the answer must outlive the call: a streamed file).
enum Target<'a> {
    /// A path of the table (its headers carry the path's rules).
    Entry(&'a assets::Entry, StatusCode),
    /// An asset served for another path (the SPA fallback, a 404 page, a rewrite's
    /// target): its own headers, with the rules of the requested path applied per request.
    Asset(&'a Arc<Asset>, StatusCode),
    /// A redirect to add a directory's slash, or a redirect rule's.
    Redirect(String, StatusCode),
}

/// A resolution, and whether it depended on the request's navigation signals (the SPA
/// fallback or the 404 of a missing path: its response carries `navigation::VARY`).
struct Resolved<'a> {
    target: Result<Target<'a>, StatusCode>,
    by_signals: bool,
}

impl<'a> Resolved<'a> {
    fn found(target: Result<Target<'a>, StatusCode>) -> Self {
        Self {
            target,
            by_signals: false,
        }
    }
}

/// What the service needs of a request.
#[derive(Clone)]
struct Ask<'a> {
    method: &'a Method,
    uri: &'a http::Uri,
    headers: &'a HeaderMap,
}

impl AssetService {
    fn respond(&self, method: &Method, uri: &http::Uri, req_headers: &HeaderMap) -> ResponseFuture {
        let ask = Ask {
            method,
            uri,
            headers: req_headers,
        };
        self.respond_to(&ask, false)
    }

    /// Answers a request; `authorized`: a Basic-Auth rule for the path has been satisfied.
    fn respond_to(&self, ask: &Ask<'_>, authorized: bool) -> ResponseFuture {
        let security = &self.site.options.build.security;
        let method = ask.method;
        let head = *method == Method::HEAD;
        // A HEAD answer is the GET answer without its body, error pages included: hyper's
        // HTTP/2 server would otherwise send the body as DATA frames.
        let ready = |r| ResponseFuture::Ready(Some(if head { without_body(r) } else { r }));
        let options = *method == Method::OPTIONS;
        if *method != Method::GET && !head && !options {
            return ready(method_not_allowed(security));
        }
        let target_len = ask.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if target_len > self.site.options.max_uri_length {
            return ready(text(
                StatusCode::URI_TOO_LONG,
                "414 URI Too Long\n",
                security,
            ));
        }
        let decoded = match path::decode(ask.uri.path()) {
            Ok(p) => p,
            Err(e) => {
                let status = match e {
                    path::PathError::Malformed => StatusCode::BAD_REQUEST,
                    path::PathError::Forbidden => StatusCode::NOT_FOUND,
                };
                return ready(error_page(status, security));
            }
        };
        let table = self.site.table.load();
        let entry = table.entry(&decoded);
        // The rules are asked only for a path the table marked, or one it does not have.
        let rules = &table.rules.set;
        // The host is read only when a rule may depend on it, and at most once.
        let mut host = None;
        let ask_rules = !rules.is_empty()
            && entry.is_none_or(|e| {
                e.ask_rules
                    || (options && e.preflight)
                    || (e.ask_host && {
                        host = request_host(ask.uri, ask.headers);
                        host.is_some_and(|h| rules.names_host(h))
                    })
            });
        if ask_rules && host.is_none() {
            host = request_host(ask.uri, ask.headers);
        }
        if ask_rules && !authorized {
            if let Some(auth) = table.rules.auth_for(host, &decoded) {
                return self.after_auth(Arc::clone(auth), ask);
            }
        }
        let per_request = ask_rules || entry.is_none();
        let ops = if per_request && !rules.is_empty() {
            rules.header_ops(host, &decoded)
        } else {
            Vec::new()
        };
        if options {
            let r = match cors::preflight(&ops, ask.headers, security) {
                Some(r) => r,
                None => method_not_allowed(security),
            };
            return ready(finish(r, false, &ops));
        }
        let routed = ask_rules
            .then(|| rules.route(host, &decoded, ask.uri.query(), entry.is_some()))
            .flatten();
        let Resolved { target, by_signals } = match routed {
            Some(routed) => Resolved::found(self.routed(&table, &routed)),
            None => self.resolve(&table, entry, &decoded, ask),
        };
        let (asset, headers, status) = match target {
            Err(status) => return ready(finish(error_page(status, security), by_signals, &ops)),
            Ok(Target::Redirect(location, status)) => {
                let r = redirect(status, &location, security);
                return ready(finish(r, by_signals, &ops));
            }
            Ok(Target::Entry(entry, status)) => (&entry.asset, entry.headers.as_ref(), status),
            Ok(Target::Asset(asset, status)) => (asset, None, status),
        };
        // A file that exists only precompressed: sent in a coding the client accepts, or 406.
        let pinned;
        let req_headers = if asset.has_identity() {
            ask.headers
        } else if let Some(h) = precompressed::pin_coding(&asset.encodings, ask.headers) {
            pinned = h;
            &pinned
        } else {
            let mut r = text(
                StatusCode::NOT_ACCEPTABLE,
                precompressed::NOT_ACCEPTABLE,
                security,
            );
            r.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
            return ready(finish(r, false, &ops));
        };
        if asset.is_streamed() {
            let (asset, headers) = (Arc::clone(asset), headers.cloned());
            let (method, req_headers) = (method.clone(), req_headers.clone());
            let this = self.clone();
            let ops: Vec<(Origin, HeaderOp)> = ops
                .iter()
                .map(|(o, op)| ((*o).clone(), (*op).clone()))
                .collect();
            return ResponseFuture::Open(Box::pin(async move {
                let r = this
                    .serve_file(asset, headers, status, &method, &req_headers)
                    .await;
                let ops: Vec<(&Origin, &HeaderOp)> = ops.iter().map(|(o, op)| (o, op)).collect();
                finish(r, by_signals, &ops)
            }));
        }
        let r = self.serve(
            asset,
            headers.map(|h| &h[..]),
            status,
            method,
            req_headers,
            &Source::Memory,
        );
        ready(finish(r, by_signals, &ops))
    }

    /// A request for a path a Basic-Auth rule guards: the check runs off the runtime
    /// (bcrypt is slow), then the request is answered as if unguarded, or refused.
    fn after_auth(&self, auth: Arc<BasicAuth>, ask: &Ask<'_>) -> ResponseFuture {
        let (method, uri, headers) = (ask.method.clone(), ask.uri.clone(), ask.headers.clone());
        let this = self.clone();
        ResponseFuture::Open(Box::pin(async move {
            let security = &this.site.options.build.security;
            let head = method == Method::HEAD;
            let given = headers
                .get(header::AUTHORIZATION)
                .map_or(&b""[..], HeaderValue::as_bytes);
            let refused = match auth.check(given).await {
                basic_auth::Outcome::Allowed { .. } => {
                    let ask = Ask {
                        method: &method,
                        uri: &uri,
                        headers: &headers,
                    };
                    return match this.respond_to(&ask, true).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                }
                basic_auth::Outcome::Denied => {
                    let mut r = text(
                        StatusCode::UNAUTHORIZED,
                        "401 Unauthorized: this path needs a user name and password\n",
                        security,
                    );
                    r.headers_mut()
                        .insert(header::WWW_AUTHENTICATE, auth.challenge().clone());
                    r
                }
                basic_auth::Outcome::Busy => {
                    let mut r = text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "503 Service Unavailable: too many password checks at once\n",
                        security,
                    );
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                    r
                }
            };
            if head {
                without_body(refused)
            } else {
                refused
            }
        }))
    }

    /// What a redirect rule's answer is: a redirect, or the target's content served at the
    /// requested path (200) or with the rule's status (404, 410).
    fn routed<'a>(
        &self,
        table: &'a AssetTable,
        routed: &Routed<'_>,
    ) -> Result<Target<'a>, StatusCode> {
        if routed.status.is_redirection() {
            return Ok(Target::Redirect(routed.target.clone(), routed.status));
        }
        match table.get(&routed.target) {
            Some(asset) => Ok(Target::Asset(asset, routed.status)),
            None if routed.status == StatusCode::OK => Err(StatusCode::NOT_FOUND),
            None => Err(routed.status),
        }
    }

    /// Opens a streamed file on the blocking pool and answers from it; a file changed or
    /// gone since the table was built is a 503 until the rebuild.
    async fn serve_file(
        &self,
        asset: Arc<Asset>,
        headers: Option<Arc<[HeaderMap]>>,
        status: StatusCode,
        method: &Method,
        req_headers: &HeaderMap,
    ) -> Response<Body> {
        let encoding =
            precompressed::response_encoding(&asset.encodings, status, method, req_headers);
        match open_checked(Arc::clone(&asset), encoding).await {
            Ok(file) => self.serve(
                &asset,
                headers.as_deref(),
                status,
                method,
                req_headers,
                &Source::File(file),
            ),
            Err(e) => {
                // Every request for the file gets a 503 until a rebuild swaps in a new
                // entry (never, with watching off): warn once per entry.
                let path = asset.disk_path().unwrap_or(Path::new("")).display();
                if asset.first_seen_changed() {
                    tracing::warn!(path = %path, error = %e, "streamed file changed or vanished; answering 503 until the reload");
                } else {
                    tracing::debug!(path = %path, error = %e, "streamed file changed or vanished; 503");
                }
                let mut r = text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "503 Service Unavailable: file is being replaced\n",
                    &self.site.options.build.security,
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                if *method == Method::HEAD {
                    without_body(r)
                } else {
                    r
                }
            }
        }
    }

    /// Maps a path no rule took to an answer: the table's entry, redirect to add the slash
    /// of a directory, SPA fallback to index.html for a navigation (see
    /// app/navigation.rs), the site's 404.html, or a status.
    fn resolve<'a>(
        &self,
        table: &'a AssetTable,
        entry: Option<&'a assets::Entry>,
        decoded: &str,
        ask: &Ask<'_>,
    ) -> Resolved<'a> {
        if let Some(entry) = entry {
            return Resolved::found(Ok(Target::Entry(entry, StatusCode::OK)));
        }
        // A tab opened before a redeploy asks for its build's chunks (app/retired.rs).
        if let Some(asset) = table.retired().get(decoded) {
            return Resolved::found(Ok(Target::Asset(asset, StatusCode::OK)));
        }
        if table.dirs.contains(decoded) {
            let mut location = format!("{}/", ask.uri.path());
            if let Some(q) = ask.uri.query() {
                location.push('?');
                location.push_str(q);
            }
            return Resolved::found(Ok(Target::Redirect(
                location,
                StatusCode::PERMANENT_REDIRECT,
            )));
        }
        // The rule files are read by the build, never served, not even as the fallback.
        if decoded == routes::HEADERS_FILE || decoded == routes::REDIRECTS_FILE {
            return Resolved::found(Err(StatusCode::NOT_FOUND));
        }
        let spa = self.site.options.spa && !decoded.starts_with("/.well-known/");
        if spa {
            // A navigation gets the app whatever its last segment looks like (`/u/john.doe`,
            // `/docs/v1.2`); a missing script or image keeps its 404.
            let page = match navigation::wants(ask.headers) {
                navigation::Wants::Page => true,
                navigation::Wants::Resource => false,
                navigation::Wants::Unknown => !path::has_extension(decoded),
            };
            if page {
                return Resolved {
                    target: Ok(Target::Asset(&table.index, StatusCode::OK)),
                    by_signals: true,
                };
            }
        }
        Resolved {
            target: match &table.not_found {
                Some(page) => Ok(Target::Asset(page, StatusCode::NOT_FOUND)),
                None => Err(StatusCode::NOT_FOUND),
            },
            by_signals: spa,
        }
    }

    fn serve(
        &self,
        asset: &Asset,
        headers: Option<&[HeaderMap]>,
        status: StatusCode,
        method: &Method,
        req: &HeaderMap,
        source: &Source,
    ) -> Response<Body> {
        let security = &self.site.options.build.security;
        let head = *method == Method::HEAD;
        let range_header = req
            .get(header::RANGE)
            .filter(|_| status == StatusCode::OK && !head);
        // Ranges address the identity representation; compressed ones are for whole bodies.
        let encoding = precompressed::response_encoding(&asset.encodings, status, method, req);
        let index = asset.rep_index(encoding);
        let rep = &asset.reps[index];
        // The path's own header maps when its rules changed any, else the asset's.
        let rep_headers = headers.map_or(&rep.headers, |maps| &maps[index]);

        if status == StatusCode::OK {
            if let Some(pre) = preconditions(asset, &rep.etag, req) {
                return if pre == StatusCode::NOT_MODIFIED {
                    let mut headers = stamped(rep_headers);
                    for h in [
                        header::CONTENT_LENGTH,
                        header::CONTENT_TYPE,
                        header::CONTENT_ENCODING,
                        header::ACCEPT_RANGES,
                    ] {
                        headers.remove(h);
                    }
                    with_headers(StatusCode::NOT_MODIFIED, headers, Body::empty())
                } else {
                    text(pre, "412 Precondition Failed\n", security)
                };
            }
        }

        let full = |source: &Source| -> Body {
            if head {
                Body::empty()
            } else {
                Body::from_parts(vec![source.part(rep, 0, asset_len(asset, rep))])
            }
        };
        let Some(range_value) = range_header else {
            let mut headers = stamped(rep_headers);
            if status != StatusCode::OK {
                headers.insert(header::CACHE_CONTROL, headers::NO_CACHE);
            }
            return with_headers(status, headers, full(source));
        };
        if !if_range_holds(asset, &rep.etag, req) {
            return with_headers(status, stamped(rep_headers), full(source));
        }
        match range::parse(range_value.as_bytes(), asset.len) {
            Ranges::Ignore => with_headers(status, stamped(rep_headers), full(source)),
            Ranges::Unsatisfiable => {
                let mut r = text(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "416 Range Not Satisfiable\n",
                    security,
                );
                headers::set(
                    r.headers_mut(),
                    header::CONTENT_RANGE,
                    &format!("bytes */{}", asset.len),
                );
                r.headers_mut()
                    .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                r
            }
            Ranges::Satisfiable(ranges) if ranges.len() == 1 => {
                let r = &ranges[0];
                let mut headers = stamped(rep_headers);
                headers::set(
                    &mut headers,
                    header::CONTENT_RANGE,
                    &format!("bytes {}-{}/{}", r.start, r.end - 1, asset.len),
                );
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.end - r.start));
                with_headers(
                    StatusCode::PARTIAL_CONTENT,
                    headers,
                    Body::from_parts(vec![source.part(rep, r.start, r.end - r.start)]),
                )
            }
            Ranges::Satisfiable(ranges) => {
                let ct = asset
                    .content_type
                    .to_str()
                    .unwrap_or("application/octet-stream");
                let mut parts = Vec::with_capacity(ranges.len() * 2 + 1);
                for (i, r) in ranges.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "\r\n" };
                    let head =
                        format!(
                        "{sep}--{b}\r\nContent-Type: {ct}\r\nContent-Range: bytes {}-{}/{}\r\n\r\n",
                        r.start, r.end - 1, asset.len, b = self.site.boundary
                    );
                    parts.push(Part::Bytes(Bytes::from(head)));
                    parts.push(source.part(rep, r.start, r.end - r.start));
                }
                let mut tail = BytesMut::new();
                tail.put_slice(format!("\r\n--{}--\r\n", self.site.boundary).as_bytes());
                parts.push(Part::Bytes(tail.freeze()));
                let body = Body::from_parts(parts);
                let mut headers = stamped(rep_headers);
                headers::set(
                    &mut headers,
                    header::CONTENT_TYPE,
                    &format!("multipart/byteranges; boundary={}", self.site.boundary),
                );
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.remaining()));
                with_headers(StatusCode::PARTIAL_CONTENT, headers, body)
            }
        }
    }
}

fn asset_len(asset: &Asset, rep: &assets::Representation) -> u64 {
    if rep.encoding == Encoding::Identity {
        asset.len
    } else {
        rep.disk.as_ref().map_or(rep.bytes.len() as u64, |d| d.len)
    }
}

/// Where the bytes of a response come from.
enum Source {
    Memory,
    File(Arc<File>),
}

impl Source {
    fn part(&self, rep: &assets::Representation, offset: u64, len: u64) -> Part {
        match self {
            Self::Memory => {
                let (a, b) = (
                    usize::try_from(offset).unwrap_or(usize::MAX),
                    usize::try_from(offset + len).unwrap_or(usize::MAX),
                );
                Part::Bytes(
                    rep.bytes
                        .slice(a.min(rep.bytes.len())..b.min(rep.bytes.len())),
                )
            }
            Self::File(file) => Part::File {
                file: Arc::clone(file),
                offset,
                len,
            },
        }
    }
}

/// Opens the file of a streamed representation (the source or a sidecar, by `encoding`)
/// and checks it is still the one the table describes.
async fn open_checked(asset: Arc<Asset>, encoding: Encoding) -> std::io::Result<Arc<File>> {
    tokio::task::spawn_blocking(move || {
        let disk = asset
            .rep(encoding)
            .disk
            .as_ref()
            .ok_or_else(|| std::io::Error::other("not a streamed asset"))?;
        let file = File::open(&disk.path)?;
        let meta = file.metadata()?;
        let secs = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if meta.len() != disk.len || secs != disk.modified_secs {
            return Err(std::io::Error::other("size or mtime changed on disk"));
        }
        Ok(Arc::new(file))
    })
    .await
    .map_err(std::io::Error::other)?
}

/// RFC 9110 §13.2.2 order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
/// Returns 412 or 304 when a precondition decides the answer.
fn preconditions(asset: &Asset, etag: &HeaderValue, req: &HeaderMap) -> Option<StatusCode> {
    if let Some(im) = req.get(header::IF_MATCH) {
        if !etag_list_matches(im.as_bytes(), etag.as_bytes(), false) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let Some(since) = req.get(header::IF_UNMODIFIED_SINCE).and_then(http_date) {
        if asset.modified_secs > since {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    }
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        if etag_list_matches(inm.as_bytes(), etag.as_bytes(), true) {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let Some(since) = req.get(header::IF_MODIFIED_SINCE).and_then(http_date) {
        if asset.modified_secs <= since {
            return Some(StatusCode::NOT_MODIFIED);
        }
    }
    None
}

/// If-Range: the range applies only if the validator still matches (strong comparison for
/// ETags, exact Last-Modified for dates).
fn if_range_holds(asset: &Asset, etag: &HeaderValue, req: &HeaderMap) -> bool {
    let Some(v) = req.get(header::IF_RANGE) else {
        return true;
    };
    let b = v.as_bytes();
    if b.starts_with(b"\"") || b.starts_with(b"W/") {
        return b == etag.as_bytes();
    }
    http_date(v).is_some_and(|t| t == asset.modified_secs)
}

fn http_date(v: &HeaderValue) -> Option<u64> {
    let t = httpdate::parse_http_date(v.to_str().ok()?).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Whether `etag` is in an `If-Match`/`If-None-Match` list (`*` matches any). Weak
/// comparison ignores `W/`; strong comparison never matches a weak tag.
fn etag_list_matches(list: &[u8], etag: &[u8], weak: bool) -> bool {
    list.split(|&b| b == b',').any(|item| {
        let item = item.trim_ascii();
        if item == b"*" {
            return true;
        }
        match item.strip_prefix(b"W/") {
            Some(opaque) => weak && opaque == etag,
            None => item == etag,
        }
    })
}

/// The response with what the request's path adds: the `Vary` of a choice made by the
/// navigation signals, and the header rules applied per request.
fn finish(mut r: Response<Body>, by_signals: bool, ops: &[(&Origin, &HeaderOp)]) -> Response<Body> {
    if by_signals {
        r.headers_mut().insert(header::VARY, navigation::VARY);
    }
    if !ops.is_empty() {
        let success = r.status().is_success() || r.status() == StatusCode::NOT_MODIFIED;
        routes::apply(r.headers_mut(), ops, success);
    }
    r
}

/// 405 with `Allow`: the app answers GET and HEAD (and a CORS preflight where a rule
/// allows one).
fn method_not_allowed(security: &SecurityHeaders) -> Response<Body> {
    let mut r = text(
        StatusCode::METHOD_NOT_ALLOWED,
        "405 Method Not Allowed: this server answers GET and HEAD\n",
        security,
    );
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    r
}

/// The short text answer of an error status the app decided.
fn error_page(status: StatusCode, security: &SecurityHeaders) -> Response<Body> {
    let msg = match status {
        StatusCode::BAD_REQUEST => "400 Bad Request: malformed path\n",
        StatusCode::GONE => "410 Gone\n",
        _ => "404 Not Found\n",
    };
    text(status, msg, security)
}

/// A redirect to `location` (a directory's slash, or a redirect rule).
fn redirect(status: StatusCode, location: &str, security: &SecurityHeaders) -> Response<Body> {
    let msg = match status {
        StatusCode::MOVED_PERMANENTLY => "301 Moved Permanently\n",
        StatusCode::FOUND => "302 Found\n",
        StatusCode::SEE_OTHER => "303 See Other\n",
        StatusCode::TEMPORARY_REDIRECT => "307 Temporary Redirect\n",
        _ => "308 Permanent Redirect\n",
    };
    let mut r = text(status, msg, security);
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The host a request names (`:authority` or `Host`), without its port; asked only when a
/// rule may depend on it.
fn request_host<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    let raw = match uri.authority() {
        Some(a) => a.as_str(),
        None => headers.get(header::HOST)?.to_str().ok()?,
    };
    let raw = raw.rsplit_once('@').map_or(raw, |(_, h)| h);
    if let Some(v6) = raw.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(raw.split_once(':').map_or(raw, |(h, _)| h))
}

/// The same status and headers (Content-Length included) with an empty body.
fn without_body(r: Response<Body>) -> Response<Body> {
    let (parts, _) = r.into_parts();
    Response::from_parts(parts, Body::empty())
}

/// A copy of an asset's precomputed headers with the current `Date`. The maps carry a
/// `Date` entry from the start, so this replaces a value in place: left to hyper, the date
/// was an insert into a full copy, which reallocated its entries on every response.
fn stamped(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    if let Some(date) = h.get_mut(header::DATE) {
        *date = date_now();
    }
    h
}

/// Now as an HTTP date; formatted at most once a second per thread.
pub(crate) fn date_now() -> HeaderValue {
    thread_local! {
        static CACHED: std::cell::RefCell<(u64, HeaderValue)> =
            const { std::cell::RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            let value = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                .unwrap_or(HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
            *cached = (secs, value);
        }
        cached.1.clone()
    })
}

fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    *r.headers_mut() = headers;
    r
}

/// A short text/plain answer with the security headers; used for every error status.
#[must_use]
pub fn text(status: StatusCode, msg: &'static str, security: &SecurityHeaders) -> Response<Body> {
    let mut headers = security.map().clone();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(msg.len()));
    headers.insert(header::CACHE_CONTROL, headers::NO_CACHE);
    with_headers(
        status,
        headers,
        Body::from_bytes(Bytes::from_static(msg.as_bytes())),
    )
}
