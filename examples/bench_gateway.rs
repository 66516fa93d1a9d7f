//! Starts the gateway proxy with a hand-built table for `shared/bench/run.sh`:
//! Host `http.contoso.com` → 127.0.0.1:9001, `ws.contoso.com` → 127.0.0.1:9002,
//! served on `127.20.0.1:18080` (listener port 80 + offset 18000). Backends use
//! TCP probes, so they turn healthy as soon as the bench starts them.
//!
//!     cargo run --release --example bench_gateway [-- <ip> <offset>]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use agc_sandbox::proxy::{self, ProxyOptions};
use agc_sandbox::routing::*;

fn backend(svc: &str, addr: SocketAddr) -> (BackendKey, Arc<BackendRuntime>) {
    let key: BackendKey = format!("bench/{svc}/80").parse().expect("valid key");
    let probe = ProbeSettings {
        kind: ProbeKind::Tcp,
        interval: Duration::from_secs(1),
        timeout: Duration::from_secs(1),
        ..ProbeSettings::agc_default()
    };
    let b = BackendRuntime {
        key: key.clone(),
        endpoints: vec![Endpoint {
            addr,
            pod: None,
            ready: true,
        }],
        probe,
        app_protocol_tls: false,
        tls_sni: None,
    };
    (key, Arc::new(b))
}

fn route(name: &str, host: &str, key: &BackendKey) -> Arc<RouteRuntime> {
    Arc::new(RouteRuntime {
        namespace: "bench".into(),
        name: name.into(),
        creation_timestamp: "2024-01-01T00:00:00Z".into(),
        hostnames: vec![host.into()],
        rules: vec![RuleRuntime {
            backends: vec![WeightedBackend {
                weight: 1,
                target: BackendTarget::Service(key.clone()),
                filters: vec![],
            }],
            ..Default::default()
        }],
    })
}

fn main() {
    // Accepting and health checking run here; connections run on the proxy's
    // worker runtimes (BENCH_WORKERS, default: ProxyOptions' choice).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(serve());
}

async fn serve() {
    let mut args = std::env::args().skip(1);
    let ip: Ipv4Addr = args
        .next()
        .map_or(Ipv4Addr::new(127, 20, 0, 1), |a| a.parse().expect("ip"));
    let offset: u16 = args.next().map_or(18000, |a| a.parse().expect("offset"));
    let (hk, hb) = backend("http", SocketAddr::from(([127, 0, 0, 1], 9001)));
    let (wk, wb) = backend("ws", SocketAddr::from(([127, 0, 0, 1], 9002)));
    let routes = vec![
        route("http", "http.contoso.com", &hk),
        route("ws", "ws.contoso.com", &wk),
    ];
    let table = RoutingTable {
        version: 1,
        gateways: vec![Arc::new(GatewayRuntime {
            namespace: "bench".into(),
            name: "gw".into(),
            address: ip,
            listeners: vec![ListenerRuntime {
                name: "http".into(),
                port: 80,
                protocol: ListenerProtocol::Http,
                hostname: None,
                tls: None,
                routes: RouteIndex::new(routes),
            }],
        })],
        backends: [(hk, hb), (wk, wb)].into_iter().collect(),
    };
    let (_tx, rx) = tokio::sync::watch::channel(Arc::new(table));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut opts = ProxyOptions::new(offset);
    if let Some(n) = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.workers = n;
    }
    let started = proxy::start(rx, opts, stop_rx);
    eprintln!(
        "bench gateway on {ip}:{} (pid {})",
        80 + offset,
        std::process::id()
    );
    let _ = tokio::signal::ctrl_c().await;
    let _ = stop_tx.send(true);
    let _ = started.task.await;
}
