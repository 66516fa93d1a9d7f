//! Causes with apimachinery's wording, and JSON access that tolerates any shape.

use super::{Cause, DUPLICATE, INVALID, NOT_SUPPORTED, REQUIRED, TOO_LONG};
use crate::schema::{go_json, go_quote};
use regex::Regex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

// === rendering (apimachinery pkg/util/validation/field/errors.go) ===

/// Go's `%q`.
pub(super) fn q(s: &str) -> String {
    go_quote(s)
}

/// Go's json.Marshal: compact, map keys sorted.
pub(super) fn json(v: &Value) -> String {
    go_json(v)
}

pub(super) fn cause(reason: &'static str, field: &str, message: String) -> Cause {
    Cause {
        reason,
        field: field.to_string(),
        message,
    }
}
pub(super) fn invalid(field: &str, shown: &str, detail: &str) -> Cause {
    cause(INVALID, field, format!("Invalid value: {shown}: {detail}"))
}
/// One Invalid cause per message, as the `for _, msg := range IsX(v)` loops do.
pub(super) fn invalids(out: &mut Vec<Cause>, field: &str, v: &str, msgs: Vec<String>) {
    out.extend(msgs.iter().map(|m| invalid(field, &q(v), m)));
}
pub(super) fn required(field: &str, detail: &str) -> Cause {
    let sep = if detail.is_empty() { "" } else { ": " };
    cause(REQUIRED, field, format!("Required value{sep}{detail}"))
}
pub(super) fn duplicate(field: &str, shown: &str) -> Cause {
    cause(DUPLICATE, field, format!("Duplicate value: {shown}"))
}
pub(super) fn not_supported(field: &str, shown: &str, allowed: &[&str]) -> Cause {
    let allowed: Vec<String> = allowed.iter().map(|a| q(a)).collect();
    let m = format!(
        "Unsupported value: {shown}: supported values: {}",
        allowed.join(", ")
    );
    cause(NOT_SUPPORTED, field, m)
}
/// NotSupported for a set string field outside `allowed`.
pub(super) fn enum_check(
    out: &mut Vec<Cause>,
    v: &Value,
    key: &str,
    field: &str,
    allowed: &[&str],
) {
    if let Some(s) = gstr(v, key).filter(|s| !allowed.contains(s)) {
        out.push(not_supported(field, &q(s), allowed));
    }
}
pub(super) fn too_long(field: &str, max: i64) -> Cause {
    cause(
        TOO_LONG,
        field,
        format!("Too long: may not be more than {max} bytes"),
    )
}

// === JSON access that tolerates any shape ===

pub(super) fn gstr<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k)?.as_str()
}
pub(super) fn sor<'a>(v: &'a Value, k: &str, default: &'a str) -> &'a str {
    gstr(v, k).unwrap_or(default)
}
pub(super) fn garr<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k).map_or(&[], list)
}
pub(super) fn list(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}
pub(super) fn has(v: &Value, k: &str) -> bool {
    v.get(k).is_some_and(|x| !x.is_null())
}
/// Compiled-once regexes; every pattern is a constant of this module.
pub(super) fn re(p: &str) -> &'static Regex {
    static CACHE: OnceLock<Mutex<HashMap<String, &'static Regex>>> = OnceLock::new();
    let mut m = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    m.entry(p.to_string())
        .or_insert_with(|| Box::leak(Box::new(Regex::new(p).expect("constant pattern compiles"))))
}
pub(super) fn full(fmt: &str, v: &str) -> bool {
    re(&format!("^{fmt}$")).is_match(v)
}
