//! A real HTTP/3 client for the tests: the h3 crate's client over quinn, with rustls
//! trusting the test server's development CA. Loopback only.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use quinn::crypto::rustls::QuicClientConfig;

/// A quinn client endpoint whose rustls configuration trusts `ca`, keeps session tickets
/// (so later connections resume) and counts certificate verifications (a resumed
/// handshake has none).
pub struct H3Client {
    pub endpoint: quinn::Endpoint,
    pub tls: Arc<rustls::ClientConfig>,
    pub verifications: Arc<AtomicUsize>,
}

/// A server-certificate verifier that counts its calls and then defers to webpki.
#[derive(Debug)]
struct Counting {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    calls: Arc<AtomicUsize>,
}

impl rustls::client::danger::ServerCertVerifier for Counting {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The rustls client configuration the HTTP/3 client uses (TLS 1.3, ALPN `alpn`), built
/// around a counting verifier; `resumption` shares a ticket store with another config.
pub fn tls_config(
    ca: &Path,
    alpn: &[&[u8]],
    resumption: Option<rustls::client::Resumption>,
) -> (rustls::ClientConfig, Arc<AtomicUsize>) {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let calls = Arc::new(AtomicUsize::new(0));
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Counting {
            inner,
            calls: Arc::clone(&calls),
        }))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    if let Some(r) = resumption {
        config.resumption = r;
    }
    (config, calls)
}

impl H3Client {
    /// A client trusting `ca`.
    pub fn new(ca: &Path) -> Self {
        Self::with_resumption(ca, None)
    }

    /// A client trusting `ca` whose tickets live in `resumption`'s store.
    pub fn with_resumption(ca: &Path, resumption: Option<rustls::client::Resumption>) -> Self {
        let (tls, verifications) = tls_config(ca, &[b"h3"], resumption);
        Self::from_config(tls, verifications)
    }

    /// A client on `tls` (ALPN set to h3, early data on). rustls resumes a ticket only
    /// under the verifier and client-certificate resolver it was obtained with (the same
    /// `Arc`s), so a TCP config sharing tickets with this one must be a clone of `tls`.
    pub fn from_config(mut tls: rustls::ClientConfig, verifications: Arc<AtomicUsize>) -> Self {
        tls.alpn_protocols = vec![b"h3".to_vec()];
        tls.enable_early_data = true;
        let tls = Arc::new(tls);
        let quic = QuicClientConfig::try_from(Arc::clone(&tls)).unwrap();
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        Self {
            endpoint,
            tls,
            verifications,
        }
    }

    /// A new QUIC connection to `addr` for `localhost`, with HTTP/3 on it.
    pub async fn connect(&self, addr: SocketAddr) -> Result<H3Conn, String> {
        let conn = self
            .endpoint
            .connect(addr, "localhost")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        H3Conn::over(conn, addr.port()).await
    }
}

/// One HTTP/3 connection.
pub struct H3Conn {
    pub quic: quinn::Connection,
    pub send: h3::client::SendRequest<h3_quinn::OpenStreams, Bytes>,
    pub port: u16,
    /// Resolves with the connection's end (GOAWAY handled, close seen).
    pub closed: tokio::task::JoinHandle<String>,
}

/// A response as the tests look at it.
pub struct Answer {
    pub parts: http::response::Parts,
    pub body: Bytes,
}

impl H3Conn {
    pub async fn over(conn: quinn::Connection, port: u16) -> Result<Self, String> {
        let (mut driver, send) = h3::client::new(h3_quinn::Connection::new(conn.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let closed =
            tokio::spawn(async move { poll_fn(|cx| driver.poll_close(cx)).await.to_string() });
        Ok(Self {
            quic: conn,
            send,
            port,
            closed,
        })
    }

    /// One request; the answer with its whole body.
    pub async fn request(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost:{}{path}", self.port));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(()).unwrap();
        let mut stream = self
            .send
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        stream.finish().await.map_err(|e| e.to_string())?;
        let resp = stream.recv_response().await.map_err(|e| e.to_string())?;
        let mut body = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await.map_err(|e| e.to_string())? {
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        let (parts, ()) = resp.into_parts();
        Ok(Answer {
            parts,
            body: body.freeze(),
        })
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.request(http::Method::GET, path, &[]).await.unwrap()
    }
}

/// A client ticket store that counts the TLS 1.3 tickets put in it. Tickets come after the
/// handshake, and over QUIC with 0.5-RTT possibly after the first response: a test that
/// needs one waits for it ([`TicketStore::wait`]) rather than for a response.
#[derive(Debug)]
pub struct TicketStore {
    inner: rustls::client::ClientSessionMemoryCache,
    pub tickets: AtomicUsize,
}

impl TicketStore {
    /// A store of up to 64 servers' sessions, and the `Resumption` that uses it.
    pub fn new() -> (Arc<Self>, rustls::client::Resumption) {
        let store = Arc::new(Self {
            inner: rustls::client::ClientSessionMemoryCache::new(64),
            tickets: AtomicUsize::new(0),
        });
        let resumption = rustls::client::Resumption::store(Arc::clone(&store) as _);
        (store, resumption)
    }

    /// Waits (up to 5 s) until `n` tickets in all have been put in the store.
    pub async fn wait(&self, n: usize) {
        let start = std::time::Instant::now();
        while self.tickets.load(Ordering::SeqCst) < n {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "{} of {n} tickets after 5 s",
                self.tickets.load(Ordering::SeqCst)
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

impl rustls::client::ClientSessionStore for TicketStore {
    fn set_kx_hint(&self, name: rustls::pki_types::ServerName<'static>, group: rustls::NamedGroup) {
        self.inner.set_kx_hint(name, group);
    }

    fn kx_hint(&self, name: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.inner.kx_hint(name)
    }

    fn set_tls12_session(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.inner.set_tls12_session(name, value);
    }

    fn tls12_session(
        &self,
        name: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.inner.tls12_session(name)
    }

    fn remove_tls12_session(&self, name: &rustls::pki_types::ServerName<'static>) {
        self.inner.remove_tls12_session(name);
    }

    fn insert_tls13_ticket(
        &self,
        name: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        self.tickets.fetch_add(1, Ordering::SeqCst);
        self.inner.insert_tls13_ticket(name, value);
    }

    fn take_tls13_ticket(
        &self,
        name: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.inner.take_tls13_ticket(name)
    }
}

/// A header's value as text, if the response has it.
pub fn header<'a>(p: &'a http::response::Parts, name: &str) -> Option<&'a str> {
    p.headers.get(name).map(|v| v.to_str().unwrap())
}

/// The response's `Content-Length`.
pub fn content_length(p: &http::response::Parts) -> usize {
    header(p, "content-length")
        .expect("Content-Length")
        .parse()
        .unwrap()
}

/// A new HTTP/3 connection to `server`.
pub async fn connect(server: &super::TestServer) -> H3Conn {
    let client = H3Client::new(&server.ca);
    client
        .connect(server.h3_addr.expect("HTTP/3 on"))
        .await
        .unwrap()
}

/// A GET with `headers` over `conn`, answered over HTTP/3: the head and the whole body.
pub async fn get_with(
    conn: &mut H3Conn,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::response::Parts, Vec<u8>) {
    let a = conn
        .request(http::Method::GET, path, headers)
        .await
        .unwrap();
    assert_eq!(a.parts.version, http::Version::HTTP_3, "{path}");
    (a.parts, a.body.to_vec())
}
