//! WebSocket (HTTP/1.1 `Upgrade`) tunnels.
//!
//! After the backend answered 101 the proxy writes that 101 to the client
//! (`super::h1`) and a spawned task joins both connections and copies
//! bytes both ways (between the raw sockets, holding no buffer while idle,
//! when both sides are plain TCP; else `copy_bidirectional`), untouched: no
//! rewrite applies after the upgrade. A tunnel holds no table snapshot, so configuration changes never
//! affect it; it ends when either side closes, or on proxy shutdown (both
//! sockets are then closed). The access log (target `access`, info) records
//! each tunnel when it closes: 101, bytes each way, duration — as AGC writes
//! WebSocket log entries at close.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use crate::proxy::pool::{Io, Upgraded};

use crate::proxy::metrics::Metrics;

/// Labels of a tunnel for the access log.
#[derive(Debug, Clone)]
pub struct TunnelInfo {
    pub upstream: SocketAddr,
    pub peer: SocketAddr,
    pub gateway: String,
}

/// Counts bytes read through it (atomically, so the idle watchdog can read
/// the count while the copy borrows the stream).
struct Counted<T> {
    inner: T,
    read: Arc<AtomicU64>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.read.fetch_add(n, Ordering::Relaxed);
        }
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

/// A backend connection that answered 101, waiting for the client side.
#[derive(Debug)]
pub struct Tunnel {
    pub up: Upgraded,
    pub info: TunnelInfo,
}

/// The client side of a tunnel: the connection's socket, after the 101.
pub enum ClientIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Either kind of client stream, behind one pointer.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// What a tunnel needs from the proxy (so this module does not reach into the request path's
/// shared state).
pub struct TunnelCtx {
    /// Held while the tunnel runs, so shutdown waits for it.
    pub guard: tokio::sync::mpsc::Sender<()>,
    pub metrics: Arc<Metrics>,
    /// Set once on shutdown.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// The idle timeout (no byte either way).
    pub idle: Duration,
}

/// Spawns the tunnel between the client (the 101 already written to it;
/// `ahead`: what it sent past its request) and the backend connection.
pub fn spawn_tunnel(ctx: &TunnelCtx, client: ClientIo, ahead: Bytes, tunnel: Tunnel) {
    let guard = ctx.guard.clone();
    let metrics = ctx.metrics.clone();
    let mut stop = ctx.stop.clone();
    let idle = ctx.idle;
    let start = Instant::now();
    let Tunnel { up, info } = tunnel;
    tokio::spawn(async move {
        let _guard = guard;
        metrics.tunnels_open.fetch_add(1, Ordering::Relaxed);
        let (from_client, to_client) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let counters = (&from_client, &to_client);
        // Plain TCP on both sides (the common case): copy between the raw
        // sockets holding no buffer while idle.
        let end = match (client, up.io) {
            (ClientIo::Plain(c), Io::Plain(b)) => {
                splice((c, ahead), (b, up.read_ahead), counters, idle, &mut stop).await
            }
            // TLS on a side (rare): boxed, so that it does not make every
            // idle plain tunnel's task as large as its own.
            (client, b) => {
                let c: Box<dyn Stream> = match client {
                    ClientIo::Plain(c) => Box::new(c),
                    ClientIo::Tls(c) => c,
                };
                let copy = run((c, ahead), (b, up.read_ahead), counters, idle, &mut stop);
                Box::pin(copy).await
            }
        };
        metrics.tunnels_open.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(
            target: "access",
            status = 101,
            gateway = %info.gateway,
            client = %info.peer,
            upstream = %info.upstream,
            bytes_from_client = from_client.load(Ordering::Relaxed),
            bytes_to_client = to_client.load(Ordering::Relaxed),
            duration_ms = start.elapsed().as_millis() as u64,
            end = %end,
            "websocket tunnel closed"
        );
    });
}

/// Copies both ways between `client` and `backend`, each given with the
/// bytes already read from it (to pass on first), until either side
/// closes, the proxy stops or the tunnel is idle; returns why it ended.
async fn run<C, B>(
    client: (C, Bytes),
    backend: (B, Bytes),
    (from_client, to_client): (&Arc<AtomicU64>, &Arc<AtomicU64>),
    idle: Duration,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> String
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut client_io = Counted {
        inner: client.0,
        read: from_client.clone(),
    };
    let mut backend_io = Counted {
        inner: backend.0,
        read: to_client.clone(),
    };
    let copy = async {
        if !client.1.is_empty() {
            from_client.fetch_add(client.1.len() as u64, Ordering::Relaxed);
            backend_io.inner.write_all(&client.1).await?;
        }
        if !backend.1.is_empty() {
            to_client.fetch_add(backend.1.len() as u64, Ordering::Relaxed);
            client_io.inner.write_all(&backend.1).await?;
        }
        tokio::io::copy_bidirectional(&mut client_io, &mut backend_io).await
    };
    tokio::select! {
        r = copy => match r {
            Ok(_) => "closed".to_owned(),
            Err(e) => format!("error: {e}"),
        },
        _ = crate::proxy::timeouts::signalled(stop) => "proxy shutdown".to_owned(),
        _ = idle_watchdog(idle, from_client, to_client) => "idle timeout".to_owned(),
    }
}

/// Like [`run`] for two plain TCP sockets, but holding no buffer while the tunnel is idle:
/// each direction waits for readiness, then borrows a buffer only to move what is there.
/// (`copy_bidirectional` keeps two 8 KiB buffers per tunnel for its whole life, which is most
/// of what 10,000 idle WebSocket tunnels would cost.)
async fn splice(
    client: (TcpStream, Bytes),
    backend: (TcpStream, Bytes),
    (from_client, to_client): (&Arc<AtomicU64>, &Arc<AtomicU64>),
    idle: Duration,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> String {
    // The bytes read ahead may be a slice of a whole read buffer, which the slice keeps
    // alive: copy them out (usually nothing) so the tunnel holds no such buffer.
    let (c, c_ahead) = client;
    let (b, b_ahead) = backend;
    let (mut c, mut b) = (c, b);
    let (c_pending, b_pending) = (c_ahead.to_vec(), b_ahead.to_vec());
    drop((c_ahead, b_ahead));
    let (c_read, c_write) = c.split();
    let (b_read, b_write) = b.split();
    // The backend's end of stream ends the tunnel, once all it sent has been passed on: both
    // sockets are then closed (a FIN each, no half-close round trip), as nginx does for
    // upgraded connections. A client that ends first half-closes the backend, which may still
    // answer (its close frame), and the tunnel ends when the backend does.
    let copy = async {
        let up = pump(c_read, b_write, &c_pending, from_client, true);
        let down = pump(b_read, c_write, &b_pending, to_client, false);
        tokio::pin!(up, down);
        tokio::select! {
            r = &mut down => r,
            r = &mut up => match r {
                Ok(()) => down.await,
                Err(e) => Err(e),
            },
        }
    };
    tokio::select! {
        r = copy => match r {
            Ok(()) => "closed".to_owned(),
            Err(e) => format!("error: {e}"),
        },
        _ = crate::proxy::timeouts::signalled(stop) => "proxy shutdown".to_owned(),
        _ = idle_watchdog(idle, from_client, to_client) => "idle timeout".to_owned(),
    }
}

/// Moves bytes from `from` to `to` (after `pending`, read before the tunnel began) until `from`
/// reaches end of stream, then (with `half_close`) half-closes `to` so the other direction can
/// finish.
///
/// A message is read into a per-thread scratch buffer and written on in the same
/// poll; only what the peer cannot take yet is copied out, so an idle tunnel holds no
/// buffer.
async fn pump(
    mut from: ReadHalf<'_>,
    mut to: WriteHalf<'_>,
    pending: &[u8],
    count: &AtomicU64,
    half_close: bool,
) -> io::Result<()> {
    const CHUNK: usize = 16 * 1024;
    thread_local! {
        static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; CHUNK]);
    }
    enum Step {
        Moved,
        Eof,
        Backlog(Vec<u8>),
    }
    if !pending.is_empty() {
        count.fetch_add(pending.len() as u64, Ordering::Relaxed);
        to.write_all(pending).await?;
    }
    loop {
        let step = std::future::poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|buf| {
                let mut rb = ReadBuf::new(buf);
                ready!(Pin::new(&mut from).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Ok(Step::Eof));
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
                Poll::Ready(match Pin::new(&mut to).poll_write(cx, &buf[..n]) {
                    Poll::Ready(Ok(w)) if w == n => Ok(Step::Moved),
                    Poll::Ready(Ok(w)) => Ok(Step::Backlog(buf[w..n].to_vec())),
                    Poll::Pending => Ok(Step::Backlog(buf[..n].to_vec())),
                    Poll::Ready(Err(e)) => Err(e),
                })
            })
        })
        .await?;
        match step {
            Step::Moved => {}
            Step::Eof => {
                if half_close {
                    let _ = to.shutdown().await;
                }
                return Ok(());
            }
            Step::Backlog(rest) => to.write_all(&rest).await?,
        }
    }
}

/// Resolves once no byte moved either way for `idle` (AGC's 5 min idle
/// timeout); zero disables it.
async fn idle_watchdog(idle: Duration, a: &AtomicU64, b: &AtomicU64) {
    if idle.is_zero() {
        return std::future::pending().await;
    }
    let tick = (idle / 8).max(Duration::from_millis(10));
    let mut last = (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let now = (a.load(Ordering::Relaxed), b.load(Ordering::Relaxed));
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= idle {
            return;
        }
    }
}
