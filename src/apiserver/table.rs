//! `meta.k8s.io/v1` Table responses, so `kubectl get` shows the columns a real cluster shows.
//!
//! Built-in kinds' column sets follow kube-apiserver's printers
//! (pkg/printers/internalversion/printers.go). Custom resources are printed from their CRD's
//! `spec.versions[].additionalPrinterColumns` as apiextensions-apiserver does
//! (staging/src/k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor/
//! tableconvertor.go, see [`Printer::Columns`]); the sandbox's own kinds (Gateway API, AGC) keep
//! hand-written columns while their stored CRD declares none (the embedded ones do not).
//! Columns with priority > 0 appear only with `-o wide` (kubectl filters them). Cells are
//! formatted server-side (kubectl prints them verbatim and a null cell, what a CRD column that
//! finds no value gets, as a blank; kubectl-contract §7, item 26).

use super::jsonpath::JsonPath;
use crate::meta;
use crate::resources::{self, kinds, ResourceDef};
use crate::store::Store;
use serde_json::{json, Value};

/// How a kind's rows are printed.
pub enum Printer {
    /// The hand-written printers below.
    Builtin(&'static ResourceDef),
    /// A CRD version's printer columns, after the implicit Name column.
    Columns(Vec<Column>),
}

/// One `additionalPrinterColumns` entry (CustomResourceColumnDefinition), parsed.
pub struct Column {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
    path: JsonPath,
}

/// The printer for `res` served at `version`: a custom resource's CRD columns, read from the
/// stored CRD object (the served one). A CRD version without columns gets apiextensions'
/// default, one `Age` column (apiextensions/v1 helpers.go `serveDefaultColumnsIfEmpty`).
pub fn printer(store: &Store, res: &'static ResourceDef, version: &str) -> Printer {
    if res.builtin {
        return Printer::Builtin(res);
    }
    let name = format!("{}.{}", res.plural, res.group);
    let crd = store.get(kinds::customresourcedefinitions(), "", &name);
    let declared = crd
        .as_deref()
        .and_then(|c| c.pointer("/spec/versions"))
        .and_then(Value::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"] == version))
        .and_then(|v| v.get("additionalPrinterColumns"))
        .and_then(Value::as_array)
        .filter(|cols| !cols.is_empty());
    match declared {
        Some(cols) => Printer::Columns(crd_columns(cols)),
        None if resources::is_static(res) => Printer::Builtin(res),
        None => Printer::Columns(crd_columns(&[json!({
            "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
            "description": object_meta_doc("creationTimestamp"),
        })])),
    }
}

/// ObjectMeta's field documentation (kube's `ObjectMeta{}.SwaggerDoc()`, the same text as the
/// OpenAPI description).
fn object_meta_doc(field: &str) -> String {
    super::openapi::object_meta_field_doc(field).unwrap_or_default()
}

/// tableconvertor.New: each column's path is parsed; at the first one that does not parse the
/// convertor is returned as built so far (and the server logs it), so it and those after it
/// are not shown.
fn crd_columns(cols: &[Value]) -> Vec<Column> {
    let str_of = |c: &Value, k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let mut out = Vec::new();
    for c in cols {
        let json_path = str_of(c, "jsonPath");
        let Ok(path) = JsonPath::parse(&json_path) else {
            tracing::debug!(path = %json_path, "unrecognized printer column; later columns dropped");
            break;
        };
        let description = match str_of(c, "description") {
            d if d.is_empty() => {
                format!("Custom resource definition column (in JSONPath format): {json_path}")
            }
            d => d,
        };
        out.push(Column {
            name: str_of(c, "name"),
            type_: str_of(c, "type"),
            format: str_of(c, "format"),
            description,
            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            path,
        });
    }
    out
}

/// One CRD column's cell (ConvertToTable and cellForJSONValue): the first value the path
/// finds; `null` when it finds none. A `string` column prints the value as client-go's
/// JSONPath printer does (text as is, maps and lists as JSON, a null as `<no value>`); the
/// other types keep a value of their type (`integer` truncates a float, `number` widens an
/// integer, `date` becomes an age like `5m`, `<unknown>` when empty, `<invalid>` when not
/// RFC 3339) and are `null` otherwise.
fn crd_cell(col: &Column, obj: &Value) -> Value {
    let Some(v) = col.path.find(obj).into_iter().next() else {
        return Value::Null;
    };
    match col.type_.as_str() {
        "string" => Value::String(print_value(v)),
        "integer" => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => v.clone(),
            Value::Number(n) => n
                .as_f64()
                .map(|f| json!(f.trunc() as i64))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        "number" => v.as_f64().map(|f| json!(f)).unwrap_or(Value::Null),
        "boolean" => match v {
            Value::Bool(_) => v.clone(),
            _ => Value::Null,
        },
        "date" => match v {
            // metav1.Time.UnmarshalQueryParameter: "" and "null" are the zero time.
            Value::String(t) if t.is_empty() || t == "null" => s("<unknown>"),
            Value::String(t) => match meta::parse_rfc3339(t) {
                Some(at) => s(date_age(at)),
                None => s("<invalid>"),
            },
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}

/// duration.HumanDuration(time.Since(t)): `<invalid>` more than a second in the future.
fn date_age(at: std::time::SystemTime) -> String {
    match std::time::SystemTime::now().duration_since(at) {
        Ok(d) => meta::human_duration(d),
        Err(e) if e.duration().as_secs_f64() > 1.0 => "<invalid>".into(),
        Err(_) => "0s".into(),
    }
}

/// client-go jsonpath PrintResults for one value: maps and lists as compact JSON (keys
/// sorted, as Go marshals maps), text as is, numbers and booleans as Go's fmt prints them.
fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(t) => t.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Number(n) => go_float(n.as_f64().unwrap_or_default()),
        Value::Array(_) | Value::Object(_) => crate::schema::go_json(v),
    }
}

/// Go's `%v` for a float64 (strconv 'g', shortest digits): an exponent from 1e+06 up and
/// below 1e-04.
fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return format!("{f}");
    }
    let sci = format!("{f:e}"); // shortest digits: "1.234567e6", "-5e-7"
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..6).contains(&exp) {
        format!("{f}")
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

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

fn row(printer: &Printer, obj: &Value) -> Value {
    let cells = match printer {
        Printer::Builtin(res) => cells(res, obj),
        Printer::Columns(cols) => std::iter::once(s(meta::name(obj)))
            .chain(cols.iter().map(|c| crd_cell(c, obj)))
            .collect(),
    };
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_default(),
        },
    })
}

fn column_definitions(printer: &Printer) -> Vec<Value> {
    match printer {
        Printer::Builtin(res) => columns(res)
            .into_iter()
            .map(|(name, type_, priority)| {
                let mut d = json!({"name": name, "type": type_, "format": "", "description": "", "priority": priority});
                if name == "Name" {
                    d["format"] = json!("name");
                }
                d
            })
            .collect(),
        Printer::Columns(cols) => {
            let name = json!({"name": "Name", "type": "string", "format": "name",
                "description": object_meta_doc("name"), "priority": 0});
            std::iter::once(name)
                .chain(cols.iter().map(|c| {
                    json!({"name": c.name, "type": c.type_, "format": c.format,
                        "description": c.description, "priority": c.priority})
                }))
                .collect()
        }
    }
}

/// A Table of objects, with column definitions.
pub fn table(printer: &Printer, objs: &[&Value], resource_version: u64) -> Value {
    let defs = column_definitions(printer);
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": defs,
        "rows": objs.iter().map(|o| row(printer, o)).collect::<Vec<_>>(),
    })
}

/// A one-row Table without column definitions, for watch events in table mode (kubectl keeps
/// the header it printed for the list; kubectl-contract §8, item 32).
pub fn event_row(printer: &Printer, obj: &Value) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or_default()},
        "rows": [row(printer, obj)],
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

    fn crd_printer(cols: Value) -> Printer {
        Printer::Columns(crd_columns(
            cols.as_array().map(Vec::as_slice).unwrap_or(&[]),
        ))
    }

    /// cert-manager's Certificate columns, as apiextensions-apiserver prints them.
    #[test]
    fn crd_columns_drive_the_table() {
        let p = crd_printer(json!([
            {"jsonPath": ".status.conditions[?(@.type == \"Ready\")].status", "name": "Ready", "type": "string"},
            {"jsonPath": ".spec.secretName", "name": "Secret", "type": "string"},
            {"jsonPath": ".spec.issuerRef.name", "name": "Issuer", "priority": 1, "type": "string"},
            {"jsonPath": ".metadata.creationTimestamp", "name": "Age", "type": "date"}]));
        let ts = humantime::format_rfc3339_seconds(
            std::time::SystemTime::now() - std::time::Duration::from_secs(300),
        )
        .to_string();
        let cert = json!({"metadata": {"name": "web", "creationTimestamp": ts},
            "spec": {"secretName": "web-tls", "issuerRef": {"name": "le"}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let t = table(&p, &[&cert], 7);
        let defs = t["columnDefinitions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let names: Vec<&str> = defs.iter().filter_map(|d| d["name"].as_str()).collect();
        assert_eq!(names, ["Name", "Ready", "Secret", "Issuer", "Age"]);
        assert_eq!(defs[0]["format"], "name");
        assert!(defs[0]["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Name must be unique within a namespace.")));
        assert_eq!(defs[3]["priority"], 1);
        assert_eq!(
            defs[2]["description"],
            "Custom resource definition column (in JSONPath format): .spec.secretName"
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!(["web", "True", "web-tls", "le", "5m"])
        );
        // Missing values are null (kubectl leaves them blank).
        let bare = json!({"metadata": {"name": "new"}});
        assert_eq!(
            table(&p, &[&bare], 7)["rows"][0]["cells"],
            json!(["new", null, null, null, null])
        );
    }

    #[test]
    fn crd_cells_keep_their_types() {
        let p = crd_printer(json!([
            {"jsonPath": ".n", "name": "I", "type": "integer"},
            {"jsonPath": ".f", "name": "F", "type": "number"},
            {"jsonPath": ".b", "name": "B", "type": "boolean"},
            {"jsonPath": ".l", "name": "L", "type": "string"},
            {"jsonPath": ".f", "name": "FS", "type": "string"},
            {"jsonPath": ".big", "name": "BS", "type": "string"},
            {"jsonPath": ".z", "name": "Z", "type": "string"},
            {"jsonPath": ".b", "name": "BI", "type": "integer"},
            {"jsonPath": ".bad", "name": "D", "type": "date"},
            {"jsonPath": ".empty", "name": "E", "type": "date"},
            {"jsonPath": ".n", "name": "U", "type": "weird"}]));
        let obj = json!({"metadata": {"name": "x"}, "n": 3.9, "f": 2, "b": true,
            "l": ["a", {"y": 1, "x": 2}], "big": 1.5e6, "z": null, "bad": "yesterday", "empty": ""});
        assert_eq!(
            table(&p, &[&obj], 1)["rows"][0]["cells"],
            json!([
                "x",
                3,
                2.0,
                true,
                r#"["a",{"x":2,"y":1}]"#,
                "2",
                "1.5e+06",
                "<no value>",
                null,
                "<invalid>",
                "<unknown>",
                null
            ])
        );
    }

    /// tableconvertor.New stops at a column whose path does not parse.
    #[test]
    fn an_unparsable_column_ends_the_columns() {
        let Printer::Columns(cols) = crd_printer(json!([
            {"jsonPath": ".a", "name": "A", "type": "string"},
            {"jsonPath": "..b", "name": "B", "type": "string"},
            {"jsonPath": ".c", "name": "C", "type": "string"}]))
        else {
            panic!("columns");
        };
        assert_eq!(
            cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["A"]
        );
    }

    #[test]
    fn go_floats() {
        for (f, want) in [
            (1.5, "1.5"),
            (2.0, "2"),
            (123456.0, "123456"),
            (1e6, "1e+06"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
        ] {
            assert_eq!(go_float(f), want);
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
