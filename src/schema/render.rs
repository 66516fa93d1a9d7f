//! Go's renderings that kube-apiserver's messages are made of (`%q`, `json.Marshal`, `%v` of a
//! float64), and the joins used for several errors at once.

use serde_json::Value;

/// Go's `%q`.
pub fn go_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                o.push('\\');
                o.push(c);
            }
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if c < ' ' || c == '\x7f' => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o + "\""
}

/// Go's json.Marshal: compact, map keys sorted.
pub fn go_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut kv: Vec<_> = m.iter().collect();
            kv.sort_by_key(|e| e.0);
            let kv: Vec<_> = kv
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), go_json(v)))
                .collect();
            format!("{{{}}}", kv.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(go_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// field.Error's rendering of a bad value: strings `%q`, everything else JSON.
pub fn show(v: &Value) -> String {
    v.as_str().map_or_else(|| go_json(v), go_quote)
}

/// `%v` of a float64 bound as kube-openapi prints it: `1`, `0.5`.
pub fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// runtime.NewStrictDecodingError(...).Error(): `strict decoding error: a, b`, each
/// `unknown field "<path>"` (k8s.io/apimachinery/pkg/runtime/error.go).
pub fn strict_decoding_error(unknown: &[String]) -> String {
    let errs: Vec<String> = unknown.iter().map(|p| unknown_field(p)).collect();
    format!("strict decoding error: {}", errs.join(", "))
}

/// One strict-decoding error: `unknown field "spec.listners"` (also the Warn-mode warning text).
pub fn unknown_field(path: &str) -> String {
    format!("unknown field {}", go_quote(path))
}

/// structured-merge-diff's ValidationErrors.Error() for undeclared fields: one error bare,
/// several as `errors:\n  a\n  b` (typed/validate.go).
pub fn smd_errors(paths: &[String]) -> String {
    let errs: Vec<String> = paths
        .iter()
        .map(|p| format!("{p}: field not declared in schema"))
        .collect();
    match errs.as_slice() {
        [one] => one.clone(),
        _ => {
            let mut lines = vec!["errors:".to_string()];
            lines.extend(errs.iter().map(|e| format!("  {e}")));
            lines.join("\n")
        }
    }
}
