//! WebSocket (HTTP/1.1 `Upgrade`) tunnels.
//!
//! After the backend answered 101 the proxy returns that 101 to the client
//! and a spawned task joins both upgraded connections and copies bytes both
//! ways (`copy_bidirectional`), untouched: no rewrite applies after the
//! upgrade. A tunnel holds no table snapshot, so configuration changes never
//! affect it; it ends when either side closes, or on proxy shutdown (both
//! sockets are then closed). The access log (target `access`, info) records
//! each tunnel when it closes: 101, bytes each way, duration — as AGC writes
//! WebSocket log entries at close.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proxy::forward::Shared;

/// Labels of a tunnel for the access log.
#[derive(Debug, Clone)]
pub struct TunnelInfo {
    pub upstream: SocketAddr,
    pub peer: SocketAddr,
    pub gateway: String,
}

/// Counts bytes read through it.
struct Counted<T> {
    inner: T,
    read: u64,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read += (buf.filled().len() - before) as u64;
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Spawns the tunnel between the client (`down`) and backend (`up`) sides.
pub fn spawn_tunnel(shared: &Arc<Shared>, down: OnUpgrade, up: OnUpgrade, info: TunnelInfo) {
    let guard = shared.guard.clone();
    let metrics = shared.metrics.clone();
    let mut stop = shared.stop.clone();
    let start = Instant::now();
    tokio::spawn(async move {
        let _guard = guard;
        let (down, up) = match tokio::try_join!(down, up) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, upstream = %info.upstream, "upgrade failed");
                return;
            }
        };
        metrics.tunnels_open.fetch_add(1, Ordering::Relaxed);
        let mut client = Counted {
            inner: TokioIo::new(down),
            read: 0,
        };
        let mut backend = Counted {
            inner: TokioIo::new(up),
            read: 0,
        };
        let end = tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut backend) => match r {
                Ok(_) => "closed".to_owned(),
                Err(e) => format!("error: {e}"),
            },
            _ = crate::proxy::server::signalled(&mut stop) => "proxy shutdown".to_owned(),
        };
        metrics.tunnels_open.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(
            target: "access",
            status = 101,
            gateway = %info.gateway,
            client = %info.peer,
            upstream = %info.upstream,
            bytes_from_client = client.read,
            bytes_to_client = backend.read,
            duration_ms = start.elapsed().as_millis() as u64,
            end = %end,
            "websocket tunnel closed"
        );
    });
}
