//! Listener sockets and client connections.
//!
//! Sockets are keyed by address only: `(gateway address, listener.port +
//! port_offset)`. On every table change the wanted set is diffed against the
//! bound set: new addresses are bound, gone ones closed, the rest left
//! alone, so editing one listener never disturbs connections on another.
//! Which gateway, protocol and listeners a socket serves is looked up in the
//! current table per connection (and per request), so a socket needs no
//! rebinding when its listeners change. Bind results go to the controller on
//! the `bindings` channel.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::service::{service_fn, Service};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::health::HealthView;
use crate::proxy::forward::{self, ConnCtx, Shared};
use crate::proxy::h2deadline::{Deadlines, TrackedBody};
use crate::proxy::metrics::Metrics;
use crate::proxy::options::ProxyOptions;
use crate::proxy::timeouts::signalled;
use crate::proxy::timeouts::{InFlight, TimedIo};
use crate::proxy::{h1, tls};
use crate::routing::{Bindings, ListenerProtocol, RoutingTable};

/// See [`crate::proxy::run`].
pub async fn run(
    mut table: watch::Receiver<Arc<RoutingTable>>,
    health: watch::Receiver<Arc<HealthView>>,
    bindings: watch::Sender<Arc<Bindings>>,
    opts: ProxyOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (guard_tx, mut guard_rx) = mpsc::channel::<()>(1);
    let grace = opts.shutdown_grace;
    let workers = Workers::start(opts.workers);
    let shared = Arc::new(Shared::new(
        table.clone(),
        health,
        opts,
        metrics,
        stop_rx,
        guard_tx,
        workers.handles.clone(),
    ));
    let mut sockets: HashMap<SocketAddr, watch::Sender<bool>> = HashMap::new();
    tokio::pin!(shutdown);
    table.mark_changed();
    let mut open = true;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = table.changed(), if open => {
                if changed.is_err() {
                    open = false;
                    continue;
                }
                let t = table.borrow_and_update().clone();
                apply(&shared, &t, &mut sockets, &bindings).await;
            }
        }
    }
    tracing::info!(sockets = sockets.len(), "proxy stopping");
    let _ = stop_tx.send(true);
    for (_, close) in sockets.drain() {
        let _ = close.send(true);
    }
    drop(shared);
    // Every connection and tunnel task holds a guard sender; `recv` yields
    // `None` once all of them have ended.
    if tokio::time::timeout(grace + Duration::from_secs(1), guard_rx.recv())
        .await
        .is_err()
    {
        tracing::warn!("proxy connections did not finish within the shutdown grace period");
    }
    workers.stop().await;
}

/// Current-thread runtimes, one thread each, that serve client connections
/// (nginx's worker model): a client connection, its backend connections and
/// its tunnels all live on one thread, so a request costs no cross-thread
/// wake-ups. Every worker accepts on every listener (`start_accepting`).
struct Workers {
    handles: Vec<tokio::runtime::Handle>,
    stops: Vec<tokio::sync::oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    fn start(n: usize) -> Workers {
        let mut w = Workers {
            handles: Vec::new(),
            stops: Vec::new(),
            threads: Vec::new(),
        };
        for i in 0..n {
            let (handle_tx, handle_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let spawned = std::thread::Builder::new()
                .name(format!("agc-proxy-{i}"))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(error) => {
                            tracing::error!(%error, "failed to start a proxy worker");
                            return;
                        }
                    };
                    let _ = handle_tx.send(rt.handle().clone());
                    rt.block_on(async {
                        tokio::select! {
                            _ = stop_rx => {}
                            _ = timer_anchor() => {}
                        }
                    });
                });
            match spawned {
                Ok(thread) => {
                    if let Ok(h) = handle_rx.recv() {
                        w.handles.push(h);
                        w.stops.push(stop_tx);
                    }
                    w.threads.push(thread);
                }
                Err(error) => tracing::error!(%error, "failed to start a proxy worker thread"),
            }
        }
        w
    }

    /// Stops the runtimes (dropping whatever is left on them) and joins the
    /// threads.
    async fn stop(self) {
        for s in self.stops {
            let _ = s.send(());
        }
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// Keeps a timer due within a second on a worker's timer wheel, forever. tokio's time driver
/// wakes its own thread (an eventfd write, then a spurious epoll return) whenever a timer is set
/// earlier than the driver's next wake-up, even from that same thread; on an otherwise idle
/// worker that was every new connection's first timers (head, connect, request timeouts: three
/// wake-ups per WebSocket connection). With a tick due sooner than any of those, setting them
/// costs nothing extra, for one wake-up a second.
async fn timer_anchor() {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

type ListenerKey = (String, String, String);

async fn apply(
    shared: &Arc<Shared>,
    table: &Arc<RoutingTable>,
    sockets: &mut HashMap<SocketAddr, watch::Sender<bool>>,
    bindings: &watch::Sender<Arc<Bindings>>,
) {
    let offset = shared.opts.port_offset;
    let mut result = Bindings::new();
    let mut wanted: BTreeMap<SocketAddr, (ListenerProtocol, Vec<ListenerKey>)> = BTreeMap::new();
    for gw in &table.gateways {
        for l in &gw.listeners {
            let key = (gw.namespace.clone(), gw.name.clone(), l.name.clone());
            let Some(port) = l.port.checked_add(offset) else {
                result.insert(
                    key,
                    Err(format!(
                        "listener port {} plus --port-offset {offset} exceeds 65535",
                        l.port
                    )),
                );
                continue;
            };
            let addr = SocketAddr::new(IpAddr::V4(gw.address), port);
            let entry = wanted.entry(addr).or_insert((l.protocol, Vec::new()));
            if entry.0 != l.protocol {
                result.insert(
                    key,
                    Err(format!(
                        "{addr} already serves {} listeners; a port cannot mix HTTP and HTTPS",
                        entry.0.scheme().to_uppercase()
                    )),
                );
                continue;
            }
            entry.1.push(key);
        }
    }
    sockets.retain(|addr, close| {
        let keep = wanted.contains_key(addr);
        if !keep {
            tracing::info!(%addr, "closing listener socket");
            let _ = close.send(true);
        }
        keep
    });
    for (addr, (_, keys)) in wanted {
        let outcome = match sockets.entry(addr) {
            std::collections::hash_map::Entry::Occupied(_) => Ok(()),
            std::collections::hash_map::Entry::Vacant(slot) => {
                match bind(addr, shared.workers.len()) {
                    Ok(listeners) => {
                        tracing::info!(%addr, "listening");
                        let (close_tx, close_rx) = watch::channel(false);
                        slot.insert(close_tx);
                        start_accepting(shared, listeners, addr, close_rx);
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(%addr, error = %e, "failed to bind a listener socket");
                        Err(format!("failed to bind {addr}: {e}"))
                    }
                }
            }
        };
        for k in keys {
            result.insert(k, outcome.clone());
        }
    }
    bindings.send_if_modified(|cur| {
        if **cur == result {
            false
        } else {
            *cur = Arc::new(result);
            true
        }
    });
    shared
        .metrics
        .config_updates
        .fetch_add(1, Ordering::Relaxed);
    // Idle connections to endpoints that left the table are closed.
    for pool in &shared.pools {
        pool.retain(|a| {
            table
                .backends
                .values()
                .any(|b| b.endpoints.iter().any(|e| e.addr == *a))
        });
    }
}

/// Binds `addr` once per worker (at least once), as a `SO_REUSEPORT` group: the kernel hands
/// each new connection to one worker's socket, so no other worker wakes for it (a shared
/// socket wakes every worker and all but one find nothing).
///
/// A group would also let another process of the same user join it, splitting the traffic
/// silently. So the port is first bound without `SO_REUSEPORT`: that fails, as any bind did
/// before, when anything else holds the address (including another sandbox's group).
fn bind(addr: SocketAddr, workers: usize) -> std::io::Result<Vec<TcpListener>> {
    let plain = |reuseport: bool| -> std::io::Result<TcpSocket> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        if reuseport {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        Ok(socket)
    };
    if workers <= 1 {
        return Ok(vec![plain(false)?.listen(1024)?]);
    }
    drop(plain(false)?);
    (0..workers)
        .map(|_| plain(true).and_then(|s| s.listen(1024)))
        .collect()
}

/// Accepts on every worker runtime, each on its own socket of the listener's group
/// ([`bind`]), so a connection is served on the thread that accepted it, as nginx's workers
/// do: no hand-off between threads, and no second registration of the socket with another
/// reactor (the hand-off cost two `epoll_ctl`s and a cross-thread wake-up per connection).
fn start_accepting(
    shared: &Arc<Shared>,
    listeners: Vec<TcpListener>,
    local: SocketAddr,
    close: watch::Receiver<bool>,
) {
    let tls = tls::server_config(shared.table.clone(), local, shared.opts.port_offset);
    // The listener's own budget, shared by its accept loops.
    let own = Arc::new(tokio::sync::Semaphore::new(
        shared.opts.max_connections_per_listener.max(1),
    ));
    if shared.workers.is_empty() {
        for l in listeners {
            let (shared, tls, own, close) =
                (shared.clone(), tls.clone(), own.clone(), close.clone());
            tokio::spawn(accept_loop(shared, l, local, tls, own, close, 0));
        }
        return;
    }
    for (worker, (listener, handle)) in listeners.into_iter().zip(&shared.workers).enumerate() {
        // Registered with this runtime's reactor by `listen`; moved to the worker's.
        let std = match listener.into_std() {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%local, %error, "failed to hand a listener socket to a worker");
                continue;
            }
        };
        let (shared, tls, own, close) = (shared.clone(), tls.clone(), own.clone(), close.clone());
        handle.spawn(async move {
            match TcpListener::from_std(std) {
                Ok(l) => accept_loop(shared, l, local, tls, own, close, worker).await,
                Err(error) => tracing::warn!(%local, %error, "failed to register a listener"),
            }
        });
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    local: SocketAddr,
    tls: Arc<ServerConfig>,
    own: Arc<tokio::sync::Semaphore>,
    mut close: watch::Receiver<bool>,
    worker: usize,
) {
    let _guard = shared.guard.clone();
    let mut last_warned: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = signalled(&mut close) => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    // Both budgets, or the connection is closed at once: cheap, and the
                    // client sees a refusal instead of a hang.
                    let permits = own
                        .clone()
                        .try_acquire_owned()
                        .ok()
                        .zip(shared.connections.clone().try_acquire_owned().ok());
                    match permits {
                        Some(permits) => {
                            let _ = tcp.set_nodelay(true);
                            let (shared, tls, close) = (shared.clone(), tls.clone(), close.clone());
                            let guard = shared.guard.clone();
                            tokio::spawn(async move {
                                serve_conn(shared, tcp, peer, local, tls, close, worker, guard).await;
                                drop(permits);
                            });
                        }
                        None => {
                            drop(tcp);
                            shared.metrics.connections_refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if last_warned.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                                tracing::warn!(%local, per_listener = shared.opts.max_connections_per_listener, all = shared.opts.max_connections, "client connections refused: the connection budget is spent");
                                last_warned = Some(std::time::Instant::now());
                            }
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%local, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_conn(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    tls: Arc<ServerConfig>,
    close: watch::Receiver<bool>,
    worker: usize,
    _guard: mpsc::Sender<()>,
) {
    let Some(mut ctx) = ConnCtx::lookup(&shared, local, peer, worker) else {
        return; // the socket is being removed
    };
    let in_flight = Arc::new(InFlight::default());
    let (idle, header) = (shared.opts.idle_timeout, shared.opts.header_read_timeout);
    let h1_timer = || {
        let far = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
        Some(std::sync::Mutex::new(Box::pin(tokio::time::sleep_until(
            far,
        ))))
    };
    if !ctx.https {
        ctx.request_timer = h1_timer();
        ctx.raw_heads = true;
        let io = TimedIo::new(tcp, in_flight.clone(), idle, Some(header));
        return h1::serve(shared, Arc::new(ctx), io, in_flight, close).await;
    }
    // Boxed: the TLS states (handshake, h2, HTTP/1.1 over TLS) would
    // otherwise make every plain connection's task as large as theirs.
    Box::pin(serve_tls(shared, tcp, ctx, tls, in_flight, close, h1_timer)).await
}

async fn serve_tls(
    shared: Arc<Shared>,
    tcp: TcpStream,
    mut ctx: ConnCtx,
    tls: Arc<ServerConfig>,
    in_flight: Arc<InFlight>,
    close: watch::Receiver<bool>,
    h1_timer: impl Fn() -> Option<std::sync::Mutex<Pin<Box<tokio::time::Sleep>>>>,
) {
    let (idle, header) = (shared.opts.idle_timeout, shared.opts.header_read_timeout);
    let (peer, local) = (ctx.peer, tcp.local_addr().ok());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let stream =
        match tokio::time::timeout(shared.opts.header_read_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(s)) => s,
            Ok(Err(error)) => {
                tracing::debug!(%peer, ?local, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, ?local, "TLS handshake timed out");
                return;
            }
        };
    let (_, session) = stream.get_ref();
    ctx.sni = session.server_name().map(str::to_owned);
    let h2 = session.alpn_protocol() == Some(b"h2");
    if !h2 {
        ctx.request_timer = h1_timer();
        ctx.raw_heads = true;
    }
    let ctx = Arc::new(ctx);
    if h2 {
        let io = TimedIo::new(stream, in_flight.clone(), idle, None);
        serve_h2(shared, ctx, TokioIo::new(io), in_flight, close).await
    } else {
        let io = TimedIo::new(stream, in_flight.clone(), idle, Some(header));
        h1::serve(shared, ctx, io, in_flight, close).await
    }
}

/// The per-connection h2 service: every request goes to
/// [`forward::handle`], marked in flight for the connection's timeouts
/// while it runs.
fn h2_service(
    shared: &Arc<Shared>,
    ctx: Arc<ConnCtx>,
    in_flight: Arc<InFlight>,
    deadlines: Arc<Deadlines>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<TrackedBody>,
    Error = Infallible,
    Future: Send + 'static,
> + Send
       + 'static {
    let shared = shared.clone();
    service_fn(move |req| {
        let (s, c, d) = (shared.clone(), ctx.clone(), deadlines.clone());
        let busy = in_flight.start();
        async move {
            // h2 requests never upgrade (no extended CONNECT), so there is
            // no tunnel to take.
            let resp = forward::handle(&s, &c, req).await.response;
            drop(busy);
            Ok::<_, Infallible>(resp.map(|b| d.track(b)))
        }
    })
}

async fn serve_h2<I>(
    shared: Arc<Shared>,
    ctx: Arc<ConnCtx>,
    io: I,
    in_flight: Arc<InFlight>,
    mut close: watch::Receiver<bool>,
) where
    I: Read + Write + Unpin + Send + 'static,
{
    let grace = shared.opts.shutdown_grace;
    let deadlines = Arc::new(Deadlines::default());
    let svc = h2_service(&shared, ctx, in_flight, deadlines.clone());
    let conn = shared.h2.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(error) = res {
                tracing::debug!(%error, "h2 client connection ended with an error");
            }
        }
        // A response still streaming past its request timeout that hyper has not polled (the
        // client stopped reading): the connection is closed, freeing the backend.
        _ = deadlines.overdue() => {
            tracing::debug!("h2 response unread past the request timeout: connection closed");
        }
        _ = signalled(&mut close) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(grace, conn).await;
        }
    }
}
