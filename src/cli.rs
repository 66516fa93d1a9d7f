//! Command-line interface (clap derive). `main.rs` parses, `app` runs.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Azure Application Gateway for Containers on one machine: an API server that kubectl drives,
/// simulated workloads, the AGC controller and its data plane.
#[derive(Debug, Parser)]
#[command(name = "agc-sandbox", version, about)]
pub struct Cli {
    /// Log filter (e.g. `info`, `debug`, `agc_sandbox=debug`); `RUST_LOG` works too.
    #[arg(long, global = true, env = "AGC_SANDBOX_LOG", default_value = "info")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the sandbox and serve until interrupted (Ctrl-C or SIGTERM).
    Up(UpArgs),
    // === scenario replay (issue 6) ===
    /// Scripted sessions: apply manifests, wait for status, send traffic, assert.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
}

/// `agc-sandbox scenario ...`
#[derive(Debug, Subcommand)]
pub enum ScenarioCommand {
    /// Run scenario files (format: scenarios/README.md). Each gets a fresh sandbox unless
    /// --server is given. Exit 0 when all pass, 1 when any fails, 2 on usage errors.
    Run(ScenarioRunArgs),
}

#[derive(Debug, clap::Args, Clone)]
pub struct ScenarioRunArgs {
    /// Scenario files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Use the running sandbox this kubeconfig points at (e.g. .agc-sandbox/kubeconfig: server,
    /// CA and token) instead of starting one per scenario.
    #[arg(long, value_name = "FILE", conflicts_with = "server")]
    pub kubeconfig: Option<PathBuf>,
    /// Use a running sandbox started with --insecure-http (e.g. http://127.0.0.1:6443).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token file of the running sandbox (with --server).
    #[arg(long, requires = "server")]
    pub token_file: Option<PathBuf>,
    /// The running sandbox's --port-offset (with --kubeconfig or --server); otherwise a fixed
    /// offset for the sandboxes started here (default: a free one).
    #[arg(long)]
    pub port_offset: Option<u16>,
    /// Write a JUnit XML report (one testcase per scenario).
    #[arg(long, value_name = "PATH")]
    pub junit: Option<PathBuf>,
}
// === end scenario replay ===

#[derive(Debug, clap::Args, Clone)]
pub struct UpArgs {
    /// Where objects are persisted (sled) and the kubeconfig is written.
    #[arg(long, default_value = ".agc-sandbox")]
    pub data_dir: PathBuf,
    /// Address of the Kubernetes API (HTTPS). Port 0 picks a free port (printed, and written to
    /// the kubeconfig).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_addr: SocketAddr,
    /// Folder of manifests to apply and follow (repeatable).
    #[arg(long = "watch", value_name = "DIR")]
    pub watch: Vec<PathBuf>,
    /// Follow symlinks in watched folders that point outside them (by default they are
    /// skipped with a warning; loops are never followed).
    #[arg(long)]
    pub watch_follow_symlinks: bool,
    /// Added to every Gateway listener port, so port 80 is served on 80+N without privileges.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// File holding the bearer token every API request must present (default: one generated
    /// on first start, kept in DATA_DIR/pki/token and written into the kubeconfig).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Serve the API over plain HTTP with NO credential. Any local process, and any web page
    /// whose requests reach loopback, can then create objects, including pods that run commands
    /// as you (agc-sandbox.dev/command). Loopback only; for old tools that cannot do TLS.
    #[arg(long, conflicts_with = "token_file")]
    pub insecure_http: bool,
    /// How long a new ApplicationLoadBalancer reports `Deployment: InProgress` before `Ready`
    /// (real AGC takes 5–6 minutes), e.g. `30s`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub alb_provisioning_delay: std::time::Duration,
    /// Run every pod on 127.0.0.1 with ports allocated per pod (recorded in the pod annotation
    /// `agc-sandbox.dev/ports`), for hosts where extra loopback addresses do not work.
    #[arg(long)]
    pub shared_pod_ip: bool,
}

impl Default for UpArgs {
    /// What `agc-sandbox up` with no flags means.
    fn default() -> UpArgs {
        UpArgs {
            data_dir: PathBuf::from(".agc-sandbox"),
            api_addr: SocketAddr::from(([127, 0, 0, 1], 6443)),
            watch: Vec::new(),
            watch_follow_symlinks: false,
            port_offset: 0,
            token_file: None,
            insecure_http: false,
            alb_provisioning_delay: std::time::Duration::ZERO,
            shared_pod_ip: false,
        }
    }
}
