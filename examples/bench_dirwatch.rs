//! Benchmark of the drop-in folder: from a file saved in a watched folder to the new HTTPRoute
//! `Accepted` in its status, and to the route serving traffic through the Gateway (an echo
//! backend answers 200 for the new hostname instead of the gateway's 404). Target: p50 under
//! 100 ms (the watcher's debounce is 50 ms).
//!
//! `cargo run --release --example bench_dirwatch [-- ROUNDS]` (default 30).

use agc_sandbox::client::{ApiClient, ObjRef};
use agc_sandbox::resources::kinds;
use agc_sandbox::sim::apps::{self, AppContext, AppKind, Fault};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::time::{Duration, Instant};

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: bench\nspec:\n  gatewayClassName: azure-alb-external\n  listeners:\n  - name: http\n    port: 80\n    protocol: HTTP\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n  namespace: bench\nspec:\n  ports:\n  - port: 8080\n";

/// The backend: a selector-less Service whose EndpointSlice points at an in-process echo server.
fn backend(port: u16) -> String {
    format!("---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: svc-1\n  namespace: bench\n  labels:\n    kubernetes.io/service-name: svc\naddressType: IPv4\nendpoints:\n- addresses: [\"127.0.0.1\"]\n  conditions: {{ready: true}}\nports:\n- port: {port}\n  protocol: TCP\n")
}

/// One GET through the gateway with `host`; the status code (0 when the connection failed).
async fn status_via(gw: &str, host: &str) -> u16 {
    let Ok(stream) = tokio::net::TcpStream::connect(gw).await else {
        return 0;
    };
    let Ok((mut send, conn)) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await
    else {
        return 0;
    };
    tokio::spawn(conn);
    let Ok(req) = http::Request::get("/")
        .header("host", host)
        .body(Empty::new())
    else {
        return 0;
    };
    match send.send_request(req).await {
        Ok(r) => {
            let code = r.status().as_u16();
            let _ = r.into_body().collect().await;
            code
        }
        Err(_) => 0,
    }
}

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
        let echo = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let echo_port = echo.local_addr()?.port();
        let (_fault, fault_rx) = tokio::sync::watch::channel(Fault::None);
        let ctx = std::sync::Arc::new(AppContext { pod: "echo".into(), namespace: "bench".into(), service: String::new(), ingress: String::new(), log: None });
        tokio::spawn(apps::serve(echo, AppKind::EchoBasic, ctx, fault_rx, std::future::pending()));
        std::fs::write(dir.join("base.yaml"), format!("{NS}{}", backend(echo_port)))?;
        let port_offset = agc_sandbox::scenario::pick_port_offset();
        let args = agc_sandbox::cli::UpArgs {
            data_dir: tmp.join("data"),
            api_addr: "127.0.0.1:0".parse()?,
            watch: vec![dir.clone()],
            port_offset,
            ..Default::default()
        };
        let handle = agc_sandbox::app::spawn(args).await?;
        let client = ApiClient::new(&handle.started.access)?;
        let gw_ref = ObjRef { res: kinds::gateways(), namespace: "bench".into(), name: "gw".into() };
        let gw = loop {
            let ip = client.get(&gw_ref).await?.and_then(|g| g.pointer("/status/addresses/0/value").and_then(Value::as_str).map(str::to_string));
            if let Some(ip) = ip {
                break format!("{ip}:{}", 80 + port_offset);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut samples = Vec::with_capacity(rounds);
        let mut serving = Vec::with_capacity(rounds);
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
            let host = format!("r{i}.example.com");
            while status_via(&gw, &host).await != 200 {
                anyhow::ensure!(Instant::now() < deadline, "route r{i} not serving within 10 s");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            serving.push(t0.elapsed());
            // Space the saves out so each is its own burst.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (what, mut v) in [("HTTPRoute Accepted", samples), ("route serving traffic", serving)] {
            v.sort();
            let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3;
            println!(
                "| file save → {what} ({rounds} saves, debounce {} ms) | {:.1} ms | {:.1} ms | {:.1} ms | < 100 ms |",
                agc_sandbox::dirwatch::DEBOUNCE.as_millis(),
                pct(0.5),
                pct(0.9),
                pct(1.0)
            );
        }
        handle.shutdown().await?;
        let _ = std::fs::remove_dir_all(&tmp);
        anyhow::Ok(())
    })
}
