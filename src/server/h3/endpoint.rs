//! The UDP side: one quinn endpoint per HTTP/3 address, its socket set up as the TCP
//! listeners' are (SO_REUSEPORT with `--reuse-port`, IPv6-only on IPv6 addresses), and the
//! QUIC transport settings that carry rampart's limits: concurrent streams as
//! `--h2-max-streams`, the idle timeout a second past `--idle-timeout` (the graceful close
//! comes first), bounded receive and send windows so that no connection buffers without
//! bound. quinn does the rest: amplification
//! limits before address validation, GSO and GRO where the kernel has them (logged at
//! start-up), path MTU discovery.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicServerConfig;
use quinn::{IdleTimeout, TransportConfig, VarInt};

use crate::error::{Error, Result};

/// What the HTTP/3 side needs of the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Handshake deadline (`--handshake-timeout`).
    pub(crate) handshake_timeout: Duration,
    /// Idle deadline (`--idle-timeout`): no request in flight for this long closes.
    pub(crate) idle_timeout: Duration,
    /// Request-head deadline (`--header-timeout`): from a stream's arrival to its head
    /// and body being read.
    pub(crate) header_timeout: Duration,
    /// Concurrent request streams per connection (`--h2-max-streams`).
    pub(crate) max_streams: u32,
    /// The largest request field section, QPACK-decoded (`--max-header-size`): 431 beyond.
    pub(crate) max_field_section: u64,
    /// 0-RTT accepted (`--http3-0rtt`): GET and HEAD served from early data.
    pub(crate) early_data: bool,
    /// Handshakes in progress above which a client whose address is not validated gets a
    /// Retry first (stateless address validation under a handshake flood); 0 = always.
    pub(crate) retry_above: usize,
}

/// How much longer QUIC's own idle timeout is than `--idle-timeout`. The connection closes
/// an idle client gracefully at `--idle-timeout` (GOAWAY, then CONNECTION_CLOSE with
/// H3_NO_ERROR once its data is delivered); were QUIC's timeout the same, both ends would
/// often drop the connection silently at that moment instead. QUIC's timeout stays the
/// backstop for a peer that went away.
const QUIC_IDLE_MARGIN: Duration = Duration::from_secs(1);

/// A request body (rampart serves GET and HEAD) needs no more window than the bound it is
/// read to before a 413 (server/request_check.rs `DRAIN_LIMIT`).
const STREAM_RECEIVE_WINDOW: u32 = 64 * 1024;
/// All of a connection's request streams together.
const RECEIVE_WINDOW: u32 = 1024 * 1024;
/// Response bytes a connection may have handed to QUIC and not yet had acknowledged: the
/// most a slow reader holds of a large file (the reading side waits beyond it).
const SEND_WINDOW: u64 = 4 * 1024 * 1024;
/// The client's unidirectional streams: control and the two QPACK streams, and room for
/// GREASE ones.
const MAX_UNI_STREAMS: u32 = 16;

/// A bound QUIC endpoint and the flag its address came from.
pub(crate) struct Endpoint {
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) flag: &'static str,
}

impl Endpoint {
    /// Binds `addr` (UDP) and starts quinn's endpoint on it, serving `tls` (the QUIC
    /// configuration: TLS 1.3 only, ALPN h3).
    ///
    /// # Errors
    /// [`Error::Bind`] naming the address and `flag`; [`Error::Other`] when quinn refuses
    /// the TLS configuration.
    pub(crate) fn bind(
        addr: SocketAddr,
        flag: &'static str,
        reuse_port: bool,
        tls: Arc<rustls::ServerConfig>,
        settings: &Settings,
    ) -> Result<Self> {
        let err = |source| Error::Bind { addr, flag, source };
        let socket = udp_socket(addr, reuse_port).map_err(err)?;
        log_offload(addr, &socket);
        let crypto = QuicServerConfig::try_from(tls).map_err(|e| Error::Other {
            context: "HTTP/3 TLS configuration".into(),
            source: std::io::Error::other(e),
        })?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server.transport_config(Arc::new(transport(settings)?));
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket.into(),
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(err)?;
        Ok(Self { endpoint, flag })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }
}

/// The QUIC transport settings (see the module docs).
fn transport(settings: &Settings) -> Result<TransportConfig> {
    let idle = settings.idle_timeout + QUIC_IDLE_MARGIN;
    let idle = IdleTimeout::try_from(idle).map_err(|e| Error::Other {
        context: "--idle-timeout for HTTP/3".into(),
        source: std::io::Error::other(e),
    })?;
    let mut t = TransportConfig::default();
    t.max_concurrent_bidi_streams(VarInt::from_u32(settings.max_streams))
        .max_concurrent_uni_streams(VarInt::from_u32(MAX_UNI_STREAMS))
        .max_idle_timeout(Some(idle))
        .stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .receive_window(VarInt::from_u32(RECEIVE_WINDOW))
        .send_window(SEND_WINDOW)
        .keep_alive_interval(None);
    Ok(t)
}

/// A bound, non-blocking UDP socket for `addr` (also `rampart check`'s probe).
pub(crate) fn udp_socket(addr: SocketAddr, reuse_port: bool) -> std::io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // No SO_REUSEADDR: on UDP it would let a second server bind the same port silently.
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Says whether the kernel gives this socket segmentation offload (GSO: one send call for
/// many packets) and receive coalescing (GRO), which quinn then uses.
fn log_offload(addr: SocketAddr, socket: &socket2::Socket) {
    match quinn::udp::UdpSocketState::new(socket.into()) {
        Ok(state) => tracing::debug!(
            %addr,
            gso_segments = state.max_gso_segments(),
            gro_segments = state.gro_segments(),
            "HTTP/3 socket offload (1 = none)"
        ),
        Err(e) => tracing::debug!(%addr, error = %e, "HTTP/3 socket offload unknown"),
    }
}
