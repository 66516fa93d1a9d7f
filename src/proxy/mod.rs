//! The data plane's gateway proxy.
//!
//! - [`route`]: sans-IO HTTPRoute matching, precedence, redirects and rewrites.
//! - [`server`]: listener sockets (diffed on every table change), TLS + ALPN,
//!   h2 connections (on hyper), graceful shutdown.
//! - `h1`: the HTTP/1.1 server side of client connections (the proxy's own).
//! - [`forward`]: per-request routing, filters, load balancing, session
//!   affinity and forwarding to backends over HTTP/1.1.
//! - [`mirror`]: `RequestMirror` copies of requests, with teed bodies.
//! - [`pool`]: the HTTP/1.1 client to backends, with keep-alive pooling.
//! - [`timeouts`]: idle and header-read timeouts of client connections.
//! - [`upgrade`]: WebSocket (any HTTP/1.1 `Upgrade`) tunnels.
//! - [`tls`]: certificate selection by SNI from the live table.
//! - [`metrics`]: counters, the `/metrics` and `/backendHealth` extension.
//!
//! Configuration arrives as whole [`RoutingTable`] snapshots on a `watch`
//! channel; requests clone the current `Arc` and never take a lock the
//! controller holds. Health arrives the same way from [`crate::health`].

pub mod forward;
mod h1;
pub mod metrics;
pub mod mirror;
pub mod normalize;
pub mod pool;
pub mod route;
pub mod server;
pub mod timeouts;
pub mod tls;
pub mod upgrade;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::apiserver::Extension;
use crate::health::HealthView;
use crate::routing::{Bindings, RoutingTable};

pub use metrics::{AdminExtension, Metrics};

/// Tunables of the proxy; [`ProxyOptions::new`] gives AGC's values.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Added to every listener port (`--port-offset`), so the simulator can
    /// serve ports 80/443 without privileges.
    pub port_offset: u16,
    /// Backend TCP connect timeout (AGC: 5 s).
    pub connect_timeout: Duration,
    /// Idle timeout of client connections and tunnels (AGC: 5 min).
    pub idle_timeout: Duration,
    /// Time a client has, from the first byte of a request head, to send
    /// the rest.
    pub header_read_timeout: Duration,
    /// Largest request head accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// How long connections get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Idle keep-alive connections kept per backend endpoint (per worker).
    pub max_idle_per_endpoint: usize,
    /// Worker threads serving client connections, each with its own
    /// current-thread runtime; 0 serves them on the caller's runtime.
    pub workers: usize,
    /// Open client connections at most on one listener, and on all of them: past either a new
    /// connection is closed at once, so a flood on one listener cannot take the file
    /// descriptors the other listeners, the API, the health checker and the pods need.
    pub max_connections_per_listener: usize,
    pub max_connections: usize,
}

/// The soft open-files limit (what `up` raised it to), or 1024.
pub fn open_files_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    }
}

impl ProxyOptions {
    /// AGC's defaults with the given port offset.
    pub fn new(port_offset: u16) -> Self {
        ProxyOptions {
            port_offset,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(5),
            max_idle_per_endpoint: 256,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            // A proxied connection can hold two descriptors (client and backend): a quarter of
            // the limit for all listeners, an eighth for any one.
            max_connections_per_listener: (open_files_limit() / 8).max(32),
            max_connections: (open_files_limit() / 4).max(64),
        }
    }
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions::new(0)
    }
}

/// Serves every listener of the tables published on `table` until
/// `shutdown` resolves, then drains connections and closes tunnels.
/// Bind results are published on `bindings`.
pub async fn run(
    table: watch::Receiver<Arc<RoutingTable>>,
    health: watch::Receiver<Arc<HealthView>>,
    bindings: watch::Sender<Arc<Bindings>>,
    opts: ProxyOptions,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    server::run(table, health, bindings, opts, metrics, shutdown).await
}

/// Starts the health checker and the proxy on `table` (the one call
/// `app.rs` needs). Returns the admin extension (`/backendHealth`,
/// `/metrics`), the bind results and a handle that resolves once the proxy
/// has drained after `shutdown`.
pub fn start(
    table: watch::Receiver<Arc<RoutingTable>>,
    opts: ProxyOptions,
    shutdown: watch::Receiver<bool>,
) -> Started {
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let health = crate::health::spawn(table.clone(), stopped(shutdown.clone()));
    let metrics = Arc::new(Metrics::default());
    let (bind_tx, bind_rx) = watch::channel(Arc::new(Bindings::new()));
    let extension: Arc<dyn Extension> =
        Arc::new(AdminExtension::new(health.clone(), metrics.clone()));
    let task = tokio::spawn(run(
        table,
        health.clone(),
        bind_tx,
        opts,
        metrics.clone(),
        stopped(shutdown),
    ));
    Started {
        extension,
        bindings: bind_rx,
        health,
        metrics,
        task,
    }
}

/// What [`start`] returns.
pub struct Started {
    /// Serves `/backendHealth` and `/metrics` on the API port.
    pub extension: Arc<dyn Extension>,
    /// Bind results for the controller.
    pub bindings: watch::Receiver<Arc<Bindings>>,
    /// Endpoint health as the proxy sees it.
    pub health: watch::Receiver<Arc<HealthView>>,
    pub metrics: Arc<Metrics>,
    /// Resolves when the proxy has stopped.
    pub task: tokio::task::JoinHandle<()>,
}
