//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! kubectl sends strategic merge patches for built-in kinds (`apply`, `edit`, `patch`, `scale`,
//! `set image`, ...). Unlike RFC 7386 merge patch, lists whose Go field carries
//! `patchStrategy:"merge"` are merged element-wise by their `patchMergeKey`, so treating such a
//! patch as a merge patch would, for example, wipe a container's ports when only its image
//! changes. This is a port of the apply half of k8s.io/apimachinery
//! `pkg/util/strategicpatch/patch.go` (`StrategicMergeMapPatch` -> `mergeMap`, `mergeSlice`,
//! `mergePatchIntoOriginal`, `applyRetainKeysDirective`, `normalizeElementOrder`), driven by a
//! small table of the struct tags of the kinds the sandbox serves (see [`field`]).
//!
//! Deliberate differences, all in corners where the Go code leaves patch syntax in the object and
//! relies on the typed decode that follows to drop it:
//! - a patch value with no counterpart in the original is itself applied to nothing, so
//!   directives and `null`s nested inside it never reach the stored object;
//! - `$deleteFromPrimitiveList` removes values from any list and is a no-op on an absent list (the
//!   behaviour newer apimachinery tests pin down);
//! - `$patch` marker elements inside lists without a merge key are dropped.

use serde_json::{Map, Value};

type Obj = Map<String, Value>;

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder";
const DELETE_PRIMITIVE: &str = "$deleteFromPrimitiveList";
const BAD_RETAIN_KEYS: SmpError = SmpError::BadDirective("retainKeys");
const BAD_ORDER_LIST: SmpError = SmpError::BadDirective("setElementOrder list");
const BAD_PRIMITIVE_LIST: SmpError = SmpError::BadDirective("primitive list");

/// Errors applying a strategic merge patch; shown to kubectl users in a 422/400 Status message.
///
/// Messages follow k8s.io/apimachinery `pkg/util/mergepatch/errors.go` where one exists.
#[derive(Debug, thiserror::Error)]
pub enum SmpError {
    /// The patch, or the stored object, is not a JSON object.
    #[error("invalid JSON document: the {0} must be a JSON object")]
    NotAnObject(&'static str),
    /// A `$retainKeys`, `$setElementOrder/<field>` or `$deleteFromPrimitiveList/<field>`
    /// directive is misnamed or not a list.
    #[error("invalid patch format of {0}")]
    BadDirective(&'static str),
    /// A `$patch` directive whose value is not `replace` or `delete`.
    #[error("unknown patch type: {directive} in map: {map}")]
    UnknownPatchType { directive: String, map: String },
    /// An element of a merge list, or of its `$setElementOrder` list, lacks the merge key.
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    /// The patch contradicts itself: it sets a field its `$retainKeys` clears, or its list is
    /// not in `$setElementOrder` order.
    #[error("{0}")]
    Inconsistent(String),
    /// Values strategic merge cannot combine: mixed or nested lists, maps in a list without a
    /// merge key, a scalar where a map or list is needed, `$patch: merge` in a list.
    #[error("{0}")]
    Unmergeable(String),
}

/// Applies strategic merge `patch` to `original`, an object of built-in `kind`.
///
/// Unknown kinds have no merge keys, which makes this JSON merge patch plus the directives.
pub fn strategic_merge_patch(
    original: &Value,
    patch: &Value,
    kind: &str,
) -> Result<Value, SmpError> {
    let patch = patch.as_object().ok_or(SmpError::NotAnObject("patch"))?;
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Obj::new(),
        _ => return Err(SmpError::NotAnObject("original object")),
    };
    let root = KINDS.iter().find(|k| **k == kind).copied().unwrap_or("");
    merge_map(original, patch, root).map(Value::Object)
}

/// Go type at a point of the object tree, named as in k8s.io/api; `""` where nothing below has
/// patch metadata, so maps merge and lists replace.
type GoType = &'static str;

/// The built-in kinds the sandbox serves; any other kind gets no patch metadata.
#[rustfmt::skip]
const KINDS: &[GoType] = &[
    "Namespace", "Pod", "Service", "Endpoints", "Secret", "ConfigMap", "Event", "Deployment",
    "ReplicaSet", "EndpointSlice",
];

/// A list field's `patchStrategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    /// No strategy (or `+listType=atomic`): the patch list replaces the original.
    Replace,
    /// `patchStrategy:"merge"`, with its `patchMergeKey` (none for lists of scalars).
    Merge(Option<&'static str>),
}

impl Strategy {
    fn key(self) -> Option<&'static str> {
        match self {
            Strategy::Merge(key) => key,
            Strategy::Replace => None,
        }
    }
}

/// Patch metadata of field `name` of a `parent` value: the Go type of its value (of its
/// elements, for lists) and its list strategy.
///
/// Transcribed from the struct tags (`patchStrategy:"merge" patchMergeKey:"..."`) of:
/// - ObjectMeta (k8s.io/apimachinery pkg/apis/meta/v1/types.go): ownerReferences (uid),
///   finalizers (merge, scalars); managedFields is atomic.
/// - PodSpec (k8s.io/api core/v1/types.go): containers, initContainers, ephemeralContainers,
///   volumes, imagePullSecrets, schedulingGates, resourceClaims (name); hostAliases (ip);
///   topologySpreadConstraints (topologyKey). tolerations and readinessGates are atomic.
/// - Container and EphemeralContainerCommon: ports (containerPort), env (name), volumeMounts
///   (mountPath), volumeDevices (devicePath); command, args, envFrom, resizePolicy are atomic.
/// - ServiceSpec: ports (port); externalIPs, clusterIPs etc. are atomic.
/// - PodStatus, ServiceStatus, NamespaceStatus and apps/v1 DeploymentStatus, ReplicaSetStatus:
///   conditions (type); PodStatus also podIPs, hostIPs (ip) and resourceClaimStatuses (name).
/// - apps/v1 DeploymentSpec, ReplicaSetSpec: template is a core/v1 PodTemplateSpec.
/// - NamespaceSpec.finalizers, Endpoints.subsets and discovery/v1 EndpointSlice endpoints and
///   ports are `+listType=atomic` without a patch strategy, so they replace.
///
/// `retainKeys` strategies (DeploymentSpec.strategy; the `merge,retainKeys` of volumes and
/// resourceClaims) only steer patch generation; applying honours `$retainKeys` wherever it is.
fn field(parent: GoType, name: &str) -> (GoType, Strategy) {
    use Strategy::Replace;
    let merge = |key| Strategy::Merge(Some(key));
    match (parent, name) {
        (p, "metadata") if p == "PodTemplateSpec" || KINDS.contains(&p) => ("ObjectMeta", Replace),
        ("Pod" | "PodTemplateSpec", "spec") => ("PodSpec", Replace),
        ("Pod", "status") => ("PodStatus", Replace),
        ("Service", "spec") => ("ServiceSpec", Replace),
        ("Service", "status") => ("ServiceStatus", Replace),
        ("Namespace", "status") => ("NamespaceStatus", Replace),
        ("Deployment", "spec") => ("DeploymentSpec", Replace),
        ("Deployment", "status") => ("DeploymentStatus", Replace),
        ("ReplicaSet", "spec") => ("ReplicaSetSpec", Replace),
        ("ReplicaSet", "status") => ("ReplicaSetStatus", Replace),
        ("DeploymentSpec" | "ReplicaSetSpec", "template") => ("PodTemplateSpec", Replace),
        ("ObjectMeta", "finalizers") => ("", Strategy::Merge(None)),
        ("ObjectMeta", "ownerReferences") => ("", merge("uid")),
        ("PodSpec", "containers" | "initContainers" | "ephemeralContainers") => {
            ("Container", merge("name"))
        }
        ("PodSpec", "volumes" | "imagePullSecrets" | "schedulingGates" | "resourceClaims") => {
            ("", merge("name"))
        }
        ("PodSpec", "hostAliases") => ("", merge("ip")),
        ("PodSpec", "topologySpreadConstraints") => ("", merge("topologyKey")),
        ("Container", "ports") => ("", merge("containerPort")),
        ("Container", "env") => ("", merge("name")),
        ("Container", "volumeMounts") => ("", merge("mountPath")),
        ("Container", "volumeDevices") => ("", merge("devicePath")),
        ("ServiceSpec", "ports") => ("", merge("port")),
        (status, "conditions") if status.ends_with("Status") => ("", merge("type")),
        ("PodStatus", "podIPs" | "hostIPs") => ("", merge("ip")),
        ("PodStatus", "resourceClaimStatuses") => ("", merge("name")),
        _ => ("", Replace),
    }
}

fn is_directive(key: &str) -> bool {
    key == PATCH
        || key == RETAIN_KEYS
        || key.starts_with(SET_ORDER)
        || key.starts_with(DELETE_PRIMITIVE)
}

/// The `<field>` of a `$prefix/<field>` directive, given what follows the prefix.
fn directive_field(rest: &str) -> Option<&str> {
    rest.strip_prefix('/').filter(|f| !f.is_empty())
}

/// apimachinery `mergeMap`.
fn merge_map(mut original: Obj, patch: &Obj, node: GoType) -> Result<Obj, SmpError> {
    if let Some(directive) = patch.get(PATCH) {
        return match directive.as_str() {
            Some("replace") => {
                let mut rest = patch.clone();
                rest.shift_remove(PATCH);
                merge_map(Obj::new(), &rest, node)
            }
            // apimachinery keeps the key with an empty map rather than removing it.
            Some("delete") => Ok(Obj::new()),
            _ => Err(unknown_patch_type(directive, patch)),
        };
    }
    retain_keys(&mut original, patch)?;
    let ordered = set_element_order(&mut original, patch, node)?;
    for (key, value) in patch {
        if is_directive(key) || ordered.contains(&key.as_str()) {
            continue;
        }
        if value.is_null() {
            original.shift_remove(key);
            continue;
        }
        let (child, strategy) = field(node, key);
        let merged = match (original.get_mut(key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Value::Object(merge_map(std::mem::take(o), p, child)?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => {
                Value::Array(merge_list(std::mem::take(o), p, child, strategy)?)
            }
            // Absent, or the JSON type changed: the patch value wins.
            _ => fresh(value, child, strategy)?,
        };
        original.insert(key.clone(), merged);
    }
    // After the merges, so a value both added and deleted ends up deleted whatever the key order.
    for (key, value) in patch {
        let Some(rest) = key.strip_prefix(DELETE_PRIMITIVE) else {
            continue;
        };
        let name = directive_field(rest).ok_or(BAD_PRIMITIVE_LIST)?;
        let doomed = value.as_array().ok_or(BAD_PRIMITIVE_LIST)?;
        if let Some(Value::Array(list)) = original.get_mut(name) {
            list.retain(|v| !doomed.contains(v));
        }
    }
    Ok(original)
}

/// A patch value applied to nothing: what is stored when the original has no counterpart.
fn fresh(value: &Value, node: GoType, strategy: Strategy) -> Result<Value, SmpError> {
    Ok(match value {
        Value::Object(m) => Value::Object(merge_map(Obj::new(), m, node)?),
        Value::Array(a) => Value::Array(merge_list(Vec::new(), a, node, strategy)?),
        scalar => scalar.clone(),
    })
}

/// apimachinery `applyRetainKeysDirective`: clear every original key not listed, after checking
/// the patch itself only sets listed keys.
fn retain_keys(original: &mut Obj, patch: &Obj) -> Result<(), SmpError> {
    let Some(list) = patch.get(RETAIN_KEYS) else {
        return Ok(());
    };
    let list = list.as_array().ok_or(BAD_RETAIN_KEYS)?;
    let retained = |k: &str| list.iter().any(|v| v.as_str() == Some(k));
    if let Some((k, _)) = patch
        .iter()
        .find(|(k, v)| !v.is_null() && !is_directive(k) && !retained(k))
    {
        return Err(SmpError::Inconsistent(format!(
            "patch content doesn't match retainKeys list: {k:?} is not retained"
        )));
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// apimachinery `mergePatchIntoOriginal`: merges each list that has a `$setElementOrder` and puts
/// it in that order. Returns the fields it handled, which the caller must not merge again.
fn set_element_order<'p>(
    original: &mut Obj,
    patch: &'p Obj,
    node: GoType,
) -> Result<Vec<&'p str>, SmpError> {
    let mut done = Vec::new();
    for (key, order) in patch {
        let Some(rest) = key.strip_prefix(SET_ORDER) else {
            continue;
        };
        let name = directive_field(rest).ok_or(BAD_ORDER_LIST)?;
        let order = order.as_array().ok_or(BAD_ORDER_LIST)?;
        let (child, strategy) = field(node, name);
        let patch_list = patch.get(name).map(as_list).transpose()?;
        let original_list = match original.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(as_list(v)?.clone()),
        };
        if let Some(list) = patch_list {
            check_order(list, order, strategy.key())?;
        }
        let merged = match (&original_list, patch_list) {
            (None, None) => continue,
            (Some(o), None) => o.clone(),
            (o, Some(p)) => merge_list(o.clone().unwrap_or_default(), p, child, strategy)?,
        };
        let server = original_list.unwrap_or_default();
        if let Some(k) = strategy.key() {
            for item in order {
                key_of(item, k)?;
            }
        }
        let sorted = normalize(merged, order, &server, strategy.key());
        original.insert(name.to_owned(), Value::Array(sorted));
        done.push(name);
    }
    Ok(done)
}

fn as_list(v: &Value) -> Result<&Vec<Value>, SmpError> {
    v.as_array()
        .ok_or_else(|| SmpError::Unmergeable(format!("expected a list, but received {v}")))
}

/// apimachinery `validatePatchWithSetOrderList`: the patch items (directives aside) must appear in
/// the order list, in the same relative order.
fn check_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<(), SmpError> {
    let mut remaining = order.iter();
    for item in patch.iter().filter(|v| v.get(PATCH).is_none()) {
        loop {
            let Some(candidate) = remaining.next() else {
                return Err(SmpError::Inconsistent(format!(
                    "the order in patch list {} doesn't match $setElementOrder list {}",
                    Value::from(patch.to_vec()),
                    Value::from(order.to_vec())
                )));
            };
            let same = match key {
                Some(k) => key_of(item, k)? == key_of(candidate, k)?,
                None => item == candidate,
            };
            if same {
                break;
            }
        }
    }
    Ok(())
}

/// apimachinery `mergeSlice` (with `mergeSliceHandler` choosing by strategy).
fn merge_list(
    original: Vec<Value>,
    patch: &[Value],
    node: GoType,
    strategy: Strategy,
) -> Result<Vec<Value>, SmpError> {
    let Strategy::Merge(key) = strategy else {
        return replace_list(patch, node);
    };
    match (element_kind(&original, patch)?, key) {
        (None, _) => Ok(original),
        (Some(false), _) => {
            // Scalars: union, deduplicated.
            let mut merged: Vec<Value> = Vec::new();
            for v in original.iter().chain(patch) {
                if !merged.contains(v) {
                    merged.push(v.clone());
                }
            }
            Ok(normalize(merged, patch, &original, None))
        }
        (Some(true), None) => Err(unmergeable(
            "cannot merge lists without merge key for type map",
        )),
        (Some(true), Some(key)) => merge_keyed(original, patch, key, node),
    }
}

/// Whether list elements are maps (`Some(true)`) or scalars (`Some(false)`); `None` if empty.
fn element_kind(a: &[Value], b: &[Value]) -> Result<Option<bool>, SmpError> {
    let mut kind = None;
    for v in a.iter().chain(b) {
        if v.is_array() {
            return Err(unmergeable("lists of lists are not supported"));
        }
        match kind {
            None => kind = Some(v.is_object()),
            Some(k) if k != v.is_object() => {
                return Err(unmergeable("list element types are not identical"))
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// apimachinery `mergeSliceWithSpecialElements` + `mergeSliceWithoutSpecialElements`, then
/// `normalizeElementOrder`.
fn merge_keyed(
    mut live: Vec<Value>,
    patch: &[Value],
    key: &str,
    node: GoType,
) -> Result<Vec<Value>, SmpError> {
    let mut items = Vec::new();
    let mut replace = false;
    for el in patch {
        let Value::Object(m) = el else {
            return Err(unmergeable("list element types are not identical"));
        };
        let Some(directive) = m.get(PATCH) else {
            items.push((el, m));
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let doomed = key_of(el, key)?;
                live.retain(|v| v.get(key) != Some(doomed));
            }
            // Keep scanning: other `$patch` elements must still be stripped.
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(unmergeable(
                    "merging lists cannot yet be specified in the patch",
                ))
            }
            _ => return Err(unknown_patch_type(directive, m)),
        }
    }
    if replace {
        return items
            .into_iter()
            .map(|(_, m)| merge_map(Obj::new(), m, node).map(Value::Object))
            .collect();
    }
    // Order of the live list after deletions, before additions, as apimachinery records it.
    let server = live.clone();
    for &(el, m) in &items {
        let wanted = key_of(el, key)?;
        match live.iter().position(|v| v.get(key) == Some(wanted)) {
            Some(i) => {
                let current = match std::mem::take(&mut live[i]) {
                    Value::Object(o) => o,
                    _ => Obj::new(),
                };
                live[i] = Value::Object(merge_map(current, m, node)?);
            }
            None => live.push(Value::Object(merge_map(Obj::new(), m, node)?)),
        }
    }
    let order: Vec<Value> = items.into_iter().map(|(el, _)| el.clone()).collect();
    Ok(normalize(live, &order, &server, Some(key)))
}

/// A list without merge semantics: the patch's elements, applied to nothing.
fn replace_list(patch: &[Value], node: GoType) -> Result<Vec<Value>, SmpError> {
    let mut out = Vec::with_capacity(patch.len());
    for el in patch {
        match el.as_object().and_then(|m| m.get(PATCH).map(|d| (m, d))) {
            // Without a merge key there is nothing to delete, and the list is replaced anyway.
            Some((_, d)) if matches!(d.as_str(), Some("replace" | "delete")) => {}
            Some((m, d)) => return Err(unknown_patch_type(d, m)),
            None => out.push(fresh(el, node, Strategy::Replace)?),
        }
    }
    Ok(out)
}

/// apimachinery `normalizeElementOrder` + `mergeSortedSlice`: items named by `patch_order` take
/// that order; the rest keep their `server` order and are interleaved by it, so a server-only
/// item precedes a patch item only if both are in `server` and it came first there. Items new to
/// the server therefore come before the remaining server-only items.
fn normalize(
    merged: Vec<Value>,
    patch_order: &[Value],
    server: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let (mut from_patch, mut server_only): (Vec<_>, Vec<_>) = merged
        .into_iter()
        .partition(|v| position(patch_order, v, key).is_some());
    from_patch.sort_by_key(|v| position(patch_order, v, key));
    server_only.sort_by_key(|v| position(server, v, key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(from_patch.len() + server_only.len());
    let mut server_only = server_only.into_iter().peekable();
    for item in from_patch {
        let at = position(server, &item, key);
        while let Some(s) = server_only.peek() {
            match (position(server, s, key), at) {
                (Some(a), Some(b)) if a < b => out.extend(server_only.next()),
                _ => break,
            }
        }
        out.push(item);
    }
    out.extend(server_only);
    out
}

/// Index of `item` in `list`, matching maps by merge key and everything else by value.
fn position(list: &[Value], item: &Value, key: Option<&str>) -> Option<usize> {
    match key.and_then(|k| item.get(k).map(|v| (k, v))) {
        Some((k, wanted)) => list.iter().position(|v| v.get(k) == Some(wanted)),
        None => list.iter().position(|v| v == item),
    }
}

fn key_of<'a>(item: &'a Value, key: &str) -> Result<&'a Value, SmpError> {
    let m = item
        .as_object()
        .ok_or_else(|| SmpError::Unmergeable(format!("expected a map, but received {item}")))?;
    m.get(key).ok_or_else(|| SmpError::NoMergeKey {
        map: item.to_string(),
        key: key.to_owned(),
    })
}

fn unmergeable(message: &str) -> SmpError {
    SmpError::Unmergeable(message.to_owned())
}

fn unknown_patch_type(directive: &Value, map: &Obj) -> SmpError {
    SmpError::UnknownPatchType {
        directive: match directive {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        map: Value::Object(map.clone()).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(text: &str) -> Value {
        serde_json::from_str(text).expect("test JSON parses")
    }

    /// Applies the patch and checks that no directive key survived into the result.
    fn smp(original: &str, patch: &str, kind: &str) -> Value {
        let out = strategic_merge_patch(&j(original), &j(patch), kind).expect("patch applies");
        assert!(
            !out.to_string().contains("\"$"),
            "directive leaked into {out}"
        );
        out
    }

    /// Runs cases written as blocks of four lines: kind, original, patch, expected result.
    fn check(cases: &str) {
        let lines: Vec<&str> = cases
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        for case in lines.chunks(4) {
            let [kind, original, patch, want] = case else {
                panic!("incomplete case {case:?}");
            };
            assert_eq!(smp(original, patch, kind), j(want), "{kind} {patch}");
        }
    }

    #[test]
    fn kubectl_apply_image_change_keeps_ports_and_env() {
        let original = r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{}"}},
            "spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"backend-v1","image":"acr.io/backend:v1",
            "ports":[{"containerPort":3000}],"env":[{"name":"MODE","value":"prod"}]}]}}}}"#;
        // kubectl 1.32 apply, from the wire log (annotation value shortened).
        let patch = r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"v\":2}"}},"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"backend-v1"}],"containers":[{"image":"acr.io/backend:v2","name":"backend-v1"}]}}}}"#;
        let want = r#"{"metadata":{"annotations":{"kubectl.kubernetes.io/last-applied-configuration":"{\"v\":2}"}},
            "spec":{"replicas":1,"template":{"spec":{"containers":[{"name":"backend-v1","image":"acr.io/backend:v2",
            "ports":[{"containerPort":3000}],"env":[{"name":"MODE","value":"prod"}]}]}}}}"#;
        assert_eq!(smp(original, patch, "Deployment"), j(want));
    }

    #[test]
    fn kubectl_apply_service_port_change() {
        let original = r#"{"spec":{"ports":[{"port":8080,"protocol":"TCP","targetPort":3000}]}}"#;
        // kubectl 1.32 apply, from the wire log.
        let patch = r#"{"spec":{"$setElementOrder/ports":[{"port":8081}],"ports":[{"port":8081,"protocol":"TCP","targetPort":3000},{"$patch":"delete","port":8080}]}}"#;
        let want = r#"{"spec":{"ports":[{"port":8081,"protocol":"TCP","targetPort":3000}]}}"#;
        assert_eq!(smp(original, patch, "Service"), j(want));
    }

    #[test]
    fn env_var_add_and_remove() {
        check(
            r#"
            Pod
            {"spec":{"containers":[{"name":"c","env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}}
            {"spec":{"containers":[{"name":"c","$setElementOrder/env":[{"name":"A"},{"name":"C"}],"env":[{"name":"C","value":"3"},{"$patch":"delete","name":"B"}]}]}}
            {"spec":{"containers":[{"name":"c","env":[{"name":"A","value":"1"},{"name":"C","value":"3"}]}]}}
        "#,
        );
    }

    #[test]
    fn null_deletes_key() {
        check(
            r#"
            ConfigMap
            {"metadata":{"labels":{"a":"1","b":"2"}},"data":{"k":"v"}}
            {"metadata":{"labels":{"a":null,"zz":null}},"data":null,"new":{"x":null,"y":1}}
            {"metadata":{"labels":{"b":"2"}},"new":{"y":1}}
        "#,
        );
    }

    #[test]
    fn patch_replace_in_list() {
        check(
            r#"
            Pod
            {"spec":{"containers":[{"name":"a"},{"name":"b"}]}}
            {"spec":{"containers":[{"name":"c","image":"x"},{"$patch":"replace"}]}}
            {"spec":{"containers":[{"name":"c","image":"x"}]}}

            Pod
            {"spec":{"containers":[{"name":"a"},{"name":"b"}]}}
            {"spec":{"containers":[{"$patch":"replace"}]}}
            {"spec":{"containers":[]}}
        "#,
        );
    }

    #[test]
    fn patch_replace_and_delete_in_map() {
        // Like apimachinery, `$patch: delete` leaves an empty map in place.
        check(
            r#"
            Pod
            {"spec":{"nodeSelector":{"a":"1","b":"2"},"x":1}}
            {"spec":{"nodeSelector":{"$patch":"replace","c":"3"}}}
            {"spec":{"nodeSelector":{"c":"3"},"x":1}}

            Pod
            {"spec":{"nodeSelector":{"a":"1","b":"2"},"x":1}}
            {"spec":{"nodeSelector":{"$patch":"delete"}}}
            {"spec":{"nodeSelector":{},"x":1}}
        "#,
        );
    }

    #[test]
    fn retain_keys_switches_deployment_strategy() {
        // What kubectl apply sends when a manifest switches to Recreate, then the bare directive.
        check(
            r#"
            Deployment
            {"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%"}}}}
            {"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":null,"type":"Recreate"}}}
            {"spec":{"strategy":{"type":"Recreate"}}}

            Deployment
            {"spec":{"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":"25%"}}}}
            {"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}}
            {"spec":{"strategy":{"type":"Recreate"}}}
        "#,
        );
    }

    #[test]
    fn primitive_merge_list_unions() {
        check(
            r#"
            Namespace
            {"metadata":{"finalizers":["a","b"]}}
            {"metadata":{"finalizers":["b","c"]}}
            {"metadata":{"finalizers":["a","b","c"]}}
        "#,
        );
    }

    #[test]
    fn delete_from_primitive_list() {
        // Then kubectl's form when adding d and dropping b; then an absent list.
        check(
            r#"
            Secret
            {"metadata":{"finalizers":["a","b","c"]}}
            {"metadata":{"$deleteFromPrimitiveList/finalizers":["b","zz"]}}
            {"metadata":{"finalizers":["a","c"]}}

            Secret
            {"metadata":{"finalizers":["a","b","c"]}}
            {"metadata":{"$setElementOrder/finalizers":["a","c","d"],"$deleteFromPrimitiveList/finalizers":["b"],"finalizers":["d"]}}
            {"metadata":{"finalizers":["a","c","d"]}}

            Secret
            {}
            {"metadata":{"$deleteFromPrimitiveList/finalizers":["b"]}}
            {"metadata":{}}
        "#,
        );
    }

    #[test]
    fn set_element_order_reorders() {
        // In the second case the unlisted B is interleaved by its live position
        // (mergeSortedSlice); in the third, order entries missing from the list are ignored.
        check(
            r#"
            ReplicaSet
            {"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"A"},{"name":"B"},{"name":"C"}]}]}}}}
            {"spec":{"template":{"spec":{"containers":[{"name":"c","$setElementOrder/env":[{"name":"C"},{"name":"B"},{"name":"A"}]}]}}}}
            {"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"C"},{"name":"B"},{"name":"A"}]}]}}}}

            ReplicaSet
            {"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"A"},{"name":"B"},{"name":"C"}]}]}}}}
            {"spec":{"template":{"spec":{"containers":[{"name":"c","$setElementOrder/env":[{"name":"C"},{"name":"A"}]}]}}}}
            {"spec":{"template":{"spec":{"containers":[{"name":"c","env":[{"name":"B"},{"name":"C"},{"name":"A"}]}]}}}}

            Pod
            {"metadata":{"finalizers":["x","y"]}}
            {"metadata":{"$setElementOrder/finalizers":["y","q","x"]}}
            {"metadata":{"finalizers":["y","x"]}}
        "#,
        );
    }

    #[test]
    fn new_items_without_order_directive_go_first() {
        // mergeSortedSlice puts patch items unknown to the live list first (the kubectl patch
        // docs show the added container ahead of the old one); patch order wins for the items
        // it names (apimachinery's "preserve the order from the patch" case).
        check(
            r#"
            Pod
            {"spec":{"containers":[{"name":"a"},{"name":"b"}]}}
            {"spec":{"containers":[{"name":"new","image":"redis"}]}}
            {"spec":{"containers":[{"name":"new","image":"redis"},{"name":"a"},{"name":"b"}]}}

            Pod
            {"spec":{"containers":[{"name":"1"},{"name":"2","v":"b"},{"name":"3"}]}}
            {"spec":{"containers":[{"name":"3","v":"c"},{"name":"1","v":"a"}]}}
            {"spec":{"containers":[{"name":"2","v":"b"},{"name":"3","v":"c"},{"name":"1","v":"a"}]}}
        "#,
        );
    }

    #[test]
    fn other_merge_keys() {
        check(
            r#"
            Pod
            {"metadata":{"ownerReferences":[{"uid":"u1","name":"rs"}]},"spec":{"volumes":[{"name":"v"}],"containers":[{"name":"c","volumeMounts":[{"mountPath":"/a","name":"v"}],"ports":[{"containerPort":80}]}]},"status":{"conditions":[{"type":"Ready","status":"False"},{"type":"Initialized"}]}}
            {"metadata":{"ownerReferences":[{"uid":"u1","controller":true}]},"spec":{"volumes":[{"name":"w"}],"containers":[{"name":"c","volumeMounts":[{"mountPath":"/a","readOnly":true}],"ports":[{"containerPort":80,"name":"http"}]}]},"status":{"conditions":[{"type":"Ready","status":"True"}]}}
            {"metadata":{"ownerReferences":[{"uid":"u1","name":"rs","controller":true}]},"spec":{"volumes":[{"name":"w"},{"name":"v"}],"containers":[{"name":"c","volumeMounts":[{"mountPath":"/a","name":"v","readOnly":true}],"ports":[{"containerPort":80,"name":"http"}]}]},"status":{"conditions":[{"type":"Ready","status":"True"},{"type":"Initialized"}]}}
        "#,
        );
    }

    #[test]
    fn atomic_lists_replace() {
        check(
            r#"
            Pod
            {"spec":{"tolerations":[{"key":"a"}],"containers":[{"name":"c","args":["x"],"command":["sh"],"resizePolicy":[{"resourceName":"cpu"}]}]}}
            {"spec":{"tolerations":[{"key":"b"}],"containers":[{"name":"c","args":["y"],"resizePolicy":[{"resourceName":"memory"}]}]}}
            {"spec":{"tolerations":[{"key":"b"}],"containers":[{"name":"c","args":["y"],"command":["sh"],"resizePolicy":[{"resourceName":"memory"}]}]}}

            Service
            {"spec":{"externalIPs":["1.1.1.1"]}}
            {"spec":{"externalIPs":["2.2.2.2"]}}
            {"spec":{"externalIPs":["2.2.2.2"]}}

            EndpointSlice
            {"endpoints":[{"addresses":["10.0.0.1"]}]}
            {"endpoints":[{"addresses":["10.0.0.2"]}]}
            {"endpoints":[{"addresses":["10.0.0.2"]}]}

            Namespace
            {"spec":{"finalizers":["kubernetes"]}}
            {"spec":{"finalizers":["x"]}}
            {"spec":{"finalizers":["x"]}}
        "#,
        );
    }

    #[test]
    fn unknown_kind_is_merge_patch_plus_directives() {
        check(
            r#"
            Widget
            {"metadata":{"finalizers":["a"]},"spec":{"containers":[{"name":"a","image":"x"}],"opts":{"k":1,"j":2}}}
            {"metadata":{"finalizers":["b"]},"spec":{"containers":[{"name":"a","image":"y"},{"$patch":"replace"}],"opts":{"$retainKeys":["k"],"k":3}}}
            {"metadata":{"finalizers":["b"]},"spec":{"containers":[{"name":"a","image":"y"}],"opts":{"k":3}}}
        "#,
        );
    }

    #[test]
    fn values_without_original_are_cleaned() {
        // Then a changed JSON type, which takes the patch value.
        check(
            r#"
            Pod
            {}
            {"spec":{"containers":[{"name":"c","stdin":null,"$setElementOrder/env":[{"name":"A"}],"env":[{"name":"A"},{"$patch":"delete","name":"gone"}]}]}}
            {"spec":{"containers":[{"name":"c","env":[{"name":"A"}]}]}}

            ConfigMap
            {"data":["x"]}
            {"data":{"k":"v"}}
            {"data":{"k":"v"}}
        "#,
        );
    }

    #[test]
    fn malformed_directives_error() {
        // expected message fragment | patch, applied to a Pod with one container "a"
        let cases = r#"
            unknown patch type: bogus | {"spec":{"$patch":"bogus"}}
            cannot yet be specified   | {"spec":{"containers":[{"$patch":"merge"}]}}
            unknown patch type: nope  | {"spec":{"containers":[{"$patch":"nope","name":"a"}]}}
            merge key: name           | {"spec":{"containers":[{"image":"x"}]}}
            merge key: name           | {"spec":{"containers":[{"$patch":"delete"}]}}
            not identical             | {"spec":{"containers":["a"]}}
            format of retainKeys      | {"spec":{"$retainKeys":"x"}}
            retainKeys list: "x"      | {"spec":{"$retainKeys":[],"x":1}}
            format of setElementOrder | {"spec":{"$setElementOrder/containers":"a"}}
            format of setElementOrder | {"spec":{"$setElementOrder":[]}}
            merge key: name           | {"spec":{"$setElementOrder/containers":[{"image":"x"}]}}
            doesn't match             | {"metadata":{"$setElementOrder/finalizers":["a"],"finalizers":["b"]}}
            format of primitive list  | {"metadata":{"$deleteFromPrimitiveList":["a"]}}
            format of primitive list  | {"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}}
            without merge key         | {"metadata":{"finalizers":[{"a":1}]}}
            invalid JSON document     | [1]"#;
        let pod = j(r#"{"spec":{"containers":[{"name":"a"}]}}"#);
        for row in cases.lines().filter(|l| !l.trim().is_empty()) {
            let (want, patch) = row.split_once(" | ").unwrap_or_default();
            let err = strategic_merge_patch(&pod, &j(patch), "Pod").map_err(|e| e.to_string());
            assert!(
                err.as_ref().is_err_and(|e| e.contains(want.trim())),
                "{row}: {err:?}"
            );
        }
        assert!(strategic_merge_patch(&j("1"), &j("{}"), "Pod").is_err());
    }
}
