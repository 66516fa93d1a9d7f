//! v1 Events: how controllers tell users why something did or did not happen
//! (`kubectl describe`, `kubectl get events`).

use crate::meta;
use crate::resources::{kinds, ResourceDef};
use crate::store::Store;

/// Normal or Warning, as in `Event.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Normal,
    Warning,
}

/// The object an Event is about.
#[derive(Debug, Clone)]
pub struct Involved<'a> {
    pub res: &'static ResourceDef,
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// Records an Event. Failures are logged and dropped: an Event is a courtesy, not state.
pub fn record(
    store: &Store,
    on: &Involved<'_>,
    kind: EventKind,
    reason: &str,
    message: &str,
    component: &str,
) {
    let now = meta::now_rfc3339();
    let ns = if on.namespace.is_empty() {
        "default"
    } else {
        on.namespace
    };
    let obj = crate::object!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{}", on.name, crate::store::random_suffix(10)),
            "namespace": ns,
        },
        "involvedObject": {
            "apiVersion": on.res.preferred_api_version(),
            "kind": on.res.kind,
            "name": on.name,
            "namespace": on.namespace,
            "uid": on.uid,
        },
        "reason": reason,
        "message": message,
        "type": match kind { EventKind::Normal => "Normal", EventKind::Warning => "Warning" },
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    if let Err(err) = store.create(kinds::events(), obj, false) {
        tracing::debug!(cause = %err, reason, "event not recorded");
    }
}
