//! Discovery documents: `/version`, legacy `/api` + `/apis` + per group-version resource lists.
//!
//! Legacy discovery is served for every Accept header: kubectl 1.27–1.33 all fall back to it
//! silently (kubectl-contract §2, item 6). Aggregated discovery is optional and not served.

use crate::resources::{self, ResourceDef};
use serde_json::{json, Value};

/// `/version`. The minor version picks the kubectl that the gcloud dispatcher runs
/// (kubectl-contract §1, item 3), so report a current, real release.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "agc-sandbox",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

fn group_doc(name: &str, versions: &[&str]) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{name}/{v}"), "version": v});
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": gv(versions[0]),
    })
}

/// `/apis`.
pub fn group_list() -> Value {
    let groups: Vec<Value> = resources::groups()
        .into_iter()
        .map(|(name, versions)| group_doc(name, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, or `None` for an unknown group.
pub fn group(name: &str) -> Option<Value> {
    let (name, versions) = resources::groups().into_iter().find(|(g, _)| *g == name)?;
    let mut doc = group_doc(name, &versions);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn resource_entry(r: &ResourceDef) -> Value {
    // Namespaces have no deletecollection (pkg/registry/core/namespace/storage).
    let verbs: Vec<&str> = VERBS
        .iter()
        .copied()
        .filter(|v| !(*v == "deletecollection" && r.group.is_empty() && r.plural == "namespaces"))
        .collect();
    let mut e = json!({
        "name": r.plural,
        "singularName": r.kind.to_lowercase(),
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": verbs,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    e
}

fn sub_entry(
    r: &ResourceDef,
    sub: &str,
    group: &str,
    version: &str,
    kind: &str,
    verbs: &[&str],
) -> Value {
    let mut e = json!({
        "name": format!("{}/{sub}", r.plural),
        "singularName": "",
        "namespaced": r.namespaced,
        "kind": kind,
        "verbs": verbs,
    });
    if !group.is_empty() {
        e["group"] = json!(group);
        e["version"] = json!(version);
    }
    e
}

/// `/api/v1` or `/apis/<group>/<version>`, or `None` when not served.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in resources::in_group_version(group, version) {
        list.push(resource_entry(r));
        if r.has_status {
            list.push(sub_entry(
                r,
                "status",
                "",
                "",
                r.kind,
                &["get", "patch", "update"],
            ));
        }
        match (r.group, r.plural) {
            // `kubectl scale` finds the scale subresource through discovery.
            ("apps", "deployments") | ("apps", "replicasets") => {
                list.push(sub_entry(
                    r,
                    "scale",
                    "autoscaling",
                    "v1",
                    "Scale",
                    &["get", "patch", "update"],
                ));
            }
            ("", "pods") => list.push(sub_entry(r, "log", "", "", "Pod", &["get"])),
            _ => {}
        }
    }
    if list.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_resource_entry_has_kind_and_scope() {
        // Without `kind` kubectl cannot map kinds; without `namespaced` it silently treats the
        // resource as cluster-scoped (kubectl-contract §2, item 8).
        for (g, versions) in resources::groups().into_iter().chain([("", vec!["v1"])]) {
            for v in versions {
                let doc = resource_list(g, v).unwrap();
                for r in doc["resources"].as_array().unwrap() {
                    assert!(r["kind"].is_string(), "{r}");
                    assert!(r["namespaced"].is_boolean(), "{r}");
                }
            }
        }
    }

    #[test]
    fn gateway_short_name_and_scale_subresource_are_advertised() {
        let gw = resource_list("gateway.networking.k8s.io", "v1").unwrap();
        let gateways = gw["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "gateways")
            .unwrap();
        assert_eq!(gateways["shortNames"], json!(["gtw"]));
        let apps = resource_list("apps", "v1").unwrap();
        assert!(apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale" && r["kind"] == "Scale"));
    }

    #[test]
    fn unknown_group_versions_are_none() {
        assert!(resource_list("example.com", "v1").is_none());
        assert!(resource_list("gateway.networking.k8s.io", "v1alpha2").is_none());
        assert!(group("example.com").is_none());
    }
}
