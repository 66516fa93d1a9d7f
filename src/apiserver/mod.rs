//! A Kubernetes-compatible API server that real kubectl (1.27–1.33) drives.
//!
//! What kubectl sends and needs was observed on the wire (`../shared/reference/kubectl-contract.md`):
//! legacy discovery, `/openapi/v3` documents (kubectl 1.29+ then lets the server validate) and
//! `/openapi/v2` (1.27/1.28's check, `explain --output=plaintext-openapiv2`),
//! JSON objects, Status errors, chunked watch streams, and Table responses for `kubectl get`.
//! Every request is answered from the [`Store`]; nothing here holds state of its own.
//!
//! The front door ([`gate`]) is stricter than kube-apiserver on purpose: the API listens on a
//! developer's machine, where any web page can send requests to loopback. So besides the
//! credential (401), a request with an `Origin` header (a browser) or a `Host` that is not the
//! address the server bound (DNS rebinding) is refused (403), and bodies must be JSON, YAML,
//! protobuf or a patch type (415, as kube-apiserver answers).

mod crd;
mod defaults;
mod discovery;
mod errors;
mod gate;
mod handlers;
mod jsonpath;
pub mod openapi;
mod options;
mod patch;
mod podlogs;
mod protobuf;
mod smp;
mod swagger;
mod table;
pub mod validation;

pub use errors::ApiError;

use crate::store::Store;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Response body type: whole JSON documents, or a watch stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Connection limits of the API port.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at most; more are closed on accept.
    pub max_connections: usize,
    /// A TLS handshake must finish within this.
    pub handshake_timeout: std::time::Duration,
    /// A request head must arrive within this (also how long a keep-alive connection may sit
    /// idle): kube-apiserver's `ReadHeaderTimeout` is 32 s.
    pub header_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            handshake_timeout: std::time::Duration::from_secs(10),
            header_timeout: std::time::Duration::from_secs(32),
        }
    }
}

/// Largest request body accepted (kube-apiserver's limit is 3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Pod logs, provided by the workload simulator (`GET .../pods/<name>/log`).
pub trait PodLogs: Send + Sync + 'static {
    /// The log lines of one container (`None`: the pod's only or first container), each with
    /// when it was written, or an error message shown to the user.
    fn logs(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
    ) -> Result<Vec<(std::time::SystemTime, String)>, String>;
}

/// Extra endpoints other modules serve on the API port (backend health, metrics).
pub trait Extension: Send + Sync + 'static {
    /// Answers a GET for `path` if this extension owns it.
    fn get(&self, path: &str, query: &Query) -> Option<Response<Body>>;
}

/// Parsed query parameters, every value of a repeated one kept: kube's parameter codec gives a
/// scalar option the first value (apimachinery's `Convert_Slice_string_To_string`) and a list
/// option (`dryRun`) all of them, so `?dryRun=All&dryRun=` is refused, not a real write.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            out.entry(percent_decode(k))
                .or_default()
                .push(percent_decode(v));
        }
        Query(out)
    }

    /// The first value, as for a scalar option.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }

    /// Every value, as for a list option.
    pub fn get_all(&self, k: &str) -> &[String] {
        self.0.get(k).map_or(&[], Vec::as_slice)
    }

    /// `true`/`1` flags.
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The API server: shared by every connection.
pub struct ApiServer {
    pub(crate) store: Store,
    token: Option<String>,
    /// The address `serve` bound, for the Host check.
    bound: std::sync::OnceLock<std::net::SocketAddr>,
    limits: Limits,
    logs: Option<Arc<dyn PodLogs>>,
    extensions: Vec<Arc<dyn Extension>>,
    /// Flips to `true` on shutdown, ending open watch streams.
    pub(crate) stopping: watch::Receiver<bool>,
    stop: watch::Sender<bool>,
}

impl ApiServer {
    /// An API server over `store`. With `token`, every request but the health checks must carry
    /// `Authorization: Bearer <token>`.
    pub fn new(store: Store, token: Option<String>) -> ApiServer {
        let (stop, stopping) = watch::channel(false);
        ApiServer {
            store,
            token,
            bound: std::sync::OnceLock::new(),
            limits: Limits::default(),
            logs: None,
            extensions: Vec::new(),
            stopping,
            stop,
        }
    }

    pub fn with_logs(mut self, logs: Arc<dyn PodLogs>) -> ApiServer {
        self.logs = Some(logs);
        self
    }

    pub fn with_extension(mut self, ext: Arc<dyn Extension>) -> ApiServer {
        self.extensions.push(ext);
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> ApiServer {
        self.limits = limits;
        self
    }

    /// Serves connections on `listener` (over TLS with `tls`) until `shutdown` resolves; then
    /// ends watch streams and gives open requests a moment to finish.
    ///
    /// At most `limits.max_connections` connections are open at once; past that a new one is
    /// closed as soon as it is accepted, so a flood of idle sockets costs one accept each and
    /// cannot exhaust the process's file descriptors. A TLS handshake has
    /// `limits.handshake_timeout`, and a request head (or the wait for the next one on a
    /// keep-alive connection) `limits.header_timeout`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
        shutdown: impl Future<Output = ()>,
    ) {
        if let Ok(addr) = listener.local_addr() {
            let _ = self.bound.set(addr);
        }
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let slots = Arc::new(tokio::sync::Semaphore::new(self.limits.max_connections));
        let conns = tokio_util_tracker::Tracker::default();
        let (mut refused, mut last_warned) = (0u64, None);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(s) => s,
                        Err(err) => {
                            tracing::warn!(cause = %err, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        drop(stream);
                        refused += 1;
                        // One line per burst, not one per refused socket.
                        if last_warned.is_none_or(|t: std::time::Instant| t.elapsed() > std::time::Duration::from_secs(10)) {
                            tracing::warn!(%peer, max = self.limits.max_connections, refused, "API connections refused: too many open connections");
                            last_warned = Some(std::time::Instant::now());
                        }
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let api = self.clone();
                    let guard = conns.guard();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        match acceptor {
                            Some(acceptor) => {
                                let handshake = tokio::time::timeout(
                                    api.limits.handshake_timeout,
                                    acceptor.accept(stream),
                                );
                                match handshake.await {
                                    Ok(Ok(tls)) => api.serve_connection(tls).await,
                                    Ok(Err(err)) => tracing::debug!(%peer, cause = %err, "API TLS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "API TLS handshake timed out"),
                                }
                            }
                            None => api.serve_connection(stream).await,
                        }
                        drop(slot);
                        drop(guard);
                    });
                }
            }
        }
        let _ = self.stop.send(true);
        conns.wait(std::time::Duration::from_secs(2)).await;
    }

    async fn serve_connection<I>(self: Arc<Self>, io: I)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let header_timeout = self.limits.header_timeout;
        let api = self;
        let svc = hyper::service::service_fn(move |req| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(io), svc);
        if let Err(err) = conn.await {
            tracing::debug!(cause = %err, "api connection ended with an error");
        }
    }

    /// Handles one request; never fails (errors become Status responses).
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let resp = match self.route(req).await {
            Ok(r) => r,
            Err(err) => error_response(&err),
        };
        tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "api request");
        resp
    }

    async fn route(self: &Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let path = req.uri().path().to_string();
        if matches!(path.as_str(), "/livez" | "/readyz" | "/healthz") {
            return Ok(text(StatusCode::OK, "ok"));
        }
        gate::admit(&req, self.bound.get().copied(), self.token.as_deref())?;
        let query = Query::parse(req.uri().query());
        if req.method() == Method::GET {
            for ext in &self.extensions {
                if let Some(resp) = ext.get(&path, &query) {
                    return Ok(resp);
                }
            }
        }
        let segs: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        match segs.as_slice() {
            ["version"] => Ok(json_response(StatusCode::OK, &discovery::version())),
            ["api"] => Ok(json_response(StatusCode::OK, &discovery::core_versions())),
            ["apis"] => Ok(json_response(StatusCode::OK, &discovery::group_list())),
            ["apis", g] => discovery::group(g)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or(ApiError::NoRoute),
            ["api", v] => discovery::resource_list("", v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or(ApiError::NoRoute),
            ["apis", g, v] => discovery::resource_list(g, v)
                .map(|d| json_response(StatusCode::OK, &d))
                .ok_or(ApiError::NoRoute),
            ["openapi", "v2"] => Ok(openapi_v2(req.headers())),
            ["openapi", "v3", rest @ ..] => openapi_v3(rest),
            ["api", v, rest @ ..] => {
                let target = handlers::Target::parse("", v, rest)?;
                handlers::dispatch(self, target, query, req).await
            }
            ["apis", g, v, rest @ ..] => {
                let target = handlers::Target::parse(g, v, rest)?;
                handlers::dispatch(self, target, query, req).await
            }
            _ => Err(ApiError::NoRoute),
        }
    }
}

/// `/openapi/v2` (see [`swagger`]): JSON or gnostic protobuf as Accept asks, with the ETag
/// kube-openapi sends (`If-None-Match` on it answers 304), or 406 for any other media type.
fn openapi_v2(headers: &http::HeaderMap) -> Response<Body> {
    let header_str = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let format = match swagger::negotiate(header_str(header::ACCEPT)) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::NOT_ACCEPTABLE, &e.to_string()),
    };
    let doc = swagger::document();
    let content_type = match format {
        swagger::Format::Json => "application/json",
        swagger::Format::Protobuf => swagger::PROTOBUF,
    };
    let fresh = header_str(header::IF_NONE_MATCH).is_some_and(|v| {
        v.split(',')
            .any(|t| t.trim() == doc.etag || t.trim() == "*")
    });
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        (StatusCode::OK, doc.body(format))
    };
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(etag) = HeaderValue::from_str(&doc.etag) {
        h.insert(header::ETAG, etag);
    }
    resp
}

/// `/openapi/v3` and its group-version documents (see [`openapi`]).
fn openapi_v3(rest: &[&str]) -> Result<Response<Body>, ApiError> {
    let doc = match rest {
        [] => Some(openapi::root()),
        _ => openapi::group_version_doc(rest),
    };
    doc.map(|d| json_response(StatusCode::OK, &d))
        .ok_or(ApiError::NoRoute)
}

/// Minimal connection tracker so shutdown can wait (bounded) for open connections.
mod tokio_util_tracker {
    use std::sync::Arc;
    use tokio::sync::Notify;

    #[derive(Default, Clone)]
    pub struct Tracker(Arc<(std::sync::atomic::AtomicUsize, Notify)>);

    pub struct Guard(Tracker);

    impl Tracker {
        pub fn guard(&self) -> Guard {
            self.0 .0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Guard(self.clone())
        }

        pub async fn wait(&self, max: std::time::Duration) {
            let deadline = tokio::time::Instant::now() + max;
            while self.0 .0.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                if tokio::time::timeout_at(deadline, self.0 .1.notified())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.0
                 .0
                 .0
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            self.0 .0 .1.notify_waiters();
        }
    }
}

/// Stores the CRDs of the sandbox's own kinds when missing and serves the kinds every stored
/// CRD defines (call once after opening the store).
pub fn start_crds(store: &Store) {
    crd::seed_builtin(store);
}

/// A complete body.
pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON response.
pub fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )
        .body(full(body))
        .expect("static response")
}

/// A plain-text response.
pub fn text(status: StatusCode, s: &str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(full(s.to_string()))
        .expect("static response")
}

/// A Status error response.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let (code, _) = err.code_reason();
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &err.to_status(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decodes_field_selectors() {
        let q = Query::parse(Some(
            "fieldSelector=metadata.name%3Dgateway-01&watch=true&labelSelector=app+in+%28a%29",
        ));
        assert_eq!(q.get("fieldSelector"), Some("metadata.name=gateway-01"));
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app in (a)"));
    }
}
