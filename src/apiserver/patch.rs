//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch (for
//! built-in kinds, as kube-apiserver) and server-side apply.
//!
//! Server-side apply here is deliberately simple (kubectl-contract §6, item 24): the applied
//! configuration is merged over the live object, and fields that the same field manager applied
//! before but no longer sets are removed, so "what the file says wins". Ownership is tracked in
//! `metadata.managedFields` (an `Apply` entry per manager whose `fieldsV1` lists the applied
//! map keys); lists are owned whole, and conflicts between managers are not detected.

use super::errors::ApiError;
use super::smp;
use crate::meta::{self, Object};
use crate::resources::ResourceDef;
use serde_json::{json, Value};

/// The patch types kube-apiserver accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

pub const ACCEPTED: &str =
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml";
pub const ACCEPTED_BUILTIN: &str = "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml";

impl PatchType {
    /// Parses a PATCH Content-Type for `res`; strategic merge patch only for built-in kinds,
    /// as a real server answers it with 415 on custom resources.
    pub fn from_content_type(ct: &str, res: &ResourceDef) -> Result<PatchType, ApiError> {
        let mime = ct.split(';').next().unwrap_or("").trim();
        let accepted = if res.builtin {
            ACCEPTED_BUILTIN
        } else {
            ACCEPTED
        };
        match mime {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" if res.builtin => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply),
            _ => Err(ApiError::UnsupportedMediaType(accepted)),
        }
    }
}

/// Applies a JSON, merge or strategic patch to `current`. A result that is not an object (a
/// JSON patch can replace the root, or `metadata`, with anything) is refused as
/// kube-apiserver refuses what it cannot decode into the kind: 422 on the field `patch`
/// (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go, applyPatchToCurrentObject).
pub fn apply_patch(
    res: &'static ResourceDef,
    current: &Value,
    body: &[u8],
    pt: PatchType,
) -> Result<Object, ApiError> {
    let patched = apply_patch_unchecked(res, current, body, pt)?;
    let bad_shape = if !patched.is_object() {
        Some(format!(
            "json: cannot unmarshal {} into Go value of type {}",
            go_kind(&patched),
            res.kind
        ))
    } else {
        patched
            .get("metadata")
            .filter(|m| !m.is_object() && !m.is_null())
            .map(|m| {
                format!(
                    "json: cannot unmarshal {} into Go struct field {}.metadata of type v1.ObjectMeta",
                    go_kind(m),
                    res.kind
                )
            })
    };
    match bad_shape {
        None => Ok(Object::new(patched)?),
        Some(detail) => {
            let shown = serde_json::to_string(&patched).unwrap_or_default();
            let cause = super::validation::Cause {
                reason: "FieldValueInvalid",
                field: "patch".into(),
                message: format!("Invalid value: {shown:?}: {detail}"),
            };
            Err(ApiError::Invalid {
                res,
                name: meta::name(current).to_string(),
                message: format!(
                    " {:?} is invalid: patch: Invalid value: {shown:?}: {detail}",
                    ""
                ),
                causes: vec![cause],
            })
        }
    }
}

/// The JSON type name Go's decoder uses in its errors.
fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn apply_patch_unchecked(
    res: &'static ResourceDef,
    current: &Value,
    body: &[u8],
    pt: PatchType,
) -> Result<Value, ApiError> {
    let bad = |e: serde_json::Error| ApiError::BadRequest(format!("error decoding patch: {e}"));
    match pt {
        PatchType::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body).map_err(bad)?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &patch)
                .map_err(|e| invalid_patch(res, current, e.to_string()))?;
            Ok(doc)
        }
        PatchType::Merge => {
            let patch: Value = serde_json::from_slice(body).map_err(bad)?;
            if !patch.is_object() {
                return Err(ApiError::BadRequest(
                    "a merge patch must be a JSON object".into(),
                ));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, &patch);
            Ok(doc)
        }
        PatchType::Strategic => {
            let patch: Value = serde_json::from_slice(body).map_err(bad)?;
            smp::strategic_merge_patch(current, &patch, res.kind)
                .map_err(|e| invalid_patch(res, current, e.to_string()))
        }
        PatchType::Apply => Err(ApiError::Internal(
            "apply patches go through server_side_apply".into(),
        )),
    }
}

fn invalid_patch(res: &'static ResourceDef, current: &Value, msg: String) -> ApiError {
    ApiError::Invalid {
        res,
        name: meta::name(current).to_string(),
        causes: vec![],
        message: format!("the server rejected our request due to an error in our request: {msg}"),
    }
}

/// The key set of an applied configuration, in the shape of `managedFields[].fieldsV1`
/// (`{"f:spec": {"f:listeners": {}}}`). Lists and scalars are leaves.
fn fields_of(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "apiVersion" | "kind"))
                .map(|(k, v)| (format!("f:{k}"), fields_of(v)))
                .collect(),
        ),
        _ => json!({}),
    }
}

/// Removes from `live` every field listed in `before` but not in `after` (both fieldsV1 sets).
fn remove_dropped(live: &mut Value, before: &Value, after: &Value) {
    let (Some(before), Some(live)) = (before.as_object(), live.as_object_mut()) else {
        return;
    };
    for (fk, sub_before) in before {
        let Some(key) = fk.strip_prefix("f:") else {
            continue;
        };
        match after.get(fk) {
            None => {
                live.remove(key);
            }
            Some(sub_after) => {
                if let Some(child) = live.get_mut(key) {
                    remove_dropped(child, sub_before, sub_after);
                }
            }
        }
    }
}

/// Server-side apply of `applied` by `manager` over `live` (`None`: the object is created).
pub fn server_side_apply(live: Option<&Value>, applied: Object, manager: &str) -> Object {
    let fields = fields_of(&applied);
    let api_version = applied.get("apiVersion").cloned().unwrap_or(Value::Null);
    let live = live.filter(|l| l.is_object());
    let mut out = match live {
        None => applied.into_value(),
        Some(live) => {
            let mut out = live.clone();
            let before = live
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .and_then(|mf| {
                    mf.iter()
                        .find(|e| e["manager"] == manager && e["operation"] == "Apply")
                })
                .map(|e| e["fieldsV1"].clone());
            if let Some(before) = before {
                remove_dropped(&mut out, &before, &fields);
            }
            merge_applied(&mut out, &applied);
            out
        }
    };
    let md = meta::metadata_mut(&mut out);
    let mut managed: Vec<Value> = md
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    managed.retain(|e| !(e["manager"] == manager && e["operation"] == "Apply"));
    managed.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": api_version,
        "time": meta::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }));
    md.insert("managedFields".into(), Value::Array(managed));
    // Both starting points are maps (the applied object, or a live one checked above).
    Object::literal(out)
}

/// Merges an applied configuration: maps merge, everything else (lists included) replaces.
fn merge_applied(live: &mut Value, applied: &Value) {
    match (live.as_object_mut(), applied.as_object()) {
        (Some(l), Some(a)) => {
            for (k, v) in a {
                match l.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => {
                        merge_applied(existing, v)
                    }
                    _ => {
                        l.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *live = applied.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::kinds;

    #[test]
    fn strategic_merge_is_refused_for_custom_kinds() {
        let err = PatchType::from_content_type(
            "application/strategic-merge-patch+json",
            kinds::gateways(),
        )
        .unwrap_err();
        assert_eq!(err.code_reason().0, 415);
        assert!(PatchType::from_content_type(
            "application/strategic-merge-patch+json",
            kinds::deployments()
        )
        .is_ok());
        assert_eq!(
            PatchType::from_content_type("text/plain", kinds::pods())
                .unwrap_err()
                .code_reason()
                .0,
            415
        );
    }

    #[test]
    fn json_patch_and_merge_patch() {
        let cur = json!({"metadata": {"name": "a"}, "spec": {"x": 1, "y": [1, 2]}});
        let out = apply_patch(
            kinds::gateways(),
            &cur,
            br#"[{"op":"replace","path":"/spec/x","value":2}]"#,
            PatchType::Json,
        )
        .unwrap();
        assert_eq!(out["spec"]["x"], 2);
        let err = apply_patch(
            kinds::gateways(),
            &cur,
            br#"[{"op":"replace","path":"/spec/nope/z","value":2}]"#,
            PatchType::Json,
        )
        .unwrap_err();
        assert_eq!(err.code_reason().0, 422);
        let out = apply_patch(
            kinds::gateways(),
            &cur,
            br#"{"spec":{"x":null,"y":[3]}}"#,
            PatchType::Merge,
        )
        .unwrap();
        assert_eq!(out["spec"], json!({"y": [3]}));
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_setting() {
        let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
        let live = server_side_apply(None, Object::new(first).unwrap(), "kubectl").into_value();
        let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v2"}});
        let out = server_side_apply(Some(&live), Object::new(second).unwrap(), "kubectl");
        assert_eq!(out["metadata"]["labels"], json!({"a": "1"}));
        assert_eq!(out["data"]["k"], "v2");
        assert_eq!(
            out["metadata"]["managedFields"].as_array().unwrap().len(),
            1
        );
    }

    #[test]
    fn apply_keeps_fields_of_other_managers() {
        let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"other": "x"}}});
        live = server_side_apply(
            Some(&live),
            Object::new(json!({"metadata": {"name": "c", "labels": {"mine": "y"}}})).unwrap(),
            "kubectl",
        )
        .into_value();
        assert_eq!(
            live["metadata"]["labels"],
            json!({"other": "x", "mine": "y"})
        );
    }
}
