//! Command-line interface (clap derive). `main.rs` parses, [`crate::app`] runs.

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
    /// Use a running sandbox (e.g. http://127.0.0.1:6443) instead of starting one per scenario.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// Bearer token file of the running sandbox (with --server).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// The running sandbox's --port-offset (with --server); without --server, a fixed offset for
    /// the sandboxes started here (default: a free one).
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
    /// Address of the Kubernetes API. Port 0 picks a free port (printed, and written to the
    /// kubeconfig). Any non-loopback address requires --token-file.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub api_addr: SocketAddr,
    /// Folder of manifests to apply and follow (repeatable).
    #[arg(long = "watch", value_name = "DIR")]
    pub watch: Vec<PathBuf>,
    /// Added to every Gateway listener port, so port 80 is served on 80+N without privileges.
    #[arg(long, default_value_t = 0)]
    pub port_offset: u16,
    /// File holding a bearer token that every API request must present.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// How long a new ApplicationLoadBalancer reports `Deployment: InProgress` before `Ready`
    /// (real AGC takes 5–6 minutes), e.g. `30s`.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub alb_provisioning_delay: std::time::Duration,
    /// Run every pod on 127.0.0.1 with ports allocated per pod (recorded in the pod annotation
    /// `agc-sandbox.dev/ports`), for hosts where extra loopback addresses do not work.
    #[arg(long)]
    pub shared_pod_ip: bool,
}
