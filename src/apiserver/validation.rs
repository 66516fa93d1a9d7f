//! Admission validation: rejects bad objects the way a real cluster does, with
//! 422 `causes` that name the field and carry the real server's wording.
//!
//! # Sources
//! - **Built-in kinds** (Namespace, Pod, Deployment, ReplicaSet, Service,
//!   ConfigMap, Secret, EndpointSlice): hand-written checks after
//!   `k8s.io/kubernetes/pkg/apis/{core,apps,discovery}/validation`, messages
//!   from `k8s.io/apimachinery/pkg/util/validation`. Only what a user of the AGC
//!   tutorials could plausibly get wrong, not all of Kubernetes.
//! - **Gateway API and AGC CRDs**: the embedded CRD schemas (`schemas/*.yaml`, see
//!   [`super::openapi`]) checked by the [`crate::schema`] engine the way
//!   apiextensions-apiserver runs kube-openapi (type, required, enum, bounds,
//!   pattern, list types), then the CRDs' CEL rules as Rust predicates keyed by
//!   the rule messages the schemas carry. The AGC CRDs declare no CEL; their
//!   semantic checks (`override`, intervals, ports) are the controller's,
//!   reported as status conditions.
//!
//! # Not 422s
//! Wrong JSON types in built-in kinds fail decoding with a 400 before any
//! validation; [`decode_error`] gives that message (from the Kubernetes v1.33
//! definitions). Undeclared fields are the handlers' (`fieldValidation`). In
//! CRDs wrong types are causes.

use super::openapi::{self, KindSchema};
use crate::schema::{go_json, go_quote};
use regex::Regex;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};

pub use crate::schema::{
    Cause, DUPLICATE, FORBIDDEN, INVALID, NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID,
};

const GW: &str = "gateway.networking.k8s.io";
#[cfg(test)]
const AGC: &str = "alb.networking.azure.io";

/// Validates a whole object of the given kind (group is "" for core, "apps",
/// "discovery.k8s.io", "gateway.networking.k8s.io", "alb.networking.azure.io").
/// Returns every problem found; empty = valid. Other kinds get metadata checks
/// only. Expects defaults applied; an absent `metadata.namespace` is not reported.
pub fn validate(group: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let (name_rule, namespaced): (fn(&str) -> Vec<String>, bool) = match (group, kind) {
        ("", "Namespace") => (dns_label, false),
        ("", "Service") => (dns1035, true), // ValidateServiceName: must start with a letter
        (GW, "GatewayClass") => (dns_subdomain, false),
        _ => (dns_subdomain, true),
    };
    validate_meta(obj, name_rule, namespaced, &mut out);
    match (group, kind) {
        ("", "Pod") => pod_spec(obj.get("spec").unwrap_or(&Value::Null), "spec", &mut out),
        ("apps", "Deployment" | "ReplicaSet") => workload(obj, &mut out),
        ("", "Service") => service(obj, &mut out),
        ("", "ConfigMap" | "Secret") => data_keys(obj, &mut out),
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice(obj, &mut out),
        _ => {
            if let Some(ks) = openapi::schema(group, kind).filter(|ks| ks.crd) {
                validate_crd(&ks, kind, obj, &mut out);
            }
        }
    }
    out
}

/// Builds the Status message kubectl prints, as apiserver's errors.NewInvalid:
/// `<Kind> "<name>" is invalid: <field>: <message>`, or `[a, b]` for several
/// causes (repeated lines once, like ErrorList.ToAggregate). Give it the
/// qualified kind ([`qualified_kind`]) to match a real server exactly.
pub fn invalid_message(kind: &str, name: &str, causes: &[Cause]) -> String {
    let mut seen = HashSet::new();
    let lines: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .filter(|l| seen.insert(l.clone()))
        .collect();
    let agg = match lines.as_slice() {
        [] => "<nil>".to_string(), // a nil Aggregate
        [one] => one.clone(),
        _ => format!("[{}]", lines.join(", ")),
    };
    format!("{kind} {} is invalid: {agg}", q(name))
}

/// schema.GroupKind.String(): `Deployment.apps`, `Gateway.gateway.networking.k8s.io`, `Service`.
pub fn qualified_kind(group: &str, kind: &str) -> String {
    match group {
        "" => kind.to_string(),
        g => format!("{kind}.{g}"),
    }
}

/// The 400 BadRequest message of a built-in object that does not decode (a
/// string where an int32 goes, a number for an env value, bad base64 in a
/// Secret), e.g. `Deployment in version "v1" cannot be handled as a Deployment:
/// json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas
/// of type int32`. `None` when it decodes. Check this before [`validate`].
pub fn decode_error(group: &str, kind: &str, obj: &Value) -> Option<String> {
    let typed = openapi::schema(group, kind)
        .filter(|ks| !ks.crd)
        .and_then(|ks| ks.schema.decode_error(obj));
    let err = typed.or_else(|| match (group, kind) {
        // Secret.data is []byte, which encoding/json base64-decodes (StdEncoding).
        ("", "Secret") => obj.get("data").and_then(Value::as_object).and_then(|d| {
            let mut values = d.values().filter_map(Value::as_str);
            values
                .find_map(base64_error)
                .map(|n| format!("illegal base64 data at input byte {n}"))
        }),
        _ => None,
    })?;
    Some(format!(
        "{kind} in version \"v1\" cannot be handled as a {kind}: {err}"
    ))
}

// === rendering (apimachinery pkg/util/validation/field/errors.go) ===

/// Go's `%q`.
fn q(s: &str) -> String {
    go_quote(s)
}

/// Go's json.Marshal: compact, map keys sorted.
fn json(v: &Value) -> String {
    go_json(v)
}

fn cause(reason: &'static str, field: &str, message: String) -> Cause {
    Cause {
        reason,
        field: field.to_string(),
        message,
    }
}
fn invalid(field: &str, shown: &str, detail: &str) -> Cause {
    cause(INVALID, field, format!("Invalid value: {shown}: {detail}"))
}
/// One Invalid cause per message, as the `for _, msg := range IsX(v)` loops do.
fn invalids(out: &mut Vec<Cause>, field: &str, v: &str, msgs: Vec<String>) {
    out.extend(msgs.iter().map(|m| invalid(field, &q(v), m)));
}
fn required(field: &str, detail: &str) -> Cause {
    let sep = if detail.is_empty() { "" } else { ": " };
    cause(REQUIRED, field, format!("Required value{sep}{detail}"))
}
fn duplicate(field: &str, shown: &str) -> Cause {
    cause(DUPLICATE, field, format!("Duplicate value: {shown}"))
}
fn not_supported(field: &str, shown: &str, allowed: &[&str]) -> Cause {
    let allowed: Vec<String> = allowed.iter().map(|a| q(a)).collect();
    let m = format!(
        "Unsupported value: {shown}: supported values: {}",
        allowed.join(", ")
    );
    cause(NOT_SUPPORTED, field, m)
}
/// NotSupported for a set string field outside `allowed`.
fn enum_check(out: &mut Vec<Cause>, v: &Value, key: &str, field: &str, allowed: &[&str]) {
    if let Some(s) = gstr(v, key).filter(|s| !allowed.contains(s)) {
        out.push(not_supported(field, &q(s), allowed));
    }
}
fn too_long(field: &str, max: i64) -> Cause {
    cause(
        TOO_LONG,
        field,
        format!("Too long: may not be more than {max} bytes"),
    )
}

// === JSON access that tolerates any shape ===

fn gstr<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k)?.as_str()
}
fn sor<'a>(v: &'a Value, k: &str, default: &'a str) -> &'a str {
    gstr(v, k).unwrap_or(default)
}
fn garr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).map_or(&[], list)
}
fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}
fn has(v: &Value, k: &str) -> bool {
    v.get(k).is_some_and(|x| !x.is_null())
}
/// Compiled-once regexes; every pattern is a constant of this module.
fn re(p: &str) -> &'static Regex {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static Regex>>> = OnceLock::new();
    let mut m = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    m.entry(p.to_string())
        .or_insert_with(|| Box::leak(Box::new(Regex::new(p).expect("constant pattern compiles"))))
}
fn full(fmt: &str, v: &str) -> bool {
    re(&format!("^{fmt}$")).is_match(v)
}

// === name formats (apimachinery pkg/util/validation/validation.go) ===

const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1035_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const QNAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QNAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const CM_KEY_FMT: &str = "[-._a-zA-Z0-9]+";

/// RegexError. Go appends `'x', ` per example joined by ` or `, hence the double space.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        ex.join(" or ")
    )
}
/// MaxLenError and a RegexError: the shape shared by the DNS-style checks.
fn format_errors(v: &str, max: usize, fmt: &str, msg: &str, examples: &[&str]) -> Vec<String> {
    let mut e = Vec::new();
    if v.len() > max {
        e.push(format!("must be no more than {max} characters"));
    }
    if !full(fmt, v) {
        e.push(regex_error(msg, fmt, examples));
    }
    e
}
fn dns_label(v: &str) -> Vec<String> {
    let msg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
    let mut e = format_errors(v, 63, LABEL_FMT, msg, &["my-name", "123-abc"]);
    if full(SUBDOMAIN_FMT, v) && !full(LABEL_FMT, v) {
        e.retain(|m| !m.starts_with(msg)); // a valid subdomain: it must be the dots
        e.push("must not contain dots".to_string());
    }
    e
}
fn dns_subdomain(v: &str) -> Vec<String> {
    let msg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
    format_errors(v, 253, SUBDOMAIN_FMT, msg, &["example.com"])
}
fn dns1035(v: &str) -> Vec<String> {
    let msg = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
    format_errors(v, 63, DNS1035_FMT, msg, &["my-name", "abc-123"])
}
/// IsQualifiedName: label and annotation keys.
fn qualified_name(v: &str) -> Vec<String> {
    let examples = ["MyName", "my.name", "123-abc"];
    let (prefix, name) = match v.split('/').collect::<Vec<_>>()[..] {
        [n] => (None, n),
        [p, n] => (Some(p), n),
        _ => {
            let r = regex_error(QNAME_MSG, QNAME_FMT, &examples);
            return vec![format!("a qualified name {r} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")];
        }
    };
    let mut e: Vec<String> = match prefix {
        Some("") => vec!["prefix part must be non-empty".to_string()],
        Some(p) => dns_subdomain(p)
            .into_iter()
            .map(|m| format!("prefix part {m}"))
            .collect(),
        None => vec![],
    };
    if name.is_empty() {
        e.push("name part must be non-empty".to_string());
    }
    let msgs = format_errors(name, 63, QNAME_FMT, QNAME_MSG, &examples);
    e.extend(msgs.into_iter().map(|m| format!("name part {m}")));
    e
}
fn label_value(v: &str) -> Vec<String> {
    let msg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
    format_errors(
        v,
        63,
        LABEL_VALUE_FMT,
        msg,
        &["MyValue", "my_value", "12345"],
    )
}
/// IsValidPortName (IANA_SVC_NAME).
fn port_name(v: &str) -> Vec<String> {
    let checks = [
        (v.len() > 15, "must be no more than 15 characters"),
        (
            !full("[-a-z0-9]+", v),
            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ),
        (
            !v.bytes().any(|b| b.is_ascii_lowercase()),
            "must contain at least one letter (a-z)",
        ),
        (v.contains("--"), "must not contain consecutive hyphens"),
        (
            v.starts_with('-') || v.ends_with('-'),
            "must not begin or end with a hyphen",
        ),
    ];
    checks
        .iter()
        .filter(|c| c.0)
        .map(|c| c.1.to_string())
        .collect()
}
/// IsConfigMapKey: ConfigMap and Secret keys.
fn config_map_key(v: &str) -> Vec<String> {
    let msg = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'";
    let mut e = format_errors(
        v,
        253,
        CM_KEY_FMT,
        msg,
        &["key.name", "KEY_NAME", "key-name"],
    );
    match v {
        "." | ".." => e.push(format!("must not be '{v}'")),
        _ if v.starts_with("..") => e.push("must not start with '..'".to_string()),
        _ => {}
    }
    e
}

// === metadata (apimachinery pkg/api/validation/objectmeta.go) ===

fn validate_meta(
    obj: &Value,
    name_rule: fn(&str) -> Vec<String>,
    namespaced: bool,
    out: &mut Vec<Cause>,
) {
    let m = obj.get("metadata").unwrap_or(&Value::Null);
    let generate = sor(m, "generateName", "");
    if !generate.is_empty() {
        // The random suffix follows a trailing '-' (maskTrailingDash).
        let masked = match generate.strip_suffix('-') {
            Some(p) if !p.is_empty() => format!("{p}a"),
            _ => generate.to_string(),
        };
        invalids(out, "metadata.generateName", generate, name_rule(&masked));
    }
    match sor(m, "name", "") {
        // A real server has named the object from generateName by now.
        "" if generate.is_empty() => out.push(required(
            "metadata.name",
            "name or generateName is required",
        )),
        "" => {}
        name => invalids(out, "metadata.name", name, name_rule(name)),
    }
    let ns = sor(m, "namespace", "");
    if namespaced && !ns.is_empty() {
        invalids(out, "metadata.namespace", ns, dns_label(ns));
    }
    labels_and_annotations(m, "metadata", out);
}

/// ValidateLabels: errors name the map, not the key.
fn labels(map: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
        invalids(out, path, k, qualified_name(k));
        let v = v.as_str().unwrap_or("");
        invalids(out, path, v, label_value(v));
    }
}

/// Labels, and ValidateAnnotations: keys compared lowercased, 256 KiB in total.
fn labels_and_annotations(meta: &Value, path: &str, out: &mut Vec<Cause>) {
    labels(meta.get("labels"), &format!("{path}.labels"), out);
    let (apath, mut size) = (format!("{path}.annotations"), 0);
    for (k, v) in meta
        .get("annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        invalids(out, &apath, k, qualified_name(&k.to_lowercase()));
        size += k.len() + v.as_str().map_or(0, str::len);
    }
    if size > 256 * 1024 {
        out.push(too_long(&apath, 256 * 1024)); // TotalAnnotationSizeLimitB
    }
}

// === built-in kinds (kubernetes pkg/apis/{core,apps,discovery}/validation) ===

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"]; // sets.List order
const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

fn port_range(out: &mut Vec<Cause>, field: &str, n: i64) {
    if !(1..=65535).contains(&n) {
        out.push(invalid(field, &n.to_string(), PORT_RANGE));
    }
}

/// ValidatePodSpec, reduced to containers and restartPolicy.
fn pod_spec(spec: &Value, path: &str, out: &mut Vec<Cause>) {
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

fn container_ports(ports: &[Value], path: &str, out: &mut Vec<Cause>) {
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
fn selector_matches(sel: &Value, labels: &Value) -> bool {
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
fn workload(obj: &Value, out: &mut Vec<Cause>) {
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
fn service(obj: &Value, out: &mut Vec<Cause>) {
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
fn data_keys(obj: &Value, out: &mut Vec<Cause>) {
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
fn endpoint_slice(obj: &Value, out: &mut Vec<Cause>) {
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
fn base64_error(s: &str) -> Option<usize> {
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

// === CRD schemas (apiextensions-apiserver) and their CEL rules ===

type Check = Box<dyn Fn(&Value) -> bool + Send + Sync>;

/// The embedded structural schema's pass, then the CEL pass: a failing rule is
/// `Invalid value: "<schema type>": <message>` at its node, a node's rules before its
/// children's (cel/validation.go). CEL needs a well-shaped object: after a blocking error the
/// real server reports that the rules were not checked (customresource/strategy.go
/// hasBlockingErr). Kinds whose schema declares no rule (the AGC CRDs) have no CEL validator.
fn validate_crd(ks: &KindSchema, kind: &str, obj: &Value, out: &mut Vec<Cause>) {
    out.extend(ks.schema.validate(obj));
    if !ks.schema.has_validations() {
        return;
    }
    if out
        .iter()
        .any(|c| [NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID].contains(&c.reason))
    {
        let m = "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";
        out.push(cause(INVALID, "<nil>", m.to_string()));
        return;
    }
    let checks = cel_checks(kind);
    ks.schema.visit_validations(obj, &mut |site| {
        if let Some(check) = checks.get(site.message) {
            if !check(site.value) {
                out.push(invalid(site.field, &q(site.type_name), site.message));
            }
        }
    });
}

/// The CRDs' CEL rules as Rust predicates, keyed by the rule's message (which is how the schema
/// places them). A rule without a predicate here is not checked (`every_rule_is_checked`).
fn cel_checks(kind: &str) -> &'static HashMap<String, Check> {
    macro_rules! once {
        ($build:expr) => {{
            static CELL: OnceLock<HashMap<String, Check>> = OnceLock::new();
            CELL.get_or_init(|| {
                let rules: Vec<Vec<Rule>> = $build;
                rules
                    .into_iter()
                    .flatten()
                    .map(|(_, m, c)| (m, c))
                    .collect()
            })
        }};
    }
    match kind {
        "Gateway" => once!(vec![gateway_rules(), infrastructure_rules()]),
        // `self == oldSelf` is a transition rule: never false on create.
        "GatewayClass" => once!(vec![vec![rule("", "Value is immutable", |_| true)]]),
        "HTTPRoute" => once!(vec![
            route_rules(false),
            filter_rules(HTTP_FILTER_FIELDS),
            path_modifier_rules(),
            mirror_rules(),
            backend_ref_rules(),
            cors_rules(),
        ]),
        "GRPCRoute" => once!(vec![
            route_rules(true),
            filter_rules(GRPC_FILTER_FIELDS),
            mirror_rules(),
            backend_ref_rules(),
        ]),
        _ => once!(Vec::new()),
    }
}

const HTTP_FILTER_FIELDS: &[(&str, &str)] = &[
    ("cors", "CORS"),
    ("requestHeaderModifier", "RequestHeaderModifier"),
    ("responseHeaderModifier", "ResponseHeaderModifier"),
    ("requestMirror", "RequestMirror"),
    ("requestRedirect", "RequestRedirect"),
    ("urlRewrite", "URLRewrite"),
    ("extensionRef", "ExtensionRef"),
];
/// GRPCRouteFilter config fields and the `type` naming each.
const GRPC_FILTER_FIELDS: &[(&str, &str)] = &[
    ("requestHeaderModifier", "RequestHeaderModifier"),
    ("responseHeaderModifier", "ResponseHeaderModifier"),
    ("requestMirror", "RequestMirror"),
    ("extensionRef", "ExtensionRef"),
];
type Rule = (&'static str, String, Check);

fn rule(
    path: &'static str,
    msg: impl Into<String>,
    f: impl Fn(&Value) -> bool + Send + Sync + 'static,
) -> Rule {
    (path, msg.into(), Box::new(f))
}
/// CEL `exists_one`.
fn exactly_one(xs: &[Value], f: impl Fn(&Value) -> bool) -> bool {
    xs.iter().filter(|x| f(x)).count() == 1
}
/// CEL `self.all(x, ...)` over a list.
fn all(xs: &Value, f: impl Fn(&Value) -> bool) -> bool {
    list(xs).iter().all(f)
}

// The CEL rule tables below are laid out one rule per entry: path, message, predicate.

/// Gateway listeners and addresses (gateway_types.go). `tls.mode` defaults to
/// Terminate and an address `type` to IPAddress.
#[rustfmt::skip]
fn gateway_rules() -> Vec<Rule> {
    let proto = |l: &Value, ps: &[&str]| ps.iter().any(|p| p.eq_ignore_ascii_case(sor(l, "protocol", "")));
    let mode = |l: &Value| l.get("tls").map_or("", |t| sor(t, "mode", "Terminate")).to_string();
    let unique = |addrs: &Value, ty: &str| {
        let is = |a: &Value| sor(a, "type", "IPAddress") == ty && has(a, "value");
        all(addrs, |a1| !is(a1) || exactly_one(list(addrs), |a2| is(a2) && a1.get("value") == a2.get("value")))
    };
    let same = |a: &Value, b: &Value| ["port", "protocol", "hostname"].iter().all(|k| a.get(*k) == b.get(*k));
    let host = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    let l = "spec.listeners";
    vec![
        rule(l, "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']",
            move |ls| all(ls, |l| !proto(l, &["HTTP", "TCP", "UDP"]) || !has(l, "tls"))),
        rule(l, "tls mode must be Terminate for protocol HTTPS",
            move |ls| all(ls, |l| !(proto(l, &["HTTPS"]) && has(l, "tls")) || ["", "Terminate"].contains(&mode(l).as_str()))),
        rule(l, "tls mode must be set for protocol TLS",
            move |ls| all(ls, |l| !proto(l, &["TLS"]) || !mode(l).is_empty())),
        rule(l, "hostname must not be specified for protocols ['TCP', 'UDP']",
            move |ls| all(ls, |l| !proto(l, &["TCP", "UDP"]) || sor(l, "hostname", "").is_empty())),
        rule(l, "Listener name must be unique within the Gateway",
            |ls| all(ls, |l1| exactly_one(list(ls), |l2| l1.get("name") == l2.get("name")))),
        rule(l, "Combination of port, protocol and hostname must be unique for each listener",
            move |ls| all(ls, |l1| exactly_one(list(ls), |l2| same(l1, l2)))),
        rule("spec.listeners[].tls", "certificateRefs or options must be specified when mode is Terminate",
            |t| sor(t, "mode", "Terminate") != "Terminate" || !garr(t, "certificateRefs").is_empty()
                || t.get("options").and_then(Value::as_object).is_some_and(|o| !o.is_empty())),
        rule("spec.addresses[]", format!("Hostname value must be empty or contain only valid characters (matching {host})"),
            move |a| sor(a, "type", "IPAddress") != "Hostname" || gstr(a, "value").is_none_or(|v| re(host).is_match(v))),
        rule("spec.addresses", "IPAddress values must be unique", move |a| unique(a, "IPAddress")),
        rule("spec.addresses", "Hostname values must be unique", move |a| unique(a, "Hostname")),
    ]
}

/// HTTPRoute / GRPCRoute: parentRefs (shared_types.go), rules and filter lists
/// (httproute_types.go, grpcroute_types.go). A parentRef's group/kind default
/// to gateway.networking.k8s.io/Gateway; an HTTP rule's absent `matches` to one match.
#[rustfmt::skip]
fn route_rules(grpc: bool) -> Vec<Rule> {
    let same = |p1: &Value, p2: &Value| p1.get("name") == p2.get("name")
        && ["group", "kind", "namespace"].iter().zip([GW, "Gateway", ""]).all(|(k, d)| sor(p1, k, d) == sor(p2, k, d));
    let sec = |p: &Value| sor(p, "sectionName", "").to_string();
    let count = move |r: &Value| r.get("matches").map_or(usize::from(!grpc), |m| list(m).len());
    let mut rules = vec![
        rule("spec.parentRefs", "sectionName must be specified when parentRefs includes 2 or more references to the same parent",
            move |ps| all(ps, |p1| all(ps, |p2| !same(p1, p2) || sec(p1).is_empty() == sec(p2).is_empty()))),
        rule("spec.parentRefs", "sectionName must be unique when parentRefs includes 2 or more references to the same parent",
            move |ps| all(ps, |p1| exactly_one(list(ps), |p2| same(p1, p2) && sec(p1) == sec(p2)))),
        rule("spec.rules", "While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128",
            move |rs| list(rs).iter().take(16).map(count).sum::<usize>() <= 128),
    ];
    for path in ["spec.rules[].filters", "spec.rules[].backendRefs[].filters"] {
        rules.extend(filter_list_rules(path, grpc));
    }
    rules.extend(if grpc { grpc_method_rules() } else { http_rules() });
    rules
}

/// HTTPRoute rules, matches and timeouts. A match's absent `path` defaults to PathPrefix "/".
#[rustfmt::skip]
fn http_rules() -> Vec<Rule> {
    fn one_prefix_match(r: &Value) -> bool {
        r.get("matches").is_none_or(|m| list(m).len() == 1
            && list(m)[0].get("path").is_none_or(|p| sor(p, "type", "PathPrefix") == "PathPrefix"))
    }
    fn prefix_mod(f: &Value, filter: &str) -> bool {
        let path = f.get(filter).and_then(|x| x.get("path"));
        path.is_some_and(|p| sor(p, "type", "") == "ReplacePrefixMatch" && has(p, "replacePrefixMatch"))
    }
    fn core(p: &Value) -> bool {
        matches!(sor(p, "type", "PathPrefix"), "Exact" | "PathPrefix")
    }
    fn val(p: &Value) -> &str {
        sor(p, "value", "/")
    }
    let (r, at, when) = ("spec.rules[]", "spec.rules[].matches[].path", " when type one of ['Exact', 'PathPrefix']");
    let chars = r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$";
    let mut rules = vec![
        rule("spec.rules", "Rule name must be unique within the route",
            |rs| all(rs, |r1| !has(r1, "name") || exactly_one(list(rs), |r2| has(r2, "name") && r1.get("name") == r2.get("name")))),
        rule(r, "RequestRedirect filter must not be used together with backendRefs",
            |r| garr(r, "backendRefs").is_empty() || garr(r, "filters").iter().all(|f| !has(f, "requestRedirect"))),
    ];
    for (f, name) in [("requestRedirect", "RequestRedirect"), ("urlRewrite", "URLRewrite")] {
        rules.push(rule(r, format!("When using {name} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"),
            move |r| !exactly_one(garr(r, "filters"), |x| prefix_mod(x, f)) || one_prefix_match(r)));
    }
    for (f, name) in [("requestRedirect", "when using RequestRedirect"), ("urlRewrite", "When using URLRewrite")] {
        rules.push(rule(r, format!("Within backendRefs, {name} filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"),
            move |r| !exactly_one(garr(r, "backendRefs"), |b| exactly_one(garr(b, "filters"), |x| prefix_mod(x, f))) || one_prefix_match(r)));
    }
    rules.push(rule(at, format!("value must be an absolute path and start with '/'{when}"), |p| !core(p) || val(p).starts_with('/')));
    for bad in ["//", "/./", "/../", "%2f", "%2F", "#"] {
        rules.push(rule(at, format!("must not contain '{bad}'{when}"), move |p| !core(p) || !val(p).contains(bad)));
    }
    for bad in ["/..", "/."] {
        rules.push(rule(at, format!("must not end with '{bad}'{when}"), move |p| !core(p) || !val(p).ends_with(bad)));
    }
    rules.push(rule(at, "type must be one of ['Exact', 'PathPrefix', 'RegularExpression']",
        |p| matches!(sor(p, "type", "PathPrefix"), "Exact" | "PathPrefix" | "RegularExpression")));
    rules.push(rule(at, format!("must only contain valid characters (matching {chars}) for types ['Exact', 'PathPrefix']"),
        move |p| !core(p) || re(chars).is_match(val(p))));
    rules.push(rule("spec.rules[].timeouts", "backendRequest timeout cannot be longer than request timeout", |t| {
        let d = |k| gstr(t, k).and_then(gw_duration_ms);
        !matches!((d("request"), d("backendRequest")), (Some(r), Some(b)) if r != 0 && b > r)
    }));
    rules
}

/// GRPCMethodMatch; `type` defaults to Exact.
#[rustfmt::skip]
fn grpc_method_rules() -> Vec<Rule> {
    let exact = |m: &Value, field: &str, pattern: &str| {
        sor(m, "type", "Exact") != "Exact" || gstr(m, field).is_none_or(|s| re(pattern).is_match(s))
    };
    let (at, service, method) = ("spec.rules[].matches[].method", r"^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$", "^[A-Za-z_][A-Za-z_0-9]*$");
    vec![
        rule(at, "One or both of 'service' or 'method' must be specified", |m| has(m, "service") || has(m, "method")),
        rule(at, format!("service must only contain valid characters (matching {service})"), move |m| exact(m, "service", service)),
        rule(at, format!("method must only contain valid characters (matching {method})"), move |m| exact(m, "method", method)),
    ]
}

/// A `filters` list: RequestRedirect and URLRewrite exclude each other, no type repeats.
#[rustfmt::skip]
fn filter_list_rules(at: &'static str, grpc: bool) -> Vec<Rule> {
    fn count(fs: &Value, ty: &str) -> usize {
        list(fs).iter().filter(|f| sor(f, "type", "") == ty).count()
    }
    let mut rules = vec![];
    if !grpc {
        rules.push(rule(at, "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both",
            |fs| count(fs, "RequestRedirect") == 0 || count(fs, "URLRewrite") == 0));
    }
    let repeat: &[&'static str] = match grpc {
        true => &["RequestHeaderModifier", "ResponseHeaderModifier"],
        false => &["CORS", "RequestHeaderModifier", "ResponseHeaderModifier", "RequestRedirect", "URLRewrite"],
    };
    for &ty in repeat {
        rules.push(rule(at, format!("{ty} filter cannot be repeated"), move |fs| count(fs, ty) <= 1));
    }
    rules
}

/// A filter's `type` names the one config field that is set.
#[rustfmt::skip]
fn filter_rules(fields: &'static [(&'static str, &'static str)]) -> Vec<Rule> {
    let mut rules = vec![];
    for &(field, ty) in fields {
        let is = move |f: &Value| sor(f, "type", "") == ty;
        rules.push(rule("", format!("filter.{field} must be nil if the filter.type is not {ty}"), move |f| !has(f, field) || is(f)));
        rules.push(rule("", format!("filter.{field} must be specified for {ty} filter.type"), move |f| has(f, field) || !is(f)));
    }
    rules
}

/// HTTPPathModifier: `type` and the one value it names go together.
#[rustfmt::skip]
fn path_modifier_rules() -> Vec<Rule> {
    let mut rules = vec![];
    for (ty, field) in [("ReplaceFullPath", "replaceFullPath"), ("ReplacePrefixMatch", "replacePrefixMatch")] {
        let is = move |p: &Value| sor(p, "type", "") == ty;
        rules.push(rule("", format!("{field} must be specified when type is set to '{ty}'"), move |p| !is(p) || has(p, field)));
        rules.push(rule("", format!("type must be '{ty}' when {field} is set"), move |p| !has(p, field) || is(p)));
    }
    rules
}

/// HTTPRequestMirrorFilter and its Fraction (denominator defaults to 100).
#[rustfmt::skip]
fn mirror_rules() -> Vec<Rule> {
    vec![
        rule("", "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter",
            |m| !(has(m, "percent") && has(m, "fraction"))),
        rule("fraction", "numerator must be less than or equal to denominator", |f| {
            let n = |k, d| f.get(k).and_then(Value::as_i64).unwrap_or(d);
            n("numerator", 0) <= n("denominator", 100)
        }),
    ]
}

/// A valid GEP-2257 duration in milliseconds, as CEL's `duration()` reads it.
fn gw_duration_ms(s: &str) -> Option<u64> {
    let (mut rest, mut total) = (s, 0u64);
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let units = [("ms", 1), ("h", 3_600_000), ("m", 60_000), ("s", 1000)];
        let (unit, ms) = units.into_iter().find(|u| rest.starts_with(u.0))?;
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = &rest[unit.len()..];
    }
    (!s.is_empty()).then_some(total)
}

/// BackendObjectReference: group defaults to "", kind to Service.
fn backend_ref_rules() -> Vec<Rule> {
    vec![rule("", "Must have port for Service reference", |b| {
        !(sor(b, "group", "").is_empty() && sor(b, "kind", "Service") == "Service")
            || has(b, "port")
    })]
}

/// Gateway `infrastructure.labels` / `.annotations` keys.
#[rustfmt::skip]
fn infrastructure_rules() -> Vec<Rule> {
    let key = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$";
    let keys_match = move |m: &Value| m.as_object().is_none_or(|m| m.keys().all(|k| re(key).is_match(k)));
    let prefix_short = |m: &Value| m.as_object().is_none_or(|m| m.keys().all(|k| k.split('/').next().unwrap_or("").len() < 253));
    vec![
        rule("", "Annotation keys must be in the form of an optional DNS subdomain prefix followed by a required name segment of up to 63 characters.", keys_match),
        rule("", "If specified, the annotation key's prefix must be a DNS subdomain not longer than 253 characters in total.", prefix_short),
        rule("", "Label keys must be in the form of an optional DNS subdomain prefix followed by a required name segment of up to 63 characters.", keys_match),
        rule("", "If specified, the label key's prefix must be a DNS subdomain not longer than 253 characters in total.", prefix_short),
    ]
}

/// HTTPCORSFilter.allowMethods and allowOrigins: `!('*' in self && self.size() > 1)`.
fn cors_rules() -> Vec<Rule> {
    let lone_star = |xs: &Value| !(list(xs).iter().any(|m| m == "*") && list(xs).len() > 1);
    vec![
        rule(
            "",
            "AllowMethods cannot contain '*' alongside other methods",
            lone_star,
        ),
        rule(
            "",
            "AllowOrigins cannot contain '*' alongside other origins",
            lone_star,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lines(c: &[Cause]) -> Vec<String> {
        c.iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }
    /// `base` with the JSON pointer `at` set to `v` (parents created), or removed for `null`.
    fn set(mut base: Value, at: &str, v: Value) -> Value {
        let (parent, key) = at.rsplit_once('/').unwrap_or_default();
        let mut cur = &mut base;
        for seg in parent.split('/').filter(|s| !s.is_empty()) {
            cur = match cur {
                Value::Array(a) => &mut a[seg.parse::<usize>().unwrap()],
                _ => cur.as_object_mut().unwrap().entry(seg).or_insert(json!({})),
            };
        }
        match (cur, v) {
            (Value::Array(a), v) => match key.parse::<usize>().unwrap() {
                i if i == a.len() => a.push(v),
                i => a[i] = v,
            },
            (Value::Object(m), Value::Null) => drop(m.remove(key)),
            (c, v) => drop(c.as_object_mut().unwrap().insert(key.into(), v)),
        }
        base
    }
    fn meta(name: &str) -> Value {
        json!({"name": name, "namespace": "test-infra"})
    }
    fn deploy() -> Value {
        let c = json!({"name": "web", "image": "echo:1", "ports": [{"containerPort": 3000}]});
        let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [c]}});
        json!({"metadata": meta("web"), "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": t}})
    }
    fn svc(spec: Value) -> Value {
        json!({"metadata": meta("echo"), "spec": spec})
    }
    fn gw() -> Value {
        let https = json!({"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.contoso.com",
                           "tls": {"certificateRefs": [{"name": "listener-tls-secret"}]}});
        let http = json!({"name": "http", "port": 80, "protocol": "HTTP"});
        json!({"metadata": meta("gateway-01"), "spec": {"gatewayClassName": "azure-alb-external", "listeners": [http, https]}})
    }
    fn route() -> Value {
        let m = json!({"path": {"type": "PathPrefix", "value": "/bar"}, "headers": [{"name": "x-ver", "value": "2"}], "method": "GET"});
        let b = json!({"name": "backend-v2", "port": 8080, "weight": 50});
        let rule = json!({"matches": [m], "backendRefs": [b], "timeouts": {"request": "10s", "backendRequest": "2s"}});
        let redirect = json!({"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]});
        json!({"metadata": meta("r"), "spec": {"parentRefs": [{"name": "gateway-01"}], "rules": [rule, redirect]}})
    }
    fn policy(target: Value, default: Value) -> Value {
        json!({"metadata": meta("p"), "spec": {"targetRef": target, "default": default}})
    }
    fn to_svc() -> Value {
        json!({"group": "", "kind": "Service", "name": "echo"})
    }

    /// `case! { name: group, kind, object => [every expected "field: message" line] }`:
    /// one focused test per rule.
    macro_rules! case {
        ($name:ident: $g:expr, $k:expr, $obj:expr => [$($want:expr),* $(,)?]) => {
            #[test]
            fn $name() {
                let want: Vec<String> = vec![$($want.to_string()),*];
                assert_eq!(lines(&validate($g, $k, &$obj)), want);
            }
        };
    }

    // Valid objects.
    case! { valid_deployment: "apps", "Deployment", deploy() => [] }
    case! { valid_gateway: GW, "Gateway", gw() => [] }
    case! { valid_http_route: GW, "HTTPRoute", route() => [] }
    case! { valid_health_check_policy_with_override: AGC, "HealthCheckPolicy", set(policy(to_svc(), json!({"interval": "0s"})), "/spec/override", json!({})) => [] }
    case! { generate_name_instead_of_name: "", "ConfigMap", json!({"metadata": {"generateName": "cm-"}}) => [] }
    case! { headless_service_needs_no_ports: "", "Service", svc(json!({"clusterIP": "None"})) => [] }

    // Metadata.
    case! { name_required: "", "ConfigMap", json!({"metadata": {}}) => ["metadata.name: Required value: name or generateName is required"] }
    case! { name_is_dns_subdomain: "apps", "Deployment", set(deploy(), "/metadata/name", json!("Web_App")) => [
    r#"metadata.name: Invalid value: "Web_App": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#] }
    case! { namespace_name_is_label: "", "Namespace", json!({"metadata": {"name": "test.infra"}}) => [r#"metadata.name: Invalid value: "test.infra": must not contain dots"#] }
    case! { service_name_is_dns1035: "", "Service", set(svc(json!({"ports": [{"port": 80}]})), "/metadata/name", json!("1-echo")) => [
    r#"metadata.name: Invalid value: "1-echo": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#] }
    case! { metadata_namespace_is_label: "", "ConfigMap", json!({"metadata": {"name": "c", "namespace": "Test"}}) => [
    r#"metadata.namespace: Invalid value: "Test": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"#] }
    case! { label_value_format: "", "ConfigMap", json!({"metadata": {"name": "c", "labels": {"tier": "front end"}}}) => [
    r#"metadata.labels: Invalid value: "front end": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"#] }
    case! { annotation_key_is_qualified_name: "", "ConfigMap", json!({"metadata": {"name": "c", "annotations": {"a/b/c": ""}}}) => [
    r#"metadata.annotations: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"#] }
    case! { annotations_total_size: "", "ConfigMap", json!({"metadata": {"name": "c", "annotations": {"a": "x".repeat(256 * 1024)}}}) => [
    "metadata.annotations: Too long: may not be more than 262144 bytes"] }

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

    // Gateway: schema.
    case! { gateway_class_name_required_blocks_cel: GW, "Gateway", set(gw(), "/spec/gatewayClassName", Value::Null) => [
    "spec.gatewayClassName: Required value",
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"] }
    case! { listeners_min_items: GW, "Gateway", set(gw(), "/spec/listeners", json!([])) => [
    "spec.listeners: Invalid value: 0: spec.listeners in body should have at least 1 items"] }
    case! { listeners_max_items: GW, "Gateway", set(gw(), "/spec/listeners", json!((0..65).map(|i| json!({"name": format!("l{i}"), "port": 1000 + i, "protocol": "HTTP"})).collect::<Vec<_>>())) => [
    "spec.listeners: Too many: 65: must have at most 64 items",
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"] }
    case! { listener_port_minimum: GW, "Gateway", set(gw(), "/spec/listeners/0/port", json!(0)) => [
    "spec.listeners[0].port: Invalid value: 0: spec.listeners[0].port in body should be greater than or equal to 1"] }
    case! { listener_port_type: GW, "Gateway", set(gw(), "/spec/listeners/0/port", json!("eighty")) => [
    r#"spec.listeners[0].port: Invalid value: "string": spec.listeners[0].port in body must be of type integer: "string""#,
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"] }
    case! { listener_name_pattern: GW, "Gateway", set(gw(), "/spec/listeners/0/name", json!("HTTP")) => [
    r#"spec.listeners[0].name: Invalid value: "HTTP": spec.listeners[0].name in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'"#] }
    case! { listener_hostname_pattern: GW, "Gateway", set(gw(), "/spec/listeners/1/hostname", json!("*.Contoso.com")) => [
    r#"spec.listeners[1].hostname: Invalid value: "*.Contoso.com": spec.listeners[1].hostname in body should match '^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'"#] }
    case! { listener_protocol_pattern: GW, "Gateway", set(gw(), "/spec/listeners/0/protocol", json!("HT TP")) => [
    r#"spec.listeners[0].protocol: Invalid value: "HT TP": spec.listeners[0].protocol in body should match '^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$'"#] }
    case! { tls_mode_enum: GW, "Gateway", set(gw(), "/spec/listeners/1/tls/mode", json!("terminate")) => [
    r#"spec.listeners[1].tls.mode: Unsupported value: "terminate": supported values: "Terminate", "Passthrough""#,
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"] }

    // Gateway: CEL.
    case! { listener_names_unique: GW, "Gateway", set(gw(), "/spec/listeners/1/name", json!("http")) => [
    r#"spec.listeners[1]: Duplicate value: {"name":"http"}"#,
    r#"spec.listeners: Invalid value: "array": Listener name must be unique within the Gateway"#] }
    case! { tls_not_for_http: GW, "Gateway", set(gw(), "/spec/listeners/0/tls", json!({"certificateRefs": [{"name": "s"}]})) => [
    r#"spec.listeners: Invalid value: "array": tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"#] }
    case! { tls_mode_terminate_for_https: GW, "Gateway", set(gw(), "/spec/listeners/1/tls/mode", json!("Passthrough")) => [
    r#"spec.listeners: Invalid value: "array": tls mode must be Terminate for protocol HTTPS"#] }
    case! { tls_required_for_tls_protocol: GW, "Gateway", set(gw(), "/spec/listeners/0/protocol", json!("TLS")) => [
    r#"spec.listeners: Invalid value: "array": tls mode must be set for protocol TLS"#] }
    case! { no_hostname_for_tcp: GW, "Gateway", set(set(gw(), "/spec/listeners/0/protocol", json!("TCP")), "/spec/listeners/0/hostname", json!("a.com")) => [
    r#"spec.listeners: Invalid value: "array": hostname must not be specified for protocols ['TCP', 'UDP']"#] }
    case! { port_protocol_hostname_unique: GW, "Gateway", set(gw(), "/spec/listeners/1", json!({"name": "b", "port": 80, "protocol": "HTTP"})) => [
    r#"spec.listeners: Invalid value: "array": Combination of port, protocol and hostname must be unique for each listener"#] }
    case! { terminate_needs_certificate_refs: GW, "Gateway", set(gw(), "/spec/listeners/1/tls", json!({"mode": "Terminate"})) => [
    r#"spec.listeners[1].tls: Invalid value: "object": certificateRefs or options must be specified when mode is Terminate"#] }
    case! { address_rules: GW, "Gateway", set(gw(), "/spec/addresses", json!([{"type": "Hostname", "value": "Bad_Host"}, {"value": "10.0.0.1"}, {"value": "10.0.0.1"}])) => [
    r#"spec.addresses: Invalid value: "array": IPAddress values must be unique"#,
    r#"spec.addresses[0]: Invalid value: "object": Hostname value must be empty or contain only valid characters (matching ^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)"#] }

    // HTTPRoute.
    case! { route_hostname_pattern: GW, "HTTPRoute", set(route(), "/spec/hostnames", json!(["*.*.com"])) => [
    r#"spec.hostnames[0]: Invalid value: "*.*.com": spec.hostnames[0] in body should match '^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'"#] }
    case! { path_must_start_with_slash: GW, "HTTPRoute", set(route(), "/spec/rules/0/matches/0/path/value", json!("bar")) => [
    r#"spec.rules[0].matches[0].path: Invalid value: "object": value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']"#] }
    case! { path_no_double_slash: GW, "HTTPRoute", set(route(), "/spec/rules/0/matches/0/path", json!({"value": "/a//b"})) => [
    r#"spec.rules[0].matches[0].path: Invalid value: "object": must not contain '//' when type one of ['Exact', 'PathPrefix']"#] }
    case! { header_name_pattern: GW, "HTTPRoute", set(route(), "/spec/rules/0/matches/0/headers/0/name", json!("x ver")) => [
    r#"spec.rules[0].matches[0].headers[0].name: Invalid value: "x ver": spec.rules[0].matches[0].headers[0].name in body should match '^[A-Za-z0-9!#$%&'*+\-.^_\x60|~]+$'"#] }
    case! { method_enum: GW, "HTTPRoute", set(route(), "/spec/rules/0/matches/0/method", json!("get")) => [
    r#"spec.rules[0].matches[0].method: Unsupported value: "get": supported values: "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH""#,
    "<nil>: Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"] }
    case! { redirect_and_rewrite_exclusive: GW, "HTTPRoute", set(route(), "/spec/rules/1/filters/1", json!({"type": "URLRewrite", "urlRewrite": {}})) => [
    r#"spec.rules[1].filters: Invalid value: "array": May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both"#] }
    case! { filter_type_matches_field: GW, "HTTPRoute", set(route(), "/spec/rules/1/filters/0/type", json!("URLRewrite")) => [
    r#"spec.rules[1].filters[0]: Invalid value: "object": filter.requestRedirect must be nil if the filter.type is not RequestRedirect"#,
    r#"spec.rules[1].filters[0]: Invalid value: "object": filter.urlRewrite must be specified for URLRewrite filter.type"#] }
    case! { replace_prefix_needs_path_prefix: GW, "HTTPRoute", set(set(route(), "/spec/rules/0/matches/0/path/type", json!("Exact")), "/spec/rules/0/filters", json!([{"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}])) => [
    r#"spec.rules[0]: Invalid value: "object": When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified"#] }
    case! { redirect_without_backend_refs: GW, "HTTPRoute", set(route(), "/spec/rules/1/backendRefs", json!([{"name": "b", "port": 80}])) => [
    r#"spec.rules[1]: Invalid value: "object": RequestRedirect filter must not be used together with backendRefs"#] }
    case! { backend_weight_maximum: GW, "HTTPRoute", set(route(), "/spec/rules/0/backendRefs/0/weight", json!(1_000_001)) => [
    "spec.rules[0].backendRefs[0].weight: Invalid value: 1000001: spec.rules[0].backendRefs[0].weight in body should be less than or equal to 1000000"] }
    case! { service_backend_needs_port: GW, "HTTPRoute", set(route(), "/spec/rules/0/backendRefs/0/port", Value::Null) => [
    r#"spec.rules[0].backendRefs[0]: Invalid value: "object": Must have port for Service reference"#] }
    case! { timeout_duration_pattern: GW, "HTTPRoute", set(route(), "/spec/rules/0/timeouts/request", json!("10 s")) => [
    r#"spec.rules[0].timeouts.request: Invalid value: "10 s": spec.rules[0].timeouts.request in body should match '^([0-9]{1,5}(h|m|s|ms)){1,4}$'"#] }
    case! { backend_timeout_within_request: GW, "HTTPRoute", set(route(), "/spec/rules/0/timeouts/backendRequest", json!("1m30s")) => [
    r#"spec.rules[0].timeouts: Invalid value: "object": backendRequest timeout cannot be longer than request timeout"#] }
    case! { parent_refs_section_name_specified: GW, "HTTPRoute", set(route(), "/spec/parentRefs/1", json!({"name": "gateway-01", "sectionName": "http"})) => [
    r#"spec.parentRefs: Invalid value: "array": sectionName must be specified when parentRefs includes 2 or more references to the same parent"#] }
    case! { parent_refs_section_name_unique: GW, "HTTPRoute", set(route(), "/spec/parentRefs", json!([{"name": "g", "sectionName": "a"}, {"name": "g", "sectionName": "a"}])) => [
    r#"spec.parentRefs: Invalid value: "array": sectionName must be unique when parentRefs includes 2 or more references to the same parent"#] }

    // GRPCRoute, GatewayClass, ReferenceGrant.
    case! { grpc_method_match: GW, "GRPCRoute", json!({"metadata": meta("g"), "spec": {"rules": [{"matches": [{"method": {"service": "/helloworld.Greeter/"}}, {"method": {}}]}]}}) => [
    r#"spec.rules[0].matches[0].method: Invalid value: "object": service must only contain valid characters (matching ^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$)"#,
    r#"spec.rules[0].matches[1].method: Invalid value: "object": One or both of 'service' or 'method' must be specified"#] }
    case! { grpc_filter_type_matches_field: GW, "GRPCRoute", json!({"metadata": meta("g"), "spec": {"rules": [{"filters": [{"type": "ExtensionRef"}]}]}}) => [
    r#"spec.rules[0].filters[0]: Invalid value: "object": filter.extensionRef must be specified for ExtensionRef filter.type"#] }
    case! { gateway_class_controller_name: GW, "GatewayClass", json!({"metadata": {"name": "azure-alb-external"}, "spec": {"controllerName": "alb.networking.azure.io"}}) => [
    r#"spec.controllerName: Invalid value: "alb.networking.azure.io": spec.controllerName in body should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$'"#] }
    case! { reference_grant_from_required: GW, "ReferenceGrant", json!({"metadata": meta("rg"), "spec": {"to": [{"group": "", "kind": "Secret"}]}}) => [
    "spec.from: Required value"] }

    // AGC: schema only, so no "<nil>" line after blocking errors.
    case! { agc_target_ref_required_and_types: AGC, "HealthCheckPolicy", json!({"metadata": meta("p"), "spec": {"default": {"port": "8080"}}}) => [
    "spec.targetRef: Required value",
    r#"spec.default.port: Invalid value: "string": spec.default.port in body must be of type integer: "string""#] }
    case! { route_policy_affinity_enum: AGC, "RoutePolicy", policy(json!({"group": GW, "kind": "HTTPRoute", "name": "r"}), json!({"sessionAffinity": {"affinityType": "cookie"}})) => [
    r#"spec.default.sessionAffinity.affinityType: Unsupported value: "cookie": supported values: "application-cookie", "managed-cookie""#] }
    case! { backend_tls_port_minimum: AGC, "BackendTLSPolicy", policy(to_svc(), json!({"ports": [{"port": 0}], "verify": {"caCertificateRef": {"name": "ca"}}})) => [
    "spec.default.ports[0].port: Invalid value: 0: spec.default.ports[0].port in body should be greater than or equal to 1"] }
    case! { frontend_tls_ca_required: AGC, "FrontendTLSPolicy", policy(json!({"group": GW, "kind": "Gateway", "name": "g"}), json!({"verify": {"subjectAltNames": ["x"]}})) => [
    "spec.default.verify.caCertificateRef: Required value"] }

    /// errors.NewInvalid's message: qualified kind, one cause bare, several bracketed, repeats once.
    #[test]
    fn message_format() {
        let one = [invalid(
            "spec.replicas",
            "-1",
            "must be greater than or equal to 0",
        )];
        assert_eq!(
            invalid_message(&qualified_kind("apps", "Deployment"), "web", &one),
            r#"Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"#
        );
        let two = [required("a", ""), required("b", ""), required("a", "")];
        assert_eq!(
            invalid_message("Service", "s", &two),
            r#"Service "s" is invalid: [a: Required value, b: Required value]"#
        );
    }

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

    /// Every kind has its schema; the Gateway API ones carry CEL rules, the AGC ones none.
    #[test]
    fn schemas_build() {
        for kind in [
            "Gateway",
            "GatewayClass",
            "HTTPRoute",
            "GRPCRoute",
            "ReferenceGrant",
        ] {
            assert!(openapi::schema(GW, kind)
                .is_some_and(|s| s.schema.has_validations() == (kind != "ReferenceGrant")));
        }
        for kind in [
            "HealthCheckPolicy",
            "RoutePolicy",
            "FrontendTLSPolicy",
            "BackendTLSPolicy",
            "ApplicationLoadBalancer",
        ] {
            assert!(openapi::schema(AGC, kind).is_some_and(|s| !s.schema.has_validations()));
        }
    }

    /// Every CEL rule the embedded CRDs declare has a predicate here.
    #[test]
    fn every_rule_is_checked() {
        for kind in ["Gateway", "GatewayClass", "HTTPRoute", "GRPCRoute"] {
            let Some(ks) = openapi::schema(GW, kind) else {
                panic!("no schema for {kind}")
            };
            let checks = cel_checks(kind);
            let mut missing: Vec<String> = ks
                .schema
                .rule_messages()
                .into_iter()
                .filter(|m| !checks.contains_key(m))
                .collect();
            missing.sort();
            assert_eq!(missing, Vec::<String>::new(), "{kind}");
        }
    }

    /// No panics on arbitrary shapes.
    #[test]
    fn odd_shapes() {
        let kinds = [
            ("", "Pod"),
            ("apps", "Deployment"),
            ("", "Service"),
            ("", "Secret"),
            (GW, "Gateway"),
            (GW, "HTTPRoute"),
            (AGC, "RoutePolicy"),
        ];
        for v in [
            json!(null),
            json!([1]),
            json!("x"),
            json!({"spec": []}),
            json!({"spec": {"listeners": [null, 3], "rules": "x"}, "data": 4}),
        ] {
            for (g, k) in kinds {
                let _ = (validate(g, k, &v), decode_error(g, k, &v));
            }
        }
    }
}
