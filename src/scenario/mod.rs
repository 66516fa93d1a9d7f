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

pub use crate::client;
pub mod junit;
pub mod manifest;
pub mod net;
pub mod path;
pub mod tls;

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

// === the scenario model ===

/// A parsed scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file as given on the command line.
    pub file: String,
    dir: PathBuf,
    pub name: String,
    namespace: String,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
struct Step {
    label: String,
    action: Action,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn list(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Which object(s) a step concerns.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjSpec {
    /// `kind/name`, e.g. `gateway/gateway-01` or `httproute.gateway.networking.k8s.io/r`.
    #[serde(rename = "ref")]
    reference: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
    /// A label selector (with `kind`, default Pod) instead of a name.
    selector: Option<String>,
}
const OBJ_KEYS: &[&str] = &["ref", "kind", "name", "namespace", "selector"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplySpec {
    files: Option<OneOrMany<String>>,
    yaml: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteSpec {
    #[serde(flatten)]
    obj: ObjSpec,
    files: Option<OneOrMany<String>>,
    #[serde(default)]
    ignore_not_found: bool,
    #[serde(default)]
    wait: bool,
    timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchSpec {
    #[serde(flatten)]
    obj: ObjSpec,
    #[serde(rename = "type")]
    kind: Option<String>,
    patch: Value,
    subresource: Option<String>,
    /// With `selector`: patch only the first N objects (by name).
    count: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScaleSpec {
    #[serde(flatten)]
    obj: ObjSpec,
    replicas: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnnotateSpec {
    #[serde(flatten)]
    obj: ObjSpec,
    #[serde(default)]
    annotations: Map<String, Value>,
    fault: Option<String>,
    count: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckSpec {
    #[serde(flatten)]
    obj: ObjSpec,
    condition: Option<String>,
    status: Option<Value>,
    reason: Option<String>,
    message: Option<String>,
    object: Option<Value>,
    path: Option<String>,
    equals: Option<Value>,
    matches: Option<String>,
    /// With `path`: the field is absent (or empty).
    #[serde(default)]
    absent: bool,
    #[serde(default)]
    deleted: bool,
    count: Option<usize>,
    timeout: Option<String>,
}
const CHECK_KEYS: &[&str] = &[
    "condition",
    "status",
    "reason",
    "message",
    "object",
    "path",
    "equals",
    "matches",
    "absent",
    "deleted",
    "count",
    "timeout",
];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GatewaySpec {
    gateway: String,
    namespace: Option<String>,
    listener: Option<String>,
    port: Option<u16>,
    https: Option<bool>,
    #[serde(default)]
    insecure: bool,
    host: Option<String>,
    #[serde(default = "root_path")]
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    retry: Option<String>,
}
const GATEWAY_KEYS: &[&str] = &[
    "gateway",
    "namespace",
    "listener",
    "port",
    "https",
    "insecure",
    "host",
    "path",
    "headers",
    "retry",
];

fn root_path() -> String {
    "/".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct HttpExpect {
    status: Option<u16>,
    /// Header values (exact); `null` expects the header absent.
    #[serde(default)]
    headers: BTreeMap<String, Option<String>>,
    body: Option<String>,
    body_contains: Option<OneOrMany<String>>,
    json: Option<Value>,
    /// Which pod answered (echo JSON `pod`), `*` wildcards allowed.
    pod: Option<String>,
    /// Which namespace answered (echo JSON `namespace`).
    namespace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpSpec {
    #[serde(flatten)]
    gw: GatewaySpec,
    #[serde(default = "get")]
    method: String,
    body: Option<String>,
    #[serde(default)]
    expect: HttpExpect,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrafficSpec {
    #[serde(flatten)]
    gw: GatewaySpec,
    #[serde(default = "get")]
    method: String,
    #[serde(default = "hundred")]
    requests: usize,
    /// Expected share (percent) per backend (or pod, with `by: pod`).
    expect: BTreeMap<String, f64>,
    #[serde(default = "ten")]
    tolerance: f64,
    by: Option<String>,
    status: Option<u16>,
    /// Pods matching this label selector (in the Gateway's namespace) must answer none.
    exclude_selector: Option<String>,
    /// Every pod matching this label selector must answer at least one request.
    require_selector: Option<String>,
}

fn hundred() -> usize {
    100
}
fn ten() -> f64 {
    10.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WsSpec {
    #[serde(flatten)]
    gw: GatewaySpec,
    keep: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    send: Option<OneOrMany<String>>,
    expect: Option<OneOrMany<String>>,
    expect_status: Option<u16>,
    #[serde(default)]
    close: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TlsSecretSpec {
    name: String,
    namespace: Option<String>,
    hosts: Vec<String>,
}

#[derive(Debug, Clone)]
enum Action {
    Apply(ApplySpec),
    Delete(DeleteSpec),
    Patch(PatchSpec),
    Scale(ScaleSpec),
    Annotate(AnnotateSpec),
    Wait(CheckSpec),
    Assert(CheckSpec),
    Http(HttpSpec),
    Traffic(TrafficSpec),
    WebSocket(WsSpec),
    Sleep(Duration),
    TlsSecret(TlsSecretSpec),
}

const ACTIONS: &[&str] = &[
    "apply",
    "patch",
    "delete",
    "scale",
    "annotate",
    "wait",
    "assert",
    "http",
    "traffic",
    "websocket",
    "sleep",
    "tls-secret",
];

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

fn typed<T: DeserializeOwned>(v: &Value, allowed: &[&[&str]]) -> Result<T, String> {
    if let Some(m) = v.as_object() {
        for k in m.keys() {
            if !allowed.iter().any(|a| a.contains(&k.as_str())) {
                let mut all: Vec<&str> = allowed.iter().flat_map(|a| a.iter().copied()).collect();
                all.sort();
                return Err(format!("unknown field `{k}` (known: {})", all.join(", ")));
            }
        }
    }
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}

impl ObjSpec {
    fn show(&self) -> String {
        match (&self.reference, &self.kind, &self.name, &self.selector) {
            (Some(r), _, _, _) => r.clone(),
            (None, k, Some(n), _) => format!("{}/{n}", k.as_deref().unwrap_or("?").to_lowercase()),
            (None, k, None, Some(s)) => {
                format!("{} -l {s}", k.as_deref().unwrap_or("pod").to_lowercase())
            }
            _ => "?".into(),
        }
    }

    /// Checks the spec names something and its kind exists.
    fn check(&self) -> Result<(), String> {
        if self.reference.is_none() && self.name.is_none() && self.selector.is_none() {
            return Err(
                "name the object with `ref: kind/name`, `kind` + `name`, or `selector`".into(),
            );
        }
        let kind = match &self.reference {
            Some(r) => r
                .split_once('/')
                .map(|(k, _)| k)
                .ok_or_else(|| format!("`ref: {r}` should read kind/name"))?,
            None => self.kind.as_deref().unwrap_or("pod"),
        };
        resolve_kind(kind).ok_or_else(|| format!("unknown kind {kind:?}"))?;
        Ok(())
    }
}

fn parse_step(i: usize, v: &Value) -> Result<Step, String> {
    let m = v
        .as_object()
        .ok_or_else(|| format!("step {i} is not a map (write `- apply: file.yaml`)"))?;
    let keys: Vec<&String> = m.keys().filter(|k| *k != "name").collect();
    let [key] = keys.as_slice() else {
        return Err(format!(
            "step {i} must have exactly one of: {} (found: {})",
            ACTIONS.join(", "),
            keys.iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    let body = &m[key.as_str()];
    let at = |e: String| format!("step {i} ({key}): {e}");
    let action = match key.as_str() {
        "apply" => Action::Apply(match body {
            Value::String(_) | Value::Array(_) => ApplySpec {
                files: Some(serde_json::from_value(body.clone()).map_err(|e| at(e.to_string()))?),
                ..Default::default()
            },
            _ => typed(body, &[&["files", "yaml", "namespace"]]).map_err(at)?,
        }),
        "delete" => {
            let d: DeleteSpec = typed(
                body,
                &[OBJ_KEYS, &["files", "ignoreNotFound", "wait", "timeout"]],
            )
            .map_err(at)?;
            if d.files.is_none() {
                d.obj.check().map_err(at)?;
            }
            Action::Delete(d)
        }
        "patch" => {
            let p: PatchSpec = typed(
                body,
                &[OBJ_KEYS, &["type", "patch", "subresource", "count"]],
            )
            .map_err(at)?;
            p.obj.check().map_err(at)?;
            Action::Patch(p)
        }
        "scale" => {
            let s: ScaleSpec = typed(body, &[OBJ_KEYS, &["replicas"]]).map_err(at)?;
            s.obj.check().map_err(at)?;
            Action::Scale(s)
        }
        "annotate" => {
            let a: AnnotateSpec =
                typed(body, &[OBJ_KEYS, &["annotations", "fault", "count"]]).map_err(at)?;
            a.obj.check().map_err(at)?;
            if a.annotations.is_empty() && a.fault.is_none() {
                return Err(at("give `annotations` or `fault`".into()));
            }
            Action::Annotate(a)
        }
        "wait" | "assert" => {
            let c: CheckSpec = typed(body, &[OBJ_KEYS, CHECK_KEYS]).map_err(at)?;
            c.obj.check().map_err(at)?;
            if let Some(p) = &c.path {
                path::Path::parse(p).map_err(at)?;
            }
            if let Some(re) = &c.matches {
                regex::Regex::new(re).map_err(|e| at(e.to_string()))?;
            }
            if let Some(t) = &c.timeout {
                duration(t).map_err(at)?;
            }
            if key.as_str() == "wait" {
                Action::Wait(c)
            } else {
                Action::Assert(c)
            }
        }
        "http" => {
            let h: HttpSpec =
                typed(body, &[GATEWAY_KEYS, &["method", "body", "expect"]]).map_err(at)?;
            if let Some(r) = &h.gw.retry {
                duration(r).map_err(at)?;
            }
            Action::Http(h)
        }
        "traffic" => {
            let t: TrafficSpec = typed(
                body,
                &[
                    GATEWAY_KEYS,
                    &[
                        "method",
                        "requests",
                        "expect",
                        "tolerance",
                        "by",
                        "status",
                        "excludeSelector",
                        "requireSelector",
                    ],
                ],
            )
            .map_err(at)?;
            Action::Traffic(t)
        }
        "websocket" => {
            let w: WsSpec = typed(
                body,
                &[
                    GATEWAY_KEYS,
                    &["keep", "use", "send", "expect", "expectStatus", "close"],
                ],
            )
            .map_err(at)?;
            Action::WebSocket(w)
        }
        "sleep" => Action::Sleep(duration(body.as_str().unwrap_or("")).map_err(at)?),
        "tls-secret" => {
            Action::TlsSecret(typed(body, &[&["name", "namespace", "hosts"]]).map_err(at)?)
        }
        other => {
            return Err(format!(
                "step {i}: unknown step `{other}` (steps: {})",
                ACTIONS.join(", ")
            ))
        }
    };
    let label = match m.get("name").and_then(Value::as_str) {
        Some(n) => n.to_string(),
        None => label_of(&action),
    };
    Ok(Step { label, action })
}

fn label_of(a: &Action) -> String {
    let target = |g: &GatewaySpec| {
        format!(
            "{}{}",
            g.host.clone().unwrap_or_else(|| g.gateway.clone()),
            g.path
        )
    };
    match a {
        Action::Apply(s) => match (&s.files, &s.yaml) {
            (Some(f), _) => format!("apply {}", f.list().join(" ")),
            _ => "apply (inline YAML)".into(),
        },
        Action::Delete(d) => match &d.files {
            Some(f) => format!("delete {}", f.list().join(" ")),
            None => format!("delete {}", d.obj.show()),
        },
        Action::Patch(p) => format!("patch {}", p.obj.show()),
        Action::Scale(s) => format!("scale {} to {}", s.obj.show(), s.replicas),
        Action::Annotate(an) => match &an.fault {
            Some(f) => format!("annotate {} fault={f}", an.obj.show()),
            None => format!("annotate {}", an.obj.show()),
        },
        Action::Wait(c) | Action::Assert(c) => {
            let verb = if matches!(a, Action::Wait(_)) {
                "wait"
            } else {
                "assert"
            };
            let what = if let Some(cond) = &c.condition {
                format!(" {cond}")
            } else if let Some(p) = &c.path {
                format!(" {p}")
            } else if c.deleted {
                " deleted".into()
            } else {
                String::new()
            };
            format!("{verb} {}{what}", c.obj.show())
        }
        Action::Http(h) => format!("http {} {}", h.method, target(&h.gw)),
        Action::Traffic(t) => format!("traffic {} ×{}", target(&t.gw), t.requests),
        Action::WebSocket(w) => match &w.use_ {
            Some(u) => format!("websocket {u}"),
            None => format!("websocket {}", target(&w.gw)),
        },
        Action::Sleep(d) => format!("sleep {}", humantime::format_duration(*d)),
        Action::TlsSecret(t) => format!("tls-secret {}", t.name),
    }
}

/// Reads and checks a scenario file.
pub fn load(file: &Path) -> Result<Scenario, ScenarioError> {
    let shown = file.display().to_string();
    let invalid = |message: String| ScenarioError::Invalid {
        file: shown.clone(),
        message,
    };
    let text =
        std::fs::read_to_string(file).map_err(|e| invalid(format!("failed to read: {e}")))?;
    let v: Value = serde_yaml::from_str(&text).map_err(|e| {
        invalid(match e.location() {
            Some(l) => format!("{}:{}: invalid YAML: {e}", l.line(), l.column()),
            None => format!("invalid YAML: {e}"),
        })
    })?;
    let m = v
        .as_object()
        .ok_or_else(|| invalid("a scenario is a map with `steps`".into()))?;
    for k in m.keys() {
        if !["name", "description", "namespace", "steps"].contains(&k.as_str()) {
            return Err(invalid(format!(
                "unknown field `{k}` (known: name, description, namespace, steps)"
            )));
        }
    }
    let steps = m
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`steps` (a list) is missing".into()))?;
    let steps = steps
        .iter()
        .enumerate()
        .map(|(i, s)| parse_step(i + 1, s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    Ok(Scenario {
        name: m
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                file.file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default()
            }),
        namespace: m
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string(),
        dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        file: shown,
        steps,
    })
}

// === running ===

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
struct Sandbox {
    client: ApiClient,
    port_offset: u16,
    url: String,
    /// In-process: the stop signal, the task, the temp dir.
    owned: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
        PathBuf,
    )>,
}

impl Sandbox {
    async fn start(opts: &Options) -> Result<Sandbox, ScenarioError> {
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

    async fn stop(self) {
        if let Some((stop, task, dir)) = self.owned {
            let _ = stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Per-scenario state.
struct Ctx<'a> {
    client: &'a ApiClient,
    port_offset: u16,
    dir: PathBuf,
    namespace: String,
    trusted: Vec<rustls::pki_types::CertificateDer<'static>>,
    sockets: HashMap<String, net::Ws>,
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

type StepResult = Result<(), String>;

async fn run_step(ctx: &mut Ctx<'_>, action: &Action) -> StepResult {
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
        Action::Http(h) => http(ctx, h).await,
        Action::Traffic(t) => traffic(ctx, t).await,
        Action::WebSocket(w) => websocket(ctx, w).await,
        Action::Sleep(d) => {
            tokio::time::sleep(*d).await;
            Ok(())
        }
        Action::TlsSecret(t) => tls_secret(ctx, t).await,
    }
}

// === object steps ===

fn one_ref(ctx: &Ctx<'_>, o: &ObjSpec) -> Result<ObjRef, String> {
    let (kind, name) = match &o.reference {
        Some(r) => {
            let (k, n) = r.split_once('/').ok_or("`ref` should read kind/name")?;
            (k.to_string(), n.to_string())
        }
        None => (
            o.kind.clone().unwrap_or_else(|| "pod".into()),
            o.name
                .clone()
                .ok_or("this step needs one object: give `ref` or `name`")?,
        ),
    };
    let res = resolve_kind(&kind).ok_or_else(|| format!("unknown kind {kind:?}"))?;
    Ok(ObjRef {
        res,
        namespace: if res.namespaced {
            o.namespace.clone().unwrap_or_else(|| ctx.namespace.clone())
        } else {
            String::new()
        },
        name,
    })
}

/// The objects a spec names: one by name, or all matching a selector (sorted by name, skipping
/// terminating ones).
async fn refs(ctx: &Ctx<'_>, o: &ObjSpec) -> Result<Vec<(ObjRef, Option<Value>)>, String> {
    match (&o.selector, &o.reference, &o.name) {
        (Some(sel), None, None) => {
            let res = resolve_kind(o.kind.as_deref().unwrap_or("pod")).ok_or("unknown kind")?;
            let ns = o.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
            let mut items = ctx
                .client
                .list(res, Some(&ns), Some(sel))
                .await
                .map_err(|e| e.to_string())?;
            items.retain(|i| i.pointer("/metadata/deletionTimestamp").is_none());
            items.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
            Ok(items
                .into_iter()
                .map(|i| {
                    (
                        ObjRef {
                            res,
                            namespace: meta::namespace(&i).to_string(),
                            name: meta::name(&i).to_string(),
                        },
                        Some(i),
                    )
                })
                .collect())
        }
        _ => Ok(vec![(one_ref(ctx, o)?, None)]),
    }
}

/// Reads manifests: files, or every manifest below a folder.
fn read_manifests(dir: &Path, names: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for n in names {
        let p = dir.join(n);
        if p.is_dir() {
            let found = manifest::scan_dir(&p);
            if found.is_empty() {
                return Err(format!("{n}: no .yaml, .yml or .json files in this folder"));
            }
            for rel in found {
                let f = p.join(&rel);
                let text =
                    std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                out.push((format!("{n}/{}", rel.display()), text));
            }
        } else {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| format!("failed to read {} ({}): {e}", n, p.display()))?;
            out.push((n.clone(), text));
        }
    }
    Ok(out)
}

/// Parses manifest texts into objects (prerequisites first).
fn objects_of(
    texts: &[(String, String)],
    default_ns: &str,
) -> Result<Vec<(String, ObjRef, Value)>, String> {
    let mut objs = Vec::new();
    for (name, text) in texts {
        let docs = manifest::parse(text).map_err(|e| match e.location {
            Some((l, c)) => format!("{name}:{l}:{c}: {}", e.message),
            None => format!("{name}: {}", e.message),
        })?;
        for d in docs {
            let r =
                ObjRef::of(&d.obj, default_ns).map_err(|e| format!("{name}:{}: {e}", d.line))?;
            let mut obj = d.obj;
            if r.res.namespaced {
                meta::metadata_mut(&mut obj).insert("namespace".into(), json!(r.namespace));
            }
            objs.push((format!("{name}:{}", d.line), r, obj));
        }
    }
    objs.sort_by_key(|(_, r, _)| kind_rank(r.res));
    Ok(objs)
}

async fn apply(ctx: &mut Ctx<'_>, a: &ApplySpec) -> StepResult {
    let mut texts = read_manifests(
        &ctx.dir,
        &a.files.as_ref().map(|f| f.list()).unwrap_or_default(),
    )?;
    if let Some(y) = &a.yaml {
        texts.push(("(inline YAML)".into(), y.clone()));
    }
    let ns = a.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
    for (at, r, obj) in objects_of(&texts, &ns)? {
        ctx.client
            .apply(&r, &obj, FIELD_MANAGER, false)
            .await
            .map_err(|e| format!("{at}: {}: {e}", r.display()))?;
    }
    Ok(())
}

async fn delete(ctx: &mut Ctx<'_>, d: &DeleteSpec) -> StepResult {
    let targets: Vec<ObjRef> = match &d.files {
        Some(f) => {
            let texts = read_manifests(&ctx.dir, &f.list())?;
            let mut objs = objects_of(&texts, &ctx.namespace)?;
            objs.reverse();
            objs.into_iter().map(|(_, r, _)| r).collect()
        }
        None => refs(ctx, &d.obj)
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect(),
    };
    for r in &targets {
        match ctx.client.delete(r).await {
            Ok(true) => {}
            Ok(false) if d.ignore_not_found || d.files.is_some() => {}
            Ok(false) => {
                return Err(format!(
                    "{} not found (set ignoreNotFound: true if that is fine)",
                    r.display()
                ))
            }
            Err(e) => return Err(format!("{}: {e}", r.display())),
        }
    }
    if d.wait {
        let timeout = d
            .timeout
            .as_deref()
            .map(duration)
            .transpose()?
            .unwrap_or(DEFAULT_TIMEOUT);
        let deadline = Instant::now() + timeout;
        for r in &targets {
            loop {
                match ctx.client.get(r).await {
                    Ok(None) => break,
                    Ok(Some(_)) if Instant::now() < deadline => tokio::time::sleep(POLL).await,
                    Ok(Some(_)) => {
                        return Err(format!(
                            "{} still exists after {}",
                            r.display(),
                            humantime::format_duration(timeout)
                        ))
                    }
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
    Ok(())
}

async fn patch(ctx: &mut Ctx<'_>, p: &PatchSpec) -> StepResult {
    let ct = match p.kind.as_deref().unwrap_or("merge") {
        "merge" => "application/merge-patch+json",
        "json" => "application/json-patch+json",
        "strategic" => "application/strategic-merge-patch+json",
        other => {
            return Err(format!(
                "unknown patch type {other:?} (merge, json, strategic)"
            ))
        }
    };
    let mut targets = refs(ctx, &p.obj).await?;
    if targets.is_empty() {
        return Err(format!("no {} matched", p.obj.show()));
    }
    if let Some(n) = p.count {
        targets.truncate(n);
    }
    for (r, _) in targets {
        ctx.client
            .patch(&r, p.subresource.as_deref().unwrap_or(""), ct, &p.patch)
            .await
            .map_err(|e| format!("{}: {e}", r.display()))?;
    }
    Ok(())
}

async fn annotate(ctx: &mut Ctx<'_>, a: &AnnotateSpec) -> StepResult {
    let mut ann = a.annotations.clone();
    if let Some(f) = &a.fault {
        let v = if f == "none" || f.is_empty() {
            Value::Null
        } else {
            json!(f)
        };
        ann.insert(FAULT_ANNOTATION.into(), v);
    }
    let mut targets = refs(ctx, &a.obj).await?;
    if targets.is_empty() {
        return Err(format!("no {} matched", a.obj.show()));
    }
    if let Some(n) = a.count {
        if targets.len() < n {
            return Err(format!(
                "expected at least {n} objects for {}, got {}",
                a.obj.show(),
                targets.len()
            ));
        }
        targets.truncate(n);
    }
    for (r, _) in targets {
        ctx.client
            .patch(
                &r,
                "",
                "application/merge-patch+json",
                &json!({"metadata": {"annotations": ann}}),
            )
            .await
            .map_err(|e| format!("{}: {e}", r.display()))?;
    }
    Ok(())
}

/// The condition lists of an object: `status.conditions`, or for routes each parent's.
fn condition_lists(obj: &Value) -> Vec<(String, &Vec<Value>)> {
    if let Some(c) = obj.pointer("/status/conditions").and_then(Value::as_array) {
        return vec![(String::new(), c)];
    }
    obj.pointer("/status/parents")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .filter_map(|p| {
                    let who = format!("parent {}: ", path::text(&p["parentRef"]["name"]));
                    p["conditions"].as_array().map(|c| (who, c))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks one condition (every parent's, for routes).
fn check_condition(c: &CheckSpec, cond: &str, obj: &Value) -> Result<(), String> {
    let want = c
        .status
        .as_ref()
        .map(path::text)
        .unwrap_or_else(|| "True".into());
    let lists = condition_lists(obj);
    if lists.is_empty() {
        return Err(format!(
            "expected condition {cond}={want}, got no conditions yet"
        ));
    }
    for (who, list) in lists {
        let Some(found) = list.iter().find(|x| x["type"] == cond) else {
            let have: Vec<String> = list
                .iter()
                .map(|c| format!("{}={}", path::text(&c["type"]), path::text(&c["status"])))
                .collect();
            return Err(format!(
                "{who}expected condition {cond}={want}, got no {cond} condition (conditions: [{}])",
                have.join(", ")
            ));
        };
        let got = |k: &str| path::text(&found[k]);
        if got("status") != want
            || c.reason.as_ref().is_some_and(|r| *r != got("reason"))
            || c.message.as_ref().is_some_and(|m| *m != got("message"))
        {
            let mut exp = format!("{cond}={want}");
            if let Some(r) = &c.reason {
                exp.push_str(&format!(" reason {r:?}"));
            }
            if let Some(m) = &c.message {
                exp.push_str(&format!(" message {m:?}"));
            }
            return Err(format!(
                "{who}expected condition {exp}, got {cond}={} reason {:?} message {:?}",
                got("status"),
                got("reason"),
                got("message")
            ));
        }
    }
    Ok(())
}

/// Evaluates a check on one object: `Ok` when it holds, `Err(what was found)` otherwise.
fn check_object(c: &CheckSpec, obj: &Value) -> Result<(), String> {
    if let Some(cond) = &c.condition {
        check_condition(c, cond, obj)?;
    } else if let Some(st) = &c.status {
        path::subset(st, obj.get("status").unwrap_or(&Value::Null), ".status")?;
    }
    if let Some(o) = &c.object {
        path::subset(o, obj, "")?;
    }
    if let Some(p) = &c.path {
        let p = path::Path::parse(p)?;
        let got = p.text(obj);
        match (&c.equals, &c.matches, &got) {
            _ if c.absent => {
                if let Some(g) = got.filter(|g| !g.is_empty()) {
                    return Err(format!("{p}: expected nothing, got {g:?}"));
                }
            }
            (Some(e), _, Some(g)) if path::text(e) != *g => {
                return Err(format!("{p}: expected {:?}, got {g:?}", path::text(e)))
            }
            (_, Some(re), Some(g)) => {
                let re = regex::Regex::new(re).map_err(|e| e.to_string())?;
                if !re.is_match(g) {
                    return Err(format!("{p}: expected a match of /{re}/, got {g:?}"));
                }
            }
            (Some(e), _, None) => {
                return Err(format!("{p}: expected {:?}, got nothing", path::text(e)))
            }
            (None, None, None) => return Err(format!("{p}: expected a value, got nothing")),
            (_, Some(re), None) => {
                return Err(format!("{p}: expected a match of /{re}/, got nothing"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// `wait` (default timeout 30 s) and `assert` (5 s): poll until the check holds.
async fn check(ctx: &mut Ctx<'_>, c: &CheckSpec, is_wait: bool) -> StepResult {
    let timeout = c
        .timeout
        .as_deref()
        .map(duration)
        .transpose()?
        .unwrap_or(if is_wait {
            DEFAULT_TIMEOUT
        } else {
            DEFAULT_ASSERT_TIMEOUT
        });
    let deadline = Instant::now() + timeout;
    loop {
        let last = match (&c.selector_mode(), c.deleted) {
            (true, _) => {
                let objs = refs(ctx, &c.obj).await?;
                let ok = objs
                    .iter()
                    .filter(|(_, o)| o.as_ref().is_some_and(|o| check_object(c, o).is_ok()))
                    .count();
                let want = c.count.unwrap_or(1);
                if (c.count.is_some() && ok == want) || (c.count.is_none() && ok >= 1) {
                    return Ok(());
                }
                format!(
                    "expected {want} {} matching, got {ok} (of {})",
                    c.obj.show(),
                    objs.len()
                )
            }
            (false, deleted) => {
                let r = one_ref(ctx, &c.obj)?;
                match (
                    ctx.client.get(&r).await.map_err(|e| e.to_string())?,
                    deleted,
                ) {
                    (None, true) => return Ok(()),
                    (Some(_), true) => {
                        format!("expected {} to be deleted; it still exists", r.display())
                    }
                    (None, false) => format!("{} not found", r.display()),
                    (Some(obj), false) => match check_object(c, &obj) {
                        Ok(()) => return Ok(()),
                        Err(e) => format!("{}: {e}", r.display()),
                    },
                }
            }
        };
        if Instant::now() >= deadline {
            return Err(if is_wait {
                format!(
                    "timed out after {}: {last}",
                    humantime::format_duration(timeout)
                )
            } else {
                last
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

impl CheckSpec {
    fn selector_mode(&self) -> bool {
        self.obj.selector.is_some() && self.obj.name.is_none() && self.obj.reference.is_none()
    }
}

async fn tls_secret(ctx: &mut Ctx<'_>, t: &TlsSecretSpec) -> StepResult {
    let g = tls::self_signed(&t.hosts)?;
    let ns = t.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": t.name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": tls::base64(g.cert_pem.as_bytes()), "tls.key": tls::base64(g.key_pem.as_bytes())},
    });
    let r = ObjRef::of(&secret, &ns)?;
    ctx.client
        .apply(&r, &secret, FIELD_MANAGER, false)
        .await
        .map_err(|e| format!("{}: {e}", r.display()))?;
    ctx.trusted.push(g.cert_der);
    Ok(())
}

// === data-plane steps ===

/// Resolves a Gateway listener to a socket: `status.addresses[0].value` and the listener port
/// plus the port offset.
async fn gateway_target(ctx: &Ctx<'_>, g: &GatewaySpec) -> Result<net::Target, String> {
    let r = ObjRef {
        res: crate::resources::kinds::gateways(),
        namespace: g.namespace.clone().unwrap_or_else(|| ctx.namespace.clone()),
        name: g.gateway.clone(),
    };
    let gw = ctx
        .client
        .get(&r)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("gateway {}/{} not found", r.namespace, r.name))?;
    let addr = gw
        .pointer("/status/addresses/0/value")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "gateway {}/{} has no status.addresses yet",
                r.namespace, r.name
            )
        })?;
    let listeners = gw
        .pointer("/spec/listeners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let want_https = g.https;
    let l = listeners
        .iter()
        .find(|l| match (&g.listener, g.port, want_https) {
            (Some(n), _, _) => l["name"] == *n,
            (None, Some(p), _) => l["port"].as_u64() == Some(u64::from(p)),
            (None, None, Some(h)) => (l["protocol"] == "HTTPS") == h,
            (None, None, None) => true,
        })
        .ok_or_else(|| {
            format!(
                "gateway {}/{} has no listener {}",
                r.namespace,
                r.name,
                g.listener
                    .clone()
                    .or(g.port.map(|p| format!("on port {p}")))
                    .unwrap_or_else(|| "of that protocol".into())
            )
        })?;
    let port = l["port"].as_u64().unwrap_or(80) as u16;
    let https = want_https.unwrap_or(l["protocol"] == "HTTPS");
    let host = g
        .host
        .clone()
        .or_else(|| l["hostname"].as_str().map(str::to_string))
        .unwrap_or_else(|| addr.to_string());
    let tls = if https {
        Some(tls::client_config(g.insecure, &ctx.trusted)?)
    } else {
        None
    };
    let ip_port = if addr.contains(':') {
        format!("[{addr}]:{}", port + ctx.port_offset)
    } else {
        format!("{addr}:{}", port + ctx.port_offset)
    };
    Ok(net::Target {
        addr: ip_port,
        tls,
        host,
    })
}

fn retry_of(g: &GatewaySpec) -> Result<Duration, String> {
    g.retry
        .as_deref()
        .map(duration)
        .transpose()
        .map(|d| d.unwrap_or(DEFAULT_RETRY))
}

fn headers_of(g: &GatewaySpec) -> Vec<(String, String)> {
    g.headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `*` wildcards.
fn glob(pattern: &str, s: &str) -> bool {
    let re = format!(
        "^{}$",
        pattern
            .split('*')
            .map(regex::escape)
            .collect::<Vec<_>>()
            .join(".*")
    );
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(s))
}

fn short(body: &str) -> String {
    let b = body.trim();
    if b.chars().count() > 200 {
        format!("{}…", b.chars().take(200).collect::<String>())
    } else {
        b.to_string()
    }
}

/// Checks a reply against `expect`; the error reads "expected status 200, got 503; body: ...".
fn check_reply(e: &HttpExpect, r: &net::Reply) -> Result<(), String> {
    let status = e.status.unwrap_or(200);
    if r.status != status {
        return Err(format!(
            "expected status {status}, got {}; body: {}",
            r.status,
            short(&r.body)
        ));
    }
    for (k, v) in &e.headers {
        match (v, r.header(k)) {
            (None, None) => {}
            (None, Some(got)) => return Err(format!("expected no {k} header, got {got:?}")),
            (Some(v), None) => return Err(format!("expected header {k}: {v:?}, got none")),
            (Some(v), Some(got)) if got != v => {
                return Err(format!("expected header {k}: {v:?}, got {got:?}"))
            }
            _ => {}
        }
    }
    if let Some(b) = &e.body {
        if r.body != *b {
            return Err(format!("expected body {b:?}, got {:?}", short(&r.body)));
        }
    }
    for part in e
        .body_contains
        .as_ref()
        .map(|c| c.list())
        .unwrap_or_default()
    {
        if !r.body.contains(&part) {
            return Err(format!(
                "expected the body to contain {part:?}; body: {}",
                short(&r.body)
            ));
        }
    }
    if e.json.is_some() || e.pod.is_some() || e.namespace.is_some() {
        let v: Value = serde_json::from_str(&r.body)
            .map_err(|_| format!("expected a JSON body, got {:?}", short(&r.body)))?;
        if let Some(j) = &e.json {
            path::subset(j, &v, "body")?;
        }
        if let Some(p) = &e.pod {
            let got = v["pod"].as_str().unwrap_or("");
            if !glob(p, got) {
                return Err(format!("expected pod {p}, got {got:?}"));
            }
        }
        if let Some(ns) = &e.namespace {
            let got = v["namespace"].as_str().unwrap_or("");
            if got != ns {
                return Err(format!("expected namespace {ns:?}, got {got:?}"));
            }
        }
    }
    Ok(())
}

async fn http(ctx: &mut Ctx<'_>, h: &HttpSpec) -> StepResult {
    let deadline = Instant::now() + retry_of(&h.gw)?;
    let headers = headers_of(&h.gw);
    loop {
        let outcome = match gateway_target(ctx, &h.gw).await {
            Ok(t) => {
                match net::request(&t, &h.method, &h.gw.path, &headers, h.body.as_deref()).await {
                    Ok(reply) => check_reply(&h.expect, &reply),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The Deployment of a pod name `<deployment>-<rs-hash>-<pod-hash>`.
fn backend_of(pod: &str) -> String {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    if parts.len() == 3 {
        parts[2].to_string()
    } else {
        pod.to_string()
    }
}

async fn traffic(ctx: &mut Ctx<'_>, t: &TrafficSpec) -> StepResult {
    let want_status = t.status.unwrap_or(200);
    let headers = headers_of(&t.gw);
    // Wait for the route to serve, then count.
    let deadline = Instant::now() + retry_of(&t.gw)?;
    let target = loop {
        let attempt = match gateway_target(ctx, &t.gw).await {
            Ok(tg) => match net::request(&tg, &t.method, &t.gw.path, &headers, None).await {
                Ok(r) if r.status == want_status => Ok(tg),
                Ok(r) => Err(format!(
                    "expected status {want_status}, got {}; body: {}",
                    r.status,
                    short(&r.body)
                )),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match attempt {
            Ok(tg) => break tg,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    };
    let by_pod = t.by.as_deref() == Some("pod");
    let excluded = pods_of(ctx, &t.gw, t.exclude_selector.as_deref()).await?;
    let required = pods_of(ctx, &t.gw, t.require_selector.as_deref()).await?;
    let mut pod_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..t.requests {
        let r = net::request(&target, &t.method, &t.gw.path, &headers, None).await?;
        if r.status != want_status {
            return Err(format!(
                "request {} of {}: expected status {want_status}, got {}; body: {}",
                i + 1,
                t.requests,
                r.status,
                short(&r.body)
            ));
        }
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let pod = v["pod"].as_str().unwrap_or("(no pod in the reply)");
        let key = if by_pod {
            pod.to_string()
        } else {
            backend_of(pod)
        };
        *counts.entry(key).or_default() += 1;
        *pod_counts.entry(pod.to_string()).or_default() += 1;
    }
    for p in &required {
        if !pod_counts.contains_key(p) {
            return Err(format!(
                "expected {p} (requireSelector) to answer some of {} requests, it answered none; split: {}",
                t.requests,
                pod_counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for p in &excluded {
        if let Some(n) = pod_counts.get(p) {
            return Err(format!(
                "expected no request answered by {p} (excludeSelector), got {n} of {}",
                t.requests
            ));
        }
    }
    let n = t.requests.max(1) as f64;
    let share = |k: &str| counts.get(k).copied().unwrap_or(0) as f64 * 100.0 / n;
    let got = counts
        .iter()
        .map(|(k, c)| format!("{k} {:.0}% ({c})", *c as f64 * 100.0 / n))
        .collect::<Vec<_>>()
        .join(", ");
    for (k, want) in &t.expect {
        let s = share(k);
        if (s - want).abs() > t.tolerance {
            return Err(format!(
                "expected {k} {want}% ±{}, got {s:.0}% over {} requests; split: {got}",
                t.tolerance, t.requests
            ));
        }
    }
    for k in counts.keys() {
        if !t.expect.contains_key(k) && share(k) > t.tolerance {
            return Err(format!(
                "unexpected backend {k} took {:.0}% of {} requests; split: {got}",
                share(k),
                t.requests
            ));
        }
    }
    Ok(())
}

/// Names of the pods matching a selector in the Gateway's namespace (none without a selector).
async fn pods_of(ctx: &Ctx<'_>, g: &GatewaySpec, sel: Option<&str>) -> Result<Vec<String>, String> {
    let Some(sel) = sel else {
        return Ok(Vec::new());
    };
    let ns = g.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
    let pods = ctx
        .client
        .list(crate::resources::kinds::pods(), Some(&ns), Some(sel))
        .await
        .map_err(|e| e.to_string())?;
    if pods.is_empty() {
        return Err(format!("selector {sel:?} matched no pod in {ns}"));
    }
    Ok(pods.iter().map(|p| meta::name(p).to_string()).collect())
}

async fn exchange(ws: &mut net::Ws, w: &WsSpec) -> StepResult {
    use futures_util::{SinkExt, StreamExt};
    for m in w.send.as_ref().map(|s| s.list()).unwrap_or_default() {
        ws.send(Message::text(m.clone()))
            .await
            .map_err(|e| format!("sending {m:?} failed: {e}"))?;
    }
    for want in w.expect.as_ref().map(|s| s.list()).unwrap_or_default() {
        let got = loop {
            match tokio::time::timeout(net::REQUEST_TIMEOUT, ws.next()).await {
                Err(_) => {
                    return Err(format!(
                        "expected message {want:?}, got nothing within {:?}",
                        net::REQUEST_TIMEOUT
                    ))
                }
                Ok(None) => {
                    return Err(format!("expected message {want:?}, the connection closed"))
                }
                Ok(Some(Err(e))) => {
                    return Err(format!("expected message {want:?}, got error: {e}"))
                }
                Ok(Some(Ok(Message::Text(t)))) => break t.to_string(),
                Ok(Some(Ok(Message::Binary(b)))) => break String::from_utf8_lossy(&b).to_string(),
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Err(format!(
                        "expected message {want:?}, the server closed the connection ({c:?})"
                    ))
                }
                Ok(Some(Ok(_))) => continue,
            }
        };
        if got != want {
            return Err(format!("expected message {want:?}, got {got:?}"));
        }
    }
    Ok(())
}

async fn websocket(ctx: &mut Ctx<'_>, w: &WsSpec) -> StepResult {
    if let Some(name) = &w.use_ {
        let mut ws = ctx.sockets.remove(name).ok_or_else(|| {
            format!("no open WebSocket named {name:?} (open one with `keep: {name}`)")
        })?;
        let r = exchange(&mut ws, w).await;
        if w.close || r.is_err() {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        } else {
            ctx.sockets.insert(name.clone(), ws);
        }
        return r;
    }
    let deadline = Instant::now() + retry_of(&w.gw)?;
    let headers = headers_of(&w.gw);
    loop {
        let attempt: Result<Option<net::Ws>, String> = async {
            let t = gateway_target(ctx, &w.gw).await?;
            match (
                net::websocket(&t, &w.gw.path, &headers).await,
                w.expect_status,
            ) {
                (Ok(_), Some(s)) => Err(format!(
                    "expected the upgrade to be refused with {s}, got 101"
                )),
                (Err((Some(reply), _)), Some(s)) if reply.status == s => Ok(None),
                (Err((_, e)), _) => Err(e),
                (Ok(mut ws), None) => {
                    exchange(&mut ws, w).await?;
                    Ok(Some(ws))
                }
            }
        }
        .await;
        match attempt {
            Ok(None) => return Ok(()),
            Ok(Some(mut ws)) => {
                match &w.keep {
                    Some(name) => {
                        ctx.sockets.insert(name.clone(), ws);
                    }
                    None => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    }
                }
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// `ClientError` → step error text.
impl From<ClientError> for String {
    fn from(e: ClientError) -> String {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_map_to_their_deployment() {
        assert_eq!(backend_of("backend-v1-7b9d8c6f5d-x2k4q"), "backend-v1");
        assert_eq!(backend_of("solo"), "solo");
    }

    #[test]
    fn globs() {
        assert!(glob("backend-v1-*", "backend-v1-abc-def"));
        assert!(!glob("backend-v1-*", "backend-v2-abc-def"));
        assert!(glob("exact", "exact"));
    }

    #[test]
    fn steps_parse_with_readable_errors() {
        let s = parse_step(1, &json!({"apply": "../manifests/websocket"})).unwrap();
        assert_eq!(s.label, "apply ../manifests/websocket");
        let s = parse_step(
            2,
            &json!({"http": {"gateway": "gateway-01", "host": "contoso.com", "path": "/health"}}),
        )
        .unwrap();
        assert_eq!(s.label, "http GET contoso.com/health");
        let e = parse_step(3, &json!({"htp": {}})).unwrap_err();
        assert!(e.contains("unknown step `htp`"), "{e}");
        let e = parse_step(4, &json!({"wait": {"ref": "gateway/g", "conditon": "x"}})).unwrap_err();
        assert!(e.contains("unknown field `conditon`"), "{e}");
        let e = parse_step(5, &json!({"wait": {"ref": "gizmo/g"}})).unwrap_err();
        assert!(e.contains("unknown kind"), "{e}");
    }

    #[test]
    fn replies_are_checked_with_a_readable_diff() {
        let r = net::Reply {
            status: 503,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: "no healthy upstream".into(),
        };
        let e = HttpExpect {
            status: Some(200),
            ..Default::default()
        };
        assert_eq!(
            check_reply(&e, &r).unwrap_err(),
            "expected status 200, got 503; body: no healthy upstream"
        );
        let e = HttpExpect {
            status: Some(503),
            body: Some("no healthy upstream".into()),
            ..Default::default()
        };
        assert!(check_reply(&e, &r).is_ok());
    }
}
