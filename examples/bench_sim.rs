//! Workload simulator benchmark: how long until 100 replicas are Ready, and what each simulated
//! pod costs in resident memory.
//!
//!     cargo build --release && cargo run --release --example bench_sim
//!
//! Drives the real binary over its API, as kubectl would, in a temp dir.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const REPLICAS: usize = 100;
const ROUNDS: usize = 5;

fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("agc-sandbox")
}

async fn request(
    addr: &str,
    method: &str,
    path: &str,
    ct: &str,
    body: String,
) -> (u16, serde_json::Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "sandbox")
        .header("content-type", ct)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = send.send_request(req).await.expect("send");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

fn rss_kb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0.0)
}

fn deployment(name: &str, replicas: usize) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "echo", "image": "gcr.io/k8s-staging-gateway-api/echo-basic:v20240412",
                                  "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}
    })
    .to_string()
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(binary())
        .args([
            "up",
            "--log-level",
            "warn",
            "--api-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run target/release/agc-sandbox (cargo build --release first)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let addr = loop {
        let line = lines.next().expect("sandbox exited").expect("read");
        if let Some(u) = line.trim().strip_prefix("API:") {
            break u.trim().trim_start_matches("http://").to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut times = Vec::new();
    let mut per_pod_kb = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("bench-{round}");
        let before = rss_kb(child.id());
        let t = Instant::now();
        let (code, _) = request(
            &addr,
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            "application/json",
            deployment(&name, REPLICAS),
        )
        .await;
        assert_eq!(code, 201);
        loop {
            let (_, d) = request(
                &addr,
                "GET",
                &format!("/apis/apps/v1/namespaces/default/deployments/{name}"),
                "application/json",
                String::new(),
            )
            .await;
            if d["status"]["readyReplicas"].as_u64() == Some(REPLICAS as u64) {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "replicas never became ready"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
        per_pod_kb.push((rss_kb(child.id()) - before) / REPLICAS as f64);
        let (code, _) = request(
            &addr,
            "DELETE",
            &format!("/apis/apps/v1/namespaces/default/deployments/{name}"),
            "application/json",
            String::new(),
        )
        .await;
        assert_eq!(code, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    times.sort();
    let mut sorted_kb = per_pod_kb.clone();
    sorted_kb.sort_by(f64::total_cmp);
    println!("| measure ({ROUNDS} rounds) | median | min | max | target |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| {REPLICAS} replicas: Deployment created → all Ready | {:.0} ms | {:.0} ms | {:.0} ms | < 2 s |",
        times[ROUNDS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[ROUNDS - 1].as_secs_f64() * 1e3
    );
    println!(
        "| resident memory per simulated pod | {:.0} KB | {:.0} KB | {:.0} KB | < 1 MB |",
        sorted_kb[ROUNDS / 2],
        sorted_kb[0],
        sorted_kb[ROUNDS - 1]
    );
}
