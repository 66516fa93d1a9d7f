//! Label and field selectors, as `kubectl get -l` and `--field-selector` send them.
//!
//! Grammar from k8s.io/apimachinery/pkg/labels/selector.go (`a=b`, `a==b`, `a!=b`,
//! `a in (x,y)`, `a notin (x)`, `a`, `!a`) and pkg/fields/selector.go (`path=value`,
//! `path==value`, `path!=value`, comma-separated, ANDed).

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    #[error("unable to parse requirement: {0}")]
    Label(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
}

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

impl LabelSelector {
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let mut reqs = Vec::new();
        for term in split_top_level(s) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            reqs.push(parse_label_req(term)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// Builds a selector from a `metav1.LabelSelector` object (`matchLabels` + `matchExpressions`).
    pub fn from_object(sel: &Value) -> Result<LabelSelector, SelectorError> {
        let mut reqs = Vec::new();
        if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in m {
                reqs.push(LabelReq::Eq(
                    k.clone(),
                    v.as_str().unwrap_or("").to_string(),
                ));
            }
        }
        for e in sel
            .get("matchExpressions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = e
                .get("key")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let values: Vec<String> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
            reqs.push(match op {
                "In" => LabelReq::In(key, values),
                "NotIn" => LabelReq::NotIn(key, values),
                "Exists" => LabelReq::Exists(key),
                "DoesNotExist" => LabelReq::NotExists(key),
                other => {
                    return Err(SelectorError::Label(format!(
                        "{other:?} is not a valid label selector operator"
                    )))
                }
            });
        }
        Ok(LabelSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an object's `metadata.labels` satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.matches_labels(labels)
    }

    /// Whether a label map satisfies every requirement.
    pub fn matches_labels(&self, labels: Option<&Value>) -> bool {
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.0.iter().all(|r| match r {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_label_req(term: &str) -> Result<LabelReq, SelectorError> {
    let bad = || {
        SelectorError::Label(format!("found '{term}', expected: key, !key, key=value, key!=value, key in (a,b) or key notin (a,b)"))
    };
    if let Some(k) = term.strip_prefix('!') {
        return Ok(LabelReq::NotExists(k.trim().to_string()));
    }
    if let Some((k, v)) = term.split_once("!=") {
        return Ok(LabelReq::NotEq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once("==") {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    if let Some((k, v)) = term.split_once('=') {
        return Ok(LabelReq::Eq(k.trim().into(), v.trim().into()));
    }
    let set = |rest: &str| -> Result<Vec<String>, SelectorError> {
        let rest = rest.trim();
        let inner = rest
            .strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(bad)?;
        Ok(inner
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect())
    };
    if let Some((k, rest)) = term.split_once(" notin ") {
        return Ok(LabelReq::NotIn(k.trim().into(), set(rest)?));
    }
    if let Some((k, rest)) = term.split_once(" in ") {
        return Ok(LabelReq::In(k.trim().into(), set(rest)?));
    }
    if term.contains(char::is_whitespace) || term.contains('(') {
        return Err(bad());
    }
    Ok(LabelReq::Exists(term.to_string()))
}

/// A parsed field selector over dotted JSON paths (`metadata.name`, `involvedObject.uid`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut out = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, eq, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, true, v)
            } else {
                return Err(SelectorError::Field(s.to_string(), term.to_string()));
            };
            out.push((path.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// The value required for `metadata.name`, if the selector pins one (lets lists skip a scan).
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(p, eq, _)| *eq && p == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(path, eq, want)| {
            let got = path
                .split('.')
                .try_fold(obj, |v, seg| v.get(seg))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (got == *want) == *eq
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "a", "namespace": "ns", "labels": labels}})
    }

    #[test]
    fn equality_and_inequality() {
        let o = obj(json!({"app": "web", "tier": "fe"}));
        assert!(LabelSelector::parse("app=web").unwrap().matches(&o));
        assert!(LabelSelector::parse("app==web,tier=fe")
            .unwrap()
            .matches(&o));
        assert!(!LabelSelector::parse("app!=web").unwrap().matches(&o));
        assert!(LabelSelector::parse("app!=db").unwrap().matches(&o));
    }

    #[test]
    fn set_based_requirements() {
        let o = obj(json!({"app": "web"}));
        assert!(LabelSelector::parse("app in (web, db)")
            .unwrap()
            .matches(&o));
        assert!(!LabelSelector::parse("app notin (web)").unwrap().matches(&o));
        assert!(LabelSelector::parse("app,!missing").unwrap().matches(&o));
        assert!(!LabelSelector::parse("missing").unwrap().matches(&o));
        assert!(LabelSelector::parse("x in (a").is_err());
    }

    #[test]
    fn label_selector_object_form() {
        let sel = json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]});
        let s = LabelSelector::from_object(&sel).unwrap();
        assert!(s.matches(&obj(json!({"app": "web", "tier": "fe"}))));
        assert!(!s.matches(&obj(json!({"app": "web", "tier": "db"}))));
        assert!(LabelSelector::from_object(
            &json!({"matchExpressions": [{"key": "a", "operator": "Nope"}]})
        )
        .is_err());
    }

    #[test]
    fn field_selector_on_dotted_paths() {
        let o = json!({"metadata": {"name": "gateway-01"}, "involvedObject": {"kind": "Pod"}});
        let s = FieldSelector::parse("metadata.name=gateway-01").unwrap();
        assert!(s.matches(&o));
        assert_eq!(s.name(), Some("gateway-01"));
        assert!(!FieldSelector::parse("metadata.name=gateway-02")
            .unwrap()
            .matches(&o));
        assert!(
            FieldSelector::parse("involvedObject.kind==Pod,metadata.name!=x")
                .unwrap()
                .matches(&o)
        );
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
