//! Small pure helpers of the controller: conditions, Go durations, PEM checks, hostname
//! intersection and ReferenceGrant lookups.

use super::model::PROGRAMMED_MESSAGE;
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Gateway API group.
pub const GW_GROUP: &str = "gateway.networking.k8s.io";

/// Builds one `metav1.Condition`. `lastTransitionTime` is kept from `old` (a condition list)
/// when a condition of the same type had the same status, as `meta.SetStatusCondition` does.
pub fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
    generation: i64,
    old: Option<&Value>,
    now: &str,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let ltt = old
        .and_then(Value::as_array)
        .and_then(|a| {
            a.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
        })
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| Value::String(now.to_owned()));
    json!({
        "lastTransitionTime": ltt,
        "message": message,
        "observedGeneration": generation,
        "reason": reason,
        "status": status,
        "type": type_,
    })
}

/// Our conditions followed by the conditions in `old` whose type we do not own (other
/// controllers' conditions are never dropped).
pub fn merge_conditions(old: Option<&Value>, ours: Vec<Value>, owned: &[&str]) -> Value {
    let mut out = ours;
    for c in old.and_then(Value::as_array).into_iter().flatten() {
        let t = c.get("type").and_then(Value::as_str).unwrap_or("");
        if !owned.contains(&t) {
            out.push(c.clone());
        }
    }
    Value::Array(out)
}

/// `a == b` ignoring every `lastTransitionTime` field, without allocating.
pub fn eq_ignoring_transition_times(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let relevant =
                |m: &Map<String, Value>| m.keys().filter(|k| *k != "lastTransitionTime").count();
            relevant(x) == relevant(y)
                && x.iter()
                    .filter(|(k, _)| *k != "lastTransitionTime")
                    .all(|(k, v)| y.get(k).is_some_and(|w| eq_ignoring_transition_times(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|(v, w)| eq_ignoring_transition_times(v, w))
        }
        _ => a == b,
    }
}

/// Parses a Go / Gateway API duration (`5s`, `1m30s`, `500ms`, `1.5h`, `0`).
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Decodes standard base64 (padding optional, whitespace ignored).
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Checks that `pem` holds at least one `-----BEGIN <label>-----` block whose label satisfies
/// `label_ok` and whose body is non-empty base64. Enough to catch the usual mistakes (wrong
/// file, "Hello world", a key in the cert field) without a crypto crate.
pub fn pem_has_block(pem: &str, label_ok: impl Fn(&str) -> bool) -> bool {
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let Some(label_end) = after.find("-----") else {
            return false;
        };
        let label = &after[..label_end];
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(body_end) = body_start.find(&end_marker) else {
            return false;
        };
        let body = &body_start[..body_end];
        if label_ok(label) && base64_decode(body).is_some_and(|b| !b.is_empty()) {
            return true;
        }
        rest = &body_start[body_end + end_marker.len()..];
    }
    false
}

/// The effective hostname a route hostname has on a listener: the more specific of the two,
/// or `None` when they do not intersect.
pub fn intersection(listener: &str, route: &str) -> Option<String> {
    let wild = |h: &str| h.strip_prefix("*.").map(str::to_owned);
    let ends =
        |h: &str, suffix: &str| h.len() > suffix.len() + 1 && h.ends_with(&format!(".{suffix}"));
    match (wild(listener), wild(route)) {
        (None, None) => (listener == route).then(|| route.to_owned()),
        (Some(ls), None) => ends(route, &ls).then(|| route.to_owned()),
        (None, Some(rs)) => ends(listener, &rs).then(|| listener.to_owned()),
        (Some(ls), Some(rs)) => {
            if ls == rs || ends(&ls, &rs) {
                Some(listener.to_owned())
            } else if ends(&rs, &ls) {
                Some(route.to_owned())
            } else {
                None
            }
        }
    }
}

/// A reference that may need a ReferenceGrant.
pub struct RefFrom<'a> {
    pub group: &'a str,
    pub kind: &'a str,
    pub namespace: &'a str,
}

/// Whether a ReferenceGrant in `to_ns` allows the reference (same-namespace references always
/// are). The `from` and `to` entries must come from the same grant.
pub fn grant_allows(
    reference_grants: &[std::sync::Arc<Value>],
    from: &RefFrom<'_>,
    to_group: &str,
    to_kind: &str,
    to_ns: &str,
    to_name: &str,
) -> bool {
    if from.namespace == to_ns {
        return true;
    }
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    reference_grants
        .iter()
        .filter(|g| crate::meta::namespace(g) == to_ns)
        .any(|g| {
            let froms = g.pointer("/spec/from").and_then(Value::as_array);
            let tos = g.pointer("/spec/to").and_then(Value::as_array);
            froms.into_iter().flatten().any(|f| {
                s(f, "group") == from.group
                    && s(f, "kind") == from.kind
                    && s(f, "namespace") == from.namespace
            }) && tos.into_iter().flatten().any(|t| {
                let name = s(t, "name");
                s(t, "group") == to_group
                    && s(t, "kind") == to_kind
                    && (name.is_empty() || name == to_name)
            })
        })
}

/// `metadata.<field>` as a string, or "": what `meta::uid`, `meta::name` and
/// `meta::namespace` return, without parsing a JSON pointer on each call (these run several
/// times per route per pass).
pub fn meta_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `metadata.resourceVersion` as a number, as `meta::resource_version` reads it.
pub fn meta_rv(o: &Value) -> Option<u64> {
    o.get("metadata")?
        .get("resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

/// The elements of the array at `key`, none when it is absent or not an array.
pub fn items<'a>(v: &'a Value, key: &str) -> std::slice::Iter<'a, Value> {
    list(v.get(key))
}

/// The elements of the array at JSON pointer `pointer`, none when it is absent or not an array.
pub fn items_at<'a>(v: &'a Value, pointer: &str) -> std::slice::Iter<'a, Value> {
    list(v.pointer(pointer))
}

fn list(v: Option<&Value>) -> std::slice::Iter<'_, Value> {
    v.and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
        .iter()
}

/// The `Programmed` condition of a listener, Gateway or route that is programmed.
pub fn programmed_condition(generation: i64, old: Option<&Value>, now: &str) -> Value {
    condition(
        "Programmed",
        true,
        "Programmed",
        PROGRAMMED_MESSAGE,
        generation,
        old,
        now,
    )
}

/// String field of a JSON object, or "".
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_ignores_transition_times_only() {
        let a = serde_json::json!({"c": [{"type": "A", "lastTransitionTime": "1"}]});
        let b = serde_json::json!({"c": [{"type": "A", "lastTransitionTime": "2"}]});
        let c = serde_json::json!({"c": [{"type": "B", "lastTransitionTime": "1"}]});
        assert!(eq_ignoring_transition_times(&a, &b));
        assert!(!eq_ignoring_transition_times(&a, &c));
    }

    #[test]
    fn metadata_accessors_agree_with_meta() {
        let o = serde_json::json!({"metadata": {"name": "n", "namespace": "ns", "uid": "u",
            "resourceVersion": "42"}});
        assert_eq!(meta_str(&o, "name"), crate::meta::name(&o));
        assert_eq!(meta_str(&o, "namespace"), crate::meta::namespace(&o));
        assert_eq!(meta_str(&o, "uid"), crate::meta::uid(&o));
        assert_eq!(meta_rv(&o), Some(42));
        let bare = serde_json::json!({"kind": "X"});
        assert_eq!(meta_str(&bare, "uid"), "");
        assert_eq!(meta_rv(&bare), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        for bad in ["", "5", "s", "-1s", "5x", "1m30"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(base64_decode("aGVsbG8").unwrap(), b"hello");
        assert!(base64_decode("a$b").is_none());
    }

    #[test]
    fn pem_blocks() {
        let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n";
        assert!(pem_has_block(cert, |l| l == "CERTIFICATE"));
        assert!(!pem_has_block(cert, |l| l.ends_with("PRIVATE KEY")));
        assert!(!pem_has_block("Hello world", |_| true));
        assert!(!pem_has_block(
            "-----BEGIN CERTIFICATE-----\n$$$\n-----END CERTIFICATE-----",
            |_| true
        ));
    }

    #[test]
    fn hostname_intersection_rules() {
        // (listener hostname, route hostname, the effective hostname)
        for (listener, route, want) in [
            (
                "very.specific.com",
                "very.specific.com",
                Some("very.specific.com"),
            ),
            (
                "*.wildcard.io",
                "foo.bar.wildcard.io",
                Some("foo.bar.wildcard.io"),
            ),
            ("*.wildcard.io", "wildcard.io", None),
            (
                "very.specific.com",
                "*.specific.com",
                Some("very.specific.com"),
            ),
            (
                "*.anotherwildcard.io",
                "*.anotherwildcard.io",
                Some("*.anotherwildcard.io"),
            ),
            ("*.a.example.com", "*.example.com", Some("*.a.example.com")),
            ("*.example.com", "*.a.example.com", Some("*.a.example.com")),
            ("specific.but.wrong.com", "*.wildcard.io", None),
        ] {
            assert_eq!(
                intersection(listener, route).as_deref(),
                want,
                "listener {listener}, route {route}"
            );
        }
    }
}
