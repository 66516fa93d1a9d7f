//! Store mechanics: identity, resourceVersion, generation, persistence and watch resumption.

use super::*;
use crate::meta::NotAnObject;
use crate::resources::kinds;
use serde_json::json;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn gateway(name: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"gatewayClassName": "azure-alb-external", "listeners": []}})
}

/// The store takes only objects; test literals are.
fn o(v: Value) -> Object {
    Object::new(v).expect("a JSON object")
}

/// Creates a Gateway, which the test expects to succeed.
fn create_gw(store: &Store, obj: Value) -> Arc<Value> {
    let name = meta::name(&obj).to_string();
    store
        .create(kinds::gateways(), o(obj), false)
        .unwrap_or_else(|e| panic!("create gateway {name}: {e}"))
}

/// Updates a Gateway's main resource.
fn update_gw(store: &Store, obj: Value) -> Result<Arc<Value>, StoreError> {
    store.update(kinds::gateways(), o(obj), Subresource::Main, false)
}

#[test]
fn fresh_store_has_the_builtin_namespaces_labelled() {
    let (_d, store) = open();
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = store.get(kinds::namespaces(), "", ns).unwrap();
        assert_eq!(meta::label(&obj, "kubernetes.io/metadata.name"), Some(ns));
        assert_eq!(obj["status"]["phase"], "Active");
    }
}

#[test]
fn create_sets_identity_and_rejects_duplicates_and_missing_namespaces() {
    let (_d, store) = open();
    let obj = create_gw(&store, gateway("gw"));
    assert!(!meta::uid(&obj).is_empty());
    assert_eq!(meta::generation(&obj), 1);
    assert!(obj.pointer("/metadata/creationTimestamp").is_some());
    let err = store
        .create(kinds::gateways(), o(gateway("gw")), false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "gateways.gateway.networking.k8s.io \"gw\" already exists"
    );
    let mut elsewhere = gateway("gw2");
    elsewhere["metadata"]["namespace"] = json!("nope");
    let err = store
        .create(kinds::gateways(), o(elsewhere), false)
        .unwrap_err();
    assert_eq!(err.to_string(), "namespaces \"nope\" not found");
}

#[test]
fn generation_moves_only_with_spec() {
    let (_d, store) = open();
    let obj = create_gw(&store, gateway("gw"));
    let mut labelled = (*obj).clone();
    labelled["metadata"]["labels"] = json!({"a": "b"});
    let obj2 = update_gw(&store, labelled).unwrap();
    assert_eq!(meta::generation(&obj2), 1);
    let obj3 = store
        .modify(
            kinds::gateways(),
            "default",
            "gw",
            Subresource::Status,
            |o| o["status"] = json!({"conditions": []}),
        )
        .unwrap();
    assert_eq!(meta::generation(&obj3), 1);
    let mut respec = (*obj3).clone();
    respec["spec"]["listeners"] = json!([{"name": "http", "port": 80, "protocol": "HTTP"}]);
    let obj4 = update_gw(&store, respec).unwrap();
    assert_eq!(meta::generation(&obj4), 2);
    // Status survived the main-resource update.
    assert_eq!(obj4["status"], json!({"conditions": []}));
}

#[test]
fn stale_resource_version_conflicts_and_noop_keeps_rv() {
    let (_d, store) = open();
    let obj = create_gw(&store, gateway("gw"));
    let same = update_gw(&store, (*obj).clone()).unwrap();
    assert_eq!(meta::resource_version(&same), meta::resource_version(&obj));
    let mut changed = (*obj).clone();
    changed["spec"]["gatewayClassName"] = json!("other");
    update_gw(&store, changed.clone()).unwrap();
    let err = update_gw(&store, changed).unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err}");
}

#[test]
fn objects_survive_reopen_with_uid_and_increasing_rv() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, rv) = {
        let store = Store::open(dir.path()).unwrap();
        let obj = create_gw(&store, gateway("gw"));
        (meta::uid(&obj).to_string(), store.resource_version())
    };
    let store = Store::open(dir.path()).unwrap();
    let obj = store.get(kinds::gateways(), "default", "gw").unwrap();
    assert_eq!(meta::uid(&obj), uid);
    let next = create_gw(&store, gateway("gw2"));
    assert!(meta::resource_version(&next).unwrap() > rv);
}

#[test]
fn watch_replays_from_rv_and_expires_before_history() {
    let (_d, store) = open();
    let a = create_gw(&store, gateway("a"));
    let rv_a = meta::resource_version(&a).unwrap();
    create_gw(&store, gateway("b"));
    let w = store.watch(Some(kinds::gateways()), Some(rv_a)).unwrap();
    assert_eq!(w.initial.len(), 1);
    assert_eq!(meta::name(&w.initial[0].object), "b");
    let w0 = store.watch(Some(kinds::gateways()), None).unwrap();
    assert_eq!(w0.initial.len(), 2);
    assert!(w0.initial.iter().all(|e| e.type_ == EventType::Added));
}

#[test]
fn watch_from_before_a_restart_is_expired() {
    let dir = tempfile::tempdir().unwrap();
    let rv = {
        let store = Store::open(dir.path()).unwrap();
        create_gw(&store, gateway("a"));
        store.resource_version()
    };
    let store = Store::open(dir.path()).unwrap();
    let err = store
        .watch(Some(kinds::gateways()), Some(rv - 1))
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Expired { .. }), "{err}");
    // Watching from the current rv needs no history and works.
    assert!(store.watch(Some(kinds::gateways()), Some(rv)).is_ok());
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let (_d, store) = open();
    let mut g = gateway("gw");
    g["metadata"]["finalizers"] = json!(["example.com/hold"]);
    create_gw(&store, g);
    let d = store
        .delete(kinds::gateways(), "default", "gw", false)
        .unwrap();
    assert!(matches!(d, Deleted::Terminating(_)));
    store
        .modify(kinds::gateways(), "default", "gw", Subresource::Main, |o| {
            o["metadata"]["finalizers"] = json!([])
        })
        .unwrap();
    assert!(store.get(kinds::gateways(), "default", "gw").is_none());
}

#[test]
fn deleting_an_owner_deletes_its_dependents() {
    let (_d, store) = open();
    let owner = create_gw(&store, gateway("owner"));
    let mut dep = gateway("dep");
    dep["metadata"]["ownerReferences"] = json!([{"apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway", "name": "owner", "uid": meta::uid(&owner)}]);
    create_gw(&store, dep);
    store
        .delete(kinds::gateways(), "default", "owner", false)
        .unwrap();
    assert!(store.get(kinds::gateways(), "default", "dep").is_none());
}

#[test]
fn namespace_delete_is_graceful_then_removes_contents() {
    let (_d, store) = open();
    store
        .create(
            kinds::namespaces(),
            o(json!({"metadata": {"name": "test-infra"}})),
            false,
        )
        .unwrap();
    let mut g = gateway("gw");
    g["metadata"]["namespace"] = json!("test-infra");
    create_gw(&store, g);
    // No runtime here, so the drain runs inline; the handler path is covered by API tests.
    let d = store
        .delete(kinds::namespaces(), "", "test-infra", false)
        .unwrap();
    let Deleted::Terminating(obj) = d else {
        panic!("namespace deletion must be graceful")
    };
    assert_eq!(obj["status"]["phase"], "Terminating");
    assert!(store.get(kinds::gateways(), "test-infra", "gw").is_none());
    assert!(store.get(kinds::namespaces(), "", "test-infra").is_none());
}

#[test]
fn dry_run_changes_nothing() {
    let (_d, store) = open();
    let rv = store.resource_version();
    store
        .create(kinds::gateways(), o(gateway("gw")), true)
        .unwrap();
    assert!(store.get(kinds::gateways(), "default", "gw").is_none());
    assert_eq!(store.resource_version(), rv);
}

/// The watch history is bounded in bytes as well as in events: every version of a large object
/// written often is not kept, and a watch from before what is kept gets 410 Expired.
#[test]
fn watch_history_is_bounded_in_bytes() {
    let (_d, store) = open();
    let big = "x".repeat(1 << 20);
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "big", "namespace": "default"}, "stringData": {"a": big}});
    let first = store.create(kinds::secrets(), o(secret), false).unwrap();
    let first_rv = meta::resource_version(&first).unwrap();
    for i in 0..(2 * (HISTORY_BYTES >> 20)) {
        store
            .modify(kinds::secrets(), "default", "big", Subresource::Main, |o| {
                o["metadata"]["labels"] = json!({"i": i.to_string()})
            })
            .unwrap();
    }
    let state = store.read();
    assert!(
        state.history_bytes <= HISTORY_BYTES,
        "{}",
        state.history_bytes
    );
    assert_eq!(
        state.history_bytes,
        state.history_sizes.iter().sum::<usize>()
    );
    assert!(state.history.len() < HISTORY_BYTES >> 20);
    drop(state);
    let err = store.watch(None, Some(first_rv)).err().expect("expired");
    assert!(matches!(err, StoreError::Expired { .. }), "{err}");
    let latest = store.resource_version();
    assert!(store.watch(None, Some(latest - 1)).is_ok());
}

#[test]
fn only_objects_reach_the_store_and_edits_cannot_unmake_them() {
    for bad in [json!([1, 2]), json!("gw"), json!(null)] {
        assert_eq!(Object::new(bad), Err(NotAnObject));
    }
    let mut obj = o(gateway("gw"));
    let r: Result<(), NotAnObject> = obj.edit(|v| {
        *v = json!([1]);
        Ok(())
    });
    assert_eq!(r, Err(NotAnObject));
    assert!(obj.is_object());
    // A modify closure that leaves no object changes nothing.
    let (_d, store) = open();
    let before = create_gw(&store, gateway("gw"));
    let after = store
        .modify(kinds::gateways(), "default", "gw", Subresource::Main, |v| {
            *v = json!("gone")
        })
        .unwrap();
    assert_eq!(before, after);
}
