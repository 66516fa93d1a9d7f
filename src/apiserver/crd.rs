//! CustomResourceDefinitions (apiextensions.k8s.io/v1): stored like any object, and each one
//! makes its kind served: discovery, URLs, the store, and its schema (structural pruning,
//! defaults, validation) through [`super::openapi::register`].
//!
//! [`reconcile`] is level-based: it serves exactly the kinds the stored CRDs define, writes their
//! status as apiextensions-apiserver does (`NamesAccepted` and `Established`, `acceptedNames`,
//! `storedVersions`), and when a CRD is gone deletes its objects and stops serving the kind. The
//! sandbox's own kinds (Gateway API, AGC) are served built in; their CRDs are listed (seeded at
//! start from the embedded definitions), may be re-applied, and are not removed by deleting them.
//! Where kube-apiserver keeps a deleted CRD terminating until its objects are gone, the sandbox
//! removes both at once.

use super::openapi::{self, KindSchema};
use super::validation::Cause;
use crate::meta;
use crate::resources::{self, kinds, ResourceDef};
use crate::store::{Store, Subresource};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The CRDs already turned into served kinds, by name, with the resourceVersion seen.
static SEEN: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

/// `kube-apiserver`'s checks of a CRD that matter for serving it
/// (staging/src/k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation).
pub fn validate(crd: &Value) -> Vec<Cause> {
    let s = |p: &str| crd.pointer(p).and_then(Value::as_str).unwrap_or("");
    let mut out = Vec::new();
    let invalid = |field: &str, value: &str, msg: &str| Cause {
        reason: "FieldValueInvalid",
        field: field.into(),
        message: format!("Invalid value: {value:?}: {msg}"),
    };
    let required = |field: &str| Cause {
        reason: "FieldValueRequired",
        field: field.into(),
        message: "Required value".into(),
    };
    let (group, plural, kind) = (
        s("/spec/group"),
        s("/spec/names/plural"),
        s("/spec/names/kind"),
    );
    for (f, v) in [
        ("spec.group", group),
        ("spec.names.plural", plural),
        ("spec.names.kind", kind),
    ] {
        if v.is_empty() {
            out.push(required(f));
        }
    }
    if !group.is_empty() && !group.contains('.') {
        out.push(invalid(
            "spec.group",
            group,
            "should be a domain with at least one dot",
        ));
    }
    let name = meta::name(crd);
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        out.push(invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match s("/spec/scope") {
        "Namespaced" | "Cluster" => {}
        "" => out.push(required("spec.scope")),
        other => out.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.scope".into(),
            message: format!(
                "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
            ),
        }),
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        out.push(Cause {
            reason: "FieldValueInvalid",
            field: "spec.versions".into(),
            message:
                "Invalid value: \"null\": must have exactly one version marked as storage version"
                    .into(),
        });
    } else {
        let storage = versions.iter().filter(|v| v["storage"] == true).count();
        if storage != 1 {
            out.push(Cause {
                reason: "FieldValueInvalid",
                field: "spec.versions".into(),
                message: format!(
                    "Invalid value: \"{storage} storage versions\": must have exactly one version marked as storage version"
                ),
            });
        }
        for (i, v) in versions.iter().enumerate() {
            if v.pointer("/schema/openAPIV3Schema").is_none() {
                out.push(Cause {
                    reason: "FieldValueRequired",
                    field: format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    message: "Required value: schemas are required".into(),
                });
            }
        }
    }
    // A kind the sandbox serves itself keeps its built-in definition.
    if let Some(existing) = resources::by_plural(group, plural) {
        if resources::is_static(existing) && existing.kind != kind {
            out.push(invalid(
                "spec.names.kind",
                kind,
                &format!("the sandbox serves {plural}.{group} as {}", existing.kind),
            ));
        }
    }
    out
}

/// Whether `name` is the CRD of a kind the sandbox serves itself.
pub fn is_builtin(name: &str) -> bool {
    name.split_once('.')
        .and_then(|(plural, group)| resources::by_plural(group, plural))
        .is_some_and(resources::is_static)
}

/// Serves what the stored CRDs define and nothing else; see the module docs.
pub fn reconcile(store: &Store) {
    let crds = store.list(kinds::customresourcedefinitions(), None).0;
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let seen = seen.get_or_insert_with(HashMap::new);
    let mut live: HashSet<(String, String)> = HashSet::new();
    for crd in &crds {
        let name = meta::name(crd).to_string();
        let (group, plural) = (
            crd.pointer("/spec/group")
                .and_then(Value::as_str)
                .unwrap_or(""),
            crd.pointer("/spec/names/plural")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        live.insert((group.to_string(), plural.to_string()));
        let rv = meta::resource_version_str(crd).to_string();
        if seen.get(&name) == Some(&rv) {
            continue;
        }
        if !is_builtin(&name) {
            serve(crd);
        }
        write_status(store, crd);
        // Re-read: the status write changed the resourceVersion.
        let rv = store
            .get(kinds::customresourcedefinitions(), "", &name)
            .map(|o| meta::resource_version_str(&o).to_string())
            .unwrap_or(rv);
        seen.insert(name, rv);
    }
    seen.retain(|name, _| crds.iter().any(|c| meta::name(c) == name));
    // Kinds whose CRD is gone: their objects go, then the kind.
    for res in resources::all() {
        if resources::is_static(res)
            || live.contains(&(res.group.to_string(), res.plural.to_string()))
        {
            continue;
        }
        for obj in store.list(res, None).0 {
            let _ = store.delete(res, meta::namespace(&obj), meta::name(&obj), false);
        }
        openapi::unregister(res.group, res.kind);
        resources::unregister(res.group, res.plural);
        tracing::info!(
            group = res.group,
            plural = res.plural,
            "CRD deleted: kind no longer served"
        );
    }
}

/// Registers the kind and its storage version's schema.
fn serve(crd: &Value) {
    let def: ResourceDef = match resources::def_from_crd(crd) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(crd = %meta::name(crd), cause = %e, "CRD not served");
            return;
        }
    };
    let res = resources::register(def);
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"));
    if let Some(schema) = storage {
        match KindSchema::crd(res.group, res.kind, schema) {
            Ok(ks) => openapi::register(res.group, res.kind, ks),
            Err(e) => {
                tracing::warn!(crd = %meta::name(crd), cause = %e, "CRD schema not compiled; objects are stored unchecked")
            }
        }
    }
}

/// `status` as apiextensions-apiserver writes it for an accepted, established CRD.
fn write_status(store: &Store, crd: &Value) {
    let now = meta::now_rfc3339();
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == true)
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    let keep_time = |t: &str| {
        crd.pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t && c["status"] == "True"))
            .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_string))
            .unwrap_or_else(|| now.clone())
    };
    let status = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")},
        ],
        "acceptedNames": names,
        "storedVersions": storage,
    });
    if crd.get("status") == Some(&status) {
        return;
    }
    let _ = store.modify(
        kinds::customresourcedefinitions(),
        "",
        meta::name(crd),
        Subresource::Status,
        |o| o["status"] = status,
    );
}

/// Stores the CRDs of the sandbox's own kinds (from the embedded definitions) when missing, so
/// `kubectl get crds` lists them as a cluster with AGC does.
pub fn seed_builtin(store: &Store) {
    for crd in openapi::embedded_crds() {
        let name = meta::name(&crd).to_string();
        if store
            .get(kinds::customresourcedefinitions(), "", &name)
            .is_some()
        {
            continue;
        }
        if let Err(e) = store.create(kinds::customresourcedefinitions(), crd, false) {
            tracing::warn!(crd = %name, cause = %e, "failed to store a built-in CRD");
        }
    }
    reconcile(store);
}
