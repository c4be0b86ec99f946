//! Listening sockets: the one place a TCP listener is created and its options set, for the
//! HTTPS, redirect and metrics listeners ([`bind`]) and for `rampart check`'s probe that an
//! address is free ([`socket`] with a backlog of 1, then dropped). So the probe binds
//! exactly as serving will: a probe that passes means `serve` can bind.

use std::io;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::error::{Error, Result};

/// The kernel accept queue of a serving listener.
const BACKLOG: i32 = 4096;

/// A bound, listening, blocking TCP socket: SO_REUSEADDR always, SO_REUSEPORT when
/// `reuse_port` (`--reuse-port`), IPv6 only on IPv6 addresses (so `[::]` and `0.0.0.0` can
/// both be listened on), an accept queue of `backlog`.
///
/// # Errors
/// The first socket call that fails (address in use, permission denied, ...).
pub(crate) fn socket(
    addr: SocketAddr,
    reuse_port: bool,
    backlog: i32,
) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket)
}

/// A serving listener for `addr` (see [`socket`]; an accept queue of 4096), non-blocking
/// for tokio.
///
/// # Errors
/// [`Error::Bind`] naming the address and `flag`, the setting that asked for it.
pub(crate) fn bind(addr: SocketAddr, flag: &'static str, reuse_port: bool) -> Result<TcpListener> {
    let err = |source| Error::Bind { addr, flag, source };
    let socket = socket(addr, reuse_port, BACKLOG).map_err(err)?;
    socket.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

/// With SO_REUSEPORT, connections still queued on a listener when it closes are reset,
/// unless the kernel migrates them to another listener of the port (Linux 5.14+,
/// `net.ipv4.tcp_migrate_req = 1`). Says so when it is off.
pub(super) fn warn_without_migration() {
    const KNOB: &str = "/proc/sys/net/ipv4/tcp_migrate_req";
    match std::fs::read_to_string(KNOB) {
        Ok(v) if v.trim() == "1" => {}
        Ok(_) => tracing::warn!(
            "--reuse-port: net.ipv4.tcp_migrate_req is 0: when this process stops, connections \
             queued on its listeners but not yet accepted are reset instead of moving to the new \
             process; set it to 1 for restarts without failed connections (sysctl -w net.ipv4.tcp_migrate_req=1)"
        ),
        Err(_) => tracing::warn!(
            "--reuse-port: this kernel cannot migrate queued connections between listeners \
             (no {KNOB}, Linux < 5.14): a restart may reset a few connections queued at the moment the old process stops"
        ),
    }
}
