//! HTTP/3 over QUIC: the third transport under the same per-connection service
//! (server/service.rs) and asset table as HTTP/1.1 and HTTP/2. quinn runs QUIC on the
//! rustls configuration the TCP listeners use (the same certificate resolver and ticket key
//! ring, TLS 1.3 only, ALPN `h3`; see `tls::quic_server_config`), h3 + h3-quinn run HTTP/3
//! and QPACK on top.
//!
//! - endpoint.rs: the UDP sockets and quinn's endpoint and transport settings.
//! - accept.rs: the accept loop and who gets in: the connection cap (shared with TCP),
//!   stateless retry (address validation) under a handshake flood, refusal while draining.
//! - connection.rs: one QUIC connection from its handshake to CONNECTION_CLOSE: the
//!   handshake deadline and 0-RTT gate, the idle deadline, GOAWAY on shutdown.
//! - request.rs: one request stream: its head, its body read to the end, the app's answer
//!   streamed under QUIC flow control.
//! - tickets.rs: counts the session tickets QUIC handshakes resume with.
//!
//! The `Alt-Svc` header that advertises HTTP/3 on HTTP/1.1 and HTTP/2 is server/alt_svc.rs.
//!
//! PROXY protocol does not apply: it is a TCP preamble, and a load balancer in front of
//! QUIC forwards UDP datagrams with the client's own address.

mod accept;
mod connection;
pub(crate) mod endpoint;
mod request;
pub(crate) mod tickets;

pub(crate) use accept::accept_loop;
pub(crate) use endpoint::{Endpoint, Settings};
