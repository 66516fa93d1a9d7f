//! Backends and AGC policies: backendRef resolution, endpoints from EndpointSlices, probe
//! settings (HealthCheckPolicy > readinessProbe > AGC default), RoutePolicy effects, and the
//! status of HealthCheckPolicy, RoutePolicy, BackendTLSPolicy and FrontendTLSPolicy.

use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::model::{Outcome, StatusWrite};
use super::snapshot::{Index, Snapshot};
use super::util::{
    condition, grant_allows, items, items_at, merge_conditions, parse_go_duration, str_of, RefFrom,
    GW_GROUP,
};
use crate::meta;
use crate::resources::{self, kinds, ResourceDef};
use crate::routing::{
    BackendKey, BackendRuntime, Endpoint, FastMap, ProbeKind, ProbeSettings, ProbeSource,
    SessionAffinity,
};

/// A backendRef that did not resolve.
#[derive(Debug)]
pub struct RefError {
    pub reason: &'static str,
    pub message: String,
    /// Whether it makes the route's ResolvedRefs False (a missing port does not, per spec).
    pub fatal: bool,
}

/// Service ports referenced by accepted routes; `true` when only GRPCRoutes use it.
#[derive(Debug, Default)]
pub struct BackendSet {
    keys: BTreeMap<BackendKey, bool>,
}

impl BackendSet {
    pub fn add(&mut self, key: BackendKey, grpc: bool) {
        let e = self.keys.entry(key).or_insert(grpc);
        *e &= grpc;
    }
}

/// Resolves a backendRef (spec §3.2 order: kind, grant, existence).
pub fn resolve_ref(
    snap: &Snapshot,
    idx: &Index<'_>,
    route_kind: &str,
    route_ns: &str,
    br: &Value,
) -> Result<BackendKey, RefError> {
    let group = br.get("group").and_then(Value::as_str).unwrap_or("");
    let kind = br.get("kind").and_then(Value::as_str).unwrap_or("Service");
    let name = str_of(br, "name");
    let ns = br
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(route_ns);
    if !group.is_empty() || kind != "Service" {
        return Err(RefError {
            reason: "InvalidKind",
            message: format!("backendRef {group}/{kind} {ns}/{name} has an unsupported kind"),
            fatal: true,
        });
    }
    let from = RefFrom {
        group: GW_GROUP,
        kind: route_kind,
        namespace: route_ns,
    };
    if !grant_allows(&snap.reference_grants, &from, "", "Service", ns, name) {
        return Err(RefError {
            reason: "RefNotPermitted",
            message: format!(
                "backendRef to Service {ns}/{name} not permitted by any ReferenceGrant"
            ),
            fatal: true,
        });
    }
    let Some(svc) = idx.services.get(&(ns, name)) else {
        return Err(RefError {
            reason: "BackendNotFound",
            message: format!("Service {ns}/{name} not found"),
            fatal: true,
        });
    };
    let ports: Vec<i64> = items_at(svc, "/spec/ports")
        .filter_map(|p| p.get("port").and_then(Value::as_i64))
        .collect();
    let port = match br.get("port").and_then(Value::as_i64) {
        Some(p) if ports.contains(&p) => p,
        Some(p) => {
            return Err(RefError {
                reason: "BackendNotFound",
                message: format!("Service {ns}/{name} has no port {p}"),
                fatal: true,
            })
        }
        None if ports.len() == 1 => ports[0],
        None => {
            return Err(RefError {
                reason: "BackendNotFound",
                message: format!("backendRef to Service {ns}/{name} needs a port"),
                fatal: false,
            })
        }
    };
    Ok(BackendKey {
        namespace: ns.to_owned(),
        service: name.to_owned(),
        port: u16::try_from(port).unwrap_or(0),
    })
}

/// Builds the runtime state of every referenced backend.
pub fn build(
    snap: &Snapshot,
    idx: &Index<'_>,
    set: &BackendSet,
) -> FastMap<BackendKey, Arc<BackendRuntime>> {
    let hcps = valid_health_check_policies(snap, idx);
    let btls = valid_backend_tls(snap, idx);
    let mut out = FastMap::default();
    for (key, &grpc_only) in &set.keys {
        let Some(svc) = idx
            .services
            .get(&(key.namespace.as_str(), key.service.as_str()))
        else {
            continue;
        };
        let Some(sport) = items_at(svc, "/spec/ports")
            .find(|p| p.get("port").and_then(Value::as_i64) == Some(i64::from(key.port)))
        else {
            continue;
        };
        let endpoints = endpoints_of(idx, key, sport);
        let policy = btls.iter().find(|(ns, svc_name, ports, _)| {
            *ns == key.namespace
                && *svc_name == key.service
                && (ports.is_empty() || ports.contains(&key.port))
        });
        let tls = policy.is_some();
        let tls_sni = policy.and_then(|p| p.3.clone());
        let probe = if let Some(p) = hcps.get(&(key.namespace.clone(), key.service.clone())) {
            p.clone()
        } else if let Some(p) = readiness_probe(snap, idx, svc, sport, &endpoints) {
            p
        } else {
            let mut p = ProbeSettings::agc_default();
            if grpc_only {
                p.kind = ProbeKind::Tcp;
            }
            p.use_tls = tls;
            p
        };
        out.insert(
            key.clone(),
            Arc::new(BackendRuntime {
                key: key.clone(),
                endpoints,
                probe,
                app_protocol_tls: tls,
                tls_sni,
            }),
        );
    }
    out
}

fn endpoints_of(idx: &Index<'_>, key: &BackendKey, sport: &Value) -> Vec<Endpoint> {
    let port_name = str_of(sport, "name");
    let mut out = Vec::new();
    let slices = idx
        .slices
        .get(&(key.namespace.as_str(), key.service.as_str()));
    for sl in slices.into_iter().flatten() {
        let ports: Vec<&Value> = items(sl, "ports").collect();
        let port = ports
            .iter()
            .find(|p| str_of(p, "name") == port_name)
            .or_else(|| (ports.len() == 1).then(|| &ports[0]))
            .and_then(|p| p.get("port").and_then(Value::as_u64))
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else { continue };
        for ep in items(sl, "endpoints") {
            let ready = ep
                .pointer("/conditions/ready")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let pod = ep
                .get("targetRef")
                .filter(|t| str_of(t, "kind") == "Pod")
                .map(|t| {
                    let ns = t
                        .get("namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(&key.namespace);
                    format!("{ns}/{}", str_of(t, "name"))
                });
            for a in items(ep, "addresses") {
                if let Some(ip) = a.as_str().and_then(|s| s.parse::<IpAddr>().ok()) {
                    out.push(Endpoint {
                        addr: SocketAddr::new(ip, port),
                        pod: pod.clone(),
                        ready,
                    });
                }
            }
        }
    }
    if slices.is_none() {
        // Selector-less Service with hand-written v1 Endpoints.
        if let Some(eps) = idx
            .endpoints
            .get(&(key.namespace.as_str(), key.service.as_str()))
        {
            for subset in items(eps, "subsets") {
                let ports: Vec<&Value> = items(subset, "ports").collect();
                let Some(port) = ports
                    .iter()
                    .find(|p| str_of(p, "name") == port_name)
                    .or_else(|| (ports.len() == 1).then(|| &ports[0]))
                    .and_then(|p| p.get("port").and_then(Value::as_u64))
                    .and_then(|p| u16::try_from(p).ok())
                else {
                    continue;
                };
                for (field, ready) in [("addresses", true), ("notReadyAddresses", false)] {
                    for a in items(subset, field) {
                        if let Ok(ip) = str_of(a, "ip").parse::<IpAddr>() {
                            let pod = a
                                .get("targetRef")
                                .filter(|t| str_of(t, "kind") == "Pod")
                                .map(|t| format!("{}/{}", key.namespace, str_of(t, "name")));
                            out.push(Endpoint {
                                addr: SocketAddr::new(ip, port),
                                pod,
                                ready,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// The readinessProbe of the first endpoint pod (or selected pod) that has one.
fn readiness_probe(
    snap: &Snapshot,
    idx: &Index<'_>,
    svc: &Value,
    sport: &Value,
    endpoints: &[Endpoint],
) -> Option<ProbeSettings> {
    let ns = meta::namespace(svc);
    let mut pods: Vec<&Value> = endpoints
        .iter()
        .filter_map(|e| e.pod.as_deref())
        .filter_map(|p| p.split_once('/'))
        .filter_map(|(pns, pname)| idx.pods.get(&(pns, pname)).copied())
        .collect();
    if pods.is_empty() {
        if let Some(sel) = svc
            .pointer("/spec/selector")
            .and_then(Value::as_object)
            .filter(|m| !m.is_empty())
        {
            pods = snap
                .pods
                .iter()
                .filter(|p| meta::namespace(p) == ns)
                .filter(|p| sel.iter().all(|(k, v)| meta::label(p, k) == v.as_str()))
                .map(|p| &**p)
                .collect();
        }
    }
    let target = sport.get("targetPort");
    for pod in pods {
        let containers: Vec<&Value> = items_at(pod, "/spec/containers").collect();
        // Prefer the container serving the target port.
        let serves = |c: &Value| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|p| match target {
                    Some(Value::String(n)) => str_of(p, "name") == n,
                    Some(Value::Number(n)) => {
                        p.get("containerPort").and_then(Value::as_i64) == n.as_i64()
                    }
                    _ => false,
                })
        };
        let mut ordered = containers.clone();
        ordered.sort_by_key(|c| !serves(c));
        for c in ordered {
            let Some(rp) = c.get("readinessProbe") else {
                continue;
            };
            let port_of = |v: Option<&Value>| -> Option<u16> {
                match v? {
                    Value::Number(n) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
                    Value::String(name) => containers
                        .iter()
                        .flat_map(|c| {
                            c.get("ports")
                                .and_then(Value::as_array)
                                .into_iter()
                                .flatten()
                        })
                        .find(|p| str_of(p, "name") == name)
                        .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
                        .and_then(|p| u16::try_from(p).ok()),
                    _ => None,
                }
            };
            let mut p = ProbeSettings::agc_default();
            p.source = ProbeSource::ReadinessProbe;
            if let Some(h) = rp.get("httpGet") {
                p.kind = ProbeKind::Http;
                p.path = h
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_owned();
                p.port = port_of(h.get("port"));
                p.use_tls = str_of(h, "scheme").eq_ignore_ascii_case("HTTPS");
                return Some(p);
            }
            if let Some(t) = rp.get("tcpSocket") {
                p.kind = ProbeKind::Tcp;
                p.port = port_of(t.get("port"));
                return Some(p);
            }
        }
    }
    None
}

// === Policies ===

fn targets(policy: &Value) -> (&str, &str, &str, &str) {
    let t = policy.pointer("/spec/targetRef").unwrap_or(&Value::Null);
    (
        t.get("group").and_then(Value::as_str).unwrap_or(""),
        str_of(t, "kind"),
        str_of(t, "name"),
        t.get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(meta::namespace(policy)),
    )
}

/// The name and namespace `policy`'s (a `kind`) `spec.targetRef` names, once it is known
/// to name a `want_kind` of `want_group.0` (`want_group.1`: how messages spell that group).
fn checked_target<'a>(
    policy: &'a Value,
    kind: &str,
    want_group: (&str, &str),
    want_kind: &str,
) -> Result<(&'a str, &'a str), (&'static str, String)> {
    let (group, tkind, name, ns) = targets(policy);
    if name.is_empty() {
        return Err(("NoTargetReference", format!("{kind} has no spec.targetRef")));
    }
    if group != want_group.0 {
        let use_ = want_group.1;
        return Err((
            "InvalidGroup",
            format!("targetRef group {group:?} is not supported; use {use_}"),
        ));
    }
    if tkind != want_kind {
        return Err((
            "InvalidKind",
            format!("targetRef kind {tkind} is not supported; use {want_kind}"),
        ));
    }
    Ok((name, ns))
}

type Verdict = Result<&'static str, (&'static str, String)>;

fn check_override(p: &Value, kind: &str) -> Result<(), (&'static str, String)> {
    if p.pointer("/spec/override").is_some_and(|o| !o.is_null()) {
        return Err((
            "OverrideNotSupported",
            format!("{kind} spec.override is not supported by Application Gateway for Containers; use spec.default"),
        ));
    }
    Ok(())
}

fn check_service_target(
    snap: &Snapshot,
    idx: &Index<'_>,
    p: &Value,
    kind: &str,
) -> Result<(), (&'static str, String)> {
    let (name, ns) = checked_target(p, kind, ("", "\"\" (core)"), "Service")?;
    let from = RefFrom {
        group: resources::ALB,
        kind,
        namespace: meta::namespace(p),
    };
    if !grant_allows(&snap.reference_grants, &from, "", "Service", ns, name) {
        return Err((
            "RefNotPermitted",
            format!("targetRef to Service {ns}/{name} not permitted by any ReferenceGrant"),
        ));
    }
    if !idx.services.contains_key(&(ns, name)) {
        return Err((
            "NoTargetReference",
            format!("Service {ns}/{name} not found"),
        ));
    }
    Ok(())
}

/// Validates a HealthCheckPolicy and converts it; unset fields keep AGC's default probe values.
fn health_check(
    snap: &Snapshot,
    idx: &Index<'_>,
    p: &Value,
) -> Result<ProbeSettings, (&'static str, String)> {
    check_override(p, "HealthCheckPolicy")?;
    check_service_target(snap, idx, p, "HealthCheckPolicy")?;
    let d = p
        .pointer("/spec/default")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let invalid = |m: String| ("InvalidHealthCheckPolicy", m);
    let mut s = ProbeSettings::agc_default();
    s.source = ProbeSource::HealthCheckPolicy {
        namespace: meta::namespace(p).to_owned(),
        name: meta::name(p).to_owned(),
    };
    for (field, slot) in [("interval", &mut s.interval), ("timeout", &mut s.timeout)] {
        if let Some(v) = d.get(field) {
            let parsed = v
                .as_str()
                .and_then(parse_go_duration)
                .filter(|d| !d.is_zero());
            *slot = parsed.ok_or_else(|| {
                invalid(format!(
                    "{field} {v} must be a positive duration such as 5s"
                ))
            })?;
        }
    }
    for (field, slot) in [
        ("healthyThreshold", &mut s.healthy_threshold),
        ("unhealthyThreshold", &mut s.unhealthy_threshold),
    ] {
        if let Some(v) = d.get(field) {
            *slot = v
                .as_u64()
                .filter(|n| *n > 0)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid(format!("{field} {v} must be a positive integer")))?;
        }
    }
    if let Some(v) = d.get("port") {
        s.port = Some(
            v.as_u64()
                .filter(|n| (1..=65535).contains(n))
                .map(|n| n as u16)
                .ok_or_else(|| {
                    (
                        "InvalidPort",
                        format!("port {v} must be between 1 and 65535"),
                    )
                })?,
        );
    }
    if let Some(v) = d.get("useTLS").or_else(|| d.get("UseTLS")) {
        s.use_tls = v.as_bool().unwrap_or(false);
    }
    if let Some(h) = d.get("http") {
        if let Some(host) = h.get("host").and_then(Value::as_str) {
            s.host = host.to_owned();
        }
        if let Some(path) = h.get("path").and_then(Value::as_str) {
            if !path.starts_with('/') {
                return Err(invalid(format!("http.path {path:?} must start with /")));
            }
            s.path = path.to_owned();
        }
        if let Some(body) = h.pointer("/match/body").and_then(Value::as_str) {
            s.body_contains = Some(body.to_owned());
        }
        if let Some(codes) = h.pointer("/match/statusCodes").and_then(Value::as_array) {
            let mut ranges = Vec::new();
            for c in codes {
                let start = c.get("start").and_then(Value::as_u64).unwrap_or(0);
                let end = c.get("end").and_then(Value::as_u64).unwrap_or(start);
                if !(100..=599).contains(&start) || !(100..=599).contains(&end) || start > end {
                    return Err((
                        "UnsupportedStatusCodes",
                        format!("status code range {start}-{end} is invalid; use ranges within 100-599 with start <= end"),
                    ));
                }
                ranges.push((start as u16, end as u16));
            }
            if !ranges.is_empty() {
                s.status_ranges = ranges;
            }
        }
    } else if d.get("grpc").is_some() {
        s.kind = ProbeKind::Tcp;
    }
    if s.timeout > s.interval && d.get("timeout").is_some() && d.get("interval").is_some() {
        // AGC accepts it; probes then simply overlap. Nothing to reject.
    }
    Ok(s)
}

fn valid_health_check_policies(
    snap: &Snapshot,
    idx: &Index<'_>,
) -> HashMap<(String, String), ProbeSettings> {
    let mut out = HashMap::new();
    for p in &snap.health_check_policies {
        if let Ok(s) = health_check(snap, idx, p) {
            let (_, _, name, ns) = targets(p);
            out.entry((ns.to_owned(), name.to_owned())).or_insert(s);
        }
    }
    out
}

fn backend_tls(
    snap: &Snapshot,
    idx: &Index<'_>,
    p: &Value,
) -> Result<Vec<u16>, (&'static str, String)> {
    check_override(p, "BackendTLSPolicy")?;
    check_service_target(snap, idx, p, "BackendTLSPolicy")?;
    let ns = meta::namespace(p);
    for field in [
        "/spec/default/verify/caCertificateRef",
        "/spec/default/clientCertificateRef",
    ] {
        if let Some(r) = p.pointer(field) {
            let name = str_of(r, "name");
            let sns = r.get("namespace").and_then(Value::as_str).unwrap_or(ns);
            if !idx.secrets.contains_key(&(sns, name)) {
                return Err((
                    "InvalidCertificateRef",
                    format!("Secret {sns}/{name} not found"),
                ));
            }
        }
    }
    Ok(p.pointer("/spec/default/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|x| x.get("port").and_then(Value::as_u64))
        .filter_map(|x| u16::try_from(x).ok())
        .collect())
}

/// Accepted BackendTLSPolicies: (namespace, Service, ports (empty = all),
/// `default.sni`).
type BackendTls = (String, String, Vec<u16>, Option<String>);

fn valid_backend_tls(snap: &Snapshot, idx: &Index<'_>) -> Vec<BackendTls> {
    snap.backend_tls_policies
        .iter()
        .filter_map(|p| {
            let ports = backend_tls(snap, idx, p).ok()?;
            let (_, _, name, ns) = targets(p);
            let sni = p
                .pointer("/spec/default/sni")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            Some((ns.to_owned(), name.to_owned(), ports, sni))
        })
        .collect()
}

/// RoutePolicy settings applied to a route's rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoutePolicyEffect {
    pub timeout: Option<Duration>,
    pub affinity: Option<SessionAffinity>,
}

fn route_policy(
    snap: &Snapshot,
    p: &Value,
) -> Result<(RoutePolicyEffect, &'static str), (&'static str, String)> {
    check_override(p, "RoutePolicy")?;
    let (group, kind, name, ns) = targets(p);
    if name.is_empty() {
        return Err((
            "NoTargetReference",
            "RoutePolicy has no spec.targetRef".to_owned(),
        ));
    }
    if !(group.is_empty() || group == GW_GROUP) {
        return Err((
            "InvalidGroup",
            format!("targetRef group {group:?} is not supported"),
        ));
    }
    let route = match kind {
        "HTTPRoute" => Snapshot::find(&snap.httproutes, ns, name),
        "GRPCRoute" => Snapshot::find(&snap.grpcroutes, ns, name),
        _ => {
            return Err((
                "InvalidKind",
                format!("targetRef kind {kind} is not supported; use HTTPRoute or GRPCRoute"),
            ))
        }
    };
    let Some(route) = route else {
        let reason = if kind == "HTTPRoute" {
            "InvalidHTTPRoute"
        } else {
            "InvalidGRPCRoute"
        };
        return Err((reason, format!("{kind} {ns}/{name} not found")));
    };
    let d = p
        .pointer("/spec/default")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut eff = RoutePolicyEffect::default();
    if let Some(t) = d.pointer("/timeouts/routeTimeout") {
        eff.timeout = Some(t.as_str().and_then(parse_go_duration).ok_or_else(|| {
            (
                "InvalidRoutePolicy",
                format!("timeouts.routeTimeout {t} is not a duration such as 60s"),
            )
        })?);
    }
    if let Some(sa) = d.get("sessionAffinity") {
        eff.affinity = Some(match str_of(sa, "affinityType") {
            "managed-cookie" => SessionAffinity::ManagedCookie,
            "application-cookie" => {
                let cookie = str_of(sa, "cookieName");
                if cookie.is_empty() {
                    return Err(("InvalidRoutePolicy", "sessionAffinity application-cookie needs cookieName".to_owned()));
                }
                SessionAffinity::ApplicationCookie {
                    name: cookie.to_owned(),
                    duration: sa.get("cookieDuration").and_then(Value::as_str).and_then(parse_go_duration),
                }
            }
            other => {
                return Err((
                    "InvalidRoutePolicy",
                    format!("sessionAffinity.affinityType {other:?} is not supported; use managed-cookie or application-cookie"),
                ))
            }
        });
    }
    let route_has_timeouts = items_at(route, "/spec/rules").any(|r| r.get("timeouts").is_some());
    let reason = if eff.timeout.is_some() && route_has_timeouts {
        "AcceptedWithTimeoutConflict"
    } else {
        "Accepted"
    };
    Ok((eff, reason))
}

/// Effects of valid RoutePolicies by (namespace, route name, route kind); the first policy
/// (by namespace/name) wins.
pub fn route_policy_effects(
    snap: &Snapshot,
) -> HashMap<(String, String, String), RoutePolicyEffect> {
    let mut out = HashMap::new();
    for p in &snap.route_policies {
        if let Ok((eff, _)) = route_policy(snap, p) {
            let (_, kind, name, ns) = targets(p);
            out.entry((ns.to_owned(), name.to_owned(), kind.to_owned()))
                .or_insert(eff);
        }
    }
    out
}

fn frontend_tls(snap: &Snapshot, idx: &Index<'_>, p: &Value) -> Verdict {
    check_override(p, "FrontendTLSPolicy")?;
    let (name, ns) = checked_target(p, "FrontendTLSPolicy", (GW_GROUP, GW_GROUP), "Gateway")?;
    let Some(gw) = Snapshot::find(&snap.gateways, ns, name) else {
        return Err(("InvalidGateway", format!("Gateway {ns}/{name} not found")));
    };
    let t = p.pointer("/spec/targetRef").unwrap_or(&Value::Null);
    for s in items(t, "sectionNames").filter_map(Value::as_str) {
        let exists = items_at(gw, "/spec/listeners").any(|l| str_of(l, "name") == s);
        if !exists {
            return Err((
                "InvalidGateway",
                format!("Gateway {ns}/{name} has no listener {s:?}"),
            ));
        }
    }
    if let Some(pt) = p.pointer("/spec/default/policyType") {
        let ty = pt
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("predefined");
        if ty != "predefined" {
            return Err((
                "InvalidPolicyType",
                format!("policyType.type {ty:?} is not supported; use predefined"),
            ));
        }
        let n = pt.get("name").and_then(Value::as_str).unwrap_or("2023-06");
        if n != "2023-06" && n != "2023-06-S" {
            return Err((
                "InvalidPolicyName",
                format!("policyType.name {n:?} is not supported; use 2023-06 or 2023-06-S"),
            ));
        }
    }
    if let Some(r) = p.pointer("/spec/default/verify/caCertificateRef") {
        let sname = str_of(r, "name");
        let sns = r
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(meta::namespace(p));
        let Some(secret) = idx.secrets.get(&(sns, sname)) else {
            return Err((
                "InvalidFrontendTLSPolicy",
                format!("CA Secret {sns}/{sname} not found"),
            ));
        };
        if secret.pointer("/data/ca.crt").is_none() {
            return Err((
                "InvalidFrontendTLSPolicy",
                format!("CA Secret {sns}/{sname} has no ca.crt key"),
            ));
        }
    }
    Ok("Accepted")
}

/// Writes the Accepted condition of every AGC policy.
pub fn policy_statuses(snap: &Snapshot, idx: &Index<'_>, now: &str, out: &mut Outcome) {
    let mut emit = |res: &'static ResourceDef, p: &Value, kind: &str, v: Verdict| {
        let gen = meta::generation(p);
        let old = p.pointer("/status/conditions");
        let c = match v {
            Ok(reason) => condition(
                "Accepted",
                true,
                reason,
                &format!("Valid {kind}"),
                gen,
                old,
                now,
            ),
            Err((reason, msg)) => condition("Accepted", false, reason, &msg, gen, old, now),
        };
        let mut status = p
            .get("status")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        status["conditions"] = merge_conditions(old, vec![c], &["Accepted"]);
        out.statuses.push(StatusWrite {
            res,
            ns: meta::namespace(p).to_owned(),
            name: meta::name(p).to_owned(),
            status: Arc::new(status),
            unchanged_at: None,
        });
    };
    for p in &snap.health_check_policies {
        let v = health_check(snap, idx, p).map(|_| "Accepted");
        emit(kinds::healthcheckpolicies(), p, "HealthCheckPolicy", v);
    }
    for p in &snap.route_policies {
        let v = route_policy(snap, p).map(|(_, r)| r);
        emit(kinds::routepolicies(), p, "RoutePolicy", v);
    }
    if let Some(res) = resources::by_plural(resources::ALB, "backendtlspolicies") {
        for p in &snap.backend_tls_policies {
            let v = backend_tls(snap, idx, p).map(|_| "Accepted");
            emit(res, p, "BackendTLSPolicy", v);
        }
    }
    if let Some(res) = resources::by_plural(resources::ALB, "frontendtlspolicies") {
        for p in &snap.frontend_tls_policies {
            let v = frontend_tls(snap, idx, p);
            emit(res, p, "FrontendTLSPolicy", v);
        }
    }
}
