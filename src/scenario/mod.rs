//! Scenario replay (`agc-sandbox scenario run FILE...`): scripted sessions against a sandbox.
//!
//! A scenario is a YAML file (format in `scenarios/README.md`) with a list of steps: `apply`,
//! `patch`, `delete`, `scale`, `annotate`, `wait`, `assert`, `http`, `traffic`, `websocket`,
//! `sleep` and `tls-secret`. Like kwok's recordings, steps are an ordered stream of API writes,
//! with expectations in between. Each scenario gets a fresh in-process sandbox (temp data dir,
//! API on `127.0.0.1:0`, a free `--port-offset`), or runs against a running one with `--server`.
//!
//! Object steps talk to the API over HTTP ([`client`]); `http`, `traffic` and `websocket` steps
//! go to a Gateway's listener socket (`status.addresses[0].value`, listener port + port offset)
//! with the Host header under test, retrying until a deadline while the data plane catches up.
//! A scenario stops at its first failed step with an expected-vs-got message naming the file and
//! step.
//!
//! Layout: [`model`] (what a file holds) ← [`parse`] (file → model) ← [`runner`] (sandbox, step
//! loop) → [`objects`] and [`dataplane`] (the steps). Shared helpers: [`manifest`], [`path`]
//! (JSONPath), [`net`] (gateway sockets), [`tls`], [`junit`].

pub use crate::client;
mod dataplane;
pub mod junit;
pub mod manifest;
mod model;
pub mod net;
mod objects;
mod parse;
pub mod path;
mod runner;
pub mod tls;

use dataplane::*;
pub use model::Scenario;
use model::*;
use objects::*;
pub use parse::load;
use parse::*;
use runner::*;
pub use runner::{pick_port_offset, run};

use crate::meta;
use client::{resolve_kind, ApiClient, ClientError, ObjRef};
use manifest::kind_rank;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Field manager of scenario applies.
pub const FIELD_MANAGER: &str = "agc-sandbox-scenario";
/// Default `timeout` of `wait` steps.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `timeout` of `assert` steps (status converges within milliseconds).
pub const DEFAULT_ASSERT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `retry` deadline of `http`, `traffic` and `websocket` steps.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(10);
/// Pause between attempts.
const POLL: Duration = Duration::from_millis(20);
/// The annotation the workload simulator reads to inject faults.
pub const FAULT_ANNOTATION: &str = "agc-sandbox.dev/fault";

/// Errors that stop `scenario run` before any scenario runs (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("failed to start a sandbox: {0}")]
    Sandbox(String),
    #[error("failed to write {path}: {reason}")]
    Write { path: String, reason: String },
}

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub files: Vec<PathBuf>,
    /// How to reach a running sandbox; `None` starts one per scenario.
    pub server: Option<crate::client::Access>,
    /// The running sandbox's `--port-offset` (with `server`), or a fixed offset for the
    /// in-process sandboxes (default: a free one).
    pub port_offset: Option<u16>,
    pub junit: Option<PathBuf>,
}

/// Where progress lines go.
pub type Out = Arc<dyn Fn(&str) + Send + Sync>;

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub cases: Vec<junit::Case>,
}

impl Summary {
    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| c.failure.is_some()).count()
    }
    pub fn passed(&self) -> usize {
        self.cases.len() - self.failed()
    }
}

/// `ClientError` → step error text.
impl From<ClientError> for String {
    fn from(e: ClientError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests;
