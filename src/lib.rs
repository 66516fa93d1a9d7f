//! agc-sandbox: Azure Application Gateway for Containers on one machine.
//!
//! # Layout
//! - [`store`]: objects in memory, written through to sled, with watch events.
//! - [`apiserver`]: the Kubernetes API that kubectl drives.
//! - [`resources`]: the kinds served (group, version, plural, scope).
//! - [`routing`]: the routing table the controller publishes to the proxy and health checker.
//! - [`controller`]: reconciles Gateway API and AGC objects into status and the routing table.
//! - [`proxy`]: the gateway data plane; [`sim`]: simulated workloads.
//! - [`meta`]: helpers over objects held as JSON; [`schema`]: the OpenAPI v3 schema engine.
//! - [`dirwatch`]: the drop-in manifests folder (`up --watch DIR`); [`scenario`]: scripted
//!   sessions (`scenario run`).
//! - [`app`]: wires the parts and owns shutdown; [`cli`]: the command line.
//!
//! State flows one way: store → watch events → controllers → routing table → proxy.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod apiserver;
pub mod app;
pub mod cli;
pub mod client;
pub mod controller;
pub mod dirwatch;
pub mod events;
pub mod health;
pub mod manifest;
pub mod meta;
pub mod pki;
pub mod proxy;
pub mod resources;
pub mod routing;
pub mod scenario;
pub mod schema;
pub mod sim;
pub mod store;

/// An error and its causes, joined with `: ` (what `{:#}` prints for anyhow errors), for
/// errors that end up in a message string.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}
