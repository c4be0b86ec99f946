//! The close path of every connection: close_notify, then a lingering close.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long the close path waits for close_notify to be written and for the peer's EOF.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// Sends close_notify (unless already sent) and FIN, then discards what the peer still sends
/// until its EOF or [`LINGER`], so the socket is never closed with unread data (an RST).
pub(crate) async fn close_gracefully<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    shut_down: bool,
) {
    let _ = tokio::time::timeout(LINGER, async {
        if !shut_down && stream.shutdown().await.is_err() {
            return;
        }
        let mut sink = [0u8; 4096];
        let mut budget = 256 * 1024usize;
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 || budget < n {
                break;
            }
            budget -= n;
        }
    })
    .await;
}
