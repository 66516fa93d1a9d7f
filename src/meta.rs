//! Small helpers over Kubernetes objects held as JSON, and [`Object`], the type the store takes.
//!
//! Objects stay JSON end to end: the API server must hand back exactly what was stored,
//! including fields this program does not model, and a typed model (k8s-openapi) would drop
//! unknown fields and cost minutes of compile time on a 2-core machine.

use serde_json::{Map, Value};
use std::ops::Deref;
use std::time::{Duration, SystemTime};

/// A Kubernetes object: JSON whose top level is a map. The API server's decoders and patchers
/// yield it and the store takes nothing else, so input that is not an object is refused once,
/// where it arrives, and every later step can rely on the map being there.
#[derive(Debug, Clone, PartialEq)]
pub struct Object(Value);

/// JSON whose top level is not a map where an object was needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the object provided is unrecognized: the body must be a JSON object")]
pub struct NotAnObject;

impl Object {
    /// Checks that `v` is a map.
    pub fn new(v: Value) -> Result<Object, NotAnObject> {
        if v.is_object() {
            Ok(Object(v))
        } else {
            Err(NotAnObject)
        }
    }

    /// The JSON, for storing or serialising.
    pub fn into_value(self) -> Value {
        self.0
    }

    /// Edits the JSON in place. An edit that leaves anything but a map at the top is refused:
    /// the object is emptied and `NotAnObject` returned, so the type's promise holds.
    pub fn edit<R, E: From<NotAnObject>>(
        &mut self,
        f: impl FnOnce(&mut Value) -> Result<R, E>,
    ) -> Result<R, E> {
        let r = f(&mut self.0);
        if !self.0.is_object() {
            self.0 = Value::Object(Map::new());
            return Err(NotAnObject.into());
        }
        r
    }
}

impl Object {
    /// For [`object!`]: a `json!({...})` map literal, a map by construction (anything else
    /// would become an empty object, never a panic).
    #[doc(hidden)]
    pub fn literal(v: Value) -> Object {
        Object::new(v).unwrap_or_else(|_| Object(Value::Object(Map::new())))
    }
}

/// An [`Object`] from a `json!`-style map literal: `object!({"kind": "Event", ...})`.
#[macro_export]
macro_rules! object {
    ({ $($body:tt)* }) => {
        $crate::meta::Object::literal(serde_json::json!({ $($body)* }))
    };
}

impl From<Map<String, Value>> for Object {
    fn from(m: Map<String, Value>) -> Object {
        Object(Value::Object(m))
    }
}

impl TryFrom<Value> for Object {
    type Error = NotAnObject;
    fn try_from(v: Value) -> Result<Object, NotAnObject> {
        Object::new(v)
    }
}

impl Deref for Object {
    type Target = Value;
    fn deref(&self) -> &Value {
        &self.0
    }
}

/// The string at JSON pointer `at`, or "".
fn str_at<'a>(obj: &'a Value, at: &str) -> &'a str {
    obj.pointer(at).and_then(Value::as_str).unwrap_or("")
}

/// `metadata.name`, or "" when absent.
pub fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name")
}

/// `metadata.namespace`, or "" when absent.
pub fn namespace(obj: &Value) -> &str {
    str_at(obj, "/metadata/namespace")
}

/// `metadata.uid`, or "".
pub fn uid(obj: &Value) -> &str {
    str_at(obj, "/metadata/uid")
}

/// `metadata.creationTimestamp` (RFC 3339), or "".
pub fn creation_timestamp(obj: &Value) -> &str {
    str_at(obj, "/metadata/creationTimestamp")
}

/// `metadata.generation`, or 0.
pub fn generation(obj: &Value) -> i64 {
    obj.pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// `metadata.resourceVersion` as written ("" when absent).
pub fn resource_version_str(obj: &Value) -> &str {
    str_at(obj, "/metadata/resourceVersion")
}

/// `metadata.resourceVersion` parsed as a number (the sandbox only ever writes numbers).
pub fn resource_version(obj: &Value) -> Option<u64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// A label value.
pub fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// An annotation value.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
}

/// `metadata.labels` as a map (empty when absent).
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Mutable `metadata`, created when missing. The API server refuses bodies that are not objects
/// before calling; should one get here anyway it becomes an empty object rather than a panic.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(root) = obj else {
        unreachable!("made an object above")
    };
    child_map(root, "metadata")
}

/// Mutable map at `obj[key]`, created when missing or not a map.
pub fn child_map<'a>(obj: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = obj
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("just made an object")
}

/// Mutable list at `obj[key]`, created when missing or not a list.
pub fn child_list<'a>(obj: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let v = obj
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !v.is_array() {
        *v = Value::Array(Vec::new());
    }
    match v {
        Value::Array(a) => a,
        _ => unreachable!("made a list above"),
    }
}

/// Current time as Kubernetes writes it: RFC 3339, UTC, whole seconds (`2024-10-29T16:40:34Z`).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Parses an RFC 3339 timestamp as written by [`now_rfc3339`].
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s).ok()
}

/// Kubernetes' `duration.HumanDuration`, used for AGE columns (`45s`, `3m2s`, `5h`, `12d`).
/// Source: k8s.io/apimachinery/pkg/util/duration/duration.go.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 * 2 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return units(minutes, 'm', secs % 60, 's');
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return units(hours, 'h', minutes % 60, 'm');
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return units(hours / 24, 'd', hours % 24, 'h');
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return units(hours / 24 / 365, 'y', (hours / 24) % 365, 'd');
    }
    format!("{}y", hours / 24 / 365)
}

/// `3m2s`, or `3m` when the smaller unit is zero.
fn units(big: u64, big_unit: char, small: u64, small_unit: char) -> String {
    if small == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{small}{small_unit}")
    }
}

/// Age of an object from its `creationTimestamp`, formatted as kubectl shows it.
pub fn age(obj: &Value) -> String {
    since(Some(creation_timestamp(obj)))
}

/// Time since an RFC 3339 timestamp, formatted as kubectl shows it (`<unknown>` when absent).
pub fn since(ts: Option<&str>) -> String {
    match ts.and_then(parse_rfc3339) {
        Some(t) => human_duration(SystemTime::now().duration_since(t).unwrap_or_default()),
        None => "<unknown>".to_string(),
    }
}

/// Finds a condition by type in `status.conditions`.
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
}

/// The `status` string ("True"/"False"/"Unknown") of a condition, or "Unknown" when absent.
pub fn condition_status<'a>(obj: &'a Value, type_: &str) -> &'a str {
    condition(obj, type_)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("Unknown")
}

/// About how many bytes `v` takes as JSON (strings and keys by length, a few bytes for the
/// rest), without serialising it.
pub fn approx_size(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| approx_size(x) + 1).sum::<usize>(),
        Value::Object(m) => {
            2 + m
                .iter()
                .map(|(k, x)| k.len() + 4 + approx_size(x))
                .sum::<usize>()
        }
        _ => 8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_duration_matches_kubernetes() {
        let cases = [
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (10 * 3600, "10h"),
            (50 * 3600, "2d2h"),
            (9 * 86400, "9d"),
            (800 * 86400, "2y70d"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), want, "{secs}s");
        }
    }

    #[test]
    fn timestamps_round_trip() {
        let now = now_rfc3339();
        assert!(now.ends_with('Z'));
        assert!(parse_rfc3339(&now).is_some());
    }
}
