//! Running scenarios: one sandbox each (or a running one), steps in order, a summary.

use super::dataplane::{self, traffic, websocket};
use super::junit;
use super::model::Action;
use super::objects::{annotate, apply, check, delete, one_ref, patch, tls_secret};
use super::parse::load;
use super::shared::{Ctx, Options, Out, ScenarioError, StepResult, Summary};
use crate::client::ApiClient;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A free `--port-offset`: the OS hands out a free port P, offset = P - 80, checked so that
/// P - 80 + 443 is free as well. Two runs in parallel get different ports, so different offsets.
pub fn pick_port_offset() -> u16 {
    for _ in 0..64 {
        let Ok(l) = std::net::TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let p = addr.port();
        if p < 2000 || u32::from(p) + 363 > 65_000 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", p + 363)).is_ok() {
            return p - 80;
        }
    }
    18_000
}

/// A sandbox a scenario runs against.
pub(crate) struct Sandbox {
    pub(crate) client: ApiClient,
    pub(crate) port_offset: u16,
    pub(crate) url: String,
    /// In-process: the stop signal, the task, the temp dir.
    pub(crate) owned: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
        PathBuf,
    )>,
}

impl Sandbox {
    pub(crate) async fn start(opts: &Options) -> Result<Sandbox, ScenarioError> {
        if let Some(access) = &opts.server {
            let client =
                ApiClient::new(access).map_err(|e| ScenarioError::Sandbox(e.to_string()))?;
            return Ok(Sandbox {
                url: client.url(),
                client,
                port_offset: opts.port_offset.unwrap_or(0),
                owned: None,
            });
        }
        let dir = std::env::temp_dir().join(format!(
            "agc-sandbox-scenario-{}-{}",
            std::process::id(),
            crate::store::random_suffix(8)
        ));
        let port_offset = opts.port_offset.unwrap_or_else(pick_port_offset);
        let args = crate::cli::UpArgs {
            data_dir: dir.clone(),
            api_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            port_offset,
            ..Default::default()
        };
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(crate::app::run(
            args,
            async move {
                let _ = stop_rx.await;
            },
            move |s| {
                let _ = addr_tx.send(s.access.clone());
            },
        ));
        let access = match tokio::time::timeout(Duration::from_secs(30), addr_rx).await {
            Ok(Ok(access)) => access,
            _ => {
                let why = match tokio::time::timeout(Duration::from_secs(1), task).await {
                    Ok(Ok(Err(e))) => format!("{e:#}"),
                    _ => "it did not come up within 30 s".into(),
                };
                let _ = std::fs::remove_dir_all(&dir);
                return Err(ScenarioError::Sandbox(why));
            }
        };
        let client = ApiClient::new(&access).map_err(|e| ScenarioError::Sandbox(e.to_string()))?;
        let url = access.server.clone();
        Ok(Sandbox {
            client,
            port_offset,
            url,
            owned: Some((stop_tx, task, dir)),
        })
    }

    pub(crate) async fn stop(self) {
        if let Some((stop, task, dir)) = self.owned {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Runs every scenario of `opts.files`, printing progress to `out`.
pub async fn run(opts: &Options, out: Out) -> Result<Summary, ScenarioError> {
    let scenarios = opts
        .files
        .iter()
        .map(|f| load(f))
        .collect::<Result<Vec<_>, _>>()?;
    let mut cases = Vec::new();
    for sc in &scenarios {
        let started = Instant::now();
        let sandbox = Sandbox::start(opts).await?;
        let mut log = String::new();
        let mut say = |line: String| {
            out(&line);
            log.push_str(&line);
            log.push('\n');
        };
        say(format!(
            "▶ {} — {} (API {}, port offset {})",
            sc.file, sc.name, sandbox.url, sandbox.port_offset
        ));
        let mut ctx = Ctx {
            client: &sandbox.client,
            port_offset: sandbox.port_offset,
            dir: sc.dir.clone(),
            namespace: sc.namespace.clone(),
            trusted: Vec::new(),
            sockets: HashMap::new(),
        };
        let mut failure = None;
        for (i, step) in sc.steps.iter().enumerate() {
            let t0 = Instant::now();
            let result = run_step(&mut ctx, &step.action).await;
            let ms = t0.elapsed().as_millis();
            match result {
                Ok(()) => say(format!("  ✓ {} ({ms} ms)", step.label)),
                Err(msg) => {
                    say(format!("  ✗ {} ({ms} ms)", step.label));
                    let full = format!("{} step {} ({}): {msg}", sc.file, i + 1, step.label);
                    for line in full.lines() {
                        say(format!("    {line}"));
                    }
                    failure = Some((full.clone(), full));
                    break;
                }
            }
        }
        for (_, mut ws) in ctx.sockets.drain() {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        }
        sandbox.stop().await;
        let secs = started.elapsed().as_secs_f64();
        say(format!(
            "{} {} ({:.2} s)",
            if failure.is_some() { "FAIL" } else { "PASS" },
            sc.file,
            secs
        ));
        cases.push(junit::Case {
            name: sc.name.clone(),
            file: sc.file.clone(),
            seconds: secs,
            failure,
            output: log,
        });
    }
    let summary = Summary { cases };
    out(&format!(
        "{} passed, {} failed",
        summary.passed(),
        summary.failed()
    ));
    if let Some(p) = &opts.junit {
        std::fs::write(p, junit::render(&summary.cases)).map_err(|e| ScenarioError::Write {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    Ok(summary)
}

pub(crate) async fn run_step(ctx: &mut Ctx<'_>, action: &Action) -> StepResult {
    match action {
        Action::Apply(a) => apply(ctx, a).await,
        Action::Delete(d) => delete(ctx, d).await,
        Action::Patch(p) => patch(ctx, p).await,
        Action::Scale(s) => {
            let r = one_ref(ctx, &s.obj)?;
            ctx.client
                .patch(
                    &r,
                    "scale",
                    "application/merge-patch+json",
                    &json!({"spec": {"replicas": s.replicas}}),
                )
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        Action::Annotate(a) => annotate(ctx, a).await,
        Action::Wait(c) => check(ctx, c, true).await,
        Action::Assert(c) => check(ctx, c, false).await,
        Action::Http(h) => dataplane::http(ctx, h).await,
        Action::Traffic(t) => traffic(ctx, t).await,
        Action::WebSocket(w) => websocket(ctx, w).await,
        Action::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(())
        }
        Action::TlsSecret(t) => tls_secret(ctx, t).await,
    }
}
