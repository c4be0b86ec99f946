//! ACME challenge answers over real sockets on loopback, set through the library API
//! (`Server::set_acme_challenges`): a client offering only `acme-tls/1` (as a CA does for
//! TLS-ALPN-01, RFC 8737) gets the challenge certificate for its SNI and then close_notify,
//! never HTTP, or a refused handshake for a name without an answer; ordinary clients are
//! served as before. On the `--http-listen` port, `GET /.well-known/acme-challenge/TOKEN`
//! (HTTP-01) gets the key authorization, an unknown token 404, every other path its 308.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart::acme::challenge::Challenges;
use rampart::telemetry::FailureClass;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme, SupportedProtocolVersion};
use support::{tls_connect, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A key authorization as a CA's client computes it: `token.thumbprint`.
const KEY_AUTH: &str =
    "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI";

/// Generous bound for anything that should take milliseconds on loopback.
const STEP: Duration = Duration::from_secs(10);

/// A server answering what `challenges` holds, with an `--http-listen` port.
async fn server_with(challenges: &Arc<Challenges>) -> TestServer {
    let challenges = Arc::clone(challenges);
    TestServer::start_prepared(
        |c| c.http_listen = Some("127.0.0.1:0".parse().unwrap()),
        move |server| server.set_acme_challenges(challenges),
    )
    .await
}

/// A cleartext HTTP/1.1 response: status, headers (lowercase names), body.
struct Plain {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Plain {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method target` over a new cleartext connection to the `--http-listen` port and
/// reads the response to the server's close.
async fn plain(server: &TestServer, method: &str, target: &str) -> Plain {
    let mut tcp = tokio::net::TcpStream::connect(server.http_addr.unwrap())
        .await
        .unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: example.com\r\nUser-Agent: acme-validator\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole response");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap();
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    Plain {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// What a CA's validator does: accept any certificate (it checks the extension itself),
/// but verify the handshake signature against the certificate's key. webpki cannot parse
/// the challenge certificate (an unknown critical extension), so the key is read with
/// x509-parser and the ECDSA P-256 signature checked with aws-lc-rs.
#[derive(Debug, Default)]
struct Validator {
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl Validator {
    fn verify(
        &self,
        message: &[u8],
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let seen = self.seen.lock().unwrap();
        let der = seen
            .as_ref()
            .ok_or(rustls::Error::NoCertificatesPresented)?;
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| rustls::Error::General(e.to_string()))?;
        if dss.scheme != SignatureScheme::ECDSA_NISTP256_SHA256 {
            return Err(rustls::Error::General(format!(
                "unexpected scheme {:?}",
                dss.scheme
            )));
        }
        let key = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            cert.public_key().subject_public_key.data.as_ref(),
        );
        key.verify(message, dss.signature())
            .map(|()| HandshakeSignatureValid::assertion())
            .map_err(|_| rustls::Error::DecryptError)
    }
}

impl ServerCertVerifier for Validator {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap() = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        _cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify(message, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

/// A validator's client config: ALPN `alpn`, TLS `version`.
fn validator_config(
    validator: &Arc<Validator>,
    alpn: &[&[u8]],
    version: &'static SupportedProtocolVersion,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(validator) as Arc<dyn ServerCertVerifier>)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Asserts that `der` is the challenge certificate for `domain` and `key_authorization`:
/// `domain` its only SAN, the critical acmeIdentifier extension holding the digest.
fn assert_challenge_cert(der: &[u8], domain: &str, key_authorization: &str) {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        vec![x509_parser::extensions::GeneralName::DNSName(domain)]
    );
    let digest =
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes());
    let mut expected = vec![0x04, 0x20];
    expected.extend_from_slice(digest.as_ref());
    let acme = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
        .expect("acmeIdentifier extension");
    assert!(acme.critical);
    assert_eq!(acme.value, &expected[..]);
}

#[tokio::test]
async fn acme_tls_client_gets_the_challenge_certificate_then_close_notify_and_no_http() {
    let challenges = Arc::new(Challenges::new(None));
    challenges
        .publish_tls_alpn("example.com", KEY_AUTH)
        .unwrap();
    let server = server_with(&challenges).await;
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let validator = Arc::new(Validator::default());
        // A client that also offers http/1.1 still gets only the challenge.
        for alpn in [&[&b"acme-tls/1"[..]][..], &[b"acme-tls/1", b"http/1.1"]] {
            let config = validator_config(&validator, alpn, version);
            let mut tls =
                tokio::time::timeout(STEP, tls_connect(server.addr, config, "example.com"))
                    .await
                    .unwrap()
                    .expect("the validation handshake completes");
            let (_, conn) = tls.get_ref();
            assert_eq!(conn.alpn_protocol(), Some(&b"acme-tls/1"[..]));
            assert_eq!(conn.protocol_version(), Some(version.version));
            let der = validator.seen.lock().unwrap().clone().unwrap();
            assert_challenge_cert(&der, "example.com", KEY_AUTH);
            // A request gets no answer: close_notify (a clean EOF; a bare TCP close is an
            // UnexpectedEof error), and not one byte of application data before it.
            let _ = tls
                .write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
                .await;
            let mut rest = Vec::new();
            let n = tokio::time::timeout(STEP, tls.read_to_end(&mut rest))
                .await
                .unwrap()
                .expect("close_notify, then EOF");
            assert_eq!(n, 0, "{:?}", String::from_utf8_lossy(&rest));
        }
    }
    assert_eq!(
        server.metrics.snapshot().failures(FailureClass::AlertSent),
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn acme_tls_client_for_a_name_without_an_answer_is_refused() {
    let challenges = Arc::new(Challenges::new(None));
    challenges
        .publish_tls_alpn("example.com", KEY_AUTH)
        .unwrap();
    let server = server_with(&challenges).await;
    let validator = Arc::new(Validator::default());
    let config = validator_config(&validator, &[b"acme-tls/1"], &rustls::version::TLS13);
    let err = tokio::time::timeout(
        STEP,
        tls_connect(server.addr, Arc::clone(&config), "other.example"),
    )
    .await
    .unwrap()
    .expect_err("no certificate for other.example");
    let tls_err = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>());
    assert!(
        matches!(
            tls_err,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::AccessDenied
            ))
        ),
        "{err:?}"
    );
    assert!(
        validator.seen.lock().unwrap().is_none(),
        "no certificate was presented"
    );

    // Withdrawn: refused too.
    challenges.withdraw_tls_alpn("example.com");
    let err = tokio::time::timeout(STEP, tls_connect(server.addr, config, "example.com"))
        .await
        .unwrap()
        .expect_err("the answer was withdrawn");
    assert!(
        err.get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .is_some(),
        "{err:?}"
    );
    assert_eq!(
        server.metrics.snapshot().failures(FailureClass::AlertSent),
        2
    );
    server.shutdown().await;
}

#[tokio::test]
async fn acme_tls_answer_published_by_another_instance_is_served_from_the_shared_directory() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("challenges");
    let publisher = Challenges::new(Some(shared.clone()));
    let server = server_with(&Arc::new(Challenges::new(Some(shared)))).await;
    publisher
        .publish_tls_alpn("www.example.com", KEY_AUTH)
        .unwrap();
    let validator = Arc::new(Validator::default());
    let config = validator_config(&validator, &[b"acme-tls/1"], &rustls::version::TLS13);
    let tls = tokio::time::timeout(STEP, tls_connect(server.addr, config, "www.example.com"))
        .await
        .unwrap()
        .expect("the other instance's answer is served");
    drop(tls);
    let der = validator.seen.lock().unwrap().clone().unwrap();
    assert_challenge_cert(&der, "www.example.com", KEY_AUTH);
    server.shutdown().await;
}

#[tokio::test]
async fn ordinary_clients_are_served_while_a_challenge_is_published() {
    let challenges = Arc::new(Challenges::new(None));
    challenges.publish_tls_alpn("localhost", KEY_AUTH).unwrap();
    let server = server_with(&challenges).await;
    let (parts, body) = server.get("/").await;
    assert_eq!(parts.status, 200);
    assert!(!body.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn http01_token_gets_the_key_authorization_and_every_other_path_its_redirect() {
    let challenges = Arc::new(Challenges::new(None));
    challenges.publish_http("tok_EN-1", KEY_AUTH).unwrap();
    let server = server_with(&challenges).await;

    let answer = plain(&server, "GET", "/.well-known/acme-challenge/tok_EN-1").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, KEY_AUTH);
    assert_eq!(
        answer.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(answer.header("connection"), Some("close"));
    let len = KEY_AUTH.len().to_string();
    assert_eq!(answer.header("content-length"), Some(len.as_str()));

    let head = plain(&server, "HEAD", "/.well-known/acme-challenge/tok_EN-1").await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(len.as_str()));
    assert_eq!(head.body, "");

    // Unknown and hostile tokens: 404 (not a redirect the CA would follow to no answer).
    let long = format!("/.well-known/acme-challenge/{}", "a".repeat(2048));
    for target in [
        "/.well-known/acme-challenge/unknown-token",
        "/.well-known/acme-challenge/",
        "/.well-known/acme-challenge/../acme-challenge/tok_EN-1",
        "/.well-known/acme-challenge/a/b",
        "/.well-known/acme-challenge/%2e%2e",
        long.as_str(),
    ] {
        let r = plain(&server, "GET", target).await;
        assert_eq!(r.status, 404, "{target}");
        assert!(!r.body.contains(KEY_AUTH), "{target}");
    }

    // Everything else keeps its redirect to https.
    for (method, target) in [
        ("GET", "/"),
        ("GET", "/.well-known/other"),
        ("POST", "/.well-known/acme-challenge/tok_EN-1"),
    ] {
        let r = plain(&server, method, target).await;
        assert_eq!(r.status, 308, "{method} {target}");
        let location = format!("https://example.com:{}{target}", server.addr.port());
        assert_eq!(r.header("location"), Some(location.as_str()));
    }

    challenges.withdraw_http("tok_EN-1");
    let gone = plain(&server, "GET", "/.well-known/acme-challenge/tok_EN-1").await;
    assert_eq!(gone.status, 404);
    server.shutdown().await;
}

#[tokio::test]
async fn http01_answer_published_by_another_instance_is_served_from_the_shared_directory() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("challenges");
    let publisher = Challenges::new(Some(shared.clone()));
    let server = server_with(&Arc::new(Challenges::new(Some(shared)))).await;
    publisher.publish_http("shared-token", KEY_AUTH).unwrap();
    let answer = plain(&server, "GET", "/.well-known/acme-challenge/shared-token").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, KEY_AUTH));
    server.shutdown().await;
}

#[tokio::test]
async fn without_acme_the_challenge_path_is_redirected_like_any_other() {
    let server = TestServer::start(|c| c.http_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let r = plain(&server, "GET", "/.well-known/acme-challenge/token").await;
    assert_eq!(r.status, 308);
    server.shutdown().await;
}
