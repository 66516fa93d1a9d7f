//! The reconcile function: [`compute`] turns a [`Snapshot`] into the routing table and the
//! status every object should have. Pure: no store, no clock (the time is in the snapshot).
//!
//! Order of work: GatewayClasses → ApplicationLoadBalancers → Gateways and listeners (validation,
//! addresses) → routes (attachment, backends) → backends (endpoints, probes) → Gateway status
//! (which needs attachedRoutes) → policies → table.

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::backends::{self, BackendSet};
use super::model::CONTROLLER_NAME;
use super::model::*;
use super::routes::{self, RouteMemo};
use super::snapshot::{Index, Snapshot};
use super::util::{condition, items_at, merge_conditions, programmed_condition, str_of, GW_GROUP};
use crate::meta;
use crate::resources::kinds;
use crate::routing::{
    CertificatePem, GatewayRuntime, ListenerProtocol, ListenerRuntime, RouteIndex, RoutingTable,
    TlsSettings,
};
use crate::store::LabelSelector;

/// Computes the routing table and every status from a snapshot.
pub fn compute(snap: &Snapshot) -> Outcome {
    compute_with(snap, &mut RouteMemo::disabled())
}

/// [`compute`], reusing the per-route results of earlier passes kept in `memo` where the
/// route's inputs did not change (and updating `memo`). The outcome is the same as
/// [`compute`]'s for the same snapshot.
pub fn compute_with(snap: &Snapshot, memo: &mut RouteMemo) -> Outcome {
    let now = humantime::format_rfc3339_seconds(snap.now).to_string();
    let idx = Index::new(snap);
    let mut out = Outcome::default();

    let classes = gateway_classes(snap, &now, &mut out);
    let albs = albs(snap, &now, &mut out);
    let mut gws = gateways(snap, &idx, &classes, &albs);
    allocate_addresses(&mut gws);

    let policy_effects = backends::route_policy_effects(snap);
    let mut backend_set = BackendSet::default();
    routes::process(
        snap,
        &idx,
        &mut gws,
        &policy_effects,
        &mut backend_set,
        &now,
        &mut out,
        memo,
    );
    let backends = backends::build(snap, &idx, &backend_set);

    for gw in &gws {
        gateway_status(snap, gw, &now, &mut out);
    }
    backends::policy_statuses(snap, &idx, &now, &mut out);

    let mut table = RoutingTable {
        backends,
        ..Default::default()
    };
    for gw in gws {
        if !gw.is_accepted() || gw.deployable.is_err() {
            continue;
        }
        let Some(address) = gw.address else { continue };
        let listeners = gw
            .listeners
            .into_iter()
            .filter(|l| l.usable())
            .filter_map(|l| {
                Some(ListenerRuntime {
                    name: l.name,
                    port: u16::try_from(l.port).ok()?,
                    protocol: l.protocol?,
                    hostname: l.hostname,
                    tls: l.tls,
                    routes: RouteIndex::new(l.routes),
                })
            })
            .collect();
        table.gateways.push(Arc::new(GatewayRuntime {
            namespace: gw.ns.to_owned(),
            name: gw.name.to_owned(),
            address,
            listeners,
        }));
    }
    out.table = table;
    out
}

// === GatewayClass ===

/// Our classes by name, with whether each is Accepted.
fn gateway_classes(snap: &Snapshot, now: &str, out: &mut Outcome) -> HashMap<String, bool> {
    let mut ours = HashMap::new();
    for gc in &snap.gateway_classes {
        if gc.pointer("/spec/controllerName").and_then(Value::as_str) != Some(CONTROLLER_NAME) {
            continue;
        }
        let gen = meta::generation(gc);
        let old = gc.pointer("/status/conditions");
        let (ok, reason, msg) = match gc.pointer("/spec/parametersRef") {
            Some(p) if !p.is_null() => (
                false,
                "InvalidParameters",
                format!(
                    "parametersRef {}/{} {} is not supported by alb-controller",
                    str_of(p, "group"),
                    str_of(p, "kind"),
                    str_of(p, "name")
                ),
            ),
            _ => (true, "Accepted", "Valid GatewayClass".to_owned()),
        };
        let conds = vec![condition("Accepted", ok, reason, &msg, gen, old, now)];
        let mut status = gc.get("status").cloned().unwrap_or_else(|| json!({}));
        status["conditions"] = merge_conditions(old, conds, &["Accepted"]);
        out.statuses.push(StatusWrite {
            res: kinds::gatewayclasses(),
            ns: String::new(),
            name: meta::name(gc).to_owned(),
            status: Arc::new(status),
            unchanged_at: None,
        });
        ours.insert(meta::name(gc).to_owned(), ok);
    }
    ours
}

// === ApplicationLoadBalancer ===

/// The AGC resource name AGC shows for an ALB: `alb-` + 8 hex digits stable per uid.
pub fn alb_resource_name(alb: &Value) -> String {
    let hex: String = meta::uid(alb)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    let hex = if hex.len() == 8 {
        hex
    } else {
        // No uid (objects built in tests): hash the name instead.
        let h = meta::name(alb).bytes().fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        format!("{h:08x}")
    };
    format!("alb-{hex}")
}

/// ALB ARM id as the sandbox reports it.
pub fn alb_id(resource_name: &str) -> String {
    format!(
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/agc-sandbox/providers/Microsoft.ServiceNetworking/trafficControllers/{resource_name}"
    )
}

/// ALBs by (namespace, name): `Ok(())` when provisioned, `Err(remaining)` while in progress.
fn albs(
    snap: &Snapshot,
    now: &str,
    out: &mut Outcome,
) -> HashMap<(String, String), Result<(), String>> {
    let mut map = HashMap::new();
    for alb in &snap.albs {
        let gen = meta::generation(alb);
        let old = alb.pointer("/status/conditions");
        let res_name = alb_resource_name(alb);
        let created = meta::parse_rfc3339(meta::creation_timestamp(alb)).unwrap_or(snap.now);
        let ready_at = created + snap.alb_provisioning_delay;
        let deployment = match ready_at.duration_since(snap.now) {
            Ok(left) if !left.is_zero() => {
                // Wake up when it is due (plus a little: creationTimestamp has whole seconds).
                let left = left + Duration::from_millis(50);
                out.requeue_after = Some(out.requeue_after.map_or(left, |r| r.min(left)));
                condition(
                    "Deployment",
                    true,
                    "InProgress",
                    &format!("Application Gateway for Containers resource {res_name} is undergoing an update."),
                    gen,
                    old,
                    now,
                )
            }
            _ => condition(
                "Deployment",
                true,
                "Ready",
                &format!("alb-id={}", alb_id(&res_name)),
                gen,
                old,
                now,
            ),
        };
        let ready = str_of(&deployment, "reason") == "Ready";
        let conds = vec![
            condition(
                "Accepted",
                true,
                "Accepted",
                "Valid Application Gateway for Containers resource",
                gen,
                old,
                now,
            ),
            deployment,
        ];
        let mut status = alb.get("status").cloned().unwrap_or_else(|| json!({}));
        status["conditions"] = merge_conditions(old, conds, &["Accepted", "Deployment"]);
        out.statuses.push(StatusWrite {
            res: kinds::applicationloadbalancers(),
            ns: meta::namespace(alb).to_owned(),
            name: meta::name(alb).to_owned(),
            status: Arc::new(status),
            unchanged_at: None,
        });
        map.insert(
            (meta::namespace(alb).to_owned(), meta::name(alb).to_owned()),
            if ready {
                Ok(())
            } else {
                Err(format!(
                    "ApplicationLoadBalancer {}/{} ({res_name}) is still being provisioned",
                    meta::namespace(alb),
                    meta::name(alb)
                ))
            },
        );
    }
    map
}

// === Gateway ===

const ANN_ALB_NS: &str = "alb.networking.azure.io/alb-namespace";
const ANN_ALB_NAME: &str = "alb.networking.azure.io/alb-name";
const ANN_ALB_ID: &str = "alb.networking.azure.io/alb-id";
/// BYO frontend address type.
pub const FRONTEND_ADDRESS_TYPE: &str = "alb.networking.azure.io/alb-frontend";

fn gateways<'a>(
    snap: &'a Snapshot,
    idx: &Index<'a>,
    classes: &HashMap<String, bool>,
    albs: &HashMap<(String, String), Result<(), String>>,
) -> Vec<GatewayInfo<'a>> {
    let mut out = Vec::new();
    for gw in &snap.gateways {
        let class = gw
            .pointer("/spec/gatewayClassName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(&class_ok) = classes.get(class) else {
            continue;
        };
        let ns = meta::namespace(gw);
        let (mut accepted, deployable) = if class_ok {
            frontend_mode(gw, albs)
        } else {
            (
                Err(("Invalid", format!("GatewayClass {class} is not accepted"))),
                Ok(()),
            )
        };
        let specs: Vec<&Value> = items_at(gw, "/spec/listeners").collect();
        if accepted.is_ok() && specs.len() > MAX_LISTENERS {
            accepted = Err((
                "ListenersNotValid",
                format!(
                    "Gateway has {} listeners; AGC supports at most {MAX_LISTENERS}",
                    specs.len()
                ),
            ));
        }
        let mut listeners: Vec<ListenerInfo> =
            specs.iter().map(|l| listener(snap, idx, ns, l)).collect();
        mark_conflicts(&mut listeners);
        out.push(GatewayInfo {
            obj: gw,
            ns,
            name: meta::name(gw),
            accepted,
            deployable,
            address: None,
            listeners,
        });
    }
    out
}

/// Validates the ALB wiring of a Gateway: ALB-managed, BYO, or the sandbox's default frontend.
fn frontend_mode(
    gw: &Value,
    albs: &HashMap<(String, String), Result<(), String>>,
) -> (Verdict, Result<(), String>) {
    let addrs: Vec<&Value> = items_at(gw, "/spec/addresses").collect();
    if let Some(bad) = addrs
        .iter()
        .map(|a| a.get("type").and_then(Value::as_str).unwrap_or("IPAddress"))
        .find(|t| *t != FRONTEND_ADDRESS_TYPE)
    {
        return (
            Err((
                "UnsupportedAddress",
                format!("Address type {bad} is not supported; AGC supports only {FRONTEND_ADDRESS_TYPE} (bring-your-own frontend)"),
            )),
            Ok(()),
        );
    }
    let alb_ns = meta::annotation(gw, ANN_ALB_NS);
    let alb_name = meta::annotation(gw, ANN_ALB_NAME);
    let alb_id = meta::annotation(gw, ANN_ALB_ID);
    match (alb_ns, alb_name, alb_id) {
        (Some(ns), Some(name), _) => {
            if !addrs.is_empty() {
                return (
                    Err(("Invalid", format!("spec.addresses of type {FRONTEND_ADDRESS_TYPE} need the {ANN_ALB_ID} annotation (bring your own); ALB-managed Gateways get their frontend created"))),
                    Ok(()),
                );
            }
            match albs.get(&(ns.to_owned(), name.to_owned())) {
                None => (
                    Err((
                        "Invalid",
                        format!("ApplicationLoadBalancer \"{ns}/{name}\" not found: create it or fix the alb-namespace/alb-name annotations"),
                    )),
                    Ok(()),
                ),
                Some(ready) => (Ok(()), ready.clone()),
            }
        }
        (Some(_), None, None) | (None, Some(_), None) => {
            let missing = if alb_ns.is_none() {
                ANN_ALB_NS
            } else {
                ANN_ALB_NAME
            };
            (
                Err(("Invalid", format!("annotation {missing} is missing: an ALB-managed Gateway needs both {ANN_ALB_NS} and {ANN_ALB_NAME}"))),
                Ok(()),
            )
        }
        (_, _, Some(id)) => {
            let lower = id.to_ascii_lowercase();
            if !(lower.starts_with("/subscriptions/")
                && lower.contains("/providers/microsoft.servicenetworking/trafficcontrollers/"))
            {
                return (
                    Err(("Invalid", format!("annotation {ANN_ALB_ID} {id:?} is not an Application Gateway for Containers resource ID (/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.ServiceNetworking/trafficControllers/<name>)"))),
                    Ok(()),
                );
            }
            let has_frontend = addrs.iter().any(|a| !str_of(a, "value").is_empty());
            if !has_frontend {
                return (
                    Err(("Invalid", format!("a bring-your-own Gateway ({ANN_ALB_ID}) needs spec.addresses with a {FRONTEND_ADDRESS_TYPE} entry naming the frontend"))),
                    Ok(()),
                );
            }
            (Ok(()), Ok(()))
        }
        (None, None, None) => {
            if addrs.is_empty() {
                // Plain Gateway API manifests: served by a default sandbox frontend.
                (Ok(()), Ok(()))
            } else {
                (
                    Err(("Invalid", format!("spec.addresses of type {FRONTEND_ADDRESS_TYPE} need the {ANN_ALB_ID} annotation"))),
                    Ok(()),
                )
            }
        }
    }
}

fn listener(snap: &Snapshot, idx: &Index<'_>, gw_ns: &str, l: &Value) -> ListenerInfo {
    let name = str_of(l, "name").to_owned();
    let port = l.get("port").and_then(Value::as_i64).unwrap_or(0);
    let proto_s = str_of(l, "protocol");
    let protocol = if proto_s.eq_ignore_ascii_case("HTTP") {
        Some(ListenerProtocol::Http)
    } else if proto_s.eq_ignore_ascii_case("HTTPS") {
        Some(ListenerProtocol::Https)
    } else {
        None
    };
    let hostname = l
        .get("hostname")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
        .map(|h| h.to_ascii_lowercase());

    let accepted = if protocol.is_none() {
        Err((
            "UnsupportedProtocol",
            format!("Protocol {proto_s} is not supported; AGC supports HTTP and HTTPS"),
        ))
    } else if snap.strict_ports && port != 80 && port != 443 {
        Err((
            "PortUnavailable",
            format!("Port {port} is not supported; AGC supports listener ports 80 and 443 only"),
        ))
    } else if !(1..=65535).contains(&port) {
        Err((
            "PortUnavailable",
            format!("Port {port} is not a valid port"),
        ))
    } else if protocol == Some(ListenerProtocol::Https)
        && l.pointer("/tls/mode").and_then(Value::as_str) == Some("Passthrough")
    {
        Err((
            "UnsupportedValue",
            "tls.mode Passthrough is not supported; AGC terminates TLS (mode Terminate)".to_owned(),
        ))
    } else {
        Ok(())
    };

    // Route kinds (spec §2.4), then certificates; the first failure is reported.
    let proto_kinds: &[&'static str] = if protocol.is_some() {
        &["HTTPRoute", "GRPCRoute"]
    } else {
        &[]
    };
    let listed = l
        .pointer("/allowedRoutes/kinds")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty());
    let mut kinds: Vec<&'static str> = Vec::new();
    let mut resolved: Result<(), (&'static str, String)> = Ok(());
    match listed {
        None => {
            if protocol.is_some() {
                kinds.push("HTTPRoute");
                if snap.grpcroute_in_default_kinds {
                    kinds.push("GRPCRoute");
                }
            }
        }
        Some(entries) => {
            for k in entries {
                let group = k.get("group").and_then(Value::as_str).unwrap_or(GW_GROUP);
                let kind = str_of(k, "kind");
                match proto_kinds.iter().find(|pk| **pk == kind) {
                    Some(pk) if group == GW_GROUP => {
                        if !kinds.contains(pk) {
                            kinds.push(pk);
                        }
                    }
                    _ => {
                        if resolved.is_ok() {
                            resolved = Err((
                                "InvalidRouteKinds",
                                format!("Route kind {group}/{kind} is not supported by this listener; supported: HTTPRoute, GRPCRoute"),
                            ));
                        }
                    }
                }
            }
        }
    }

    let from = match l
        .pointer("/allowedRoutes/namespaces/from")
        .and_then(Value::as_str)
        .unwrap_or("Same")
    {
        "All" => FromNs::All,
        "Selector" => FromNs::Selector(
            l.pointer("/allowedRoutes/namespaces/selector")
                .filter(|s| s.as_object().is_some_and(|m| !m.is_empty()))
                .and_then(|s| LabelSelector::from_object(s).ok())
                .filter(|s| !s.is_empty()),
        ),
        _ => FromNs::Same,
    };

    let mut tls = None;
    if protocol == Some(ListenerProtocol::Https) {
        match certificates(snap, idx, gw_ns, l, hostname.as_deref()) {
            Ok(t) => tls = Some(t),
            Err(e) => {
                if resolved.is_ok() {
                    resolved = Err(e);
                }
            }
        }
    }

    ListenerInfo {
        name,
        port,
        protocol,
        hostname,
        kinds,
        from,
        accepted,
        conflicted: None,
        resolved,
        tls,
        attached: 0,
        routes: Vec::new(),
    }
}

fn certificates(
    snap: &Snapshot,
    idx: &Index<'_>,
    gw_ns: &str,
    l: &Value,
    hostname: Option<&str>,
) -> Result<TlsSettings, (&'static str, String)> {
    let refs: Vec<&Value> = items_at(l, "/tls/certificateRefs").collect();
    if refs.is_empty() {
        return Err((
            "InvalidCertificateRef",
            "HTTPS listener has no tls.certificateRefs".to_owned(),
        ));
    }
    if refs.len() > MAX_CERTIFICATE_REFS {
        return Err((
            "InvalidCertificateRef",
            format!(
                "Listener has {} certificateRefs; AGC supports at most {MAX_CERTIFICATE_REFS} (one RSA and one ECDSA)",
                refs.len()
            ),
        ));
    }
    let mut certs = Vec::new();
    for r in refs {
        let group = r.get("group").and_then(Value::as_str).unwrap_or("");
        let kind = r.get("kind").and_then(Value::as_str).unwrap_or("Secret");
        let name = str_of(r, "name");
        let ns = r.get("namespace").and_then(Value::as_str).unwrap_or(gw_ns);
        if !group.is_empty() {
            return Err((
                "InvalidCertificateRef",
                format!("unsupported certificateRef group {group:?}"),
            ));
        }
        if kind != "Secret" {
            return Err((
                "InvalidCertificateRef",
                format!("unsupported certificateRef kind {kind}"),
            ));
        }
        let from = super::util::RefFrom {
            group: GW_GROUP,
            kind: "Gateway",
            namespace: gw_ns,
        };
        if !super::util::grant_allows(&snap.reference_grants, &from, "", "Secret", ns, name) {
            return Err((
                "RefNotPermitted",
                format!(
                    "Certificate ref to Secret {ns}/{name} not permitted by any ReferenceGrant"
                ),
            ));
        }
        let Some(secret) = idx.secrets.get(&(ns, name)) else {
            return Err((
                "InvalidCertificateRef",
                format!("Secret {ns}/{name} not found"),
            ));
        };
        let stype = str_of(secret, "type");
        if stype != "kubernetes.io/tls" {
            return Err((
                "InvalidCertificateRef",
                format!("Secret {ns}/{name} has type {stype:?}; a listener certificate must be of type kubernetes.io/tls"),
            ));
        }
        let field = |k: &str| -> Option<String> {
            let b64 = secret
                .pointer(&format!("/data/{}", k.replace('/', "~1")))?
                .as_str()?;
            String::from_utf8(super::util::base64_decode(b64)?).ok()
        };
        let (Some(crt), Some(key)) = (field("tls.crt"), field("tls.key")) else {
            return Err((
                "InvalidCertificateRef",
                format!("Secret {ns}/{name} lacks tls.crt or tls.key"),
            ));
        };
        if !super::util::pem_has_block(&crt, |l| l == "CERTIFICATE") {
            return Err((
                "InvalidCertificateRef",
                format!("Secret {ns}/{name} has an invalid tls.crt: no PEM CERTIFICATE block"),
            ));
        }
        if !super::util::pem_has_block(&key, |l| l.ends_with("PRIVATE KEY")) {
            return Err((
                "InvalidCertificateRef",
                format!("Secret {ns}/{name} has an invalid tls.key: no PEM PRIVATE KEY block"),
            ));
        }
        certs.push(CertificatePem {
            secret: format!("{ns}/{name}"),
            hostname: hostname.map(str::to_owned),
            cert_chain_pem: crt,
            key_pem: key,
        });
    }
    Ok(TlsSettings {
        certificates: certs,
    })
}

/// Listeners sharing a port must agree on the protocol and differ in hostname.
fn mark_conflicts(listeners: &mut [ListenerInfo]) {
    let n = listeners.len();
    let mut conflict: Vec<Option<&'static str>> = vec![None; n];
    for i in 0..n {
        for j in 0..n {
            if i == j || listeners[i].accepted.is_err() || listeners[j].accepted.is_err() {
                continue;
            }
            let (a, b) = (&listeners[i], &listeners[j]);
            if a.port != b.port {
                continue;
            }
            if a.protocol != b.protocol {
                conflict[i] = Some("ProtocolConflict");
            } else if a.hostname == b.hostname && conflict[i].is_none() {
                conflict[i] = Some("HostnameConflict");
            }
        }
    }
    for (l, c) in listeners.iter_mut().zip(conflict) {
        if let Some(reason) = c {
            l.conflicted = Some(reason);
            l.accepted = Err((
                reason,
                format!(
                    "Listener conflicts with another listener on port {}",
                    l.port
                ),
            ));
        }
    }
}

/// Gives every accepted Gateway a stable loopback address: the one in its status when free,
/// else the lowest free one in 127.20.0.0/16.
fn allocate_addresses(gws: &mut [GatewayInfo<'_>]) {
    let mut order: Vec<usize> = (0..gws.len()).filter(|&i| gws[i].is_accepted()).collect();
    order.sort_by(|&a, &b| {
        let ts = |i: usize| meta::creation_timestamp(gws[i].obj);
        ts(a)
            .cmp(ts(b))
            .then_with(|| (gws[a].ns, gws[a].name).cmp(&(gws[b].ns, gws[b].name)))
    });
    let mut used = HashSet::new();
    for &i in &order {
        let existing = items_at(gws[i].obj, "/status/addresses")
            .filter(|a| str_of(a, "type") == "IPAddress")
            .filter_map(|a| str_of(a, "value").parse::<Ipv4Addr>().ok())
            .find(|ip| {
                ip.octets()[..2] == GATEWAY_NET && ip.octets()[3] != 0 && !used.contains(ip)
            });
        if let Some(ip) = existing {
            used.insert(ip);
            gws[i].address = Some(ip);
        }
    }
    let mut next: u32 = 1;
    for &i in &order {
        if gws[i].address.is_some() {
            continue;
        }
        while next < 65_535 {
            let ip = Ipv4Addr::new(
                GATEWAY_NET[0],
                GATEWAY_NET[1],
                (next >> 8) as u8,
                next as u8,
            );
            next += 1;
            if ip.octets()[3] == 0 || ip.octets()[3] == 255 || used.contains(&ip) {
                continue;
            }
            used.insert(ip);
            gws[i].address = Some(ip);
            break;
        }
    }
}

fn gateway_status(snap: &Snapshot, gw: &GatewayInfo<'_>, now: &str, out: &mut Outcome) {
    let gen = meta::generation(gw.obj);
    let old_status = gw.obj.get("status");
    let old_conds = gw.obj.pointer("/status/conditions");
    let old_listeners = gw
        .obj
        .pointer("/status/listeners")
        .and_then(Value::as_array);

    let mut listeners_json = Vec::new();
    let mut any_programmed = false;
    for l in &gw.listeners {
        let old = old_listeners
            .and_then(|a| a.iter().find(|o| str_of(o, "name") == l.name))
            .and_then(|o| o.get("conditions"));
        let mut conds = Vec::new();
        conds.push(match &l.resolved {
            Ok(()) => condition("ResolvedRefs", true, "ResolvedRefs", "", gen, old, now),
            Err((r, m)) => condition("ResolvedRefs", false, r, m, gen, old, now),
        });
        conds.push(match (&gw.accepted, &l.accepted) {
            (Err((_, m)), _) => condition(
                "Accepted",
                false,
                "Invalid",
                &format!("Gateway is not accepted: {m}"),
                gen,
                old,
                now,
            ),
            (Ok(()), Ok(())) => condition(
                "Accepted",
                true,
                "Accepted",
                "Listener is accepted",
                gen,
                old,
                now,
            ),
            (Ok(()), Err((r, m))) => condition("Accepted", false, r, m, gen, old, now),
        });
        let bind = snap
            .bindings
            .get(&(gw.ns.to_owned(), gw.name.to_owned(), l.name.clone()));
        let programmed: Result<(), (&str, String)> = if gw.accepted.is_err() || l.accepted.is_err()
        {
            Err(("Invalid", "Listener is not accepted".to_owned()))
        } else if l.resolved.is_err() {
            Err(("Invalid", "Listener has unresolved references".to_owned()))
        } else if let Err(m) = &gw.deployable {
            Err(("Pending", m.clone()))
        } else if let Some(Err(e)) = bind {
            Err((
                "Invalid",
                format!(
                    "Listener could not be bound on {}:{}: {e}",
                    gw.address.map(|a| a.to_string()).unwrap_or_default(),
                    l.port
                ),
            ))
        } else {
            Ok(())
        };
        any_programmed |= programmed.is_ok();
        conds.push(match programmed {
            Ok(()) => programmed_condition(gen, old, now),
            Err((r, m)) => condition("Programmed", false, r, &m, gen, old, now),
        });
        if let Some(reason) = l.conflicted {
            conds.push(condition(
                "Conflicted",
                true,
                reason,
                &format!(
                    "Listener conflicts with another listener on port {}",
                    l.port
                ),
                gen,
                old,
                now,
            ));
        }
        let kinds: Vec<Value> = l
            .kinds
            .iter()
            .map(|k| json!({"group": GW_GROUP, "kind": k}))
            .collect();
        listeners_json.push(json!({
            "name": l.name,
            "supportedKinds": kinds,
            "attachedRoutes": l.attached,
            "conditions": Value::Array(conds),
        }));
    }

    let accepted: Result<(&str, String), (&str, String)> = match &gw.accepted {
        Err((r, m)) => Err((r, m.clone())),
        Ok(()) => {
            let bad: Vec<&str> = gw
                .listeners
                .iter()
                .filter(|l| l.accepted.is_err())
                .map(|l| l.name.as_str())
                .collect();
            if gw.listeners.is_empty() || bad.len() == gw.listeners.len() {
                Err(("ListenersNotValid", "No valid listeners".to_owned()))
            } else if bad.is_empty() {
                Ok(("Accepted", "Valid Gateway".to_owned()))
            } else {
                Ok((
                    "ListenersNotValid",
                    format!(
                        "Listeners [{}] are not valid; the others are accepted",
                        bad.join(", ")
                    ),
                ))
            }
        }
    };
    let programmed: Result<(), (&str, String)> = if accepted.is_err() {
        Err(("Invalid", "Gateway is not accepted".to_owned()))
    } else if let Err(m) = &gw.deployable {
        Err(("Pending", m.clone()))
    } else if gw.address.is_none() {
        Err((
            "AddressNotAssigned",
            "No addresses have been assigned to the Gateway".to_owned(),
        ))
    } else if !any_programmed {
        Err(("Invalid", "No listener could be programmed".to_owned()))
    } else {
        Ok(())
    };
    let mut conds = vec![match &accepted {
        Ok((r, m)) => condition("Accepted", true, r, m, gen, old_conds, now),
        Err((r, m)) => condition("Accepted", false, r, m, gen, old_conds, now),
    }];
    conds.push(match &programmed {
        Ok(()) => programmed_condition(gen, old_conds, now),
        Err((r, m)) => condition("Programmed", false, r, m, gen, old_conds, now),
    });

    if let Err((reason, message)) = &accepted {
        let was_false_same = meta::condition(gw.obj, "Accepted")
            .is_some_and(|c| str_of(c, "status") == "False" && str_of(c, "reason") == *reason);
        if !was_false_same {
            out.events.push(EventNote {
                res: kinds::gateways(),
                ns: gw.ns.to_owned(),
                name: gw.name.to_owned(),
                uid: meta::uid(gw.obj).to_owned(),
                reason: reason.to_string(),
                message: message.clone(),
            });
        }
    }

    let mut status = old_status.cloned().unwrap_or_else(|| json!({}));
    if !status.is_object() {
        status = json!({});
    }
    let obj = status.as_object_mut().expect("just made an object");
    match (gw.address, accepted.is_ok()) {
        (Some(ip), true) => {
            obj.insert(
                "addresses".into(),
                json!([{"type": "IPAddress", "value": ip.to_string()}]),
            );
        }
        _ => {
            obj.remove("addresses");
        }
    }
    obj.insert(
        "conditions".into(),
        merge_conditions(old_conds, conds, &["Accepted", "Programmed"]),
    );
    obj.insert("listeners".into(), Value::Array(listeners_json));
    out.statuses.push(StatusWrite {
        res: kinds::gateways(),
        ns: gw.ns.to_owned(),
        name: gw.name.to_owned(),
        status: Arc::new(status),
        unchanged_at: None,
    });
}
