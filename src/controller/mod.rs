//! The AGC controller: a level-based reconciler from store objects to status and the routing
//! table.
//!
//! # Design
//!
//! Every watch event (and every bind report from the proxy) marks the world dirty. Events that
//! arrive within [`COALESCE`] of each other are coalesced; then the controller takes a
//! [`Snapshot`] of every kind it reads and runs the pure [`compute`] over all of it. There is no
//! per-object work queue and no dependency mapping to get wrong: a change to a Service,
//! EndpointSlice, Secret, ReferenceGrant, Namespace label, policy or Pod re-evaluates everything
//! that could depend on it, by construction. The recompute is linear in the number of objects
//! (hash-map lookups, no nested scans over routes).
//!
//! Evaluating a route (compiling its rules, building its status JSON) is most of a pass, so the
//! runner keeps a [`RouteMemo`] across passes: a route whose uid and resourceVersion are
//! unchanged, and whose recorded inputs (its Services, Namespace, parent Gateways' listeners,
//! RoutePolicy effect, every ReferenceGrant) are unchanged, reuses the last result — the same
//! `Arc<RouteRuntime>`s and the same status — instead of being evaluated again. Only results
//! that did not depend on the clock are kept, so [`compute_with`] returns exactly what
//! [`compute`] returns for the same snapshot; statuses known to equal the snapshot object's
//! status are skipped by [`apply`] without reading or comparing them.
//!
//! [`apply`] then publishes the table when its content changed (bumping `version`), writes only
//! the statuses that changed (ignoring `lastTransitionTime`; [`compute`] already keeps the old
//! time when a condition's status did not flip), and records v1 Events when an object stops being
//! Accepted. Our own status writes come back as watch events; they are recognised by their
//! resourceVersion and skipped, so a pass never triggers another one by itself.

mod backends;
pub mod compute;
pub mod model;
mod routes;
pub mod snapshot;
mod util;

#[cfg(test)]
mod tests;

pub use compute::{compute, compute_with};
pub use model::{
    EventNote, Outcome, StatusWrite, CONTROLLER_NAME, DEFAULT_CLASS, PROGRAMMED_MESSAGE,
};
pub use routes::RouteMemo;
pub use snapshot::Snapshot;

use serde_json::Value;
use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, watch};

use crate::meta;
use crate::resources::kinds;
use crate::routing::{Bindings, RoutingTable};
use crate::store::{Store, StoreError, Subresource};

/// How long events are gathered before a recompute.
pub const COALESCE: Duration = Duration::from_millis(5);

/// Controller settings.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// How long a new ApplicationLoadBalancer shows `Deployment: InProgress` (real AGC: 5–6
    /// minutes; default 0).
    pub alb_provisioning_delay: Duration,
    /// Also accept GRPCRoute on HTTP/HTTPS listeners without `allowedRoutes.kinds` (and list it
    /// in `supportedKinds`). Off by default to match AGC's documented status output; turn on for
    /// the GRPC conformance profile.
    pub grpcroute_in_default_kinds: bool,
    /// Reject listener ports other than 80 and 443 (AGC behaviour).
    pub strict_ports: bool,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            alb_provisioning_delay: Duration::ZERO,
            grpcroute_in_default_kinds: false,
            strict_ports: true,
        }
    }
}

/// Errors of the controller's store writes (logged, never fatal: the next pass retries).
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("failed to write the status of {kind} {ns}/{name}: {source}")]
    Status {
        kind: &'static str,
        ns: String,
        name: String,
        #[source]
        source: StoreError,
    },
}

/// State kept between passes by [`apply`].
#[derive(Debug, Default)]
pub struct Applied {
    /// The last table published.
    pub last: Arc<RoutingTable>,
    /// resourceVersions of our own status writes not yet seen as watch events: those events
    /// are skipped, so a pass that only wrote status does not cause another full pass.
    pub own_writes: HashSet<u64>,
    /// Per-route results of earlier passes ([`compute_with`]).
    pub memo: RouteMemo,
}

/// Creates the `azure-alb-external` GatewayClass when it does not exist.
pub fn ensure_default_class(store: &Store) {
    if store
        .get(kinds::gatewayclasses(), "", DEFAULT_CLASS)
        .is_some()
    {
        return;
    }
    let obj = crate::object!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "GatewayClass",
        "metadata": {"name": DEFAULT_CLASS},
        "spec": {"controllerName": CONTROLLER_NAME},
    });
    match store.create(kinds::gatewayclasses(), obj, false) {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(err) => tracing::warn!(%err, "failed to create the default GatewayClass"),
    }
}

/// Publishes the table if it changed, writes changed statuses and records events. Returns the
/// number of status writes.
pub fn apply(
    store: &Store,
    outcome: Outcome,
    applied: &mut Applied,
    table_tx: &watch::Sender<Arc<RoutingTable>>,
) -> usize {
    if !outcome.table.same_content(&applied.last) {
        let mut table = outcome.table;
        table.version = applied.last.version + 1;
        let table = Arc::new(table);
        applied.last = table.clone();
        tracing::debug!(
            version = table.version,
            gateways = table.gateways.len(),
            "publishing routing table"
        );
        table_tx.send_replace(table);
    }
    let mut writes = 0;
    for w in outcome.statuses {
        if w.unchanged_at.is_some() {
            // The snapshot's object already has exactly this status. Should the object have
            // changed since the snapshot, that change is a watch event of its own and the next
            // pass computes from the new version; so nothing needs reading here.
            continue;
        }
        let Some(cur) = store.get(w.res, &w.ns, &w.name) else {
            continue;
        };
        let old = cur.get("status").unwrap_or(&Value::Null);
        if util::eq_ignoring_transition_times(old, &w.status) {
            continue;
        }
        let status = Arc::unwrap_or_clone(w.status);
        match store.modify(w.res, &w.ns, &w.name, Subresource::Status, move |o| {
            o["status"] = status;
        }) {
            Ok(obj) => {
                writes += 1;
                if let Some(rv) = meta::resource_version(&obj) {
                    applied.own_writes.insert(rv);
                }
            }
            Err(StoreError::NotFound { .. }) => {}
            Err(source) => {
                let err = ControllerError::Status {
                    kind: w.res.kind,
                    ns: w.ns,
                    name: w.name,
                    source,
                };
                tracing::warn!(%err, "status write failed");
            }
        }
    }
    for e in outcome.events {
        record_event(store, &e);
    }
    writes
}

/// Records a Warning Event about a Gateway API or AGC object.
fn record_event(store: &Store, e: &EventNote) {
    let on = crate::events::Involved {
        res: e.res,
        namespace: &e.ns,
        name: &e.name,
        uid: &e.uid,
    };
    crate::events::record(
        store,
        &on,
        crate::events::EventKind::Warning,
        &e.reason,
        &e.message,
        "alb-controller",
    );
}

/// One pass: snapshot, compute, apply. Returns when to run again at the latest.
pub fn reconcile_once(
    store: &Store,
    bindings: Arc<Bindings>,
    opts: &ControllerOptions,
    applied: &mut Applied,
    table_tx: &watch::Sender<Arc<RoutingTable>>,
) -> Option<Duration> {
    let mut snap = Snapshot::from_store(store, bindings);
    snap.now = SystemTime::now();
    snap.alb_provisioning_delay = opts.alb_provisioning_delay;
    snap.grpcroute_in_default_kinds = opts.grpcroute_in_default_kinds;
    snap.strict_ports = opts.strict_ports;
    let started = std::time::Instant::now();
    let outcome = compute_with(&snap, &mut applied.memo);
    let requeue = outcome.requeue_after;
    let computed = started.elapsed();
    let writes = apply(store, outcome, applied, table_tx);
    tracing::debug!(
        routes = snap.httproutes.len() + snap.grpcroutes.len(),
        compute_us = computed.as_micros() as u64,
        total_us = started.elapsed().as_micros() as u64,
        writes,
        reused = applied.memo.hits,
        evaluated = applied.memo.misses,
        "reconciled"
    );
    requeue
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    store: Store,
    table: watch::Sender<Arc<RoutingTable>>,
    mut bindings: watch::Receiver<Arc<Bindings>>,
    opts: ControllerOptions,
    shutdown: impl Future<Output = ()>,
) {
    ensure_default_class(&store);
    let watched = snapshot::watched_kinds();
    let mut live = match store.watch(None, Some(store.resource_version())) {
        Ok(w) => w.live,
        Err(err) => {
            tracing::error!(%err, "controller cannot watch the store");
            return;
        }
    };
    let mut applied = Applied::default();
    tokio::pin!(shutdown);
    let mut dirty = true;
    let mut deadline: Option<tokio::time::Instant> = None;
    let mut bindings_open = true;
    loop {
        if dirty {
            // Gather whatever else arrives in the next few milliseconds.
            let gather = tokio::time::sleep(COALESCE);
            tokio::pin!(gather);
            loop {
                tokio::select! {
                    _ = &mut gather => break,
                    r = live.recv() => match r {
                        Ok(ev) => { applied.own_writes.remove(&ev.rv); }
                        Err(broadcast::error::RecvError::Lagged(_)) => applied.own_writes.clear(),
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
            let b = bindings.borrow_and_update().clone();
            deadline = reconcile_once(&store, b, &opts, &mut applied, &table)
                .map(|d| tokio::time::Instant::now() + d);
        }
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => return,
            r = live.recv() => match r {
                Ok(ev) => {
                    let own = applied.own_writes.remove(&ev.rv);
                    dirty = !own && watched.iter().any(|w| std::ptr::eq(*w, ev.resource));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    applied.own_writes.clear();
                    dirty = true;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            r = bindings.changed(), if bindings_open => {
                // An error means the proxy is gone; keep reconciling without bind reports.
                bindings_open = r.is_ok();
                dirty = true;
            }
            _ = sleep => dirty = true,
        }
    }
}
