//! `GET /openapi/v2`: one Swagger 2.0 document of every served kind, as kube-apiserver serves it.
//!
//! Who reads it: `kubectl explain --output=plaintext-openapiv2` (and plain `explain` on 1.27),
//! client-go's `DiscoveryClient.OpenAPISchema()` (kubectl 1.27/1.28's `fieldValidation` check in
//! `resource/query_param_verifier.go`, their client-side validation fallback, apply's patch
//! metadata for built-ins, helm). They ask for the protobuf form, gnostic's `openapi_v2.Document`
//! (`openapiv2/OpenAPIv2.proto`), and parse it with kube-openapi `pkg/util/proto/document.go`,
//! which rejects the whole document on a dangling `$ref` or an array without `items`.
//!
//! Built from the schemas `/openapi/v3` serves ([`super::openapi`]):
//! - built-ins: the same definitions, with v3's `allOf: [{$ref}]` wrappers written as a plain
//!   `$ref` beside the description, as kube-openapi's v2 builder writes them;
//! - CRDs: converted as apiextensions-apiserver does (`pkg/controller/openapi/builder/builder.go`
//!   `buildKubeNative` with `Options{V2: true}`, and `pkg/controller/openapi/v2/conversion.go`
//!   `ToStructuralOpenAPIV2`), see [`crd_definition`].
//!
//! Negotiation, ETag and content types follow kube-openapi `pkg/handler/handler.go`. The document
//! is built on first request and cached until [`openapi::served_fingerprint`] changes (a CRD
//! applied or deleted), as kube rebuilds its spec when the CRD controller reports a change.

use super::openapi::{self, OBJECT_META};
use super::protobuf::Writer;
use crate::resources::{self, ResourceDef};
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::hash::Hasher;
use std::sync::{Arc, Mutex};

const V3_PREFIX: &str = "#/components/schemas/";
const V2_PREFIX: &str = "#/definitions/";
const PATCH_DEF: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// What kube-openapi's handler answers with for both protobuf media types (the `@` one that
/// client-go sends is deprecated; Go's mime parser rejects it in a response).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
const PROTOBUF_DEPRECATED_SUBTYPE: &str = "com.github.proto-openapi.spec.v2@v1.0+protobuf";
const PROTOBUF_SUBTYPE: &str = "com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `metadata`'s description in a CRD's definition (`swaggerPartialObjectMetadataDescriptions`).
const METADATA_DOC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// A request `/openapi/v2` cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum SwaggerError {
    /// No Accept clause names JSON or the gnostic protobuf (kube-openapi answers 406).
    #[error("none of the media types in Accept {0:?} is served by /openapi/v2")]
    NotAcceptable(String),
}

/// The encodings served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

/// The document in both encodings, with its ETag (a hash of the JSON, as kube's is).
pub struct Document {
    pub json: Bytes,
    pub protobuf: Bytes,
    /// Quoted, as sent in `ETag`.
    pub etag: String,
    fingerprint: u64,
}

impl Document {
    pub fn body(&self, format: Format) -> Bytes {
        match format {
            Format::Json => self.json.clone(),
            Format::Protobuf => self.protobuf.clone(),
        }
    }
}

static CACHE: Mutex<Option<Arc<Document>>> = Mutex::new(None);

/// The current document: cached, rebuilt only when the served kinds or schemas changed.
pub fn document() -> Arc<Document> {
    let fingerprint = openapi::served_fingerprint();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(doc) = cache.as_ref().filter(|d| d.fingerprint == fingerprint) {
        return doc.clone();
    }
    let value = build();
    let json = serde_json::to_vec(&value).unwrap_or_default();
    let mut h = fnv::FnvHasher::default();
    h.write(&json);
    let doc = Arc::new(Document {
        protobuf: encode(&value).into(),
        json: json.into(),
        etag: format!("\"{:016X}\"", h.finish()),
        fingerprint,
    });
    *cache = Some(doc.clone());
    doc
}

/// Picks the encoding as kube-openapi does: Accept clauses by preference (goautoneg's order:
/// q, then specificity), each served by the first of JSON, protobuf that it matches; no header
/// means `*/*`, which is JSON.
pub fn negotiate(accept: Option<&str>) -> Result<Format, SwaggerError> {
    let header = accept.unwrap_or("").trim();
    let header = if header.is_empty() { "*/*" } else { header };
    let mut clauses: Vec<(f32, u8, &str, &str)> = Vec::new();
    for clause in header.split(',') {
        let mut parts = clause.split(';');
        let media = parts.next().unwrap_or("").trim();
        let mut q = 1.0f32;
        for p in parts {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        let (ty, sub) = media.split_once('/').unwrap_or((media, ""));
        if q <= 0.0 || ty.is_empty() {
            continue;
        }
        let specificity = u8::from(ty != "*") + u8::from(sub != "*");
        clauses.push((q, specificity, ty, sub));
    }
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    let served = [
        ("json", Format::Json),
        (PROTOBUF_DEPRECATED_SUBTYPE, Format::Protobuf),
        (PROTOBUF_SUBTYPE, Format::Protobuf),
    ];
    for (_, _, ty, sub) in clauses {
        if ty != "*" && ty != "application" {
            continue;
        }
        if let Some((_, f)) = served.iter().find(|(s, _)| sub == "*" || sub == *s) {
            return Ok(*f);
        }
    }
    Err(SwaggerError::NotAcceptable(header.to_string()))
}

// === the document ===

/// The Swagger 2.0 document as JSON, keys sorted (kube marshals Go maps).
fn build() -> Value {
    let builtin = openapi::builtin_definitions();
    let mut defs = Map::new();
    for (name, schema) in builtin {
        defs.insert(name.clone(), builtin_to_v2(schema));
    }
    defs.insert(
        PATCH_DEF.into(),
        json!({"description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body.", "type": "object"}),
    );
    // TypeMeta's fields, which builder.go's addTypeMetaProperties copies into every CRD kind;
    // a built-in kind embeds the same TypeMeta (the v3 form adds an enum, dropped here).
    let type_meta = |field: &str| {
        let mut s = builtin
            .get("io.k8s.api.core.v1.Pod")
            .and_then(|p| p.pointer(&format!("/properties/{field}")))
            .cloned()
            .unwrap_or_else(|| json!({"type": "string"}));
        if let Some(o) = s.as_object_mut() {
            o.remove("enum");
        }
        s
    };
    let type_meta = (type_meta("apiVersion"), type_meta("kind"));
    let mut paths = Map::new();
    for r in resources::all() {
        for &version in r.versions {
            let gvk = json!({"group": r.group, "kind": r.kind, "version": version});
            let name = match openapi::schema(r.group, r.kind) {
                Some(ks) if !ks.crd => ks.component.clone(),
                Some(ks) => {
                    let name = definition_name(r.group, version, r.kind);
                    let served = ks.served.as_ref().unwrap_or(&Value::Null);
                    defs.insert(name.clone(), crd_definition(served, &gvk, &type_meta));
                    name
                }
                None => {
                    // A served kind without a compiled schema: kube publishes a bare object.
                    let name = definition_name(r.group, version, r.kind);
                    let s =
                        json!({"type": "object", "x-kubernetes-group-version-kind": [gvk.clone()]});
                    defs.insert(name.clone(), s);
                    name
                }
            };
            add_paths(&mut paths, r, version, &name, &gvk);
        }
    }
    let mut doc = json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": super::discovery::version()["gitVersion"].clone()},
        "paths": paths,
        "definitions": defs,
    });
    sort_keys(&mut doc);
    doc
}

/// `io.k8s.networking.gateway.v1.Gateway`: kube-openapi's `ToRESTFriendlyName` of
/// `<group>/<version>.<kind>` (the group's labels reversed).
fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let rev: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", rev.join("."))
}

/// A built-in definition in v2 form: `#/definitions/` references, and each
/// `allOf: [{$ref}]` (how kube-openapi's v3 builder wraps a reference that has a description
/// or default) replaced by the `$ref` itself beside its siblings, as the v2 builder writes it.
fn builtin_to_v2(v: &Value) -> Value {
    let Some(m) = v.as_object() else {
        return v.clone();
    };
    let mut out = Map::new();
    for (k, x) in m {
        let x = match (k.as_str(), x) {
            ("allOf", Value::Array(a)) if a.len() == 1 && a[0].get("$ref").is_some() => {
                let r = a[0]["$ref"].as_str().unwrap_or("");
                out.insert("$ref".into(), v2_ref(r).into());
                continue;
            }
            ("$ref", Value::String(r)) => v2_ref(r).into(),
            ("properties", Value::Object(ps)) => Value::Object(
                ps.iter()
                    .map(|(n, p)| (n.clone(), builtin_to_v2(p)))
                    .collect(),
            ),
            ("items" | "additionalProperties", s) => builtin_to_v2(s),
            ("allOf", Value::Array(a)) => a.iter().map(builtin_to_v2).collect(),
            // Data (enum, default, example, extensions) and scalars.
            _ => x.clone(),
        };
        out.insert(k.clone(), x);
    }
    Value::Object(out)
}

fn v2_ref(r: &str) -> String {
    match r.strip_prefix(V3_PREFIX) {
        Some(name) => format!("{V2_PREFIX}{name}"),
        None => r.to_string(),
    }
}

/// A CRD version's definition, as apiextensions' builder.go `buildKubeNative` makes it for v2:
/// - a root with `x-kubernetes-preserve-unknown-fields` is published as a bare `object` (kubectl
///   would otherwise reject every field it does not list);
/// - otherwise the structural schema through [`to_structural_v2`] (`ToStructuralOpenAPIV2`),
///   then `metadata` as a `$ref` to ObjectMeta, `apiVersion`/`kind` from TypeMeta, and
///   `addEmbeddedProperties`;
/// - always `x-kubernetes-group-version-kind`.
fn crd_definition(schema: &Value, gvk: &Value, type_meta: &(Value, Value)) -> Value {
    let gvk_ext = json!([gvk]);
    if !schema.is_object() || schema["x-kubernetes-preserve-unknown-fields"] == true {
        return json!({"type": "object", "x-kubernetes-group-version-kind": gvk_ext});
    }
    let mut s = to_structural_v2(schema);
    if let Some(o) = s.as_object_mut() {
        let props = o.entry("properties").or_insert_with(|| json!({}));
        if let Some(p) = props.as_object_mut() {
            p.insert(
                "metadata".into(),
                json!({"$ref": format!("{V2_PREFIX}{OBJECT_META}"), "description": METADATA_DOC}),
            );
            p.insert("apiVersion".into(), type_meta.0.clone());
            p.insert("kind".into(), type_meta.1.clone());
        }
    }
    add_embedded_properties(&mut s, type_meta);
    s["x-kubernetes-group-version-kind"] = gvk_ext;
    s
}

/// What a structural schema keeps (apiextensions `pkg/apiserver/schema` `Generic`, `Extensions`
/// and `ValueValidation`, as `ToKubeOpenAPI` writes them back): everything else (`example`,
/// `externalDocs`, ...) is gone before the conversion. `items`, `properties` and
/// `additionalProperties` are handled apart; `allOf`/`oneOf`/`anyOf`/`not` and `nullable` are
/// what `ToStructuralOpenAPIV2` drops.
const STRUCTURAL_KEYS: &[&str] = &[
    "description",
    "type",
    "title",
    "default",
    "format",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "multipleOf",
    "enum",
    "maxProperties",
    "minProperties",
    "required",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
];

/// Written only when true (`ToKubeOpenAPI`).
const STRUCTURAL_FLAGS: &[&str] = &[
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
];

/// `ToStructuralOpenAPIV2` (conversion.go), top-down as its Visitor runs: drop the junctors;
/// a `nullable` node loses its type, items and properties; a node preserving unknown fields
/// loses items and properties (and an `object` type); an array left without items loses its
/// type (kubectl cannot cope with it); a nullable property is no longer required, and a
/// nullable `additionalProperties` clears `required`.
fn to_structural_v2(v: &Value) -> Value {
    let Some(m) = v.as_object() else {
        return json!({});
    };
    let mut out = Map::new();
    for &k in STRUCTURAL_KEYS {
        if let Some(x) = m.get(k) {
            out.insert(k.into(), x.clone());
        }
    }
    for &k in STRUCTURAL_FLAGS {
        if m.get(k) == Some(&Value::Bool(true)) {
            out.insert(k.into(), true.into());
        }
    }
    let nullable = m.get("nullable") == Some(&Value::Bool(true));
    let preserve = m.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let (mut items, mut props) = (
        m.get("items"),
        m.get("properties").and_then(Value::as_object),
    );
    if nullable {
        out.remove("type");
        (items, props) = (None, None);
    }
    if preserve {
        (items, props) = (None, None);
    }
    let ty = out.get("type").and_then(Value::as_str);
    if items.is_none() && ty == Some("array") || preserve && ty == Some("object") {
        out.remove("type");
    }
    if let Some(items) = items.filter(|i| i.is_object()) {
        out.insert("items".into(), to_structural_v2(items));
    }
    if let Some(props) = props {
        let mut p = Map::new();
        for (name, s) in props {
            p.insert(name.clone(), to_structural_v2(s));
        }
        out.insert("properties".into(), p.into());
        let nullable_props: Vec<&String> = props
            .iter()
            .filter(|(_, s)| s["nullable"] == true)
            .map(|(n, _)| n)
            .collect();
        if let Some(Value::Array(req)) = out.get_mut("required") {
            req.retain(|r| !nullable_props.iter().any(|n| r == n.as_str()));
        }
    }
    match m.get("additionalProperties") {
        Some(ap @ Value::Object(_)) => {
            if ap["nullable"] == true {
                out.remove("required");
            }
            out.insert("additionalProperties".into(), to_structural_v2(ap));
        }
        Some(Value::Bool(b)) => {
            out.insert("additionalProperties".into(), (*b).into());
        }
        _ => {}
    }
    if out
        .get("required")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        out.remove("required");
    }
    Value::Object(out)
}

/// builder.go `addEmbeddedProperties` for v2: below a node preserving unknown fields nothing is
/// added (kubectl would then refuse unknown fields); an `x-kubernetes-embedded-resource` node
/// gets `apiVersion`, `kind` and `metadata`, and requires `kind` and `apiVersion`.
fn add_embedded_properties(s: &mut Value, type_meta: &(Value, Value)) {
    let Some(o) = s.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(props)) = o.get_mut("properties") {
        for p in props.values_mut() {
            add_embedded_properties(p, type_meta);
        }
    }
    for k in ["items", "additionalProperties"] {
        if let Some(sub) = o.get_mut(k) {
            add_embedded_properties(sub, type_meta);
        }
    }
    if o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        || o.get("x-kubernetes-embedded-resource") != Some(&Value::Bool(true))
    {
        return;
    }
    let props = o.entry("properties").or_insert_with(|| json!({}));
    if let Some(p) = props.as_object_mut() {
        let mut api_version = type_meta.0.clone();
        api_version["description"] = "apiVersion defines the versioned schema of this representation of an object. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources".into();
        let mut kind = type_meta.1.clone();
        kind["description"] = "kind is a string value representing the type of this object. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds".into();
        p.insert("apiVersion".into(), api_version);
        p.insert("kind".into(), kind);
        p.insert(
            "metadata".into(),
            json!({"$ref": format!("{V2_PREFIX}{OBJECT_META}"), "description": METADATA_DOC}),
        );
    }
    let req = o.entry("required").or_insert_with(|| json!([]));
    if let Some(r) = req.as_array_mut() {
        for f in ["kind", "apiVersion"] {
            if !r.iter().any(|x| x == f) {
                r.push(f.into());
            }
        }
    }
}

/// `patchGatewayNetworkingK8sIoV1NamespacedGateway` and tag `gatewayNetworkingK8sIo_v1`, as
/// kube-apiserver's `GetOperationIDAndTags` prefixes the builder's operation names.
fn op_prefix(group: &str, version: &str) -> (String, String) {
    let group = if group.is_empty() { "core" } else { group };
    let mut camel = String::new();
    let mut upper = false;
    for c in group.chars() {
        if matches!(c, '.' | '-') {
            upper = true;
        } else if upper {
            camel.extend(c.to_uppercase());
            upper = false;
        } else {
            camel.push(c);
        }
    }
    let mut cap = String::new();
    let mut chars = camel.chars();
    if let Some(c) = chars.next() {
        cap.extend(c.to_uppercase());
        cap.push_str(chars.as_str());
    }
    let mut v = version.chars();
    let v_cap: String = v
        .next()
        .map(|c| c.to_uppercase().chain(v).collect())
        .unwrap_or_default();
    (format!("{cap}{v_cap}"), format!("{camel}_{version}"))
}

/// The paths of one kind and version, with the operations builder.go `generateBuilder` lists
/// (subresource scale left out). The PATCH operation's `fieldValidation` query parameter is what
/// client-go's `QueryParamVerifier` looks for before leaving validation to the server.
fn add_paths(
    paths: &mut Map<String, Value>,
    r: &ResourceDef,
    version: &str,
    definition: &str,
    gvk: &Value,
) {
    let prefix = if r.group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{}/{version}", r.group)
    };
    let (id_prefix, tag) = op_prefix(r.group, version);
    let kind = r.kind;
    let ns = if r.namespaced { "Namespaced" } else { "" };
    let reference = json!({"$ref": format!("{V2_PREFIX}{definition}")});
    let query = |name: &str, ty: &str, doc: &str| json!({"name": name, "in": "query", "type": ty, "uniqueItems": true, "description": doc});
    let path_param = |name: &str, doc: &str| json!({"name": name, "in": "path", "required": true, "type": "string", "uniqueItems": true, "description": doc});
    let body =
        |schema: &Value| json!({"name": "body", "in": "body", "required": true, "schema": schema});
    let dry_run = query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed");
    let field_manager = query(
        "fieldManager",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes.",
    );
    let field_validation = query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict (the default)");
    let list_params = json!([
        query("continue", "string", "The continue option should be set when retrieving more results from the server."),
        query("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        query("labelSelector", "string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        query("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        query("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
        query("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications."),
    ]);
    let write_params = json!([body(&reference), dry_run, field_manager, field_validation]);
    let op = |verb: &str, action: &str, what: &str, params: Value, consumes: Value| {
        let mut responses = json!({"401": {"description": "Unauthorized"}});
        responses["200"] = if action == "list" || action == "delete" {
            json!({"description": "OK"})
        } else {
            json!({"description": "OK", "schema": reference})
        };
        json!({
            "description": format!("{verb} {what}{kind}"),
            "operationId": format!("{verb}{id_prefix}{ns}{kind}"),
            "tags": [tag],
            "consumes": consumes,
            "produces": ["application/json", "application/yaml"],
            "schemes": ["https"],
            "parameters": params,
            "responses": responses,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
        })
    };
    let json_yaml = json!(["application/json", "application/yaml"]);
    let mut patch_types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    // A real server accepts a strategic merge patch for built-ins only (415 for a CRD).
    if r.builtin {
        patch_types.push("application/strategic-merge-patch+json");
    }
    let mut patch_params = write_params.clone();
    patch_params[0] = body(&json!({"$ref": format!("{V2_PREFIX}{PATCH_DEF}")}));
    if let Some(a) = patch_params.as_array_mut() {
        a.push(query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people."));
    }
    let delete_params = json!([
        dry_run,
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted."
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed."
        ),
    ]);
    let pretty = query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    );
    let namespace = path_param(
        "namespace",
        "object name and auth scope, such as for teams and projects",
    );
    let name = path_param("name", &format!("name of the {kind}"));
    let scoped = |extra: &[&Value]| {
        let mut ps: Vec<Value> = extra.iter().map(|v| (*v).clone()).collect();
        if r.namespaced {
            ps.push(namespace.clone());
        }
        ps.push(pretty.clone());
        Value::Array(ps)
    };
    let plural = r.plural;
    let root = if r.namespaced {
        let mut all = op(
            "list",
            "list",
            "objects of kind ",
            list_params.clone(),
            json_yaml.clone(),
        );
        all["operationId"] = format!("list{id_prefix}{kind}ForAllNamespaces").into();
        paths.insert(
            format!("{prefix}/{plural}"),
            json!({"get": all, "parameters": [pretty]}),
        );
        format!("{prefix}/namespaces/{{namespace}}/{plural}")
    } else {
        format!("{prefix}/{plural}")
    };
    let article = if kind.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an "
    } else {
        "a "
    };
    paths.insert(
        root.clone(),
        json!({
            "get": op("list", "list", "objects of kind ", list_params, json_yaml.clone()),
            "post": op("create", "post", article, write_params.clone(), json_yaml.clone()),
            "parameters": scoped(&[]),
        }),
    );
    paths.insert(
        format!("{root}/{{name}}"),
        json!({
            "get": op("read", "get", "the specified ", json!([]), json_yaml.clone()),
            "put": op("replace", "put", "the specified ", write_params.clone(), json_yaml.clone()),
            "patch": op("patch", "patch", "the specified ", patch_params.clone(), json!(patch_types)),
            "delete": op("delete", "delete", article, delete_params, json_yaml.clone()),
            "parameters": scoped(&[&name]),
        }),
    );
    if r.has_status {
        let mut status = json!({
            "get": op("read", "get", "status of the specified ", json!([]), json_yaml.clone()),
            "put": op("replace", "put", "status of the specified ", write_params, json_yaml),
            "patch": op("patch", "patch", "status of the specified ", patch_params, json!(patch_types)),
            "parameters": scoped(&[&name]),
        });
        for verb in ["get", "put", "patch"] {
            let id = status[verb]["operationId"]
                .as_str()
                .unwrap_or("")
                .to_string();
            status[verb]["operationId"] = format!("{id}Status").into();
        }
        paths.insert(format!("{root}/{{name}}/status"), status);
    }
}

fn sort_keys(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, mut x) in entries {
                sort_keys(&mut x);
                m.insert(k, x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(sort_keys),
        _ => {}
    }
}

// === protobuf: gnostic's openapi_v2.Document ===
//
// Field numbers from google/gnostic `openapiv2/OpenAPIv2.proto`. kube-openapi's handler makes
// its protobuf with gnostic's `ParseDocument(json)`, so this maps the JSON written above the
// same way: `x-` keys become `vendor_extension` NamedAny entries whose `Any.yaml` holds the value
// (JSON is YAML; client-go and kube-openapi read it with a YAML decoder), as do `default`,
// `enum` and `example` values.

/// Encodes the document built by [`build`].
fn encode(doc: &Value) -> Vec<u8> {
    let mut w = Writer::default();
    w.string(1, doc["swagger"].as_str().unwrap_or("2.0"));
    w.message(2, |i| {
        i.string(1, doc["info"]["title"].as_str().unwrap_or(""));
        i.string(2, doc["info"]["version"].as_str().unwrap_or(""));
    });
    if let Some(paths) = doc["paths"].as_object() {
        w.message(8, |p| {
            for (name, item) in paths {
                p.message(2, |np| {
                    np.string(1, name);
                    np.message(2, |pi| path_item(pi, item));
                });
            }
        });
    }
    if let Some(defs) = doc["definitions"].as_object() {
        w.message(9, |d| {
            for (name, s) in defs {
                d.message(1, |ns| named_schema(ns, name, s));
            }
        });
    }
    w.0
}

fn named_schema(w: &mut Writer, name: &str, s: &Value) {
    w.string(1, name);
    w.message(2, |sw| schema(sw, s));
}

/// `Any` (`value` = 1 is a google.protobuf.Any, unused; `yaml` = 2).
fn any(w: &mut Writer, n: u32, v: &Value) {
    let yaml = serde_json::to_string(v).unwrap_or_default();
    w.message(n, |a| a.string(2, &yaml));
}

/// Every `x-` key as a NamedAny in field `n`.
fn vendor_extensions(w: &mut Writer, n: u32, m: &Map<String, Value>) {
    for (k, v) in m.iter().filter(|(k, _)| k.starts_with("x-")) {
        w.message(n, |na| {
            na.string(1, k);
            any(na, 2, v);
        });
    }
}

fn strings(w: &mut Writer, n: u32, v: &Value) {
    for s in v.as_array().into_iter().flatten().filter_map(Value::as_str) {
        w.bytes(n, s.as_bytes());
    }
}

fn int_of(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// `Schema`.
fn schema(w: &mut Writer, s: &Value) {
    let Some(m) = s.as_object() else {
        return;
    };
    let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
    let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
    w.string(1, text("$ref"));
    w.string(2, text("format"));
    w.string(3, text("title"));
    w.string(4, text("description"));
    if let Some(d) = m.get("default") {
        any(w, 5, d);
    }
    for (k, n) in [("multipleOf", 6), ("maximum", 7)] {
        if let Some(x) = m.get(k).and_then(Value::as_f64) {
            w.double(n, x);
        }
    }
    w.bool(8, flag("exclusiveMaximum"));
    if let Some(x) = m.get("minimum").and_then(Value::as_f64) {
        w.double(9, x);
    }
    w.bool(10, flag("exclusiveMinimum"));
    for (k, n) in [("maxLength", 11), ("minLength", 12)] {
        if let Some(x) = m.get(k).and_then(int_of) {
            w.int(n, x);
        }
    }
    w.string(13, text("pattern"));
    for (k, n) in [("maxItems", 14), ("minItems", 15)] {
        if let Some(x) = m.get(k).and_then(int_of) {
            w.int(n, x);
        }
    }
    w.bool(16, flag("uniqueItems"));
    for (k, n) in [("maxProperties", 17), ("minProperties", 18)] {
        if let Some(x) = m.get(k).and_then(int_of) {
            w.int(n, x);
        }
    }
    if let Some(r) = m.get("required") {
        strings(w, 19, r);
    }
    for e in m
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        any(w, 20, e);
    }
    match m.get("additionalProperties") {
        Some(ap @ Value::Object(_)) => w.message(21, |a| a.message(1, |sw| schema(sw, ap))),
        Some(Value::Bool(b)) => w.message(21, |a| a.int(2, i64::from(*b))),
        _ => {}
    }
    match m.get("type") {
        Some(Value::String(t)) => w.message(22, |ti| ti.string(1, t)),
        Some(ts @ Value::Array(_)) => w.message(22, |ti| strings(ti, 1, ts)),
        _ => {}
    }
    match m.get("items") {
        Some(i @ Value::Object(_)) => w.message(23, |ii| ii.message(1, |sw| schema(sw, i))),
        Some(Value::Array(is)) => w.message(23, |ii| {
            for i in is {
                ii.message(1, |sw| schema(sw, i));
            }
        }),
        _ => {}
    }
    for a in m
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.message(24, |sw| schema(sw, a));
    }
    if let Some(props) = m.get("properties").and_then(Value::as_object) {
        w.message(25, |p| {
            for (name, s) in props {
                p.message(1, |ns| named_schema(ns, name, s));
            }
        });
    }
    w.bool(27, flag("readOnly"));
    if let Some(e) = m.get("example") {
        any(w, 30, e);
    }
    vendor_extensions(w, 31, m);
}

/// `PathItem`: get 2, put 3, post 4, delete 5, patch 8, parameters 9.
fn path_item(w: &mut Writer, item: &Value) {
    for (verb, n) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("patch", 8),
    ] {
        if let Some(op) = item.get(verb) {
            w.message(n, |o| operation(o, op));
        }
    }
    for p in item["parameters"].as_array().into_iter().flatten() {
        w.message(9, |pi| parameter(pi, p));
    }
}

/// `Operation`.
fn operation(w: &mut Writer, op: &Value) {
    strings(w, 1, &op["tags"]);
    w.string(3, op["description"].as_str().unwrap_or(""));
    w.string(5, op["operationId"].as_str().unwrap_or(""));
    strings(w, 6, &op["produces"]);
    strings(w, 7, &op["consumes"]);
    for p in op["parameters"].as_array().into_iter().flatten() {
        w.message(8, |pi| parameter(pi, p));
    }
    if let Some(responses) = op["responses"].as_object() {
        w.message(9, |rs| {
            for (code, r) in responses {
                // NamedResponseValue { name, ResponseValue { response = 1 } }
                rs.message(1, |nr| {
                    nr.string(1, code);
                    nr.message(2, |rv| {
                        rv.message(1, |resp| {
                            resp.string(1, r["description"].as_str().unwrap_or(""));
                            if let Some(s) = r.get("schema") {
                                resp.message(2, |si| si.message(1, |sw| schema(sw, s)));
                            }
                        })
                    });
                });
            }
        });
    }
    strings(w, 10, &op["schemes"]);
    if let Some(m) = op.as_object() {
        vendor_extensions(w, 13, m);
    }
}

/// `ParametersItem { parameter = 1 }`: a `BodyParameter` (1), or a `NonBodyParameter` (2)
/// holding a query (3) or path (4) sub-schema.
fn parameter(w: &mut Writer, p: &Value) {
    let text = |k: &str| p[k].as_str().unwrap_or("");
    let flag = |k: &str| p[k].as_bool().unwrap_or(false);
    w.message(1, |param| match text("in") {
        "body" => param.message(1, |b| {
            b.string(1, text("description"));
            b.string(2, text("name"));
            b.string(3, "body");
            b.bool(4, flag("required"));
            if let Some(s) = p.get("schema") {
                b.message(5, |sw| schema(sw, s));
            }
        }),
        kind => param.message(2, |nb| {
            // Query: type 6, unique_items 20. Path: type 5, unique_items 19.
            let (sub, ty, unique) = if kind == "path" {
                (4, 5, 19)
            } else {
                (3, 6, 20)
            };
            nb.message(sub, |q| {
                q.bool(1, flag("required"));
                q.string(2, kind);
                q.string(3, text("description"));
                q.string(4, text("name"));
                q.string(ty, text("type"));
                q.bool(unique, flag("uniqueItems"));
            });
        }),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Value {
        let d = document();
        serde_json::from_slice(&d.json).expect("JSON document")
    }

    /// Every `$ref` resolves and every array has items: kube-openapi's proto parser rejects the
    /// whole document otherwise, and kubectl then has no schema at all.
    #[test]
    fn kube_openapi_can_parse_every_definition() {
        let d = doc();
        let defs = d["definitions"].as_object().expect("definitions");
        fn walk(v: &Value, defs: &Map<String, Value>, at: &str) {
            let Some(m) = v.as_object() else { return };
            if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                let name = r
                    .strip_prefix(V2_PREFIX)
                    .unwrap_or_else(|| panic!("{at}: {r} is not a v2 reference"));
                assert!(defs.contains_key(name), "{at}: dangling {r}");
            }
            if m.get("type") == Some(&json!("array")) {
                assert!(
                    m.get("items").is_some_and(Value::is_object),
                    "{at}: no items"
                );
            }
            for k in ["oneOf", "anyOf", "not", "nullable"] {
                assert!(!m.contains_key(k), "{at}: {k} is not OpenAPI v2");
            }
            if let Some(props) = m.get("properties").and_then(Value::as_object) {
                for (k, p) in props {
                    walk(p, defs, &format!("{at}.{k}"));
                }
            }
            for k in ["items", "additionalProperties"] {
                if let Some(x) = m.get(k) {
                    walk(x, defs, &format!("{at}[{k}]"));
                }
            }
        }
        for (name, s) in defs {
            walk(s, defs, name);
        }
        for item in d["paths"].as_object().expect("paths").values() {
            walk(&item["patch"]["responses"]["200"]["schema"], defs, "path");
        }
    }

    /// Built-ins and CRDs are named as kube names them and carry their GVK; references are v2's.
    #[test]
    fn definitions_are_named_and_tagged_as_kube_does() {
        let d = doc();
        let defs = &d["definitions"];
        assert_eq!(d["swagger"], "2.0");
        let gw = &defs["io.k8s.networking.gateway.v1.Gateway"];
        assert_eq!(
            gw["x-kubernetes-group-version-kind"],
            json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "version": "v1"}])
        );
        assert_eq!(
            defs["io.k8s.networking.gateway.v1beta1.Gateway"]["x-kubernetes-group-version-kind"][0]
                ["version"],
            "v1beta1"
        );
        assert_eq!(
            gw["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        assert_eq!(gw["properties"]["kind"]["type"], "string");
        let port =
            &gw["properties"]["spec"]["properties"]["listeners"]["items"]["properties"]["port"];
        assert_eq!(port["type"], "integer");
        assert!(port["description"].as_str().is_some_and(|s| !s.is_empty()));
        let pod = &defs["io.k8s.api.core.v1.Pod"];
        assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
        assert_eq!(
            pod["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        assert!(pod["properties"]["spec"]["description"].is_string());
        assert!(pod["properties"]["spec"].get("allOf").is_none());
        let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert!(defs["io.azure.networking.alb.v1.HealthCheckPolicy"].is_object());
    }

    /// What client-go's QueryParamVerifier checks: a PATCH for the GVK with `fieldValidation`.
    #[test]
    fn patch_operations_carry_field_validation() {
        let d = doc();
        let p = &d["paths"]
            ["/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/gateways/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Gateway");
        assert_eq!(
            p["operationId"],
            "patchGatewayNetworkingK8sIoV1NamespacedGateway"
        );
        let params = p["parameters"].as_array().expect("parameters");
        assert!(params
            .iter()
            .any(|x| x["name"] == "fieldValidation" && x["in"] == "query"));
        assert!(!p["consumes"].as_array().is_some_and(|c| c
            .iter()
            .any(|t| t == "application/strategic-merge-patch+json")));
        let pod = &d["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(pod["operationId"], "patchCoreV1NamespacedPod");
        assert!(pod["consumes"].as_array().is_some_and(|c| c
            .iter()
            .any(|t| t == "application/strategic-merge-patch+json")));
        assert!(d["paths"]["/api/v1/namespaces/{name}"]["patch"].is_object());
    }

    /// ToStructuralOpenAPIV2: junctors, nullable and preserve-unknown-fields subtrees go.
    #[test]
    fn crd_conversion_follows_to_structural_openapi_v2() {
        let tm = (json!({"type": "string"}), json!({"type": "string"}));
        let gvk = json!({"group": "example.com", "kind": "Widget", "version": "v1"});
        let s = json!({"type": "object", "required": ["spec", "opt"], "properties": {
            "spec": {"type": "object", "example": {"a": 1}, "properties": {
                "port": {"type": "integer", "format": "int32", "maximum": 65535, "oneOf": [{"minimum": 1}]},
                "raw": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"x": {"type": "string"}}},
                "list": {"type": "array", "x-kubernetes-preserve-unknown-fields": true, "items": {"type": "string"}},
                "ios": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]},
                "tmpl": {"type": "object", "x-kubernetes-embedded-resource": true, "properties": {}},
            }},
            "opt": {"type": "string", "nullable": true},
        }});
        let v2 = crd_definition(&s, &gvk, &tm);
        assert_eq!(v2["required"], json!(["spec"]));
        assert!(v2["properties"]["opt"].get("type").is_none());
        let spec = &v2["properties"]["spec"];
        assert!(spec.get("example").is_none());
        assert!(spec["properties"]["port"].get("oneOf").is_none());
        assert_eq!(spec["properties"]["port"]["maximum"], 65535);
        let raw = &spec["properties"]["raw"];
        assert!(raw.get("properties").is_none() && raw.get("type").is_none());
        assert_eq!(raw["x-kubernetes-preserve-unknown-fields"], true);
        let list = &spec["properties"]["list"];
        assert!(list.get("type").is_none() && list.get("items").is_none());
        let ios = &spec["properties"]["ios"];
        assert_eq!(*ios, json!({"x-kubernetes-int-or-string": true}));
        let tmpl = &spec["properties"]["tmpl"];
        assert_eq!(tmpl["required"], json!(["kind", "apiVersion"]));
        assert!(tmpl["properties"]["metadata"]["$ref"].is_string());
        assert_eq!(v2["x-kubernetes-group-version-kind"], json!([gvk]));
        let free = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        assert_eq!(
            crd_definition(&free, &gvk, &tm),
            json!({"type": "object", "x-kubernetes-group-version-kind": [gvk]})
        );
    }

    #[test]
    fn negotiation_follows_kube_openapi() {
        let pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        assert_eq!(negotiate(Some(pb)).ok(), Some(Format::Protobuf));
        assert_eq!(negotiate(Some(PROTOBUF)).ok(), Some(Format::Protobuf));
        assert_eq!(negotiate(None).ok(), Some(Format::Json));
        assert_eq!(
            negotiate(Some("application/json, */*")).ok(),
            Some(Format::Json)
        );
        assert_eq!(
            negotiate(Some(&format!("application/json;q=0.5, {pb}"))).ok(),
            Some(Format::Protobuf)
        );
        assert!(negotiate(Some("text/html")).is_err());
    }

    /// The cache holds until the served kinds change.
    #[test]
    fn document_is_cached() {
        let a = document();
        let b = document();
        assert!(Arc::ptr_eq(&a, &b) || a.etag == b.etag);
        assert!(a.etag.starts_with('"') && a.protobuf.len() > 1000);
    }
}
