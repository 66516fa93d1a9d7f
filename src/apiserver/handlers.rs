//! The verbs on resources: get, list, watch, create, update, patch, delete, deletecollection,
//! plus the `status`, `scale` and `log` subresources.

use super::options::{self, DeleteOptions};
use super::patch::{self, PatchType};
use super::{
    defaults, full, json_response, openapi, table, validation, ApiError, ApiServer, Body, Query,
    MAX_BODY,
};
use crate::meta::{self, Object};
use crate::resources::{self, kinds, ResourceDef};
use crate::schema::render;
use crate::store::{Deleted, FieldSelector, LabelSelector, StoreError, Subresource, WatchEvent};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// Which resource (and which object, subresource) a URL names.
#[derive(Debug)]
pub struct Target {
    pub res: &'static ResourceDef,
    pub version: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl Target {
    /// Parses the part of a path after `/api/v1` or `/apis/<g>/<v>`.
    pub fn parse(group: &str, version: &str, rest: &[&str]) -> Result<Target, ApiError> {
        let lookup = |plural: &str| {
            resources::by_plural(group, plural)
                .filter(|r| r.serves_version(version))
                .ok_or(ApiError::NoRoute)
        };
        let (namespace, rest) = match rest {
            // /namespaces/<ns>/<plural>/...: a namespaced resource.
            ["namespaces", ns, plural, tail @ ..] if lookup(plural).is_ok_and(|r| r.namespaced) => {
                (Some(ns.to_string()), [&[*plural][..], tail].concat())
            }
            _ => (None, rest.to_vec()),
        };
        let (res, name, sub) = match rest.as_slice() {
            [plural] => (lookup(plural)?, None, None),
            [plural, name] => (lookup(plural)?, Some(name.to_string()), None),
            [plural, name, sub] => (
                lookup(plural)?,
                Some(name.to_string()),
                Some(sub.to_string()),
            ),
            _ => return Err(ApiError::NoRoute),
        };
        if res.namespaced && namespace.is_none() && name.is_some() {
            // Namespaced objects are only addressable inside their namespace.
            return Err(ApiError::NoRoute);
        }
        // Only the subresources a kind has are routes (kube-apiserver registers no others).
        let scalable =
            std::ptr::eq(res, kinds::deployments()) || std::ptr::eq(res, kinds::replicasets());
        match sub.as_deref() {
            None => {}
            Some("status") if res.has_status => {}
            Some("scale") if scalable => {}
            Some("log") if std::ptr::eq(res, kinds::pods()) => {}
            Some(_) => return Err(ApiError::NoRoute),
        }
        Ok(Target {
            res,
            version: version.to_string(),
            namespace,
            name,
            sub,
        })
    }

    fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

pub async fn dispatch(
    api: &Arc<ApiServer>,
    t: Target,
    q: Query,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let accept = header_str(&req, header::ACCEPT).unwrap_or("").to_string();
    let as_table = table::wants_table(&accept);
    let method = req.method().clone();
    let sub = t.sub.clone();
    if method == Method::DELETE && std::ptr::eq(t.res, kinds::namespaces()) {
        match t.name.as_deref() {
            // Namespaces have no deletecollection (pkg/registry/core/namespace/storage).
            None => return Err(ApiError::MethodNotAllowed),
            // The NamespaceLifecycle admission plugin keeps these
            // (plugin/pkg/admission/namespace/lifecycle/admission.go).
            Some(ns @ ("default" | "kube-system" | "kube-public")) => {
                return Err(ApiError::Forbidden(format!(
                    "namespaces \"{ns}\" is forbidden: this namespace may not be deleted"
                )))
            }
            Some(_) => {}
        }
    }
    let is_crd = std::ptr::eq(t.res, kinds::customresourcedefinitions());
    if is_crd && method == Method::DELETE {
        if let Some(name) = t.name.as_deref().filter(|n| super::crd::is_builtin(n)) {
            return Err(ApiError::Forbidden(format!(
                "customresourcedefinitions.apiextensions.k8s.io \"{name}\" is forbidden: agc-sandbox serves this kind itself; its CRD cannot be deleted"
            )));
        }
    }
    let writes = matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    );
    let result = dispatch_inner(api, t, q, req, as_table, method, sub).await;
    if is_crd && writes && result.is_ok() {
        super::crd::reconcile(&api.store);
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn dispatch_inner(
    api: &Arc<ApiServer>,
    t: Target,
    q: Query,
    req: Request<Incoming>,
    as_table: bool,
    method: Method,
    sub: Option<String>,
) -> Result<Response<Body>, ApiError> {
    match (method, t.name.is_some(), sub.as_deref()) {
        (Method::GET, false, None) if q.flag("watch") => watch(api, &t, &q, as_table),
        (Method::GET, false, None) => list(api, &t, &q, as_table),
        (Method::GET, true, None) | (Method::GET, true, Some("status")) => get(api, &t, as_table),
        (Method::GET, true, Some("scale")) => get_scale(api, &t),
        (Method::GET, true, Some("log")) if std::ptr::eq(t.res, kinds::pods()) => logs(api, &t, &q),
        (Method::POST, false, None) => write_object(api, &t, &q, options::Verb::Create, req).await,
        (Method::PUT, true, None) | (Method::PUT, true, Some("status")) => {
            write_object(api, &t, &q, options::Verb::Update, req).await
        }
        (Method::PATCH, true, None)
        | (Method::PATCH, true, Some("status"))
        | (Method::PATCH, true, Some("scale")) => {
            let (ct, body) = read_body(req).await?;
            let apply = PatchType::from_content_type(&ct, t.res)? == PatchType::Apply;
            options::check(options::Verb::Patch { apply }, &q, None)?;
            patch(api, &t, &q, &ct, &body).await
        }
        (Method::PUT, true, Some("scale")) => {
            options::check(options::Verb::Update, &q, None)?;
            let (_, body) = read_body(req).await?;
            let scale = decode(&body, "application/json")?;
            let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
            set_replicas(api, &t, replicas, q.get("dryRun") == Some("All")).await
        }
        (Method::DELETE, true, None) => {
            let (_, body) = read_body(req).await?;
            delete(api, &t, &q, &body).await
        }
        (Method::DELETE, false, None) => {
            let (_, body) = read_body(req).await?;
            delete_collection(api, &t, &q, &body).await
        }
        _ => Err(ApiError::MethodNotAllowed),
    }
}

// === reading ===

/// A request header's value, if it is there and text.
fn header_str<B>(req: &Request<B>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn read_body(req: Request<Incoming>) -> Result<(String, Bytes), ApiError> {
    let ct = header_str(&req, header::CONTENT_TYPE)
        .unwrap_or("application/json")
        .to_string();
    if let Some(len) =
        header_str(&req, header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok())
    {
        if len > MAX_BODY {
            return Err(ApiError::TooLarge);
        }
    }
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::TooLarge
            } else {
                ApiError::BadRequest(format!("failed to read the request body: {e}"))
            }
        })?
        .to_bytes();
    Ok((ct, body))
}

/// Decodes a JSON or YAML body into an object.
fn decode(body: &[u8], content_type: &str) -> Result<Object, ApiError> {
    let v: Value = if content_type.contains("protobuf") {
        // kubectl's typed clients (`kubectl create namespace|secret|configmap|...`) send protobuf
        // and have no JSON fallback.
        super::protobuf::decode(body).map_err(|e| ApiError::BadRequest(e.to_string()))?
    } else if content_type.contains("yaml") {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(_) => serde_yaml::from_slice(body).map_err(|e| {
                ApiError::BadRequest(format!("error converting YAML to JSON: yaml: {e}"))
            })?,
        }
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the object provided is unrecognized: invalid JSON: {e}"
            ))
        })?
    };
    Ok(Object::new(v)?)
}

fn dry_run(q: &Query) -> bool {
    q.get("dryRun") == Some("All")
}

/// The object as served under the requested version.
fn present(t: &Target, obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.insert("apiVersion".into(), json!(t.res.api_version(&t.version)));
        m.insert("kind".into(), json!(t.res.kind));
    }
    o
}

fn object_response(
    t: &Target,
    status: StatusCode,
    obj: &Value,
    printer: Option<&table::Printer>,
) -> Response<Body> {
    if let Some(p) = printer {
        let rv = meta::resource_version(obj).unwrap_or(0);
        return table_response(&table::table(p, &[obj], rv));
    }
    json_response(status, &present(t, obj))
}

/// A Table of `items`; with `includeObject=Object` (what `kubectl get --sort-by` asks for) each
/// row carries the whole object instead of its metadata, with `None` no object
/// (metav1.IncludeObjectPolicy).
fn tabled(api: &ApiServer, t: &Target, q: &Query, items: &[&Value], rv: u64) -> Value {
    let printer = table::printer(&api.store, t.res, &t.version);
    let mut tbl = table::table(&printer, items, rv);
    let policy = q.get("includeObject").unwrap_or("Metadata");
    if policy == "Object" || policy == "None" {
        if let Some(rows) = tbl.get_mut("rows").and_then(Value::as_array_mut) {
            for (row, obj) in rows.iter_mut().zip(items) {
                if let Some(r) = row.as_object_mut() {
                    if policy == "Object" {
                        r.insert("object".into(), present(t, obj));
                    } else {
                        r.remove("object");
                    }
                }
            }
        }
    }
    tbl
}

fn table_response(v: &Value) -> Response<Body> {
    let mut r = json_response(StatusCode::OK, v);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json;as=Table;v=v1;g=meta.k8s.io"),
    );
    r
}

fn not_found(t: &Target, name: &str) -> ApiError {
    ApiError::store(t.res)(StoreError::NotFound {
        resource: t.res.qualified_plural(),
        name: name.to_string(),
    })
}

fn get(api: &ApiServer, t: &Target, as_table: bool) -> Result<Response<Body>, ApiError> {
    let name = t.name.as_deref().unwrap_or("");
    let obj = api
        .store
        .get(t.res, t.ns(), name)
        .ok_or_else(|| not_found(t, name))?;
    let printer = as_table.then(|| table::printer(&api.store, t.res, &t.version));
    Ok(object_response(t, StatusCode::OK, &obj, printer.as_ref()))
}

struct Filter {
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    fn new(t: &Target, q: &Query) -> Result<Filter, ApiError> {
        let bad = |e: crate::store::SelectorError| ApiError::BadRequest(e.to_string());
        Ok(Filter {
            ns: t.namespace.clone().filter(|_| t.res.namespaced),
            labels: LabelSelector::parse(q.get("labelSelector").unwrap_or("")).map_err(bad)?,
            fields: {
                let mut f =
                    FieldSelector::parse(q.get("fieldSelector").unwrap_or("")).map_err(bad)?;
                f.check_labels(t.res).map_err(bad)?;
                f
            },
        })
    }

    fn matches(&self, obj: &Value) -> bool {
        self.ns
            .as_deref()
            .is_none_or(|ns| meta::namespace(obj) == ns)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }
}

fn list(
    api: &ApiServer,
    t: &Target,
    q: &Query,
    as_table: bool,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::new(t, q)?;
    let (items, rv) = api.store.list(t.res, filter.ns.as_deref());
    let items: Vec<&Value> = items
        .iter()
        .map(|o| &**o)
        .filter(|o| filter.matches(o))
        .collect();
    if as_table {
        return Ok(table_response(&tabled(api, t, q, &items, rv)));
    }
    let list = json!({
        "kind": format!("{}List", t.res.kind),
        "apiVersion": t.res.api_version(&t.version),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items.iter().map(|o| present(t, o)).collect::<Vec<_>>(),
    });
    Ok(json_response(StatusCode::OK, &list))
}

// === watch ===

fn watch_line(t: &Target, type_: &str, obj: &Value, printer: Option<&table::Printer>) -> Bytes {
    let object = match printer {
        Some(p) => table::event_row(p, obj),
        None => present(t, obj),
    };
    let mut line =
        serde_json::to_vec(&json!({"type": type_, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn expired_line(msg: &str) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": "ERROR", "object": {
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": msg, "reason": "Expired", "code": 410}}))
    .unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// Streams watch events (kubectl-contract §8): resourceVersion `0` or absent replays current
/// objects as ADDED, `N` sends only later changes, and a too-old `N` gets a 410 ERROR event.
fn watch(
    api: &Arc<ApiServer>,
    t: &Target,
    q: &Query,
    as_table: bool,
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::new(t, q)?;
    let since = match q.get("resourceVersion").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {s}")))?,
        ),
    };
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(1800));
    let target = Target {
        res: t.res,
        version: t.version.clone(),
        namespace: t.namespace.clone(),
        name: None,
        sub: None,
    };
    // The columns as of the watch's start (kube-apiserver builds a convertor per CRD version).
    let printer = as_table.then(|| table::printer(&api.store, t.res, &t.version));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    match api.store.watch(Some(t.res), since) {
        Err(StoreError::Expired { requested, oldest }) => {
            let _ = tx.try_send(expired_line(&format!(
                "too old resource version: {requested} ({oldest})"
            )));
        }
        Err(e) => return Err(ApiError::store(t.res)(e)),
        Ok(w) => {
            let mut stopping = api.stopping.clone();
            tokio::spawn(async move {
                let send = |e: &WatchEvent| {
                    filter
                        .matches(&e.object)
                        .then(|| watch_line(&target, e.type_.as_str(), &e.object, printer.as_ref()))
                };
                for e in &w.initial {
                    if let Some(line) = send(e) {
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                }
                let mut live = w.live;
                let deadline = tokio::time::sleep(timeout);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => return,
                        _ = stopping.changed() => return,
                        _ = tx.closed() => return,
                        ev = live.recv() => match ev {
                            Ok(e) => {
                                if !std::ptr::eq(e.resource, target.res) {
                                    continue;
                                }
                                if let Some(line) = send(&e) {
                                    if tx.send(line).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(RecvError::Lagged(_)) => {
                                let _ = tx.send(expired_line("watch fell behind; relist")).await;
                                return;
                            }
                            Err(RecvError::Closed) => return,
                        }
                    }
                }
            });
        }
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    });
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("static response"))
}

// === writing ===

/// Checks `apiVersion`/`kind`/namespace of a body against the URL and fills what is missing.
fn prepare(t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let invalid = |field: &str, message: String| ApiError::Invalid {
        res: t.res,
        name: meta::name(obj).to_string(),
        causes: vec![validation::Cause {
            reason: "FieldValueInvalid",
            field: field.to_string(),
            message: message.clone(),
        }],
        message: format!(
            "{} \"{}\" is invalid: {field}: {message}",
            t.res.qualified_kind(),
            meta::name(obj)
        ),
    };
    let want_av = t.res.api_version(&t.version);
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(av)
            if !t.res.serves_version(resources::split_api_version(av).1)
                || resources::split_api_version(av).0 != t.res.group =>
        {
            return Err(invalid(
                "apiVersion",
                format!(
                    "Invalid value: \"{av}\": must be {want_av} for {}",
                    t.res.qualified_plural()
                ),
            ));
        }
        _ => {}
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if k != t.res.kind => {
            return Err(invalid(
                "kind",
                format!(
                    "Invalid value: \"{k}\": must be {} for {}",
                    t.res.kind,
                    t.res.qualified_plural()
                ),
            ));
        }
        _ => {}
    }
    let body_ns = meta::namespace(obj).to_string();
    if t.res.namespaced {
        let url_ns = t.ns().to_string();
        if url_ns.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "{} is namespaced: send it to /namespaces/<namespace>/{}",
                t.res.kind, t.res.plural
            )));
        }
        if !body_ns.is_empty() && body_ns != url_ns {
            // kube-apiserver answers 400 here; we answer 422 with a cause naming the field so
            // the error says which field to fix (issue #2).
            return Err(invalid(
                "metadata.namespace",
                format!("Invalid value: \"{body_ns}\": does not match the namespace of the request (\"{url_ns}\")"),
            ));
        }
        meta::metadata_mut(obj).insert("namespace".into(), json!(url_ns));
    } else {
        meta::metadata_mut(obj).remove("namespace");
    }
    let Some(root) = obj.as_object_mut() else {
        return Err(ApiError::BadRequest(
            "the object provided is unrecognized: the body must be a JSON object".into(),
        ));
    };
    root.insert("apiVersion".into(), json!(want_av));
    root.insert("kind".into(), json!(t.res.kind));
    Ok(())
}

/// Takes the object's name from the URL when the body has none; a different name is an error,
/// as in kube-apiserver.
fn name_from_url(obj: &mut Value, url_name: &str) -> Result<(), ApiError> {
    let body_name = meta::name(obj).to_string();
    if body_name.is_empty() {
        meta::metadata_mut(obj).insert("name".into(), json!(url_name));
    } else if body_name != url_name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({url_name})"
        )));
    }
    Ok(())
}

/// kube-apiserver's `fieldValidation` directive (endpoints/handlers/rest.go `fieldValidation`):
/// what to do with fields the schema does not declare. Absent means Warn; kubectl sends Strict
/// (`--validate=false`: Ignore).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

fn field_validation(q: &Query) -> Result<FieldValidation, ApiError> {
    match q.get("fieldValidation").unwrap_or("") {
        "" | "Warn" => Ok(FieldValidation::Warn),
        "Strict" => Ok(FieldValidation::Strict),
        "Ignore" => Ok(FieldValidation::Ignore),
        // ValidateFieldValidation: field.NotSupported over sets.NewString("", Ignore, Warn, Strict).
        other => Err(ApiError::BadRequest(format!(
            "fieldValidation: Unsupported value: \"{other}\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
        ))),
    }
}

/// How an object reached admission, which decides how an unknown field is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Write {
    /// POST or PUT: the body is decoded (create.go/update.go transformDecodeError).
    Decode,
    /// A patch, applied to the stored object first (patch.go: a bare strict decoding error).
    Patch,
}

/// Checks a body's fields against the kind's schema as the decoder does: a built-in's wrong JSON
/// type is a 400 (Go's decoder), an undeclared field a 400 in Strict mode or a warning in Warn
/// mode, and dropped in every mode (Go structs, and CRD pruning, keep only declared fields).
/// CRDs then get their schema's defaults. Returns the warnings.
fn decode_checks(
    t: &Target,
    obj: &mut Value,
    fv: FieldValidation,
    write: Write,
) -> Result<Vec<String>, ApiError> {
    // Wrong JSON types in built-in kinds are decode errors (400) on a real server.
    if let Some(msg) = validation::decode_error(t.res.group, t.res.kind, obj) {
        return Err(ApiError::BadRequest(msg));
    }
    let Some(ks) = openapi::schema(t.res.group, t.res.kind) else {
        return Ok(Vec::new());
    };
    let mut unknown = ks.schema.unknown_fields(obj);
    if ks.crd {
        unknown.sort(); // pruning sorts its paths; Go's decoder reports in document order
    }
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match fv {
            FieldValidation::Strict => {
                let err = render::strict_decoding_error(&unknown);
                let kind = t.res.kind;
                return Err(ApiError::BadRequest(match write {
                    Write::Patch => err,
                    Write::Decode => format!(
                        "{kind} in version \"{}\" cannot be handled as a {kind}: {err}",
                        t.version
                    ),
                }));
            }
            FieldValidation::Warn => {
                warnings = unknown.iter().map(|p| render::unknown_field(p)).collect()
            }
            FieldValidation::Ignore => {}
        }
        ks.schema.prune(obj);
    }
    if ks.crd {
        ks.schema.apply_defaults(obj);
    }
    Ok(warnings)
}

/// Server-side apply converts the apply configuration to a typed object first, which fails on
/// any undeclared field whatever `fieldValidation` says (managedfields structuredmerge.go).
/// kube-apiserver returns that plain Go error as a 500 (kubernetes/kubernetes#139253); the
/// sandbox answers 400 BadRequest with the same message, as the pending fix
/// (kubernetes/kubernetes#139255) does, since the fault is the client's.
fn check_apply_configuration(t: &Target, applied: &Value) -> Result<(), ApiError> {
    let Some(ks) = openapi::schema(t.res.group, t.res.kind) else {
        return Ok(());
    };
    let unknown = ks.schema.apply_unknown_fields(applied);
    if unknown.is_empty() {
        return Ok(());
    }
    // objectGVKNN: "<namespace>/<name>; <group>/<version>, Kind=<kind>".
    Err(ApiError::BadRequest(format!(
        "failed to create typed patch object ({}/{}; {}/{}, Kind={}): {}",
        meta::namespace(applied),
        meta::name(applied),
        t.res.group,
        t.version,
        t.res.kind,
        render::smd_errors(&unknown)
    )))
}

/// Adds `Warning: 299 - "<text>"` headers (k8s.io/apiserver pkg/warning, RFC 7234 §5.5).
fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = header::HeaderValue::from_str(&format!("299 - \"{text}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// Defaults and validates an object about to be written.
fn admit(api: &ApiServer, t: &Target, obj: &mut Value) -> Result<(), ApiError> {
    let store = api.store.clone();
    let used_ips = move || {
        store
            .list(kinds::services(), None)
            .0
            .iter()
            .filter_map(|s| {
                s.pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    };
    defaults::apply(t.res, obj, &used_ips);
    let mut causes = validation::validate(t.res.group, t.res.kind, obj);
    if std::ptr::eq(t.res, kinds::customresourcedefinitions()) {
        causes.extend(super::crd::validate(obj));
    }
    if !causes.is_empty() {
        let name = meta::name(obj).to_string();
        return Err(ApiError::Invalid {
            res: t.res,
            message: validation::invalid_message(&t.res.qualified_kind(), &name, &causes),
            name,
            causes,
        });
    }
    Ok(())
}

async fn persisted(api: &ApiServer, t: &Target) -> Result<(), ApiError> {
    api.store.persisted().await.map_err(ApiError::store(t.res))
}

/// Waits for the write to be on disk, unless it was a dry run (which writes nothing).
async fn persisted_unless_dry_run(api: &ApiServer, t: &Target, q: &Query) -> Result<(), ApiError> {
    if dry_run(q) {
        return Ok(());
    }
    persisted(api, t).await
}

/// A create or update body, decoded, defaulted, checked and admitted, with the warnings to
/// send back. An update's `url_name` fills in or must match the body's name.
fn admitted_body(
    api: &ApiServer,
    t: &Target,
    q: &Query,
    ct: &str,
    body: &[u8],
    url_name: Option<&str>,
) -> Result<(Object, Vec<String>), ApiError> {
    let fv = field_validation(q)?;
    let mut obj = decode(body, ct)?;
    let warnings = obj.edit(|v| {
        if let Some(name) = url_name {
            name_from_url(v, name)?;
        }
        prepare(t, v)?;
        let warnings = decode_checks(t, v, fv, Write::Decode)?;
        admit(api, t, v)?;
        Ok::<_, ApiError>(warnings)
    })?;
    Ok((obj, warnings))
}

fn subresource(t: &Target) -> Subresource {
    if t.sub.as_deref() == Some("status") {
        Subresource::Status
    } else {
        Subresource::Main
    }
}

/// POST (`Verb::Create`) or PUT (`Verb::Update`) of a whole object: options checked, the body
/// admitted, stored, persisted, and returned with the decoder's warnings.
async fn write_object(
    api: &ApiServer,
    t: &Target,
    q: &Query,
    verb: options::Verb,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    options::check(verb, q, None)?;
    let (ct, body) = read_body(req).await?;
    let (ct, body) = (ct.as_str(), &body[..]);
    let creating = matches!(verb, options::Verb::Create);
    let url_name = (!creating).then(|| t.name.as_deref().unwrap_or(""));
    let (obj, warnings) = admitted_body(api, t, q, ct, body, url_name)?;
    let (written, code) = if creating {
        (
            api.store.create(t.res, obj, dry_run(q)),
            StatusCode::CREATED,
        )
    } else {
        let sub = subresource(t);
        (
            api.store.update(t.res, obj, sub, dry_run(q)),
            StatusCode::OK,
        )
    };
    let written = written.map_err(ApiError::store(t.res))?;
    persisted_unless_dry_run(api, t, q).await?;
    let resp = object_response(t, code, &written, None);
    Ok(with_warnings(resp, &warnings))
}

async fn patch(
    api: &ApiServer,
    t: &Target,
    q: &Query,
    ct: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let pt = PatchType::from_content_type(ct, t.res)?;
    let fv = field_validation(q)?;
    let name = t.name.clone().unwrap_or_default();
    if t.sub.as_deref() == Some("scale") {
        let current = api
            .store
            .get(t.res, t.ns(), &name)
            .ok_or_else(|| not_found(t, &name))?;
        let patched = match pt {
            // An apply configuration of the Scale: its replicas win.
            PatchType::Apply => decode(body, "application/yaml")?,
            _ => patch::apply_patch(t.res, &scale_of(t, &current), body, pt)?,
        };
        let replicas = patched
            .pointer("/spec/replicas")
            .cloned()
            .unwrap_or(json!(0));
        return set_replicas(api, t, replicas, dry_run(q)).await;
    }
    // Like kube-apiserver's GuaranteedUpdate: re-read and re-apply when a concurrent write won.
    for _ in 0..8 {
        let current = api.store.get(t.res, t.ns(), &name);
        let (mut obj, creating) = match (pt, current) {
            (PatchType::Apply, current) => {
                let mut applied = decode(body, "application/yaml")?;
                applied.edit(|v| {
                    name_from_url(v, &name)?;
                    prepare(t, v)
                })?;
                check_apply_configuration(t, &applied)?;
                let manager = q.get("fieldManager").unwrap_or("unknown");
                let creating = current.is_none();
                (
                    patch::server_side_apply(current.as_deref(), applied, manager),
                    creating,
                )
            }
            (_, None) => return Err(not_found(t, &name)),
            (_, Some(current)) => (patch::apply_patch(t.res, &current, body, pt)?, false),
        };
        let warnings = obj.edit(|v| {
            prepare(t, v)?;
            let warnings = decode_checks(t, v, fv, Write::Patch)?;
            admit(api, t, v)?;
            Ok::<_, ApiError>(warnings)
        })?;
        let result = if creating {
            api.store.create(t.res, obj, dry_run(q))
        } else {
            api.store.update(t.res, obj, subresource(t), dry_run(q))
        };
        match result {
            Ok(done) => {
                persisted_unless_dry_run(api, t, q).await?;
                let status = if creating {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                };
                let resp = object_response(t, status, &done, None);
                return Ok(with_warnings(resp, &warnings));
            }
            Err(StoreError::Conflict { .. }) | Err(StoreError::AlreadyExists { .. }) => continue,
            Err(e) => return Err(ApiError::store(t.res)(e)),
        }
    }
    Err(ApiError::store(t.res)(StoreError::Conflict {
        resource: t.res.qualified_plural(),
        name,
        reason: "the object kept changing; please try again".into(),
    }))
}

/// The `autoscaling/v1` Scale view of a Deployment or ReplicaSet.
fn scale_of(t: &Target, obj: &Value) -> Value {
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta::name(obj), "namespace": t.ns(),
            "uid": meta::uid(obj),
            "resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or_default(),
            "creationTimestamp": obj.pointer("/metadata/creationTimestamp").cloned().unwrap_or_default(),
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

fn get_scale(api: &ApiServer, t: &Target) -> Result<Response<Body>, ApiError> {
    if !t.res.kind.ends_with("ReplicaSet") && t.res.kind != "Deployment" {
        return Err(ApiError::NoRoute);
    }
    let name = t.name.clone().unwrap_or_default();
    let obj = api
        .store
        .get(t.res, t.ns(), &name)
        .ok_or_else(|| not_found(t, &name))?;
    Ok(json_response(StatusCode::OK, &scale_of(t, &obj)))
}

async fn set_replicas(
    api: &ApiServer,
    t: &Target,
    replicas: Value,
    dry: bool,
) -> Result<Response<Body>, ApiError> {
    if t.res.kind != "ReplicaSet" && t.res.kind != "Deployment" {
        return Err(ApiError::NoRoute);
    }
    let name = t.name.clone().unwrap_or_default();
    let n = replicas.as_i64().filter(|n| *n >= 0).ok_or_else(|| ApiError::Invalid {
        res: t.res,
        name: name.clone(),
        causes: vec![validation::Cause {
            reason: "FieldValueInvalid",
            field: "spec.replicas".into(),
            message: format!("Invalid value: {replicas}: must be greater than or equal to 0"),
        }],
        message: format!("Scale.autoscaling \"{name}\" is invalid: spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
    })?;
    let obj = if dry {
        let mut o = (*api
            .store
            .get(t.res, t.ns(), &name)
            .ok_or_else(|| not_found(t, &name))?)
        .clone();
        o["spec"]["replicas"] = json!(n);
        Arc::new(o)
    } else {
        let o = api
            .store
            .modify(t.res, t.ns(), &name, Subresource::Main, |o| {
                o["spec"]["replicas"] = json!(n)
            })
            .map_err(ApiError::store(t.res))?;
        persisted(api, t).await?;
        o
    };
    Ok(json_response(StatusCode::OK, &scale_of(t, &obj)))
}

async fn delete(
    api: &ApiServer,
    t: &Target,
    q: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    let opts = DeleteOptions::decode(q, body)?;
    opts.validate()?;
    let dry = opts.dry_run();
    let propagation = opts.propagation();
    let precondition = |field: &str| {
        let p = opts.preconditions.as_ref()?;
        match field {
            "uid" => p.uid.as_deref(),
            _ => p.resource_version.as_deref(),
        }
    };
    if precondition("uid").is_some() || precondition("resourceVersion").is_some() {
        let cur = api
            .store
            .get(t.res, t.ns(), &name)
            .ok_or_else(|| not_found(t, &name))?;
        // storage.Preconditions.Check (staging/src/k8s.io/apiserver/pkg/storage/interfaces.go).
        let failed = match (precondition("uid"), precondition("resourceVersion")) {
            (Some(want), _) if meta::uid(&cur) != want => Some(format!(
                "Precondition failed: UID in precondition: {want}, UID in object meta: {}",
                meta::uid(&cur)
            )),
            (_, Some(want)) if meta::resource_version_str(&cur) != want => Some(format!(
                "Precondition failed: ResourceVersion in precondition: {want}, ResourceVersion in object meta: {}",
                meta::resource_version_str(&cur)
            )),
            _ => None,
        };
        if let Some(reason) = failed {
            return Err(ApiError::store(t.res)(StoreError::Conflict {
                resource: t.res.qualified_plural(),
                name,
                reason,
            }));
        }
    }
    let outcome = api
        .store
        .delete_with(t.res, t.ns(), &name, dry, propagation)
        .map_err(ApiError::store(t.res))?;
    if !dry {
        persisted(api, t).await?;
    }
    Ok(deleted_response(t, outcome, &opts))
}

/// What DELETE answers (registry/generic/registry/store.go `Delete`/`finalizeDelete`): the
/// object while it is still there (finalizers, a terminating namespace), and once gone a
/// `Success` Status naming it, except for the kinds whose storage returns the deleted object
/// (pods, services, namespaces). An object left terminating is a 202 when the client asked for
/// `orphanDependents: false` (handlers/delete.go), else 200.
fn deleted_response(t: &Target, outcome: Deleted, opts: &DeleteOptions) -> Response<Body> {
    match outcome {
        Deleted::Terminating(o) => {
            let status = if opts.orphan_dependents == Some(false) {
                StatusCode::ACCEPTED
            } else {
                StatusCode::OK
            };
            object_response(t, status, &o, None)
        }
        Deleted::Gone(o) => {
            let returns_object = t.res.group.is_empty()
                && matches!(t.res.plural, "pods" | "services" | "namespaces");
            if returns_object {
                return object_response(t, StatusCode::OK, &o, None);
            }
            let mut details =
                json!({"name": meta::name(&o), "kind": t.res.plural, "uid": meta::uid(&o)});
            if !t.res.group.is_empty() {
                details["group"] = json!(t.res.group);
            }
            json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}),
            )
        }
    }
}

/// deletecollection: the list options (selectors) are checked first, then the DeleteOptions,
/// as handlers/delete.go `DeleteCollection` does, and only then is anything deleted.
async fn delete_collection(
    api: &ApiServer,
    t: &Target,
    q: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let filter = Filter::new(t, q)?;
    let opts = DeleteOptions::decode(q, body)?;
    opts.validate()?;
    let (dry, propagation) = (opts.dry_run(), opts.propagation());
    let (items, _) = api.store.list(t.res, filter.ns.as_deref());
    let mut deleted = Vec::new();
    for obj in items.iter().filter(|o| filter.matches(o)) {
        match api.store.delete_with(
            t.res,
            meta::namespace(obj),
            meta::name(obj),
            dry,
            propagation,
        ) {
            Ok(Deleted::Gone(o)) | Ok(Deleted::Terminating(o)) => deleted.push(present(t, &o)),
            Err(StoreError::NotFound { .. }) => {}
            Err(e) => return Err(ApiError::store(t.res)(e)),
        }
    }
    if !dry {
        persisted(api, t).await?;
    }
    let list = json!({
        "kind": format!("{}List", t.res.kind),
        "apiVersion": t.res.api_version(&t.version),
        "metadata": {"resourceVersion": api.store.resource_version().to_string()},
        "items": deleted,
    });
    Ok(json_response(StatusCode::OK, &list))
}

fn logs(api: &ApiServer, t: &Target, q: &Query) -> Result<Response<Body>, ApiError> {
    let name = t.name.clone().unwrap_or_default();
    api.store
        .get(t.res, t.ns(), &name)
        .ok_or_else(|| not_found(t, &name))?;
    let opts = super::podlogs::LogOptions::from_query(q, &name)?;
    let lines = match &api.logs {
        Some(l) => l
            .logs(t.ns(), &name, q.get("container"))
            .map_err(ApiError::BadRequest)?,
        None => Vec::new(),
    };
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full(opts.render(&lines, std::time::SystemTime::now())))
        .expect("static response"))
}
