//! Built-in kinds, and the 400 decode errors of a Secret's base64 data.

use super::meta::{config_map_key, dns_label, labels, labels_and_annotations, port_name};
use super::util::*;
use super::Cause;
use serde_json::Value;
use std::collections::HashSet;

// === built-in kinds (kubernetes pkg/apis/{core,apps,discovery}/validation) ===

pub(super) const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"]; // sets.List order
pub(super) const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

pub(super) fn port_range(out: &mut Vec<Cause>, field: &str, n: i64) {
    if !(1..=65535).contains(&n) {
        out.push(invalid(field, &n.to_string(), PORT_RANGE));
    }
}

/// ValidatePodSpec, reduced to containers and restartPolicy.
pub(super) fn pod_spec(spec: &Value, path: &str, out: &mut Vec<Cause>) {
    let cpath = format!("{path}.containers");
    let containers = garr(spec, "containers");
    if containers.is_empty() {
        out.push(required(&cpath, ""));
    }
    let mut names = HashSet::new();
    for (i, c) in containers.iter().enumerate() {
        let p = format!("{cpath}[{i}]");
        match sor(c, "name", "") {
            "" => out.push(required(&format!("{p}.name"), "")),
            name => invalids(out, &format!("{p}.name"), name, dns_label(name)),
        }
        if sor(c, "image", "").is_empty() {
            out.push(required(&format!("{p}.image"), ""));
        }
        container_ports(garr(c, "ports"), &format!("{p}.ports"), out);
        for (j, e) in garr(c, "env").iter().enumerate() {
            let (f, n) = (format!("{p}.env[{j}].name"), sor(e, "name", ""));
            if n.is_empty() {
                out.push(required(&f, ""));
            } else if n.chars().any(|ch| !(' '..='~').contains(&ch) || ch == '=') {
                // RelaxedEnvironmentVariableValidation: on by default since 1.32.
                let m = "a valid environment variable name must consist only of printable ASCII characters other than '='";
                out.push(invalid(&f, &q(n), m));
            }
        }
        let policies = ["Always", "IfNotPresent", "Never"];
        enum_check(
            out,
            c,
            "imagePullPolicy",
            &format!("{p}.imagePullPolicy"),
            &policies,
        );
        let name = sor(c, "name", "");
        if !names.insert(name) {
            out.push(duplicate(&format!("{p}.name"), &q(name)));
        }
    }
    let policies = ["Always", "OnFailure", "Never"];
    enum_check(
        out,
        spec,
        "restartPolicy",
        &format!("{path}.restartPolicy"),
        &policies,
    );
}

pub(super) fn container_ports(ports: &[Value], path: &str, out: &mut Vec<Cause>) {
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("{path}[{i}]");
        let name = sor(p, "name", "");
        let msgs = if name.is_empty() {
            vec![]
        } else {
            port_name(name)
        };
        if msgs.is_empty() && !name.is_empty() && !names.insert(name) {
            out.push(duplicate(&format!("{pp}.name"), &q(name)));
        }
        invalids(out, &format!("{pp}.name"), name, msgs);
        match p.get("containerPort").and_then(Value::as_i64).unwrap_or(0) {
            0 => out.push(required(&format!("{pp}.containerPort"), "")),
            n => port_range(out, &format!("{pp}.containerPort"), n),
        }
        if let Some(n) = p
            .get("hostPort")
            .and_then(Value::as_i64)
            .filter(|n| *n != 0)
        {
            port_range(out, &format!("{pp}.hostPort"), n);
        }
        enum_check(out, p, "protocol", &format!("{pp}.protocol"), &PROTOCOLS);
    }
}

/// labels.Selector semantics of a LabelSelector against a label map.
pub(super) fn selector_matches(sel: &Value, labels: &Value) -> bool {
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let ml = sel.get("matchLabels").and_then(Value::as_object);
    ml.into_iter()
        .flatten()
        .all(|(k, v)| label(k) == v.as_str())
        && garr(sel, "matchExpressions").iter().all(|e| {
            let key = sor(e, "key", "");
            let in_values = garr(e, "values")
                .iter()
                .any(|v| label(key).is_some_and(|l| v.as_str() == Some(l)));
            match sor(e, "operator", "") {
                "In" => in_values,
                "NotIn" => !in_values,
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        })
}

/// ValidateDeploymentSpec / ValidateReplicaSetSpec and ValidatePodTemplateSpecForReplicaSet.
pub(super) fn workload(obj: &Value, out: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    if let Some(n) = spec
        .get("replicas")
        .and_then(Value::as_i64)
        .filter(|n| *n < 0)
    {
        out.push(invalid(
            "spec.replicas",
            &n.to_string(),
            "must be greater than or equal to 0",
        ));
    }
    let template = spec.get("template").unwrap_or(&Value::Null);
    let tmeta = template.get("metadata").unwrap_or(&Value::Null);
    let tlabels = tmeta.get("labels").unwrap_or(&Value::Null);
    // A missing selector is labels.Nothing(), which matches no template, so a
    // real server reports the mismatch too; an empty `{}` matches everything.
    let matches = match spec.get("selector").filter(|s| !s.is_null()) {
        None => {
            out.push(required("spec.selector", ""));
            false
        }
        Some(sel) => {
            labels(sel.get("matchLabels"), "spec.selector.matchLabels", out);
            let ml = sel.get("matchLabels").and_then(Value::as_object);
            let empty = ml.is_none_or(|m| m.is_empty()) && garr(sel, "matchExpressions").is_empty();
            if empty {
                out.push(invalid(
                    "spec.selector",
                    &json(sel),
                    "empty selector is invalid for deployment",
                ));
            }
            empty || selector_matches(sel, tlabels)
        }
    };
    if !matches {
        let m = "`selector` does not match template `labels`";
        out.push(invalid("spec.template.metadata.labels", &json(tlabels), m));
    }
    labels_and_annotations(tmeta, "spec.template.metadata", out);
    let tspec = template.get("spec").unwrap_or(&Value::Null);
    pod_spec(tspec, "spec.template.spec", out);
    if sor(tspec, "restartPolicy", "Always") != "Always" {
        enum_check(
            out,
            tspec,
            "restartPolicy",
            "spec.template.spec.restartPolicy",
            &["Always"],
        );
    }
}

/// ValidateService: ports, their names, protocol and targetPort, type.
pub(super) fn service(obj: &Value, out: &mut Vec<Cause>) {
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    let ty = sor(spec, "type", "ClusterIP");
    let headless = ty == "ClusterIP" && gstr(spec, "clusterIP") == Some("None");
    let ports = garr(spec, "ports");
    if ports.is_empty() && !headless && ty != "ExternalName" {
        out.push(required("spec.ports", ""));
    }
    enum_check(
        out,
        spec,
        "type",
        "spec.type",
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    );
    if ty == "ExternalName" && sor(spec, "externalName", "").is_empty() {
        out.push(required("spec.externalName", ""));
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        match sor(p, "name", "") {
            "" if ports.len() > 1 => out.push(required(&format!("{pp}.name"), "")),
            "" => {}
            name => {
                invalids(out, &format!("{pp}.name"), name, dns_label(name));
                if !names.insert(name) {
                    out.push(duplicate(&format!("{pp}.name"), &q(name)));
                }
            }
        }
        port_range(
            out,
            &format!("{pp}.port"),
            p.get("port").and_then(Value::as_i64).unwrap_or(0),
        );
        enum_check(out, p, "protocol", &format!("{pp}.protocol"), &PROTOCOLS);
        // ValidatePortNumOrName; 0 and "" were defaulted to `port`.
        match p.get("targetPort") {
            Some(Value::Number(n)) if n.as_i64() != Some(0) => {
                port_range(out, &format!("{pp}.targetPort"), n.as_i64().unwrap_or(-1))
            }
            Some(Value::String(s)) if !s.is_empty() => {
                invalids(out, &format!("{pp}.targetPort"), s, port_name(s))
            }
            _ => {}
        }
    }
}

/// ValidateConfigMap / ValidateSecret keys (stringData is merged into data
/// first), and the keys a `kubernetes.io/tls` Secret must have.
pub(super) fn data_keys(obj: &Value, out: &mut Vec<Cause>) {
    let mut keys: Vec<&String> = Vec::new();
    for field in ["data", "stringData", "binaryData"] {
        for k in obj
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|m| m.keys())
        {
            if !keys.contains(&k) {
                keys.push(k);
                let f = if field == "binaryData" {
                    "binaryData"
                } else {
                    "data"
                };
                invalids(out, &format!("{f}[{k}]"), k, config_map_key(k));
            }
        }
    }
    if gstr(obj, "type") == Some("kubernetes.io/tls") {
        for need in ["tls.crt", "tls.key"]
            .iter()
            .filter(|n| !keys.iter().any(|k| k == *n))
        {
            out.push(required(&format!("data[{need}]"), ""));
        }
    }
}

/// ValidateEndpointSlice: addressType, non-empty addresses, port names and protocols.
pub(super) fn endpoint_slice(obj: &Value, out: &mut Vec<Cause>) {
    match sor(obj, "addressType", "") {
        "" => out.push(required("addressType", "")),
        _ => enum_check(
            out,
            obj,
            "addressType",
            "addressType",
            &["FQDN", "IPv4", "IPv6"],
        ),
    }
    for (i, e) in garr(obj, "endpoints").iter().enumerate() {
        let (ap, addrs) = (format!("endpoints[{i}].addresses"), garr(e, "addresses"));
        if addrs.is_empty() {
            out.push(required(&ap, "must contain at least 1 address"));
        }
        for (j, a) in addrs
            .iter()
            .enumerate()
            .filter(|_| gstr(obj, "addressType") == Some("IPv4"))
        {
            let a = a.as_str().unwrap_or("");
            if a.parse::<std::net::Ipv4Addr>().is_err() {
                out.push(invalid(
                    &format!("{ap}[{j}]"),
                    &q(a),
                    "must be a valid IPv4 address",
                ));
            }
        }
    }
    let mut names = HashSet::new();
    for (i, p) in garr(obj, "ports").iter().enumerate() {
        let (pp, name) = (format!("ports[{i}]"), sor(p, "name", ""));
        if !name.is_empty() {
            invalids(out, &format!("{pp}.name"), name, dns_label(name));
        }
        if !names.insert(name) {
            out.push(duplicate(&format!("{pp}.name"), &q(name)));
        }
        enum_check(out, p, "protocol", &format!("{pp}.protocol"), &PROTOCOLS);
    }
}

// === decode errors (base64.CorruptInputError) ===

/// The offset Go's base64.StdEncoding.Decode reports for `s`, if invalid.
pub(super) fn base64_error(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let nl = |i: usize| b.get(i).is_some_and(|c| *c == b'\n' || *c == b'\r');
    let mut si = 0;
    loop {
        let mut j = 0; // characters of the current 4-character quantum
        while j < 4 {
            let Some(&c) = b.get(si) else {
                return (j != 0).then(|| si - j); // truncated quantum
            };
            si += 1;
            if c.is_ascii_alphanumeric() || c == b'+' || c == b'/' {
                j += 1;
            } else if !nl(si - 1) {
                if c != b'=' || j < 2 {
                    return Some(si - 1);
                }
                if j == 2 {
                    while nl(si) {
                        si += 1;
                    }
                    match b.get(si) {
                        None => return Some(b.len()),
                        Some(b'=') => si += 1,
                        Some(_) => return Some(si - 1),
                    }
                }
                while nl(si) {
                    si += 1;
                }
                return (si < b.len()).then_some(si); // data after the padding
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::validation::decode_error;
    use crate::apiserver::validation::testutil::*;
    use serde_json::json;

    // Deployment / ReplicaSet / Pod.
    case! { selector_required: "apps", "Deployment", set(deploy(), "/spec/selector", Value::Null) => [
    "spec.selector: Required value",
    r#"spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match template `labels`"#] }
    case! { selector_must_match_template: "apps", "Deployment", set(deploy(), "/spec/selector/matchLabels/app", json!("api")) => [
    r#"spec.template.metadata.labels: Invalid value: {"app":"web"}: `selector` does not match template `labels`"#] }
    case! { replicas_non_negative: "apps", "ReplicaSet", set(deploy(), "/spec/replicas", json!(-1)) => [
    "spec.replicas: Invalid value: -1: must be greater than or equal to 0"] }
    case! { at_least_one_container: "apps", "Deployment", set(deploy(), "/spec/template/spec/containers", json!([])) => [
    "spec.template.spec.containers: Required value"] }
    case! { container_name_unique_and_image_required: "", "Pod", json!({"metadata": meta("p"), "spec": {"containers": [{"name": "web", "image": "a"}, {"name": "web"}]}}) => [
    "spec.containers[1].image: Required value", r#"spec.containers[1].name: Duplicate value: "web""#] }
    case! { container_name_is_label: "", "Pod", json!({"metadata": meta("p"), "spec": {"containers": [{"name": "Web", "image": "a"}]}}) => [
    r#"spec.containers[0].name: Invalid value: "Web": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#] }
    case! { container_port_required_and_range: "apps", "Deployment", set(deploy(), "/spec/template/spec/containers/0/ports", json!([{"containerPort": 0}, {"containerPort": 70000}])) => [
    "spec.template.spec.containers[0].ports[0].containerPort: Required value",
    "spec.template.spec.containers[0].ports[1].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"] }
    case! { container_port_name_and_protocol: "apps", "Deployment", set(deploy(), "/spec/template/spec/containers/0/ports/0", json!({"containerPort": 80, "name": "metrics-endpoint", "protocol": "tcp"})) => [
    r#"spec.template.spec.containers[0].ports[0].name: Invalid value: "metrics-endpoint": must be no more than 15 characters"#,
    r#"spec.template.spec.containers[0].ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP""#] }
    case! { env_name: "apps", "Deployment", set(deploy(), "/spec/template/spec/containers/0/env", json!([{"name": "A=B"}])) => [
    r#"spec.template.spec.containers[0].env[0].name: Invalid value: "A=B": a valid environment variable name must consist only of printable ASCII characters other than '='"#] }
    case! { template_restart_policy_always: "apps", "Deployment", set(deploy(), "/spec/template/spec/restartPolicy", json!("Never")) => [
    r#"spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always""#] }

    // Service.
    case! { service_ports_required: "", "Service", svc(json!({"selector": {"app": "echo"}})) => ["spec.ports: Required value"] }
    case! { service_port_checks: "", "Service", svc(json!({"ports": [{"port": 0, "protocol": "HTTP"}, {"name": "http", "port": 80, "targetPort": "8080"}]})) => [
    "spec.ports[0].name: Required value",
    "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
    r#"spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#,
    r#"spec.ports[1].targetPort: Invalid value: "8080": must contain at least one letter (a-z)"#] }
    case! { service_port_names_unique: "", "Service", svc(json!({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]})) => [
    r#"spec.ports[1].name: Duplicate value: "http""#] }
    case! { service_type_enum: "", "Service", svc(json!({"type": "Ingress", "ports": [{"port": 80}]})) => [
    r#"spec.type: Unsupported value: "Ingress": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#] }

    // ConfigMap, Secret, EndpointSlice.
    case! { config_map_keys: "", "ConfigMap", json!({"metadata": meta("c"), "data": {"..": "x"}}) => [
    r#"data[..]: Invalid value: "..": must not be '..'"#] }
    case! { tls_secret_keys: "", "Secret", json!({"metadata": meta("s"), "type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}}) => [
    "data[tls.key]: Required value"] }
    case! { endpoint_slice_checks: "discovery.k8s.io", "EndpointSlice", json!({"metadata": meta("e"), "addressType": "IP", "endpoints": [{"addresses": []}], "ports": [{"name": "http"}, {"name": "http", "protocol": "HTTP"}]}) => [
    r#"addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6""#,
    "endpoints[0].addresses: Required value: must contain at least 1 address",
    r#"ports[1].name: Duplicate value: "http""#,
    r#"ports[1].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#] }

    /// Built-in type errors are 400s from decoding, not causes.
    #[test]
    fn decode_errors() {
        let env = set(
            deploy(),
            "/spec/template/spec/containers/0/env",
            json!([{"name": "PORT", "value": 8080}]),
        );
        assert_eq!(
            decode_error("apps", "Deployment", &env).as_deref(),
            Some(
                r#"Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal number into Go struct field EnvVar.spec.template.spec.containers.env.value of type string"#
            )
        );
        let replicas = set(deploy(), "/spec/replicas", json!("two"));
        let m = decode_error("apps", "Deployment", &replicas).unwrap_or_default();
        assert!(m.ends_with("cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"), "{m}");
        let port = decode_error("", "Service", &svc(json!({"ports": [{"port": 80.5}]})))
            .unwrap_or_default();
        assert!(port.ends_with("cannot unmarshal number 80.5 into Go struct field ServicePort.spec.ports.port of type int32"), "{port}");
        assert_eq!(decode_error("apps", "Deployment", &deploy()), None);
    }

    /// Secret data is base64, with Go's error offsets.
    #[test]
    fn secret_base64() {
        let err = |v: &str| decode_error("", "Secret", &json!({"data": {"k": v}}));
        assert_eq!(err("aGVsbG8="), None);
        assert_eq!(err("aGVs\nbG8="), None);
        assert_eq!(
            err("hello!").as_deref(),
            Some(
                r#"Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 5"#
            )
        );
        assert!(
            err("abc").is_some_and(|m| m.ends_with("byte 0")),
            "truncated quantum"
        );
        assert!(
            err("aGVsbG8=x").is_some_and(|m| m.ends_with("byte 8")),
            "data after padding"
        );
    }
}
