//! The JSONPath subset a CRD's `additionalPrinterColumns` use, evaluated as client-go's
//! `util/jsonpath` does for apiextensions' table convertor (with `AllowMissingKeys(true)`):
//! fields (`.spec.secretName`, `['a.b']`), `*`, array indexes and slices (`[0]`, `[-1]`,
//! `[1:3]`), and filters (`[?(@.type=="Ready")]`, `[?(@.x)]`, `==`, `!=`, `<`, `>`, `<=`, `>=`).
//! Recursive descent (`..`), unions and templates are not supported: they fail to parse, as an
//! unrecognised column does on a real server (the column and those after it are dropped).
//! A path that finds nothing, or fails while evaluating (an index out of range, a filter on a
//! map, comparing a string with a number), yields no value.

use serde_json::Value;

/// A JSONPath that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonPathError {
    #[error("unrecognized column definition {0:?}")]
    Unrecognized(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Wildcard,
    /// `[start:end]`; an index `[n]` is `[n:n+1]`.
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        index: bool,
    },
    Filter(Box<Filter>),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    left: Vec<Step>,
    /// `None`: an existence test.
    cmp: Option<(Op, Literal)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    src: &'a str,
}

fn is_terminator(c: u8) -> bool {
    c.is_ascii_whitespace() || b".[](),=!<>{}".contains(&c)
}

impl<'a> Parser<'a> {
    fn err(&self) -> JsonPathError {
        JsonPathError::Unrecognized(self.src.to_string())
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    /// Steps until something that is not a step (end, `)`, an operator).
    fn steps(&mut self) -> Result<Vec<Step>, JsonPathError> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'.') => {
                    self.i += 1;
                    if self.eat(b'*') {
                        out.push(Step::Wildcard);
                        continue;
                    }
                    let start = self.i;
                    while self.peek().is_some_and(|c| !is_terminator(c)) {
                        self.i += 1;
                    }
                    if self.i == start {
                        // `..` (recursive descent) or a trailing dot.
                        return Err(self.err());
                    }
                    out.push(Step::Field(self.src[start..self.i].to_string()));
                }
                Some(b'[') => {
                    self.i += 1;
                    out.push(self.bracket()?);
                }
                _ => return Ok(out),
            }
        }
    }

    fn bracket(&mut self) -> Result<Step, JsonPathError> {
        self.skip_ws();
        let step = match self.peek() {
            Some(b'*') => {
                self.i += 1;
                Step::Wildcard
            }
            Some(q @ (b'\'' | b'"')) => Step::Field(self.quoted(q)?),
            Some(b'?') => {
                self.i += 1;
                if !self.eat(b'(') {
                    return Err(self.err());
                }
                let f = self.filter()?;
                if !self.eat(b')') {
                    return Err(self.err());
                }
                Step::Filter(Box::new(f))
            }
            _ => {
                let start = self.int()?;
                if self.eat(b':') {
                    let end = self.int()?;
                    if self.eat(b':') {
                        // A step: only 1 behaves like a plain slice.
                        if self.int()?.is_some_and(|s| s != 1) {
                            return Err(self.err());
                        }
                    }
                    Step::Slice {
                        start,
                        end,
                        index: false,
                    }
                } else {
                    let Some(n) = start else {
                        return Err(self.err());
                    };
                    Step::Slice {
                        start: Some(n),
                        end: Some(n.saturating_add(1)),
                        index: true,
                    }
                }
            }
        };
        self.skip_ws();
        if !self.eat(b']') {
            return Err(self.err());
        }
        Ok(step)
    }

    fn quoted(&mut self, q: u8) -> Result<String, JsonPathError> {
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|c| c != q) {
            self.i += 1;
        }
        let text = self.src[start..self.i].to_string();
        if !self.eat(q) {
            return Err(self.err());
        }
        Ok(text)
    }

    fn int(&mut self) -> Result<Option<i64>, JsonPathError> {
        self.skip_ws();
        let start = self.i;
        self.eat(b'-');
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let text = &self.src[start..self.i];
        self.skip_ws();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| self.err())
    }

    fn filter(&mut self) -> Result<Filter, JsonPathError> {
        self.skip_ws();
        if !self.eat(b'@') {
            return Err(self.err());
        }
        let left = self.steps()?;
        self.skip_ws();
        if self.peek() == Some(b')') {
            return Ok(Filter { left, cmp: None });
        }
        let op = match (self.peek(), self.s.get(self.i + 1).copied()) {
            (Some(b'='), Some(b'=')) => Op::Eq,
            (Some(b'!'), Some(b'=')) => Op::Ne,
            (Some(b'<'), Some(b'=')) => Op::Le,
            (Some(b'>'), Some(b'=')) => Op::Ge,
            (Some(b'<'), _) => Op::Lt,
            (Some(b'>'), _) => Op::Gt,
            _ => return Err(self.err()),
        };
        self.i += if matches!(op, Op::Lt | Op::Gt) { 1 } else { 2 };
        self.skip_ws();
        let lit = match self.peek() {
            Some(q @ (b'\'' | b'"')) => Literal::Str(self.quoted(q)?),
            _ => {
                let start = self.i;
                while self.peek().is_some_and(|c| !is_terminator(c)) {
                    self.i += 1;
                }
                // A number may have a fraction: `1.5` stops at the dot above.
                if self.peek() == Some(b'.') && self.src[start..self.i].parse::<i64>().is_ok() {
                    self.i += 1;
                    while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                        self.i += 1;
                    }
                }
                match &self.src[start..self.i] {
                    "true" => Literal::Bool(true),
                    "false" => Literal::Bool(false),
                    t => match (t.parse::<i64>(), t.parse::<f64>()) {
                        (Ok(n), _) => Literal::Int(n),
                        (_, Ok(f)) => Literal::Float(f),
                        _ => return Err(self.err()),
                    },
                }
            }
        };
        self.skip_ws();
        Ok(Filter {
            left,
            cmp: Some((op, lit)),
        })
    }
}

impl JsonPath {
    /// Parses a CRD column's `jsonPath` (kube wraps it in `{...}` first; a leading `$` is the
    /// root).
    pub fn parse(path: &str) -> Result<JsonPath, JsonPathError> {
        let body = path.trim();
        let body = body.strip_prefix('$').unwrap_or(body);
        let mut p = Parser {
            s: body.as_bytes(),
            i: 0,
            src: body,
        };
        let steps = p.steps()?;
        p.skip_ws();
        if p.i != body.len() || steps.is_empty() {
            return Err(JsonPathError::Unrecognized(path.to_string()));
        }
        Ok(JsonPath { steps })
    }

    /// The values the path finds in `obj`, in order (empty when nothing matches or evaluation
    /// fails). Table cells use the first.
    pub fn find<'v>(&self, obj: &'v Value) -> Vec<&'v Value> {
        eval(&self.steps, vec![obj]).unwrap_or_default()
    }
}

/// An evaluation error (client-go returns one; the table convertor then shows no value).
struct Failed;

fn eval<'v>(steps: &[Step], mut cur: Vec<&'v Value>) -> Result<Vec<&'v Value>, Failed> {
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            // Indirect: a null value yields nothing.
            if v.is_null() {
                continue;
            }
            match step {
                Step::Field(k) => {
                    if let Some(x) = v.as_object().and_then(|m| m.get(k)) {
                        next.push(x);
                    }
                }
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Slice { start, end, index } => {
                    let a = v.as_array().ok_or(Failed)?;
                    let len = a.len() as i64;
                    let mut s = start.unwrap_or(0);
                    if s < 0 {
                        s += len;
                    }
                    let mut e = end.unwrap_or(len);
                    if e < 0 || (*index && e == 0) {
                        e += len;
                    }
                    if s == e {
                        continue;
                    }
                    if s < 0 || s >= len || e < 0 || e > len || s > e {
                        return Err(Failed);
                    }
                    next.extend(&a[s as usize..e as usize]);
                }
                Step::Filter(f) => {
                    let a = v.as_array().ok_or(Failed)?;
                    for item in a {
                        let lefts = eval(&f.left, vec![item])?;
                        let Some((op, lit)) = &f.cmp else {
                            if !lefts.is_empty() {
                                next.push(item);
                            }
                            continue;
                        };
                        match lefts.as_slice() {
                            [] => continue,
                            [one] => {
                                if compare(one, *op, lit)? {
                                    next.push(item);
                                }
                            }
                            _ => return Err(Failed),
                        }
                    }
                }
            }
        }
        cur = next;
    }
    Ok(cur)
}

/// text/template's eq/lt on basic kinds: values of different kinds do not compare.
fn compare(v: &Value, op: Op, lit: &Literal) -> Result<bool, Failed> {
    use std::cmp::Ordering;
    let ord = match (v, lit) {
        (Value::String(a), Literal::Str(b)) => a.as_str().cmp(b.as_str()),
        (Value::Bool(a), Literal::Bool(b)) => {
            return match op {
                Op::Eq => Ok(a == b),
                Op::Ne => Ok(a != b),
                _ => Err(Failed),
            }
        }
        (Value::Number(n), Literal::Int(b)) if n.is_i64() || n.is_u64() => {
            match n.as_i64() {
                Some(a) => a.cmp(b),
                None => Ordering::Greater, // a u64 beyond i64
            }
        }
        (Value::Number(n), Literal::Float(b)) if n.is_f64() => {
            n.as_f64().and_then(|a| a.partial_cmp(b)).ok_or(Failed)?
        }
        _ => return Err(Failed),
    };
    Ok(match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Lt => ord == Ordering::Less,
        Op::Gt => ord == Ordering::Greater,
        Op::Le => ord != Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(path: &str, obj: &Value) -> Vec<Value> {
        JsonPath::parse(path)
            .expect("parses")
            .find(obj)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn paths_as_printer_columns_use_them() {
        let obj = json!({
            "metadata": {"name": "web", "labels": {"app.kubernetes.io/name": "x"}},
            "spec": {"hostnames": ["a", "b", "c"], "n": null},
            "status": {"conditions": [
                {"type": "Issuing", "status": "False"},
                {"type": "Ready", "status": "True", "n": 2, "ok": true}]},
        });
        assert_eq!(find(".metadata.name", &obj), [json!("web")]);
        assert_eq!(
            find(r#".status.conditions[?(@.type=="Ready")].status"#, &obj),
            [json!("True")]
        );
        assert_eq!(
            find(r#".status.conditions[?(@.type == "Ready")].status"#, &obj),
            [json!("True")]
        );
        assert_eq!(
            find(".status.conditions[?(@.type!='Ready')].type", &obj),
            [json!("Issuing")]
        );
        assert_eq!(
            find(".status.conditions[?(@.n>=2)].type", &obj),
            [json!("Ready")]
        );
        assert_eq!(
            find(".status.conditions[?(@.ok)].type", &obj),
            [json!("Ready")]
        );
        assert_eq!(find(".spec.hostnames[0]", &obj), [json!("a")]);
        assert_eq!(find(".spec.hostnames[-1]", &obj), [json!("c")]);
        assert_eq!(find(".spec.hostnames[1:]", &obj), [json!("b"), json!("c")]);
        assert_eq!(find(".spec.hostnames[*]", &obj).len(), 3);
        assert_eq!(find(".spec.hostnames", &obj), [json!(["a", "b", "c"])]);
        assert_eq!(
            find(".metadata.labels['app.kubernetes.io/name']", &obj),
            [json!("x")]
        );
        assert_eq!(find(".spec.n", &obj), [Value::Null], "a null is a value");
        // Missing keys and evaluation errors find nothing.
        for p in [
            ".spec.missing",
            ".spec.n.x",
            ".spec.hostnames[7]",
            ".metadata[0]",
            ".status.conditions[?(@.type==1)].status",
            ".spec.hostnames.x",
        ] {
            assert_eq!(find(p, &obj), Vec::<Value>::new(), "{p}");
        }
    }

    #[test]
    fn unsupported_paths_do_not_parse() {
        for p in ["", "..name", ".a[", ".a[?(@.x=)]", ".a[x]", "spec", ".a,.b"] {
            assert!(JsonPath::parse(p).is_err(), "{p}");
        }
    }
}
