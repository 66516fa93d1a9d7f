//! Controller latency benchmark. Run with:
//!
//! ```text
//! cargo run --release --example bench_controller
//! ```
//!
//! Drives the controller in-process on a real store (objects written as the API server would
//! write them, minus HTTP) and prints medians of:
//! 1. Gateway + HTTPRoute created → both Programmed (50 runs);
//! 2. 1,000 HTTPRoutes on one Gateway → all Accepted (3 runs, fresh store each);
//! 3. one more route after those 1,000 → Accepted (20 runs).

use agc_sandbox::controller::{self, ControllerOptions};
use agc_sandbox::meta::Object;
use agc_sandbox::object;
use agc_sandbox::resources::kinds;
use agc_sandbox::routing::{Bindings, RoutingTable};
use agc_sandbox::store::Store;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn cond_true(obj: &Value, t: &str) -> bool {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|c| c["type"] == t && c["status"] == "True"))
}

fn route_accepted(obj: &Value) -> bool {
    obj.pointer("/status/parents/0/conditions")
        .and_then(Value::as_array)
        .is_some_and(|a| {
            a.iter()
                .any(|c| c["type"] == "Accepted" && c["status"] == "True")
        })
}

fn gateway(name: &str) -> Object {
    object!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": name, "namespace": "bench"},
           "spec": {"gatewayClassName": "azure-alb-external", "listeners": [
               {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]}})
}

fn route(name: &str, gw: &str) -> Object {
    object!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": "bench"},
           "spec": {"parentRefs": [{"name": gw}], "hostnames": [format!("{name}.example.com")],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                               "backendRefs": [{"name": "svc", "port": 8080}]}]}})
}

struct Sandbox {
    store: Store,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

async fn start() -> Sandbox {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    store
        .create(
            kinds::namespaces(),
            object!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}),
            false,
        )
        .expect("namespace");
    store
        .create(
            kinds::services(),
            object!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc", "namespace": "bench"},
            "spec": {"ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}),
            false,
        )
        .expect("service");
    let (table_tx, _table_rx) = tokio::sync::watch::channel(Arc::new(RoutingTable::default()));
    let (_b_tx, b_rx) = tokio::sync::watch::channel(Arc::new(Bindings::new()));
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(controller::run(
        store.clone(),
        table_tx,
        b_rx,
        ControllerOptions::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    // Keep the channels' other ends alive for the run.
    std::mem::forget(_b_tx);
    std::mem::forget(_table_rx);
    Sandbox {
        store,
        _dir: dir,
        stop: Some(stop),
        task,
    }
}

impl Sandbox {
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.task).await;
    }
}

async fn until(deadline: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > deadline {
            panic!("condition not reached within {deadline:?}");
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    start.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // 1. Gateway + HTTPRoute → both Programmed.
    let sb = start().await;
    let mut runs = Vec::new();
    for i in 0..50 {
        let (g, r) = (format!("gw-{i}"), format!("rt-{i}"));
        let t0 = Instant::now();
        sb.store
            .create(kinds::gateways(), gateway(&g), false)
            .expect("gateway");
        sb.store
            .create(kinds::httproutes(), route(&r, &g), false)
            .expect("route");
        let store = sb.store.clone();
        until(Duration::from_secs(10), || {
            let gw = store.get(kinds::gateways(), "bench", &g);
            let rt = store.get(kinds::httproutes(), "bench", &r);
            gw.is_some_and(|o| cond_true(&o, "Programmed"))
                && rt.is_some_and(|o| {
                    o.pointer("/status/parents/0/conditions")
                        .and_then(Value::as_array)
                        .is_some_and(|a| {
                            a.iter()
                                .any(|c| c["type"] == "Programmed" && c["status"] == "True")
                        })
                })
        })
        .await;
        runs.push(t0.elapsed());
        sb.store
            .delete(kinds::httproutes(), "bench", &r, false)
            .expect("delete route");
        sb.store
            .delete(kinds::gateways(), "bench", &g, false)
            .expect("delete gateway");
    }
    println!(
        "gateway + route -> Programmed:      p50 {:?} (50 runs)",
        median(runs)
    );
    sb.stop().await;

    // 2. 1,000 routes → all Accepted; 3. one more.
    let mut bulk = Vec::new();
    let mut one_more = Vec::new();
    for _ in 0..3 {
        let sb = start().await;
        sb.store
            .create(kinds::gateways(), gateway("gw"), false)
            .expect("gateway");
        let t0 = Instant::now();
        for i in 0..1000 {
            sb.store
                .create(kinds::httproutes(), route(&format!("rt-{i}"), "gw"), false)
                .expect("route");
        }
        let store = sb.store.clone();
        until(Duration::from_secs(60), || {
            let (items, _) = store.list(kinds::httproutes(), Some("bench"));
            items.len() == 1000 && items.iter().all(|o| route_accepted(o))
        })
        .await;
        bulk.push(t0.elapsed());
        let snap = controller::Snapshot::from_store(&sb.store, Arc::new(Bindings::new()));
        let t1 = Instant::now();
        let out = controller::compute(&snap);
        println!(
            "  compute over {} routes: {:?} ({} statuses)",
            snap.httproutes.len(),
            t1.elapsed(),
            out.statuses.len()
        );
        for j in 0..7 {
            let name = format!("extra-{}-{j}", bulk.len());
            let t0 = Instant::now();
            sb.store
                .create(kinds::httproutes(), route(&name, "gw"), false)
                .expect("route");
            let store = sb.store.clone();
            until(Duration::from_secs(10), || {
                store
                    .get(kinds::httproutes(), "bench", &name)
                    .is_some_and(|o| route_accepted(&o))
            })
            .await;
            one_more.push(t0.elapsed());
        }
        sb.stop().await;
    }
    println!(
        "1,000 routes -> all Accepted:       median {:?} (3 runs)",
        median(bulk)
    );
    println!(
        "1 more route (after 1,000) -> Accepted: median {:?} ({} runs)",
        median(one_more.clone()),
        one_more.len()
    );
}
