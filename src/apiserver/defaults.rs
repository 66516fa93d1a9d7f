//! Defaulting, as kube-apiserver and the CRDs' OpenAPI defaults fill fields a manifest leaves
//! out, so `kubectl get -o yaml` shows what a real cluster shows and controllers can rely on the
//! defaults being present.
//!
//! Sources: k8s.io/kubernetes pkg/apis/{core,apps}/v1/defaults.go; Gateway API standard CRDs
//! (`default:` markers in apis/v1/httproute_types.go, gateway_types.go, shared_types.go).

use crate::resources::ResourceDef;
use serde_json::{json, Map, Value};
use std::net::Ipv4Addr;

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_string(), v);
    }
}

fn each_obj(v: Option<&mut Value>) -> impl Iterator<Item = &mut Map<String, Value>> {
    v.and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn obj_mut<'a>(v: &'a mut Value, ptr: &str) -> Option<&'a mut Map<String, Value>> {
    v.pointer_mut(ptr).and_then(Value::as_object_mut)
}

/// Applies defaults for `res` in place. `used_cluster_ips` lists the Service ClusterIPs already
/// taken, so a new Service gets a free one.
pub fn apply(res: &ResourceDef, obj: &mut Value, used_cluster_ips: &dyn Fn() -> Vec<String>) {
    match (res.group, res.kind) {
        ("", "Namespace") => {
            if let Some(o) = obj.as_object_mut() {
                let spec = crate::meta::child_map(o, "spec");
                set_default(spec, "finalizers", json!(["kubernetes"]));
            }
        }
        ("", "Service") => service(obj, used_cluster_ips),
        ("", "Secret") => {
            if let Some(o) = obj.as_object_mut() {
                set_default(o, "type", json!("Opaque"));
            }
        }
        ("", "Pod") => {
            if let Some(spec) = obj_mut(obj, "/spec") {
                pod_spec(spec);
            }
        }
        ("apps", "Deployment") => {
            if let Some(spec) = obj_mut(obj, "/spec") {
                set_default(spec, "replicas", json!(1));
                set_default(spec, "revisionHistoryLimit", json!(10));
                set_default(spec, "progressDeadlineSeconds", json!(600));
                set_default(
                    spec,
                    "strategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
                );
                if let Some(s) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                    if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                        let ru = crate::meta::child_map(s, "rollingUpdate");
                        set_default(ru, "maxSurge", json!("25%"));
                        set_default(ru, "maxUnavailable", json!("25%"));
                    }
                }
            }
            if let Some(spec) = obj_mut(obj, "/spec/template/spec") {
                pod_spec(spec);
            }
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = obj_mut(obj, "/spec") {
                set_default(spec, "replicas", json!(1));
            }
            if let Some(spec) = obj_mut(obj, "/spec/template/spec") {
                pod_spec(spec);
            }
        }
        ("gateway.networking.k8s.io", "Gateway") => {
            for l in each_obj(obj.pointer_mut("/spec/listeners")) {
                set_default(l, "allowedRoutes", json!({"namespaces": {"from": "Same"}}));
                if let Some(ar) = l.get_mut("allowedRoutes").and_then(Value::as_object_mut) {
                    set_default(ar, "namespaces", json!({"from": "Same"}));
                    if let Some(ns) = ar.get_mut("namespaces").and_then(Value::as_object_mut) {
                        set_default(ns, "from", json!("Same"));
                    }
                }
                if let Some(tls) = l.get_mut("tls").and_then(Value::as_object_mut) {
                    set_default(tls, "mode", json!("Terminate"));
                    for r in each_obj(tls.get_mut("certificateRefs")) {
                        set_default(r, "group", json!(""));
                        set_default(r, "kind", json!("Secret"));
                    }
                }
            }
            for a in each_obj(obj.pointer_mut("/spec/addresses")) {
                set_default(a, "type", json!("IPAddress"));
            }
        }
        ("gateway.networking.k8s.io", "HTTPRoute") | ("gateway.networking.k8s.io", "GRPCRoute") => {
            route(res.kind == "HTTPRoute", obj)
        }
        _ => {}
    }
}

fn pod_spec(spec: &mut Map<String, Value>) {
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        for c in each_obj(spec.get_mut(list)) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or("");
            // IfNotPresent unless the tag is :latest or missing (core/v1 SetDefaults_Container).
            let last = image.rsplit('/').next().unwrap_or(image);
            let policy = if !last.contains(':') && !image.contains('@') || last.ends_with(":latest") {
                "Always"
            } else {
                "IfNotPresent"
            };
            set_default(c, "imagePullPolicy", json!(policy));
            set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
            set_default(c, "terminationMessagePolicy", json!("File"));
            set_default(c, "resources", json!({}));
            for p in each_obj(c.get_mut("ports")) {
                set_default(p, "protocol", json!("TCP"));
            }
        }
    }
}

fn service(obj: &mut Value, used_cluster_ips: &dyn Fn() -> Vec<String>) {
    let Some(spec) = obj_mut(obj, "/spec") else {
        return;
    };
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let external_name = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
    for p in each_obj(spec.get_mut("ports")) {
        set_default(p, "protocol", json!("TCP"));
        if let Some(port) = p.get("port").cloned() {
            set_default(p, "targetPort", port);
        }
    }
    if external_name {
        return;
    }
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    set_default(spec, "ipFamilies", json!(["IPv4"]));
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    let needs_ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if needs_ip {
        let used = used_cluster_ips();
        // The usual kubeadm service CIDR; nothing listens on these addresses (see sim for the
        // loopback addresses that do answer).
        let ip = (1u32..65_534)
            .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + i).to_string())
            .find(|ip| !used.contains(ip))
            .unwrap_or_else(|| "10.96.255.254".into());
        spec.insert("clusterIP".into(), json!(ip));
    }
    if let Some(ip) = spec.get("clusterIP").cloned() {
        set_default(spec, "clusterIPs", json!([ip]));
    }
}

fn route(http: bool, obj: &mut Value) {
    for p in each_obj(obj.pointer_mut("/spec/parentRefs")) {
        set_default(p, "group", json!("gateway.networking.k8s.io"));
        set_default(p, "kind", json!("Gateway"));
    }
    let Some(spec) = obj_mut(obj, "/spec") else {
        return;
    };
    if http {
        set_default(spec, "rules", json!([{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}]));
    }
    for rule in each_obj(spec.get_mut("rules")) {
        if http {
            set_default(rule, "matches", json!([{"path": {"type": "PathPrefix", "value": "/"}}]));
            for m in each_obj(rule.get_mut("matches")) {
                set_default(m, "path", json!({"type": "PathPrefix", "value": "/"}));
                if let Some(p) = m.get_mut("path").and_then(Value::as_object_mut) {
                    set_default(p, "type", json!("PathPrefix"));
                    set_default(p, "value", json!("/"));
                }
                for list in ["headers", "queryParams"] {
                    for h in each_obj(m.get_mut(list)) {
                        set_default(h, "type", json!("Exact"));
                    }
                }
            }
        }
        for b in each_obj(rule.get_mut("backendRefs")) {
            set_default(b, "group", json!(""));
            set_default(b, "kind", json!("Service"));
            set_default(b, "weight", json!(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::kinds;

    #[test]
    fn service_gets_type_protocol_target_port_and_a_free_cluster_ip() {
        let mut svc = json!({"spec": {"ports": [{"port": 8080}]}});
        apply(kinds::services(), &mut svc, &|| vec!["10.96.0.1".into()]);
        assert_eq!(svc["spec"]["type"], "ClusterIP");
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.2");
        let mut headless = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        apply(kinds::services(), &mut headless, &Vec::new);
        assert_eq!(headless["spec"]["clusterIP"], "None");
    }

    #[test]
    fn httproute_gets_the_crd_defaults() {
        let mut r = json!({"spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}});
        apply(kinds::httproutes(), &mut r, &Vec::new);
        assert_eq!(r["spec"]["parentRefs"][0]["kind"], "Gateway");
        assert_eq!(r["spec"]["rules"][0]["matches"], json!([{"path": {"type": "PathPrefix", "value": "/"}}]));
        assert_eq!(r["spec"]["rules"][0]["backendRefs"][0]["weight"], 1);
    }

    #[test]
    fn gateway_listener_allows_same_namespace_by_default() {
        let mut g = json!({"spec": {"listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}});
        apply(kinds::gateways(), &mut g, &Vec::new);
        assert_eq!(g["spec"]["listeners"][0]["allowedRoutes"], json!({"namespaces": {"from": "Same"}}));
    }

    #[test]
    fn deployment_defaults_and_image_pull_policy() {
        let mut d = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "x/y:latest"}, {"name": "b", "image": "x/y:v1"}, {"name": "c", "image": "localhost:5000/y"}]}}}});
        apply(kinds::deployments(), &mut d, &Vec::new);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let cs = &d["spec"]["template"]["spec"]["containers"];
        assert_eq!(cs[0]["imagePullPolicy"], "Always");
        assert_eq!(cs[1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(cs[2]["imagePullPolicy"], "Always");
    }
}
