//! API server benchmark: create+get round trip latency, 10,000 objects then restart to
//! `/readyz`, and resident memory with 10,000 objects.
//!
//! Run (builds the release binary first):
//!
//!     cargo build --release && cargo run --release --example bench_api
//!
//! It drives the real binary over loopback HTTP/1.1 keep-alive, as kubectl would, in a temp dir.
//! Figures go to stdout as a Markdown table (see BENCHMARKS.md).

mod support;

use agc_sandbox::client::Access;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{connect, rss_mb, start_sandbox};

const OBJECTS: usize = 10_000;
const ROUND_TRIPS: usize = 2_000;

async fn request(
    access: &Access,
    send: &mut SendRequest<Full<Bytes>>,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> u16 {
    let req = support::request(access, method, path, body);
    send.ready().await.expect("connection ready");
    let resp = send.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    resp.into_body().collect().await.expect("body");
    status
}

fn configmap(i: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("cm-{i}"), "labels": {"bench": "api"}},
        "data": {"key": format!("value-{i}"), "other": "some text of a typical size for a config entry"},
    }))
    .expect("json")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn wait_ready(access: &Access, started: Instant) -> Duration {
    let addr = access.server.trim_start_matches("https://").to_string();
    loop {
        if let Ok(stream) = tokio::net::TcpStream::connect(&addr).await {
            drop(stream);
            let mut send = connect(access).await;
            if request(access, &mut send, "GET", "/readyz", vec![]).await == 200 {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = start_sandbox(dir.path(), &[]);
    let idle_rss = rss_mb(child.id());
    let mut send = connect(&addr).await;

    // 1. create + get round trips, one at a time on one keep-alive connection.
    let mut lat = Vec::with_capacity(ROUND_TRIPS);
    for i in 0..ROUND_TRIPS {
        let t = Instant::now();
        let path = "/api/v1/namespaces/default/configmaps";
        assert_eq!(
            request(&addr, &mut send, "POST", path, configmap(i)).await,
            201
        );
        assert_eq!(
            request(&addr, &mut send, "GET", &format!("{path}/cm-{i}"), vec![]).await,
            200
        );
        lat.push(t.elapsed());
    }
    lat.sort();

    // 2. fill up to 10,000 objects with 8 concurrent clients.
    let fill_start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut send = connect(&addr).await;
            for i in (ROUND_TRIPS + w..OBJECTS).step_by(8) {
                let path = "/api/v1/namespaces/default/configmaps";
                assert_eq!(
                    request(&addr, &mut send, "POST", path, configmap(i)).await,
                    201
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("filler");
    }
    let fill = fill_start.elapsed();
    let full_rss = rss_mb(child.id());

    // 3. restart (SIGTERM, and kill -9) and time until /readyz answers 200.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    child.wait().expect("wait");
    let t = Instant::now();
    let (mut child, addr) = start_sandbox(dir.path(), &[]);
    let restart = wait_ready(&addr, t).await;
    let restart_rss = rss_mb(child.id());
    child.kill().expect("kill -9");
    child.wait().expect("wait");
    let t = Instant::now();
    let (mut child, addr) = start_sandbox(dir.path(), &[]);
    let restart_kill = wait_ready(&addr, t).await;
    let mut send = connect(&addr).await;
    let listed = request(
        &addr,
        &mut send,
        "GET",
        "/api/v1/namespaces/default/configmaps?labelSelector=bench%3Dapi",
        vec![],
    )
    .await;
    assert_eq!(listed, 200);
    child.kill().expect("kill");
    child.wait().expect("wait");

    println!("| measure | value | target |");
    println!("|---|---:|---:|");
    println!(
        "| create+get round trip p50 ({ROUND_TRIPS} sequential) | {:.0} µs | < 1 ms |",
        percentile(&lat, 0.5).as_secs_f64() * 1e6
    );
    println!(
        "| create+get round trip p99 | {:.0} µs | |",
        percentile(&lat, 0.99).as_secs_f64() * 1e6
    );
    println!(
        "| create {} more objects, 8 clients | {:.2} s ({:.0}/s) | |",
        OBJECTS - ROUND_TRIPS,
        fill.as_secs_f64(),
        (OBJECTS - ROUND_TRIPS) as f64 / fill.as_secs_f64()
    );
    println!(
        "| restart with {OBJECTS} objects (SIGTERM) to /readyz 200 | {:.0} ms | < 1 s |",
        restart.as_secs_f64() * 1e3
    );
    println!(
        "| restart with {OBJECTS} objects (after kill -9) to /readyz 200 | {:.0} ms | < 1 s |",
        restart_kill.as_secs_f64() * 1e3
    );
    println!("| resident memory, idle | {idle_rss:.1} MB | |");
    println!(
        "| resident memory with {OBJECTS} objects (before restart) | {full_rss:.1} MB | < 100 MB |"
    );
    println!("| resident memory with {OBJECTS} objects (after restart) | {restart_rss:.1} MB | < 100 MB |");
}
