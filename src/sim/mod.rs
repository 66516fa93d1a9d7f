//! The workload simulator: plays kube-controller-manager (Deployments, ReplicaSets, Endpoints,
//! EndpointSlices) and the kubelet (Pods that really answer on their own loopback address).
//!
//! Level-based, like a kubelet simulator (kwok): every burst of store events triggers one pass
//! that recomputes what should exist from what does, and writes only the differences. Pod
//! addresses come from 127.10.0.0/16 (Linux routes all of 127.0.0.0/8 to `lo`, so no setup is
//! needed) and are kept in `status.podIP`, so a restarted sandbox serves each pod at the same
//! address.
//!
//! - [`apps`]: the built-in apps a simulated Pod serves (echo-basic, the WebSocket test backend).
//! - [`workloads`]: Deployment → ReplicaSet → Pod rules (pure).
//! - [`endpoints`]: Service → Endpoints/EndpointSlice (pure).
//! - [`kubelet`]: running pods, probes, faults; [`process`]: user commands; [`logs`]: their output.

pub mod apps;
pub mod endpoints;
pub mod kubelet;
pub mod logs;
pub mod process;
pub mod signal;
pub mod workloads;
pub mod wsecho;

use crate::events::{self, EventKind, Involved};
use crate::meta::{self, Object};
use crate::resources::{kinds, ResourceDef};
use crate::store::{Store, Subresource};
use kubelet::RunningPod;
use logs::LogBook;
use serde_json::{json, Value};
use signal::Signal;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

/// First address of the pod range (documented in the README).
pub const POD_RANGE_START: Ipv4Addr = Ipv4Addr::new(127, 10, 0, 1);

/// Checks that this host routes extra loopback addresses (Linux does; some hosts don't), so the
/// sandbox can say what is wrong at start instead of pods failing one by one.
pub fn check_loopback_range() -> Result<(), String> {
    std::net::TcpListener::bind((POD_RANGE_START, 0)).map(drop).map_err(|e| {
        format!(
            "cannot bind {POD_RANGE_START}: {e}; simulated pods need the 127.0.0.0/8 loopback range: pass --shared-pod-ip to run every pod on 127.0.0.1 with allocated ports instead"
        )
    })
}

/// Starts the simulator. Returns the log book (for `kubectl logs`) and the task.
pub fn spawn(
    store: Store,
    shared_ip: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> (Arc<LogBook>, tokio::task::JoinHandle<()>) {
    let logs = Arc::new(LogBook::default());
    let task = tokio::spawn(run(store, logs.clone(), shared_ip, shutdown));
    (logs, task)
}

fn relevant(res: &ResourceDef) -> bool {
    [
        kinds::deployments(),
        kinds::replicasets(),
        kinds::pods(),
        kinds::services(),
        kinds::endpointslices(),
    ]
    .iter()
    .any(|r| std::ptr::eq(*r, res))
}

async fn run(
    store: Store,
    logs: Arc<LogBook>,
    shared_ip: bool,
    shutdown: impl Future<Output = ()>,
) {
    let (signals, mut signal_rx) = mpsc::unbounded_channel();
    let mut sim = Sim {
        store: store.clone(),
        logs,
        signals,
        pods: HashMap::new(),
        created: HashMap::new(),
        next_seq: 0,
        shared_ip,
        next_ip: 0,
    };
    let mut live = match store.watch(None, Some(store.resource_version())) {
        Ok(w) => w.live,
        Err(e) => {
            tracing::error!(cause = %e, "workload simulator could not watch the store");
            return;
        }
    };
    tokio::pin!(shutdown);
    sim.reconcile();
    // Containers that could not start (an address still in use) are retried every second.
    let mut retry = tokio::time::interval(Duration::from_secs(1));
    loop {
        let dirty;
        tokio::select! {
            _ = &mut shutdown => break,
            _ = retry.tick() => dirty = sim.retry_failed(),
            ev = live.recv() => match ev {
                Ok(e) => dirty = relevant(e.resource),
                Err(RecvError::Lagged(_)) => dirty = true,
                Err(RecvError::Closed) => break,
            },
            Some(sig) = signal_rx.recv() => {
                sim.on_signal(sig);
                dirty = true;
            }
        }
        if !dirty {
            continue;
        }
        // Coalesce a burst (an apply of a whole file, a scale to 100) into one pass.
        tokio::time::sleep(Duration::from_millis(2)).await;
        while let Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) =
            live.try_recv()
        {}
        while let Ok(sig) = signal_rx.try_recv() {
            sim.on_signal(sig);
        }
        sim.reconcile();
    }
    // Dropping the pods stops their listeners, probes and processes.
    sim.pods.clear();
}

struct Sim {
    store: Store,
    logs: Arc<LogBook>,
    signals: mpsc::UnboundedSender<Signal>,
    /// Running pods by uid.
    pods: HashMap<String, RunningPod>,
    /// The order in which this process first saw each pod (by uid), to tell apart pods created
    /// within the same second when scaling down.
    created: HashMap<String, u64>,
    next_seq: u64,
    /// `--shared-pod-ip`: every pod on 127.0.0.1, ports allocated per pod.
    shared_ip: bool,
    /// Next-fit cursor into the pod range, so a freed address is not handed out again at once
    /// (its old listener may still be closing).
    next_ip: usize,
}

fn live(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_none()
}

impl Sim {
    fn on_signal(&mut self, sig: Signal) {
        let uid = match &sig {
            Signal::Readiness { uid, .. }
            | Signal::LivenessFailed { uid, .. }
            | Signal::Exited { uid, .. }
            | Signal::Started { uid, .. } => uid.clone(),
        };
        let Some(pod) = self.pods.get_mut(&uid) else {
            return;
        };
        if let Some((kind, reason, message)) =
            pod.on_signal(&sig, &self.store, &self.logs, &self.signals)
        {
            let on = Involved {
                res: kinds::pods(),
                namespace: &pod.namespace,
                name: &pod.name,
                uid: &pod.uid,
            };
            events::record(&self.store, &on, kind, &reason, &message, "kubelet");
        }
    }

    /// Retries containers that failed to start; returns whether anything changed.
    fn retry_failed(&mut self) -> bool {
        let mut changed = false;
        for p in self.pods.values_mut() {
            changed |= p.retry_failed(&self.logs, &self.signals);
        }
        changed
    }

    fn reconcile(&mut self) {
        self.deployments();
        self.replicasets();
        self.kubelet();
        self.services();
    }

    fn pods_owned_by(pods: &[Arc<Value>], uid: &str) -> Vec<Arc<Value>> {
        pods.iter()
            .filter(|p| live(p) && workloads::owned_by(p, uid))
            .cloned()
            .collect()
    }

    fn deployments(&mut self) {
        let store = self.store.clone();
        let (deploys, _) = store.list(kinds::deployments(), None);
        let (mut sets, _) = store.list(kinds::replicasets(), None);
        let (pods, _) = store.list(kinds::pods(), None);
        for d in deploys.iter().filter(|d| live(d)) {
            let hash = workloads::template_hash(&d["spec"]["template"]);
            let ns = meta::namespace(d);
            // The current ReplicaSet is the one whose template is the Deployment's (so a
            // rollback revives the old one), else a new one named by the template's hash.
            let new_name = sets
                .iter()
                .find(|r| {
                    live(r)
                        && workloads::owned_by(r, meta::uid(d))
                        && workloads::template_matches(r, d)
                })
                .map(|r| meta::name(r).to_string())
                .unwrap_or_else(|| format!("{}-{hash}", meta::name(d)));
            if !sets
                .iter()
                .any(|r| meta::namespace(r) == ns && meta::name(r) == new_name)
            {
                // Start at 0 (or the full count when nothing ran before); the rollout sizes it.
                let has_old = sets.iter().any(|r| workloads::owned_by(r, meta::uid(d)));
                let max_old = sets
                    .iter()
                    .filter(|r| workloads::owned_by(r, meta::uid(d)))
                    .map(|r| workloads::revision(r))
                    .max()
                    .unwrap_or(0);
                let replicas = if has_old {
                    0
                } else {
                    d.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                };
                match store.create(
                    kinds::replicasets(),
                    workloads::desired_replicaset(d, &hash, replicas, max_old),
                    false,
                ) {
                    Ok(rs) => sets.push(rs),
                    Err(e) => {
                        tracing::warn!(deployment = %meta::name(d), cause = %e, "failed to create a ReplicaSet");
                        continue;
                    }
                }
            }
            let owned: Vec<&Arc<Value>> = sets
                .iter()
                .filter(|r| workloads::owned_by(r, meta::uid(d)))
                .collect();
            self.sync_revisions(d, &owned, &new_name);
            let counts = |rs: &Value| {
                let ps = Self::pods_owned_by(&pods, meta::uid(rs));
                let ready = ps.iter().filter(|p| workloads::pod_ready(p)).count() as i64;
                (ps.len() as i64, ready)
            };
            let Some(new_rs) = owned.iter().find(|r| meta::name(r) == new_name) else {
                continue;
            };
            let (new_cur, new_ready) = counts(new_rs);
            let olds: Vec<(&Value, i64, i64)> = owned
                .iter()
                .filter(|r| meta::name(r) != new_name)
                .map(|r| {
                    let (c, rd) = counts(r);
                    (&***r, c, rd)
                })
                .collect();
            let step = workloads::rollout(d, (new_rs, new_cur, new_ready), &olds);
            let set_replicas = |name: &str, n: i64| {
                let cur = owned
                    .iter()
                    .find(|r| meta::name(r) == name)
                    .and_then(|r| r.pointer("/spec/replicas"))
                    .and_then(Value::as_i64);
                if cur != Some(n) {
                    if let Err(e) =
                        store.modify(kinds::replicasets(), ns, name, Subresource::Main, |o| {
                            o["spec"]["replicas"] = json!(n)
                        })
                    {
                        tracing::warn!(replicaset = %name, cause = %e, "failed to scale");
                    }
                }
            };
            set_replicas(&new_name, step.new_replicas);
            for (name, n) in &step.old_replicas {
                set_replicas(name, *n);
            }
            let total: i64 = new_cur + olds.iter().map(|o| o.1).sum::<i64>();
            let ready_total: i64 = new_ready + olds.iter().map(|o| o.2).sum::<i64>();
            let status = workloads::deployment_status(
                d,
                (&new_name, new_cur, new_ready),
                total,
                ready_total,
                Some(d),
            );
            write_status(&store, kinds::deployments(), d, status);
        }
    }

    /// Keeps the revision annotations as kube-controller-manager does: the current ReplicaSet
    /// one above its predecessors (so `kubectl rollout history` lists them and `rollout undo`
    /// finds them), and the Deployment carrying its current ReplicaSet's revision.
    fn sync_revisions(&self, d: &Value, owned: &[&Arc<Value>], new_name: &str) {
        let ns = meta::namespace(d);
        let Some(new_rs) = owned.iter().find(|r| meta::name(r) == new_name) else {
            return;
        };
        let max_old = owned
            .iter()
            .filter(|r| meta::name(r) != new_name)
            .map(|r| workloads::revision(r))
            .max()
            .unwrap_or(0);
        let want = workloads::replicaset_annotations(d, Some(new_rs), max_old);
        let revision = want
            .get(workloads::REVISION)
            .cloned()
            .unwrap_or_else(|| json!("1"));
        if new_rs
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            != Some(&want)
        {
            if let Err(e) =
                self.store
                    .modify(kinds::replicasets(), ns, new_name, Subresource::Main, |o| {
                        o["metadata"]["annotations"] = Value::Object(want)
                    })
            {
                tracing::warn!(replicaset = %new_name, cause = %e, "failed to set its revision");
            }
        }
        if d.pointer("/metadata/annotations/deployment.kubernetes.io~1revision") != Some(&revision)
        {
            if let Err(e) = self.store.modify(
                kinds::deployments(),
                ns,
                meta::name(d),
                Subresource::Main,
                |o| {
                    let m = meta::metadata_mut(o);
                    meta::child_map(m, "annotations")
                        .insert(workloads::REVISION.into(), revision.clone());
                },
            ) {
                tracing::warn!(deployment = %meta::name(d), cause = %e, "failed to set its revision");
            }
        }
    }

    fn replicasets(&mut self) {
        let store = self.store.clone();
        let (sets, _) = store.list(kinds::replicasets(), None);
        let (pods, _) = store.list(kinds::pods(), None);
        for rs in sets.iter().filter(|r| live(r)) {
            let owned = Self::pods_owned_by(&pods, meta::uid(rs));
            let diff = workloads::replicaset_diff(rs, owned.len());
            let ns = meta::namespace(rs);
            if diff > 0 {
                for _ in 0..diff {
                    let pod = workloads::new_pod(rs, &crate::store::random_suffix(5));
                    let created = store.create(kinds::pods(), pod, false);
                    if let Ok(p) = &created {
                        self.next_seq += 1;
                        self.created.insert(meta::uid(p).to_string(), self.next_seq);
                    }
                    if let Err(e) = created {
                        tracing::warn!(replicaset = %meta::name(rs), cause = %e, "failed to create a pod");
                        let on = Involved {
                            res: kinds::replicasets(),
                            namespace: ns,
                            name: meta::name(rs),
                            uid: meta::uid(rs),
                        };
                        events::record(
                            &store,
                            &on,
                            EventKind::Warning,
                            "FailedCreate",
                            &format!("Error creating: {e}"),
                            "replicaset-controller",
                        );
                        break;
                    }
                }
            } else if diff < 0 {
                let refs: Vec<&Value> = owned.iter().map(|p| &**p).collect();
                let created = |p: &Value| self.created.get(meta::uid(p)).copied().unwrap_or(0);
                for p in workloads::pods_to_delete(&refs, (-diff) as usize, &created) {
                    let _ = store.delete(kinds::pods(), ns, meta::name(p), false);
                }
            }
            let owned = Self::pods_owned_by(&store.list(kinds::pods(), Some(ns)).0, meta::uid(rs));
            let refs: Vec<&Value> = owned.iter().map(|p| &**p).collect();
            let status = workloads::replicaset_status(rs, &refs);
            write_status(&store, kinds::replicasets(), rs, status);
        }
    }

    /// Starts pods that should run, stops pods that are gone, writes pod status.
    fn kubelet(&mut self) {
        let store = self.store.clone();
        let (pods, _) = store.list(kinds::pods(), None);
        let (services, _) = store.list(kinds::services(), None);
        let mut used: HashSet<Ipv4Addr> = self.pods.values().map(|p| p.ip).collect();
        let alive: HashSet<&str> = pods
            .iter()
            .filter(|p| live(p))
            .map(|p| meta::uid(p))
            .collect();
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !alive.contains(uid.as_str()))
            .cloned()
            .collect();
        for uid in gone {
            self.created.remove(&uid);
            if let Some(p) = self.pods.remove(&uid) {
                used.remove(&p.ip);
                self.logs.forget(&format!("{}/{}", p.namespace, p.name));
            }
        }
        // Addresses already recorded in the store stay with their pods (also across restarts).
        for p in pods.iter() {
            if let Some(ip) = p
                .pointer("/status/podIP")
                .and_then(Value::as_str)
                .and_then(|s| s.parse().ok())
            {
                if !self.pods.contains_key(meta::uid(p)) {
                    used.insert(ip);
                }
            }
        }
        for pod in pods.iter().filter(|p| live(p)) {
            let uid = meta::uid(pod).to_string();
            if !self.pods.contains_key(&uid) {
                let service_ports: Vec<i64> = services
                    .iter()
                    .filter(|s| endpoints::selects(s, pod))
                    .flat_map(|s| endpoints::target_ports(s, pod))
                    .collect();
                let recorded: Option<Ipv4Addr> = pod
                    .pointer("/status/podIP")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok());
                let ip = match recorded
                    .filter(|ip| in_pod_range(*ip) && !self.pods.values().any(|p| p.ip == *ip))
                    .or(self.shared_ip.then_some(Ipv4Addr::LOCALHOST))
                {
                    Some(ip) => ip,
                    None => {
                        // Skip addresses where another program (another sandbox, say) already
                        // listens on this pod's ports.
                        let ports = kubelet::planned_ports(pod, &service_ports);
                        let mut found = None;
                        for _ in 0..64 {
                            match allocate(&used, &mut self.next_ip) {
                                Some(ip) if kubelet::ports_free(ip, &ports) => {
                                    found = Some(ip);
                                    break;
                                }
                                Some(ip) => {
                                    used.insert(ip);
                                }
                                None => break,
                            }
                        }
                        match found {
                            Some(ip) => ip,
                            None => {
                                tracing::error!(pod = %meta::name(pod), "no free address in the pod range 127.10.0.0/16");
                                continue;
                            }
                        }
                    }
                };
                used.insert(ip);
                let running = kubelet::start(
                    &store,
                    pod,
                    ip,
                    self.shared_ip,
                    &service_ports,
                    &self.logs,
                    &self.signals,
                );
                self.pods.insert(uid.clone(), running);
            }
            let running = self.pods.get_mut(&uid).expect("just ensured");
            let fault = meta::annotation(pod, kubelet::FAULT_ANNOTATION).unwrap_or("");
            if let Some(err) = running.set_fault(fault, &store, &self.logs, &self.signals) {
                let on = Involved {
                    res: kinds::pods(),
                    namespace: meta::namespace(pod),
                    name: meta::name(pod),
                    uid: &uid,
                };
                events::record(
                    &store,
                    &on,
                    EventKind::Warning,
                    "InvalidFault",
                    &err,
                    "agc-sandbox",
                );
            }
            if let Some(ports) = running.ports_annotation() {
                if meta::annotation(pod, endpoints::PORTS_ANNOTATION) != Some(ports.as_str()) {
                    let _ = store.modify(
                        kinds::pods(),
                        meta::namespace(pod),
                        meta::name(pod),
                        Subresource::Main,
                        |o| {
                            meta::child_map(meta::metadata_mut(o), "annotations")
                                .insert(endpoints::PORTS_ANNOTATION.into(), json!(ports));
                        },
                    );
                }
            }
            let status = running.status(pod);
            write_status(&store, kinds::pods(), pod, status);
        }
    }

    /// Keeps Endpoints and EndpointSlices of selector Services current.
    fn services(&mut self) {
        let store = self.store.clone();
        let (services, _) = store.list(kinds::services(), None);
        let (pods, _) = store.list(kinds::pods(), None);
        let pod_refs: Vec<&Value> = pods.iter().map(|p| &**p).collect();
        let mut wanted_slices: HashSet<(String, String)> = HashSet::new();
        for svc in services
            .iter()
            .filter(|s| live(s) && endpoints::has_selector(s))
        {
            let (ep, slices) = endpoints::build(svc, &pod_refs);
            upsert(&store, kinds::endpoints(), ep, &["subsets"]);
            for slice in slices {
                wanted_slices.insert((
                    meta::namespace(svc).to_string(),
                    meta::name(&slice).to_string(),
                ));
                upsert(
                    &store,
                    kinds::endpointslices(),
                    slice,
                    &["addressType", "endpoints", "ports"],
                );
            }
        }
        // Slices we manage whose Service lost its selector (user-written slices are left alone).
        for s in store.list(kinds::endpointslices(), None).0.iter() {
            let ours = meta::label(s, endpoints::MANAGED_BY_LABEL) == Some(endpoints::MANAGED_BY);
            if ours
                && !wanted_slices
                    .contains(&(meta::namespace(s).to_string(), meta::name(s).to_string()))
            {
                let _ = store.delete(
                    kinds::endpointslices(),
                    meta::namespace(s),
                    meta::name(s),
                    false,
                );
            }
        }
    }
}

/// Creates `want` or updates the listed top-level fields (plus labels and owners) of the live one.
fn upsert(store: &Store, res: &'static ResourceDef, want: Value, fields: &[&str]) {
    let (ns, name) = (
        meta::namespace(&want).to_string(),
        meta::name(&want).to_string(),
    );
    let result = match store.get(res, &ns, &name) {
        None => match Object::new(want) {
            Ok(want) => store.create(res, want, false).map(drop),
            Err(_) => return,
        },
        Some(cur) => {
            let differs = fields.iter().any(|f| cur.get(*f) != want.get(*f))
                || cur.pointer("/metadata/labels") != want.pointer("/metadata/labels");
            if !differs {
                return;
            }
            store
                .modify(res, &ns, &name, Subresource::Main, |o| {
                    for f in fields {
                        match want.get(*f) {
                            Some(v) => o[*f] = v.clone(),
                            None => {
                                if let Some(m) = o.as_object_mut() {
                                    m.remove(*f);
                                }
                            }
                        }
                    }
                    o["metadata"]["labels"] = want["metadata"]["labels"].clone();
                    o["metadata"]["ownerReferences"] = want["metadata"]["ownerReferences"].clone();
                })
                .map(drop)
        }
    };
    if let Err(e) = result {
        tracing::warn!(kind = res.kind, namespace = %ns, name = %name, cause = %e, "failed to write endpoints");
    }
}

fn in_pod_range(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    o[0] == 127 && o[1] == 10 && o[3] != 0 && o[3] != 255
}

const POD_RANGE_SIZE: usize = 256 * 254;

fn pod_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, (i / 254) as u8, (i % 254 + 1) as u8)
}

/// The next free address in 127.10.0.0/16 after `cursor` (skipping .0 and .255 in the last
/// octet), advancing the cursor.
fn allocate(used: &HashSet<Ipv4Addr>, cursor: &mut usize) -> Option<Ipv4Addr> {
    (0..POD_RANGE_SIZE)
        .map(|k| (*cursor + k) % POD_RANGE_SIZE)
        .find(|i| !used.contains(&pod_ip(*i)))
        .map(|i| {
            *cursor = (i + 1) % POD_RANGE_SIZE;
            pod_ip(i)
        })
}

/// Writes `status` to `obj`'s status subresource when it differs from the current one.
fn write_status(store: &Store, res: &'static ResourceDef, obj: &Value, status: Value) {
    if obj.get("status") != Some(&status) {
        let _ = store.modify(
            res,
            meta::namespace(obj),
            meta::name(obj),
            Subresource::Status,
            |o| o["status"] = status,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_is_next_fit_and_skips_used_addresses() {
        let mut used = HashSet::new();
        let mut cursor = 0;
        assert_eq!(
            allocate(&used, &mut cursor),
            Some(Ipv4Addr::new(127, 10, 0, 1))
        );
        // .1 was released, but the next allocation moves on rather than reusing it at once.
        used.insert(Ipv4Addr::new(127, 10, 0, 2));
        assert_eq!(
            allocate(&used, &mut cursor),
            Some(Ipv4Addr::new(127, 10, 0, 3))
        );
        let mut cursor = 250;
        assert_eq!(
            allocate(&used, &mut cursor),
            Some(Ipv4Addr::new(127, 10, 0, 251))
        );
        let mut cursor = 254;
        assert_eq!(
            allocate(&used, &mut cursor),
            Some(Ipv4Addr::new(127, 10, 1, 1))
        );
    }

    #[test]
    fn pod_range_excludes_network_and_broadcast_octets() {
        assert!(in_pod_range(Ipv4Addr::new(127, 10, 3, 7)));
        assert!(!in_pod_range(Ipv4Addr::new(127, 10, 3, 0)));
        assert!(!in_pod_range(Ipv4Addr::new(127, 20, 0, 1)));
    }
}
