//! One test per rule of `compute`, on snapshots built from JSON.

use super::*;
use crate::routing::{BackendKey, BackendTarget, Filter, ProbeKind, ProbeSource, SessionAffinity};
use serde_json::{json, Value};
use std::time::Duration;

const TLS_CRT: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydA==\n-----END CERTIFICATE-----\n";
const TLS_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn ns(name: &str, labels: Value) -> Value {
    let mut l = labels;
    l["kubernetes.io/metadata.name"] = json!(name);
    json!({"kind": "Namespace", "metadata": {"name": name, "labels": l}})
}

fn class() -> Value {
    json!({"kind": "GatewayClass", "metadata": {"name": "azure-alb-external", "generation": 1},
           "spec": {"controllerName": CONTROLLER_NAME}})
}

fn http_listener(name: &str) -> Value {
    json!({"name": name, "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}})
}

fn gateway(name: &str, listeners: Value) -> Value {
    json!({"kind": "Gateway", "metadata": {"name": name, "namespace": "test-infra", "generation": 1,
           "creationTimestamp": "2024-01-01T00:00:00Z", "uid": "gw-uid"},
           "spec": {"gatewayClassName": "azure-alb-external", "listeners": listeners}})
}

fn route(name: &str, spec: Value) -> Value {
    json!({"kind": "HTTPRoute", "metadata": {"name": name, "namespace": "test-infra", "generation": 1,
           "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": spec})
}

fn simple_route(name: &str, backend: &str) -> Value {
    route(
        name,
        json!({"parentRefs": [{"name": "gateway-01"}], "hostnames": ["contoso.com"],
                       "rules": [{"backendRefs": [{"name": backend, "port": 8080}]}]}),
    )
}

fn service(ns_: &str, name: &str) -> Value {
    json!({"kind": "Service", "metadata": {"name": name, "namespace": ns_},
           "spec": {"ports": [{"name": "http-back", "port": 8080, "targetPort": "http"}],
                    "selector": {"app": name}}})
}

fn base() -> Vec<Value> {
    vec![
        ns("test-infra", json!({})),
        class(),
        gateway("gateway-01", json!([http_listener("http-listener")])),
        service("test-infra", "websocket-backend"),
    ]
}

fn run(objs: Vec<Value>) -> Outcome {
    compute(&Snapshot::from_objects(objs))
}

fn status<'a>(out: &'a Outcome, kind: &str, name: &str) -> &'a Value {
    &out.statuses
        .iter()
        .find(|s| s.res.kind == kind && s.name == name)
        .unwrap_or_else(|| panic!("no status for {kind} {name}"))
        .status
}

/// (status, reason, message) of a condition in a list.
fn cond(conds: &Value, t: &str) -> (String, String, String) {
    let c = conds
        .as_array()
        .and_then(|a| a.iter().find(|c| c["type"] == t))
        .unwrap_or_else(|| panic!("no {t} in {conds}"));
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
        c["message"].as_str().unwrap().into(),
    )
}

fn c3(s: &str, r: &str, m: &str) -> (String, String, String) {
    (s.into(), r.into(), m.into())
}

/// The conditions of a listener or route parent that resolved, was accepted (with
/// `accepted` as the message) and is programmed.
fn all_true(accepted: &str) -> [(&str, &str, &str, &str); 3] {
    [
        ("ResolvedRefs", "True", "ResolvedRefs", ""),
        ("Accepted", "True", "Accepted", accepted),
        ("Programmed", "True", "Programmed", PROGRAMMED_MESSAGE),
    ]
}

/// Asserts each `(type, status, reason, message)` of `want` against the condition list `conds`.
fn assert_conds(conds: &Value, want: &[(&str, &str, &str, &str)]) {
    for &(t, status, reason, message) in want {
        assert_eq!(
            cond(conds, t),
            c3(status, reason, message),
            "{t} in {conds:#}"
        );
    }
}

fn route_parent(out: &Outcome, name: &str) -> Value {
    status(out, "HTTPRoute", name)["parents"][0].clone()
}

/// (status, reason, message) of condition `t` of gateway-01's listener `i`.
fn listener_cond(out: &Outcome, i: usize, t: &str) -> (String, String, String) {
    cond(
        &status(out, "Gateway", "gateway-01")["listeners"][i]["conditions"],
        t,
    )
}

/// (status, reason, message) of HTTPRoute `name`'s condition `t` on its first parent.
fn parent_cond(out: &Outcome, name: &str, t: &str) -> (String, String, String) {
    cond(&route_parent(out, name)["conditions"], t)
}

#[test]
fn our_class_is_accepted_and_foreign_classes_are_left_alone() {
    let mut objs = base();
    objs.push(json!({"kind": "GatewayClass", "metadata": {"name": "other"}, "spec": {"controllerName": "example.com/x"}}));
    let out = run(objs);
    let st = status(&out, "GatewayClass", "azure-alb-external");
    assert_conds(
        &st["conditions"],
        &[("Accepted", "True", "Accepted", "Valid GatewayClass")],
    );
    assert!(!out.statuses.iter().any(|s| s.name == "other"));
}

#[test]
fn gateway_status_matches_the_seed_tutorial() {
    let out = run(base());
    let st = status(&out, "Gateway", "gateway-01");
    assert_conds(
        &st["conditions"],
        &[
            ("Accepted", "True", "Accepted", "Valid Gateway"),
            ("Programmed", "True", "Programmed", PROGRAMMED_MESSAGE),
        ],
    );
    assert_eq!(st["conditions"][0]["observedGeneration"], 1);
    let l = &st["listeners"][0];
    assert_eq!(l["name"], "http-listener");
    assert_eq!(l["attachedRoutes"], 0);
    assert_eq!(
        l["supportedKinds"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
    );
    assert_conds(&l["conditions"], &all_true("Listener is accepted"));
    assert_eq!(
        st["addresses"],
        json!([{"type": "IPAddress", "value": "127.20.0.1"}])
    );
    let types: Vec<&str> = l["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["ResolvedRefs", "Accepted", "Programmed"]);
    assert_eq!(out.table.gateways.len(), 1);
    assert_eq!(out.table.gateways[0].listeners[0].port, 80);
}

#[test]
fn managed_gateway_without_alb_is_invalid_with_a_clear_message() {
    let mut objs = base();
    objs[2]["metadata"]["annotations"] = json!({
        "alb.networking.azure.io/alb-namespace": "alb-test-infra",
        "alb.networking.azure.io/alb-name": "alb-test"});
    let out = run(objs);
    let st = status(&out, "Gateway", "gateway-01");
    let (s, r, m) = cond(&st["conditions"], "Accepted");
    assert_eq!((s.as_str(), r.as_str()), ("False", "Invalid"));
    assert!(
        m.contains("ApplicationLoadBalancer \"alb-test-infra/alb-test\" not found"),
        "{m}"
    );
    assert!(st.get("addresses").is_none());
    assert!(out.table.gateways.is_empty());
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].reason, "Invalid");
}

fn alb() -> Value {
    json!({"kind": "ApplicationLoadBalancer", "metadata": {"name": "alb-test", "namespace": "alb-test-infra",
           "generation": 1, "uid": "497eb140-aaaa-bbbb-cccc-000000000000", "creationTimestamp": "2020-01-01T00:00:00Z"},
           "spec": {"associations": ["subnet"]}})
}

#[test]
fn managed_gateway_with_alb_is_programmed_and_alb_is_ready() {
    let mut objs = base();
    objs[2]["metadata"]["annotations"] = json!({
        "alb.networking.azure.io/alb-namespace": "alb-test-infra",
        "alb.networking.azure.io/alb-name": "alb-test"});
    objs.push(alb());
    let out = run(objs);
    let st = status(&out, "Gateway", "gateway-01");
    assert_eq!(cond(&st["conditions"], "Programmed").0, "True");
    let a = status(&out, "ApplicationLoadBalancer", "alb-test");
    assert_conds(
        &a["conditions"],
        &[(
            "Accepted",
            "True",
            "Accepted",
            "Valid Application Gateway for Containers resource",
        )],
    );
    let (s, r, m) = cond(&a["conditions"], "Deployment");
    assert_eq!((s.as_str(), r.as_str()), ("True", "Ready"));
    assert_eq!(m, "alb-id=/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/agc-sandbox/providers/Microsoft.ServiceNetworking/trafficControllers/alb-497eb140");
}

#[test]
fn alb_provisioning_delay_shows_in_progress_and_holds_the_gateway() {
    let mut objs = base();
    objs[2]["metadata"]["annotations"] = json!({
        "alb.networking.azure.io/alb-namespace": "alb-test-infra",
        "alb.networking.azure.io/alb-name": "alb-test"});
    let mut a = alb();
    a["metadata"]["creationTimestamp"] = json!(meta::now_rfc3339());
    objs.push(a);
    let mut snap = Snapshot::from_objects(objs);
    snap.alb_provisioning_delay = Duration::from_secs(30);
    let out = compute(&snap);
    let a = status(&out, "ApplicationLoadBalancer", "alb-test");
    assert_conds(
        &a["conditions"],
        &[(
            "Deployment",
            "True",
            "InProgress",
            "Application Gateway for Containers resource alb-497eb140 is undergoing an update.",
        )],
    );
    let st = status(&out, "Gateway", "gateway-01");
    assert_eq!(cond(&st["conditions"], "Accepted").0, "True");
    assert_eq!(cond(&st["conditions"], "Programmed").1, "Pending");
    assert!(out
        .requeue_after
        .is_some_and(|d| d <= Duration::from_secs(31)));
    assert!(out.table.gateways.is_empty());
}

#[test]
fn byo_gateway_needs_a_frontend_address() {
    let id = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ServiceNetworking/trafficControllers/alb-test";
    let mut objs = base();
    objs[2]["metadata"]["annotations"] = json!({"alb.networking.azure.io/alb-id": id});
    let out = run(objs.clone());
    let (s, r, m) = cond(
        &status(&out, "Gateway", "gateway-01")["conditions"],
        "Accepted",
    );
    assert_eq!((s.as_str(), r.as_str()), ("False", "Invalid"));
    assert!(m.contains("alb-frontend"), "{m}");
    objs[2]["spec"]["addresses"] =
        json!([{"type": "alb.networking.azure.io/alb-frontend", "value": "frontend"}]);
    let out = run(objs);
    assert_eq!(
        cond(
            &status(&out, "Gateway", "gateway-01")["conditions"],
            "Programmed"
        )
        .0,
        "True"
    );
}

#[test]
fn static_ip_addresses_are_unsupported() {
    let mut objs = base();
    objs[2]["spec"]["addresses"] = json!([{"type": "IPAddress", "value": "10.0.0.1"}]);
    let out = run(objs);
    assert_eq!(
        cond(
            &status(&out, "Gateway", "gateway-01")["conditions"],
            "Accepted"
        )
        .1,
        "UnsupportedAddress"
    );
}

#[test]
fn listener_protocol_and_port_limits() {
    let mut objs = base();
    objs[2] = gateway(
        "gateway-01",
        json!([
            http_listener("ok"),
            {"name": "tcp", "port": 80, "protocol": "TCP"},
            {"name": "p8080", "port": 8080, "protocol": "HTTP"},
        ]),
    );
    let out = run(objs);
    let st = status(&out, "Gateway", "gateway-01");
    assert_eq!(listener_cond(&out, 1, "Accepted").1, "UnsupportedProtocol");
    assert_eq!(st["listeners"][1]["supportedKinds"], json!([]));
    let (s, r, m) = listener_cond(&out, 2, "Accepted");
    assert_eq!((s.as_str(), r.as_str()), ("False", "PortUnavailable"));
    assert!(m.contains("80 and 443"), "{m}");
    assert_eq!(listener_cond(&out, 2, "Programmed").0, "False");
    // One good listener keeps the Gateway Accepted and Programmed.
    assert_conds(
        &st["conditions"],
        &[(
            "Accepted",
            "True",
            "ListenersNotValid",
            "Listeners [tcp, p8080] are not valid; the others are accepted",
        )],
    );
    assert_eq!(cond(&st["conditions"], "Programmed").0, "True");
    assert_eq!(out.table.gateways[0].listeners.len(), 1);
}

#[test]
fn too_many_listeners_rejects_the_gateway() {
    let mut objs = base();
    let ls: Vec<Value> = (0..65).map(|i| json!({"name": format!("l{i}"), "port": 80, "protocol": "HTTP", "hostname": format!("h{i}.example.com")})).collect();
    objs[2] = gateway("gateway-01", Value::Array(ls));
    let out = run(objs);
    let (s, r, m) = cond(
        &status(&out, "Gateway", "gateway-01")["conditions"],
        "Accepted",
    );
    assert_eq!((s.as_str(), r.as_str()), ("False", "ListenersNotValid"));
    assert!(m.contains("at most 64"), "{m}");
}

fn https_gateway(secret_ns: Option<&str>) -> Value {
    let mut r = json!({"group": "", "kind": "Secret", "name": "listener-tls-secret"});
    if let Some(n) = secret_ns {
        r["namespace"] = json!(n);
    }
    gateway(
        "gateway-01",
        json!([{"name": "https", "port": 443, "protocol": "HTTPS",
        "tls": {"mode": "Terminate", "certificateRefs": [r]}}]),
    )
}

fn tls_secret(ns_: &str, crt: &str) -> Value {
    json!({"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": "listener-tls-secret", "namespace": ns_},
           "data": {"tls.crt": b64(crt), "tls.key": b64(TLS_KEY)}})
}

#[test]
fn https_listener_with_valid_secret_fills_tls_settings() {
    let mut objs = base();
    objs[2] = https_gateway(None);
    objs.push(tls_secret("test-infra", TLS_CRT));
    let out = run(objs);
    assert_eq!(listener_cond(&out, 0, "ResolvedRefs").0, "True");
    let tls = out.table.gateways[0].listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.certificates[0].secret, "test-infra/listener-tls-secret");
    assert_eq!(tls.certificates[0].cert_chain_pem, TLS_CRT);
}

#[test]
fn https_listener_with_missing_or_malformed_secret_is_invalid_certificate_ref() {
    let mut objs = base();
    objs[2] = https_gateway(None);
    let out = run(objs.clone());
    assert_eq!(
        listener_cond(&out, 0, "ResolvedRefs").1,
        "InvalidCertificateRef"
    );
    assert_eq!(listener_cond(&out, 0, "Programmed").0, "False");
    assert_eq!(listener_cond(&out, 0, "Accepted").0, "True");
    objs.push(tls_secret("test-infra", "Hello world"));
    let out = run(objs);
    let (_, r, m) = listener_cond(&out, 0, "ResolvedRefs");
    assert_eq!(r, "InvalidCertificateRef");
    assert!(m.contains("tls.crt"), "{m}");
}

#[test]
fn cross_namespace_certificate_needs_a_reference_grant() {
    let mut objs = base();
    objs[2] = https_gateway(Some("certs"));
    objs.push(ns("certs", json!({})));
    // Missing secret in another namespace: the grant is checked first.
    let out = run(objs.clone());
    assert_eq!(listener_cond(&out, 0, "ResolvedRefs").1, "RefNotPermitted");
    objs.push(tls_secret("certs", TLS_CRT));
    objs.push(json!({"kind": "ReferenceGrant", "metadata": {"name": "g", "namespace": "certs"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "namespace": "test-infra"}],
                 "to": [{"group": "", "kind": "Secret"}]}}));
    let out = run(objs);
    assert_eq!(listener_cond(&out, 0, "ResolvedRefs").0, "True");
}

#[test]
fn more_than_two_certificate_refs_is_rejected() {
    let mut objs = base();
    let r = json!({"name": "listener-tls-secret"});
    objs[2] = gateway(
        "gateway-01",
        json!([{"name": "https", "port": 443, "protocol": "HTTPS",
        "tls": {"certificateRefs": [r, r, r]}}]),
    );
    objs.push(tls_secret("test-infra", TLS_CRT));
    let out = run(objs);
    let (_, r, m) = listener_cond(&out, 0, "ResolvedRefs");
    assert_eq!(r, "InvalidCertificateRef");
    assert!(m.contains("at most 2"), "{m}");
}

#[test]
fn invalid_route_kinds_are_dropped_from_supported_kinds() {
    let mut objs = base();
    objs[2] = gateway(
        "gateway-01",
        json!([{"name": "http", "port": 80, "protocol": "HTTP",
        "allowedRoutes": {"kinds": [{"kind": "InvalidRoute"}, {"kind": "HTTPRoute"}]}}]),
    );
    let out = run(objs);
    let l = &status(&out, "Gateway", "gateway-01")["listeners"][0];
    assert_eq!(
        l["supportedKinds"],
        json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
    );
    assert_eq!(
        cond(&l["conditions"], "ResolvedRefs").1,
        "InvalidRouteKinds"
    );
}

#[test]
fn grpcroute_in_default_kinds_is_a_switch() {
    let mut snap = Snapshot::from_objects(base());
    snap.grpcroute_in_default_kinds = true;
    let out = compute(&snap);
    let kinds = &status(&out, "Gateway", "gateway-01")["listeners"][0]["supportedKinds"];
    assert_eq!(kinds.as_array().unwrap().len(), 2);
}

#[test]
fn listeners_on_one_port_with_different_protocols_conflict() {
    let mut objs = base();
    objs[2] = gateway(
        "gateway-01",
        json!([
            {"name": "a", "port": 80, "protocol": "HTTP"},
            {"name": "b", "port": 80, "protocol": "HTTPS", "tls": {"certificateRefs": [{"name": "listener-tls-secret"}]}},
        ]),
    );
    objs.push(tls_secret("test-infra", TLS_CRT));
    let out = run(objs);
    let st = status(&out, "Gateway", "gateway-01");
    for i in 0..2 {
        assert_conds(
            &st["listeners"][i]["conditions"],
            &[(
                "Conflicted",
                "True",
                "ProtocolConflict",
                "Listener conflicts with another listener on port 80",
            )],
        );
        assert_eq!(listener_cond(&out, i, "Accepted").0, "False");
    }
}

#[test]
fn route_status_matches_the_seed_and_counts_attached_routes() {
    let mut objs = base();
    objs.push(simple_route("websocket-example", "websocket-backend"));
    let out = run(objs);
    let p = route_parent(&out, "websocket-example");
    assert_eq!(p["controllerName"], CONTROLLER_NAME);
    assert_eq!(
        p["parentRef"],
        json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gateway-01", "namespace": "test-infra"})
    );
    assert_conds(&p["conditions"], &all_true("Route is Accepted"));
    assert_eq!(
        status(&out, "Gateway", "gateway-01")["listeners"][0]["attachedRoutes"],
        1
    );
    let l = &out.table.gateways[0].listeners[0];
    assert_eq!(l.routes.len(), 1);
    assert_eq!(l.routes.routes()[0].hostnames, ["contoso.com"]);
    let key = BackendKey {
        namespace: "test-infra".into(),
        service: "websocket-backend".into(),
        port: 8080,
    };
    assert_eq!(
        l.routes.routes()[0].rules[0].backends[0].target,
        BackendTarget::Service(key.clone())
    );
    assert!(out.table.backends.contains_key(&key));
}

#[test]
fn missing_backend_is_backend_not_found_but_route_stays_accepted() {
    let mut objs = base();
    objs.push(route("r", json!({"parentRefs": [{"name": "gateway-01"}], "rules": [{"backendRefs": [
        {"name": "websocket-backend", "port": 8080, "weight": 3}, {"name": "nope", "port": 8080, "weight": 1}]}]})));
    let out = run(objs);
    let p = route_parent(&out, "r");
    assert_conds(
        &p["conditions"],
        &[(
            "ResolvedRefs",
            "False",
            "BackendNotFound",
            "Service test-infra/nope not found",
        )],
    );
    assert_eq!(cond(&p["conditions"], "Accepted").0, "True");
    let b = &out.table.gateways[0].listeners[0].routes.routes()[0].rules[0].backends;
    assert_eq!(b[1].weight, 1);
    assert!(matches!(b[1].target, BackendTarget::Invalid { .. }));
    assert_eq!(
        status(&out, "Gateway", "gateway-01")["listeners"][0]["attachedRoutes"],
        1
    );
}

#[test]
fn cross_namespace_backend_needs_a_reference_grant() {
    let mut objs = base();
    objs.push(ns("other", json!({})));
    objs.push(service("other", "svc"));
    objs.push(route(
        "r",
        json!({"parentRefs": [{"name": "gateway-01"}], "rules": [{"backendRefs": [
        {"name": "svc", "namespace": "other", "port": 8080}]}]}),
    ));
    let out = run(objs.clone());
    assert_eq!(parent_cond(&out, "r", "ResolvedRefs").1, "RefNotPermitted");
    objs.push(json!({"kind": "ReferenceGrant", "metadata": {"name": "g", "namespace": "other"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "test-infra"}],
                 "to": [{"group": "", "kind": "Service", "name": "svc"}]}}));
    let out = run(objs);
    assert_eq!(parent_cond(&out, "r", "ResolvedRefs").0, "True");
}

#[test]
fn unknown_backend_kind_is_invalid_kind() {
    let mut objs = base();
    objs.push(route(
        "r",
        json!({"parentRefs": [{"name": "gateway-01"}], "rules": [{"backendRefs": [
        {"group": "unknownkind.example.com", "kind": "NonExistent", "name": "x", "port": 8080}]}]}),
    ));
    let out = run(objs);
    assert_eq!(parent_cond(&out, "r", "ResolvedRefs").1, "InvalidKind");
}

#[test]
fn unknown_section_name_is_no_matching_parent() {
    let mut objs = base();
    objs.push(route(
        "r",
        json!({"parentRefs": [{"name": "gateway-01", "sectionName": "http1"}],
        "rules": [{"backendRefs": [{"name": "websocket-backend", "port": 8080}]}]}),
    ));
    let out = run(objs);
    let p = route_parent(&out, "r");
    assert_eq!(cond(&p["conditions"], "Accepted").1, "NoMatchingParent");
    assert_eq!(cond(&p["conditions"], "ResolvedRefs").0, "True");
    assert_eq!(cond(&p["conditions"], "Programmed").0, "False");
    assert_eq!(p["parentRef"]["sectionName"], "http1");
    assert_eq!(
        status(&out, "Gateway", "gateway-01")["listeners"][0]["attachedRoutes"],
        0
    );
    assert_eq!(out.events.len(), 1);
}

#[test]
fn route_from_other_namespace_is_not_allowed_by_same_and_allowed_by_selector() {
    let mut objs = base();
    objs.push(ns("web", json!({"team": "web"})));
    let mut r = simple_route("r", "websocket-backend");
    r["metadata"]["namespace"] = json!("web");
    r["spec"]["parentRefs"][0]["namespace"] = json!("test-infra");
    r["spec"]["rules"] = json!([]);
    objs.push(r);
    let out = run(objs.clone());
    assert_eq!(
        parent_cond(&out, "r", "Accepted").1,
        "NotAllowedByListeners"
    );
    objs[2]["spec"]["listeners"][0]["allowedRoutes"] =
        json!({"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "web"}}}});
    let out = run(objs);
    assert_eq!(parent_cond(&out, "r", "Accepted").0, "True");
}

#[test]
fn hostnames_must_intersect_the_listener() {
    let mut objs = base();
    objs[2]["spec"]["listeners"][0]["hostname"] = json!("*.wildcard.io");
    objs.push(route(
        "no",
        json!({"parentRefs": [{"name": "gateway-01"}], "hostnames": ["wildcard.io"]}),
    ));
    objs.push(route("yes", json!({"parentRefs": [{"name": "gateway-01"}], "hostnames": ["foo.bar.wildcard.io", "other.com"]})));
    let out = run(objs);
    assert_eq!(
        parent_cond(&out, "no", "Accepted").1,
        "NoMatchingListenerHostname"
    );
    assert_eq!(parent_cond(&out, "yes", "Accepted").0, "True");
    let l = &out.table.gateways[0].listeners[0];
    assert_eq!(l.routes.routes()[0].hostnames, ["foo.bar.wildcard.io"]);
    assert_eq!(
        status(&out, "Gateway", "gateway-01")["listeners"][0]["attachedRoutes"],
        1
    );
}

#[test]
fn other_controllers_parent_entries_are_kept() {
    let mut objs = base();
    let mut r = simple_route("r", "websocket-backend");
    r["status"] = json!({"parents": [{"controllerName": "example.com/x", "parentRef": {"name": "theirs"}, "conditions": []}]});
    objs.push(r);
    let out = run(objs);
    let parents = status(&out, "HTTPRoute", "r")["parents"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0]["controllerName"], "example.com/x");
    assert_eq!(parents[1]["controllerName"], CONTROLLER_NAME);
}

#[test]
fn routes_to_foreign_gateways_get_no_status() {
    let mut objs = base();
    objs.push(route(
        "r",
        json!({"parentRefs": [{"name": "not-a-gateway"}]}),
    ));
    let out = run(objs);
    assert!(!out.statuses.iter().any(|s| s.name == "r"));
}

#[test]
fn filters_and_matches_are_compiled() {
    let mut objs = base();
    objs.push(route("r", json!({"parentRefs": [{"name": "gateway-01"}], "rules": [{
        "matches": [{"path": {"type": "Exact", "value": "/a"}, "headers": [{"name": "X-A", "value": "1"}], "method": "GET"}],
        "filters": [
            {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-s", "value": "v"}], "remove": ["x-r"]}},
            {"type": "ResponseHeaderModifier", "responseHeaderModifier": {"add": [{"name": "x-a", "value": "v"}]}},
            {"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}},
            {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/x"}}}],
        "backendRefs": [{"name": "websocket-backend", "port": 8080}],
        "timeouts": {"request": "10s"}}]})));
    let out = run(objs);
    let rule = &out.table.gateways[0].listeners[0].routes.routes()[0].rules[0];
    assert_eq!(
        rule.matches[0].path,
        crate::routing::PathMatch::Exact("/a".into())
    );
    assert_eq!(rule.matches[0].method, Some(http::Method::GET));
    assert_eq!(rule.filters.len(), 4);
    assert!(
        matches!(&rule.filters[2], Filter::RequestRedirect(r) if r.status_code == 301 && r.scheme.as_deref() == Some("https"))
    );
    assert_eq!(rule.timeouts.request, Some(Duration::from_secs(10)));
}

#[test]
fn unknown_filter_type_is_unsupported_value() {
    let mut objs = base();
    objs.push(route("r", json!({"parentRefs": [{"name": "gateway-01"}], "rules": [{"filters": [{"type": "Bogus"}]}]})));
    let out = run(objs);
    assert_eq!(parent_cond(&out, "r", "Accepted").1, "UnsupportedValue");
}

fn hcp(default: Value) -> Value {
    json!({"kind": "HealthCheckPolicy", "metadata": {"name": "hc", "namespace": "test-infra", "generation": 1},
           "spec": {"targetRef": {"group": "", "kind": "Service", "name": "websocket-backend", "namespace": "test-infra"},
                    "default": default}})
}

#[test]
fn health_check_policy_is_accepted_and_sets_the_probe() {
    let mut objs = base();
    objs.push(simple_route("r", "websocket-backend"));
    objs.push(hcp(json!({"interval": "5s", "timeout": "3s", "healthyThreshold": 1, "unhealthyThreshold": 1, "http": {"path": "/health"}})));
    let out = run(objs);
    assert_eq!(
        cond(
            &status(&out, "HealthCheckPolicy", "hc")["conditions"],
            "Accepted"
        ),
        c3("True", "Accepted", "Valid HealthCheckPolicy")
    );
    let b = out.table.backends.values().next().unwrap();
    assert_eq!(b.probe.path, "/health");
    assert_eq!(b.probe.timeout, Duration::from_secs(3));
    assert_eq!(b.probe.unhealthy_threshold, 1);
    assert_eq!(
        b.probe.host, "localhost",
        "unset fields keep the default probe's values"
    );
    assert!(matches!(
        b.probe.source,
        ProbeSource::HealthCheckPolicy { .. }
    ));
}

#[test]
fn health_check_policy_override_and_bad_values_are_rejected() {
    let mut objs = base();
    let mut p = hcp(json!({}));
    p["spec"]["override"] = json!({"interval": "5s"});
    objs.push(p);
    let out = run(objs);
    assert_eq!(
        cond(
            &status(&out, "HealthCheckPolicy", "hc")["conditions"],
            "Accepted"
        )
        .1,
        "OverrideNotSupported"
    );
    let mut objs = base();
    objs.push(hcp(
        json!({"http": {"match": {"statusCodes": [{"start": 300, "end": 200}]}}}),
    ));
    let out = run(objs);
    assert_eq!(
        cond(
            &status(&out, "HealthCheckPolicy", "hc")["conditions"],
            "Accepted"
        )
        .1,
        "UnsupportedStatusCodes"
    );
}

#[test]
fn readiness_probe_with_named_port_is_used_without_a_policy() {
    let mut objs = base();
    objs.push(simple_route("r", "websocket-backend"));
    objs.push(json!({"kind": "Pod", "metadata": {"name": "p1", "namespace": "test-infra", "labels": {"app": "websocket-backend"}},
        "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}],
                                 "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}}}]}}));
    objs.push(json!({"kind": "EndpointSlice", "metadata": {"name": "s1", "namespace": "test-infra",
        "labels": {"kubernetes.io/service-name": "websocket-backend"}},
        "ports": [{"name": "http-back", "port": 8080, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["127.10.0.1"], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": "p1", "namespace": "test-infra"}}]}));
    let out = run(objs);
    let b = out.table.backends.values().next().unwrap();
    assert_eq!(b.probe.source, ProbeSource::ReadinessProbe);
    assert_eq!(
        (b.probe.path.as_str(), b.probe.port),
        ("/health", Some(8080))
    );
    assert_eq!(b.endpoints[0].addr, "127.10.0.1:8080".parse().unwrap());
    assert_eq!(b.endpoints[0].pod.as_deref(), Some("test-infra/p1"));
}

#[test]
fn default_probe_without_policy_or_readiness_probe() {
    let mut objs = base();
    objs.push(simple_route("r", "websocket-backend"));
    let out = run(objs);
    let b = out.table.backends.values().next().unwrap();
    assert_eq!(b.probe, crate::routing::ProbeSettings::agc_default());
    assert_eq!(b.probe.kind, ProbeKind::Http);
}

#[test]
fn route_policy_sets_timeouts_and_affinity_and_reports_conflicts() {
    let mut objs = base();
    let mut r = simple_route("r", "websocket-backend");
    r["spec"]["rules"][0]["timeouts"] = json!({"backendRequest": "5s"});
    objs.push(r);
    objs.push(json!({"kind": "RoutePolicy", "metadata": {"name": "rp", "namespace": "test-infra", "generation": 1},
        "spec": {"targetRef": {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r"},
                 "default": {"timeouts": {"routeTimeout": "0s"}, "sessionAffinity": {"affinityType": "managed-cookie"}}}}));
    let out = run(objs);
    assert_eq!(
        cond(&status(&out, "RoutePolicy", "rp")["conditions"], "Accepted"),
        c3("True", "AcceptedWithTimeoutConflict", "Valid RoutePolicy")
    );
    let rule = &out.table.gateways[0].listeners[0].routes.routes()[0].rules[0];
    assert_eq!(rule.timeouts.request, Some(Duration::ZERO));
    assert_eq!(rule.session_affinity, Some(SessionAffinity::ManagedCookie));
}

#[test]
fn frontend_tls_policy_is_validated() {
    let mut objs = base();
    objs.push(json!({"kind": "FrontendTLSPolicy", "metadata": {"name": "f", "namespace": "test-infra", "generation": 1},
        "spec": {"targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gateway-01", "sectionNames": ["nope"]},
                 "default": {"policyType": {"type": "predefined", "name": "2023-06"}}}}));
    let out = run(objs);
    assert_eq!(
        cond(
            &status(&out, "FrontendTLSPolicy", "f")["conditions"],
            "Accepted"
        )
        .1,
        "InvalidGateway"
    );
}

#[test]
fn transition_time_is_kept_when_status_does_not_change() {
    let out = run(base());
    let first = status(&out, "Gateway", "gateway-01").clone();
    let mut objs = base();
    let mut old = first.clone();
    old["conditions"][0]["lastTransitionTime"] = json!("2000-01-01T00:00:00Z");
    objs[2]["status"] = old;
    objs[2]["metadata"]["generation"] = json!(2);
    let out = run(objs);
    let st = status(&out, "Gateway", "gateway-01");
    assert_eq!(
        st["conditions"][0]["lastTransitionTime"],
        "2000-01-01T00:00:00Z"
    );
    assert_eq!(st["conditions"][0]["observedGeneration"], 2);
}

#[test]
fn gateway_addresses_are_stable_and_distinct() {
    let mut objs = base();
    let mut g2 = gateway("gateway-02", json!([http_listener("h")]));
    g2["metadata"]["creationTimestamp"] = json!("2023-01-01T00:00:00Z");
    objs.push(g2);
    // gateway-01 already owns .7 from a previous run.
    objs[2]["status"] = json!({"addresses": [{"type": "IPAddress", "value": "127.20.0.7"}]});
    let out = run(objs);
    assert_eq!(
        status(&out, "Gateway", "gateway-01")["addresses"][0]["value"],
        "127.20.0.7"
    );
    assert_eq!(
        status(&out, "Gateway", "gateway-02")["addresses"][0]["value"],
        "127.20.0.1"
    );
}

#[test]
fn a_listener_the_proxy_could_not_bind_is_not_programmed() {
    let mut snap = Snapshot::from_objects(base());
    let mut b = crate::routing::Bindings::new();
    b.insert(
        (
            "test-infra".into(),
            "gateway-01".into(),
            "http-listener".into(),
        ),
        Err("address in use".into()),
    );
    snap.bindings = std::sync::Arc::new(b);
    let out = compute(&snap);
    let (s, _, m) = listener_cond(&out, 0, "Programmed");
    assert_eq!(s, "False");
    assert!(m.contains("address in use"), "{m}");
}

// === Memoised passes (RouteMemo) ===

/// A tiny store for memo tests: objects get uids and resourceVersions, and each pass writes the
/// computed statuses back the way `apply` does, so later passes see settled objects.
struct World {
    objs: Vec<Value>,
    rv: u64,
    memo: RouteMemo,
}

fn key_of(o: &Value) -> (String, String, String) {
    (
        o["kind"].as_str().unwrap_or("").to_owned(),
        crate::meta::namespace(o).to_owned(),
        crate::meta::name(o).to_owned(),
    )
}

impl World {
    fn new(objs: Vec<Value>) -> Self {
        let mut w = World {
            objs: Vec::new(),
            rv: 0,
            memo: RouteMemo::default(),
        };
        for o in objs {
            w.put(o);
        }
        w
    }

    /// Creates or replaces an object (keeping its status, as a spec update does).
    fn put(&mut self, mut o: Value) {
        self.rv += 1;
        let k = key_of(&o);
        if o["metadata"].get("uid").is_none() {
            o["metadata"]["uid"] = json!(format!("{}/{}/{}", k.0, k.1, k.2));
        }
        o["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        match self.objs.iter().position(|x| key_of(x) == k) {
            Some(i) => {
                if o.get("status").is_none() {
                    if let Some(s) = self.objs[i].get("status").cloned() {
                        o["status"] = s;
                    }
                }
                self.objs[i] = o;
            }
            None => self.objs.push(o),
        }
    }

    fn edit(&mut self, kind: &str, ns_: &str, name: &str, f: impl FnOnce(&mut Value)) {
        let k = (kind.to_owned(), ns_.to_owned(), name.to_owned());
        let mut o = self
            .objs
            .iter()
            .find(|x| key_of(x) == k)
            .cloned()
            .unwrap_or_else(|| panic!("no {k:?}"));
        f(&mut o);
        self.put(o);
    }

    fn remove(&mut self, kind: &str, ns_: &str, name: &str) {
        let k = (kind.to_owned(), ns_.to_owned(), name.to_owned());
        self.objs.retain(|x| key_of(x) != k);
    }

    /// One pass with the memo; asserts it equals a fresh compute, then writes statuses back.
    fn pass(&mut self) -> (Outcome, usize) {
        let snap = Snapshot::from_objects(self.objs.clone());
        let fresh = compute(&snap);
        let out = compute_with(&snap, &mut self.memo);
        assert_eq!(out.statuses, fresh.statuses, "memoised statuses differ");
        assert_eq!(out.events, fresh.events, "memoised events differ");
        assert!(out.table == fresh.table, "memoised table differs");
        let mut writes = 0;
        for w in &out.statuses {
            let i = self
                .objs
                .iter()
                .position(|o| key_of(o) == (w.res.kind.to_owned(), w.ns.clone(), w.name.clone()))
                .expect("status for an existing object");
            let cur = &self.objs[i];
            if w.unchanged_at.is_some() {
                assert_eq!(w.unchanged_at, crate::meta::resource_version(cur));
                assert_eq!(cur.get("status"), Some(&*w.status));
                continue;
            }
            if util::eq_ignoring_transition_times(
                cur.get("status").unwrap_or(&Value::Null),
                &w.status,
            ) {
                continue;
            }
            let mut o = cur.clone();
            o["status"] = (*w.status).clone();
            self.put(o);
            writes += 1;
        }
        (out, writes)
    }

    /// Passes until nothing is written any more.
    fn settle(&mut self) -> Outcome {
        for _ in 0..5 {
            let (out, writes) = self.pass();
            if writes == 0 {
                return out;
            }
        }
        panic!("statuses did not settle");
    }

    fn hits_misses(&self) -> (usize, usize) {
        (self.memo.hits, self.memo.misses)
    }
}

fn two_routes() -> Vec<Value> {
    let mut objs = base();
    objs.push(service("test-infra", "other-backend"));
    objs.push(simple_route("r1", "websocket-backend"));
    let mut r2 = simple_route("r2", "other-backend");
    r2["spec"]["hostnames"] = json!(["fabrikam.com"]);
    objs.push(r2);
    objs
}

#[test]
fn memo_reuses_settled_routes_and_evaluates_only_new_ones() {
    let mut w = World::new(two_routes());
    w.settle();
    let (out, writes) = w.pass();
    assert_eq!(writes, 0);
    assert_eq!(w.hits_misses(), (2, 0));
    assert!(out
        .statuses
        .iter()
        .filter(|s| s.res.kind == "HTTPRoute")
        .all(|s| s.unchanged_at.is_some()));
    assert_eq!(out.table.gateways[0].listeners[0].routes.len(), 2);

    let mut r3 = simple_route("r3", "websocket-backend");
    r3["spec"]["hostnames"] = json!(["r3.example.com"]);
    w.put(r3);
    let (out, writes) = w.pass();
    assert_eq!(w.hits_misses(), (2, 1));
    // The new route's status and the Gateway's attachedRoutes.
    assert_eq!(writes, 2);
    assert_eq!(parent_cond(&out, "r3", "Accepted").0, "True");
    assert_eq!(out.table.gateways[0].listeners[0].routes.len(), 3);
    // r3 is evaluated once more at its new resourceVersion, then everything is reused: the
    // Gateway's status write (attachedRoutes) does not invalidate its routes.
    let (_, writes) = w.pass();
    assert_eq!((w.hits_misses(), writes), ((2, 1), 0));
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (3, 0));
    assert_eq!(
        status(&out, "Gateway", "gateway-01")["listeners"][0]["attachedRoutes"],
        3
    );

    // A deleted route disappears from the table.
    w.remove("HTTPRoute", "test-infra", "r1");
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (2, 0));
    assert_eq!(out.table.gateways[0].listeners[0].routes.len(), 2);
}

#[test]
fn memo_recomputes_routes_whose_service_changed() {
    let mut w = World::new(two_routes());
    w.settle();
    w.edit("Service", "test-infra", "websocket-backend", |s| {
        s["spec"]["ports"][0]["port"] = json!(9090);
    });
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (1, 1), "only r1 uses the Service");
    assert_eq!(
        parent_cond(&out, "r1", "ResolvedRefs"),
        c3(
            "False",
            "BackendNotFound",
            "Service test-infra/websocket-backend has no port 8080"
        )
    );
    w.settle();
    // A Service that appears resolves the routes that named it.
    w.remove("Service", "test-infra", "other-backend");
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (1, 1));
    assert_eq!(parent_cond(&out, "r2", "ResolvedRefs").1, "BackendNotFound");
    w.settle();
    w.put(service("test-infra", "other-backend"));
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (1, 1));
    assert_eq!(parent_cond(&out, "r2", "ResolvedRefs").0, "True");
}

#[test]
fn memo_keeps_routes_but_rebuilds_backends_when_endpoint_slices_change() {
    let mut objs = two_routes();
    objs.push(
        json!({"kind": "EndpointSlice", "metadata": {"name": "ws-1", "namespace": "test-infra",
        "labels": {"kubernetes.io/service-name": "websocket-backend"}},
        "ports": [{"name": "http-back", "port": 8080}],
        "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true}}]}),
    );
    let mut w = World::new(objs);
    w.settle();
    w.edit("EndpointSlice", "test-infra", "ws-1", |s| {
        s["endpoints"][0]["addresses"] = json!(["10.0.0.2"]);
    });
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (2, 0));
    let key = BackendKey {
        namespace: "test-infra".into(),
        service: "websocket-backend".into(),
        port: 8080,
    };
    assert_eq!(
        out.table.backends[&key].endpoints[0].addr,
        "10.0.0.2:8080".parse().unwrap()
    );
}

#[test]
fn memo_recomputes_routes_when_a_reference_grant_changes() {
    let mut objs = base();
    objs.push(ns("other", json!({})));
    objs.push(service("other", "svc"));
    objs.push(route(
        "r",
        json!({"parentRefs": [{"name": "gateway-01"}], "rules": [{"backendRefs": [
        {"name": "svc", "namespace": "other", "port": 8080}]}]}),
    ));
    let mut w = World::new(objs);
    let out = w.settle();
    assert_eq!(parent_cond(&out, "r", "ResolvedRefs").1, "RefNotPermitted");
    w.put(json!({"kind": "ReferenceGrant", "metadata": {"name": "g", "namespace": "other"},
        "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": "test-infra"}],
                 "to": [{"group": "", "kind": "Service", "name": "svc"}]}}));
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (0, 1));
    assert_eq!(parent_cond(&out, "r", "ResolvedRefs").0, "True");
    w.settle();
    w.edit("ReferenceGrant", "other", "g", |g| {
        g["spec"]["to"][0]["name"] = json!("not-svc");
    });
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (0, 1));
    assert_eq!(parent_cond(&out, "r", "ResolvedRefs").1, "RefNotPermitted");
}

#[test]
fn memo_recomputes_routes_when_their_namespace_labels_change() {
    let mut objs = base();
    objs.push(ns("web", json!({})));
    objs[2]["spec"]["listeners"][0]["allowedRoutes"] =
        json!({"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "web"}}}});
    let mut r = simple_route("r", "websocket-backend");
    r["metadata"]["namespace"] = json!("web");
    r["spec"]["parentRefs"][0]["namespace"] = json!("test-infra");
    r["spec"]["rules"] = json!([]);
    objs.push(r);
    let mut w = World::new(objs);
    let out = w.settle();
    assert_eq!(
        parent_cond(&out, "r", "Accepted").1,
        "NotAllowedByListeners"
    );
    w.edit("Namespace", "", "web", |n| {
        n["metadata"]["labels"]["team"] = json!("web");
    });
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (0, 1));
    assert_eq!(parent_cond(&out, "r", "Accepted").0, "True");
    assert_eq!(out.table.gateways[0].listeners[0].routes.len(), 1);
}

#[test]
fn memo_recomputes_routes_when_the_gateway_or_a_route_policy_changes() {
    let mut w = World::new(two_routes());
    w.settle();
    w.edit("Gateway", "test-infra", "gateway-01", |g| {
        g["spec"]["listeners"][0]["hostname"] = json!("contoso.com");
    });
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (0, 2));
    assert_eq!(
        parent_cond(&out, "r2", "Accepted").1,
        "NoMatchingListenerHostname"
    );
    w.settle();
    w.put(json!({"kind": "RoutePolicy", "metadata": {"name": "rp", "namespace": "test-infra", "generation": 1},
        "spec": {"targetRef": {"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "r1"},
                 "default": {"timeouts": {"routeTimeout": "7s"}}}}));
    let (out, _) = w.pass();
    assert_eq!(w.hits_misses(), (1, 1), "only r1 is targeted");
    let rule = &out.table.gateways[0].listeners[0].routes.routes()[0].rules[0];
    assert_eq!(rule.timeouts.request, Some(Duration::from_secs(7)));
}

#[test]
fn memo_is_unused_for_objects_without_resource_versions() {
    let snap = Snapshot::from_objects(two_routes());
    let mut memo = RouteMemo::default();
    compute_with(&snap, &mut memo);
    compute_with(&snap, &mut memo);
    assert_eq!((memo.hits, memo.misses), (0, 2));
}
