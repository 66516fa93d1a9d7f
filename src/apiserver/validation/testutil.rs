//! Test objects and the `case!` table shared by the validation tests.

use super::Cause;
use serde_json::{json, Value};

pub(super) const AGC: &str = "alb.networking.azure.io";

pub(super) fn lines(c: &[Cause]) -> Vec<String> {
    c.iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect()
}
/// `base` with the JSON pointer `at` set to `v` (parents created), or removed for `null`.
pub(super) fn set(mut base: Value, at: &str, v: Value) -> Value {
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
pub(super) fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "test-infra"})
}
pub(super) fn deploy() -> Value {
    let c = json!({"name": "web", "image": "echo:1", "ports": [{"containerPort": 3000}]});
    let t = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [c]}});
    json!({"metadata": meta("web"), "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": t}})
}
pub(super) fn svc(spec: Value) -> Value {
    json!({"metadata": meta("echo"), "spec": spec})
}
pub(super) fn gw() -> Value {
    let https = json!({"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "*.contoso.com",
                       "tls": {"certificateRefs": [{"name": "listener-tls-secret"}]}});
    let http = json!({"name": "http", "port": 80, "protocol": "HTTP"});
    json!({"metadata": meta("gateway-01"), "spec": {"gatewayClassName": "azure-alb-external", "listeners": [http, https]}})
}
pub(super) fn route() -> Value {
    let m = json!({"path": {"type": "PathPrefix", "value": "/bar"}, "headers": [{"name": "x-ver", "value": "2"}], "method": "GET"});
    let b = json!({"name": "backend-v2", "port": 8080, "weight": 50});
    let rule = json!({"matches": [m], "backendRefs": [b], "timeouts": {"request": "10s", "backendRequest": "2s"}});
    let redirect = json!({"filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]});
    json!({"metadata": meta("r"), "spec": {"parentRefs": [{"name": "gateway-01"}], "rules": [rule, redirect]}})
}
pub(super) fn policy(target: Value, default: Value) -> Value {
    json!({"metadata": meta("p"), "spec": {"targetRef": target, "default": default}})
}
pub(super) fn to_svc() -> Value {
    json!({"group": "", "kind": "Service", "name": "echo"})
}

/// `case! { name: group, kind, object => [every expected "field: message" line] }`:
/// one focused test per rule.
macro_rules! case {
    ($name:ident: $g:expr, $k:expr, $obj:expr => [$($want:expr),* $(,)?]) => {
        #[test]
        fn $name() {
            let want: Vec<String> = vec![$($want.to_string()),*];
            let got = $crate::apiserver::validation::validate($g, $k, &$obj);
            assert_eq!($crate::apiserver::validation::testutil::lines(&got), want);
        }
    };
}
pub(super) use case;
