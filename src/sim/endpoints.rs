//! Service → Endpoints and EndpointSlice, as the endpoints and endpointslice controllers build
//! them: one address per Pod selected by the Service (ready or not, with its ready condition),
//! ports resolved from the Service's numeric or named `targetPort`.

use crate::meta;
use crate::store::LabelSelector;
use serde_json::{json, Value};

/// Label that ties an EndpointSlice to its Service (discovery.k8s.io well-known label).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label marking slices this simulator manages; user-written slices are never touched.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";

/// Whether a Service's selector picks Pods (selector-less Services get user-supplied endpoints).
pub fn has_selector(svc: &Value) -> bool {
    svc.pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
}

/// Whether `pod` is selected by `svc`.
pub fn selects(svc: &Value, pod: &Value) -> bool {
    let Some(sel) = svc.pointer("/spec/selector") else {
        return false;
    };
    meta::namespace(svc) == meta::namespace(pod)
        && LabelSelector::from_object(&json!({ "matchLabels": sel })).is_ok_and(|s| s.matches(pod))
}

/// The container port a Service `targetPort` means on `pod` (a number, or a port name).
pub fn resolve_target_port(target: &Value, pod: &Value) -> Option<i64> {
    match target {
        Value::Number(n) => n.as_i64(),
        Value::String(name) => {
            if let Ok(n) = name.parse::<i64>() {
                return Some(n);
            }
            pod.pointer("/spec/containers")
                .and_then(Value::as_array)?
                .iter()
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .find(|p| p["name"] == name.as_str())
                .and_then(|p| p["containerPort"].as_i64())
        }
        _ => None,
    }
}

/// Pod annotation listing, with `--shared-pod-ip`, the port each container port really
/// listens on (`{"8080": 41234}`).
pub const PORTS_ANNOTATION: &str = "agc-sandbox.dev/ports";

/// Where a container port of `pod` really listens: itself, or its allocated port when pods
/// share 127.0.0.1.
pub fn actual_port(pod: &Value, port: i64) -> i64 {
    crate::meta::annotation(pod, PORTS_ANNOTATION)
        .and_then(|a| serde_json::from_str::<Value>(a).ok())
        .and_then(|m| m.get(port.to_string()).and_then(Value::as_i64))
        .unwrap_or(port)
}

/// The numeric target ports a Service asks `pod` to serve.
pub fn target_ports(svc: &Value, pod: &Value) -> Vec<i64> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let target = p.get("targetPort").or_else(|| p.get("port"))?;
            resolve_target_port(target, pod)
        })
        .collect()
}

fn owner(svc: &Value) -> Value {
    json!([{"apiVersion": "v1", "kind": "Service", "name": meta::name(svc), "uid": meta::uid(svc),
            "controller": true, "blockOwnerDeletion": true}])
}

/// The Endpoints and EndpointSlice objects for a selector Service. `pods` are the Pods of its
/// namespace; only running Pods with an IP are listed (ready or not, as in Kubernetes). Pods
/// whose target ports resolve differently (a named port that differs per pod, or pods sharing
/// 127.0.0.1 with allocated ports) go to separate slices and subsets, as the real controllers
/// split them.
pub fn build(svc: &Value, pods: &[&Value]) -> (Value, Vec<Value>) {
    let ns = meta::namespace(svc);
    let name = meta::name(svc);
    let mut selected: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| selects(svc, p))
        .filter(|p| p.pointer("/status/podIP").and_then(Value::as_str).is_some())
        .collect();
    selected.sort_by(|a, b| meta::name(a).cmp(meta::name(b)));
    let svc_ports: Vec<&Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let ports_of = |pod: Option<&Value>| -> Vec<Value> {
        svc_ports
            .iter()
            .map(|sp| {
                let mut p = json!({
                    "name": sp.get("name").cloned().unwrap_or(json!("")),
                    "protocol": sp.get("protocol").cloned().unwrap_or(json!("TCP")),
                });
                let target = sp.get("targetPort").or_else(|| sp.get("port"));
                let resolved = pod.and_then(|pod| {
                    target
                        .and_then(|t| resolve_target_port(t, pod))
                        .map(|n| actual_port(pod, n))
                });
                p["port"] = match resolved {
                    Some(n) => json!(n),
                    None => target.cloned().unwrap_or(json!(null)),
                };
                if let Some(ap) = sp.get("appProtocol") {
                    p["appProtocol"] = ap.clone();
                }
                p
            })
            .collect()
    };
    // Group pods by their resolved ports, in name order.
    let mut groups: Vec<(Vec<Value>, Vec<&Value>)> = Vec::new();
    for pod in &selected {
        let ports = ports_of(Some(pod));
        match groups.iter_mut().find(|(p, _)| *p == ports) {
            Some((_, members)) => members.push(pod),
            None => groups.push((ports, vec![pod])),
        }
    }
    if groups.is_empty() {
        groups.push((ports_of(None), Vec::new()));
    }
    let endpoint = |pod: &&Value| {
        let ready = super::workloads::pod_ready(pod);
        let terminating = pod.pointer("/metadata/deletionTimestamp").is_some();
        json!({
            "addresses": [pod["status"]["podIP"]],
            "conditions": {"ready": ready, "serving": ready, "terminating": terminating},
            "nodeName": super::workloads::NODE_NAME,
            "targetRef": {"kind": "Pod", "name": meta::name(pod), "namespace": ns, "uid": meta::uid(pod)},
        })
    };
    let addr = |pod: &&Value| {
        json!({"ip": pod["status"]["podIP"], "nodeName": super::workloads::NODE_NAME,
               "targetRef": {"kind": "Pod", "name": meta::name(pod), "namespace": ns, "uid": meta::uid(pod)}})
    };
    let base = slice_name(svc);
    let mut slices = Vec::new();
    let mut subsets = Vec::new();
    for (i, (ports, members)) in groups.iter().enumerate() {
        slices.push(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": if i == 0 { base.clone() } else { format!("{base}-{i}") },
                "namespace": ns,
                "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
                "ownerReferences": owner(svc),
            },
            "addressType": "IPv4",
            "endpoints": members.iter().map(endpoint).collect::<Vec<_>>(),
            "ports": ports,
        }));
        // v1 Endpoints: ready addresses and notReadyAddresses per port set.
        let ready: Vec<Value> = members
            .iter()
            .filter(|p| super::workloads::pod_ready(p))
            .map(addr)
            .collect();
        let not_ready: Vec<Value> = members
            .iter()
            .filter(|p| !super::workloads::pod_ready(p))
            .map(addr)
            .collect();
        if members.is_empty() {
            continue;
        }
        let mut subset = json!({"ports": ports});
        if !ready.is_empty() {
            subset["addresses"] = json!(ready);
        }
        if !not_ready.is_empty() {
            subset["notReadyAddresses"] = json!(not_ready);
        }
        subsets.push(subset);
    }
    let mut endpoints_obj = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "ownerReferences": owner(svc),
                     "labels": {SERVICE_NAME_LABEL: name}},
    });
    if !subsets.is_empty() {
        endpoints_obj["subsets"] = json!(subsets);
    }
    (endpoints_obj, slices)
}

/// A stable slice name per Service (`<service>-<5 chars>`, like the generated names a real
/// cluster uses, but derived from the Service's uid so restarts keep it).
pub fn slice_name(svc: &Value) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in meta::uid(svc).bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let suffix: String = (0..5)
        .map(|i| A[((h >> (i * 5)) as usize) % A.len()] as char)
        .collect();
    format!("{}-{suffix}", meta::name(svc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, labels: Value) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns", "uid": format!("u-{name}"), "labels": labels},
               "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
               "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn svc(target: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "ns", "uid": "s1"},
               "spec": {"selector": {"app": "web"}, "ports": [{"name": "http-back", "port": 80, "targetPort": target, "protocol": "TCP"}]}})
    }

    #[test]
    fn named_target_port_resolves_to_the_container_port() {
        let p = pod("a", "127.10.0.1", true, json!({"app": "web"}));
        assert_eq!(resolve_target_port(&json!("http"), &p), Some(8080));
        assert_eq!(resolve_target_port(&json!(3000), &p), Some(3000));
        assert_eq!(resolve_target_port(&json!("nope"), &p), None);
    }

    #[test]
    fn slice_lists_selected_pods_with_ready_conditions() {
        let a = pod("a", "127.10.0.1", true, json!({"app": "web"}));
        let b = pod("b", "127.10.0.2", false, json!({"app": "web"}));
        let other = pod("c", "127.10.0.3", true, json!({"app": "db"}));
        let (ep, slices) = build(&svc(json!("http")), &[&a, &b, &other]);
        let slice = &slices[0];
        assert_eq!(slice["ports"][0]["port"], 8080);
        assert_eq!(slice["ports"][0]["name"], "http-back");
        assert_eq!(slice["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
        assert_eq!(slice["endpoints"][1]["conditions"]["ready"], false);
        assert_eq!(slice["metadata"]["labels"][SERVICE_NAME_LABEL], "web");
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "127.10.0.1");
        assert_eq!(ep["subsets"][0]["notReadyAddresses"][0]["ip"], "127.10.0.2");
    }

    #[test]
    fn no_pods_means_no_subsets() {
        let (ep, slices) = build(&svc(json!(3000)), &[]);
        let slice = &slices[0];
        assert!(ep.get("subsets").is_none());
        assert_eq!(slice["endpoints"], json!([]));
        assert_eq!(slice["ports"][0]["port"], 3000);
    }

    #[test]
    fn pods_with_allocated_ports_get_a_slice_each() {
        let mut a = pod("a", "127.0.0.1", true, json!({"app": "web"}));
        let mut b = pod("b", "127.0.0.1", true, json!({"app": "web"}));
        a["metadata"]["annotations"] = json!({PORTS_ANNOTATION: "{\"8080\": 41001}"});
        b["metadata"]["annotations"] = json!({PORTS_ANNOTATION: "{\"8080\": 41002}"});
        let (ep, slices) = build(&svc(json!("http")), &[&a, &b]);
        assert_eq!(slices.len(), 2);
        assert_eq!(slices[0]["ports"][0]["port"], 41001);
        assert_eq!(slices[1]["ports"][0]["port"], 41002);
        assert_ne!(slices[0]["metadata"]["name"], slices[1]["metadata"]["name"]);
        assert_eq!(ep["subsets"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn slice_name_is_stable_per_service() {
        let s = svc(json!(1));
        assert_eq!(slice_name(&s), slice_name(&s));
        assert!(slice_name(&s).starts_with("web-"));
    }
}
