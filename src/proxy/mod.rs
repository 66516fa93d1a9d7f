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

pub mod cors;
pub mod forward;
mod h1;
pub mod h2deadline;
pub mod metrics;
pub mod mirror;
pub mod normalize;
pub mod options;
pub mod pool;
pub mod route;
pub mod server;
pub mod timeouts;
pub mod tls;
pub mod upgrade;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

use crate::apiserver::Extension;
use crate::health::HealthView;
use crate::routing::{Bindings, RoutingTable};

pub use metrics::{AdminExtension, Metrics};
pub use options::{open_files_limit, ProxyOptions};

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
