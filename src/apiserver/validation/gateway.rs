//! Gateway API and AGC CRDs: the embedded schema's pass, then the CEL rules.

use super::openapi::KindSchema;
use super::util::*;
use super::{Cause, GW, INVALID, NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::OnceLock;

// === CRD schemas (apiextensions-apiserver) and their CEL rules ===

pub(super) type Check = Box<dyn Fn(&Value) -> bool + Send + Sync>;

/// The embedded structural schema's pass, then the CEL pass: a failing rule is
/// `Invalid value: "<schema type>": <message>` at its node, a node's rules before its
/// children's (cel/validation.go). CEL needs a well-shaped object: after a blocking error the
/// real server reports that the rules were not checked (customresource/strategy.go
/// hasBlockingErr). Kinds whose schema declares no rule (the AGC CRDs) have no CEL validator.
pub(super) fn validate_crd(ks: &KindSchema, kind: &str, obj: &Value, out: &mut Vec<Cause>) {
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
pub(super) fn cel_checks(kind: &str) -> &'static HashMap<String, Check> {
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

pub(super) const HTTP_FILTER_FIELDS: &[(&str, &str)] = &[
    ("cors", "CORS"),
    ("requestHeaderModifier", "RequestHeaderModifier"),
    ("responseHeaderModifier", "ResponseHeaderModifier"),
    ("requestMirror", "RequestMirror"),
    ("requestRedirect", "RequestRedirect"),
    ("urlRewrite", "URLRewrite"),
    ("extensionRef", "ExtensionRef"),
];
/// GRPCRouteFilter config fields and the `type` naming each.
pub(super) const GRPC_FILTER_FIELDS: &[(&str, &str)] = &[
    ("requestHeaderModifier", "RequestHeaderModifier"),
    ("responseHeaderModifier", "ResponseHeaderModifier"),
    ("requestMirror", "RequestMirror"),
    ("extensionRef", "ExtensionRef"),
];
pub(super) type Rule = (&'static str, String, Check);

pub(super) fn rule(
    path: &'static str,
    msg: impl Into<String>,
    f: impl Fn(&Value) -> bool + Send + Sync + 'static,
) -> Rule {
    (path, msg.into(), Box::new(f))
}
/// CEL `exists_one`.
pub(super) fn exactly_one(xs: &[Value], f: impl Fn(&Value) -> bool) -> bool {
    xs.iter().filter(|x| f(x)).count() == 1
}
/// CEL `self.all(x, ...)` over a list.
pub(super) fn all(xs: &Value, f: impl Fn(&Value) -> bool) -> bool {
    list(xs).iter().all(f)
}

// The CEL rule tables below are laid out one rule per entry: path, message, predicate.

/// Gateway listeners and addresses (gateway_types.go). `tls.mode` defaults to
/// Terminate and an address `type` to IPAddress.
#[rustfmt::skip]
pub(super) fn gateway_rules() -> Vec<Rule> {
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
pub(super) fn route_rules(grpc: bool) -> Vec<Rule> {
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
pub(super) fn http_rules() -> Vec<Rule> {
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
pub(super) fn grpc_method_rules() -> Vec<Rule> {
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
pub(super) fn filter_list_rules(at: &'static str, grpc: bool) -> Vec<Rule> {
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
pub(super) fn filter_rules(fields: &'static [(&'static str, &'static str)]) -> Vec<Rule> {
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
pub(super) fn path_modifier_rules() -> Vec<Rule> {
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
pub(super) fn mirror_rules() -> Vec<Rule> {
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
pub(super) fn gw_duration_ms(s: &str) -> Option<u64> {
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
pub(super) fn backend_ref_rules() -> Vec<Rule> {
    vec![rule("", "Must have port for Service reference", |b| {
        !(sor(b, "group", "").is_empty() && sor(b, "kind", "Service") == "Service")
            || has(b, "port")
    })]
}

/// Gateway `infrastructure.labels` / `.annotations` keys.
#[rustfmt::skip]
pub(super) fn infrastructure_rules() -> Vec<Rule> {
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
pub(super) fn cors_rules() -> Vec<Rule> {
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
    use crate::apiserver::openapi;
    use crate::apiserver::validation::testutil::*;
    use serde_json::json;

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
}
