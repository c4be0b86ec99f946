//! Test harness: starts the real library server on 127.0.0.1:0 with a temporary copy of the
//! demo SPA and a temporary development CA, and provides real TLS clients (rustls + hyper
//! HTTP/1.1 and HTTP/2). Loopback only.
#![allow(dead_code, missing_docs)]

pub mod binary;
pub mod h2raw;
pub mod h3client;
pub mod h3raw;
pub mod pebble;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rampart::telemetry::Metrics;
use rampart::{CertSource, Config, Server, ShutdownSummary};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP/3 (UDP) address, when HTTP/3 is on.
    pub h3_addr: Option<SocketAddr>,
    pub http_addr: Option<SocketAddr>,
    pub ca: PathBuf,
    pub root: PathBuf,
    pub metrics: Arc<Metrics>,
    pub site: Arc<rampart::Site>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<rampart::Result<ShutdownSummary>>>,
    _dir: tempfile::TempDir,
}

/// Copies a directory tree (files and directories only).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The repository's demo SPA.
pub fn www() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("www")
}

impl TestServer {
    /// Starts a server over a fresh copy of www/ (or of `root` when `configure` changes it).
    pub async fn start(configure: impl FnOnce(&mut Config)) -> Self {
        Self::start_prepared(configure, |_| {}).await
    }

    /// [`TestServer::start`], with `prepare` given the bound server before it runs (to set
    /// what the library API sets there, e.g. ACME challenge answers).
    pub async fn start_prepared(
        configure: impl FnOnce(&mut Config),
        prepare: impl FnOnce(&mut Server),
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        copy_tree(&www(), &root);
        let certs = dir.path().join("certs");
        let mut config = Config::new(&root);
        config.listen = vec!["127.0.0.1:0".parse().unwrap()];
        config.cert = CertSource::Dev { dir: certs.clone() };
        config.watch_interval = Duration::from_millis(200);
        configure(&mut config);
        let root = config.root.clone();
        let mut server = Server::bind(config).await.expect("server binds");
        prepare(&mut server);
        let addr = server.local_addrs()[0];
        let h3_addr = server.http3_addrs().first().copied();
        let http_addr = server.http_addr();
        let metrics = server.metrics();
        let site = server.site();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            h3_addr,
            http_addr,
            ca: certs.join("ca.pem"),
            root,
            metrics,
            site,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn tmp(&self) -> &Path {
        self._dir.path()
    }

    /// Triggers graceful shutdown and waits for the drain.
    pub async fn shutdown(mut self) -> ShutdownSummary {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.take().unwrap().await.unwrap().unwrap()
    }

    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        client_config(&self.ca, alpn, None)
    }

    pub async fn connect(&self, config: Arc<rustls::ClientConfig>) -> TlsStream<TcpStream> {
        tls_connect(self.addr, config, "localhost")
            .await
            .expect("tls connect")
    }

    /// One GET over a new HTTP/1.1 connection.
    pub async fn get(&self, path: &str) -> (http::response::Parts, Bytes) {
        self.request(http::Method::GET, path, &[]).await
    }

    /// One request over a new HTTP/1.1 connection.
    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (http::response::Parts, Bytes) {
        let mut h1 = H1::connect(self, self.client(&[b"http/1.1"])).await;
        h1.request(method, path, headers).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// A rustls client config trusting the CA at `ca`, with the given ALPN protocols and, if
/// given, TLS versions.
pub fn client_config(
    ca: &Path,
    alpn: &[&[u8]],
    versions: Option<&[&'static rustls::SupportedProtocolVersion]>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = match versions {
        Some(v) => builder.with_protocol_versions(v).unwrap(),
        None => builder.with_safe_default_protocol_versions().unwrap(),
    };
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(name.to_owned()).unwrap();
    TlsConnector::from(config).connect(name, tcp).await
}

/// An HTTP/1.1 client connection over TLS.
pub struct H1 {
    pub send: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    pub authority: String,
}

impl H1 {
    pub async fn connect(server: &TestServer, config: Arc<rustls::ClientConfig>) -> Self {
        let tls = server.connect(config).await;
        Self::over(tls, server.addr).await
    }

    pub async fn over(tls: TlsStream<TcpStream>, addr: SocketAddr) -> Self {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        Self {
            send,
            authority: format!("localhost:{}", addr.port()),
        }
    }

    pub async fn request(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (http::response::Parts, Bytes) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.authority);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .send
            .send_request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    }
}

/// An HTTP/2 client connection over TLS.
#[derive(Clone)]
pub struct H2 {
    pub send: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    pub authority: String,
}

impl H2 {
    pub async fn connect(server: &TestServer) -> Self {
        let tls = server.connect(server.client(&[b"h2"])).await;
        Self::over(tls, server.addr).await
    }

    pub async fn over(tls: TlsStream<TcpStream>, addr: SocketAddr) -> Self {
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(conn);
        Self {
            send,
            authority: format!("localhost:{}", addr.port()),
        }
    }

    pub async fn request(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (http::response::Parts, Bytes) {
        let mut req = http::Request::builder().uri(format!("https://{}{path}", self.authority));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .send
            .send_request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        (parts, body.collect().await.unwrap().to_bytes())
    }
}

/// Deterministic pseudo-random bytes (xorshift64*): incompressible, and distinct everywhere
/// so that a misplaced slice cannot pass for the right one.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The bytes of a file of the demo SPA.
pub fn www_file(rel: &str) -> Vec<u8> {
    std::fs::read(www().join(rel.trim_start_matches('/'))).unwrap()
}

/// The asset URLs referenced by the demo index.html (src= / href= starting with /assets/).
pub fn asset_urls(index: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in index.split(['"', '\'']) {
        if part.starts_with("/assets/") && !out.iter().any(|o| o == part) {
            out.push(part.to_owned());
        }
    }
    out
}
