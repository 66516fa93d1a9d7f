//! Active health checking of backend endpoints (AGC's health probes).
//!
//! [`spawn`] runs one manager task that follows the routing table and keeps
//! one probe loop per `(backend, endpoint)`, each with its backend's
//! [`ProbeSettings`]. Loops report state *changes* to the manager over a
//! channel; the manager owns all state and publishes an immutable
//! [`HealthView`] snapshot on a `watch` channel whenever something changed,
//! so the proxy reads health per request without any lock the checker holds.
//!
//! Rules (AGC `custom-health-probe.md`):
//! * a new endpoint is probed at once and starts **unhealthy** until
//!   `healthy_threshold` consecutive successes;
//! * a healthy endpoint turns unhealthy after `unhealthy_threshold`
//!   consecutive failures;
//! * HTTP probes send `GET <path>` with `Host: <host>` and
//!   `User-Agent: Microsoft-Azure-Application-LB/AGC`; healthy on a status in
//!   the configured ranges (and, if set, a body containing the match text);
//!   `use_tls` probes over TLS accepting any certificate, as AGC does not
//!   validate backend certificates for probes;
//! * TCP probes only connect.
//!
//! A loop whose endpoint left the table is aborted; a loop whose settings
//! changed is restarted, keeping the endpoint's current status so a policy
//! edit does not flap healthy endpoints.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::routing::{BackendKey, ProbeKind, ProbeSettings, RoutingTable, AGC_SERVER_NAME};

/// Health of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    /// `HEALTHY` / `UNHEALTHY`, as AGC's backendHealth API writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "HEALTHY",
            HealthStatus::Unhealthy => "UNHEALTHY",
        }
    }
}

/// Probe state of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointHealth {
    pub addr: SocketAddr,
    pub status: HealthStatus,
    /// Why the last failed probe failed (`status code 404`, `timeout`,
    /// `connection refused`, ...); `not probed yet` before the first probe.
    pub last_failure: Option<String>,
}

/// Immutable snapshot of every endpoint's health, published on each change.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthView {
    /// Version of the routing table this view follows.
    pub table_version: u64,
    backends: BTreeMap<BackendKey, Vec<EndpointHealth>>,
}

impl HealthView {
    /// True when `addr` of backend `key` passed its probe. Unknown endpoints
    /// (not probed yet, or not in the table) are unhealthy.
    pub fn healthy(&self, key: &BackendKey, addr: SocketAddr) -> bool {
        self.backends.get(key).is_some_and(|eps| {
            eps.iter()
                .any(|e| e.addr == addr && e.status == HealthStatus::Healthy)
        })
    }

    /// The endpoints of one backend, in table order.
    pub fn backend(&self, key: &BackendKey) -> Option<&[EndpointHealth]> {
        self.backends.get(key).map(Vec::as_slice)
    }

    /// Every backend with its endpoints, sorted by key.
    pub fn backends(&self) -> impl Iterator<Item = (&BackendKey, &[EndpointHealth])> {
        self.backends.iter().map(|(k, v)| (k, v.as_slice()))
    }

    /// `(healthy, unhealthy)` endpoint counts over all backends.
    pub fn totals(&self) -> (usize, usize) {
        let mut out = (0, 0);
        for e in self.backends.values().flatten() {
            match e.status {
                HealthStatus::Healthy => out.0 += 1,
                HealthStatus::Unhealthy => out.1 += 1,
            }
        }
        out
    }

    /// A view with the given endpoints, for tests and tools that need health
    /// without probing.
    pub fn from_endpoints(
        table_version: u64,
        endpoints: impl IntoIterator<Item = (BackendKey, EndpointHealth)>,
    ) -> Self {
        let mut backends: BTreeMap<BackendKey, Vec<EndpointHealth>> = BTreeMap::new();
        for (k, e) in endpoints {
            backends.entry(k).or_default().push(e);
        }
        HealthView {
            table_version,
            backends,
        }
    }
}

/// AGC's backendHealth JSON (`fc/alb-controller-backend-health-metrics.md`):
/// `{services:[{serviceName, serviceHealth:[{albId, totalEndpoints,
/// totalHealthyEndpoints, totalUnhealthyEndpoints, endpoints:[...]}]}]}`.
/// `service` (`ns/svc/port`) filters; `detailed` adds the endpoint list.
pub fn backend_health_json(
    view: &HealthView,
    service: Option<&str>,
    alb_id: &str,
    detailed: bool,
) -> Value {
    let mut services = Vec::new();
    for (key, eps) in view.backends() {
        let name = key.to_string();
        if service.is_some_and(|s| s != name) {
            continue;
        }
        let healthy = eps
            .iter()
            .filter(|e| e.status == HealthStatus::Healthy)
            .count();
        let mut health = json!({
            "albId": alb_id,
            "totalEndpoints": eps.len(),
            "totalHealthyEndpoints": healthy,
            "totalUnhealthyEndpoints": eps.len() - healthy,
        });
        if detailed {
            let list: Vec<Value> = eps
                .iter()
                .map(|e| {
                    let mut h = json!({ "status": e.status.as_str() });
                    if let (HealthStatus::Unhealthy, Some(r)) = (e.status, &e.last_failure) {
                        h["reason"] = Value::String(r.clone());
                    }
                    json!({ "address": e.addr.to_string(), "health": h })
                })
                .collect();
            health["endpoints"] = Value::Array(list);
        }
        services.push(json!({ "serviceName": name, "serviceHealth": [health] }));
    }
    json!({ "services": services })
}

type SlotKey = (BackendKey, SocketAddr);

struct Slot {
    settings: ProbeSettings,
    generation: u64,
    task: JoinHandle<()>,
    health: EndpointHealth,
}

struct Report {
    key: SlotKey,
    generation: u64,
    status: HealthStatus,
    last_failure: Option<String>,
}

/// Starts the health checker; it follows `table` until `shutdown` resolves
/// (then every probe loop is aborted). Returns the published health.
pub fn spawn(
    mut table: watch::Receiver<Arc<RoutingTable>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> watch::Receiver<Arc<HealthView>> {
    let (view_tx, view_rx) = watch::channel(Arc::new(HealthView::default()));
    tokio::spawn(async move {
        let (report_tx, mut reports) = mpsc::unbounded_channel::<Report>();
        let mut slots: HashMap<SlotKey, Slot> = HashMap::new();
        let mut generation = 0u64;
        let mut order: Vec<SlotKey> = Vec::new();
        let mut version = 0u64;
        let mut table_open = true;
        tokio::pin!(shutdown);
        let mut dirty = true;
        table.mark_changed();
        loop {
            if dirty {
                publish(&view_tx, version, &order, &slots);
                dirty = false;
            }
            tokio::select! {
                _ = &mut shutdown => break,
                changed = table.changed(), if table_open => {
                    if changed.is_err() {
                        table_open = false;
                        continue;
                    }
                    let t = table.borrow_and_update().clone();
                    version = t.version;
                    order = reconcile(&t, &mut slots, &mut generation, &report_tx);
                    dirty = true;
                }
                Some(r) = reports.recv() => {
                    if let Some(slot) = slots.get_mut(&r.key) {
                        if slot.generation == r.generation
                            && (slot.health.status, &slot.health.last_failure) != (r.status, &r.last_failure)
                        {
                            slot.health.status = r.status;
                            slot.health.last_failure = r.last_failure;
                            dirty = true;
                        }
                    }
                }
            }
        }
        for (_, slot) in slots.drain() {
            slot.task.abort();
        }
    });
    view_rx
}

fn publish(
    tx: &watch::Sender<Arc<HealthView>>,
    version: u64,
    order: &[SlotKey],
    slots: &HashMap<SlotKey, Slot>,
) {
    let mut backends: BTreeMap<BackendKey, Vec<EndpointHealth>> = BTreeMap::new();
    for key in order {
        let entry = backends.entry(key.0.clone()).or_default();
        // Backends without endpoints are listed with an empty list (the
        // order vector carries them with the unspecified address).
        if let Some(slot) = slots.get(key) {
            entry.push(slot.health.clone());
        }
    }
    let view = HealthView {
        table_version: version,
        backends,
    };
    tx.send_if_modified(|cur| {
        if **cur == view {
            false
        } else {
            *cur = Arc::new(view);
            true
        }
    });
}

/// Diffs the table against the running loops. Returns the endpoint order to
/// publish (backends without endpoints appear once with a placeholder key).
fn reconcile(
    table: &RoutingTable,
    slots: &mut HashMap<SlotKey, Slot>,
    generation: &mut u64,
    report_tx: &mpsc::UnboundedSender<Report>,
) -> Vec<SlotKey> {
    let mut order = Vec::new();
    let mut wanted: HashMap<SlotKey, ProbeSettings> = HashMap::new();
    let mut backends: Vec<_> = table.backends.values().collect();
    backends.sort_by(|a, b| a.key.cmp(&b.key));
    for b in backends {
        if b.endpoints.is_empty() {
            order.push((b.key.clone(), SocketAddr::from(([0, 0, 0, 0], 0))));
        }
        for e in &b.endpoints {
            let k = (b.key.clone(), e.addr);
            if wanted.insert(k.clone(), b.probe.clone()).is_none() {
                order.push(k);
            }
        }
    }
    slots.retain(|k, slot| {
        let keep = wanted.contains_key(k);
        if !keep {
            slot.task.abort();
        }
        keep
    });
    for (k, settings) in wanted {
        let current = slots
            .get(&k)
            .map(|s| (s.settings == settings, s.health.status));
        let initial = match current {
            Some((true, _)) => continue,
            Some((false, status)) => status,
            None => HealthStatus::Unhealthy,
        };
        *generation += 1;
        let task = tokio::spawn(probe_loop(
            k.clone(),
            settings.clone(),
            *generation,
            initial,
            report_tx.clone(),
        ));
        let health = EndpointHealth {
            addr: k.1,
            status: initial,
            last_failure: Some("not probed yet".to_owned()),
        };
        if let Some(old) = slots.insert(
            k,
            Slot {
                settings,
                generation: *generation,
                task,
                health,
            },
        ) {
            old.task.abort();
        }
    }
    order
}

async fn probe_loop(
    key: SlotKey,
    settings: ProbeSettings,
    generation: u64,
    mut status: HealthStatus,
    tx: mpsc::UnboundedSender<Report>,
) {
    let healthy_after = settings.healthy_threshold.max(1);
    let unhealthy_after = settings.unhealthy_threshold.max(1);
    let (mut successes, mut failures) = (0u32, 0u32);
    let mut last_failure: Option<String> = None;
    let mut first = true;
    loop {
        let outcome = probe_once(key.1, &settings).await;
        let before = (status, last_failure.clone());
        match outcome {
            Ok(()) => {
                successes += 1;
                failures = 0;
                if status == HealthStatus::Unhealthy && successes >= healthy_after {
                    status = HealthStatus::Healthy;
                }
            }
            Err(reason) => {
                tracing::debug!(backend = %key.0, endpoint = %key.1, %reason, "probe failed");
                failures += 1;
                successes = 0;
                if status == HealthStatus::Healthy && failures >= unhealthy_after {
                    status = HealthStatus::Unhealthy;
                }
                last_failure = Some(reason);
            }
        }
        if first || before != (status, last_failure.clone()) {
            first = false;
            if before.0 != status {
                tracing::info!(backend = %key.0, endpoint = %key.1, status = status.as_str(),
                    reason = last_failure.as_deref().unwrap_or(""), "endpoint health changed");
            }
            let report = Report {
                key: key.clone(),
                generation,
                status,
                last_failure: last_failure.clone(),
            };
            if tx.send(report).is_err() {
                return;
            }
        }
        tokio::time::sleep(settings.interval.max(Duration::from_millis(50))).await;
    }
}

/// Runs one probe; `Err` carries the failure reason.
pub async fn probe_once(addr: SocketAddr, settings: &ProbeSettings) -> Result<(), String> {
    let target = SocketAddr::new(addr.ip(), settings.port.unwrap_or(addr.port()));
    let run = async {
        let tcp = TcpStream::connect(target)
            .await
            .map_err(|e| io_reason(&e))?;
        let _ = tcp.set_nodelay(true);
        if settings.kind == ProbeKind::Tcp {
            return Ok(());
        }
        if settings.use_tls {
            let name = rustls::pki_types::ServerName::try_from(settings.host.clone())
                .unwrap_or_else(|_| rustls::pki_types::ServerName::IpAddress(target.ip().into()));
            let tls = tokio_rustls::TlsConnector::from(insecure_client_config())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("tls handshake failed: {e}"))?;
            http_probe(tls, settings).await
        } else {
            http_probe(tcp, settings).await
        }
    };
    match tokio::time::timeout(settings.timeout.max(Duration::from_millis(1)), run).await {
        Ok(r) => r,
        Err(_) => Err("timeout".to_owned()),
    }
}

async fn http_probe<T>(io: T, settings: &ProbeSettings) -> Result<(), String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| format!("connection failed: {e}"))?;
    let conn = tokio::spawn(conn);
    let path = if settings.path.starts_with('/') {
        settings.path.clone()
    } else {
        format!("/{}", settings.path)
    };
    let req = Request::get(path)
        .header(header::HOST, settings.host.as_str())
        .header(header::USER_AGENT, AGC_SERVER_NAME)
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("invalid probe request: {e}"))?;
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        if !settings.status_ok(status) {
            return Err(format!("status code {status}"));
        }
        if let Some(want) = &settings.body_contains {
            let body = http_body_util::Limited::new(resp.into_body(), 256 * 1024)
                .collect()
                .await
                .map_err(|e| format!("reading the body failed: {e}"))?
                .to_bytes();
            if !String::from_utf8_lossy(&body).contains(want.as_str()) {
                return Err("response body did not match".to_owned());
            }
        }
        Ok(())
    }
    .await;
    conn.abort();
    result
}

fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::TimedOut => "timeout".to_owned(),
        _ => format!("connection failed: {e}"),
    }
}

/// A rustls client config that accepts any server certificate: AGC probes
/// (and backend TLS) do not validate backend certificates.
pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::pki::AcceptAnyCert(provider)))
                .with_no_client_auth();
            Arc::new(cfg)
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{BackendRuntime, Endpoint};
    use tokio::net::TcpListener;
    use tokio::time::timeout;

    const T: Duration = Duration::from_secs(10);

    fn key() -> BackendKey {
        "ns/svc/80".parse().unwrap()
    }

    fn table(addrs: &[SocketAddr], probe: ProbeSettings) -> Arc<RoutingTable> {
        let b = BackendRuntime {
            key: key(),
            endpoints: addrs
                .iter()
                .map(|a| Endpoint {
                    addr: *a,
                    pod: None,
                    ready: true,
                })
                .collect(),
            probe,
            app_protocol_tls: false,
            tls_sni: None,
        };
        Arc::new(RoutingTable {
            version: 1,
            gateways: vec![],
            backends: [(key(), Arc::new(b))].into_iter().collect(),
        })
    }

    fn fast(path: &str) -> ProbeSettings {
        ProbeSettings {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(2),
            path: path.into(),
            ..ProbeSettings::agc_default()
        }
    }

    /// Minimal HTTP server answering 200 on `/health` and 404 elsewhere.
    async fn server() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((s, _)) = l.accept().await else { return };
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        |req: Request<hyper::body::Incoming>| async move {
                            let ua_ok = req
                                .headers()
                                .get(header::USER_AGENT)
                                .is_some_and(|v| v == AGC_SERVER_NAME);
                            let code = if req.uri().path() == "/health" && ua_ok {
                                200
                            } else {
                                404
                            };
                            Ok::<_, std::convert::Infallible>(
                                http::Response::builder()
                                    .status(code)
                                    .body(http_body_util::Full::new(Bytes::from_static(b"OK")))
                                    .unwrap(),
                            )
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        addr
    }

    async fn wait_for(rx: &mut watch::Receiver<Arc<HealthView>>, f: impl Fn(&HealthView) -> bool) {
        timeout(T, rx.wait_for(|v| f(v)))
            .await
            .expect("timed out")
            .unwrap();
    }

    #[tokio::test]
    async fn probe_reasons() {
        let addr = server().await;
        assert_eq!(probe_once(addr, &fast("/health")).await, Ok(()));
        assert_eq!(
            probe_once(addr, &fast("/")).await,
            Err("status code 404".into())
        );
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        assert_eq!(
            probe_once(closed, &fast("/")).await,
            Err("connection refused".into())
        );
        let tcp = ProbeSettings {
            kind: ProbeKind::Tcp,
            ..fast("/")
        };
        assert_eq!(probe_once(addr, &tcp).await, Ok(()));
        // A server that accepts but never answers.
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s_addr = silent.local_addr().unwrap();
        let slow = ProbeSettings {
            timeout: Duration::from_millis(200),
            ..fast("/")
        };
        assert_eq!(probe_once(s_addr, &slow).await, Err("timeout".into()));
        drop(silent);
    }

    #[tokio::test]
    async fn starts_unhealthy_then_follows_table_changes() {
        let addr = server().await;
        let (tx, rx) = watch::channel(table(&[addr], fast("/")));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let mut view = spawn(rx, async move {
            let _ = stop_rx.await;
        });
        wait_for(&mut view, |v| {
            v.backend(&key()).is_some_and(|e| {
                e.len() == 1 && e[0].last_failure.as_deref() == Some("status code 404")
            })
        })
        .await;
        assert!(!view.borrow().healthy(&key(), addr));
        let json = backend_health_json(&view.borrow(), Some("ns/svc/80"), "alb", true);
        assert_eq!(
            json["services"][0]["serviceHealth"][0]["totalUnhealthyEndpoints"],
            1
        );
        assert_eq!(
            json["services"][0]["serviceHealth"][0]["endpoints"][0]["health"]["reason"],
            "status code 404"
        );
        // Settings change: the loop restarts with the new path.
        tx.send(table(&[addr], fast("/health"))).unwrap();
        wait_for(&mut view, |v| v.healthy(&key(), addr)).await;
        // Endpoint removed: it disappears from the view.
        tx.send(table(&[], fast("/health"))).unwrap();
        wait_for(&mut view, |v| {
            v.backend(&key()).is_some_and(|e| e.is_empty())
        })
        .await;
        let _ = stop_tx.send(());
    }
}
