//! Deployment → ReplicaSet → Pod, as pure functions from current objects to the objects to
//! write. The simulator's loop calls these; nothing here touches the store.
//!
//! Names, labels and status follow kube-controller-manager (pkg/controller/deployment and
//! replicaset): ReplicaSets are `<deployment>-<pod-template-hash>`, Pods `<rs>-<5 chars>`,
//! rolling updates honour maxSurge/maxUnavailable, and the Available/Progressing conditions use
//! the same reasons and messages so `kubectl rollout status` and `kubectl wait` behave.

use crate::meta::{self, Object};
use serde_json::{json, Map, Value};

/// Characters Kubernetes uses for generated names and hashes (no vowels; apimachinery rand).
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a of the pod template, encoded like `rand.SafeEncodeString`: the pod-template-hash.
/// Object keys are hashed in sorted order, as `hashutil.DeepHashObject` prints maps, so a
/// template that comes back with its fields in another order (`rollout undo` patches it) has
/// the same hash.
pub fn template_hash(template: &Value) -> String {
    fn bytes(h: &mut u32, bs: &[u8]) {
        for b in bs {
            *h ^= u32::from(*b);
            *h = h.wrapping_mul(0x0100_0193);
        }
    }
    fn feed(v: &Value, h: &mut u32) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                bytes(h, b"{");
                for k in keys {
                    bytes(h, k.as_bytes());
                    bytes(h, b":");
                    feed(&m[k], h);
                    bytes(h, b",");
                }
                bytes(h, b"}");
            }
            Value::Array(a) => {
                bytes(h, b"[");
                for x in a {
                    feed(x, h);
                    bytes(h, b",");
                }
                bytes(h, b"]");
            }
            other => bytes(h, other.to_string().as_bytes()),
        }
    }
    let mut h: u32 = 0x811c_9dc5;
    feed(template, &mut h);
    h.to_string()
        .bytes()
        .map(|d| ALPHANUMS[usize::from(d) % ALPHANUMS.len()] as char)
        .collect()
}

/// Whether a ReplicaSet's pod template is the Deployment's, ignoring the `pod-template-hash`
/// label (deployment/util `EqualIgnoreHash`).
pub fn template_matches(rs: &Value, deploy: &Value) -> bool {
    let mut t = rs.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    if let Some(labels) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
        if labels.is_empty() {
            if let Some(m) = t.pointer_mut("/metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
            }
        }
    }
    let d = deploy.pointer("/spec/template").unwrap_or(&Value::Null);
    t == *d
}

/// Owner reference to `owner` (controller=true), as the controllers write it.
pub fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": meta::name(owner),
        "uid": meta::uid(owner),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `obj` is controlled by the object with `uid`.
pub fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
}

/// Resolves an IntOrString like `25%` or `1` against `total` (round up for surge, down for
/// unavailable, as intstr.GetScaledValueFromIntOrPercent).
pub fn scaled(v: Option<&Value>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) => {
                let x = p * total;
                if round_up {
                    (x + 99) / 100
                } else {
                    x / 100
                }
            }
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

/// The ReplicaSet a Deployment wants for its current template.
/// `max_old_revision` is the highest revision of the Deployment's other ReplicaSets.
pub fn desired_replicaset(
    deploy: &Value,
    hash: &str,
    replicas: i64,
    max_old_revision: i64,
) -> Object {
    let name = format!("{}-{hash}", meta::name(deploy));
    let mut template = deploy
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    meta::child_map(meta::metadata_mut(&mut template), "labels")
        .insert("pod-template-hash".into(), json!(hash));
    let mut selector = deploy
        .pointer("/spec/selector")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(s) = selector.as_object_mut() {
        meta::child_map(s, "matchLabels").insert("pod-template-hash".into(), json!(hash));
    }
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if !labels.is_object() {
        labels = json!({});
    }
    let annotations = Value::Object(replicaset_annotations(deploy, None, max_old_revision));
    crate::object!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name,
            "namespace": meta::namespace(deploy),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_ref(deploy, "apps/v1", "Deployment")],
        },
        "spec": {
            "replicas": replicas,
            "selector": selector,
            "template": template,
        },
    })
}

/// The revision annotation kube-controller-manager keeps on Deployments and ReplicaSets.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Deployment annotations never copied to ReplicaSets (deployment/util `skipCopyAnnotation`).
fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        "kubectl.kubernetes.io/last-applied-configuration"
            | REVISION
            | REVISION_HISTORY
            | DESIRED_REPLICAS
            | MAX_REPLICAS
            | "deprecated.deployment.rollback.to"
    )
}

/// An object's revision annotation (0 when absent or not a number).
pub fn revision(obj: &Value) -> i64 {
    meta::annotation(obj, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The annotations the Deployment's current ReplicaSet should carry, as
/// pkg/controller/deployment/util `SetNewReplicaSetAnnotations` writes them: the Deployment's
/// own annotations (less the skipped ones), the desired and max replica counts, and a revision
/// one above every older ReplicaSet's (`max_old_revision`). A ReplicaSet that already has a
/// higher revision keeps it; one brought back by a rollback gets the new revision and its old
/// one appended to `revision-history`.
pub fn replicaset_annotations(
    deploy: &Value,
    existing: Option<&Value>,
    max_old_revision: i64,
) -> Map<String, Value> {
    let mut out: Map<String, Value> = existing
        .and_then(|rs| rs.pointer("/metadata/annotations"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if let Some(own) = deploy
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in own.iter().filter(|(k, _)| !skip_copy(k)) {
            out.insert(k.clone(), v.clone());
        }
    }
    let replicas = deploy
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let surge = if deploy
        .pointer("/spec/strategy/type")
        .and_then(Value::as_str)
        == Some("Recreate")
    {
        0
    } else {
        scaled(
            deploy.pointer("/spec/strategy/rollingUpdate/maxSurge"),
            replicas,
            true,
            scaled(Some(&json!("25%")), replicas, true, 1),
        )
    };
    out.insert(DESIRED_REPLICAS.into(), json!(replicas.to_string()));
    out.insert(MAX_REPLICAS.into(), json!((replicas + surge).to_string()));
    let new_revision = max_old_revision + 1;
    let old = existing.map(revision).unwrap_or(0);
    if old < new_revision {
        out.insert(REVISION.into(), json!(new_revision.to_string()));
        if old > 0 {
            let history = match out.get(REVISION_HISTORY).and_then(Value::as_str) {
                Some(h) if !h.is_empty() => format!("{h},{old}"),
                _ => old.to_string(),
            };
            out.insert(REVISION_HISTORY.into(), json!(history));
        }
    }
    out
}

/// A new Pod for a ReplicaSet, named `<rs>-<suffix>`.
pub fn new_pod(rs: &Value, suffix: &str) -> Object {
    let template = rs
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut md: Map<String, Value> = template
        .get("metadata")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    md.insert("name".into(), json!(format!("{}-{suffix}", meta::name(rs))));
    md.insert("namespace".into(), json!(meta::namespace(rs)));
    md.insert(
        "ownerReferences".into(),
        json!([owner_ref(rs, "apps/v1", "ReplicaSet")]),
    );
    md.remove("creationTimestamp");
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    if let Some(s) = spec.as_object_mut() {
        s.insert("nodeName".into(), json!(NODE_NAME));
    }
    crate::object!({"apiVersion": "v1", "kind": "Pod", "metadata": md, "spec": spec})
}

/// The node every simulated pod runs on.
pub const NODE_NAME: &str = "agc-sandbox";

/// Whether a Pod counts as Ready (its Ready condition is True and it is not terminating).
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && meta::condition_status(pod, "Ready") == "True"
}

/// ReplicaSet status from its pods.
pub fn replicaset_status(rs: &Value, pods: &[&Value]) -> Value {
    let ready = pods.iter().filter(|p| pod_ready(p)).count();
    json!({
        "replicas": pods.len(),
        "fullyLabeledReplicas": pods.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": meta::generation(rs),
    })
}

/// How many pods to add (positive) or remove (negative) for a ReplicaSet.
pub fn replicaset_diff(rs: &Value, live_pods: usize) -> i64 {
    let want = rs
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    want - live_pods as i64
}

/// Which pods to delete when scaling down: not-ready first, then the newest (as
/// controller.ActivePodsWithRanks orders them). `created` orders pods created within the same
/// second (timestamps have one-second resolution): a higher value is newer.
pub fn pods_to_delete<'a>(
    pods: &[&'a Value],
    n: usize,
    created: &dyn Fn(&Value) -> u64,
) -> Vec<&'a Value> {
    let mut ranked: Vec<&Value> = pods.to_vec();
    ranked.sort_by(|a, b| {
        pod_ready(a).cmp(&pod_ready(b)).then_with(|| {
            let (ta, tb) = (meta::creation_timestamp(a), meta::creation_timestamp(b));
            tb.cmp(ta)
                .then_with(|| created(b).cmp(&created(a)))
                .then_with(|| meta::name(b).cmp(meta::name(a)))
        })
    });
    ranked.into_iter().take(n).collect()
}

/// One step of a rolling update: the replica counts for the new ReplicaSet and each old one.
/// `ready` are ready pods per ReplicaSet, `current` their live pods.
pub struct Rollout {
    pub new_replicas: i64,
    /// (old ReplicaSet name, its new replica count)
    pub old_replicas: Vec<(String, i64)>,
}

/// Computes the next rolling-update step (deployment/rolling.go: reconcileNewReplicaSet and
/// reconcileOldReplicaSets), or a Recreate step.
pub fn rollout(deploy: &Value, new_rs: (&Value, i64, i64), olds: &[(&Value, i64, i64)]) -> Rollout {
    let replicas = deploy
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let strategy = deploy
        .pointer("/spec/strategy/type")
        .and_then(Value::as_str)
        .unwrap_or("RollingUpdate");
    let (new_obj, new_current, _new_ready) = new_rs;
    let new_spec = new_obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if strategy == "Recreate" {
        let olds_alive: i64 = olds.iter().map(|(_, cur, _)| cur).sum();
        let old_replicas = olds
            .iter()
            .map(|(rs, _, _)| (meta::name(rs).to_string(), 0))
            .collect();
        let new_replicas = if olds_alive == 0 {
            replicas
        } else {
            new_spec.min(0)
        };
        return Rollout {
            new_replicas,
            old_replicas,
        };
    }
    let ru = deploy.pointer("/spec/strategy/rollingUpdate");
    let mut max_surge = scaled(ru.and_then(|r| r.get("maxSurge")), replicas, true, 1);
    let max_unavailable = scaled(ru.and_then(|r| r.get("maxUnavailable")), replicas, false, 0);
    if max_surge == 0 && max_unavailable == 0 {
        max_surge = 1;
    }
    let old_specs: i64 = olds
        .iter()
        .map(|(rs, _, _)| {
            rs.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
        })
        .sum();
    // Scale up the new ReplicaSet within the surge budget.
    let mut new_replicas = new_spec;
    if new_spec < replicas {
        let allowed = replicas + max_surge - (old_specs + new_spec);
        new_replicas = (new_spec + allowed.max(0)).min(replicas);
    } else if new_spec > replicas {
        new_replicas = replicas;
    }
    // Scale down old ReplicaSets while keeping replicas - maxUnavailable available.
    let min_available = replicas - max_unavailable;
    let all_ready: i64 = olds.iter().map(|(_, _, r)| r).sum::<i64>() + new_rs.2;
    let mut budget = (all_ready - min_available).max(0);
    // Unready old pods can always go: they do not count towards availability.
    let mut old_replicas = Vec::new();
    for (rs, current, ready) in olds {
        let spec = rs
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let unready = (current - ready).max(0);
        let mut target = (spec - unready).max(0);
        let cut = budget.min(target);
        target -= cut;
        budget -= cut;
        old_replicas.push((meta::name(rs).to_string(), target));
    }
    let _ = new_current;
    Rollout {
        new_replicas,
        old_replicas,
    }
}

/// Deployment status and conditions from its ReplicaSets and their pods.
/// `new_rs` is (name, live pods, ready pods); `total`/`ready_total` count every ReplicaSet.
pub fn deployment_status(
    deploy: &Value,
    new_rs: (&str, i64, i64),
    total: i64,
    ready_total: i64,
    old: Option<&Value>,
) -> Value {
    let replicas = deploy
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let max_unavailable = scaled(
        deploy.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        replicas,
        false,
        0,
    );
    let (rs_name, updated, _) = new_rs;
    let available = ready_total >= replicas - max_unavailable;
    let complete = updated == replicas && total == replicas && ready_total == replicas;
    let now = meta::now_rfc3339();
    let keep_time = |type_: &str, status: &str| -> String {
        old.and_then(|o| meta::condition(o, type_))
            .filter(|c| c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| now.clone())
    };
    let (a_status, a_reason, a_msg) = if available {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let (p_reason, p_msg) = if complete {
        (
            "NewReplicaSetAvailable",
            format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
        )
    } else {
        (
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{rs_name}\" is progressing."),
        )
    };
    let a_time = keep_time("Available", a_status);
    let p_time = keep_time("Progressing", "True");
    // lastUpdateTime moves with the reason, so an unchanged status writes nothing.
    let same_reason = |t: &str, r: &str| {
        old.and_then(|o| meta::condition(o, t))
            .is_some_and(|c| c["reason"] == r)
    };
    let a_update = if same_reason("Available", a_reason) {
        a_time.clone()
    } else {
        now.clone()
    };
    let p_update = if same_reason("Progressing", p_reason) {
        old.and_then(|o| meta::condition(o, "Progressing"))
            .and_then(|c| c["lastUpdateTime"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| now.clone())
    } else {
        now.clone()
    };
    let mut status = json!({
        "observedGeneration": meta::generation(deploy),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready_total,
        "availableReplicas": ready_total,
        "conditions": [
            {"type": "Available", "status": a_status, "lastUpdateTime": a_update, "lastTransitionTime": a_time, "reason": a_reason, "message": a_msg},
            {"type": "Progressing", "status": "True", "lastUpdateTime": p_update, "lastTransitionTime": p_time, "reason": p_reason, "message": p_msg},
        ],
    });
    let unavailable = (replicas - ready_total).max(0);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    for k in [
        "readyReplicas",
        "availableReplicas",
        "updatedReplicas",
        "replicas",
    ] {
        if status[k] == 0 {
            status.as_object_mut().expect("object").remove(k);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, strategy: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "ns", "uid": "d1", "generation": 2},
               "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                        "strategy": strategy,
                        "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    fn rs(name: &str, replicas: i64) -> Value {
        json!({"metadata": {"name": name}, "spec": {"replicas": replicas}})
    }

    #[test]
    fn replicaset_is_named_by_template_hash_and_selects_it() {
        let d = deploy(2, json!({}));
        let hash = template_hash(&d["spec"]["template"]);
        assert_eq!(
            hash,
            template_hash(&d["spec"]["template"]),
            "hash is deterministic"
        );
        let r = desired_replicaset(&d, &hash, 2, 0);
        assert_eq!(r["metadata"]["name"], format!("web-{hash}"));
        assert_eq!(
            r["spec"]["selector"]["matchLabels"]["pod-template-hash"],
            hash
        );
        assert_eq!(
            r["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
            hash
        );
        assert!(owned_by(
            &json!({"metadata": {"ownerReferences": r["metadata"]["ownerReferences"]}}),
            "d1"
        ));
    }

    #[test]
    fn revisions_count_up_and_a_rolled_back_replicaset_takes_the_next() {
        let mut d = deploy(
            4,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}),
        );
        d["metadata"]["annotations"] = json!({
            "kubernetes.io/change-cause": "v2",
            "kubectl.kubernetes.io/last-applied-configuration": "{}",
        });
        let first = replicaset_annotations(&d, None, 0);
        assert_eq!(first[REVISION], "1");
        assert_eq!(first[DESIRED_REPLICAS], "4");
        assert_eq!(first[MAX_REPLICAS], "5");
        assert_eq!(first["kubernetes.io/change-cause"], "v2");
        assert!(!first.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
        // Rolled back to: revision 1 becomes 3 (olds reach 2), remembering 1.
        let rs = json!({"metadata": {"annotations": first}});
        let again = replicaset_annotations(&d, Some(&rs), 2);
        assert_eq!(again[REVISION], "3");
        assert_eq!(again[REVISION_HISTORY], "1");
        // Level-based: the same inputs give the same annotations.
        let rs = json!({"metadata": {"annotations": again.clone()}});
        assert_eq!(replicaset_annotations(&d, Some(&rs), 2), again);
    }

    #[test]
    fn pods_are_named_after_their_replicaset() {
        let r = json!({"metadata": {"name": "web-abc", "namespace": "ns", "uid": "r1"},
                       "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {}}}});
        let p = new_pod(&r, "xyz12");
        assert_eq!(p["metadata"]["name"], "web-abc-xyz12");
        assert_eq!(p["metadata"]["labels"]["app"], "web");
        assert_eq!(p["spec"]["nodeName"], NODE_NAME);
    }

    #[test]
    fn percentages_scale_like_intstr() {
        assert_eq!(scaled(Some(&json!("25%")), 3, true, 0), 1);
        assert_eq!(scaled(Some(&json!("25%")), 3, false, 0), 0);
        assert_eq!(scaled(Some(&json!(2)), 3, false, 0), 2);
        assert_eq!(scaled(None, 3, false, 7), 7);
    }

    #[test]
    fn rolling_update_surges_first_then_retires_old_pods_once_new_are_ready() {
        let d = deploy(
            3,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
        );
        let old = rs("web-old", 3);
        let new = rs("web-new", 0);
        // Step 1: nothing new is ready; surge of 1 allows one new pod; no old pod can go
        // (3 ready - minAvailable 3 = 0).
        let step = rollout(&d, (&new, 0, 0), &[(&old, 3, 3)]);
        assert_eq!(step.new_replicas, 1);
        assert_eq!(step.old_replicas, vec![("web-old".to_string(), 3)]);
        // Step 2: the new pod is ready: one old pod may go.
        let new1 = rs("web-new", 1);
        let step = rollout(&d, (&new1, 1, 1), &[(&old, 3, 3)]);
        assert_eq!(step.old_replicas, vec![("web-old".to_string(), 2)]);
    }

    #[test]
    fn recreate_waits_for_old_pods_to_go() {
        let d = deploy(2, json!({"type": "Recreate"}));
        let old = rs("web-old", 2);
        let new = rs("web-new", 0);
        let step = rollout(&d, (&new, 0, 0), &[(&old, 2, 2)]);
        assert_eq!(step.new_replicas, 0);
        assert_eq!(step.old_replicas, vec![("web-old".to_string(), 0)]);
        let step = rollout(&d, (&new, 0, 0), &[(&rs("web-old", 0), 0, 0)]);
        assert_eq!(step.new_replicas, 2);
    }

    #[test]
    fn scale_down_removes_unready_then_newest() {
        let p = |name: &str, ts: &str, ready: bool| {
            json!({"metadata": {"name": name, "creationTimestamp": ts},
                   "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
        };
        let (a, b, c) = (
            p("a", "2024-01-01T00:00:00Z", true),
            p("b", "2024-01-02T00:00:00Z", true),
            p("c", "2024-01-01T00:00:00Z", false),
        );
        let gone = pods_to_delete(&[&a, &b, &c], 2, &|_| 0);
        assert_eq!(
            gone.iter().map(|p| meta::name(p)).collect::<Vec<_>>(),
            ["c", "b"]
        );
    }

    #[test]
    fn scale_down_breaks_same_second_ties_by_creation_order() {
        let p = |name: &str| {
            json!({"metadata": {"name": name, "creationTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}})
        };
        let (old, new1, new2) = (p("zzz-old"), p("aaa-new"), p("mmm-new"));
        let order = |v: &Value| match meta::name(v) {
            "zzz-old" => 1,
            "aaa-new" => 2,
            _ => 3,
        };
        let gone = pods_to_delete(&[&old, &new1, &new2], 2, &order);
        assert_eq!(
            gone.iter().map(|p| meta::name(p)).collect::<Vec<_>>(),
            ["mmm-new", "aaa-new"]
        );
    }

    #[test]
    fn deployment_status_conditions_match_kube_controller_manager() {
        let d = deploy(
            2,
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}),
        );
        let s = deployment_status(&d, ("web-x", 2, 2), 2, 2, None);
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["conditions"][0]["type"], "Available");
        assert_eq!(s["conditions"][0]["reason"], "MinimumReplicasAvailable");
        assert_eq!(s["conditions"][1]["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            s["conditions"][1]["message"],
            "ReplicaSet \"web-x\" has successfully progressed."
        );
        let s = deployment_status(&d, ("web-x", 2, 0), 2, 0, None);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["unavailableReplicas"], 2);
        // An unchanged status is byte-identical, so it is not rewritten.
        let again = deployment_status(
            &d,
            ("web-x", 2, 0),
            2,
            0,
            Some(&json!({"status": s.clone()})),
        );
        assert_eq!(again, s);
    }
}
