//! What every part of the scenario runner shares: its errors, options and outcome, the
//! per-scenario context a step runs in, and the defaults. A leaf, so the step modules
//! (`objects`, `dataplane`) and the runner that calls them do not import each other.

use super::junit;
use super::net;
use crate::client::{ApiClient, ClientError};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Field manager of scenario applies.
pub const FIELD_MANAGER: &str = "agc-sandbox-scenario";
/// Default `timeout` of `wait` steps.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `timeout` of `assert` steps (status converges within milliseconds).
pub const DEFAULT_ASSERT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `retry` deadline of `http`, `traffic` and `websocket` steps.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(10);
/// Pause between attempts.
pub(crate) const POLL: Duration = Duration::from_millis(20);
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

/// What a step returns: its error text when it failed.
pub(crate) type StepResult = Result<(), String>;

/// Per-scenario state.
pub(crate) struct Ctx<'a> {
    pub(crate) client: &'a ApiClient,
    pub(crate) port_offset: u16,
    pub(crate) dir: PathBuf,
    pub(crate) namespace: String,
    pub(crate) trusted: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub(crate) sockets: HashMap<String, net::Ws>,
}
