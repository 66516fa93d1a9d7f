//! Name formats and ObjectMeta checks.

use super::util::{full, invalids, required, sor, too_long};
use super::Cause;
use serde_json::Value;

// === name formats (apimachinery pkg/util/validation/validation.go) ===

pub(super) const LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
pub(super) const SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
pub(super) const DNS1035_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
pub(super) const QNAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
pub(super) const QNAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
pub(super) const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
pub(super) const CM_KEY_FMT: &str = "[-._a-zA-Z0-9]+";

/// RegexError. Go appends `'x', ` per example joined by ` or `, hence the double space.
pub(super) fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        ex.join(" or ")
    )
}
/// MaxLenError and a RegexError: the shape shared by the DNS-style checks.
pub(super) fn format_errors(
    v: &str,
    max: usize,
    fmt: &str,
    msg: &str,
    examples: &[&str],
) -> Vec<String> {
    let mut e = Vec::new();
    if v.len() > max {
        e.push(format!("must be no more than {max} characters"));
    }
    if !full(fmt, v) {
        e.push(regex_error(msg, fmt, examples));
    }
    e
}
pub(super) fn dns_label(v: &str) -> Vec<String> {
    let msg = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
    let mut e = format_errors(v, 63, LABEL_FMT, msg, &["my-name", "123-abc"]);
    if full(SUBDOMAIN_FMT, v) && !full(LABEL_FMT, v) {
        e.retain(|m| !m.starts_with(msg)); // a valid subdomain: it must be the dots
        e.push("must not contain dots".to_string());
    }
    e
}
pub(super) fn dns_subdomain(v: &str) -> Vec<String> {
    let msg = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
    format_errors(v, 253, SUBDOMAIN_FMT, msg, &["example.com"])
}
pub(super) fn dns1035(v: &str) -> Vec<String> {
    let msg = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
    format_errors(v, 63, DNS1035_FMT, msg, &["my-name", "abc-123"])
}
/// IsQualifiedName: label and annotation keys.
pub(super) fn qualified_name(v: &str) -> Vec<String> {
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
pub(super) fn label_value(v: &str) -> Vec<String> {
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
pub(super) fn port_name(v: &str) -> Vec<String> {
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
pub(super) fn config_map_key(v: &str) -> Vec<String> {
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

pub(super) fn validate_meta(
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
pub(super) fn labels(map: Option<&Value>, path: &str, out: &mut Vec<Cause>) {
    for (k, v) in map.and_then(Value::as_object).into_iter().flatten() {
        invalids(out, path, k, qualified_name(k));
        let v = v.as_str().unwrap_or("");
        invalids(out, path, v, label_value(v));
    }
}

/// Labels, and ValidateAnnotations: keys compared lowercased, 256 KiB in total.
pub(super) fn labels_and_annotations(meta: &Value, path: &str, out: &mut Vec<Cause>) {
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

#[cfg(test)]
mod tests {
    use crate::apiserver::validation::testutil::*;
    use serde_json::json;

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
}
