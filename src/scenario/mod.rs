//! Scenario replay (`agc-sandbox scenario run FILE...`): scripted sessions against a sandbox.
//!
//! A scenario is a YAML file (format in `scenarios/README.md`) with a list of steps: `apply`,
//! `patch`, `delete`, `scale`, `annotate`, `wait`, `assert`, `http`, `traffic`, `websocket`,
//! `sleep` and `tls-secret`. Like kwok's recordings, steps are an ordered stream of API writes,
//! with expectations in between. Each scenario gets a fresh in-process sandbox (temp data dir,
//! API on `127.0.0.1:0`, a free `--port-offset`), or runs against a running one with `--server`.
//!
//! Object steps talk to the API over HTTP ([`client`]); `http`, `traffic` and `websocket` steps
//! go to a Gateway's listener socket (`status.addresses[0].value`, listener port + port offset)
//! with the Host header under test, retrying until a deadline while the data plane catches up.
//! A scenario stops at its first failed step with an expected-vs-got message naming the file and
//! step.
//!
//! Layout: [`model`] (what a file holds) ← [`parse`] (file → model) ← [`runner`] (sandbox, step
//! loop) → [`objects`] and [`dataplane`] (the steps). Shared helpers: [`manifest`], [`path`]
//! (JSONPath), [`net`] (gateway sockets), [`tls`], [`junit`].

pub use crate::client;
mod dataplane;
pub mod junit;
mod model;
pub mod net;
mod objects;
mod parse;
pub mod path;
mod runner;
mod shared;
pub mod tls;

pub use model::Scenario;
pub use parse::load;
pub use runner::{pick_port_offset, run};
pub use shared::{
    Options, Out, ScenarioError, Summary, DEFAULT_ASSERT_TIMEOUT, DEFAULT_RETRY, DEFAULT_TIMEOUT,
    FAULT_ANNOTATION, FIELD_MANAGER,
};

#[cfg(test)]
mod tests;
