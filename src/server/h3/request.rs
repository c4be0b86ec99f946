//! One HTTP/3 request stream: its head (QPACK-decoded by h3 under the field-section limit:
//! 431 beyond), its body read to the end before the answer as on HTTP/2 (a 413 past the
//! bound, server/service.rs), the per-connection service's answer, and the response body
//! streamed under QUIC flow control: each chunk waits for the client's window, so a slow
//! reader holds at most the connection's send window of a file, and one that stops
//! reading for `--idle-timeout` has its stream reset.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use h3::error::Code;
use http::Method;
use http_body::Frame;

use super::endpoint::Settings;
use crate::app::Body;
use crate::server::service::ConnService;
use crate::telemetry::Metrics;

/// Whether a connection's handshake is complete, for requests that arrive in 0.5-RTT
/// (`--http3-0rtt`): a request that is not GET or HEAD waits until it is.
pub(super) type HandshakeDone = tokio::sync::watch::Receiver<bool>;

/// A request stream as h3 hands it over.
pub(super) type Resolver = h3::server::RequestResolver<h3_quinn::Connection, Bytes>;
type SendHalf = h3::server::RequestStream<h3_quinn::SendStream<Bytes>, Bytes>;
type RecvHalf = h3::server::RequestStream<h3_quinn::RecvStream, Bytes>;

/// Serves one request stream to its end.
pub(super) async fn serve(
    resolver: Resolver,
    svc: ConnService,
    handshake: Option<HandshakeDone>,
    settings: Arc<Settings>,
) {
    let deadline = settings.header_timeout;
    let peer = svc.peer;
    let (req, stream) = match tokio::time::timeout(deadline, resolver.resolve_request()).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            // h3 has answered what needs an answer (431 for an oversized field section)
            // and reset what is malformed.
            tracing::debug!(%peer, protocol = "h3", error = %e, "request stream refused");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, protocol = "h3", "request head not complete within --header-timeout");
            return;
        }
    };
    let (mut send, recv) = stream.split();
    let Some(body) = RequestBody::open(recv, deadline).await else {
        send.stop_stream(Code::H3_REQUEST_INCOMPLETE);
        return;
    };
    if let Some(mut done) = handshake {
        // 0.5-RTT: what came in early data may be a replay; only GET and HEAD (which
        // change nothing) are answered before the handshake completes.
        let safe = matches!(*req.method(), Method::GET | Method::HEAD);
        if !safe && done.wait_for(|complete| *complete).await.is_err() {
            send.stop_stream(Code::H3_REQUEST_REJECTED);
            return;
        }
    }
    let answer = hyper::service::Service::call(&svc, req.map(|()| body));
    let resp = match tokio::time::timeout(deadline, answer).await {
        Ok(Ok(resp)) => resp,
        Ok(Err(_)) => {
            // Refused as on HTTP/2 (no authority, a stream error in the body): reset.
            send.stop_stream(Code::H3_MESSAGE_ERROR);
            return;
        }
        Err(_) => {
            send.stop_stream(Code::H3_REQUEST_INCOMPLETE);
            return;
        }
    };
    if let Err(why) = respond(&mut send, resp, settings.idle_timeout).await {
        match why {
            Abandoned::Stalled => {
                Metrics::inc(&svc.shared.metrics.connections_closed_stalled);
                tracing::debug!(%peer, protocol = "h3", "response stalled for --idle-timeout; stream reset");
                send.stop_stream(Code::H3_REQUEST_CANCELLED);
            }
            Abandoned::Stream(e) => {
                tracing::debug!(%peer, protocol = "h3", error = %e, "response abandoned");
            }
            Abandoned::Body(e) => {
                tracing::warn!(%peer, protocol = "h3", error = %e, "response body failed; stream reset");
                send.stop_stream(Code::H3_INTERNAL_ERROR);
            }
        }
    }
}

/// Why a response was not sent to its end.
enum Abandoned {
    /// The client gave no flow-control room for `--idle-timeout`.
    Stalled,
    /// The stream or connection went away (the client reset it, closed, timed out).
    Stream(h3::error::StreamError),
    /// The body failed (a file read error).
    Body(std::io::Error),
}

/// Sends the head, then each body chunk as the client's window allows, then FIN.
async fn respond(
    send: &mut SendHalf,
    resp: http::Response<Body>,
    stall: Duration,
) -> Result<(), Abandoned> {
    let (parts, mut body) = resp.into_parts();
    send.send_response(http::Response::from_parts(parts, ()))
        .await
        .map_err(Abandoned::Stream)?;
    while let Some(frame) = poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut body), cx)).await
    {
        let Ok(data) = frame.map_err(Abandoned::Body)?.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        match tokio::time::timeout(stall, send.send_data(data)).await {
            Ok(sent) => sent.map_err(Abandoned::Stream)?,
            Err(_) => return Err(Abandoned::Stalled),
        }
    }
    send.finish().await.map_err(Abandoned::Stream)
}

/// A request's body as the per-connection service reads it: whether it ended with the
/// head is known before the service is called (one read, which with a GET's FIN in the
/// same packet is ready at once), so a bodiless request takes the service's direct path.
pub(super) struct RequestBody {
    recv: RecvHalf,
    first: Option<Bytes>,
    ended: bool,
}

impl RequestBody {
    /// Reads until the body's first data or its end, within `deadline`; None if the stream
    /// failed or nothing came.
    async fn open(mut recv: RecvHalf, deadline: Duration) -> Option<Self> {
        match tokio::time::timeout(deadline, recv.recv_data()).await {
            Ok(Ok(None)) => Some(Self {
                recv,
                first: None,
                ended: true,
            }),
            Ok(Ok(Some(mut buf))) => Some(Self {
                first: Some(buf.copy_to_bytes(buf.remaining())),
                recv,
                ended: false,
            }),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = h3::error::StreamError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if self.ended {
            return Poll::Ready(None);
        }
        match std::task::ready!(self.recv.poll_recv_data(cx)) {
            Ok(Some(mut buf)) => {
                Poll::Ready(Some(Ok(Frame::data(buf.copy_to_bytes(buf.remaining())))))
            }
            Ok(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.first.is_none()
    }
}
