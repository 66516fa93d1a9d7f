//! Label and field selectors, parsed exactly as kube-apiserver parses them.
//!
//! Label selectors follow k8s.io/apimachinery/pkg/labels/selector.go: its lexer (identifiers,
//! `!`, `=`, `==`, `!=`, `>`, `<`, `in`, `notin`, `(`, `)`, `,`), its recursive-descent parser
//! and `NewRequirement`'s checks, with the same error texts, so a malformed selector is a 400
//! and never "matches everything". (`a in ()` is valid there: the empty set reads as `{""}`.)
//! Field selectors follow pkg/fields/selector.go (`path=value`, `==`, `!=`, comma-separated,
//! backslash escapes), and each kind accepts only its own field labels
//! ([`convert_field_label`], after pkg/apis/core/v1/conversion.go).

use crate::resources::ResourceDef;
use regex::Regex;
use serde_json::Value;
use std::sync::LazyLock;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SelectorError {
    /// A label selector kube-apiserver cannot parse; the text is its error.
    #[error("{0}")]
    Label(String),
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Field(String, String),
    #[error("invalid field selector: invalid escape sequence: {0}")]
    FieldEscape(String),
    /// Go formats the rune with `%v`, which prints its code point (`=` is `61`).
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    FieldUnescaped(char),
    /// A field label the kind does not support (the kind's own conversion function).
    #[error("field label not supported: {0}")]
    FieldLabel(String),
    /// A field label of a kind with only the default conversion
    /// (runtime.DefaultMetaV1FieldSelectorConversion).
    #[error("{} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"", go_quote(.0))]
    FieldUnknown(String),
}

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

// --- lexer (selector.go `Lexer`) ---

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Error,
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Ident,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Every token of `s`, ending with `End` (selector.go `Parser.scan`).
///
/// Go's lexer reads a NUL byte as its end-of-input marker: at the start of a token it ends the
/// selector (whatever follows is ignored), inside a token it ends the token and is consumed.
/// That is reproduced, so `a \0!!` selects on `a` here exactly as on a real server.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let b = s.as_bytes();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        while pos < b.len() && is_space(b[pos]) {
            pos += 1;
        }
        if pos >= b.len() || b[pos] == 0 {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(b[pos]) {
            // The longest run of special symbols that is a token ("!=" over "!").
            let start = pos;
            let mut last: Option<(Tok, usize)> = None;
            while pos < b.len() && is_special(b[pos]) {
                pos += 1;
                match keyword(&s[start..pos]) {
                    Some(t) => last = Some((t, pos)),
                    None if last.is_some() => {
                        pos -= 1;
                        break;
                    }
                    None => {}
                }
            }
            match last {
                Some((t, end)) => {
                    pos = end;
                    out.push((t, s[start..end].to_string()));
                }
                None => out.push((
                    Tok::Error,
                    format!("error expected: keyword found '{}'", &s[start..pos]),
                )),
            }
            if b.get(pos) == Some(&0) {
                pos += 1;
            }
        } else {
            let start = pos;
            while pos < b.len() && b[pos] != 0 && !is_special(b[pos]) && !is_space(b[pos]) {
                pos += 1;
            }
            let word = String::from_utf8_lossy(&b[start..pos]).into_owned();
            if b.get(pos) == Some(&0) {
                pos += 1;
            }
            let t = keyword(&word).unwrap_or(Tok::Ident);
            out.push((t, word));
        }
    }
}

/// Go's `%q` (`strconv.Quote`), as field errors print string values.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\x7f' => {
                out.push_str(&format!("\\x{:02x}", u32::from(c)))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// --- parser (selector.go `Parser`) ---

struct Parser {
    items: Vec<(Tok, String)>,
    pos: usize,
}

/// In a value position `in` and `notin` are plain identifiers.
#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Exists,
    DoesNotExist,
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Gt,
    Lt,
}

impl Parser {
    fn at(&self, i: usize, ctx: Ctx) -> (Tok, String) {
        let (t, l) = self
            .items
            .get(i)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        match t {
            Tok::In | Tok::NotIn if ctx == Ctx::Values => (Tok::Ident, l),
            _ => (t, l),
        }
    }
    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        self.at(self.pos, ctx)
    }
    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let r = self.at(self.pos, ctx);
        self.pos += 1;
        r
    }

    fn parse(&mut self) -> Result<Vec<LabelReq>, String> {
        let mut reqs = Vec::new();
        loop {
            let (t, lit) = self.lookahead(Ctx::Values);
            match t {
                Tok::Ident | Tok::DoesNotExist => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Ident && t2 != Tok::DoesNotExist {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<LabelReq, String> {
        let (key, op) = self.key_and_inferred_operator()?;
        if let Some(op) = op {
            return new_requirement(key, op, Vec::new());
        }
        let (t, lit) = self.consume(Ctx::KeyAndOperator);
        let op = match t {
            Tok::In => Op::In,
            Tok::Equals => Op::Equals,
            Tok::DoubleEquals => Op::DoubleEquals,
            Tok::GreaterThan => Op::Gt,
            Tok::LessThan => Op::Lt,
            Tok::NotIn => Op::NotIn,
            Tok::NotEquals => Op::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        };
        let values = match op {
            Op::In | Op::NotIn => self.values()?,
            _ => self.exact_value()?,
        };
        new_requirement(key, op, values)
    }

    fn key_and_inferred_operator(&mut self) -> Result<(String, Option<Op>), String> {
        let mut op = None;
        let (mut t, mut lit) = self.consume(Ctx::Values);
        if t == Tok::DoesNotExist {
            op = Some(Op::DoesNotExist);
            (t, lit) = self.consume(Ctx::Values);
        }
        if t != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        // The parser checks the key with its own (nil) field path: `<nil>: Invalid value: ...`.
        if let Some(e) = key_errors(&lit) {
            return Err(format!("<nil>: Invalid value: {}: {e}", go_quote(&lit)));
        }
        let (next, _) = self.lookahead(Ctx::Values);
        if (next == Tok::End || next == Tok::Comma) && op.is_none() {
            op = Some(Op::Exists);
        }
        Ok((lit, op))
    }

    fn values(&mut self) -> Result<Vec<String>, String> {
        let (t, lit) = self.consume(Ctx::Values);
        if t != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (t, lit) = self.lookahead(Ctx::Values);
        match t {
            Tok::Ident | Tok::Comma => {
                let s = self.identifiers()?;
                let (t, _) = self.consume(Ctx::Values);
                if t != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::ClosedPar => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// A comma-separated list of possibly empty identifiers, as a sorted set.
    fn identifiers(&mut self) -> Result<Vec<String>, String> {
        let mut s = std::collections::BTreeSet::new();
        loop {
            let (t, lit) = self.consume(Ctx::Values);
            match t {
                Tok::Ident => {
                    s.insert(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(s.into_iter().collect()),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if s.is_empty() {
                        s.insert(String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::ClosedPar {
                        s.insert(String::new());
                        return Ok(s.into_iter().collect());
                    }
                    if t2 == Tok::Comma {
                        s.insert(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (t, _) = self.lookahead(Ctx::Values);
        if t == Tok::End || t == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (t, lit) = self.consume(Ctx::Values);
        if t == Tok::Ident {
            return Ok(vec![lit]);
        }
        Err(format!("found '{lit}', expected: identifier"))
    }
}

/// `NewRequirement`'s checks (every error, aggregated as utilerrors does).
fn new_requirement(key: String, op: Op, vals: Vec<String>) -> Result<LabelReq, String> {
    let mut errs = Vec::new();
    if let Some(e) = key_errors(&key) {
        errs.push(format!("key: Invalid value: {}: {e}", go_quote(&key)));
    }
    let mut ints = Vec::new();
    if matches!(op, Op::Gt | Op::Lt) {
        for (i, v) in vals.iter().enumerate() {
            match v.parse::<i64>() {
                Ok(n) => ints.push(n),
                Err(_) => errs.push(format!(
                    "values[{i}]: Invalid value: {}: for 'Gt', 'Lt' operators, the value must be an integer",
                    go_quote(v)
                )),
            }
        }
    }
    for (i, v) in vals.iter().enumerate() {
        if let Some(e) = value_errors(v) {
            errs.push(format!(
                "values[{i}][{key}]: Invalid value: {}: {e}",
                go_quote(v)
            ));
        }
    }
    match errs.len() {
        0 => {}
        1 => return Err(errs.remove(0)),
        _ => return Err(format!("[{}]", errs.join(", "))),
    }
    let one = || vals.first().cloned().unwrap_or_default();
    Ok(match op {
        Op::Exists => LabelReq::Exists(key),
        Op::DoesNotExist => LabelReq::NotExists(key),
        Op::Equals | Op::DoubleEquals => LabelReq::Eq(key, one()),
        Op::NotEquals => LabelReq::NotEq(key, one()),
        Op::In => LabelReq::In(key, vals),
        Op::NotIn => LabelReq::NotIn(key, vals),
        Op::Gt => LabelReq::Gt(key, ints.first().copied().unwrap_or(0)),
        Op::Lt => LabelReq::Lt(key, ints.first().copied().unwrap_or(0)),
    })
}

// --- name formats (apimachinery pkg/util/validation/validation.go) ---

const QNAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QNAME_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn full_match(fmt: &str, v: &str) -> bool {
    static CACHE: LazyLock<Vec<(String, Option<Regex>)>> = LazyLock::new(|| {
        [
            QNAME_FMT.to_string(),
            DNS1123_SUBDOMAIN_FMT.to_string(),
            format!("({QNAME_FMT})?"),
        ]
        .into_iter()
        .map(|f| {
            let re = Regex::new(&format!("^(?:{f})$")).ok();
            (f, re)
        })
        .collect()
    });
    CACHE
        .iter()
        .find(|(f, _)| f == fmt)
        .and_then(|(_, re)| re.as_ref())
        .is_some_and(|re| re.is_match(v))
}

/// `RegexError`: the message with its examples and the regex.
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let shown: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{fmt}')",
        shown.join("or ")
    )
}

/// `IsQualifiedName` errors, joined with `; ` (None when valid).
fn key_errors(k: &str) -> Option<String> {
    let examples = ["MyName", "my.name", "123-abc"];
    let parts: Vec<&str> = k.split('/').collect();
    let (prefix, name) = match parts[..] {
        [n] => (None, n),
        [p, n] => (Some(p), n),
        _ => {
            return Some(format!(
                "a qualified name {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(QNAME_MSG, QNAME_FMT, &examples)
            ))
        }
    };
    let mut errs = Vec::new();
    match prefix {
        Some("") => errs.push("prefix part must be non-empty".to_string()),
        Some(p) => {
            if p.len() > 253 {
                errs.push("prefix part must be no more than 253 characters".to_string());
            }
            if !full_match(DNS1123_SUBDOMAIN_FMT, p) {
                errs.push(format!(
                    "prefix part {}",
                    regex_error(
                        DNS1123_SUBDOMAIN_MSG,
                        DNS1123_SUBDOMAIN_FMT,
                        &["example.com"]
                    )
                ));
            }
        }
        None => {}
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !full_match(QNAME_FMT, name) {
        errs.push(format!(
            "name part {}",
            regex_error(QNAME_MSG, QNAME_FMT, &examples)
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

/// `IsValidLabelValue` errors, joined with `; ` (None when valid).
fn value_errors(v: &str) -> Option<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    let fmt = format!("({QNAME_FMT})?");
    if !full_match(&fmt, v) {
        errs.push(regex_error(
            LABEL_VALUE_MSG,
            &fmt,
            &["MyValue", "my_value", "12345"],
        ));
    }
    (!errs.is_empty()).then(|| errs.join("; "))
}

impl LabelSelector {
    /// Parses a selector as `labels.Parse` does; the error text is kube-apiserver's.
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let items = lex(s);
        if let Some((_, msg)) = items.iter().find(|(t, _)| *t == Tok::Error) {
            // The parser reports the error token as an unexpected literal.
            let mut p = Parser {
                items: items.clone(),
                pos: 0,
            };
            return match p.parse() {
                Err(e) => Err(SelectorError::Label(e)),
                Ok(_) => Err(SelectorError::Label(msg.clone())),
            };
        }
        let mut p = Parser { items, pos: 0 };
        let mut reqs = p.parse().map_err(SelectorError::Label)?;
        reqs.sort_by(|a, b| req_key(a).cmp(req_key(b)));
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
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

fn req_key(r: &LabelReq) -> &str {
    match r {
        LabelReq::Eq(k, _)
        | LabelReq::NotEq(k, _)
        | LabelReq::In(k, _)
        | LabelReq::NotIn(k, _)
        | LabelReq::Exists(k)
        | LabelReq::NotExists(k)
        | LabelReq::Gt(k, _)
        | LabelReq::Lt(k, _) => k,
    }
}

impl std::fmt::Display for LabelSelector {
    /// The canonical form (`Requirement.String`), which parses back to the same selector.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                LabelReq::Eq(k, v) => format!("{k}={v}"),
                LabelReq::NotEq(k, v) => format!("{k}!={v}"),
                LabelReq::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                LabelReq::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                LabelReq::Exists(k) => k.clone(),
                LabelReq::NotExists(k) => format!("!{k}"),
                LabelReq::Gt(k, n) => format!("{k}>{n}"),
                LabelReq::Lt(k, n) => format!("{k}<{n}"),
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A parsed field selector: `(field label, equal?, value)` terms, ANDed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses a selector as `fields.ParseSelector` does: terms split on unescaped commas, each
    /// split at its first `!=`, `==` or `=` (nothing is trimmed), values unescaped.
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = split_terms(s);
        terms.sort();
        let mut out = Vec::new();
        for term in terms.iter().filter(|t| !t.is_empty()) {
            let Some((lhs, op, rhs)) = split_term(term) else {
                return Err(SelectorError::Field(s.to_string(), term.to_string()));
            };
            out.push((lhs.to_string(), op != "!=", unescape(rhs)?));
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

    /// Refuses field labels `res` does not support, with kube-apiserver's message, and rewrites
    /// the deprecated ones as its field-label conversion does (a Pod's `spec.host` is
    /// `spec.nodeName`). ListResource runs this on list, watch and deletecollection
    /// (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/get.go, `FieldSelector.Transform`).
    pub fn check_labels(&mut self, res: &ResourceDef) -> Result<(), SelectorError> {
        for (label, _, _) in &mut self.0 {
            *label = convert_field_label(res, label)?;
        }
        Ok(())
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.0
            .iter()
            .all(|(label, eq, want)| (field_value(obj, label) == *want) == *eq)
    }
}

/// The value of a selectable field as the kind's registry computes it (`ToSelectableFields`
/// in pkg/registry/core/{pod,event}/strategy.go): absent fields read as `""`. Labels are checked
/// per kind first, so the kind-specific names below only ever reach objects of that kind.
fn field_value(obj: &Value, label: &str) -> String {
    let text = |path: &str| {
        path.split('.')
            .try_fold(obj, |v, seg| v.get(seg))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default()
    };
    match label {
        // Pods: `strconv.FormatBool(hostNetwork)`, false when unset.
        "spec.hostNetwork" => obj
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            .to_string(),
        // Pods: the first of `status.podIPs`.
        "status.podIP" | "status.podIPs" => {
            match obj.pointer("/status/podIPs/0/ip").and_then(Value::as_str) {
                Some(first) => first.to_string(),
                None => text("status.podIP"),
            }
        }
        // Events: `source.component`, else the reporting controller.
        "source" => match text("source.component") {
            s if s.is_empty() => text("reportingComponent"),
            s => s,
        },
        _ => text(label),
    }
}

/// The field labels of the built-in kinds that register their own conversion
/// (pkg/apis/core/v1/conversion.go: Pod, Event, Namespace, Secret, Service). `None`: the kind
/// has only the scheme default. apps/v1 registers none, so ReplicaSet's `status.replicas`
/// (selectable in its strategy) is refused before it is ever matched, as on a real cluster.
fn field_labels(res: &ResourceDef) -> Option<&'static [&'static str]> {
    if !res.group.is_empty() {
        return None;
    }
    Some(match res.kind {
        "Pod" => &[
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "metadata.namespace",
            "metadata.name",
        ],
        // No metadata.namespace: a Namespace has none.
        "Namespace" => &["status.phase", "metadata.name"],
        "Secret" => &["type", "metadata.namespace", "metadata.name"],
        "Service" => &[
            "metadata.namespace",
            "metadata.name",
            "spec.clusterIP",
            "spec.type",
        ],
        _ => return None,
    })
}

/// `ConvertFieldLabel` of `res`: the label to match on, or kube-apiserver's refusal.
pub fn convert_field_label(res: &ResourceDef, label: &str) -> Result<String, SelectorError> {
    if !res.builtin {
        // Custom resources: apiextensions-apiserver pkg/apiserver/conversion/converter.go
        // (`crConverter.ConvertFieldLabel`); a cluster-scoped kind has no metadata.namespace.
        return match label {
            "metadata.name" => Ok(label.to_string()),
            "metadata.namespace" if res.namespaced => Ok(label.to_string()),
            _ => Err(SelectorError::FieldLabel(label.to_string())),
        };
    }
    match field_labels(res) {
        Some(allowed) if allowed.contains(&label) => Ok(label.to_string()),
        // "This is for backwards compatibility with old v1 clients which send spec.host".
        Some(_) if res.kind == "Pod" && label == "spec.host" => Ok("spec.nodeName".to_string()),
        Some(_) => Err(SelectorError::FieldLabel(label.to_string())),
        // runtime.DefaultMetaV1FieldSelectorConversion.
        None if label == "metadata.name" || label == "metadata.namespace" => Ok(label.to_string()),
        None => Err(SelectorError::FieldUnknown(label.to_string())),
    }
}

/// Splits on commas not preceded by a backslash (fields `splitTerms`).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// The term split at the first operator, trying `!=`, `==`, `=` at each position.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], op, value));
            }
        }
    }
    None
}

/// fields `UnescapeValue`: `\\`, `\,` and `\=` are escapes; a bare `,` or `=` is an error.
fn unescape(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('\\' | ',' | '=')) => out.push(n),
                Some(n) => return Err(SelectorError::FieldEscape(format!("\\{n}"))),
                None => return Err(SelectorError::FieldEscape("\\".into())),
            },
            ',' | '=' => return Err(SelectorError::FieldUnescaped(c)),
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::kinds;
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

    /// The message kube-apiserver gives for `labelSelector=<input>` (selector.go; checked
    /// against apimachinery's own test table where it has the case).
    fn label_err(input: &str) -> String {
        match LabelSelector::parse(input) {
            Err(SelectorError::Label(m)) => m,
            other => panic!("{input:?} parsed: {other:?}"),
        }
    }

    #[test]
    fn malformed_label_selectors_are_errors_not_everything() {
        assert_eq!(
            label_err("!!"),
            "unable to parse requirement: found '!', expected: identifier"
        );
        assert_eq!(
            label_err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            label_err(","),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(label_err("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            label_err("a in ("),
            "unable to parse requirement: found '', expected: ',', ')' or identifier"
        );
        assert_eq!(
            label_err("a=b=c"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            label_err("=b"),
            "found '=', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(
            label_err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            label_err("a>x"),
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
        assert!(label_err("a=b c").starts_with("found 'c', expected: ',' or 'end of string'"));
        assert!(label_err("-a").starts_with(
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters"
        ));
        assert!(label_err("a=-b").starts_with(
            "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty string or consist of"
        ));
        assert!(label_err("a=&").starts_with("unable to parse requirement: values[0][a]"));
    }

    /// Go's lexer treats a NUL byte as the end of input: it ends the selector at the start of a
    /// token and ends (and is consumed with) a token it interrupts. Values print as Go's %q.
    #[test]
    fn nul_bytes_and_quoting_as_in_go() {
        let o = obj(json!({"a": "x"}));
        let sel = LabelSelector::parse("a \0!!").unwrap();
        assert_eq!(sel.to_string(), "a");
        assert_eq!(LabelSelector::parse("a=\0x").unwrap().to_string(), "a=x");
        assert!(LabelSelector::parse("a=\0x").unwrap().matches(&o));
        assert_eq!(
            label_err("a\0!!"),
            "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert!(LabelSelector::parse("\0,,,").unwrap().is_empty());
        assert!(label_err("a\u{1}b").starts_with(
            r#"unable to parse requirement: <nil>: Invalid value: "a\x01b": name part"#
        ));
        let mut f = FieldSelector::parse("x\ty=1").unwrap();
        assert_eq!(
            f.check_labels(kinds::replicasets())
                .unwrap_err()
                .to_string(),
            r#""x\ty" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
    }

    #[test]
    fn the_grammar_accepts_what_apimachinery_accepts() {
        let o = obj(json!({"app": "web", "n": "5", "empty": ""}));
        // "x in (foo,,baz),y,z notin ()" is the grammar's own example.
        assert!(LabelSelector::parse("x in (foo,,baz),y,z notin ()").is_ok());
        // The empty set reads as {""}: `notin ()` matches a missing or non-empty label.
        assert!(LabelSelector::parse("app notin ()").unwrap().matches(&o));
        assert!(!LabelSelector::parse("empty notin ()").unwrap().matches(&o));
        assert!(LabelSelector::parse("empty in ()").unwrap().matches(&o));
        assert!(LabelSelector::parse("empty=").unwrap().matches(&o));
        assert!(LabelSelector::parse("n>4,n<6").unwrap().matches(&o));
        assert!(!LabelSelector::parse("n>5").unwrap().matches(&o));
        assert!(!LabelSelector::parse("app>1").unwrap().matches(&o));
        assert!(LabelSelector::parse("  app  ==  web  ")
            .unwrap()
            .matches(&o));
        assert!(LabelSelector::parse("app in (in, notin, web)")
            .unwrap()
            .matches(&o));
        assert!(LabelSelector::parse("example.com/app=x").is_ok());
        assert!(LabelSelector::parse("").unwrap().is_empty());
    }

    #[test]
    fn field_selectors_split_unescape_and_check_labels() {
        let s = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert!(s.matches(&json!({"metadata": {"name": "a,b"}})));
        assert_eq!(
            FieldSelector::parse(r"metadata.name=a\x")
                .unwrap_err()
                .to_string(),
            r"invalid field selector: invalid escape sequence: \x"
        );
        assert_eq!(
            FieldSelector::parse("metadata.name=a=b")
                .unwrap_err()
                .to_string(),
            "invalid field selector: unescaped character in value: 61"
        );
        // Nothing is trimmed: the label is "metadata.name ".
        let mut spaced = FieldSelector::parse("metadata.name = a").unwrap();
        assert_eq!(
            spaced
                .check_labels(kinds::replicasets())
                .unwrap_err()
                .to_string(),
            r#""metadata.name " is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        let mut pods = FieldSelector::parse("status.phase=Running,spec.nodeName!=x").unwrap();
        assert!(pods.check_labels(kinds::pods()).is_ok());
        let ev = field_sel("source=kubelet,type=Normal", kinds::events()).unwrap();
        assert!(ev.matches(&json!({"source": {"component": "kubelet"}, "type": "Normal"})));
        assert!(ev.matches(&json!({"reportingComponent": "kubelet", "type": "Normal"})));
    }

    fn field_sel(s: &str, res: &ResourceDef) -> Result<FieldSelector, SelectorError> {
        let mut f = FieldSelector::parse(s)?;
        f.check_labels(res)?;
        Ok(f)
    }

    /// Each kind's field labels and refusal text, as its `ConvertFieldLabel` gives them.
    #[test]
    fn field_labels_per_kind_as_kube_apiserver() {
        let unsupported = "field label not supported:";
        let apps = r#"is not a known field selector: only "metadata.name", "metadata.namespace""#;
        for (sel, res, want) in [
            // A kind with its own conversion (pkg/apis/core/v1/conversion.go).
            (
                "spec.foo=bar",
                kinds::pods(),
                format!("{unsupported} spec.foo"),
            ),
            (
                "metadata.namespace=x",
                kinds::namespaces(),
                format!("{unsupported} metadata.namespace"),
            ),
            // apps/v1 registers none: the scheme default.
            (
                "status.replicas=1",
                kinds::replicasets(),
                format!(r#""status.replicas" {apps}"#),
            ),
            // Custom resources (crConverter), cluster-scoped ones without metadata.namespace.
            (
                "status.phase=x",
                kinds::gateways(),
                format!("{unsupported} status.phase"),
            ),
            (
                "metadata.namespace=x",
                kinds::gatewayclasses(),
                format!("{unsupported} metadata.namespace"),
            ),
        ] {
            let got = field_sel(sel, res).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(got, Err(want), "{sel} on {}", res.kind);
        }
        for (s, r) in [
            ("spec.type=ClusterIP,spec.clusterIP=None", kinds::services()),
            (
                "status.phase=Active,metadata.name=default",
                kinds::namespaces(),
            ),
            (
                "involvedObject.uid=u,reason=r,reportingComponent=c",
                kinds::events(),
            ),
            ("metadata.name=a,metadata.namespace=b", kinds::gateways()),
            ("metadata.name=a", kinds::gatewayclasses()),
        ] {
            assert!(field_sel(s, r).is_ok(), "{s}");
        }
        // The legacy `spec.host` is `spec.nodeName`; an unset hostNetwork is "false".
        let pod = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"},
                         "status": {"podIPs": [{"ip": "10.0.0.7"}]}});
        for s in [
            "spec.host=n1",
            "spec.hostNetwork=false",
            "status.podIP=10.0.0.7",
        ] {
            assert!(field_sel(s, kinds::pods()).unwrap().matches(&pod), "{s}");
        }
        assert!(!field_sel("spec.hostNetwork=true", kinds::pods())
            .unwrap()
            .matches(&pod));
    }

    /// Property: any string either fails to parse or parses to a selector whose canonical form
    /// parses back to the same selector; nothing panics. Inputs are built from the grammar's
    /// own tokens plus noise, so most are near-misses.
    #[test]
    fn parsing_is_total_and_the_canonical_form_round_trips() {
        let atoms = [
            "a", "b", "app", "x.y/z", "in", "notin", "!", "=", "==", "!=", ">", "<", "(", ")", ",",
            " ", "5", "-", "_", ".", "/", "é", "\t", "", "!!", "((", "1a",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut parsed = 0;
        for _ in 0..20_000 {
            let n = rng.usize(1..8);
            let input: String = (0..n).map(|_| atoms[rng.usize(..atoms.len())]).collect();
            let Ok(sel) = LabelSelector::parse(&input) else {
                continue;
            };
            parsed += 1;
            let shown = sel.to_string();
            let again = LabelSelector::parse(&shown)
                .unwrap_or_else(|e| panic!("{input:?} -> {shown:?} does not parse: {e}"));
            assert_eq!(again, sel, "{input:?} -> {shown:?}");
        }
        assert!(parsed > 1_000, "too few valid inputs: {parsed}");
        for _ in 0..5_000 {
            let n = rng.usize(0..24);
            let input: String = (0..n).map(|_| rng.char('\u{0}'..='\u{7f}')).collect();
            let _ = LabelSelector::parse(&input);
            let _ = FieldSelector::parse(&input);
        }
    }
}
