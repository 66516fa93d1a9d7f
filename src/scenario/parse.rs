//! Parsing scenario files into the model, with errors naming the file, step and field.

use super::model::{
    Action, AnnotateSpec, ApplySpec, CheckSpec, DeleteSpec, GatewaySpec, HttpSpec, ObjSpec,
    PatchSpec, ScaleSpec, Scenario, Step, TrafficSpec, WsSpec, ACTIONS, CHECK_KEYS, GATEWAY_KEYS,
    OBJ_KEYS,
};
use super::path;
use super::shared::ScenarioError;
use crate::client::resolve_kind;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

pub(crate) fn typed<T: DeserializeOwned>(v: &Value, allowed: &[&[&str]]) -> Result<T, String> {
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
    pub(crate) fn show(&self) -> String {
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
    pub(crate) fn check(&self) -> Result<(), String> {
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

pub(crate) fn parse_step(i: usize, v: &Value) -> Result<Step, String> {
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

pub(crate) fn label_of(a: &Action) -> String {
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
