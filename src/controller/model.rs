//! Types the controller's passes share: what a pass produces ([`Outcome`], [`StatusWrite`],
//! [`EventNote`]) and what the Gateway pass hands the route pass ([`GatewayInfo`]). A leaf of
//! the controller: compute, routes and backends import it, it imports none of them.

use serde_json::Value;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use crate::resources::ResourceDef;
use crate::routing::{ListenerProtocol, RouteRuntime, RoutingTable, TlsSettings};
use crate::store::LabelSelector;

/// AGC's controller name, in GatewayClasses and route `status.parents[].controllerName`.
pub const CONTROLLER_NAME: &str = "alb.networking.azure.io/alb-controller";
/// The GatewayClass AGC installs.
pub const DEFAULT_CLASS: &str = "azure-alb-external";
/// AGC's Programmed message (Gateway, listeners and routes).
pub const PROGRAMMED_MESSAGE: &str =
    "Application Gateway For Containers resource has been successfully updated.";

/// The desired `status` of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusWrite {
    pub res: &'static ResourceDef,
    pub ns: String,
    pub name: String,
    /// The whole `status` (foreign conditions and route parents included); shared with the
    /// controller's per-route memo.
    pub status: Arc<Value>,
    /// `Some(rv)` when `status` is exactly the status the object had in the snapshot, at
    /// resourceVersion `rv`: nothing to write while the stored object still has that version.
    pub unchanged_at: Option<u64>,
}

/// A v1 Event to record (an object just stopped being Accepted).
#[derive(Debug, Clone, PartialEq)]
pub struct EventNote {
    pub res: &'static ResourceDef,
    pub ns: String,
    pub name: String,
    pub uid: String,
    pub reason: String,
    pub message: String,
}

/// What one reconcile decided.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub table: RoutingTable,
    pub statuses: Vec<StatusWrite>,
    pub events: Vec<EventNote>,
    /// Recompute after this long even without events (ALB provisioning).
    pub requeue_after: Option<Duration>,
}

/// Maximum listeners per Gateway (Gateway API cap, AGC limit).
pub const MAX_LISTENERS: usize = 64;
/// Maximum certificateRefs per listener (AGC: one RSA + one ECDSA).
pub const MAX_CERTIFICATE_REFS: usize = 2;
/// Address range of Gateway frontends (interfaces.md).
pub const GATEWAY_NET: [u8; 2] = [127, 20];

/// `Err((reason, message))` when something is rejected.
pub type Verdict = Result<(), (&'static str, String)>;

/// How routes may come from namespaces (`allowedRoutes.namespaces`).
#[derive(Debug)]
pub enum FromNs {
    Same,
    All,
    Selector(Option<LabelSelector>),
}

/// A validated listener.
#[derive(Debug)]
pub struct ListenerInfo {
    pub name: String,
    pub port: i64,
    pub protocol: Option<ListenerProtocol>,
    pub hostname: Option<String>,
    /// Route kinds (`HTTPRoute`, `GRPCRoute`) this listener supports.
    pub kinds: Vec<&'static str>,
    pub from: FromNs,
    /// `Err((reason, message))` when not accepted.
    pub accepted: Result<(), (&'static str, String)>,
    pub conflicted: Option<&'static str>,
    pub resolved: Result<(), (&'static str, String)>,
    pub tls: Option<TlsSettings>,
    pub attached: usize,
    pub routes: Vec<Arc<RouteRuntime>>,
}

impl ListenerInfo {
    /// Whether the listener goes into the routing table.
    pub fn usable(&self) -> bool {
        self.accepted.is_ok() && self.resolved.is_ok()
    }
}

/// A Gateway of one of our classes.
#[derive(Debug)]
pub struct GatewayInfo<'a> {
    pub obj: &'a Value,
    pub ns: &'a str,
    pub name: &'a str,
    /// `Err((reason, message))` when the Gateway itself is rejected.
    pub accepted: Result<(), (&'static str, String)>,
    /// `Err(message)` while the backing ALB is still provisioning.
    pub deployable: Result<(), String>,
    pub address: Option<Ipv4Addr>,
    pub listeners: Vec<ListenerInfo>,
}

impl GatewayInfo<'_> {
    /// Accepted at the Gateway level and at least one listener accepted.
    pub fn is_accepted(&self) -> bool {
        self.accepted.is_ok() && self.listeners.iter().any(|l| l.accepted.is_ok())
    }
}
