//! `meta.k8s.io/v1` Table responses, so `kubectl get` shows the columns a real cluster shows.
//!
//! Column sets follow kube-apiserver's printers (pkg/printers/internalversion/printers.go) for
//! built-in kinds and the CRDs' `additionalPrinterColumns` for Gateway API and AGC kinds.
//! Columns with priority 1 appear only with `-o wide`. Cells are formatted server-side (kubectl
//! prints them verbatim; kubectl-contract §7, item 26).

use crate::meta;
use crate::resources::ResourceDef;
use serde_json::{json, Value};

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

type Col = (&'static str, &'static str, u8);

fn columns(res: &ResourceDef) -> Vec<Col> {
    let mut cols: Vec<Col> = vec![("Name", "string", 0)];
    let more: &[Col] = match (res.group, res.kind) {
        ("", "Namespace") => &[("Status", "string", 0)],
        ("", "Pod") => &[
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        ("", "Service") => &[
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        ("", "Endpoints") => &[("Endpoints", "string", 0)],
        ("", "Secret") => &[("Type", "string", 0), ("Data", "string", 0)],
        ("", "ConfigMap") => &[("Data", "string", 0)],
        ("", "Event") => {
            return vec![
                ("Last Seen", "string", 0),
                ("Type", "string", 0),
                ("Reason", "string", 0),
                ("Object", "string", 0),
                ("Message", "string", 0),
                ("Name", "string", 1),
            ]
        }
        ("apps", "Deployment") => &[
            ("Ready", "string", 0),
            ("Up-to-date", "string", 0),
            ("Available", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        ("apps", "ReplicaSet") => &[
            ("Desired", "string", 0),
            ("Current", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        ("discovery.k8s.io", "EndpointSlice") => &[
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
        ],
        (_, "GatewayClass") => &[
            ("Controller", "string", 0),
            ("Accepted", "string", 0),
            ("Age", "string", 0),
            ("Description", "string", 1),
        ],
        (_, "Gateway") => &[
            ("Class", "string", 0),
            ("Address", "string", 0),
            ("Programmed", "string", 0),
        ],
        (_, "HTTPRoute") | (_, "GRPCRoute") => &[("Hostnames", "string", 0)],
        ("alb.networking.azure.io", "ApplicationLoadBalancer")
        | ("alb.networking.azure.io", "WebApplicationFirewallPolicy") => {
            &[("Deployment", "string", 0)]
        }
        ("alb.networking.azure.io", _) => &[("Accepted", "string", 0)],
        _ => &[],
    };
    cols.extend_from_slice(more);
    if !cols.iter().any(|c| c.0 == "Age") {
        cols.push(("Age", "string", 0));
    }
    cols
}

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn get<'a>(obj: &'a Value, ptr: &str) -> &'a Value {
    obj.pointer(ptr).unwrap_or(&Value::Null)
}

fn num(obj: &Value, ptr: &str) -> i64 {
    get(obj, ptr).as_i64().unwrap_or(0)
}

fn or_none(v: String) -> Value {
    if v.is_empty() {
        s("<none>")
    } else {
        s(v)
    }
}

fn join_strs(v: &Value, sep: &str) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(sep)
        })
        .unwrap_or_default()
}

fn selector_string(sel: &Value) -> String {
    // Deployment selectors are metav1.LabelSelector; Service selectors are plain maps.
    let map = sel.get("matchLabels").unwrap_or(sel);
    map.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn containers_images(spec: &Value) -> (String, String) {
    let cs = spec.get("containers").and_then(Value::as_array);
    let names = cs
        .map(|c| {
            c.iter()
                .filter_map(|c| c["name"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let images = cs
        .map(|c| {
            c.iter()
                .filter_map(|c| c["image"].as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    (names, images)
}

/// kubectl's pod STATUS: the phase, or the reason a container is waiting/terminated, or
/// `Terminating` once deletion started.
fn pod_status(obj: &Value) -> String {
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return "Terminating".into();
    }
    let mut reason = get(obj, "/status/reason")
        .as_str()
        .or_else(|| get(obj, "/status/phase").as_str())
        .unwrap_or("Pending")
        .to_string();
    for cs in get(obj, "/status/containerStatuses")
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(r) = cs.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.to_string();
        } else if let Some(r) = cs
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            reason = r.to_string();
        }
    }
    reason
}

fn cells(res: &ResourceDef, obj: &Value) -> Vec<Value> {
    let name = s(meta::name(obj));
    let age = s(meta::age(obj));
    let cond = |t: &str| s(meta::condition_status(obj, t));
    match (res.group, res.kind) {
        ("", "Namespace") => vec![
            name,
            s(get(obj, "/status/phase").as_str().unwrap_or("Active")),
            age,
        ],
        ("", "Pod") => {
            let statuses = get(obj, "/status/containerStatuses").as_array();
            let total = get(obj, "/spec/containers").as_array().map_or(0, Vec::len);
            let ready = statuses.map_or(0, |c| c.iter().filter(|c| c["ready"] == true).count());
            let restarts: i64 = statuses.map_or(0, |c| {
                c.iter()
                    .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                    .sum()
            });
            vec![
                name,
                s(format!("{ready}/{total}")),
                s(pod_status(obj)),
                s(restarts.to_string()),
                age,
                or_none(get(obj, "/status/podIP").as_str().unwrap_or("").into()),
                or_none(get(obj, "/spec/nodeName").as_str().unwrap_or("").into()),
                s("<none>"),
                s("<none>"),
            ]
        }
        ("", "Service") => {
            let ports = get(obj, "/spec/ports")
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            let proto = p["protocol"].as_str().unwrap_or("TCP");
                            match p["nodePort"].as_i64() {
                                Some(np) => format!("{}:{np}/{proto}", p["port"]),
                                None => format!("{}/{proto}", p["port"]),
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let external = join_strs(get(obj, "/spec/externalIPs"), ",");
            vec![
                name,
                s(get(obj, "/spec/type").as_str().unwrap_or("ClusterIP")),
                or_none(get(obj, "/spec/clusterIP").as_str().unwrap_or("").into()),
                or_none(external),
                or_none(ports),
                age,
                or_none(selector_string(get(obj, "/spec/selector"))),
            ]
        }
        ("", "Endpoints") => {
            let mut eps = Vec::new();
            for subset in get(obj, "/subsets").as_array().into_iter().flatten() {
                for a in subset["addresses"].as_array().into_iter().flatten() {
                    for p in subset["ports"].as_array().into_iter().flatten() {
                        eps.push(format!("{}:{}", a["ip"].as_str().unwrap_or(""), p["port"]));
                    }
                }
            }
            vec![name, or_none(eps.join(",")), age]
        }
        ("", "Secret") => {
            let data = get(obj, "/data").as_object().map_or(0, |m| m.len());
            vec![
                name,
                s(get(obj, "/type").as_str().unwrap_or("Opaque")),
                s(data.to_string()),
                age,
            ]
        }
        ("", "ConfigMap") => {
            let data = get(obj, "/data").as_object().map_or(0, |m| m.len())
                + get(obj, "/binaryData").as_object().map_or(0, |m| m.len());
            vec![name, s(data.to_string()), age]
        }
        ("", "Event") => {
            let last = get(obj, "/lastTimestamp")
                .as_str()
                .or_else(|| get(obj, "/eventTime").as_str())
                .or_else(|| get(obj, "/metadata/creationTimestamp").as_str());
            let kind = get(obj, "/involvedObject/kind")
                .as_str()
                .unwrap_or("")
                .to_lowercase();
            let oname = get(obj, "/involvedObject/name").as_str().unwrap_or("");
            vec![
                s(meta::since(last)),
                s(get(obj, "/type").as_str().unwrap_or("")),
                s(get(obj, "/reason").as_str().unwrap_or("")),
                s(format!("{kind}/{oname}")),
                s(get(obj, "/message").as_str().unwrap_or("")),
                name,
            ]
        }
        ("apps", "Deployment") => {
            let (c, i) = containers_images(get(obj, "/spec/template/spec"));
            vec![
                name,
                s(format!(
                    "{}/{}",
                    num(obj, "/status/readyReplicas"),
                    get(obj, "/spec/replicas").as_i64().unwrap_or(1)
                )),
                s(num(obj, "/status/updatedReplicas").to_string()),
                s(num(obj, "/status/availableReplicas").to_string()),
                age,
                s(c),
                s(i),
                s(selector_string(get(obj, "/spec/selector"))),
            ]
        }
        ("apps", "ReplicaSet") => {
            let (c, i) = containers_images(get(obj, "/spec/template/spec"));
            vec![
                name,
                s(get(obj, "/spec/replicas").as_i64().unwrap_or(1).to_string()),
                s(num(obj, "/status/replicas").to_string()),
                s(num(obj, "/status/readyReplicas").to_string()),
                age,
                s(c),
                s(i),
                s(selector_string(get(obj, "/spec/selector"))),
            ]
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            let ports = get(obj, "/ports")
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| p["port"].to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let addrs = get(obj, "/endpoints")
                .as_array()
                .map(|es| {
                    es.iter()
                        .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                        .filter_map(|a| a.as_str().map(str::to_string))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            vec![
                name,
                s(get(obj, "/addressType").as_str().unwrap_or("")),
                or_none(ports),
                or_none(addrs),
                age,
            ]
        }
        (_, "GatewayClass") => vec![
            name,
            s(get(obj, "/spec/controllerName").as_str().unwrap_or("")),
            cond("Accepted"),
            age,
            s(get(obj, "/spec/description").as_str().unwrap_or("")),
        ],
        (_, "Gateway") => vec![
            name,
            s(get(obj, "/spec/gatewayClassName").as_str().unwrap_or("")),
            s(get(obj, "/status/addresses/0/value").as_str().unwrap_or("")),
            cond("Programmed"),
            age,
        ],
        (_, "HTTPRoute") | (_, "GRPCRoute") => {
            vec![name, s(join_strs(get(obj, "/spec/hostnames"), ",")), age]
        }
        ("alb.networking.azure.io", "ApplicationLoadBalancer")
        | ("alb.networking.azure.io", "WebApplicationFirewallPolicy") => {
            vec![name, cond("Deployment"), age]
        }
        ("alb.networking.azure.io", _) => vec![name, cond("Accepted"), age],
        _ => vec![name, age],
    }
}

fn row(res: &ResourceDef, obj: &Value) -> Value {
    json!({
        "cells": cells(res, obj),
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_default(),
        },
    })
}

/// A Table of objects, with column definitions.
pub fn table(res: &ResourceDef, objs: &[&Value], resource_version: u64) -> Value {
    let defs: Vec<Value> = columns(res)
        .into_iter()
        .map(|(name, type_, priority)| {
            let mut d = json!({"name": name, "type": type_, "format": "", "description": "", "priority": priority});
            if name == "Name" {
                d["format"] = json!("name");
            }
            d
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": defs,
        "rows": objs.iter().map(|o| row(res, o)).collect::<Vec<_>>(),
    })
}

/// A one-row Table without column definitions, for watch events in table mode (kubectl keeps
/// the header it printed for the list; kubectl-contract §8, item 32).
pub fn event_row(res: &ResourceDef, obj: &Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or_default()},
        "rows": [row(res, obj)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::kinds;

    fn header(res: &ResourceDef, wide: bool) -> Vec<&'static str> {
        columns(res)
            .into_iter()
            .filter(|c| wide || c.2 == 0)
            .map(|c| c.0)
            .collect()
    }

    #[test]
    fn columns_match_a_real_cluster() {
        assert_eq!(
            header(kinds::gateways(), false),
            ["Name", "Class", "Address", "Programmed", "Age"]
        );
        assert_eq!(
            header(kinds::httproutes(), false),
            ["Name", "Hostnames", "Age"]
        );
        assert_eq!(
            header(kinds::pods(), false),
            ["Name", "Ready", "Status", "Restarts", "Age"]
        );
        assert_eq!(
            header(kinds::deployments(), false),
            ["Name", "Ready", "Up-to-date", "Available", "Age"]
        );
        assert_eq!(
            header(kinds::services(), false),
            [
                "Name",
                "Type",
                "Cluster-IP",
                "External-IP",
                "Port(s)",
                "Age"
            ]
        );
        assert_eq!(
            header(kinds::healthcheckpolicies(), false),
            ["Name", "Accepted", "Age"]
        );
        assert_eq!(
            header(kinds::applicationloadbalancers(), false),
            ["Name", "Deployment", "Age"]
        );
        assert!(header(kinds::pods(), true).contains(&"IP"));
    }

    #[test]
    fn cells_line_up_with_columns_for_every_kind() {
        let obj = json!({"metadata": {"name": "x", "namespace": "n", "creationTimestamp": meta::now_rfc3339()}});
        for r in crate::resources::RESOURCES {
            assert_eq!(cells(r, &obj).len(), columns(r).len(), "{}", r.kind);
        }
    }

    #[test]
    fn gateway_row_shows_address_and_programmed() {
        let gw = json!({"metadata": {"name": "gateway-01", "creationTimestamp": meta::now_rfc3339()},
            "spec": {"gatewayClassName": "azure-alb-external"},
            "status": {"addresses": [{"type": "IPAddress", "value": "127.1.0.1"}],
                       "conditions": [{"type": "Programmed", "status": "True"}]}});
        let c = cells(kinds::gateways(), &gw);
        assert_eq!(
            c[..4],
            [
                json!("gateway-01"),
                json!("azure-alb-external"),
                json!("127.1.0.1"),
                json!("True")
            ]
        );
    }
}
