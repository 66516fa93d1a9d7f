//! An OpenAPI v3 structural-schema engine: what kube-apiserver and apiextensions-apiserver do
//! with a schema when an object is written.
//!
//! A leaf module (it knows nothing of the rest of the crate), usable for any CRD:
//!
//! ```no_run
//! # use agc_sandbox::schema::{Schema, Options};
//! # let open_api_v3_schema = serde_json::json!({"type": "object"});
//! # let mut obj = serde_json::json!({});
//! let schema = Schema::from_openapi(&open_api_v3_schema)?;  // a CRD version's openAPIV3Schema
//! let unknown = schema.unknown_fields(&obj);                 // ["spec.listners"]
//! schema.prune(&mut obj);                                     // drops them
//! schema.apply_defaults(&mut obj);                            // `default:` values
//! let causes = schema.validate(&obj);                         // 422 causes
//! # Ok::<(), agc_sandbox::schema::SchemaError>(())
//! ```
//!
//! What each pass follows:
//! - [`Schema::unknown_fields`] / [`Schema::prune`]: apiextensions-apiserver
//!   `pkg/apiserver/schema/pruning/algorithm.go` (paths `spec.x`, `spec.l[0].x`, map values
//!   `spec.m.key.x`), honouring `x-kubernetes-preserve-unknown-fields`, `additionalProperties`
//!   and `x-kubernetes-embedded-resource`; a resource root's `metadata` is checked as ObjectMeta
//!   (`schema/objectmeta/coerce.go` reports unknown metadata fields the same way).
//! - [`Schema::apply_defaults`]: `pkg/apiserver/schema/defaulting/algorithm.go` (top-down; a
//!   default is applied where the field is absent, or null and not nullable, then descended into).
//! - [`Schema::validate`]: kube-openapi's validator as apiextensions maps its results to field
//!   errors (`validation/validation.go` `kubeOpenAPIResultToFieldErrors`) plus the list-type
//!   pass (`schema/listtype/validation.go`): type (integer vs number), enum, pattern,
//!   minLength/maxLength, minimum/maximum (exclusive too), minItems/maxItems,
//!   minProperties/maxProperties, required, nullable, `x-kubernetes-int-or-string`, and
//!   duplicates in `x-kubernetes-list-type: map|set`.
//! - [`Schema::decode_error`]: what Go's `encoding/json` says when a built-in object holds the
//!   wrong JSON type (kube-apiserver answers 400 before any validation).
//! - [`Schema::apply_unknown_fields`]: structured-merge-diff's paths for server-side apply
//!   (`.spec.listeners[name="http"].x: field not declared in schema`).
//! - CEL (`x-kubernetes-validations`) is not interpreted; [`Schema::visit_validations`] hands
//!   every rule with the value it applies to to the caller, who evaluates it.
//!
//! Schemas are compiled once into an arena; `$ref`s (`#/components/schemas/X`,
//! `#/definitions/X`, `#/$defs/X`) resolve against a components map and may be recursive.

pub mod render;

use regex::Regex;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

pub use render::{go_json, go_quote, show};

// === causes (apimachinery pkg/util/validation/field/errors.go) ===

/// One invalid field, as in metav1.StatusCause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// field.ErrorType: `FieldValueInvalid`, `FieldValueRequired`, ... (the consts below).
    pub reason: &'static str,
    /// Field path, e.g. `spec.listeners[0].port`; `<nil>` for an object-wide note.
    pub field: String,
    /// field.Error.ErrorBody(), e.g. `Invalid value: 0: ... should be greater than or equal to 1`.
    pub message: String,
}

/// field.ErrorTypeInvalid.
pub const INVALID: &str = "FieldValueInvalid";
/// field.ErrorTypeRequired.
pub const REQUIRED: &str = "FieldValueRequired";
/// field.ErrorTypeDuplicate.
pub const DUPLICATE: &str = "FieldValueDuplicate";
/// field.ErrorTypeNotSupported.
pub const NOT_SUPPORTED: &str = "FieldValueNotSupported";
/// field.ErrorTypeTooLong.
pub const TOO_LONG: &str = "FieldValueTooLong";
/// field.ErrorTypeTooMany.
pub const TOO_MANY: &str = "FieldValueTooMany";
/// field.ErrorTypeForbidden.
pub const FORBIDDEN: &str = "FieldValueForbidden";
/// field.ErrorTypeTypeInvalid: a CRD field holding the wrong JSON type.
pub const TYPE_INVALID: &str = "FieldValueTypeInvalid";

impl Cause {
    pub fn new(reason: &'static str, field: &str, message: String) -> Cause {
        Cause {
            reason,
            field: field.to_string(),
            message,
        }
    }
}

/// A schema that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// A `$ref` names no schema in the components.
    #[error("failed to resolve $ref {0:?}: no such schema")]
    UnresolvedRef(String),
    /// A `pattern` is not a regular expression the regex crate accepts.
    #[error("failed to compile the pattern at {path}: {source}")]
    Pattern {
        path: String,
        #[source]
        source: regex::Error,
    },
    /// Something else about the schema's shape.
    #[error("invalid schema at {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// How a schema is compiled.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The schema is a resource's root (a CRD's openAPIV3Schema): `metadata` is ObjectMeta,
    /// `apiVersion` and `kind` are strings.
    pub resource_root: bool,
    /// An object schema with neither `properties` nor `additionalProperties` accepts anything
    /// (Go types such as `FieldsV1` or `RawExtension` in the built-in definitions). In a CRD's
    /// structural schema such an object keeps no fields at all, so this is off for CRDs.
    pub empty_object_is_free_form: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            resource_root: true,
            empty_object_is_free_form: false,
        }
    }
}

// === compiled nodes ===

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Ty {
    #[default]
    Any,
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Any => "",
            Ty::String => "string",
            Ty::Integer => "integer",
            Ty::Number => "number",
            Ty::Boolean => "boolean",
            Ty::Object => "object",
            Ty::Array => "array",
        }
    }
}

#[derive(Debug, Clone, Default)]
enum Additional {
    /// Not given: unknown keys are not allowed (pruned).
    #[default]
    Absent,
    /// `additionalProperties: true` or a free-form object.
    Any,
    Schema(usize),
}

/// One schema node. Accessors follow `reference` for structure; `default` is the site's own.
#[derive(Debug, Clone, Default)]
struct Node {
    reference: Option<usize>,
    ty: Ty,
    format: Option<String>,
    properties: BTreeMap<String, usize>,
    additional: Additional,
    items: Option<usize>,
    required: Vec<String>,
    enum_values: Vec<Value>,
    pattern: Option<(String, Regex)>,
    min_length: Option<u64>,
    max_length: Option<u64>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: bool,
    exclusive_maximum: bool,
    min_items: Option<u64>,
    max_items: Option<u64>,
    min_properties: Option<u64>,
    max_properties: Option<u64>,
    nullable: bool,
    preserve_unknown: bool,
    int_or_string: bool,
    embedded_resource: bool,
    list_type: Option<String>,
    list_map_keys: Vec<String>,
    default: Option<Value>,
    /// `x-kubernetes-validations`: (rule, message).
    validations: Vec<(String, String)>,
    /// The Go type this node decodes into, for built-ins (`v1.ServicePort`), from its
    /// definition name; `None` for anonymous nodes.
    go_type: Option<String>,
}

struct Arena {
    nodes: Vec<Node>,
}

/// A compiled schema; cheap to clone.
#[derive(Clone)]
pub struct Schema {
    arena: Arc<Arena>,
    root: usize,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("nodes", &self.arena.nodes.len())
            .finish()
    }
}

/// ObjectMeta and what it references (Kubernetes v1.33 definitions, see
/// `scripts/gen-builtin-schemas.py`), used for a resource root's `metadata`.
const OBJECT_META_JSON: &str = include_str!("objectmeta.json");
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

static OBJECT_META_DEFS: LazyLock<Map<String, Value>> =
    LazyLock::new(|| serde_json::from_str(OBJECT_META_JSON).unwrap_or_default());

struct Builder<'a> {
    defs: Option<&'a Map<String, Value>>,
    nodes: Vec<Node>,
    by_ref: HashMap<String, usize>,
    opts: Options,
}

fn ref_target(v: &Value) -> Option<&str> {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        return Some(r);
    }
    // kube-openapi v3 wraps a reference with a description or default in a one-element allOf.
    match v.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        Some([one]) => one.get("$ref").and_then(Value::as_str),
        _ => None,
    }
}

fn go_type_of(def: &str) -> String {
    // io.k8s.api.core.v1.ServicePort -> v1.ServicePort
    let mut parts = def.rsplit('.');
    let name = parts.next().unwrap_or(def);
    match parts.next() {
        Some(pkg) => format!("{pkg}.{name}"),
        None => name.to_string(),
    }
}

impl<'a> Builder<'a> {
    fn push(&mut self, n: Node) -> usize {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn resolve(&mut self, r: &str, path: &str) -> Result<usize, SchemaError> {
        let name = r.rsplit('/').next().unwrap_or(r).to_string();
        if let Some(id) = self.by_ref.get(&name) {
            return Ok(*id);
        }
        let local = self.defs.and_then(|d| d.get(&name));
        let def = match local {
            Some(d) => d.clone(),
            None => match OBJECT_META_DEFS.get(&name) {
                Some(d) => d.clone(),
                None => return Err(SchemaError::UnresolvedRef(r.to_string())),
            },
        };
        // Reserve the slot first so recursive references find it.
        let id = self.push(Node::default());
        self.by_ref.insert(name.clone(), id);
        let mut node = self.compile_node(&def, path)?;
        node.go_type = Some(go_type_of(&name));
        self.nodes[id] = node;
        Ok(id)
    }

    fn object_meta(&mut self) -> Result<usize, SchemaError> {
        // Always from the embedded definitions, whatever the components hold; these are Go
        // types, so an empty object (`FieldsV1` in managedFields) holds anything.
        let (saved, opts) = (self.defs.take(), self.opts);
        self.opts.empty_object_is_free_form = true;
        let r = self.resolve(OBJECT_META, "metadata");
        (self.defs, self.opts) = (saved, opts);
        r
    }

    fn compile(&mut self, v: &Value, path: &str) -> Result<usize, SchemaError> {
        if let Some(r) = ref_target(v) {
            let target = self.resolve(r, path)?;
            return match v.get("default") {
                Some(d) => Ok(self.push(Node {
                    reference: Some(target),
                    default: Some(d.clone()),
                    ..Node::default()
                })),
                None => Ok(target),
            };
        }
        let n = self.compile_node(v, path)?;
        Ok(self.push(n))
    }

    fn compile_node(&mut self, v: &Value, path: &str) -> Result<Node, SchemaError> {
        let Some(m) = v.as_object() else {
            // `true` (any) or an empty schema.
            return Ok(Node {
                preserve_unknown: true,
                ..Node::default()
            });
        };
        let u = |k: &str| m.get(k).and_then(Value::as_u64);
        let f = |k: &str| m.get(k).and_then(Value::as_f64);
        let b = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
        let mut n = Node::default();
        let (ty, nullable_by_type) = match m.get("type") {
            Some(Value::String(s)) => (s.as_str(), false),
            Some(Value::Array(a)) => {
                let ts: Vec<&str> = a
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| *t != "null")
                    .collect();
                (
                    ts.first().copied().unwrap_or(""),
                    a.iter().any(|t| t == "null"),
                )
            }
            _ => ("", false),
        };
        n.ty = match ty {
            "string" => Ty::String,
            "integer" => Ty::Integer,
            "number" => Ty::Number,
            "boolean" => Ty::Boolean,
            "object" => Ty::Object,
            "array" => Ty::Array,
            _ if m.contains_key("properties") || m.contains_key("additionalProperties") => {
                Ty::Object
            }
            _ if m.contains_key("items") => Ty::Array,
            _ => Ty::Any,
        };
        n.format = m.get("format").and_then(Value::as_str).map(str::to_string);
        n.nullable = b("nullable") || nullable_by_type;
        n.preserve_unknown = b("x-kubernetes-preserve-unknown-fields");
        n.int_or_string = b("x-kubernetes-int-or-string")
            || matches!(
                n.format.as_deref(),
                Some("int-or-string") | Some("quantity")
            );
        if n.int_or_string {
            n.ty = Ty::Any;
        }
        n.embedded_resource = b("x-kubernetes-embedded-resource");
        n.required = m
            .get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        n.enum_values = m
            .get("enum")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(p) = m.get("pattern").and_then(Value::as_str) {
            let re = Regex::new(p).map_err(|source| SchemaError::Pattern {
                path: path.to_string(),
                source,
            })?;
            n.pattern = Some((p.to_string(), re));
        }
        (n.min_length, n.max_length) = (u("minLength"), u("maxLength"));
        (n.minimum, n.maximum) = (f("minimum"), f("maximum"));
        (n.exclusive_minimum, n.exclusive_maximum) = (b("exclusiveMinimum"), b("exclusiveMaximum"));
        (n.min_items, n.max_items) = (u("minItems"), u("maxItems"));
        (n.min_properties, n.max_properties) = (u("minProperties"), u("maxProperties"));
        n.list_type = m
            .get("x-kubernetes-list-type")
            .and_then(Value::as_str)
            .map(str::to_string);
        n.list_map_keys = m
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        n.default = m.get("default").cloned();
        n.validations = m
            .get("x-kubernetes-validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let s = |k| r.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                let msg = match s("message") {
                    m if m.is_empty() => format!("failed rule: {}", s("rule")),
                    m => m,
                };
                (s("rule"), msg)
            })
            .collect();
        if let Some(props) = m.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let id = self.compile(p, &join(path, k))?;
                n.properties.insert(k.clone(), id);
            }
        }
        n.additional = match m.get("additionalProperties") {
            Some(Value::Bool(true)) => Additional::Any,
            Some(Value::Bool(false)) | None => Additional::Absent,
            Some(s) => Additional::Schema(self.compile(s, &format!("{path}[*]"))?),
        };
        if self.opts.empty_object_is_free_form
            && n.ty == Ty::Object
            && n.properties.is_empty()
            && matches!(n.additional, Additional::Absent)
        {
            n.additional = Additional::Any;
        }
        if let Some(items) = m.get("items") {
            n.items = Some(self.compile(items, &format!("{path}[*]"))?);
        }
        Ok(n)
    }
}

fn join(path: &str, k: &str) -> String {
    if path.is_empty() {
        k.to_string()
    } else {
        format!("{path}.{k}")
    }
}

// === impl Schema ===

impl Schema {
    /// Compiles a CRD version's `openAPIV3Schema` (a resource root, structural rules).
    pub fn from_openapi(v: &Value) -> Result<Schema, SchemaError> {
        Schema::compile(v, None, Options::default())
    }

    /// Compiles the component `name` of an OpenAPI document's `components.schemas` (or a
    /// swagger `definitions` map), resolving `$ref`s within it.
    pub fn from_components(
        components: &Map<String, Value>,
        name: &str,
        opts: Options,
    ) -> Result<Schema, SchemaError> {
        let root = Value::String(format!("#/components/schemas/{name}"));
        let wrapper = serde_json::json!({ "$ref": root });
        Schema::compile(&wrapper, Some(components), opts)
    }

    /// Compiles `v` with `opts`, resolving `$ref`s against `components` when given.
    pub fn compile(
        v: &Value,
        components: Option<&Map<String, Value>>,
        opts: Options,
    ) -> Result<Schema, SchemaError> {
        let mut b = Builder {
            defs: components,
            nodes: Vec::new(),
            by_ref: HashMap::new(),
            opts,
        };
        let root = b.compile(v, "")?;
        if opts.resource_root {
            let meta = b.object_meta()?;
            let r = b.nodes[root].reference.unwrap_or(root);
            let r = b.nodes[r].reference.unwrap_or(r);
            let node = &mut b.nodes[r];
            node.properties.insert("metadata".into(), meta);
            if node.ty == Ty::Any {
                node.ty = Ty::Object;
            }
            for k in ["apiVersion", "kind"] {
                if !b.nodes[r].properties.contains_key(k) {
                    let id = b.push(Node {
                        ty: Ty::String,
                        ..Node::default()
                    });
                    b.nodes[r].properties.insert(k.into(), id);
                }
            }
        }
        Ok(Schema {
            arena: Arc::new(Arena { nodes: b.nodes }),
            root,
        })
    }

    fn node(&self, mut id: usize) -> &Node {
        let nodes = &self.arena.nodes;
        while let Some(r) = nodes[id].reference {
            id = r;
        }
        &nodes[id]
    }

    /// The schema of an object's key `k` under node `id`: a property, else additionalProperties.
    fn child(&self, id: usize, k: &str) -> Option<Child> {
        let n = self.node(id);
        if let Some(p) = n.properties.get(k) {
            return Some(Child::Prop(*p));
        }
        if n.embedded_resource && matches!(k, "apiVersion" | "kind" | "metadata") {
            return Some(Child::Free);
        }
        match n.additional {
            Additional::Schema(s) => Some(Child::Map(s)),
            Additional::Any => Some(Child::Free),
            Additional::Absent if n.preserve_unknown || n.ty == Ty::Any => Some(Child::Free),
            Additional::Absent => None,
        }
    }

    /// Whether any node carries `x-kubernetes-validations`.
    pub fn has_validations(&self) -> bool {
        self.arena.nodes.iter().any(|n| !n.validations.is_empty())
    }

    // --- unknown fields and pruning ---

    /// Paths of the fields the schema does not declare, as apiextensions' pruning reports them
    /// (`spec.listners`, `spec.listeners[0].x`), in document order. Sort them for a CRD's
    /// strict-decoding message (pruning sorts), keep the order for a built-in's (Go's decoder
    /// reports as it reads).
    pub fn unknown_fields(&self, obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.walk_unknown(self.root, obj, "", &mut out);
        out
    }

    /// Removes the undeclared fields and returns their paths (as [`Schema::unknown_fields`]).
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        let mut out = Vec::new();
        self.prune_at(self.root, obj, "", &mut out);
        out
    }

    fn walk_unknown(&self, id: usize, v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    match self.child(id, k) {
                        Some(Child::Prop(c)) | Some(Child::Map(c)) => {
                            self.walk_unknown(c, x, &join(path, k), out)
                        }
                        Some(Child::Free) => {}
                        None => out.push(join(path, k)),
                    }
                }
            }
            Value::Array(a) => {
                if let Some(items) = self.node(id).items {
                    for (i, x) in a.iter().enumerate() {
                        self.walk_unknown(items, x, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }

    fn prune_at(&self, id: usize, v: &mut Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let mut drop = Vec::new();
                for (k, x) in m.iter_mut() {
                    match self.child(id, k) {
                        Some(Child::Prop(c)) | Some(Child::Map(c)) => {
                            self.prune_at(c, x, &join(path, k), out)
                        }
                        Some(Child::Free) => {}
                        None => {
                            out.push(join(path, k));
                            drop.push(k.clone());
                        }
                    }
                }
                for k in drop {
                    m.remove(&k);
                }
            }
            Value::Array(a) => {
                if let Some(items) = self.node(id).items {
                    for (i, x) in a.iter_mut().enumerate() {
                        self.prune_at(items, x, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }

    /// Undeclared fields as server-side apply's typed conversion (structured-merge-diff)
    /// names them: `.spec.listners`, `.spec.listeners[name="http"].x` for a keyed list,
    /// `[=value]` for a set, `[0]` for an atomic list. Join as
    /// [`render::smd_errors`] does for the message.
    pub fn apply_unknown_fields(&self, obj: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.smd_walk(self.root, obj, "", &mut out);
        out
    }

    fn smd_walk(&self, id: usize, v: &Value, path: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                for k in keys {
                    let p = format!("{path}.{k}");
                    match self.child(id, k) {
                        Some(Child::Prop(c)) | Some(Child::Map(c)) => {
                            self.smd_walk(c, &m[k.as_str()], &p, out)
                        }
                        Some(Child::Free) => {}
                        None => out.push(p),
                    }
                }
            }
            Value::Array(a) => {
                let n = self.node(id);
                let Some(items) = n.items else { return };
                for (i, x) in a.iter().enumerate() {
                    let el = match n.list_type.as_deref() {
                        Some("map") if !n.list_map_keys.is_empty() => {
                            let kv: Vec<String> = n
                                .list_map_keys
                                .iter()
                                .filter_map(|k| x.get(k).map(|v| format!("{k}={}", go_json(v))))
                                .collect();
                            format!("[{}]", kv.join(","))
                        }
                        Some("set") => format!("[={}]", go_json(x)),
                        _ => format!("[{i}]"),
                    };
                    self.smd_walk(items, x, &format!("{path}{el}"), out);
                }
            }
            _ => {}
        }
    }

    // --- defaults ---

    /// Applies `default:` values where a field is absent (or null and not nullable), top-down,
    /// descending into what was defaulted, as apiextensions' structural defaulting does.
    pub fn apply_defaults(&self, obj: &mut Value) {
        self.default_at(self.root, obj);
    }

    fn default_at(&self, id: usize, v: &mut Value) {
        match v {
            Value::Object(m) => {
                let n = self.node(id);
                for (k, p) in &n.properties {
                    let site = &self.arena.nodes[*p];
                    let def = site.default.as_ref().or(self.node(*p).default.as_ref());
                    if let Some(d) = def {
                        let nullable = self.node(*p).nullable;
                        match m.get(k) {
                            None => {
                                m.insert(k.clone(), d.clone());
                            }
                            Some(Value::Null) if !nullable => {
                                m.insert(k.clone(), d.clone());
                            }
                            _ => {}
                        }
                    }
                }
                let props: Vec<(String, usize)> =
                    n.properties.iter().map(|(k, p)| (k.clone(), *p)).collect();
                let additional = n.additional.clone();
                for (k, x) in m.iter_mut() {
                    if let Some((_, p)) = props.iter().find(|(pk, _)| pk == k) {
                        self.default_at(*p, x);
                    } else if let Additional::Schema(s) = additional {
                        self.default_at(s, x);
                    }
                }
            }
            Value::Array(a) => {
                if let Some(items) = self.node(id).items {
                    for x in a.iter_mut() {
                        self.default_at(items, x);
                    }
                }
            }
            _ => {}
        }
    }

    // --- validation ---

    /// Validates `obj` (defaults applied, unknown fields pruned) against the schema. Nulls count
    /// as absent (apiextensions prunes non-nullable nulls first). Duplicates found by the
    /// list-type pass come after every schema error, as on a real server.
    pub fn validate(&self, obj: &Value) -> Vec<Cause> {
        let (mut out, mut dups) = (Vec::new(), Vec::new());
        self.validate_at(self.root, obj, "", &mut out, &mut dups);
        out.append(&mut dups);
        out
    }

    fn validate_at(
        &self,
        id: usize,
        v: &Value,
        path: &str,
        out: &mut Vec<Cause>,
        dups: &mut Vec<Cause>,
    ) {
        let s = self.node(id);
        let shown = show(v);
        if s.int_or_string {
            if !(v.is_string()
                || is_integer(v)
                || (s.format.as_deref() == Some("quantity") && v.is_number()))
            {
                let got = go_quote(json_type(v));
                let m = format!(
                    "Invalid value: {got}: {path} in body must be of type integer,string: {got}"
                );
                out.push(Cause::new(TYPE_INVALID, path, m));
            }
            return;
        }
        if s.ty != Ty::Any {
            let got = json_type(v);
            let ok = got == s.ty.name() || (s.ty == Ty::Number && got == "integer");
            if !ok {
                let got = go_quote(got);
                let m = format!(
                    "Invalid value: {got}: {path} in body must be of type {}: {got}",
                    s.ty.name()
                );
                return out.push(Cause::new(TYPE_INVALID, path, m));
            }
        }
        if !s.enum_values.is_empty() && !s.enum_values.iter().any(|e| enum_eq(e, v)) {
            let allowed: Vec<String> = s.enum_values.iter().map(show).collect();
            let m = format!(
                "Unsupported value: {shown}: supported values: {}",
                allowed.join(", ")
            );
            out.push(Cause::new(NOT_SUPPORTED, path, m));
        }
        // kube-openapi's messages repeat the path: "<path> in body should ...".
        let body = |shown: &str, m: String| {
            Cause::new(
                INVALID,
                path,
                format!("Invalid value: {shown}: {path} in body {m}"),
            )
        };
        match v {
            Value::String(x) => {
                let n = x.chars().count() as u64;
                if let Some(hi) = s.max_length.filter(|hi| n > *hi) {
                    out.push(Cause::new(
                        TOO_LONG,
                        path,
                        format!("Too long: may not be more than {hi} bytes"),
                    ));
                }
                if let Some(lo) = s.min_length.filter(|lo| n < *lo) {
                    out.push(body(&shown, format!("should be at least {lo} chars long")));
                }
                if let Some((p, _)) = s.pattern.as_ref().filter(|(_, re)| !re.is_match(x)) {
                    out.push(body(&shown, format!("should match '{p}'")));
                }
            }
            Value::Number(num) => {
                let x = num.as_f64().unwrap_or_default();
                let fmt = |f: f64| render::go_float(f);
                if let Some(lo) = s.minimum {
                    if s.exclusive_minimum && x <= lo {
                        out.push(body(&shown, format!("should be greater than {}", fmt(lo))));
                    } else if x < lo {
                        out.push(body(
                            &shown,
                            format!("should be greater than or equal to {}", fmt(lo)),
                        ));
                    }
                }
                if let Some(hi) = s.maximum {
                    if s.exclusive_maximum && x >= hi {
                        out.push(body(&shown, format!("should be less than {}", fmt(hi))));
                    } else if x > hi {
                        out.push(body(
                            &shown,
                            format!("should be less than or equal to {}", fmt(hi)),
                        ));
                    }
                }
            }
            Value::Array(a) => {
                let n = a.len() as u64;
                if let Some(hi) = s.max_items.filter(|hi| n > *hi) {
                    let m = format!("Too many: {n}: must have at most {hi} items");
                    out.push(Cause::new(TOO_MANY, path, m));
                }
                if let Some(lo) = s.min_items.filter(|lo| n < *lo) {
                    out.push(body(
                        &n.to_string(),
                        format!("should have at least {lo} items"),
                    ));
                }
                self.list_type_dups(s, a, path, dups);
                if let Some(items) = s.items {
                    for (i, e) in a.iter().enumerate().filter(|e| !e.1.is_null()) {
                        self.validate_at(items, e, &format!("{path}[{i}]"), out, dups);
                    }
                }
            }
            Value::Object(m) => {
                let n = m.values().filter(|x| !x.is_null()).count() as u64;
                if let Some(hi) = s.max_properties.filter(|hi| n > *hi) {
                    let msg = format!("Too many: {n}: must have at most {hi} items");
                    out.push(Cause::new(TOO_MANY, path, msg));
                }
                if let Some(lo) = s.min_properties.filter(|lo| n < *lo) {
                    out.push(body(
                        &n.to_string(),
                        format!("should have at least {lo} properties"),
                    ));
                }
                for r in s
                    .required
                    .iter()
                    .filter(|r| m.get(r.as_str()).is_none_or(Value::is_null))
                {
                    out.push(Cause::new(
                        REQUIRED,
                        &join(path, r),
                        "Required value".into(),
                    ));
                }
                for (k, e) in m.iter().filter(|e| !e.1.is_null()) {
                    match self.child(id, k) {
                        Some(Child::Prop(c)) => self.validate_at(c, e, &join(path, k), out, dups),
                        Some(Child::Map(c)) => {
                            self.validate_at(c, e, &format!("{path}[{k}]"), out, dups)
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// Each repeated key (or set element) is reported at its second occurrence.
    fn list_type_dups(&self, s: &Node, a: &[Value], path: &str, dups: &mut Vec<Cause>) {
        let keyed = s.list_type.as_deref() == Some("map") && !s.list_map_keys.is_empty();
        let set = s.list_type.as_deref() == Some("set");
        if !keyed && !set {
            return;
        }
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, e) in a.iter().enumerate() {
            let id = if keyed {
                if !e.is_object() {
                    continue;
                }
                let kv: Vec<String> = s
                    .list_map_keys
                    .iter()
                    .filter_map(|k| {
                        e.get(k)
                            .map(|x| format!("{}:{}", Value::from(k.as_str()), go_json(x)))
                    })
                    .collect();
                format!("{{{}}}", kv.join(","))
            } else {
                show(e)
            };
            let count = seen.entry(id.clone()).or_default();
            *count += 1;
            if *count == 2 {
                dups.push(Cause::new(
                    DUPLICATE,
                    &format!("{path}[{i}]"),
                    format!("Duplicate value: {id}"),
                ));
            }
        }
    }

    /// Calls `f` for every `x-kubernetes-validations` rule that applies to `obj`, a node's
    /// rules before its children's (apiextensions cel/validation.go): the field path, the value,
    /// the schema type name (`object`, `array`, `string`, ...), the rule and its message.
    /// Values of the wrong type are skipped.
    pub fn visit_validations(&self, obj: &Value, f: &mut dyn FnMut(&RuleSite<'_>)) {
        self.visit_at(self.root, obj, "", f);
    }

    fn visit_at(&self, id: usize, v: &Value, path: &str, f: &mut dyn FnMut(&RuleSite<'_>)) {
        let s = self.node(id);
        if s.ty != Ty::Any && json_type(v) != s.ty.name() && !(s.ty == Ty::Number && v.is_number())
        {
            return;
        }
        for (rule, message) in &s.validations {
            f(&RuleSite {
                field: path,
                value: v,
                type_name: s.ty.name(),
                rule,
                message,
            });
        }
        match v {
            Value::Array(a) => {
                if let Some(items) = s.items {
                    for (i, e) in a.iter().enumerate() {
                        self.visit_at(items, e, &format!("{path}[{i}]"), f);
                    }
                }
            }
            Value::Object(m) => {
                for (k, e) in m {
                    match self.child(id, k) {
                        Some(Child::Prop(c)) => self.visit_at(c, e, &join(path, k), f),
                        Some(Child::Map(c)) => self.visit_at(c, e, &format!("{path}[{k}]"), f),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// Every distinct rule message in the schema (to check that a caller evaluates them all).
    pub fn rule_messages(&self) -> HashSet<String> {
        self.arena
            .nodes
            .iter()
            .flat_map(|n| n.validations.iter().map(|v| v.1.clone()))
            .collect()
    }

    // --- Go decoding of built-ins ---

    /// The first error Go's `encoding/json` (sigs.k8s.io/json) reports decoding `obj` into the
    /// built-in type, e.g. `json: cannot unmarshal number into Go struct field
    /// ServicePort.spec.ports.name of type string`; `None` when it decodes.
    pub fn decode_error(&self, obj: &Value) -> Option<String> {
        self.decode_at(self.root, obj, "", "")
    }

    fn decode_at(&self, id: usize, v: &Value, path: &str, strukt: &str) -> Option<String> {
        let s = self.node(id);
        if v.is_null() {
            return None;
        }
        let err = |go: &str, kind: &str| {
            let what = if strukt.is_empty() {
                format!("Go value of type {go}")
            } else {
                format!("Go struct field {strukt}.{path} of type {go}")
            };
            Some(format!("json: cannot unmarshal {kind} into {what}"))
        };
        let kind = go_kind(v);
        if s.int_or_string {
            return None; // custom unmarshalers; not modelled
        }
        match s.ty {
            Ty::String if !v.is_string() => err("string", &kind),
            Ty::Boolean if !v.is_boolean() => err("bool", &kind),
            Ty::Integer => {
                let go = match s.format.as_deref() {
                    Some("int32") => "int32",
                    _ => "int64",
                };
                let fits = v
                    .as_i64()
                    .is_some_and(|n| go == "int64" || i32::try_from(n).is_ok());
                match v {
                    Value::Number(n) if !fits => err(go, &format!("number {n}")),
                    Value::Number(_) => None,
                    _ => err(go, &kind),
                }
            }
            Ty::Number if !v.is_number() => err("float64", &kind),
            Ty::Array => match v {
                Value::Array(a) => {
                    let items = s.items?;
                    a.iter()
                        .find_map(|x| self.decode_at(items, x, path, strukt))
                }
                _ => {
                    let el = s.items.map(|i| self.go_name(i)).unwrap_or_default();
                    err(&format!("[]{el}"), &kind)
                }
            },
            Ty::Object => match v {
                Value::Object(m) => {
                    let own = s.go_type.as_deref().map(short);
                    m.iter().find_map(|(k, x)| match self.child(id, k) {
                        Some(Child::Prop(c)) => {
                            self.decode_at(c, x, &join(path, k), own.unwrap_or(strukt))
                        }
                        Some(Child::Map(c)) => self.decode_at(c, x, &join(path, k), strukt),
                        _ => None,
                    })
                }
                _ => err(&self.go_name(id), &kind),
            },
            _ => None,
        }
    }

    fn go_name(&self, id: usize) -> String {
        let s = self.node(id);
        if let Some(t) = &s.go_type {
            return t.clone();
        }
        match s.ty {
            Ty::String => "string".into(),
            Ty::Boolean => "bool".into(),
            Ty::Integer if s.format.as_deref() == Some("int32") => "int32".into(),
            Ty::Integer => "int64".into(),
            Ty::Number => "float64".into(),
            Ty::Array => format!("[]{}", s.items.map(|i| self.go_name(i)).unwrap_or_default()),
            Ty::Object => match s.additional {
                Additional::Schema(a) => format!("map[string]{}", self.go_name(a)),
                _ => "map[string]interface {}".into(),
            },
            Ty::Any => "interface {}".into(),
        }
    }
}

/// `v1.ServicePort` -> `ServicePort` (Go's UnmarshalTypeError.Struct is the bare name).
fn short(t: &str) -> &str {
    t.rsplit('.').next().unwrap_or(t)
}

enum Child {
    /// A declared property.
    Prop(usize),
    /// A value of an `additionalProperties` map.
    Map(usize),
    /// Anything goes (preserve-unknown, free-form, embedded resource fields).
    Free,
}

/// One `x-kubernetes-validations` rule at the value it applies to.
pub struct RuleSite<'a> {
    /// Field path, e.g. `spec.listeners` (`` for the root).
    pub field: &'a str,
    pub value: &'a Value,
    /// The node's schema type (`object`, `array`, ...): what kube shows as the invalid value.
    pub type_name: &'a str,
    /// The CEL rule's source text.
    pub rule: &'a str,
    /// Its message (or `failed rule: <rule>` when it has none).
    pub message: &'a str,
}

/// JSON type names as kube-openapi reports them (`integer` for whole numbers).
pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        v if is_integer(v) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

/// encoding/json's UnmarshalTypeError.Value for a JSON value.
fn go_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(_) => "object".into(),
    }
}

/// Enum values compare as JSON (an integer enum matches `80` and `80.0`).
fn enum_eq(e: &Value, v: &Value) -> bool {
    match (e, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => e == v,
    }
}

#[cfg(test)]
mod tests;
