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

mod core;
mod gateway;
mod meta;
#[cfg(test)]
mod testutil;
mod util;

use super::openapi;
use core::{base64_error, data_keys, endpoint_slice, pod_spec, service, workload};
use gateway::validate_crd;
use meta::{dns1035, dns_label, dns_subdomain, validate_meta};
use serde_json::Value;
use std::collections::HashSet;
use util::q;

pub use crate::schema::{
    Cause, DUPLICATE, FORBIDDEN, INVALID, NOT_SUPPORTED, REQUIRED, TOO_LONG, TOO_MANY, TYPE_INVALID,
};

const GW: &str = "gateway.networking.k8s.io";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::validation::testutil::*;
    use serde_json::json;
    use util::{invalid, required};

    // Valid objects.
    case! { valid_deployment: "apps", "Deployment", deploy() => [] }
    case! { valid_gateway: GW, "Gateway", gw() => [] }
    case! { valid_http_route: GW, "HTTPRoute", route() => [] }
    case! { valid_health_check_policy_with_override: AGC, "HealthCheckPolicy", set(policy(to_svc(), json!({"interval": "0s"})), "/spec/override", json!({})) => [] }
    case! { generate_name_instead_of_name: "", "ConfigMap", json!({"metadata": {"generateName": "cm-"}}) => [] }
    case! { headless_service_needs_no_ports: "", "Service", svc(json!({"clusterIP": "None"})) => [] }

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
