//! The workload simulator: plays the kubelet and the tutorials' sample images.
//!
//! - [`apps`]: the built-in apps a simulated Pod serves (echo-basic, the WebSocket test backend).

pub mod apps;
