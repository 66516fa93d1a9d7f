//! Per-request handling: route, filters, backend choice, forwarding.
//!
//! Order of operations for one request (AGC semantics, see
//! `shared/reference/agc.md` §3–4):
//! 1. snapshot the table and the health view (`Arc` clones, no locks held);
//! 2. pick the listener (`route::select_listener`, by SNI for TLS, else Host)
//!    and the rule (`route::find`); none → 404;
//! 3. rule filters in order: header modifiers, `RequestRedirect` (answered
//!    here, `content-length: 0` + `location`), `URLRewrite`, unsupported →
//!    500;
//! 4. weighted backend (`route::pick_backend`); an invalid backend's share,
//!    a missing backend or one without endpoints → 500; then the backend's
//!    own filters;
//! 5. endpoint: session affinity if configured, else round robin over the
//!    ready and healthy endpoints; none → AGC's 503 `no healthy upstream`;
//! 6. forward over a pooled HTTP/1.1 connection with `x-forwarded-for`,
//!    `x-forwarded-proto`, `x-request-id`, hop-by-hop headers stripped; a
//!    failed connect is retried once on another endpoint; failures → 502,
//!    the route's request timeout → 504;
//! 7. `Upgrade` requests answered 101 become tunnels ([`super::upgrade`]).
//!
//! Every response carries `server: Microsoft-Azure-Application-LB/AGC`.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::{mpsc, watch};

use crate::health::{HealthStatus, HealthView};
use crate::proxy::metrics::Metrics;
use crate::proxy::options::ProxyOptions;
use crate::proxy::pool::{
    Forwarded, Forwarding, Pool, RawHead, TlsTarget, UpstreamBody, UpstreamError,
};
use crate::proxy::{cors, mirror, route, upgrade};
use crate::routing::{
    BackendKey, BackendRuntime, BackendTarget, Filter, HeaderModifier, ListenerProtocol,
    RequestMirror, RouteRuntime, RoutingTable, SessionAffinity, AGC_SERVER_NAME,
    MANAGED_COOKIE_LIFETIME, MANAGED_COOKIE_NAME,
};

/// Body of AGC's reply when no endpoint is healthy (exactly 19 bytes).
pub const NO_HEALTHY_UPSTREAM: &str = "no healthy upstream";

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Round-robin counters, one per hash slot of a backend key (collisions only
/// make two backends share a sequence).
const RR_SLOTS: usize = 64;

/// State shared by every connection of one proxy.
pub struct Shared {
    pub(crate) table: watch::Receiver<Arc<RoutingTable>>,
    pub(crate) health: watch::Receiver<Arc<HealthView>>,
    pub(crate) opts: ProxyOptions,
    pub(crate) metrics: Arc<Metrics>,
    /// One pool per worker runtime, so a backend connection is driven on
    /// the same thread as the client connections that use it.
    pub(crate) pools: Vec<Arc<Pool>>,
    /// Current-thread runtimes serving connections (empty: the caller's).
    pub(crate) workers: Vec<tokio::runtime::Handle>,
    /// Set once on shutdown; tunnels watch it.
    pub(crate) stop: watch::Receiver<bool>,
    /// Held by every connection and tunnel task; see `server::run`.
    pub(crate) guard: mpsc::Sender<()>,
    pub(crate) h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    rr: [AtomicUsize; RR_SLOTS],
    /// The budget of open client connections on all listeners.
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    pub(crate) fn new(
        table: watch::Receiver<Arc<RoutingTable>>,
        health: watch::Receiver<Arc<HealthView>>,
        opts: ProxyOptions,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
        guard: mpsc::Sender<()>,
        workers: Vec<tokio::runtime::Handle>,
    ) -> Self {
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new());
        let opts_max_connections = opts.max_connections.max(1);
        let _ = metrics
            .connection_limits
            .set((opts.max_connections_per_listener, opts.max_connections));
        Shared {
            pools: (0..workers.len().max(1))
                .map(|_| Arc::new(Pool::new(opts.connect_timeout, opts.max_idle_per_endpoint)))
                .collect(),
            workers,
            table,
            health,
            opts,
            metrics,
            stop,
            guard,
            h2,
            rr: std::array::from_fn(|_| AtomicUsize::new(0)),
            connections: Arc::new(tokio::sync::Semaphore::new(opts_max_connections)),
        }
    }

    /// What a WebSocket tunnel takes from here.
    pub(crate) fn tunnel_ctx(&self) -> upgrade::TunnelCtx {
        upgrade::TunnelCtx {
            guard: self.guard.clone(),
            metrics: self.metrics.clone(),
            stop: self.stop.clone(),
            idle: self.opts.idle_timeout,
        }
    }

    fn next_rr(&self, key: &BackendKey) -> usize {
        let h = fnv(key.namespace.as_bytes())
            ^ fnv(key.service.as_bytes()).rotate_left(1)
            ^ u64::from(key.port);
        self.rr[(h as usize) % RR_SLOTS].fetch_add(1, Ordering::Relaxed)
    }
}

/// What a request needs to know about its connection.
#[derive(Debug)]
pub struct ConnCtx {
    pub gw_namespace: String,
    pub gw_name: String,
    /// The listener port as written in the Gateway (bound port minus offset).
    pub spec_port: u16,
    pub https: bool,
    pub peer: SocketAddr,
    /// Index of the worker runtime serving this connection.
    pub worker: usize,
    /// TLS server name, for listener selection.
    pub sni: Option<String>,
    /// The peer's IP as a header value (`x-forwarded-for`), formatted once
    /// per connection.
    pub peer_ip: HeaderValue,
    /// HTTP/1.1 serves one request at a time, so its requests share one
    /// timer for the request timeout, moved forward per request (cheap: the
    /// timer wheel entry stays put until it fires). h2 requests use their
    /// own (`None`).
    pub request_timer: Option<std::sync::Mutex<Pin<Box<tokio::time::Sleep>>>>,
    /// Whether responses may carry the backend's header fields unparsed
    /// ([`Reply::raw_head`]): the HTTP/1.1 server can write them, hyper's h2
    /// server cannot.
    pub raw_heads: bool,
}

impl ConnCtx {
    /// The gateway and protocol served on the bound socket `local`, from the
    /// current table; `None` if no listener uses it any more.
    pub(crate) fn lookup(
        shared: &Shared,
        local: SocketAddr,
        peer: SocketAddr,
        worker: usize,
    ) -> Option<ConnCtx> {
        let table = shared.table.borrow().clone();
        let gw = table
            .gateways
            .iter()
            .find(|g| IpAddr::V4(g.address) == local.ip())?;
        let spec_port = local.port().checked_sub(shared.opts.port_offset)?;
        let mut listeners = gw
            .listeners
            .iter()
            .filter(|l| l.port == spec_port)
            .peekable();
        let first = listeners.peek()?;
        Some(ConnCtx {
            gw_namespace: gw.namespace.clone(),
            gw_name: gw.name.clone(),
            spec_port,
            https: first.protocol == ListenerProtocol::Https,
            peer,
            worker,
            sni: None,
            peer_ip: ip_header(peer.ip()),
            request_timer: None,
            raw_heads: false,
        })
    }
}

fn ip_header(ip: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&ip.to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Response body of the proxy: a local reply or a backend's streamed body.
pub enum ProxyBody {
    Local(Option<Bytes>),
    Upstream(UpstreamBody),
    /// A streamed backend body under the route's request timeout.
    Deadline(UpstreamBody, Pin<Box<tokio::time::Sleep>>),
}

impl ProxyBody {
    /// When the route's request timeout cuts this body, if it does.
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        match self {
            ProxyBody::Deadline(_, sleep) => Some(sleep.deadline()),
            _ => None,
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ProxyBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream(b) => Pin::new(b).poll_frame(cx),
            // The deadline is checked before the backend: a backend with data always ready
            // must not outrun it (an h2 client that reads slowly polls this body only when it
            // opens its window, and each poll would find data).
            ProxyBody::Deadline(b, sleep) => {
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "request timeout while the response was streaming",
                    ))));
                }
                Pin::new(b).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local(b) => b.is_none(),
            ProxyBody::Upstream(b) | ProxyBody::Deadline(b, _) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Upstream(b) | ProxyBody::Deadline(b, _) => b.size_hint(),
        }
    }
}

fn server_value() -> HeaderValue {
    HeaderValue::from_static(AGC_SERVER_NAME)
}

/// A reply generated by the proxy itself.
pub fn local_reply(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Local(
        (!body.is_empty()).then(|| Bytes::from_static(body.as_bytes())),
    ));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::SERVER, server_value());
    if !body.is_empty() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}

/// Logging and metrics labels of one request, and what its reply carries
/// besides the response.
struct Outcome {
    route: Option<Arc<RouteRuntime>>,
    upstream: Option<SocketAddr>,
    raw_head: Option<RawHead>,
    tunnel: Option<upgrade::Tunnel>,
}

/// What [`handle`] answers.
pub struct Reply {
    pub response: Response<ProxyBody>,
    /// The backend's header fields as received, for an HTTP/1.1 client when
    /// no filter or cookie changes them: the connection's encoder copies
    /// them, leaving out hop-by-hop fields and `server`, and adds AGC's
    /// `server`. `response`'s own headers are then empty.
    pub raw_head: Option<RawHead>,
    /// For a 101 answer to an `Upgrade` request, the backend's switched
    /// connection, for the connection's server to join to the client once
    /// the 101 is written.
    pub tunnel: Option<upgrade::Tunnel>,
}

/// Handles one client request; never fails (errors become responses).
pub async fn handle<B>(shared: &Arc<Shared>, conn: &Arc<ConnCtx>, req: Request<B>) -> Reply
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let log = tracing::enabled!(target: "access", tracing::Level::DEBUG).then(|| {
        (
            Instant::now(),
            req.method().clone(),
            route::RequestParts::from_http(req.method(), req.uri(), req.headers())
                .host
                .to_owned(),
            req.uri().path().to_owned(),
        )
    });
    let mut outcome = Outcome {
        route: None,
        upstream: None,
        raw_head: None,
        tunnel: None,
    };
    let resp = route_and_forward(shared, conn, req, &mut outcome).await;
    let status = resp.status().as_u16();
    shared.metrics.request(
        conn.worker,
        (&conn.gw_namespace, &conn.gw_name),
        outcome
            .route
            .as_ref()
            .map(|r| (r.namespace.as_str(), r.name.as_str())),
        status,
    );
    if let Some((start, method, host, path)) = log {
        tracing::debug!(target: "access", %method, %host, %path, status,
            upstream = ?outcome.upstream, duration_us = start.elapsed().as_micros() as u64, "request");
    }
    Reply {
        response: resp,
        raw_head: outcome.raw_head,
        tunnel: outcome.tunnel,
    }
}

async fn route_and_forward<B>(
    shared: &Arc<Shared>,
    conn: &ConnCtx,
    mut req: Request<B>,
    outcome: &mut Outcome,
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // Routed and forwarded as normalised (`proxy::normalize`): a path that climbs out of a
    // prefix with `..` is matched where it lands.
    match super::normalize::normalize_path(req.uri().path()) {
        None => return local_reply(StatusCode::BAD_REQUEST, ""),
        Some(std::borrow::Cow::Borrowed(_)) => {}
        Some(std::borrow::Cow::Owned(path)) => {
            let pq = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let mut parts = req.uri().clone().into_parts();
            match http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)) {
                Ok(p) => parts.path_and_query = Some(p),
                Err(_) => return local_reply(StatusCode::BAD_REQUEST, ""),
            }
            match http::Uri::from_parts(parts) {
                Ok(u) => *req.uri_mut() = u,
                Err(_) => return local_reply(StatusCode::BAD_REQUEST, ""),
            }
        }
    }
    // h2's `:authority` (and an HTTP/1.1 Host, checked at parse time too) must be host[:port].
    let authority_ok = match req.uri().authority() {
        Some(a) => !a.as_str().contains('@') && super::normalize::valid_host(a.as_str().as_bytes()),
        None => req
            .headers()
            .get(header::HOST)
            .is_none_or(|h| super::normalize::valid_host(h.as_bytes())),
    };
    if !authority_ok {
        return local_reply(StatusCode::BAD_REQUEST, "");
    }
    if req.version() == http::Version::HTTP_2 {
        // h2 → HTTP/1.1: the backend's Host is `:authority` (the request was routed by it,
        // RFC 9113 §8.3.1), and repeated cookie fields become one, joined with "; " (§8.2.3).
        if let Some(host) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(header::HOST, host);
        }
        let cookies: Vec<&[u8]> = req
            .headers()
            .get_all(header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        if cookies.len() > 1 {
            let joined = cookies.join(&b"; "[..]);
            if let Ok(v) = HeaderValue::from_bytes(&joined) {
                req.headers_mut().insert(header::COOKIE, v);
            }
        }
    }
    let table = shared.table.borrow().clone();
    let Some(gw) = table.gateway(&conn.gw_namespace, &conn.gw_name) else {
        return local_reply(StatusCode::NOT_FOUND, "");
    };
    let m = {
        let parts = route::RequestParts::from_http(req.method(), req.uri(), req.headers());
        let host = conn.sni.as_deref().unwrap_or(parts.host);
        let Some(listener) = route::select_listener(&gw.listeners, conn.spec_port, host)
            .or_else(|| route::select_listener(&gw.listeners, conn.spec_port, parts.host))
        else {
            return local_reply(StatusCode::NOT_FOUND, "");
        };
        let Some(m) = route::find(&listener.routes, &parts) else {
            return local_reply(StatusCode::NOT_FOUND, "");
        };
        (listener, m)
    };
    let (listener, m) = m;
    outcome.route = Some(m.route.clone());

    let mut fx = Effects::default();
    if let Some(resp) = apply_filters(&m.rule.filters, &mut req, &mut fx, m, listener) {
        return resp;
    }
    let Some(wb) = route::pick_backend(m.rule, fastrand::u32(..)) else {
        return local_reply(StatusCode::INTERNAL_SERVER_ERROR, "");
    };
    let key = match &wb.target {
        BackendTarget::Service(k) => k,
        BackendTarget::Invalid { reason } => {
            tracing::debug!(route = %m.route.name, %reason, "invalid backend share: 500");
            return local_reply(StatusCode::INTERNAL_SERVER_ERROR, "");
        }
    };
    if let Some(resp) = apply_filters(&wb.filters, &mut req, &mut fx, m, listener) {
        return resp;
    }
    let Some(backend) = table.backend(key) else {
        return local_reply(StatusCode::INTERNAL_SERVER_ERROR, "");
    };
    if backend.endpoints.is_empty() {
        // troubleshooting-guide.md: no endpoints at all is a 500.
        return local_reply(StatusCode::INTERNAL_SERVER_ERROR, "");
    }
    let health = shared.health.borrow().clone();
    let affinity = m.rule.session_affinity.as_ref();
    let pinned = affinity.and_then(|a| affinity_hint(a, req.headers()));
    let Some((addr, alt, pinned_ok)) = choose_endpoint(shared, backend, &health, pinned.as_ref())
    else {
        return local_reply(StatusCode::SERVICE_UNAVAILABLE, NO_HEALTHY_UPSTREAM);
    };
    // HTTPRouteTimeouts (GEP-1742): `backendRequest` bounds one request to a backend, "from
    // when the request first starts being sent from the gateway to when the full response has
    // been received", `request` the whole exchange; both start here (one attempt per request,
    // a refused connect aside), so the earlier deadline is the one that cuts: a 504 before the
    // response head, the stream cut after it.
    let timeout = match (
        m.rule.timeouts.effective_request(),
        m.rule.timeouts.effective_backend_request(),
    ) {
        (Some(r), Some(b)) => Some(r.min(b)),
        (r, b) => r.or(b),
    };
    let set_cookie = match affinity {
        Some(SessionAffinity::ManagedCookie) if !pinned_ok => Some(managed_cookie(conn.https)),
        _ => None,
    };
    let (is_upgrade, fwd) = prepare_upstream(&mut req, conn, &fx);
    let pool = &shared.pools[conn.worker % shared.pools.len()];
    let mirrors = if is_upgrade { &[][..] } else { &fx.mirrors[..] };
    let req = start_mirrors(shared, &table, &health, pool, req, mirrors, timeout, &fwd);
    drop(health);

    let started = Instant::now();
    let tls = backend.app_protocol_tls.then(|| TlsTarget {
        sni: backend.tls_sni.as_deref(),
    });
    let send = std::pin::pin!(pool.forward(addr, alt, req, is_upgrade, tls, Some(&fwd)));
    let result = match (timeout, &conn.request_timer) {
        (Some(d), Some(timer)) => {
            let deadline = tokio::time::Instant::from_std(started) + d;
            lock(timer).as_mut().reset(deadline);
            match (WithTimer { fut: send, timer }).await {
                Some(r) => r,
                None => return local_reply(StatusCode::GATEWAY_TIMEOUT, ""),
            }
        }
        (Some(d), None) => match tokio::time::timeout(d, send).await {
            Ok(r) => r,
            Err(_) => return local_reply(StatusCode::GATEWAY_TIMEOUT, ""),
        },
        (None, _) => send.await,
    };
    let Forwarded {
        response,
        head,
        used,
        upgraded,
    } = match result {
        Ok(r) => r,
        // The client's own body was malformed (bad chunk framing) or cut
        // short: its error, not the backend's.
        Err(error @ UpstreamError::ClientBody(_)) => {
            tracing::debug!(%error, "request body failed: 400");
            return local_reply(StatusCode::BAD_REQUEST, "");
        }
        Err(error) => {
            tracing::debug!(%error, "backend request failed: 502");
            return local_reply(StatusCode::BAD_GATEWAY, "");
        }
    };
    outcome.upstream = Some(used);
    shared
        .metrics
        .upstream_latency(conn.worker, started.elapsed());

    let (mut parts, body) = response.into_parts();
    if let Some(up) = upgraded {
        outcome.tunnel = Some(upgrade::Tunnel {
            up,
            info: upgrade::TunnelInfo {
                upstream: used,
                peer: conn.peer,
                gateway: format!("{}/{}", conn.gw_namespace, conn.gw_name),
            },
        });
        parts.headers = head.to_header_map(1);
        parts.headers.insert(header::SERVER, server_value());
        return Response::from_parts(parts, ProxyBody::Local(None));
    }
    if conn.raw_heads && fx.response_headers.is_empty() && fx.cors.is_none() && set_cookie.is_none()
    {
        outcome.raw_head = Some(head);
    } else {
        parts.headers = head.to_header_map(2);
        strip_hop_by_hop(&mut parts.headers, false);
        parts.headers.remove(ORCA_HEADER);
        parts.headers.insert(header::SERVER, server_value());
        for m in &fx.response_headers {
            route::apply_header_modifier(m, &mut parts.headers);
        }
        if let Some((found, vary)) = fx.cors.take() {
            add_cors(&mut parts.headers, found, vary);
        }
        if let Some(c) = set_cookie {
            if let Some(v) = c(used) {
                parts.headers.append(header::SET_COOKIE, v);
            }
        }
    }
    // AGC's request timeout is strict, even while the response streams.
    match timeout {
        Some(d) if !body.is_complete() => {
            let deadline = tokio::time::Instant::from_std(started) + d;
            let sleep = Box::pin(tokio::time::sleep_until(deadline));
            Response::from_parts(parts, ProxyBody::Deadline(body, sleep))
        }
        _ => Response::from_parts(parts, ProxyBody::Upstream(body)),
    }
}

/// Starts the request's mirrors, if any: each gets a copy of the request
/// (after the rule's filters and the forwarding headers) on a healthy
/// endpoint of its backend, and the returned request tees its body to them.
/// A mirror whose backend is invalid or has no healthy endpoint is skipped.
#[allow(clippy::too_many_arguments)]
fn start_mirrors<B: Body<Data = Bytes>>(
    shared: &Arc<Shared>,
    table: &RoutingTable,
    health: &HealthView,
    pool: &Arc<Pool>,
    req: Request<B>,
    mirrors: &[&RequestMirror],
    timeout: Option<std::time::Duration>,
    fwd: &Forwarding,
) -> Request<mirror::Tee<B>> {
    let (parts, body) = req.into_parts();
    let (tee, copies) = mirror::Tee::new(body, mirrors.len());
    for (m, copy) in mirrors.iter().zip(copies) {
        let BackendTarget::Service(key) = &m.target else {
            continue;
        };
        let Some((b, (addr, _, _))) = table
            .backend(key)
            .and_then(|b| Some((b, choose_endpoint(shared, b, health, None)?)))
        else {
            tracing::debug!(backend = %key, "mirror skipped: no healthy endpoint");
            continue;
        };
        let tls = b.app_protocol_tls.then(|| b.tls_sni.clone());
        // The Host stays as it is: Envoy appends `-shadow` to a mirror's
        // Host by default, but AGC's docs do not say whether AGC does.
        let mut r = Request::new(copy);
        *r.method_mut() = parts.method.clone();
        *r.uri_mut() = parts.uri.clone();
        *r.headers_mut() = parts.headers.clone();
        // Mirrors are fire-and-forget; a disabled request timeout still gets
        // a bound so a stuck mirror cannot pin a connection forever.
        let limit = timeout.unwrap_or(crate::routing::AGC_DEFAULT_REQUEST_TIMEOUT);
        mirror::spawn(pool.clone(), addr, r, limit, tls, fwd.clone());
    }
    Request::from_parts(parts, tee)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `fut` unless the connection's request timer fires first (`None`). The
/// timer is locked only inside `poll`, so the future stays `Send`.
struct WithTimer<'a, F> {
    fut: F,
    timer: &'a std::sync::Mutex<Pin<Box<tokio::time::Sleep>>>,
}

impl<F: Future + Unpin> Future for WithTimer<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = Pin::new(&mut self.fut).poll(cx) {
            return Poll::Ready(Some(v));
        }
        if lock(self.timer).as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

/// Effects of filters to apply when building the upstream request/response.
#[derive(Default)]
struct Effects<'a> {
    response_headers: Vec<&'a HeaderModifier>,
    /// CORS headers for the response, and whether it must say `Vary: Origin`.
    cors: Option<(Vec<(HeaderName, String)>, bool)>,
    /// Mirrors selected for this request (their fraction already drawn).
    mirrors: Vec<&'a RequestMirror>,
    host: Option<&'a str>,
    path: Option<String>,
}

/// Runs filters in order; returns a response when one answers the request
/// (redirect, unsupported filter).
fn apply_filters<'a, B>(
    filters: &'a [Filter],
    req: &mut Request<B>,
    fx: &mut Effects<'a>,
    m: route::RouteMatch<'a>,
    listener: &crate::routing::ListenerRuntime,
) -> Option<Response<ProxyBody>> {
    for f in filters {
        match f {
            Filter::RequestHeaderModifier(h) => route::apply_header_modifier(h, req.headers_mut()),
            Filter::ResponseHeaderModifier(h) => fx.response_headers.push(h),
            Filter::RequestRedirect(r) => {
                let parts = route::RequestParts::from_http(req.method(), req.uri(), req.headers());
                // The listener's own port, as AGC would answer (a scheme change already uses the
                // scheme's well-known port); --port-offset is a sandbox detail not to leak here.
                let port = listener.port;
                let location = route::redirect_location(
                    r,
                    &m.matched.path,
                    &parts,
                    port,
                    listener.protocol.scheme(),
                );
                let mut resp = local_reply(route::redirect_status(r), "");
                match HeaderValue::from_str(&location) {
                    Ok(v) => {
                        resp.headers_mut().insert(header::LOCATION, v);
                    }
                    Err(_) => return Some(local_reply(StatusCode::INTERNAL_SERVER_ERROR, "")),
                }
                return Some(resp);
            }
            Filter::UrlRewrite(u) => {
                if let Some(h) = &u.hostname {
                    fx.host = Some(h);
                }
                if let Some(p) = &u.path {
                    fx.path = Some(route::rewrite_path(p, &m.matched.path, req.uri().path()));
                }
            }
            Filter::RequestMirror(mirror) => {
                if fastrand::u32(..mirror.denominator.max(1)) < mirror.numerator {
                    fx.mirrors.push(mirror);
                }
            }
            Filter::Cors(p) => {
                let origin = req
                    .headers()
                    .get(header::ORIGIN)
                    .and_then(|v| v.to_str().ok());
                let vary = cors::varies_by_origin(p);
                if cors::is_preflight(req.method(), req.headers()) {
                    // The gateway answers preflights itself, never the backend (AGC's article);
                    // a disallowed origin gets the same 200 without CORS headers (GEP-1767).
                    let h = req.headers();
                    let text = |n| h.get(n).and_then(|v: &HeaderValue| v.to_str().ok());
                    let found = cors::preflight_headers(
                        p,
                        origin,
                        text(header::ACCESS_CONTROL_REQUEST_METHOD),
                        text(header::ACCESS_CONTROL_REQUEST_HEADERS),
                    );
                    let mut resp = local_reply(StatusCode::OK, "");
                    add_cors(resp.headers_mut(), found.unwrap_or_default(), vary);
                    return Some(resp);
                }
                fx.cors = Some((cors::response_headers(p, origin).unwrap_or_default(), vary));
            }
            Filter::Unsupported { reason } => {
                tracing::debug!(%reason, "unsupported filter: 500");
                return Some(local_reply(StatusCode::INTERNAL_SERVER_ERROR, ""));
            }
        }
    }
    None
}

/// Sets the CORS headers computed for a response (replacing any the backend sent, so the
/// policy is what the browser sees) and `Vary: Origin` when the answer depends on it.
fn add_cors(h: &mut HeaderMap, found: Vec<(HeaderName, String)>, vary: bool) {
    for (name, value) in found {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    if vary {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

/// What the request says about a pinned endpoint.
enum Hint {
    /// Managed cookie value (hash of an endpoint address).
    Managed(u64),
    /// Hash of the application cookie's value.
    App(u64),
}

fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v.trim_matches('"'))
        })
}

fn affinity_hint(a: &SessionAffinity, headers: &HeaderMap) -> Option<Hint> {
    match a {
        SessionAffinity::ManagedCookie => cookie(headers, MANAGED_COOKIE_NAME)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .map(Hint::Managed),
        SessionAffinity::ApplicationCookie { name, .. } => {
            cookie(headers, name).map(|v| Hint::App(fnv(v.as_bytes())))
        }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Opaque, stable id of an endpoint for the managed affinity cookie.
fn endpoint_id(addr: SocketAddr) -> u64 {
    fnv(addr.to_string().as_bytes())
}

type CookieFn = fn(SocketAddr) -> Option<HeaderValue>;

fn managed_cookie(https: bool) -> CookieFn {
    fn plain(a: SocketAddr) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{MANAGED_COOKIE_NAME}={:016x}; Path=/; Max-Age={}; HttpOnly",
            endpoint_id(a),
            MANAGED_COOKIE_LIFETIME.as_secs()
        ))
        .ok()
    }
    fn secure(a: SocketAddr) -> Option<HeaderValue> {
        HeaderValue::from_str(&format!(
            "{MANAGED_COOKIE_NAME}={:016x}; Path=/; Max-Age={}; HttpOnly; Secure",
            endpoint_id(a),
            MANAGED_COOKIE_LIFETIME.as_secs()
        ))
        .ok()
    }
    if https {
        secure
    } else {
        plain
    }
}

/// Picks an endpoint: `(chosen, alternative for a connect retry, whether a
/// managed-cookie pin was honoured)`. `None` when no endpoint is ready and
/// healthy.
fn choose_endpoint(
    shared: &Shared,
    backend: &BackendRuntime,
    health: &HealthView,
    hint: Option<&Hint>,
) -> Option<(SocketAddr, Option<SocketAddr>, bool)> {
    // One lookup of the backend's health, then plain scans.
    let probed = health.backend(&backend.key).unwrap_or_default();
    let ok = |e: &&crate::routing::Endpoint| {
        e.ready
            && probed
                .iter()
                .any(|h| h.addr == e.addr && h.status == HealthStatus::Healthy)
    };
    let n = backend.endpoints.iter().filter(ok).count();
    if n == 0 {
        return None;
    }
    let nth = |i: usize| {
        backend
            .endpoints
            .iter()
            .filter(ok)
            .nth(i % n)
            .map(|e| e.addr)
    };
    let alt = |i: usize| if n > 1 { nth(i + 1) } else { None };
    match hint {
        Some(Hint::Managed(id)) => {
            if let Some(i) = backend
                .endpoints
                .iter()
                .filter(ok)
                .position(|e| endpoint_id(e.addr) == *id)
            {
                return Some((nth(i)?, alt(i), true));
            }
        }
        Some(Hint::App(h)) => {
            let i = (*h % n as u64) as usize;
            return Some((nth(i)?, alt(i), false));
        }
        None => {}
    }
    let i = shared.next_rr(&backend.key);
    Some((nth(i)?, alt(i), false))
}

fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether a field name is hop-by-hop (RFC 9110 §7.6.1) by itself: not to
/// be forwarded. Names listed in `Connection` are too; see
/// [`named_in_connection`].
/// The ORCA load report a backend adds to its responses: "consumed by Application Gateway for
/// Containers and **not** forwarded to the downstream client" (load-balancing-strategies.md).
pub(crate) const ORCA_HEADER: &str = "endpoint-load-metrics";

pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 7] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    ];
    NAMES
        .iter()
        .any(|n| n.len() == name.len() && n.eq_ignore_ascii_case(name))
}

/// Whether `name` is listed in one of the `Connection` field values.
pub(crate) fn named_in_connection<'a>(
    mut connection: impl Iterator<Item = &'a [u8]>,
    name: &[u8],
) -> bool {
    connection.any(|v| {
        v.split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
    })
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), including those named in
/// `Connection`. For upgrades, `Connection: upgrade` and `Upgrade` stay.
fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    fn tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| {
                // Host and the body's framing are end-to-end: `Connection: host` must not
                // strip them from the backend request.
                !(t.eq_ignore_ascii_case("close")
                    || t.eq_ignore_ascii_case("keep-alive")
                    || t.eq_ignore_ascii_case("upgrade")
                    || t.eq_ignore_ascii_case("host")
                    || t.eq_ignore_ascii_case("content-length")
                    || t.is_empty())
            })
    }
    // One pass over the names instead of a hash lookup per hop-by-hop
    // header: usually none is present.
    let (mut conn, mut hop, mut upg) = (false, false, false);
    for n in headers.keys() {
        if n == header::CONNECTION {
            conn = true;
        } else if n == header::UPGRADE {
            upg = true;
        } else if n == header::TE
            || n == header::TRAILER
            || n == header::TRANSFER_ENCODING
            || n == KEEP_ALIVE
            || n == PROXY_CONNECTION
        {
            hop = true;
        }
    }
    // Allocate only when `Connection` names extra headers (rare).
    if conn && tokens(headers).next().is_some() {
        let named: Vec<HeaderName> = tokens(headers)
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for n in named {
            headers.remove(n);
        }
    }
    if hop {
        headers.remove(&KEEP_ALIVE);
        headers.remove(&PROXY_CONNECTION);
        headers.remove(header::TE);
        headers.remove(header::TRAILER);
        headers.remove(header::TRANSFER_ENCODING);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        if conn {
            headers.remove(header::CONNECTION);
        }
        if upg {
            headers.remove(header::UPGRADE);
        }
    }
}

/// Turns the client request into the backend request. Returns whether it
/// is an upgrade, and the forwarding fields to add: the head encoder
/// writes them after the request's own fields, which saves three inserts
/// into the request's map per request.
fn prepare_upstream<B>(
    req: &mut Request<B>,
    conn: &ConnCtx,
    fx: &Effects<'_>,
) -> (bool, Forwarding) {
    let upgrade = req.version() == Version::HTTP_11 && is_upgrade_request(req.headers());
    // Origin-form target; h2's :authority becomes Host.
    let authority = req.uri().authority().cloned();
    let new_pq = match &fx.path {
        Some(p) => {
            let s = match req.uri().query() {
                Some(q) => format!("{p}?{q}"),
                None => p.clone(),
            };
            PathAndQuery::try_from(s).ok()
        }
        None => req.uri().path_and_query().cloned(),
    };
    let pq = new_pq.unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(pq);
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    strip_hop_by_hop(headers, upgrade);
    if let Some(h) = fx.host.and_then(|h| HeaderValue::from_str(h).ok()) {
        headers.insert(header::HOST, h);
    } else if !headers.contains_key(header::HOST) {
        if let Some(a) = authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()) {
            headers.insert(header::HOST, a);
        }
    }
    // One pass over the names instead of three lookups: clients rarely send
    // these.
    let (mut xff, mut xfp, mut rid) = (false, false, false);
    for name in headers.keys() {
        xff |= *name == X_FORWARDED_FOR;
        xfp |= *name == X_FORWARDED_PROTO;
        rid |= *name == X_REQUEST_ID;
    }
    let mut fwd = Forwarding {
        xff_prev: None,
        peer_ip: conn.peer_ip.clone(),
        proto: if conn.https { "https" } else { "http" },
        request_id: None,
    };
    if xff {
        fwd.xff_prev = headers
            .get(&X_FORWARDED_FOR)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        headers.remove(&X_FORWARDED_FOR);
    }
    if xfp {
        headers.remove(&X_FORWARDED_PROTO);
    }
    if !rid {
        let id = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        id.hyphenated().encode_lower(&mut buf);
        fwd.request_id = Some(buf);
    }
    (upgrade, fwd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-private"),
        );
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.get("x-private").is_none());
        assert!(h.get(header::CONNECTION).is_none());
        assert!(h.get("keep-alive").is_none());
        assert!(h.get(header::TRANSFER_ENCODING).is_none());
        assert!(h.get("x-keep").is_some());
    }

    #[test]
    fn hop_by_hop_names_are_recognised_in_any_case() {
        for n in [
            "Connection",
            "keep-alive",
            "Proxy-Connection",
            "TE",
            "trailer",
        ] {
            assert!(is_hop_by_hop(n.as_bytes()), "{n}");
        }
        assert!(is_hop_by_hop(b"Transfer-Encoding") && is_hop_by_hop(b"upgrade"));
        for n in ["content-length", "server", "tee", "x-upgrade"] {
            assert!(!is_hop_by_hop(n.as_bytes()), "{n}");
        }
        let conn = [&b"keep-alive, X-Private"[..], b"close"];
        assert!(named_in_connection(conn.iter().copied(), b"x-private"));
        assert!(!named_in_connection(conn.iter().copied(), b"x-public"));
    }

    #[test]
    fn upgrade_keeps_upgrade_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("sec-websocket-protocol", HeaderValue::from_static("chat"));
        assert!(is_upgrade_request(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h.get(header::UPGRADE).unwrap(), "websocket");
        assert_eq!(h.get(header::CONNECTION).unwrap(), "upgrade");
        assert_eq!(h.get("sec-websocket-protocol").unwrap(), "chat");
    }

    #[test]
    fn cookies_are_parsed() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; AGCAffinity=00ff"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("sid=\"xyz\""));
        assert_eq!(cookie(&h, "AGCAffinity"), Some("00ff"));
        assert_eq!(cookie(&h, "sid"), Some("xyz"));
        assert_eq!(cookie(&h, "b"), None);
        assert!(matches!(
            affinity_hint(&SessionAffinity::ManagedCookie, &h),
            Some(Hint::Managed(0xff))
        ));
    }

    #[test]
    fn local_503_is_agc_exact() {
        let r = local_reply(StatusCode::SERVICE_UNAVAILABLE, NO_HEALTHY_UPSTREAM);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(r.headers()[header::CONTENT_LENGTH], "19");
        assert_eq!(r.headers()[header::SERVER], AGC_SERVER_NAME);
        assert_eq!(NO_HEALTHY_UPSTREAM.len(), 19);
    }
}
