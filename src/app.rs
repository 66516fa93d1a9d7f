//! Wires the sandbox together and owns shutdown: store → API server (and, as they land, the
//! workload simulator, controller, proxy, health checker and folder watcher).

use crate::apiserver::ApiServer;
use crate::cli::UpArgs;
use crate::client::Access;
use crate::controller::{self, ControllerOptions};
use crate::pki::ApiPki;
use crate::routing::RoutingTable;
use crate::store::Store;
use anyhow::{bail, Context};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What `up` printed and wrote, for callers (tests, scenarios) that start the sandbox in-process.
#[derive(Debug, Clone)]
pub struct Started {
    pub api_url: String,
    pub api_addr: SocketAddr,
    pub kubeconfig: PathBuf,
    /// How to reach the API (URL, CA, token): what the kubeconfig says.
    pub access: Access,
}

/// Reads `--token-file`, if given.
fn load_token(args: &UpArgs) -> anyhow::Result<Option<String>> {
    let Some(path) = &args.token_file else {
        return Ok(None);
    };
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read the token file {}", path.display()))?;
    let t = t.trim().to_string();
    if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "the token file {} must hold one token: a non-empty line without spaces",
            path.display()
        );
    }
    Ok(Some(t))
}

/// The API port's limits: a quarter of the open-files limit for its connections (at least 64,
/// at most 4096), so the gateway's listeners, the pods and the health checker keep the rest.
fn api_limits() -> crate::apiserver::Limits {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    let nofile = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as usize
    } else {
        1024
    };
    crate::apiserver::Limits {
        max_connections: (nofile / 4).clamp(64, 4096),
        ..Default::default()
    }
}

/// The API's TLS configuration (HTTP/1.1 only: the API server speaks no h2).
fn tls_config(pki: &ApiPki) -> anyhow::Result<Arc<tokio_rustls::rustls::ServerConfig>> {
    use tokio_rustls::rustls;
    let certs = rustls_pemfile::certs(&mut pki.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("the API serving certificate is not valid PEM")?;
    let key = rustls_pemfile::private_key(&mut pki.key_pem.as_bytes())
        .context("the API serving key is not valid PEM")?
        .context("the API serving key file holds no key")?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS setup failed")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("the API serving certificate does not match its key")?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Starts the sandbox and serves until `shutdown` resolves. `on_start` is told the addresses
/// once everything listens.
pub async fn run(
    args: UpArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(&Started),
) -> anyhow::Result<()> {
    let token = load_token(&args)?;
    if args.insecure_http && !args.api_addr.ip().is_loopback() {
        bail!(
            "--insecure-http serves the API with no credential, so it only binds loopback; drop --insecure-http or use --api-addr 127.0.0.1:PORT"
        );
    }
    // The data directory holds the store (Secrets), the CA key and the token: owner only.
    crate::pki::create_private_dir(&args.data_dir).with_context(|| {
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
    crate::apiserver::start_crds(&store);
    crate::pki::restrict_tree(&args.data_dir.join("store")).with_context(|| {
        format!(
            "failed to make the store in {} private",
            args.data_dir.display()
        )
    })?;
    let api_addr = listener.local_addr()?;
    let (access, tls) = if args.insecure_http {
        tracing::warn!(
            "--insecure-http: the API takes requests over plain HTTP with no credential"
        );
        (Access::plain(&format!("http://{api_addr}")), None)
    } else {
        let pki = ApiPki::load_or_create(&args.data_dir, api_addr.ip(), token)?;
        let tls = tls_config(&pki)?;
        let access = Access {
            server: format!("https://{api_addr}"),
            ca_pem: Some(pki.ca_pem.clone()),
            token: Some(pki.token.clone()),
        };
        (access, Some(tls))
    };
    let api_url = access.server.clone();
    let token = access.token.clone();
    let kubeconfig = args.data_dir.join("kubeconfig");
    crate::client::kubeconfig::write(&kubeconfig, &access)
        .with_context(|| format!("failed to write {}", kubeconfig.display()))?;
    let kubeconfig = std::path::absolute(&kubeconfig).unwrap_or(kubeconfig);
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
            .with_limits(api_limits())
            .with_logs(pod_logs)
            .with_extension(proxy.extension.clone()),
    );
    let api_task = tokio::spawn(api.serve(listener, tls, stopped(stop_rx.clone())));
    // The drop-in folder applies through the HTTP API, so it gets kubectl's admission; its
    // first pass finishes before `on_start`, so "up" means the folder's objects exist.
    let watch_task = if args.watch.is_empty() {
        None
    } else {
        let client = crate::client::ApiClient::new(&access)?;
        let report: crate::dirwatch::Reporter = Arc::new(|r| match r {
            crate::dirwatch::Report::Changed(line) => println!("{line}"),
            crate::dirwatch::Report::Rejected(line) | crate::dirwatch::Report::Warning(line) => {
                eprintln!("{line}")
            }
        });
        match crate::dirwatch::DirWatch::start_with(
            client,
            &args.watch,
            report,
            args.watch_follow_symlinks,
        )
        .await
        {
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
        access,
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

/// A sandbox running in this process (tests, benchmarks, `scenario run`), started by [`spawn`].
pub struct Handle {
    /// What `up` would have printed.
    pub started: Started,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Handle {
    /// Stops the sandbox and waits (at most 30 s) until everything is flushed.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match tokio::time::timeout(std::time::Duration::from_secs(30), &mut self.task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(anyhow::anyhow!("the sandbox task failed: {join}")),
            Err(_) => bail!("the sandbox did not stop within 30 s"),
        }
    }
}

/// Starts the sandbox on this runtime, returning once it serves (or with the reason it could
/// not start). The one in-process launcher: tests, examples and `scenario run` use it.
pub async fn spawn(args: UpArgs) -> anyhow::Result<Handle> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let mut task = tokio::spawn(run(
        args,
        async move {
            let _ = stopped.await;
        },
        move |s| {
            let _ = started_tx.send(s.clone());
        },
    ));
    tokio::select! {
        started = started_rx => match started {
            Ok(started) => Ok(Handle { started, stop: Some(stop), task }),
            Err(_) => match (&mut task).await {
                Ok(Err(err)) => Err(err),
                Ok(Ok(())) => bail!("the sandbox stopped before it served"),
                Err(join) => Err(anyhow::anyhow!("the sandbox task failed: {join}")),
            },
        },
        _ = tokio::time::sleep(std::time::Duration::from_secs(60)) => {
            task.abort();
            bail!("the sandbox did not come up within 60 s")
        }
    }
}
