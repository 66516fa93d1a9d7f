//! What probes and processes report back to the simulator loop: a leaf, so the kubelet and
//! the process supervisor both use it without importing each other.

/// What probes and processes report back to the simulator loop.
#[derive(Debug)]
pub enum Signal {
    Readiness {
        uid: String,
        container: usize,
        ready: bool,
    },
    LivenessFailed {
        uid: String,
        container: usize,
        reason: String,
    },
    Exited {
        uid: String,
        container: usize,
        code: Option<i32>,
    },
    Started {
        uid: String,
        container: usize,
    },
}
