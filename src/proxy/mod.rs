//! The data plane's gateway proxy.
//!
//! - [`route`]: sans-IO HTTPRoute matching, precedence, redirects and rewrites.

pub mod route;
