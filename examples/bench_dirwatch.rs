//! Benchmark of the drop-in folder: from a file saved in a watched folder to the new HTTPRoute
//! `Accepted` in its status. Target: p50 under 100 ms (the watcher's debounce is 50 ms).
//!
//! `cargo run --release --example bench_dirwatch [-- ROUNDS]` (default 30). The lead extends
//! this to "route serving traffic" once the proxy is merged.

use agc_sandbox::resources::kinds;
use agc_sandbox::scenario::client::{ApiClient, ObjRef};
use serde_json::Value;
use std::time::{Duration, Instant};

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: bench\nspec:\n  gatewayClassName: azure-alb-external\n  listeners:\n  - name: http\n    port: 80\n    protocol: HTTP\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: bench\nspec:\n  ports:\n  - port: 8080\n";

fn route(i: usize) -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: r{i}\n  namespace: bench\nspec:\n  parentRefs:\n  - name: gw\n  hostnames: [\"r{i}.example.com\"]\n  rules:\n  - backendRefs:\n    - name: svc\n      port: 8080\n")
}

fn accepted(obj: &Value) -> bool {
    obj.pointer("/status/parents/0/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Accepted" && c["status"] == "True")
        })
}

fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let tmp = std::env::temp_dir().join(format!(
            "agc-bench-dirwatch-{}",
            std::process::id()
        ));
        let dir = tmp.join("manifests");
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("base.yaml"), NS)?;
        let args = agc_sandbox::cli::UpArgs {
            data_dir: tmp.join("data"),
            api_addr: "127.0.0.1:0".parse()?,
            watch: vec![dir.clone()],
            port_offset: agc_sandbox::scenario::pick_port_offset(),
            token_file: None,
            alb_provisioning_delay: Duration::ZERO,
        };
        let (url_tx, url_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(agc_sandbox::app::run(
            args,
            async move {
                let _ = stop_rx.await;
            },
            move |s| {
                let _ = url_tx.send(s.api_url.clone());
            },
        ));
        let url = tokio::time::timeout(Duration::from_secs(30), url_rx).await??;
        let client = ApiClient::new(&url, None)?;
        let mut samples = Vec::with_capacity(rounds);
        for i in 0..rounds {
            let r = ObjRef {
                res: kinds::httproutes(),
                namespace: "bench".into(),
                name: format!("r{i}"),
            };
            // An editor-style save: write a temp file, rename it over the target.
            let t0 = Instant::now();
            let tmp_file = dir.join(format!(".r{i}.yaml.tmp"));
            std::fs::write(&tmp_file, route(i))?;
            std::fs::rename(&tmp_file, dir.join(format!("r{i}.yaml")))?;
            let deadline = t0 + Duration::from_secs(10);
            loop {
                if client.get(&r).await?.is_some_and(|o| accepted(&o)) {
                    break;
                }
                anyhow::ensure!(Instant::now() < deadline, "route r{i} not accepted within 10 s");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            samples.push(t0.elapsed());
            // Space the saves out so each is its own burst.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples.sort();
        let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "dirwatch file-save -> HTTPRoute Accepted over {rounds} saves: p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms (debounce {} ms)",
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.9).as_secs_f64() * 1e3,
            samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            agc_sandbox::dirwatch::DEBOUNCE.as_millis()
        );
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        let _ = std::fs::remove_dir_all(&tmp);
        anyhow::Ok(())
    })
}
