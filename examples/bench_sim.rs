//! Workload simulator benchmark: how long until 100 replicas are Ready, and what each simulated
//! pod costs in resident memory.
//!
//!     cargo build --release && cargo run --release --example bench_sim
//!
//! Drives the real binary over its API, as kubectl would, in a temp dir.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};
use support::{api, rss_mb, start_sandbox};

const REPLICAS: usize = 100;
const ROUNDS: usize = 5;

fn deployment(name: &str, replicas: usize) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "echo", "image": "gcr.io/k8s-staging-gateway-api/echo-basic:v20240412",
                                  "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}
    })
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, addr) = start_sandbox(dir.path(), &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut times = Vec::new();
    let mut per_pod_kb = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("bench-{round}");
        let before = rss_mb(child.id()) * 1024.0;
        let t = Instant::now();
        let (code, _) = api(
            &addr,
            "POST",
            "/apis/apps/v1/namespaces/default/deployments",
            deployment(&name, REPLICAS),
        )
        .await;
        assert_eq!(code, 201);
        loop {
            let (_, d) = api(
                &addr,
                "GET",
                &format!("/apis/apps/v1/namespaces/default/deployments/{name}"),
                serde_json::Value::Null,
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
        per_pod_kb.push(((rss_mb(child.id()) * 1024.0) - before) / REPLICAS as f64);
        let (code, _) = api(
            &addr,
            "DELETE",
            &format!("/apis/apps/v1/namespaces/default/deployments/{name}"),
            serde_json::Value::Null,
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
