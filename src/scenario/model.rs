//! The scenario model: what a parsed file holds (steps and their typed specs).

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A parsed scenario file.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file as given on the command line.
    pub file: String,
    pub(crate) dir: PathBuf,
    pub name: String,
    pub(crate) namespace: String,
    pub(crate) steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) label: String,
    pub(crate) action: Action,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub(crate) fn list(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Which object(s) a step concerns.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjSpec {
    /// `kind/name`, e.g. `gateway/gateway-01` or `httproute.gateway.networking.k8s.io/r`.
    #[serde(rename = "ref")]
    pub(crate) reference: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) namespace: Option<String>,
    /// A label selector (with `kind`, default Pod) instead of a name.
    pub(crate) selector: Option<String>,
}
pub(crate) const OBJ_KEYS: &[&str] = &["ref", "kind", "name", "namespace", "selector"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplySpec {
    pub(crate) files: Option<OneOrMany<String>>,
    pub(crate) yaml: Option<String>,
    pub(crate) namespace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteSpec {
    #[serde(flatten)]
    pub(crate) obj: ObjSpec,
    pub(crate) files: Option<OneOrMany<String>>,
    #[serde(default)]
    pub(crate) ignore_not_found: bool,
    #[serde(default)]
    pub(crate) wait: bool,
    pub(crate) timeout: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PatchSpec {
    #[serde(flatten)]
    pub(crate) obj: ObjSpec,
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) patch: Value,
    pub(crate) subresource: Option<String>,
    /// With `selector`: patch only the first N objects (by name).
    pub(crate) count: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScaleSpec {
    #[serde(flatten)]
    pub(crate) obj: ObjSpec,
    pub(crate) replicas: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnnotateSpec {
    #[serde(flatten)]
    pub(crate) obj: ObjSpec,
    #[serde(default)]
    pub(crate) annotations: Map<String, Value>,
    pub(crate) fault: Option<String>,
    pub(crate) count: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CheckSpec {
    #[serde(flatten)]
    pub(crate) obj: ObjSpec,
    pub(crate) condition: Option<String>,
    pub(crate) status: Option<Value>,
    pub(crate) reason: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) object: Option<Value>,
    pub(crate) path: Option<String>,
    pub(crate) equals: Option<Value>,
    pub(crate) matches: Option<String>,
    /// With `path`: the field is absent (or empty).
    #[serde(default)]
    pub(crate) absent: bool,
    #[serde(default)]
    pub(crate) deleted: bool,
    pub(crate) count: Option<usize>,
    pub(crate) timeout: Option<String>,
}
pub(crate) const CHECK_KEYS: &[&str] = &[
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
pub(crate) struct GatewaySpec {
    pub(crate) gateway: String,
    pub(crate) namespace: Option<String>,
    pub(crate) listener: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) https: Option<bool>,
    #[serde(default)]
    pub(crate) insecure: bool,
    pub(crate) host: Option<String>,
    #[serde(default = "root_path")]
    pub(crate) path: String,
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) retry: Option<String>,
}
pub(crate) const GATEWAY_KEYS: &[&str] = &[
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

pub(crate) fn root_path() -> String {
    "/".into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct HttpExpect {
    pub(crate) status: Option<u16>,
    /// Header values (exact); `null` expects the header absent.
    #[serde(default)]
    pub(crate) headers: BTreeMap<String, Option<String>>,
    pub(crate) body: Option<String>,
    pub(crate) body_contains: Option<OneOrMany<String>>,
    pub(crate) json: Option<Value>,
    /// Which pod answered (echo JSON `pod`), `*` wildcards allowed.
    pub(crate) pod: Option<String>,
    /// Which namespace answered (echo JSON `namespace`).
    pub(crate) namespace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpSpec {
    #[serde(flatten)]
    pub(crate) gw: GatewaySpec,
    #[serde(default = "get")]
    pub(crate) method: String,
    pub(crate) body: Option<String>,
    #[serde(default)]
    pub(crate) expect: HttpExpect,
}

pub(crate) fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrafficSpec {
    #[serde(flatten)]
    pub(crate) gw: GatewaySpec,
    #[serde(default = "get")]
    pub(crate) method: String,
    #[serde(default = "hundred")]
    pub(crate) requests: usize,
    /// Expected share (percent) per backend (or pod, with `by: pod`).
    pub(crate) expect: BTreeMap<String, f64>,
    #[serde(default = "ten")]
    pub(crate) tolerance: f64,
    pub(crate) by: Option<String>,
    pub(crate) status: Option<u16>,
    /// Pods matching this label selector (in the Gateway's namespace) must answer none.
    pub(crate) exclude_selector: Option<String>,
    /// Every pod matching this label selector must answer at least one request.
    pub(crate) require_selector: Option<String>,
}

pub(crate) fn hundred() -> usize {
    100
}
pub(crate) fn ten() -> f64 {
    10.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WsSpec {
    #[serde(flatten)]
    pub(crate) gw: GatewaySpec,
    pub(crate) keep: Option<String>,
    #[serde(rename = "use")]
    pub(crate) use_: Option<String>,
    pub(crate) send: Option<OneOrMany<String>>,
    pub(crate) expect: Option<OneOrMany<String>>,
    pub(crate) expect_status: Option<u16>,
    #[serde(default)]
    pub(crate) close: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct TlsSecretSpec {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    pub(crate) hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Action {
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

pub(crate) const ACTIONS: &[&str] = &[
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
