//! HTTP/3 against the real server with a real HTTP/3 client (h3 over quinn): the same
//! app, rules and guarantees as over HTTP/1.1 and HTTP/2. Loopback only.

mod support;

use support::h3client::H3Client;
use support::TestServer;

#[tokio::test]
async fn index_html_over_h3_and_alt_svc_over_tcp() {
    let server = TestServer::start(|_| {}).await;
    let h3_addr = server.h3_addr.expect("HTTP/3 on by default");
    assert_eq!(h3_addr.port(), server.addr.port(), "same port on UDP");
    let client = H3Client::new(&server.ca);
    let mut conn = client.connect(h3_addr).await.unwrap();
    let a = conn.get("/").await;
    assert_eq!(a.parts.status, 200);
    assert_eq!(a.parts.version, http::Version::HTTP_3);
    assert!(
        String::from_utf8_lossy(&a.body).contains("<html"),
        "index.html"
    );
    let (parts, _) = server.get("/").await;
    assert_eq!(
        parts.headers["alt-svc"],
        format!("h3=\":{}\"; ma=86400", h3_addr.port()).as_str()
    );
    assert_eq!(server.metrics.snapshot().requests_h3, 1);
}
