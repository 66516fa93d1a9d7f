//! The proxy's tunables (a leaf: every part of the proxy reads them).

use std::time::Duration;

/// Tunables of the proxy; [`ProxyOptions::new`] gives AGC's values.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// Added to every listener port (`--port-offset`), so the simulator can
    /// serve ports 80/443 without privileges.
    pub port_offset: u16,
    /// Backend TCP connect timeout (AGC: 5 s).
    pub connect_timeout: Duration,
    /// Idle timeout of client connections and tunnels (AGC: 5 min).
    pub idle_timeout: Duration,
    /// Time a client has, from the first byte of a request head, to send
    /// the rest.
    pub header_read_timeout: Duration,
    /// Largest request head accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// How long connections get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Idle keep-alive connections kept per backend endpoint (per worker).
    pub max_idle_per_endpoint: usize,
    /// Worker threads serving client connections, each with its own
    /// current-thread runtime; 0 serves them on the caller's runtime.
    pub workers: usize,
    /// Open client connections at most on one listener, and on all of them: past either a new
    /// connection is closed at once, so a flood on one listener cannot take the file
    /// descriptors the other listeners, the API, the health checker and the pods need.
    pub max_connections_per_listener: usize,
    pub max_connections: usize,
}

/// The soft open-files limit (what `up` raised it to), or 1024.
pub fn open_files_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed to it.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    }
}

impl ProxyOptions {
    /// AGC's defaults with the given port offset.
    pub fn new(port_offset: u16) -> Self {
        ProxyOptions {
            port_offset,
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(300),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(5),
            max_idle_per_endpoint: 256,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            // A proxied connection can hold two descriptors (client and backend): a quarter of
            // the limit for all listeners, an eighth for any one.
            max_connections_per_listener: (open_files_limit() / 8).max(32),
            max_connections: (open_files_limit() / 4).max(64),
        }
    }
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions::new(0)
    }
}
