//! Gateway scale benchmark, through the real binary and its API:
//! 1. resident memory of 10,000 idle WebSocket tunnels held open through a Gateway;
//! 2. request latency while a routing table with 1,000 more HTTPRoutes is swapped in.
//!
//!     cargo build --release && cargo run --release --example bench_tunnels
//!
//! Each tunnel holds two descriptors in the sandbox (client and backend sockets) and two here
//! (client end and the echo backend's end). Where the hard limit on open files is 20,000 (as on
//! the CI machines, where it cannot be raised), 9,000 tunnels is what fits; set `TUNNELS` to
//! measure more where the limit allows. The table reports the measured count and the
//! per-tunnel cost scaled to 10,000.

mod support;

use agc_sandbox::sim::apps::{self, AppContext, AppKind, Fault};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{api, rss_mb, start_sandbox};
use tokio_tungstenite::tungstenite::Message;

/// Tunnels to open (`TUNNELS` env overrides).
fn tunnels() -> usize {
    std::env::var("TUNNELS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(9_000)
}
const ROUTES: usize = 1_000;
const OFFSET: u16 = 18_500;

/// Raises the soft open-files limit to the hard limit (the sandbox does the same at start).
fn raise_limits() {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn route(name: &str, host: &str) -> serde_json::Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name},
           "spec": {"parentRefs": [{"name": "gw"}], "hostnames": [host],
                    "rules": [{"backendRefs": [{"name": "echo", "port": 80}]}]}})
}

/// One GET through the gateway on a fresh connection; returns the status.
async fn get(gw: &str, host: &str) -> u16 {
    let Ok(stream) = tokio::net::TcpStream::connect(gw).await else {
        return 0;
    };
    let Ok((mut send, conn)) =
        hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
    else {
        return 0;
    };
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .expect("request");
    match send.send_request(req).await {
        Ok(r) => {
            let code = r.status().as_u16();
            let _ = r.into_body().collect().await;
            code
        }
        Err(_) => 0,
    }
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    raise_limits();
    // The backend: echo-basic (GET / answers 200, so AGC's default probe passes; /ws echoes).
    let echo = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo");
    let echo_addr = echo.local_addr().expect("addr");
    let (_fault_tx, fault_rx) = tokio::sync::watch::channel(Fault::None);
    let ctx = Arc::new(AppContext {
        pod: "echo".into(),
        namespace: "default".into(),
        service: String::new(),
        ingress: String::new(),
        log: None,
    });
    tokio::spawn(apps::serve(
        echo,
        AppKind::EchoBasic,
        ctx,
        fault_rx,
        std::future::pending(),
    ));

    let dir = tempfile::tempdir().expect("tempdir");
    let offset = OFFSET.to_string();
    let (mut child, addr) = start_sandbox(dir.path(), &["--port-offset", &offset]);

    let ns = "/api/v1/namespaces/default";
    api(
        &addr,
        "POST",
        &format!("{ns}/services"),
        json!({"metadata": {"name": "echo"}, "spec": {"ports": [{"name": "http", "port": 80}]}}),
    )
    .await;
    api(
        &addr,
        "POST",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        json!({
        "metadata": {"name": "echo-1", "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": echo_addr.port(), "protocol": "TCP"}]}),
    )
    .await;
    api(&addr, "POST", "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways", json!({
        "metadata": {"name": "gw"},
        "spec": {"gatewayClassName": "azure-alb-external", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]}})).await;
    api(
        &addr,
        "POST",
        "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes",
        route("ws", "ws.example.com"),
    )
    .await;
    let gw_ip = loop {
        let (_, g) = api(
            &addr,
            "GET",
            "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/gw",
            serde_json::Value::Null,
        )
        .await;
        if let Some(ip) = g
            .pointer("/status/addresses/0/value")
            .and_then(|v| v.as_str())
        {
            break ip.to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let gw = format!("{gw_ip}:{}", 80 + OFFSET);
    let t = Instant::now();
    while get(&gw, "ws.example.com").await != 200 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the gateway never served the route"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    eprintln!("gateway serving at {gw}");
    // 1. Idle tunnels.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_mb(child.id());
    let n = tunnels();
    let mut tunnels = Vec::with_capacity(n);
    for batch in 0..n / 500 {
        let mut handshakes = Vec::new();
        for _ in 0..500 {
            let gw = gw.clone();
            handshakes.push(tokio::spawn(async move {
                let tcp = tokio::net::TcpStream::connect(&gw).await.expect("connect");
                let (ws, _) = tokio_tungstenite::client_async("ws://ws.example.com/ws", tcp)
                    .await
                    .expect("upgrade through the gateway");
                ws
            }));
        }
        for h in handshakes {
            tunnels.push(h.await.expect("tunnel"));
        }
        eprintln!("{} tunnels open", (batch + 1) * 500);
    }
    for ws in tunnels.iter_mut().step_by(100) {
        ws.send(Message::text("ping")).await.expect("send");
        let reply = ws.next().await.expect("reply").expect("frame");
        assert_eq!(reply.into_text().expect("text").as_str(), "ping");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_mb(child.id());
    drop(tunnels);
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!("tunnels measured; swapping in {ROUTES} routes");
    // 2. Swap in 1,000 more routes while requests keep flowing.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (gw2, stop2) = (gw.clone(), stop.clone());
    let prober = tokio::spawn(async move {
        let mut samples = Vec::new();
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            let code = get(&gw2, "ws.example.com").await;
            samples.push((Instant::now(), t.elapsed(), code));
        }
        samples
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let swap_start = Instant::now();
    let mut writers = Vec::new();
    for w in 0..8 {
        let addr = addr.clone();
        writers.push(tokio::spawn(async move {
            for i in (w..ROUTES).step_by(8) {
                let (code, _) = api(
                    &addr,
                    "POST",
                    "/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes",
                    route(&format!("r{i}"), &format!("h{i}.example.com")),
                )
                .await;
                assert_eq!(code, 201);
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let last = format!("r{}", ROUTES - 1);
    loop {
        let (_, r) = api(
            &addr,
            "GET",
            &format!("/apis/gateway.networking.k8s.io/v1/namespaces/default/httproutes/{last}"),
            serde_json::Value::Null,
        )
        .await;
        if r.pointer("/status/parents/0/conditions")
            .and_then(|c| c.as_array())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Accepted" && c["status"] == "True")
            })
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let swap_end = Instant::now();
    eprintln!("swap done");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = prober.await.expect("prober");
    let errors = samples.iter().filter(|s| s.2 != 200).count();
    let mut baseline: Vec<Duration> = samples
        .iter()
        .filter(|s| s.0 < swap_start)
        .map(|s| s.1)
        .collect();
    let mut during: Vec<Duration> = samples
        .iter()
        .filter(|s| s.0 >= swap_start && s.0 <= swap_end)
        .map(|s| s.1)
        .collect();
    baseline.sort();
    during.sort();
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();

    println!("| measure | value | target |");
    println!("|---|---:|---:|");
    let per = (after - before) / n as f64;
    println!("| {n} idle WebSocket tunnels: extra resident memory | {:.1} MB ({:.1} KB per tunnel; {:.0} MB scaled to 10,000) | < 100 MB for 10,000 |", after - before, per * 1024.0, per * 10_000.0);
    println!(
        "| {ROUTES} HTTPRoutes created and all Accepted, under traffic | {:.0} ms | |",
        (swap_end - swap_start).as_secs_f64() * 1e3
    );
    println!("| request latency before the swap: p50 / p99 / max ({} requests) | {:.2} / {:.2} / {:.2} ms | |", baseline.len(), pct(&baseline, 0.5), pct(&baseline, 0.99), pct(&baseline, 1.0));
    println!("| request latency during the swap: p50 / p99 / max ({} requests) | {:.2} / {:.2} / {:.2} ms | no stall |", during.len(), pct(&during, 0.5), pct(&during, 0.99), pct(&during, 1.0));
    println!("| failed requests during the whole run | {errors} | 0 |");
}
