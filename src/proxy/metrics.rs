//! A small metrics registry (atomics, no prometheus crate) and the admin
//! extension serving `/metrics` and `/backendHealth` on the API port.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::sync::watch;

use crate::apiserver::{Body, Extension, Query};
use crate::health::{backend_health_json, HealthView};
use crate::routing::AGC_SERVER_NAME;

/// Upper bounds (seconds) of the upstream latency histogram buckets.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `albId` reported by `/backendHealth` when the caller gives none.
const DEFAULT_ALB_ID: &str = "agc-sandbox";

const SHARDS: usize = 8;

/// FNV-1a, for the label-hash keys of the request counters (the labels are
/// short; SipHash costs more than the rest of the counter update).
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvBuild = BuildHasherDefault<Fnv>;

/// The counters one worker updates: on their own cache lines, so workers on
/// different cores never write the same line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    /// `(gateway, route, code)` counters, keyed by a hash of the labels so
    /// the hot path allocates nothing once a label set was seen.
    requests: Mutex<HashMap<u64, RequestCounter, FnvBuild>>,
    /// Per-bucket (not cumulative) upstream latency counts; the last slot
    /// is `+Inf`. Cumulated when rendered.
    latency_buckets: [AtomicU64; BUCKETS.len() + 1],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

/// Proxy counters. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Sharded by worker so workers share no lock and no cache line.
    shards: [Shard; SHARDS],
    /// Open WebSocket (upgrade) tunnels.
    pub tunnels_open: AtomicI64,
    /// Routing tables applied by the proxy.
    pub config_updates: AtomicU64,
    /// Client connections closed on accept because a connection budget was spent.
    pub connections_refused: AtomicU64,
    /// The budgets (for /metrics).
    pub connection_limits: std::sync::OnceLock<(usize, usize)>,
}

#[derive(Debug)]
struct RequestCounter {
    gateway: String,
    route: String,
    code: u16,
    count: u64,
}

impl Metrics {
    /// Counts one response.
    pub fn request(
        &self,
        shard: usize,
        gateway: (&str, &str),
        route: Option<(&str, &str)>,
        code: u16,
    ) {
        let key = FnvBuild::default().hash_one((gateway, route, code));
        let mut map = self.shards[shard % SHARDS]
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(key)
            .or_insert_with(|| RequestCounter {
                gateway: format!("{}/{}", gateway.0, gateway.1),
                route: route.map(|(n, r)| format!("{n}/{r}")).unwrap_or_default(),
                code,
                count: 0,
            })
            .count += 1;
    }

    /// Records the time a backend took to answer (response head), on the
    /// counters of worker `shard`.
    pub fn upstream_latency(&self, shard: usize, d: Duration) {
        let s = &self.shards[shard % SHARDS];
        let secs = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(BUCKETS.len());
        s.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
        s.latency_count.fetch_add(1, Ordering::Relaxed);
        s.latency_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn sum(&self, f: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// Total requests counted with `code` (all gateways and routes).
    pub fn requests_with_code(&self, code: u16) -> u64 {
        self.rows()
            .iter()
            .filter(|c| c.code == code)
            .map(|c| c.count)
            .sum()
    }

    /// Counters merged over the shards, sorted by labels.
    fn rows(&self) -> Vec<RequestCounter> {
        let mut merged: HashMap<u64, RequestCounter> = HashMap::new();
        for shard in &self.shards {
            let map = shard.requests.lock().unwrap_or_else(|e| e.into_inner());
            for (k, c) in map.iter() {
                merged
                    .entry(*k)
                    .or_insert_with(|| RequestCounter {
                        gateway: c.gateway.clone(),
                        route: c.route.clone(),
                        code: c.code,
                        count: 0,
                    })
                    .count += c.count;
            }
        }
        let mut rows: Vec<_> = merged.into_values().collect();
        rows.sort_by(|a, b| (&a.gateway, &a.route, a.code).cmp(&(&b.gateway, &b.route, b.code)));
        rows
    }

    /// Prometheus text exposition.
    pub fn render(&self, health: &HealthView) -> String {
        let mut out = String::new();
        out.push_str("# HELP agc_requests_total Responses sent by the gateway proxy.\n");
        out.push_str("# TYPE agc_requests_total counter\n");
        for c in self.rows() {
            let _ = writeln!(
                out,
                "agc_requests_total{{gateway=\"{}\",route=\"{}\",code=\"{}\"}} {}",
                escape(&c.gateway),
                escape(&c.route),
                c.code,
                c.count
            );
        }
        out.push_str("# HELP agc_upstream_latency_seconds Time to the backend's response head.\n");
        out.push_str("# TYPE agc_upstream_latency_seconds histogram\n");
        let mut cumulative = 0;
        for (i, le) in BUCKETS.iter().enumerate() {
            cumulative += self.sum(|s| &s.latency_buckets[i]);
            let _ = writeln!(
                out,
                "agc_upstream_latency_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.sum(|s| &s.latency_count);
        let _ = writeln!(
            out,
            "agc_upstream_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "agc_upstream_latency_seconds_sum {}",
            self.sum(|s| &s.latency_sum_us) as f64 / 1e6
        );
        let _ = writeln!(out, "agc_upstream_latency_seconds_count {count}");
        let (healthy, unhealthy) = health.totals();
        let gauges = [
            (
                "total_endpoints",
                "Backend endpoints known to the health checker.",
                healthy + unhealthy,
            ),
            (
                "total_healthy_endpoints",
                "Endpoints passing their health probe.",
                healthy,
            ),
            (
                "total_unhealthy_endpoints",
                "Endpoints failing their health probe.",
                unhealthy,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP agc_websocket_tunnels_open Open WebSocket tunnels.\n# TYPE agc_websocket_tunnels_open gauge\nagc_websocket_tunnels_open {}",
            self.tunnels_open.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP total_config_updates Routing tables applied by the proxy.\n# TYPE total_config_updates counter\ntotal_config_updates {}",
            self.config_updates.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP agc_connections_refused_total Client connections closed on accept: a connection budget was spent.\n# TYPE agc_connections_refused_total counter\nagc_connections_refused_total {}",
            self.connections_refused.load(Ordering::Relaxed)
        );
        if let Some((per, all)) = self.connection_limits.get() {
            let _ = writeln!(
                out,
                "# HELP agc_connection_limit Open client connections allowed per listener and in all.\n# TYPE agc_connection_limit gauge\nagc_connection_limit{{scope=\"listener\"}} {per}\nagc_connection_limit{{scope=\"all\"}} {all}"
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Serves `GET /backendHealth` (AGC's backend health API) and
/// `GET /metrics` (Prometheus text) on the API server.
pub struct AdminExtension {
    health: watch::Receiver<Arc<HealthView>>,
    metrics: Arc<Metrics>,
}

impl AdminExtension {
    pub fn new(health: watch::Receiver<Arc<HealthView>>, metrics: Arc<Metrics>) -> Self {
        AdminExtension { health, metrics }
    }
}

fn reply(status: StatusCode, ctype: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    r.headers_mut().insert(
        header::SERVER,
        header::HeaderValue::from_static(AGC_SERVER_NAME),
    );
    r
}

impl Extension for AdminExtension {
    fn get(&self, path: &str, query: &Query) -> Option<Response<Body>> {
        match path {
            "/backendHealth" => {
                let view = self.health.borrow().clone();
                let alb = query.get("alb-id").unwrap_or(DEFAULT_ALB_ID);
                let json = backend_health_json(
                    &view,
                    query.get("service-name"),
                    alb,
                    query.flag("detailed"),
                );
                let text = serde_json::to_string_pretty(&json).unwrap_or_default();
                Some(reply(StatusCode::OK, "application/json", text))
            }
            "/metrics" => {
                let view = self.health.borrow().clone();
                Some(reply(
                    StatusCode::OK,
                    "text/plain; version=0.0.4",
                    self.metrics.render(&view),
                ))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        m.request(0, ("ns", "gw"), Some(("ns", "r")), 200);
        m.request(1, ("ns", "gw"), Some(("ns", "r")), 200);
        m.request(3, ("ns", "gw"), None, 404);
        m.upstream_latency(1, Duration::from_millis(3));
        m.upstream_latency(0, Duration::from_secs(20));
        let text = m.render(&HealthView::default());
        assert!(
            text.contains("agc_requests_total{gateway=\"ns/gw\",route=\"ns/r\",code=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("agc_requests_total{gateway=\"ns/gw\",route=\"\",code=\"404\"} 1"));
        assert!(text.contains("agc_upstream_latency_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("agc_upstream_latency_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("agc_upstream_latency_seconds_bucket{le=\"10\"} 1"));
        assert!(text.contains("agc_upstream_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("agc_upstream_latency_seconds_count 2"));
        assert!(text.contains("total_healthy_endpoints 0"));
        assert_eq!(m.requests_with_code(200), 2);
    }
}
