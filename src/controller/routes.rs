//! HTTPRoute and GRPCRoute: attachment to listeners (spec §3.3), per-parent status, and the
//! conversion of rules into the routing table's [`RuleRuntime`]s.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method};

use super::backends::{self, BackendSet, RoutePolicyEffect};
use super::model::CONTROLLER_NAME;
use super::model::{EventNote, FromNs, GatewayInfo, Outcome, StatusWrite};
use super::snapshot::{Index, Snapshot};
use super::util::{
    condition, intersection, items, items_at, meta_rv, meta_str, parse_go_duration,
    programmed_condition, str_of, GW_GROUP,
};
use crate::meta;
use crate::resources::kinds;
use crate::routing::{
    BackendTarget, CorsPolicy, Filter, HeaderMatch, HeaderModifier, HttpMatch, PathMatch,
    PathModifier, QueryMatch, RequestMirror, RequestRedirect, RouteRuntime, RuleRuntime,
    StringMatch, Timeouts, UrlRewrite, WeightedBackend,
};

type Failure = (&'static str, String);
/// A Gateway's (namespace, name).
type GwKey = (String, String);

/// Processes every route: status into `out`, compiled routes into the listeners of `gws`,
/// referenced Service ports into `backend_set`.
///
/// A route whose inputs are unchanged since the previous pass (see [`RouteMemo`]) reuses that
/// pass's result instead of being evaluated again; the outcome is the same either way.
#[allow(clippy::too_many_arguments)]
pub(super) fn process(
    snap: &Snapshot,
    idx: &Index<'_>,
    gws: &mut [GatewayInfo<'_>],
    policies: &HashMap<(String, String, String), RoutePolicyEffect>,
    backend_set: &mut BackendSet,
    now: &str,
    out: &mut Outcome,
    memo: &mut RouteMemo,
) {
    let gw_index: HashMap<(String, String), usize> = gws
        .iter()
        .enumerate()
        .map(|(i, g)| ((g.ns.to_owned(), g.name.to_owned()), i))
        .collect();
    let prints: Vec<Arc<str>> = gws.iter().map(gateway_print).collect();
    let inputs = Inputs {
        idx,
        gw_index: &gw_index,
        prints: &prints,
        policies,
        namespace_rvs: idx
            .namespaces
            .iter()
            .map(|(k, o)| (*k, rv_of(Some(o))))
            .collect(),
        service_rvs: idx
            .services
            .iter()
            .map(|(k, o)| (*k, rv_of(Some(o))))
            .collect(),
    };
    let mut prev = memo.begin(snap);
    for (kind, list) in [
        ("HTTPRoute", &snap.httproutes),
        ("GRPCRoute", &snap.grpcroutes),
    ] {
        for route in list {
            // Read once: these lookups are most of the cost of a reused route.
            let md = route.get("metadata").unwrap_or(&Value::Null);
            let uid = str_of(md, "uid");
            let (ns, name) = (str_of(md, "namespace"), str_of(md, "name"));
            let rv = md
                .get("resourceVersion")
                .and_then(Value::as_str)
                .and_then(|v| v.parse::<u64>().ok());
            let cached = match (prev.remove(uid), rv) {
                (Some(e), Some(rv))
                    if e.kind == kind && e.rv == rv && e.deps.current(&inputs, kind, route, ns) =>
                {
                    Some(e)
                }
                _ => None,
            };
            if let Some(e) = cached {
                memo.hits += 1;
                e.result
                    .apply(kind, (ns, name), rv, gws, &gw_index, backend_set, out);
                memo.entries.insert(uid.to_owned(), e);
                continue;
            }
            memo.misses += 1;
            let mut deps = Deps::new();
            let result = one_route(snap, &inputs, kind, route, gws, now, &mut deps);
            let stable = result.events.is_empty()
                && match &result.status {
                    Some(s) => route.get("status") == Some(&**s),
                    None => true,
                };
            if let (true, true, Some(rv), false) = (memo.enabled, stable, rv, uid.is_empty()) {
                if deps.cacheable {
                    let e = Entry {
                        kind,
                        rv,
                        deps,
                        result,
                    };
                    e.result
                        .apply(kind, (ns, name), Some(rv), gws, &gw_index, backend_set, out);
                    memo.entries.insert(uid.to_owned(), e);
                    continue;
                }
            }
            let unchanged = if stable { rv } else { None };
            result.apply(
                kind,
                (ns, name),
                unchanged,
                gws,
                &gw_index,
                backend_set,
                out,
            );
        }
    }
}

/// Per-route results kept between passes of the controller, so that a pass over 1,000 routes
/// only evaluates the routes whose inputs changed.
///
/// An entry is reused when the route has the same uid and resourceVersion and every input that
/// evaluating it read is unchanged: the resourceVersions of the Services its backendRefs name
/// (present or absent) and of its Namespace (labels, for `allowedRoutes` selectors), what its
/// parent Gateways offer to routes ([`gateway_print`]), the RoutePolicy effect on it, and the
/// resourceVersions of every ReferenceGrant (any change drops every entry). Only results that
/// did not depend on the clock are kept: the computed status equals the route's current status
/// exactly (so no `lastTransitionTime` was stamped) and no Event was noted.
#[derive(Debug)]
pub struct RouteMemo {
    enabled: bool,
    entries: HashMap<String, Entry>,
    grants: Vec<Option<u64>>,
    /// Routes reused / evaluated in the last pass.
    pub hits: usize,
    pub misses: usize,
}

impl Default for RouteMemo {
    fn default() -> Self {
        RouteMemo {
            enabled: true,
            entries: HashMap::new(),
            grants: Vec::new(),
            hits: 0,
            misses: 0,
        }
    }
}

impl RouteMemo {
    /// A memo that never keeps anything (one-off computes).
    pub fn disabled() -> Self {
        RouteMemo {
            enabled: false,
            ..RouteMemo::default()
        }
    }

    /// Starts a pass: returns the previous entries (routes not seen this pass are dropped with
    /// them), or none when a ReferenceGrant changed.
    fn begin(&mut self, snap: &Snapshot) -> HashMap<String, Entry> {
        self.hits = 0;
        self.misses = 0;
        let prev = std::mem::take(&mut self.entries);
        if !self.enabled {
            return HashMap::new();
        }
        let grants: Vec<Option<u64>> = snap.reference_grants.iter().map(|g| meta_rv(g)).collect();
        let same = grants == self.grants && grants.iter().all(Option::is_some);
        self.grants = grants;
        if same {
            prev
        } else {
            HashMap::new()
        }
    }
}

#[derive(Debug)]
struct Entry {
    kind: &'static str,
    rv: u64,
    deps: Deps,
    result: RouteResult,
}

/// What evaluating one route read besides the route itself and the ReferenceGrants.
#[derive(Debug)]
struct Deps {
    /// False when an input had no resourceVersion (objects built in tests).
    cacheable: bool,
    namespace: Option<u64>,
    policy: Option<RoutePolicyEffect>,
    /// (namespace, name) → resourceVersion of the Service, `None` when absent.
    services: Vec<((String, String), Option<u64>)>,
    /// Parent Gateways (of our classes) → [`gateway_print`], `None` when absent.
    gateways: Vec<(GwKey, Option<Arc<str>>)>,
}

/// Everything per pass that a route's evaluation may read, besides the snapshot.
struct Inputs<'a, 'b> {
    idx: &'a Index<'b>,
    gw_index: &'a HashMap<(String, String), usize>,
    prints: &'a [Arc<str>],
    policies: &'a HashMap<(String, String, String), RoutePolicyEffect>,
    /// resourceVersions of the Namespaces and Services in the index (see [`rv_of`]).
    namespace_rvs: HashMap<&'b str, Result<Option<u64>, ()>>,
    service_rvs: HashMap<(&'b str, &'b str), Result<Option<u64>, ()>>,
}

impl Inputs<'_, '_> {
    fn policy(&self, kind: &str, route: &Value) -> Option<&RoutePolicyEffect> {
        if self.policies.is_empty() {
            return None;
        }
        let key = (
            meta_str(route, "namespace").to_owned(),
            meta_str(route, "name").to_owned(),
            kind.to_owned(),
        );
        self.policies.get(&key)
    }

    fn namespace_rv(&self, ns: &str) -> Result<Option<u64>, ()> {
        self.namespace_rvs.get(ns).copied().unwrap_or(Ok(None))
    }

    fn service_rv(&self, ns: &str, name: &str) -> Result<Option<u64>, ()> {
        self.service_rvs
            .get(&(ns, name))
            .copied()
            .unwrap_or(Ok(None))
    }

    fn gateway_print(&self, key: &(String, String)) -> Option<Arc<str>> {
        self.gw_index.get(key).map(|&i| self.prints[i].clone())
    }
}

/// The resourceVersion of an optional object; `Err` when it exists without one.
fn rv_of(o: Option<&Value>) -> Result<Option<u64>, ()> {
    match o {
        None => Ok(None),
        Some(o) => meta_rv(o).map(Some).ok_or(()),
    }
}

impl Deps {
    fn new() -> Self {
        Deps {
            cacheable: true,
            namespace: None,
            policy: None,
            services: Vec::new(),
            gateways: Vec::new(),
        }
    }

    fn note(&mut self, rv: Result<Option<u64>, ()>) -> Option<u64> {
        rv.unwrap_or_else(|()| {
            self.cacheable = false;
            None
        })
    }

    fn service(&mut self, inputs: &Inputs<'_, '_>, ns: &str, name: &str) {
        if self.services.iter().any(|((n, m), _)| n == ns && m == name) {
            return;
        }
        let rv = self.note(inputs.service_rv(ns, name));
        self.services.push(((ns.to_owned(), name.to_owned()), rv));
    }

    fn gateway(&mut self, inputs: &Inputs<'_, '_>, key: &(String, String)) {
        if !self.gateways.iter().any(|(k, _)| k == key) {
            self.gateways.push((key.clone(), inputs.gateway_print(key)));
        }
    }

    /// Whether every recorded input still has the recorded value.
    fn current(&self, inputs: &Inputs<'_, '_>, kind: &str, route: &Value, ns: &str) -> bool {
        inputs.namespace_rv(ns) == Ok(self.namespace)
            && inputs.policy(kind, route) == self.policy.as_ref()
            && self
                .services
                .iter()
                .all(|((ns, name), rv)| inputs.service_rv(ns, name) == Ok(*rv))
            && self
                .gateways
                .iter()
                .all(|(key, print)| inputs.gateway_print(key) == *print)
    }
}

/// What a Gateway offers to routes: everything [`one_route`] and [`attach`] read from a
/// [`GatewayInfo`] (acceptance, and per listener its name, port, protocol, hostname, kinds,
/// namespace policy, acceptance and usability). The Gateway's status is not in it, so
/// `attachedRoutes` changing does not invalidate its routes.
fn gateway_print(gw: &GatewayInfo<'_>) -> Arc<str> {
    use std::fmt::Write;
    let mut s = format!("{}/{} {}\n", gw.ns, gw.name, gw.is_accepted());
    for l in &gw.listeners {
        let _ = writeln!(
            s,
            "{:?} {} {:?} {:?} {:?} {:?} {} {}",
            l.name,
            l.port,
            l.protocol,
            l.hostname,
            l.kinds,
            l.from,
            l.accepted.is_ok(),
            l.usable()
        );
    }
    s.into()
}

/// The contribution of one route to a pass.
#[derive(Debug)]
struct RouteResult {
    /// `None` when the route is not ours at all (its status is left alone).
    status: Option<Arc<Value>>,
    /// (Gateway index key, listener index, the compiled route when the listener is usable).
    attachments: Vec<(GwKey, usize, Option<Arc<RouteRuntime>>)>,
    /// Service ports to build backends for (only when accepted by some parent).
    backends: Vec<(crate::routing::BackendKey, bool)>,
    events: Vec<EventNote>,
}

impl RouteResult {
    /// Adds the result to the pass: listener attachments, backends, status and events.
    /// `unchanged` is the route's resourceVersion when `status` equals its current status.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        kind: &str,
        (ns, name): (&str, &str),
        unchanged: Option<u64>,
        gws: &mut [GatewayInfo<'_>],
        gw_index: &HashMap<(String, String), usize>,
        backend_set: &mut BackendSet,
        out: &mut Outcome,
    ) {
        for (key, li, rt) in &self.attachments {
            let Some(&gi) = gw_index.get(key) else {
                continue;
            };
            let l = &mut gws[gi].listeners[*li];
            l.attached += 1;
            if let Some(rt) = rt {
                l.routes.push(rt.clone());
            }
        }
        for (key, grpc) in &self.backends {
            backend_set.add(key.clone(), *grpc);
        }
        out.events.extend(self.events.iter().cloned());
        if let Some(status) = &self.status {
            out.statuses.push(StatusWrite {
                res: route_res(kind),
                ns: ns.to_owned(),
                name: name.to_owned(),
                status: status.clone(),
                unchanged_at: unchanged,
            });
        }
    }
}

fn route_res(kind: &str) -> &'static crate::resources::ResourceDef {
    if kind == "HTTPRoute" {
        kinds::httproutes()
    } else {
        kinds::grpcroutes()
    }
}

/// Evaluates one route from scratch, recording what it read in `deps`.
fn one_route(
    snap: &Snapshot,
    inputs: &Inputs<'_, '_>,
    kind: &'static str,
    route: &Value,
    gws: &[GatewayInfo<'_>],
    now: &str,
    deps: &mut Deps,
) -> RouteResult {
    let idx = inputs.idx;
    let ns = meta_str(route, "namespace");
    let name = meta_str(route, "name");
    let gen = meta::generation(route);
    let policy = inputs.policy(kind, route);
    deps.policy = policy.cloned();
    deps.namespace = deps.note(inputs.namespace_rv(ns));

    // Rules are compiled once; ResolvedRefs does not depend on the parent.
    let mut resolved: Result<(), Failure> = Ok(());
    let mut unsupported: Option<String> = None;
    let mut used_backends = Vec::new();
    let rules = compile_rules(
        snap,
        inputs,
        kind,
        route,
        policy,
        &mut resolved,
        &mut unsupported,
        &mut used_backends,
        deps,
    );

    let hostnames: Vec<String> = items_at(route, "/spec/hostnames")
        .filter_map(Value::as_str)
        .map(str::to_ascii_lowercase)
        .collect();
    let ns_labels = idx
        .namespaces
        .get(ns)
        .and_then(|n| n.pointer("/metadata/labels"));

    let mut result = RouteResult {
        status: None,
        attachments: Vec::new(),
        backends: Vec::new(),
        events: Vec::new(),
    };
    let old_parents = route.pointer("/status/parents").and_then(Value::as_array);
    let mut parents: Vec<Value> = old_parents
        .into_iter()
        .flatten()
        .filter(|p| str_of(p, "controllerName") != CONTROLLER_NAME)
        .cloned()
        .collect();
    let mut seen_refs = HashSet::new();
    let mut attached_to: HashSet<(usize, usize)> = HashSet::new();
    let mut any_accepted = false;

    for pr in items_at(route, "/spec/parentRefs") {
        let group = pr.get("group").and_then(Value::as_str).unwrap_or(GW_GROUP);
        let pkind = pr.get("kind").and_then(Value::as_str).unwrap_or("Gateway");
        if group != GW_GROUP || pkind != "Gateway" {
            continue;
        }
        let gw_ns = pr.get("namespace").and_then(Value::as_str).unwrap_or(ns);
        let gw_name = str_of(pr, "name");
        let gw_key = (gw_ns.to_owned(), gw_name.to_owned());
        deps.gateway(inputs, &gw_key);
        let Some(&gi) = inputs.gw_index.get(&gw_key) else {
            continue;
        };
        let section = pr.get("sectionName").and_then(Value::as_str);
        let port = pr.get("port").and_then(Value::as_i64);
        if !seen_refs.insert((
            gw_ns.to_owned(),
            gw_name.to_owned(),
            section.map(str::to_owned),
            port,
        )) {
            continue;
        }
        let mut echo =
            json!({"group": GW_GROUP, "kind": "Gateway", "name": gw_name, "namespace": gw_ns});
        if let Some(s) = section {
            echo["sectionName"] = json!(s);
        }
        if let Some(p) = port {
            echo["port"] = json!(p);
        }

        let gw = &gws[gi];
        let accepted: Result<Vec<(usize, Vec<String>)>, Failure> = if !gw.is_accepted() {
            Err((
                "Pending",
                format!("Gateway {gw_ns}/{gw_name} is not accepted"),
            ))
        } else {
            attach(gw, kind, ns, ns_labels, section, port, &hostnames)
        };
        let accepted = match (accepted, &unsupported) {
            (Ok(_), Some(m)) => Err(("UnsupportedValue", m.clone())),
            (a, _) => a,
        };

        let old_conds = old_parents
            .into_iter()
            .flatten()
            .find(|p| {
                str_of(p, "controllerName") == CONTROLLER_NAME && p.get("parentRef") == Some(&echo)
            })
            .and_then(|p| p.get("conditions"));
        let mut conds = vec![match &resolved {
            Ok(()) => condition(
                "ResolvedRefs",
                true,
                "ResolvedRefs",
                "",
                gen,
                old_conds,
                now,
            ),
            Err((r, m)) => condition("ResolvedRefs", false, r, m, gen, old_conds, now),
        }];
        match &accepted {
            Ok(listeners) => {
                any_accepted = true;
                conds.push(condition(
                    "Accepted",
                    true,
                    "Accepted",
                    "Route is Accepted",
                    gen,
                    old_conds,
                    now,
                ));
                conds.push(programmed_condition(gen, old_conds, now));
                for (li, effective) in listeners {
                    if !attached_to.insert((gi, *li)) {
                        continue;
                    }
                    let l = &gws[gi].listeners[*li];
                    let rt = l.usable().then(|| {
                        Arc::new(RouteRuntime {
                            namespace: ns.to_owned(),
                            name: name.to_owned(),
                            creation_timestamp: meta::creation_timestamp(route).to_owned(),
                            hostnames: effective.clone(),
                            rules: rules.clone(),
                        })
                    });
                    result.attachments.push((gw_key.clone(), *li, rt));
                }
            }
            Err((r, m)) => {
                conds.push(condition("Accepted", false, r, m, gen, old_conds, now));
                conds.push(condition(
                    "Programmed",
                    false,
                    "Invalid",
                    "Route is not accepted",
                    gen,
                    old_conds,
                    now,
                ));
                let old_same = old_conds
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        str_of(c, "type") == "Accepted"
                            && str_of(c, "status") == "False"
                            && str_of(c, "reason") == *r
                    });
                if !old_same {
                    result.events.push(EventNote {
                        res: route_res(kind),
                        ns: ns.to_owned(),
                        name: name.to_owned(),
                        uid: meta_str(route, "uid").to_owned(),
                        reason: r.to_string(),
                        message: format!("parent {gw_ns}/{gw_name}: {m}"),
                    });
                }
            }
        }
        parents.push(json!({
            "conditions": conds,
            "controllerName": CONTROLLER_NAME,
            "parentRef": echo,
        }));
    }

    if any_accepted {
        result.backends = used_backends;
    }

    let had_ours = old_parents
        .into_iter()
        .flatten()
        .any(|p| str_of(p, "controllerName") == CONTROLLER_NAME);
    if seen_refs.is_empty() && !had_ours {
        // Not ours at all: leave its status alone.
        return result;
    }
    let mut status = route.get("status").cloned().unwrap_or_else(|| json!({}));
    if !status.is_object() {
        status = json!({});
    }
    status["parents"] = Value::Array(parents);
    result.status = Some(Arc::new(status));
    result
}

/// Spec §3.3: the listeners of `gw` that accept the route, each with the route's effective
/// hostnames there.
fn attach(
    gw: &GatewayInfo<'_>,
    kind: &str,
    route_ns: &str,
    ns_labels: Option<&Value>,
    section: Option<&str>,
    port: Option<i64>,
    hostnames: &[String],
) -> Result<Vec<(usize, Vec<String>)>, Failure> {
    let l1: Vec<usize> = (0..gw.listeners.len())
        .filter(|&i| {
            let l = &gw.listeners[i];
            section.is_none_or(|s| s == l.name) && port.is_none_or(|p| p == l.port)
        })
        .collect();
    if l1.is_empty() {
        let what = match (section, port) {
            (Some(s), Some(p)) => format!("sectionName {s:?} and port {p}"),
            (Some(s), None) => format!("sectionName {s:?}"),
            (None, Some(p)) => format!("port {p}"),
            (None, None) => "the parentRef".to_owned(),
        };
        return Err((
            "NoMatchingParent",
            format!(
                "No listener of Gateway {}/{} matches {what}",
                gw.ns, gw.name
            ),
        ));
    }
    let l2: Vec<usize> = l1
        .into_iter()
        .filter(|&i| {
            let l = &gw.listeners[i];
            l.kinds.contains(&kind)
                && match &l.from {
                    FromNs::Same => route_ns == gw.ns,
                    FromNs::All => true,
                    FromNs::Selector(sel) => {
                        sel.as_ref().is_some_and(|s| s.matches_labels(ns_labels))
                    }
                }
        })
        .collect();
    if l2.is_empty() {
        return Err((
            "NotAllowedByListeners",
            format!("Route namespace {route_ns} / kind {kind} not allowed by any listener"),
        ));
    }
    let mut out = Vec::new();
    for i in l2 {
        let l = &gw.listeners[i];
        let effective: Option<Vec<String>> = match (&l.hostname, hostnames.is_empty()) {
            (None, _) => Some(hostnames.to_vec()),
            (Some(lh), true) => Some(vec![lh.clone()]),
            (Some(lh), false) => {
                let v: Vec<String> = hostnames
                    .iter()
                    .filter_map(|h| intersection(lh, h))
                    .collect();
                (!v.is_empty()).then_some(v)
            }
        };
        if let Some(e) = effective {
            out.push((i, e));
        }
    }
    if out.is_empty() {
        return Err((
            "NoMatchingListenerHostname",
            "No hostname of the route intersects the listener hostnames".to_owned(),
        ));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn compile_rules(
    snap: &Snapshot,
    inputs: &Inputs<'_, '_>,
    kind: &'static str,
    route: &Value,
    policy: Option<&RoutePolicyEffect>,
    resolved: &mut Result<(), Failure>,
    unsupported: &mut Option<String>,
    used: &mut Vec<(crate::routing::BackendKey, bool)>,
    deps: &mut Deps,
) -> Vec<RuleRuntime> {
    let idx = inputs.idx;
    let ns = meta_str(route, "namespace");
    let grpc = kind == "GRPCRoute";
    let mut rules = Vec::new();
    let fail = |e: String, unsupported: &mut Option<String>| {
        if unsupported.is_none() {
            *unsupported = Some(e);
        }
    };
    let mut target = |br: &Value, resolved: &mut Result<(), Failure>| -> BackendTarget {
        // The Service resolve_ref looks up (recorded even when the ref fails earlier).
        let sns = br.get("namespace").and_then(Value::as_str).unwrap_or(ns);
        deps.service(inputs, sns, str_of(br, "name"));
        match backends::resolve_ref(snap, idx, kind, ns, br) {
            Ok(key) => {
                used.push((key.clone(), grpc));
                BackendTarget::Service(key)
            }
            Err(e) => {
                if e.fatal && resolved.is_ok() {
                    *resolved = Err((e.reason, e.message.clone()));
                }
                BackendTarget::Invalid { reason: e.message }
            }
        }
    };
    for rule in items_at(route, "/spec/rules") {
        let mut rr = RuleRuntime::default();
        for m in items(rule, "matches") {
            let parsed = if grpc { grpc_match(m) } else { http_match(m) };
            match parsed {
                Ok(hm) => rr.matches.push(hm),
                Err(e) => fail(e, unsupported),
            }
        }
        for f in items(rule, "filters") {
            match filter(f, &mut |br| target(br, resolved)) {
                Ok(Some(f)) => rr.filters.push(f),
                Ok(None) => {}
                Err(e) => fail(e, unsupported),
            }
        }
        for br in items(rule, "backendRefs") {
            let weight = br.get("weight").and_then(Value::as_u64).unwrap_or(1) as u32;
            let t = target(br, resolved);
            let mut filters = Vec::new();
            for f in items(br, "filters") {
                match filter(f, &mut |b| target(b, resolved)) {
                    Ok(Some(f)) => filters.push(f),
                    Ok(None) => {}
                    Err(e) => fail(e, unsupported),
                }
            }
            rr.backends.push(WeightedBackend {
                weight,
                target: t,
                filters,
            });
        }
        let t = |k: &str| {
            rule.pointer(&format!("/timeouts/{k}"))
                .and_then(Value::as_str)
                .and_then(parse_go_duration)
        };
        rr.timeouts = Timeouts {
            request: t("request").or(policy.and_then(|p| p.timeout)),
            backend_request: t("backendRequest"),
        };
        rr.session_affinity = policy.and_then(|p| p.affinity.clone());
        rules.push(rr);
    }
    rules
}

fn string_match(m: &Value) -> Result<StringMatch, String> {
    let value = str_of(m, "value");
    match m.get("type").and_then(Value::as_str).unwrap_or("Exact") {
        "Exact" => Ok(StringMatch::Exact(value.to_owned())),
        "RegularExpression" => crate::routing::AnchoredRegex::new(value)
            .map(StringMatch::Regex)
            .map_err(|e| format!("invalid regular expression {value:?}: {e}")),
        other => Err(format!("unsupported match type {other}")),
    }
}

fn headers_of(m: &Value) -> Result<Vec<HeaderMatch>, String> {
    let mut out = Vec::new();
    for h in items(m, "headers") {
        let name = str_of(h, "name");
        out.push(
            HeaderMatch::new(name, string_match(h)?)
                .map_err(|_| format!("invalid header name {name:?}"))?,
        );
    }
    Ok(out)
}

fn http_match(m: &Value) -> Result<HttpMatch, String> {
    let path = match m.get("path") {
        None => PathMatch::Prefix("/".to_owned()),
        Some(p) => {
            let v = p
                .get("value")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_owned();
            match p
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("PathPrefix")
            {
                "Exact" => PathMatch::Exact(v),
                "PathPrefix" => PathMatch::Prefix(v),
                "RegularExpression" => PathMatch::regex(&v)
                    .map_err(|e| format!("invalid path regular expression {v:?}: {e}"))?,
                other => return Err(format!("unsupported path match type {other}")),
            }
        }
    };
    let mut query = Vec::new();
    for q in items(m, "queryParams") {
        query.push(QueryMatch {
            name: str_of(q, "name").to_owned(),
            value: string_match(q)?,
        });
    }
    let method = match m.get("method").and_then(Value::as_str) {
        None => None,
        Some(s) => {
            Some(Method::from_bytes(s.as_bytes()).map_err(|_| format!("invalid method {s:?}"))?)
        }
    };
    Ok(HttpMatch {
        path,
        headers: headers_of(m)?,
        query,
        method,
    })
}

/// A GRPCRoute method match becomes a path match on `/<service>/<method>`.
fn grpc_match(m: &Value) -> Result<HttpMatch, String> {
    let path = match m.get("method") {
        None => PathMatch::Prefix("/".to_owned()),
        Some(mm) => {
            let svc = str_of(mm, "service");
            let meth = str_of(mm, "method");
            match mm.get("type").and_then(Value::as_str).unwrap_or("Exact") {
                "Exact" => match (svc.is_empty(), meth.is_empty()) {
                    (false, false) => PathMatch::Exact(format!("/{svc}/{meth}")),
                    (false, true) => PathMatch::Prefix(format!("/{svc}")),
                    (true, false) => PathMatch::regex(&format!("/[^/]+/{}", regex::escape(meth)))
                        .map_err(|e| e.to_string())?,
                    (true, true) => PathMatch::Prefix("/".to_owned()),
                },
                "RegularExpression" => {
                    let s = if svc.is_empty() { "[^/]+" } else { svc };
                    let me = if meth.is_empty() { "[^/]+" } else { meth };
                    PathMatch::regex(&format!("/(?:{s})/(?:{me})"))
                        .map_err(|e| format!("invalid method regular expression: {e}"))?
                }
                other => return Err(format!("unsupported method match type {other}")),
            }
        }
    };
    Ok(HttpMatch {
        path,
        headers: headers_of(m)?,
        query: Vec::new(),
        method: None,
    })
}

fn header_modifier(v: Option<&Value>) -> Result<HeaderModifier, String> {
    let mut hm = HeaderModifier::default();
    let Some(v) = v else { return Ok(hm) };
    let pair = |h: &Value| -> Result<(HeaderName, HeaderValue), String> {
        let n = str_of(h, "name");
        let val = str_of(h, "value");
        Ok((
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("invalid header name {n:?}"))?,
            HeaderValue::from_str(val).map_err(|_| format!("invalid header value for {n}"))?,
        ))
    };
    for h in v.get("set").and_then(Value::as_array).into_iter().flatten() {
        hm.set.push(pair(h)?);
    }
    for h in v.get("add").and_then(Value::as_array).into_iter().flatten() {
        hm.add.push(pair(h)?);
    }
    for n in items(v, "remove").filter_map(Value::as_str) {
        hm.remove.push(
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| format!("invalid header name {n:?}"))?,
        );
    }
    Ok(hm)
}

fn path_modifier(p: Option<&Value>) -> Result<Option<PathModifier>, String> {
    let Some(p) = p else { return Ok(None) };
    match str_of(p, "type") {
        "ReplaceFullPath" => Ok(Some(PathModifier::ReplaceFullPath(
            str_of(p, "replaceFullPath").to_owned(),
        ))),
        "ReplacePrefixMatch" => Ok(Some(PathModifier::ReplacePrefixMatch(
            str_of(p, "replacePrefixMatch").to_owned(),
        ))),
        other => Err(format!("unsupported path modifier type {other:?}")),
    }
}

/// `HTTPCORSFilter`; `maxAge` absent is the CRD default, 5 seconds (AGC's default too).
fn cors(c: &Value) -> CorsPolicy {
    let strings = |k: &str| -> Vec<String> {
        c.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    CorsPolicy {
        allow_origins: strings("allowOrigins"),
        allow_credentials: c.get("allowCredentials").and_then(Value::as_bool) == Some(true),
        allow_methods: strings("allowMethods"),
        allow_headers: strings("allowHeaders"),
        expose_headers: strings("exposeHeaders"),
        max_age: c
            .get("maxAge")
            .and_then(Value::as_u64)
            .map_or(5, |v| u32::try_from(v).unwrap_or(u32::MAX)),
    }
}

/// Converts one filter. `Ok(None)` = accepted but nothing for the data plane to do.
fn filter(
    f: &Value,
    target: &mut dyn FnMut(&Value) -> BackendTarget,
) -> Result<Option<Filter>, String> {
    let t = str_of(f, "type");
    Ok(Some(match t {
        "RequestHeaderModifier" => {
            Filter::RequestHeaderModifier(header_modifier(f.get("requestHeaderModifier"))?)
        }
        "ResponseHeaderModifier" => {
            Filter::ResponseHeaderModifier(header_modifier(f.get("responseHeaderModifier"))?)
        }
        "RequestRedirect" => {
            let r = f.get("requestRedirect").cloned().unwrap_or_default();
            Filter::RequestRedirect(RequestRedirect {
                scheme: r.get("scheme").and_then(Value::as_str).map(str::to_owned),
                hostname: r.get("hostname").and_then(Value::as_str).map(str::to_owned),
                port: r
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok()),
                path: path_modifier(r.get("path"))?,
                status_code: r.get("statusCode").and_then(Value::as_u64).unwrap_or(302) as u16,
            })
        }
        "URLRewrite" => {
            let r = f.get("urlRewrite").cloned().unwrap_or_default();
            Filter::UrlRewrite(UrlRewrite {
                hostname: r.get("hostname").and_then(Value::as_str).map(str::to_owned),
                path: path_modifier(r.get("path"))?,
            })
        }
        "RequestMirror" => {
            let r = f.get("requestMirror").cloned().unwrap_or_default();
            let (numerator, denominator) = if let Some(p) = r.get("percent").and_then(Value::as_u64)
            {
                (p as u32, 100)
            } else if let Some(fr) = r.get("fraction") {
                (
                    fr.get("numerator").and_then(Value::as_u64).unwrap_or(1) as u32,
                    fr.get("denominator")
                        .and_then(Value::as_u64)
                        .unwrap_or(100)
                        .max(1) as u32,
                )
            } else {
                (1, 1)
            };
            Filter::RequestMirror(RequestMirror {
                target: target(r.get("backendRef").unwrap_or(&Value::Null)),
                numerator,
                denominator,
            })
        }
        "ExtensionRef" => Filter::Unsupported {
            reason: "ExtensionRef filters are not supported by AGC".to_owned(),
        },
        "CORS" => Filter::Cors(cors(f.get("cors").unwrap_or(&Value::Null))),
        other => return Err(format!("Unsupported filter type {other}")),
    }))
}
