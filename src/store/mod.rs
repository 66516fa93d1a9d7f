//! The object store: every object in memory, written through to sled, with watch events.
//!
//! One global, monotonically increasing `resourceVersion` orders every write. Each write is
//! applied to memory and to sled under one lock (so disk order equals rv order), then published on
//! a broadcast channel and kept in a bounded history so that watches can resume from a
//! resourceVersion (older than the history: 410 Expired, as kube-apiserver does).
//! Callers that acknowledge a write to a client await [`Store::persisted`] first, so an
//! acknowledged write survives `kill -9`.
//!
//! The store owns Kubernetes' object mechanics: `uid`, `creationTimestamp`, `generation` (bumped
//! only when `spec` changes), the status subresource split, finalizers, graceful namespace
//! deletion and owner-reference garbage collection. Validation and defaulting are the API
//! server's job and happen before a write reaches here.

mod persist;
pub mod selector;

use crate::meta::{self, Object};
use crate::resources::{kinds, ResourceDef, RESOURCES};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, RwLock};
use tokio::sync::broadcast;

pub use selector::{FieldSelector, LabelSelector, SelectorError};

/// How many events are kept for watches that resume from an older resourceVersion.
const HISTORY: usize = 20_000;
/// ... and at most this many bytes of objects (as stored), so a large object written often
/// does not pin every version of itself: a 3 MB ConfigMap patched 200 times held 700 MB.
const HISTORY_BYTES: usize = 32 << 20;
/// Capacity of the live event channel; a watcher that falls this far behind is told to relist.
const CHANNEL: usize = 65_536;

/// Errors from store operations. Their `Display` is the message kubectl shows.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{resource} \"{name}\" not found")]
    NotFound { resource: String, name: String },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists { resource: String, name: String },
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {reason}")]
    Conflict {
        resource: String,
        name: String,
        reason: String,
    },
    #[error("namespaces \"{0}\" not found")]
    NamespaceNotFound(String),
    #[error("unable to create new content in namespace {0} because it is being terminated")]
    NamespaceTerminating(String),
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    #[error("failed to persist to the data directory: {0}")]
    Persist(#[from] sled::Error),
    #[error("stored object is corrupt: {0}")]
    Corrupt(String),
}

/// The type of a watch event, as in the Kubernetes watch protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub type_: EventType,
    pub resource: &'static ResourceDef,
    /// The object after the change (for deletions: its last state, with the deletion's rv).
    pub object: Arc<Value>,
    pub rv: u64,
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// Everything but `status` (for kinds with a status subresource).
    Main,
    /// Only `status`.
    Status,
}

/// What a delete did.
#[derive(Debug)]
pub enum Deleted {
    /// The object is gone; this is its last state.
    Gone(Arc<Value>),
    /// The object is terminating (finalizers, or a namespace draining); this is its new state.
    Terminating(Arc<Value>),
}

/// How a delete treats the object's dependents (metav1.DeletionPropagation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// The finalizer a foreground delete holds while dependents go.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// A cheap, cloneable handle on the store.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    state: RwLock<State>,
    disk: persist::Disk,
    events: broadcast::Sender<Arc<WatchEvent>>,
}

type Key = (String, String);
type Objects = BTreeMap<Key, Arc<Value>>;

impl State {
    /// The objects of `res` (none yet for a kind nothing was written to).
    fn map(&self, res: &'static ResourceDef) -> Option<&Objects> {
        match index_of(res) {
            Some(i) => self.objects.get(i),
            None => self.custom.get(&(res.group, res.plural)),
        }
    }

    fn map_mut(&mut self, res: &'static ResourceDef) -> &mut Objects {
        match index_of(res) {
            Some(i) => &mut self.objects[i],
            None => self.custom.entry((res.group, res.plural)).or_default(),
        }
    }

    /// Every kind's objects: the built-in table's, then those of kinds still served by CRDs.
    fn maps(&self) -> Vec<(&'static ResourceDef, &Objects)> {
        let mut out: Vec<(&'static ResourceDef, &Objects)> =
            RESOURCES.iter().zip(self.objects.iter()).collect();
        let mut custom: Vec<_> = self
            .custom
            .iter()
            .filter_map(|((g, p), m)| crate::resources::by_plural(g, p).map(|r| (r, m)))
            .collect();
        custom.sort_by_key(|(r, _)| (r.group, r.plural));
        out.extend(custom);
        out
    }
}

struct State {
    rv: u64,
    /// One map per entry of [`RESOURCES`], keyed by (namespace, name) so lists come out sorted.
    objects: Vec<Objects>,
    /// The same for kinds CRDs define, by (group, plural).
    custom: std::collections::HashMap<(&'static str, &'static str), Objects>,
    history: VecDeque<Arc<WatchEvent>>,
    /// The stored size of each event's object in `history`, and their sum.
    history_sizes: VecDeque<usize>,
    history_bytes: usize,
    /// Every event with an rv above this is in `history`.
    history_floor: u64,
}

/// The result of starting a watch: events to send first, then the live channel.
pub struct Watch {
    pub initial: Vec<Arc<WatchEvent>>,
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
}

/// The position of a built-in kind in [`RESOURCES`] (`None` for a kind a CRD defines).
fn index_of(res: &'static ResourceDef) -> Option<usize> {
    RESOURCES.iter().position(|r| std::ptr::eq(r, res))
}

fn key_of(res: &ResourceDef, ns: &str, name: &str) -> Key {
    let ns = if res.namespaced { ns } else { "" };
    (ns.to_string(), name.to_string())
}

/// Namespaces every fresh cluster has (kubectl-contract §12).
const BUILTIN_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl Store {
    /// Opens (or creates) the store under `dir` and loads every object into memory.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let disk = persist::Disk::open(dir)?;
        let mut objects: Vec<Objects> = vec![BTreeMap::new(); RESOURCES.len()];
        let mut custom: std::collections::HashMap<(&'static str, &'static str), Objects> =
            Default::default();
        let mut rv = disk.last_rv()?;
        // Custom resources load once the CRDs that define them are served again.
        let mut pending = Vec::new();
        for item in disk.load()? {
            let (kind, obj) = item?;
            rv = rv.max(meta::resource_version(&obj).unwrap_or(0));
            match kind {
                persist::Kind::Known(res) => {
                    if std::ptr::eq(res, kinds::customresourcedefinitions()) {
                        if let Ok(def) = crate::resources::def_from_crd(&obj) {
                            if crate::resources::by_plural(def.group, def.plural).is_none() {
                                crate::resources::register(def);
                            }
                        }
                    }
                    let key = key_of(res, meta::namespace(&obj), meta::name(&obj));
                    match index_of(res) {
                        Some(i) => objects[i].insert(key, Arc::new(obj)),
                        // A kind whose CRD was read earlier in this pass.
                        None => custom
                            .entry((res.group, res.plural))
                            .or_default()
                            .insert(key, Arc::new(obj)),
                    };
                }
                persist::Kind::Unknown(group, plural) => pending.push((group, plural, obj)),
            }
        }
        for (group, plural, obj) in pending {
            match crate::resources::by_plural(&group, &plural) {
                Some(res) => {
                    let key = key_of(res, meta::namespace(&obj), meta::name(&obj));
                    custom
                        .entry((res.group, res.plural))
                        .or_default()
                        .insert(key, Arc::new(obj));
                }
                None => {
                    tracing::warn!(%group, %plural, name = %meta::name(&obj), "no CRD serves this stored object any more; it is not loaded")
                }
            }
        }
        let (events, _) = broadcast::channel(CHANNEL);
        let store = Store {
            shared: Arc::new(Shared {
                state: RwLock::new(State {
                    rv,
                    objects,
                    custom,
                    history: VecDeque::new(),
                    history_sizes: VecDeque::new(),
                    history_bytes: 0,
                    history_floor: rv,
                }),
                disk,
                events,
            }),
        };
        for ns in BUILTIN_NAMESPACES {
            if store.get(kinds::namespaces(), "", ns).is_none() {
                let obj = crate::object!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                store.create(kinds::namespaces(), obj, false)?;
            }
        }
        // A namespace that was terminating when the process stopped finishes terminating now.
        for ns in store.list(kinds::namespaces(), None).0 {
            if ns.pointer("/metadata/deletionTimestamp").is_some() {
                store.finish_namespace(meta::name(&ns).to_string());
            }
        }
        Ok(store)
    }

    /// Waits until every write made so far is on disk.
    pub async fn persisted(&self) -> Result<(), StoreError> {
        let rv = self.resource_version();
        self.shared.disk.flush(rv).await
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.read().rv
    }

    /// Number of objects held (all kinds).
    pub fn len(&self) -> usize {
        self.read().objects.iter().map(BTreeMap::len).sum()
    }

    /// Whether the store holds no objects at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, res: &'static ResourceDef, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.read().map(res)?.get(&key_of(res, ns, name)).cloned()
    }

    /// Objects of one kind, in one namespace or all (`None`), sorted by namespace and name,
    /// with the resourceVersion the list is consistent with.
    pub fn list(&self, res: &'static ResourceDef, ns: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let state = self.read();
        let Some(map) = state.map(res) else {
            return (Vec::new(), state.rv);
        };
        let items = match ns {
            Some(ns) if res.namespaced => map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| v.clone())
                .collect(),
            _ => map.values().cloned().collect(),
        };
        (items, state.rv)
    }

    /// Subscribes to changes. `since = None` (or `Some(0)`) replays every current object of `res`
    /// (or of all kinds when `res` is `None`) as ADDED; `Some(rv)` replays only the changes after
    /// `rv`, or fails with [`StoreError::Expired`] when they are no longer kept.
    pub fn watch(
        &self,
        res: Option<&'static ResourceDef>,
        since: Option<u64>,
    ) -> Result<Watch, StoreError> {
        let state = self.read();
        // Subscribing under the read lock means no event can slip between replay and live.
        let live = self.shared.events.subscribe();
        let initial = match since {
            None | Some(0) => {
                let mut out = Vec::new();
                for (r, map) in state.maps() {
                    if res.is_some_and(|want| !std::ptr::eq(want, r)) {
                        continue;
                    }
                    for obj in map.values() {
                        out.push(Arc::new(WatchEvent {
                            type_: EventType::Added,
                            resource: r,
                            rv: meta::resource_version(obj).unwrap_or(0),
                            object: obj.clone(),
                        }));
                    }
                }
                out
            }
            Some(rv) => {
                if rv < state.history_floor {
                    return Err(StoreError::Expired {
                        requested: rv,
                        oldest: state.history_floor,
                    });
                }
                state
                    .history
                    .iter()
                    .filter(|e| e.rv > rv && res.is_none_or(|want| std::ptr::eq(want, e.resource)))
                    .cloned()
                    .collect()
            }
        };
        Ok(Watch { initial, live })
    }

    /// Creates an object. Sets `uid`, `creationTimestamp`, `generation` and `resourceVersion`;
    /// resolves `generateName`; drops `status` for kinds with a status subresource (as
    /// kube-apiserver's PrepareForCreate does). With `dry_run` nothing is stored.
    pub fn create(
        &self,
        res: &'static ResourceDef,
        obj: Object,
        dry_run: bool,
    ) -> Result<Arc<Value>, StoreError> {
        let mut obj = obj.into_value();
        let mut state = self.write();
        let ns = meta::namespace(&obj).to_string();
        if res.namespaced {
            let nsobj = state
                .map(kinds::namespaces())
                .and_then(|m| m.get(&(String::new(), ns.clone())));
            match nsobj {
                None => return Err(StoreError::NamespaceNotFound(ns)),
                Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                    return Err(StoreError::NamespaceTerminating(ns))
                }
                Some(_) => {}
            }
        }
        let empty = Objects::new();
        let map = state.map(res).unwrap_or(&empty);
        if meta::name(&obj).is_empty() {
            if let Some(prefix) = obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
                .map(str::to_string)
            {
                let name = loop {
                    let candidate = format!("{prefix}{}", random_suffix(5));
                    if !map.contains_key(&key_of(res, &ns, &candidate)) {
                        break candidate;
                    }
                };
                meta::metadata_mut(&mut obj).insert("name".into(), Value::String(name));
            }
        }
        let name = meta::name(&obj).to_string();
        let key = key_of(res, &ns, &name);
        if map.contains_key(&key) {
            return Err(StoreError::AlreadyExists {
                resource: res.qualified_plural(),
                name,
            });
        }
        if let Some(root) = obj.as_object_mut() {
            if res.has_status {
                root.remove("status");
            }
            if std::ptr::eq(res, kinds::namespaces()) {
                root.insert("status".into(), json!({"phase": "Active"}));
            }
        }
        let rv = state.rv + 1;
        let md = meta::metadata_mut(&mut obj);
        if !res.namespaced {
            md.remove("namespace");
        }
        md.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        md.insert(
            "creationTimestamp".into(),
            Value::String(meta::now_rfc3339()),
        );
        md.insert("generation".into(), json!(1));
        md.insert("resourceVersion".into(), Value::String(rv.to_string()));
        md.remove("deletionTimestamp");
        if std::ptr::eq(res, kinds::namespaces()) {
            // Every namespace is labelled with its own name (kubectl-contract §12, item 40).
            meta::child_map(md, "labels").insert(
                "kubernetes.io/metadata.name".into(),
                Value::String(name.clone()),
            );
        }
        let obj = Arc::new(obj);
        if dry_run {
            return Ok(obj);
        }
        self.commit(&mut state, res, key, Some(obj), EventType::Added, rv)
    }

    /// Replaces an object (or only its status). A non-empty `metadata.resourceVersion` in `obj`
    /// is a precondition (409 Conflict when stale). A write that changes nothing is a no-op and
    /// keeps the resourceVersion, as in Kubernetes, so controllers never loop on their own writes.
    pub fn update(
        &self,
        res: &'static ResourceDef,
        obj: Object,
        sub: Subresource,
        dry_run: bool,
    ) -> Result<Arc<Value>, StoreError> {
        let obj = obj.into_value();
        let mut state = self.write();
        let key = key_of(res, meta::namespace(&obj), meta::name(&obj));
        let old = existing(&state, res, &key)?;
        if let Some(want) = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            if !want.is_empty()
                && Some(want)
                    != old
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
            {
                return Err(StoreError::Conflict {
                    resource: res.qualified_plural(),
                    name: key.1,
                    reason: "the object has been modified; please apply your changes to the latest version and try again".into(),
                });
            }
        }
        let new = merge_for_update(res, &old, obj, sub);
        self.commit_update(&mut state, res, key, &old, new, dry_run)
    }

    /// Read-modify-write without a precondition, for in-process controllers: `f` edits a copy
    /// of the current object and the result is written as an update of `sub`.
    pub fn modify(
        &self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
        sub: Subresource,
        f: impl FnOnce(&mut Value),
    ) -> Result<Arc<Value>, StoreError> {
        let mut state = self.write();
        let key = key_of(res, ns, name);
        let old = existing(&state, res, &key)?;
        let mut edited = (*old).clone();
        f(&mut edited);
        if !edited.is_object() {
            // In-process callers only; an edit that is no object changes nothing.
            tracing::warn!(kind = res.kind, ns, name, "an edit left no object; ignored");
            return Ok(old);
        }
        let new = merge_for_update(res, &old, edited, sub);
        self.commit_update(&mut state, res, key, &old, new, false)
    }

    /// Deletes an object. Objects with finalizers, and namespaces, only become terminating
    /// (`deletionTimestamp` set); a namespace's contents are removed shortly after, then the
    /// namespace itself, each with a DELETED event. Objects owned (ownerReferences) by a deleted
    /// object are deleted too, as Kubernetes' background garbage collector does.
    pub fn delete(
        &self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
        dry_run: bool,
    ) -> Result<Deleted, StoreError> {
        self.delete_with(res, ns, name, dry_run, Propagation::Background)
    }

    /// Deletes an object with a propagation policy, as the garbage collector carries it out
    /// (pkg/controller/garbagecollector), only at once: `Background` deletes the object, then
    /// its dependents; `Foreground` marks it (deletionTimestamp and the `foregroundDeletion`
    /// finalizer), deletes its dependents, then the object; `Orphan` removes its
    /// ownerReferences from the dependents, which stay, then deletes the object.
    pub fn delete_with(
        &self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
        dry_run: bool,
        propagation: Propagation,
    ) -> Result<Deleted, StoreError> {
        if !dry_run && propagation != Propagation::Background {
            let owner = self
                .get(res, ns, name)
                .ok_or_else(|| StoreError::NotFound {
                    resource: res.qualified_plural(),
                    name: name.to_string(),
                })?;
            let uid = meta::uid(&owner).to_string();
            match propagation {
                Propagation::Orphan => self.orphan_dependents(ns, &uid),
                Propagation::Foreground => {
                    // The finalizer first, so the delete below only marks the object.
                    self.modify(res, ns, name, Subresource::Main, |o| {
                        let fins = meta::child_list(meta::metadata_mut(o), "finalizers");
                        if !fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
                            fins.push(json!(FOREGROUND_FINALIZER));
                        }
                    })?;
                    let marked = match self.delete_now(res, ns, name, false, false)? {
                        Deleted::Gone(o) | Deleted::Terminating(o) => o,
                    };
                    self.collect_dependents(ns, &uid);
                    // Dependents are gone: dropping the finalizer completes the delete unless
                    // other finalizers still hold the object.
                    let _ = self.modify(res, ns, name, Subresource::Main, |o| {
                        if let Some(list) = o
                            .pointer_mut("/metadata/finalizers")
                            .and_then(Value::as_array_mut)
                        {
                            list.retain(|f| f != FOREGROUND_FINALIZER);
                        }
                    });
                    return Ok(Deleted::Terminating(marked));
                }
                Propagation::Background => {}
            }
        }
        self.delete_now(res, ns, name, dry_run, propagation != Propagation::Orphan)
    }

    /// Removes the owner reference to `owner_uid` from every object in `ns` that has one.
    fn orphan_dependents(&self, ns: &str, owner_uid: &str) {
        for (r, name) in self.dependents_of(ns, owner_uid) {
            let _ = self.modify(r, ns, &name, Subresource::Main, |o| {
                if let Some(refs) = o
                    .pointer_mut("/metadata/ownerReferences")
                    .and_then(Value::as_array_mut)
                {
                    refs.retain(|x| x.get("uid").and_then(Value::as_str) != Some(owner_uid));
                }
                if o.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|r| r.is_empty())
                {
                    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
                        m.remove("ownerReferences");
                    }
                }
            });
        }
    }

    fn delete_now(
        &self,
        res: &'static ResourceDef,
        ns: &str,
        name: &str,
        dry_run: bool,
        cascade: bool,
    ) -> Result<Deleted, StoreError> {
        let mut state = self.write();
        let key = key_of(res, ns, name);
        let old = existing(&state, res, &key)?;
        let is_ns = std::ptr::eq(res, kinds::namespaces());
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if is_ns || has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(Deleted::Terminating(old));
            }
            let mut new = (*old).clone();
            meta::metadata_mut(&mut new).insert(
                "deletionTimestamp".into(),
                Value::String(meta::now_rfc3339()),
            );
            if is_ns {
                new["status"] = json!({"phase": "Terminating"});
            }
            let rv = state.rv + 1;
            meta::metadata_mut(&mut new)
                .insert("resourceVersion".into(), Value::String(rv.to_string()));
            let new = Arc::new(new);
            if dry_run {
                return Ok(Deleted::Terminating(new));
            }
            let new = self.commit(&mut state, res, key, Some(new), EventType::Modified, rv)?;
            drop(state);
            if is_ns {
                self.finish_namespace(name.to_string());
            }
            return Ok(Deleted::Terminating(new));
        }
        if dry_run {
            return Ok(Deleted::Gone(old));
        }
        let gone = self.remove_locked(&mut state, res, key)?;
        let owner_uid = meta::uid(&old).to_string();
        drop(state);
        if cascade {
            self.collect_dependents(ns, &owner_uid);
        }
        Ok(Deleted::Gone(gone))
    }

    // === internals ===

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.shared.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.shared.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn commit_update(
        &self,
        state: &mut State,
        res: &'static ResourceDef,
        key: Key,
        old: &Arc<Value>,
        mut new: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, StoreError> {
        if new == **old {
            return Ok(old.clone());
        }
        if spec_of(res, &new) != spec_of(res, old) {
            let g = meta::generation(old) + 1;
            meta::metadata_mut(&mut new).insert("generation".into(), json!(g));
        }
        let rv = state.rv + 1;
        meta::metadata_mut(&mut new)
            .insert("resourceVersion".into(), Value::String(rv.to_string()));
        let terminating = new.pointer("/metadata/deletionTimestamp").is_some();
        let finalized = new
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        let new = Arc::new(new);
        if dry_run {
            return Ok(new);
        }
        // The last finalizer removed from a terminating object completes its deletion
        // (namespaces complete through their own drain instead).
        if terminating && finalized && !std::ptr::eq(res, kinds::namespaces()) {
            return self.remove_locked(state, res, key);
        }
        self.commit(state, res, key, Some(new), EventType::Modified, rv)
    }

    fn remove_locked(
        &self,
        state: &mut State,
        res: &'static ResourceDef,
        key: Key,
    ) -> Result<Arc<Value>, StoreError> {
        let rv = state.rv + 1;
        self.commit(state, res, key, None, EventType::Deleted, rv)
    }

    /// Writes one change to memory and disk and publishes it. `obj = None` removes the key.
    /// Returns the object the event carries (for a removal: the last state with the new rv).
    fn commit(
        &self,
        state: &mut State,
        res: &'static ResourceDef,
        key: Key,
        obj: Option<Arc<Value>>,
        type_: EventType,
        rv: u64,
    ) -> Result<Arc<Value>, StoreError> {
        let map = state.map_mut(res);
        let (event_obj, size) = match &obj {
            Some(o) => {
                let size = self.shared.disk.put(res, &key.0, &key.1, o, rv)?;
                map.insert(key, o.clone());
                (o.clone(), size)
            }
            None => {
                self.shared.disk.remove(res, &key.0, &key.1, rv)?;
                let last = map.remove(&key).unwrap_or_else(|| Arc::new(Value::Null));
                let size = meta::approx_size(&last);
                self.shared.disk.note_freed(size);
                let mut last = (*last).clone();
                if last.is_object() {
                    meta::metadata_mut(&mut last)
                        .insert("resourceVersion".into(), Value::String(rv.to_string()));
                }
                (Arc::new(last), size)
            }
        };
        state.rv = rv;
        let event = Arc::new(WatchEvent {
            type_,
            resource: res,
            object: event_obj.clone(),
            rv,
        });
        while !state.history.is_empty()
            && (state.history.len() >= HISTORY || state.history_bytes + size > HISTORY_BYTES)
        {
            if let Some(old) = state.history.pop_front() {
                state.history_floor = old.rv;
            }
            let freed = state.history_sizes.pop_front().unwrap_or(0);
            state.history_bytes -= freed.min(state.history_bytes);
            self.shared.disk.note_freed(freed);
        }
        state.history.push_back(event.clone());
        state.history_sizes.push_back(size);
        state.history_bytes += size;
        // No receivers is fine: nobody is watching.
        let _ = self.shared.events.send(event);
        Ok(event_obj)
    }

    /// Deletes every object whose ownerReferences name `owner_uid` (recursively).
    fn collect_dependents(&self, ns: &str, owner_uid: &str) {
        for (r, name) in self.dependents_of(ns, owner_uid) {
            // Already gone (a concurrent delete) is fine.
            let _ = self.delete(r, ns, &name, false);
        }
    }

    /// The objects in `ns` whose ownerReferences name `owner_uid`.
    fn dependents_of(&self, ns: &str, owner_uid: &str) -> Vec<(&'static ResourceDef, String)> {
        let mut dependents = Vec::new();
        if owner_uid.is_empty() {
            return dependents;
        }
        {
            let state = self.read();
            for (r, map) in state.maps() {
                if !r.namespaced {
                    continue;
                }
                for obj in map.values().filter(|o| meta::namespace(o) == ns) {
                    let owned = obj
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter()
                                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner_uid))
                        });
                    if owned {
                        dependents.push((r, meta::name(obj).to_string()));
                    }
                }
            }
        }
        dependents
    }

    /// Removes a terminating namespace's contents, then the namespace, shortly after the
    /// delete was acknowledged, so `kubectl delete -f` of a file that starts with its namespace
    /// can still delete the objects that follow (kubectl-contract §9, item 35).
    fn finish_namespace(&self, ns: String) {
        let store = self.clone();
        let run = move || {
            for r in crate::resources::all().into_iter().filter(|r| r.namespaced) {
                for obj in store.list(r, Some(&ns)).0 {
                    let _ = store.delete(r, &ns, meta::name(&obj), false);
                }
            }
            let mut state = store.write();
            let key = key_of(kinds::namespaces(), "", &ns);
            if state
                .map(kinds::namespaces())
                .is_some_and(|m| m.contains_key(&key))
            {
                if let Err(err) = store.remove_locked(&mut state, kinds::namespaces(), key) {
                    tracing::error!(namespace = %ns, cause = %err, "failed to remove namespace");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    run();
                });
            }
            Err(_) => run(),
        }
    }
}

/// The stored object at `key`, or NotFound naming it as kube-apiserver does.
fn existing(state: &State, res: &'static ResourceDef, key: &Key) -> Result<Arc<Value>, StoreError> {
    state
        .map(res)
        .and_then(|m| m.get(key))
        .cloned()
        .ok_or_else(|| StoreError::NotFound {
            resource: res.qualified_plural(),
            name: key.1.clone(),
        })
}

/// Builds the object an update writes: `sub` decides whether the main resource or only `status`
/// comes from `new`; identity and server-owned metadata always come from `old`.
fn merge_for_update(res: &ResourceDef, old: &Value, new: Value, sub: Subresource) -> Value {
    let mut out = match sub {
        Subresource::Status => {
            let mut out = old.clone();
            match new.get("status") {
                Some(s) => {
                    out["status"] = s.clone();
                }
                None => {
                    if let Some(o) = out.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            out
        }
        Subresource::Main => {
            let mut out = new;
            if res.has_status {
                match old.get("status") {
                    Some(s) => out["status"] = s.clone(),
                    None => {
                        if let Some(o) = out.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
            out
        }
    };
    let old_md = old.get("metadata").cloned().unwrap_or_default();
    let md = meta::metadata_mut(&mut out);
    for k in [
        "uid",
        "creationTimestamp",
        "generation",
        "resourceVersion",
        "namespace",
        "name",
    ] {
        match old_md.get(k) {
            Some(v) => {
                md.insert(k.into(), v.clone());
            }
            None => {
                md.remove(k);
            }
        }
    }
    // deletionTimestamp can be set only by delete, never cleared by an update.
    match old_md.get("deletionTimestamp") {
        Some(v) => {
            md.insert("deletionTimestamp".into(), v.clone());
        }
        None => {
            md.remove("deletionTimestamp");
        }
    }
    out
}

/// The part of an object whose change bumps `generation`: `spec`, or for kinds without one
/// (ConfigMap, Secret, ...) everything but metadata and status.
fn spec_of(res: &ResourceDef, obj: &Value) -> Value {
    if let Some(spec) = obj.get("spec") {
        return spec.clone();
    }
    if res.has_status && obj.get("status").is_some() && obj.get("spec").is_none() {
        return Value::Null;
    }
    let mut rest: Map<String, Value> = obj.as_object().cloned().unwrap_or_default();
    rest.remove("metadata");
    rest.remove("status");
    Value::Object(rest)
}

/// Lower-case alphanumerics as Kubernetes uses for generated names (no vowels, to avoid words;
/// k8s.io/apimachinery/pkg/util/rand).
pub fn random_suffix(n: usize) -> String {
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHANUMS[fastrand::usize(..ALPHANUMS.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests;
