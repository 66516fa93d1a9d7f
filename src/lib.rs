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

pub mod apiserver;
pub mod app;
pub mod cli;
pub mod controller;
pub mod dirwatch;
pub mod events;
pub mod health;
pub mod meta;
pub mod proxy;
pub mod resources;
pub mod routing;
pub mod scenario;
pub mod schema;
pub mod sim;
pub mod store;
