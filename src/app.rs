//! Wires the sandbox together and owns shutdown: store → API server (and, as they land, the
//! workload simulator, controller, proxy, health checker and folder watcher).

use crate::apiserver::ApiServer;
use crate::cli::UpArgs;
use crate::controller::{self, ControllerOptions};
use crate::routing::RoutingTable;
use crate::store::Store;
use anyhow::{bail, Context};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;

/// What `up` printed and wrote, for callers (tests, scenarios) that start the sandbox in-process.
#[derive(Debug, Clone)]
pub struct Started {
    pub api_url: String,
    pub api_addr: SocketAddr,
    pub kubeconfig: PathBuf,
}

/// Reads the bearer token, refusing to expose the API beyond loopback without one.
fn load_token(args: &UpArgs) -> anyhow::Result<Option<String>> {
    let token = match &args.token_file {
        Some(path) => {
            let t = std::fs::read_to_string(path)
                .with_context(|| format!("failed to read the token file {}", path.display()))?;
            let t = t.trim().to_string();
            if t.is_empty() {
                bail!(
                    "the token file {} is empty; put a secret token in it",
                    path.display()
                );
            }
            Some(t)
        }
        None => None,
    };
    if !args.api_addr.ip().is_loopback() && token.is_none() {
        bail!(
            "--api-addr {} is reachable from other machines; pass --token-file FILE so requests must carry that bearer token, or bind 127.0.0.1",
            args.api_addr
        );
    }
    Ok(token)
}

/// Writes `DIR/kubeconfig` with a context named `agc-sandbox`.
fn write_kubeconfig(dir: &Path, url: &str, token: Option<&str>) -> anyhow::Result<PathBuf> {
    let user = match token {
        Some(t) => format!("  user:\n    token: {t}\n"),
        None => "  user: {}\n".to_string(),
    };
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: agc-sandbox\n  cluster:\n    server: {url}\ncontexts:\n- name: agc-sandbox\n  context:\n    cluster: agc-sandbox\n    user: agc-sandbox\n    namespace: default\ncurrent-context: agc-sandbox\nusers:\n- name: agc-sandbox\n{user}"
    );
    let path = dir.join("kubeconfig");
    let tmp = dir.join("kubeconfig.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("failed to write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("failed to write {}", path.display()))?;
    Ok(std::path::absolute(&path).unwrap_or(path))
}

/// Starts the sandbox and serves until `shutdown` resolves. `on_start` is told the addresses
/// once everything listens.
pub async fn run(
    args: UpArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    let token = load_token(&args)?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "failed to create the data directory {}",
            args.data_dir.display()
        )
    })?;
    let store = Store::open(&args.data_dir).map_err(|e| match e {
        crate::store::StoreError::Persist(sled::Error::Io(io)) if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("lock") => {
            anyhow::anyhow!(
                "the data directory {} is in use by another agc-sandbox; stop it or pass a different --data-dir",
                args.data_dir.display()
            )
        }
        other => anyhow::Error::new(other).context(format!("failed to open the store in {}", args.data_dir.display())),
    })?;
    let listener = TcpListener::bind(args.api_addr)
        .await
        .with_context(|| format!("failed to bind the API address {}; is another sandbox running? try --api-addr 127.0.0.1:0", args.api_addr))?;
    let api_addr = listener.local_addr()?;
    let api_url = format!("http://{api_addr}");
    let kubeconfig = write_kubeconfig(&args.data_dir, &api_url, token.as_deref())?;
    if args.shared_pod_ip {
        println!("pods share 127.0.0.1 (--shared-pod-ip): each pod's ports are allocated and listed in its agc-sandbox.dev/ports annotation");
    } else {
        crate::sim::check_loopback_range().map_err(anyhow::Error::msg)?;
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let stop_tx_err = stop_tx.clone();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    // State flows one way: store → controller → routing table → proxy and health checker.
    // The only way back is the proxy's listener bind results, which the controller reports as
    // listener status.
    let (table_tx, table_rx) = tokio::sync::watch::channel(Arc::new(RoutingTable::default()));
    let proxy = crate::proxy::start(
        table_rx,
        crate::proxy::ProxyOptions::new(args.port_offset),
        stop_rx.clone(),
    );
    let opts = ControllerOptions {
        alb_provisioning_delay: args.alb_provisioning_delay,
        ..ControllerOptions::default()
    };
    let controller_task = tokio::spawn(controller::run(
        store.clone(),
        table_tx,
        proxy.bindings.clone(),
        opts,
        stopped(stop_rx.clone()),
    ));
    // Workloads: Deployments → Pods serving on their own loopback addresses.
    let (pod_logs, sim_task) =
        crate::sim::spawn(store.clone(), args.shared_pod_ip, stopped(stop_rx.clone()));
    let api = Arc::new(
        ApiServer::new(store.clone(), token.clone())
            .with_logs(pod_logs)
            .with_extension(proxy.extension.clone()),
    );
    let api_task = tokio::spawn(api.serve(listener, stopped(stop_rx.clone())));
    // The drop-in folder applies through the HTTP API, so it gets kubectl's admission; its
    // first pass finishes before `on_start`, so "up" means the folder's objects exist.
    let watch_task = if args.watch.is_empty() {
        None
    } else {
        let client = crate::scenario::client::ApiClient::new(&api_url, token.clone())?;
        let report: crate::dirwatch::Reporter = Arc::new(|r| match r {
            crate::dirwatch::Report::Changed(line) => println!("{line}"),
            crate::dirwatch::Report::Rejected(line) => eprintln!("{line}"),
        });
        match crate::dirwatch::DirWatch::start(client, &args.watch, report).await {
            Ok(dw) => Some(tokio::spawn(dw.run(stopped(stop_rx.clone())))),
            Err(err) => {
                let _ = stop_tx_err.send(true);
                let _ = api_task.await;
                let _ = controller_task.await;
                let _ = sim_task.await;
                let _ = proxy.task.await;
                return Err(err.into());
            }
        }
    };
    on_start(&Started {
        api_url,
        api_addr,
        kubeconfig,
    });
    let _ = api_task.await;
    let _ = controller_task.await;
    let _ = sim_task.await;
    let _ = proxy.task.await;
    if let Some(t) = watch_task {
        let _ = t.await;
    }
    store
        .persisted()
        .await
        .context("failed to flush the store on shutdown")?;
    tracing::info!("stopped");
    Ok(())
}
