//! The small JSONPath dialect of scenario `wait`/`assert` steps, and subset matching with
//! readable mismatches.
//!
//! Paths follow kubectl's `-o jsonpath` for the common cases: `{.status.addresses[0].value}`,
//! `{.status.conditions[?(@.type=="Accepted")].status}`, `{.metadata.annotations['a.b/c']}`,
//! `[*]` and `.*`. Braces and a leading `$` are optional. Filters compare one relative field with
//! `==` or `!=` against a quoted string, a number, `true`/`false` or `null`.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Field(String),
    Index(usize),
    All,
    Filter {
        field: Vec<String>,
        negate: bool,
        value: Value,
    },
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct Path {
    segs: Vec<Seg>,
    text: String,
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn literal(s: &str) -> Result<Value, String> {
    let s = s.trim();
    if let Some(inner) = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
    {
        return Ok(Value::String(inner.to_string()));
    }
    serde_json::from_str(s).map_err(|_| format!("cannot read {s:?} as a value (quote strings)"))
}

impl Path {
    /// Parses a path such as `{.status.conditions[?(@.type=="Accepted")].status}`.
    pub fn parse(text: &str) -> Result<Path, String> {
        let err = |m: &str| format!("invalid path {text:?}: {m}");
        let mut s = text.trim();
        if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            s = inner.trim();
        }
        s = s.strip_prefix('$').unwrap_or(s);
        let b = s.as_bytes();
        let mut i = 0;
        let mut segs = Vec::new();
        while i < b.len() {
            match b[i] {
                b'.' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < b.len() && b[j] != b'.' && b[j] != b'[' {
                        j += 1;
                    }
                    let name = &s[start..j];
                    if name.is_empty() {
                        if j == b.len() && segs.is_empty() {
                            // `{.}`: the whole object.
                            i = j;
                            continue;
                        }
                        return Err(err("empty field name"));
                    }
                    segs.push(if name == "*" {
                        Seg::All
                    } else {
                        Seg::Field(name.to_string())
                    });
                    i = j;
                }
                b'[' => {
                    let close = if s[i..].starts_with("[?(") {
                        s[i..].find(")]").map(|k| i + k + 1)
                    } else {
                        s[i..].find(']').map(|k| i + k)
                    }
                    .ok_or_else(|| err("unclosed ["))?;
                    let inner = &s[i + 1..close];
                    if inner == "*" {
                        segs.push(Seg::All);
                    } else if let Some(f) =
                        inner.strip_prefix("?(").and_then(|r| r.strip_suffix(')'))
                    {
                        let (lhs, rhs, negate) = if let Some((l, r)) = f.split_once("!=") {
                            (l, r, true)
                        } else if let Some((l, r)) = f.split_once("==") {
                            (l, r, false)
                        } else {
                            return Err(err("a filter needs == or !="));
                        };
                        let field = lhs
                            .trim()
                            .strip_prefix("@.")
                            .ok_or_else(|| err("a filter compares @.field"))?
                            .split('.')
                            .map(str::to_string)
                            .collect();
                        segs.push(Seg::Filter {
                            field,
                            negate,
                            value: literal(rhs).map_err(|m| err(&m))?,
                        });
                    } else if (inner.starts_with('\'') && inner.ends_with('\''))
                        || (inner.starts_with('"') && inner.ends_with('"'))
                    {
                        segs.push(Seg::Field(inner[1..inner.len() - 1].to_string()));
                    } else {
                        let n = inner.trim().parse::<usize>().map_err(|_| {
                            err("an index must be a number, *, a quoted name or ?(filter)")
                        })?;
                        segs.push(Seg::Index(n));
                    }
                    i = close + 1;
                }
                _ => return Err(err("expected . or [")),
            }
        }
        Ok(Path {
            segs,
            text: text.to_string(),
        })
    }

    /// Every value the path selects.
    pub fn eval<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut cur = vec![root];
        for seg in &self.segs {
            let mut next = Vec::new();
            for v in cur {
                match seg {
                    Seg::Field(f) => next.extend(v.get(f)),
                    Seg::Index(n) => next.extend(v.get(*n)),
                    Seg::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Seg::Filter {
                        field,
                        negate,
                        value,
                    } => {
                        for item in v.as_array().into_iter().flatten() {
                            let got = field.iter().try_fold(item, |acc, f| acc.get(f));
                            let eq = got.is_some_and(|g| loose_eq(value, g))
                                || (value.is_null() && got.is_none());
                            if eq != *negate {
                                next.push(item);
                            }
                        }
                    }
                }
            }
            cur = next;
        }
        cur
    }

    /// The selection as kubectl prints it: scalars as text, joined with spaces.
    pub fn text(&self, root: &Value) -> Option<String> {
        let vals = self.eval(root);
        if vals.is_empty() {
            return None;
        }
        Some(vals.iter().map(|v| text(v)).collect::<Vec<_>>().join(" "))
    }
}

/// A value as text: strings bare, other scalars as JSON, null empty.
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Equality that lets YAML scalars stand for their text (`"1"` and `1`, `"True"` is not `true`
/// though: conditions use strings).
pub fn loose_eq(expected: &Value, got: &Value) -> bool {
    match (expected, got) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(a), b) | (b, Value::String(a)) if !b.is_string() => {
            b.is_number() && *a == text(b)
        }
        (a, b) => a == b,
    }
}

/// Short JSON for messages.
pub fn show(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 300 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(300).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}

/// Checks that `got` contains `expected`: maps key by key (a `null` expects the key absent),
/// lists item by item in any order (each expected item matches some item), scalars equal.
/// The error names the first mismatching field: `.status.conditions[type=Accepted].message:
/// expected "Valid Gateway", got "..."`.
pub fn subset(expected: &Value, got: &Value, at: &str) -> Result<(), String> {
    match expected {
        Value::Object(em) => {
            let Some(gm) = got.as_object() else {
                return Err(format!("{at}: expected an object, got {}", show(got)));
            };
            for (k, ev) in em {
                let here = format!("{at}.{k}");
                match gm.get(k) {
                    None if ev.is_null() => {}
                    None => return Err(format!("{here}: expected {}, got nothing", show(ev))),
                    Some(gv) if ev.is_null() => {
                        return Err(format!("{here}: expected no value, got {}", show(gv)))
                    }
                    Some(gv) => subset(ev, gv, &here)?,
                }
            }
            Ok(())
        }
        Value::Array(ea) => {
            let Some(ga) = got.as_array() else {
                return Err(format!("{at}: expected a list, got {}", show(got)));
            };
            for e in ea {
                if ga.iter().any(|g| subset(e, g, at).is_ok()) {
                    continue;
                }
                // Name the item by its `type` or `name` key, and explain the closest one.
                for key in ["type", "name", "kind"] {
                    if let Some(id) = e.get(key) {
                        let same: Vec<&Value> =
                            ga.iter().filter(|g| g.get(key) == Some(id)).collect();
                        let here = format!("{at}[{key}={}]", text(id));
                        if same.len() == 1 {
                            return subset(e, same[0], &here);
                        }
                        if same.is_empty() {
                            return Err(format!(
                                "{here}: no item with {key} {}; got {}",
                                show(id),
                                show(got)
                            ));
                        }
                    }
                }
                return Err(format!(
                    "{at}: no item matches {}; got {}",
                    show(e),
                    show(got)
                ));
            }
            Ok(())
        }
        e if loose_eq(e, got) => Ok(()),
        e => Err(format!("{at}: expected {}, got {}", show(e), show(got))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn gw() -> Value {
        json!({"metadata": {"annotations": {"alb.networking.azure.io/alb-name": "alb-test"}},
               "status": {"addresses": [{"type": "IPAddress", "value": "127.20.0.1"}],
               "conditions": [{"type": "Accepted", "status": "True", "message": "Valid Gateway"},
                              {"type": "Programmed", "status": "True"}],
               "listeners": [{"name": "http", "attachedRoutes": 1}]}})
    }

    #[test]
    fn kubectl_style_paths() {
        let g = gw();
        let p = |s: &str| Path::parse(s).unwrap().text(&g);
        assert_eq!(
            p("{.status.addresses[0].value}").as_deref(),
            Some("127.20.0.1")
        );
        assert_eq!(
            p(r#"{.status.conditions[?(@.type=="Accepted")].status}"#).as_deref(),
            Some("True")
        );
        assert_eq!(
            p(".status.conditions[*].type").as_deref(),
            Some("Accepted Programmed")
        );
        assert_eq!(
            p("{.metadata.annotations['alb.networking.azure.io/alb-name']}").as_deref(),
            Some("alb-test")
        );
        assert_eq!(
            p("{.status.listeners[0].attachedRoutes}").as_deref(),
            Some("1")
        );
        assert_eq!(p("{.status.nope}"), None);
        assert!(Path::parse("{.status[}").is_err());
        assert!(Path::parse("status").is_err());
    }

    #[test]
    fn subset_matches_and_names_the_mismatch() {
        let g = gw();
        assert!(subset(
            &json!({"status": {"conditions": [{"type": "Programmed", "status": "True"}]}}),
            &g,
            ""
        )
        .is_ok());
        let err = subset(
            &json!({"status": {"conditions": [{"type": "Accepted", "message": "Nope"}]}}),
            &g,
            "",
        )
        .unwrap_err();
        assert_eq!(
            err,
            ".status.conditions[type=Accepted].message: expected \"Nope\", got \"Valid Gateway\""
        );
        assert!(subset(
            &json!({"status": {"listeners": [{"attachedRoutes": "1"}]}}),
            &g,
            ""
        )
        .is_ok());
        assert!(subset(&json!({"status": {"gone": null}}), &g, "").is_ok());
    }
}
