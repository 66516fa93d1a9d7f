//! Built-in apps a simulated Pod serves in place of its container image.
//!
//! The sandbox runs no containers: each Pod's "container" is one of these small HTTP servers,
//! bound by the caller on the Pod's loopback address and declared ports. The app is chosen from
//! the image repository ([`AppKind::for_image`]) and knows its identity through [`AppContext`].
//! A live [`Fault`] (from the pod annotation `agc-sandbox.dev/fault`, see [`parse_fault`]) can
//! make it unhealthy, slow, or drop its connections.
//!
//! Connections are served by hyper's auto builder (HTTP/1.1 and h2c prior knowledge); WebSocket
//! upgrades are done by hand over HTTP/1.1. Response header names go out Title-Cased on HTTP/1.1
//! (as Go writes canonical names), lower-case on h2.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::sim::wsecho;

/// Which program a container plays, chosen from its image repository (any tag or digest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    /// `trafficcontrollertestimages.azurecr.io/images/websockets-test-backend`: `GET /health`
    /// answers 200 `OK`, `/chat` is a WebSocket echo (frames echoed as sent, close codes echoed),
    /// every other path is 404 (so a default health probe on `/` fails, as the AGC docs warn).
    WebsocketTestBackend,
    /// `gcr.io/k8s-staging-gateway-api/echo-basic` and
    /// `gcr.io/k8s-staging-ingressconformance/echoserver`: the Gateway API conformance echo server
    /// (`/health`, `/status/NNN`, `?delay=`, `/ws`, and the JSON echo of the request elsewhere).
    EchoBasic,
    /// Any other image: the same echo server as [`AppKind::EchoBasic`], so routing tutorials work.
    GenericEcho,
}

impl AppKind {
    /// Picks the app for an image reference such as `repo:tag`, `repo@sha256:...` or `repo`.
    pub fn for_image(image: &str) -> AppKind {
        let image = image.trim();
        let no_digest = image.split('@').next().unwrap_or(image);
        let repo = match no_digest.rfind(':') {
            Some(i) if !no_digest[i..].contains('/') => &no_digest[..i],
            _ => no_digest,
        };
        match repo.to_ascii_lowercase().as_str() {
            "trafficcontrollertestimages.azurecr.io/images/websockets-test-backend" => {
                AppKind::WebsocketTestBackend
            }
            "gcr.io/k8s-staging-ingressconformance/echoserver"
            | "gcr.io/k8s-staging-gateway-api/echo-basic" => AppKind::EchoBasic,
            _ => AppKind::GenericEcho,
        }
    }
}

/// What a Pod's app knows about itself (echo-basic reads these from its env / downward API:
/// `POD_NAME`, `NAMESPACE`, `SERVICE_NAME`, `INGRESS_NAME`; the last two are usually empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppContext {
    /// Pod name, echoed as `pod`.
    pub pod: String,
    /// Pod namespace, echoed as `namespace`.
    pub namespace: String,
    /// Echoed as `service` (empty in the conformance manifests).
    pub service: String,
    /// Echoed as `ingress` (empty in the conformance manifests).
    pub ingress: String,
    /// Where the app prints its per-request line (the container's `kubectl logs`).
    pub log: Option<RequestLog>,
}

/// A container's stdout, as the app writes to it.
#[derive(Clone)]
pub struct RequestLog(pub Arc<dyn Fn(&str) + Send + Sync>);

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestLog")
    }
}

impl PartialEq for RequestLog {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for RequestLog {}

/// Fault injected with the pod annotation `agc-sandbox.dev/fault`; read per request, so it can
/// change live through the `watch` channel given to [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Normal behaviour.
    #[default]
    None,
    /// The health paths `/health`, `/healthz`, `/ready`, `/readyz`, `/livez` and `/` answer
    /// 503 `unhealthy (agc-sandbox.dev/fault)` (after `//` is collapsed, query ignored); every
    /// other path keeps working.
    Unhealthy,
    /// Sleep this long before answering any request (including WebSocket upgrades).
    Slow(Duration),
    /// `down`: the process is gone. The caller should not serve at all (connection refused);
    /// if [`serve`] is running while the fault is `Down`, it closes new connections at once and
    /// drops requests on open ones without answering.
    Down,
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The `agc-sandbox.dev/fault` annotation value is not understood.
    #[error(
        "invalid agc-sandbox.dev/fault value {value:?}: {reason}; accepted values: `unhealthy`, \
         `down`, `slow:<duration>` (Go duration, e.g. slow:500ms, slow:1.5s, slow:2m) or `none`"
    )]
    InvalidFault {
        /// The annotation value as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Parses an `agc-sandbox.dev/fault` annotation value: `unhealthy`, `down`, `slow:<Go duration>`
/// (`ns`, `us`, `ms`, `s`, `m`, `h`, fractions and sums like `1.5s` or `1m30s`), or `none` / empty
/// for no fault. Keywords are case-insensitive and surrounding whitespace is ignored.
pub fn parse_fault(annotation_value: &str) -> Result<Fault, AppError> {
    let v = annotation_value.trim();
    let bad = |reason: String| AppError::InvalidFault {
        value: annotation_value.to_string(),
        reason,
    };
    if v.is_empty() || v.eq_ignore_ascii_case("none") {
        return Ok(Fault::None);
    }
    if v.eq_ignore_ascii_case("unhealthy") {
        return Ok(Fault::Unhealthy);
    }
    if v.eq_ignore_ascii_case("down") {
        return Ok(Fault::Down);
    }
    match v.get(..5).filter(|p| p.eq_ignore_ascii_case("slow:")) {
        Some(_) => match parse_go_duration(v[5..].trim().as_bytes()) {
            Ok((true, d)) if !d.is_zero() => Err(bad("the duration is negative".into())),
            Ok((_, d)) => Ok(Fault::Slow(d)),
            Err(e) => Err(bad(e)),
        },
        None => Err(bad("unknown fault".into())),
    }
}

/// Paths answered 503 under [`Fault::Unhealthy`].
const HEALTH_PATHS: [&str; 6] = ["/health", "/healthz", "/ready", "/readyz", "/livez", "/"];
const UNHEALTHY_BODY: &str = "unhealthy (agc-sandbox.dev/fault)";
/// Request body bytes read and discarded so the connection can be kept alive (as Go does).
const DRAIN_LIMIT: usize = 256 * 1024;

struct Shared {
    kind: AppKind,
    ctx: Arc<AppContext>,
    fault: watch::Receiver<Fault>,
    stop: watch::Receiver<bool>,
}

type Resp = Response<Full<Bytes>>;

/// Serves one app on an already-bound listener until `shutdown` resolves. The fault is read
/// live from `fault`. When `shutdown` fires the listener is closed and every connection,
/// in-flight request and established WebSocket of this server ends promptly.
pub async fn serve(
    listener: tokio::net::TcpListener,
    kind: AppKind,
    ctx: Arc<AppContext>,
    fault: watch::Receiver<Fault>,
    shutdown: impl Future<Output = ()>,
) {
    let (stop_tx, stop) = watch::channel(false);
    let app = Arc::new(Shared {
        kind,
        ctx,
        fault,
        stop,
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().title_case_headers(true);
    let local = listener.local_addr().ok();
    tracing::debug!(kind = ?kind, pod = %app.ctx.pod, addr = ?local, "app serving");
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(pod = %app.ctx.pod, %error, "app accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if *app.fault.borrow() == Fault::Down {
            continue; // dropping the stream closes it
        }
        let (app, builder, mut stop) = (app.clone(), builder.clone(), app.stop.clone());
        tokio::spawn(async move {
            let pod = app.ctx.pod.clone();
            let svc = service_fn(move |req| handle(req, app.clone(), peer));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::select! {
                res = conn => if let Err(error) = res {
                    tracing::debug!(%pod, %peer, %error, "app connection ended with error");
                },
                _ = stop.wait_for(|s| *s) => {}
            }
        });
    }
    let _ = stop_tx.send(true);
    tracing::debug!(kind = ?kind, pod = %app.ctx.pod, addr = ?local, "app stopped");
}

/// One request, cut short when the server shuts down.
async fn handle(
    req: Request<Incoming>,
    app: Arc<Shared>,
    peer: std::net::SocketAddr,
) -> Result<Resp, io::Error> {
    let mut stop = app.stop.clone();
    tokio::select! {
        res = route(req, &app, peer) => res,
        _ = stop.wait_for(|s| *s) => Err(io::Error::other("app shutting down")),
    }
}

async fn route(
    mut req: Request<Incoming>,
    app: &Arc<Shared>,
    peer: std::net::SocketAddr,
) -> Result<Resp, io::Error> {
    let fault = *app.fault.borrow();
    tracing::debug!(pod = %app.ctx.pod, method = %req.method(), uri = %req.uri(), ?fault, "app request");
    match fault {
        Fault::Down => return Err(io::Error::other("fault: down")),
        Fault::Slow(d) => tokio::time::sleep(d).await,
        Fault::None | Fault::Unhealthy => {}
    }
    // Go's echo-basic collapses `//` (non-overlapping, like strings.ReplaceAll) before routing.
    let path = req.uri().path().replace("//", "/");
    if fault == Fault::Unhealthy && HEALTH_PATHS.contains(&path.as_str()) {
        return Ok(reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, UNHEALTHY_BODY));
    }
    let ws_path = match app.kind {
        AppKind::WebsocketTestBackend => "/chat",
        AppKind::EchoBasic | AppKind::GenericEcho => "/ws",
    };
    if path == ws_path {
        return Ok(upgrade(&mut req, app));
    }
    let (parts, mut body) = req.into_parts();
    let mut drained = 0;
    while drained < DRAIN_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => drained += frame.data_ref().map_or(0, Bytes::len),
            _ => break,
        }
    }
    match app.kind {
        AppKind::WebsocketTestBackend if path == "/health" => Ok(reply(StatusCode::OK, TEXT, "OK")),
        AppKind::WebsocketTestBackend => {
            Ok(reply(StatusCode::NOT_FOUND, TEXT, "404 page not found\n"))
        }
        AppKind::EchoBasic | AppKind::GenericEcho => {
            echo_basic(&parts, &path, &app.ctx, peer).await
        }
    }
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// A response; JSON bodies and 404s also get `X-Content-Type-Options: nosniff` (as in Go).
fn reply(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if !content_type.is_empty() {
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if content_type == JSON || status == StatusCode::NOT_FOUND {
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    resp
}

/// The echo-basic mux: `/health`, `/status/...`, everything else echoes the request.
async fn echo_basic(
    parts: &http::request::Parts,
    path: &str,
    ctx: &AppContext,
    peer: std::net::SocketAddr,
) -> Result<Resp, io::Error> {
    let request_uri = request_uri(parts);
    if path == "/health" {
        return Ok(reply(StatusCode::OK, TEXT, "OK"));
    }
    if path.starts_with("/status/") {
        // Go matches `^/status/(\d\d\d)$` against the raw request-URI; any miss is 400.
        let code = request_uri
            .strip_prefix("/status/")
            .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|c| c.parse::<u16>().ok());
        return match code {
            None => Ok(reply(StatusCode::BAD_REQUEST, "", "")),
            // Go panics on WriteHeader(<100); the server drops the connection.
            Some(c) if c < 100 => Err(io::Error::other(format!("invalid status code {c}"))),
            // Go sends 1xx as an interim response, then an empty 200; hyper can only do the 200.
            Some(c) if c < 200 => Ok(reply(StatusCode::OK, "", "")),
            Some(c) => Ok(reply(
                StatusCode::from_u16(c).unwrap_or(StatusCode::OK),
                "",
                "",
            )),
        };
    }
    // echoHandler's first line: `fmt.Printf("Echoing back request made to %s to client
    // (%s)\n", r.RequestURI, r.RemoteAddr)`. The conformance suite's mirror tests find
    // mirrored requests by it in `kubectl logs` (utils/http/mirror.go).
    if let Some(log) = &ctx.log {
        (log.0)(&format!(
            "Echoing back request made to {request_uri} to client ({peer})"
        ));
    }
    if let Some(delay) = query_value(parts.uri.query().unwrap_or(""), "delay") {
        match parse_go_duration(&delay) {
            Ok((false, d)) => tokio::time::sleep(d).await,
            Ok((true, _)) => {}
            Err(message) => {
                let mut body = String::from("{\"message\":");
                json_str(&mut body, message.as_bytes());
                body.push('}');
                return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, JSON, body));
            }
        }
    }
    let mut resp = reply(StatusCode::OK, JSON, echo_json(parts, &request_uri, ctx));
    echo_set_headers(parts, resp.headers_mut());
    Ok(resp)
}

/// `X-Echo-Set-Header: A: 1, B: 2`: each comma-separated item is trimmed and cut at the first
/// `:`; a repeated name gets `,` plus the trimmed value appended; empty or invalid names produce
/// nothing. Go keeps the name's case as given; here HTTP/1.1 writes it Title-Cased. Go then
/// overwrites `Content-Type` / `X-Content-Type-Options`, and framing headers are not echoed.
fn echo_set_headers(parts: &http::request::Parts, out: &mut http::HeaderMap) {
    let mut set: Vec<(String, String)> = Vec::new();
    for list in parts.headers.get_all("x-echo-set-header") {
        for item in String::from_utf8_lossy(list.as_bytes()).split(',') {
            let item = item.trim();
            let (name, value) = item.split_once(':').unwrap_or((item, ""));
            match set.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => {
                    v.push(',');
                    v.push_str(value.trim());
                }
                None => set.push((name.to_string(), value.to_string())),
            }
        }
    }
    for (name, value) in set {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let value = value.trim_matches([' ', '\t', '\r', '\n']);
        let (Ok(value), false) = (
            HeaderValue::from_bytes(value.as_bytes()),
            name == header::CONTENT_TYPE
                || name == header::X_CONTENT_TYPE_OPTIONS
                || name == header::CONTENT_LENGTH
                || name == header::TRANSFER_ENCODING
                || name == header::CONNECTION,
        ) else {
            continue;
        };
        out.append(name, value);
    }
}

/// Go's `r.RequestURI`: the raw request target on HTTP/1 (absolute-form kept), `:path` on h2.
fn request_uri(parts: &http::request::Parts) -> String {
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    if parts.version != Version::HTTP_2 && parts.uri.scheme().is_some() {
        parts.uri.to_string()
    } else {
        pq.to_string()
    }
}

/// The echo body: `json.MarshalIndent(v, "", " ")` of path, host, method, proto, headers
/// (Go-canonical names, sorted, values as lists, `Host` excluded), namespace, ingress, service, pod.
fn echo_json(parts: &http::request::Parts, request_uri: &str, ctx: &AppContext) -> String {
    let h = &parts.headers;
    let host = match parts.uri.authority() {
        Some(a) => a.as_str().as_bytes(),
        None => h.get(header::HOST).map_or(&b""[..], |v| v.as_bytes()),
    };
    // Go's HTTP/1 reader removes Transfer-Encoding (and Content-Length beside it on 1.1).
    let chunked = h.contains_key(header::TRANSFER_ENCODING);
    let mut headers: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for (name, value) in h {
        if name == header::HOST
            || name == header::TRANSFER_ENCODING
            || (chunked && name == header::CONTENT_LENGTH && parts.version == Version::HTTP_11)
        {
            continue;
        }
        headers
            .entry(canonical(name.as_str()))
            .or_default()
            .push(value.as_bytes().to_vec());
    }
    if parts.version == Version::HTTP_2 {
        // Go's h2 server joins split cookie fields.
        if let Some(c) = headers.get_mut("Cookie").filter(|c| c.len() > 1) {
            *c = vec![c.join(&b"; "[..])];
        }
    }
    let proto = format!("{:?}", parts.version);
    let mut out = String::with_capacity(256);
    let fields: [(&str, &[u8]); 4] = [
        ("path", request_uri.as_bytes()),
        ("host", host),
        ("method", parts.method.as_str().as_bytes()),
        ("proto", proto.as_bytes()),
    ];
    out.push('{');
    for (k, v) in fields {
        let _ = write!(out, "\n \"{k}\": ");
        json_str(&mut out, v);
        out.push(',');
    }
    out.push_str("\n \"headers\": {");
    for (i, (name, values)) in headers.iter().enumerate() {
        out.push_str(if i == 0 { "\n  " } else { ",\n  " });
        json_str(&mut out, name.as_bytes());
        out.push_str(": [");
        for (j, v) in values.iter().enumerate() {
            out.push_str(if j == 0 { "\n   " } else { ",\n   " });
            json_str(&mut out, v);
        }
        out.push_str("\n  ]");
    }
    out.push_str(if headers.is_empty() { "}," } else { "\n }," });
    let ctx_fields = [
        ("namespace", &ctx.namespace),
        ("ingress", &ctx.ingress),
        ("service", &ctx.service),
        ("pod", &ctx.pod),
    ];
    for (i, (k, v)) in ctx_fields.into_iter().enumerate() {
        let _ = write!(out, "\n \"{k}\": ");
        json_str(&mut out, v.as_bytes());
        out.push_str(if i == 3 { "\n}" } else { "," });
    }
    out
}

/// Go's `textproto.CanonicalMIMEHeaderKey` for a valid (lower-case) token.
fn canonical(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let c = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            c
        })
        .collect()
}

/// A JSON string as Go's `encoding/json` writes it: `<`, `>`, `&`, U+2028/9 and controls as
/// `\u00XX`-style escapes, `\b \f \n \r \t` short escapes, each invalid UTF-8 byte as `\ufffd`.
fn json_str(out: &mut String, s: &[u8]) {
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
}

/// First value of `key` in a query string, as Go's `url.ParseQuery` + `FormValue` read it.
fn query_value(query: &str, key: &str) -> Option<Vec<u8>> {
    query
        .split('&')
        .filter(|p| !p.is_empty() && !p.contains(';'))
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((unescape(k)?, unescape(v)?))
        })
        .find(|(k, _)| k == key.as_bytes())
        .map(|(_, v)| v)
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a bad escape fails.
fn unescape(s: &str) -> Option<Vec<u8>> {
    let (b, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())?;
                out.push(
                    u8::from_str_radix(hex, 16)
                        .ok()
                        .filter(|_| !hex.starts_with('+'))?,
                );
                i += 3;
            }
            b'+' => (out.push(b' '), i += 1).1,
            c => (out.push(c), i += 1).1,
        }
    }
    Some(out)
}

/// Go's `time.ParseDuration`: returns (negative, magnitude) or Go's error message.
fn parse_go_duration(orig: &[u8]) -> Result<(bool, Duration), String> {
    let invalid = || format!("time: invalid duration {}", go_quote(orig));
    let (neg, mut s) = match orig.first() {
        Some(b'-') => (true, &orig[1..]),
        Some(b'+') => (false, &orig[1..]),
        _ => (false, orig),
    };
    if s == b"0" {
        return Ok((neg, Duration::ZERO));
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        if s[0] != b'.' && !s[0].is_ascii_digit() {
            return Err(invalid());
        }
        let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
        let n = digits(s);
        let mut v: u128 = 0;
        for d in &s[..n] {
            v = v * 10 + u128::from(d - b'0');
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        s = &s[n..];
        let (mut frac, mut scale, mut nf) = (0u128, 1u128, 0);
        if s.first() == Some(&b'.') {
            nf = digits(&s[1..]);
            for d in &s[1..=nf] {
                if scale < 10u128.pow(20) {
                    (frac, scale) = (frac * 10 + u128::from(d - b'0'), scale * 10);
                }
            }
            s = &s[1 + nf..];
        }
        if n == 0 && nf == 0 {
            return Err(invalid());
        }
        let ul = s
            .iter()
            .take_while(|&&b| b != b'.' && !b.is_ascii_digit())
            .count();
        if ul == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(orig)));
        }
        let unit: u128 = match &s[..ul] {
            b"ns" => 1,
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            u => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(u),
                    go_quote(orig)
                ))
            }
        };
        s = &s[ul..];
        total += v * unit + frac * unit / scale;
        if total > 1 << 63 {
            return Err(invalid());
        }
    }
    if !neg && total > (1 << 63) - 1 {
        return Err(invalid());
    }
    Ok((neg, Duration::from_nanos(total as u64)))
}

/// The `quote` of Go's time package: `"`-quoted, non-ASCII and control bytes as `\xNN`.
fn go_quote(s: &[u8]) -> String {
    let mut out = String::from("\"");
    for &b in s {
        match b {
            b'"' | b'\\' => (out.push('\\'), out.push(b as char)).1,
            0x20..=0x7f => out.push(b as char),
            _ => (out.push_str("\\x"), out.push_str(&format!("{b:02x}"))).1,
        }
    }
    out.push('"');
    out
}

/// WebSocket handshake by hand (x/net/websocket's checks and messages); the echo runs in its
/// own task that ends with the connection or at shutdown.
fn upgrade(req: &mut Request<Incoming>, app: &Arc<Shared>) -> Resp {
    let h = req.headers();
    let get = |n: HeaderName| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let key = h
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| k.as_bytes().to_vec())
        .unwrap_or_default();
    let refuse = if req.method() != http::Method::GET {
        Some((StatusCode::METHOD_NOT_ALLOWED, "bad method"))
    } else if get(header::UPGRADE) != "websocket" || !get(header::CONNECTION).contains("upgrade") {
        Some((StatusCode::BAD_REQUEST, "not websocket protocol"))
    } else if key.is_empty() {
        Some((StatusCode::BAD_REQUEST, "mismatch challenge/response"))
    } else if !matches!(get(header::SEC_WEBSOCKET_VERSION).as_str(), "13" | "8") {
        Some((StatusCode::BAD_REQUEST, "missing or bad WebSocket Version"))
    } else {
        None
    };
    if let Some((status, msg)) = refuse {
        let mut resp = reply(status, "", msg);
        if msg.ends_with("Version") {
            let v = HeaderValue::from_static("13");
            resp.headers_mut().insert(header::SEC_WEBSOCKET_VERSION, v);
        }
        return resp;
    }
    let on_upgrade = hyper::upgrade::on(req);
    let (kind, pod, mut stop) = (app.kind, app.ctx.pod.clone(), app.stop.clone());
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(error) => return tracing::debug!(%pod, %error, "websocket upgrade failed"),
        };
        tracing::debug!(%pod, ?kind, "websocket established");
        let mode = if kind == AppKind::WebsocketTestBackend {
            wsecho::Mode::KeepFrames
        } else {
            wsecho::Mode::TextChunks
        };
        tokio::select! {
            r = wsecho::echo(TokioIo::new(upgraded), mode) => {
                if let Err(error) = r {
                    tracing::debug!(%pod, %error, "websocket ended");
                }
            }
            _ = stop.wait_for(|s| *s) => {}
        }
        tracing::debug!(%pod, "websocket closed");
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(&key))
        .body(Full::default())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;
    use tokio::time::{timeout, Instant};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    const T: Duration = Duration::from_secs(5);
    const POD: &str = "infra-backend-v1-7b9d8c6f5d-x2k4q";

    struct Srv {
        addr: SocketAddr,
        fault: watch::Sender<Fault>,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start(kind: AppKind) -> Srv {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (fault, rx) = watch::channel(Fault::None);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let ctx = AppContext {
            pod: POD.into(),
            namespace: "gateway-conformance-infra".into(),
            ..Default::default()
        };
        let task = tokio::spawn(serve(listener, kind, Arc::new(ctx), rx, async {
            let _ = stop_rx.await;
        }));
        Srv {
            addr,
            fault,
            stop,
            task,
        }
    }

    /// Sends raw bytes, reads until close; returns (status, head, body), status 0 if none.
    async fn raw(addr: SocketAddr, req: &str) -> (u16, String, String) {
        let mut s = timeout(T, TcpStream::connect(addr)).await.unwrap().unwrap();
        timeout(T, s.write_all(req.as_bytes()))
            .await
            .unwrap()
            .unwrap();
        let mut buf = Vec::new();
        let _ = timeout(T, s.read_to_end(&mut buf)).await.unwrap();
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, head.to_string(), body.to_string())
    }

    async fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        raw(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        )
        .await
    }

    async fn ws_connect(addr: SocketAddr, path: &str) -> WebSocketStream<TcpStream> {
        let tcp = timeout(T, TcpStream::connect(addr)).await.unwrap().unwrap();
        let url = format!("ws://{addr}{path}");
        timeout(T, tokio_tungstenite::client_async(url, tcp))
            .await
            .unwrap()
            .unwrap()
            .0
    }

    async fn roundtrip(ws: &mut WebSocketStream<TcpStream>, msg: Message) -> Message {
        timeout(T, ws.send(msg)).await.unwrap().unwrap();
        timeout(T, ws.next()).await.unwrap().unwrap().unwrap()
    }

    #[tokio::test]
    async fn echo_json_is_byte_exact() {
        let srv = start(AppKind::EchoBasic).await;
        let req = "GET /v2?x=y HTTP/1.1\r\nHost: example.com\r\nuser-agent: Go-http-client/1.1\r\n\
                   X-Echo-Set-Header: \r\nx-request-id: a\r\nX-REQUEST-ID: b\r\n\
                   x-test: <a&b> \"q\" \\ \u{e9}\r\nConnection: close\r\n\r\n";
        let (status, head, body) = raw(srv.addr, req).await;
        let expected = r#"{
 "path": "/v2?x=y",
 "host": "example.com",
 "method": "GET",
 "proto": "HTTP/1.1",
 "headers": {
  "Connection": [
   "close"
  ],
  "User-Agent": [
   "Go-http-client/1.1"
  ],
  "X-Echo-Set-Header": [
   ""
  ],
  "X-Request-Id": [
   "a",
   "b"
  ],
  "X-Test": [
   "\u003ca\u0026b\u003e \"q\" \\ é"
  ]
 },
 "namespace": "gateway-conformance-infra",
 "ingress": "",
 "service": "",
 "pod": "infra-backend-v1-7b9d8c6f5d-x2k4q"
}"#;
        assert_eq!(status, 200, "{head}");
        assert_eq!(body, expected);
        assert!(
            head.contains("\r\nContent-Type: application/json"),
            "{head}"
        );
        assert!(
            head.contains("\r\nX-Content-Type-Options: nosniff"),
            "{head}"
        );
        let empty = raw(srv.addr, "GET //a//b HTTP/1.0\r\n\r\n").await.2;
        assert!(empty.contains("\"path\": \"//a//b\",\n \"host\": \"\",\n \"method\": \"GET\",\n \"proto\": \"HTTP/1.0\",\n \"headers\": {},\n \"namespace\""), "{empty}");
        assert_eq!(
            json_str_of(b"\x01\xff\t\xe2\x80\xa8"),
            r#""\u0001\ufffd\t\u2028""#
        );
    }

    fn json_str_of(s: &[u8]) -> String {
        let mut out = String::new();
        json_str(&mut out, s);
        out
    }

    #[tokio::test]
    async fn keep_alive_after_unread_body_and_h2c() {
        let srv = start(AppKind::EchoBasic).await;
        let two = "POST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
                   GET /b HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        let (status, _, rest) = raw(srv.addr, two).await;
        assert_eq!(status, 200);
        assert!(
            rest.contains("\"Content-Length\": [\n   \"5\"\n  ]"),
            "{rest}"
        );
        assert!(rest.contains("HTTP/1.1 200 OK") && rest.contains("\"path\": \"/b\""));
        // h2c prior knowledge: GET http://t/ (HPACK: :method GET, :scheme http, :path /, :authority t).
        let mut s = timeout(T, TcpStream::connect(srv.addr))
            .await
            .unwrap()
            .unwrap();
        let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
        out.extend_from_slice(b"\0\0\x06\x01\x05\0\0\0\x01\x82\x86\x84\x41\x01t");
        timeout(T, s.write_all(&out)).await.unwrap().unwrap();
        let mut body = Vec::new();
        loop {
            let mut head = [0u8; 9];
            timeout(T, s.read_exact(&mut head)).await.unwrap().unwrap();
            let len = usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            timeout(T, s.read_exact(&mut payload))
                .await
                .unwrap()
                .unwrap();
            if head[3] == 0 && head[8] == 1 {
                body.extend_from_slice(&payload);
                if head[4] & 1 == 1 {
                    break;
                }
            }
        }
        let body = String::from_utf8(body).unwrap();
        let want =
            "\"path\": \"/\",\n \"host\": \"t\",\n \"method\": \"GET\",\n \"proto\": \"HTTP/2.0\"";
        assert!(body.contains(want), "{body}");
    }

    #[tokio::test]
    async fn echo_set_header_cases() {
        let srv = start(AppKind::GenericEcho).await;
        let req = "GET / HTTP/1.1\r\nHost: t\r\nX-Echo-Set-Header: X-Foo: bar, x-foo: nope ,X-Foo: baz ,:nothing, Content-Type: text/x\r\n\
                   X-Echo-Set-Header: X-Other:1,X-Empty\r\nConnection: close\r\n\r\n";
        let (status, head, _) = raw(srv.addr, req).await;
        assert_eq!(status, 200);
        let lines: Vec<&str> = head.lines().skip(1).collect();
        // Distinct names in Go ("X-Foo", "x-foo") stay distinct header lines.
        assert!(lines.contains(&"X-Foo: bar,baz"), "{head}");
        assert!(lines.contains(&"X-Foo: nope"), "{head}");
        assert!(lines.contains(&"X-Other: 1"), "{head}");
        assert!(lines.contains(&"X-Empty: "), "{head}");
        assert!(lines.contains(&"Content-Type: application/json"), "{head}");
        assert!(
            !head.contains("text/x") && !head.contains("nothing"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn echo_health_status_and_delay() {
        let srv = start(AppKind::EchoBasic).await;
        let (s, head, body) = get(srv.addr, "/health").await;
        assert_eq!((s, body.as_str()), (200, "OK"), "{head}");
        assert_eq!(get(srv.addr, "/status/418").await.0, 418);
        assert_eq!(get(srv.addr, "//status/503").await.0, 400); // raw URI no longer matches
        for bad in ["/status/abc", "/status/4180", "/status/418?x=1", "/status/"] {
            let (s, _, body) = get(srv.addr, bad).await;
            assert_eq!((s, body.as_str()), (400, ""), "{bad}");
        }
        assert_eq!(
            get(srv.addr, "/status/042").await.0,
            0,
            "Go panics: connection dropped"
        );
        let (s, head, body) = get(srv.addr, "/x?delay=abc").await;
        assert_eq!(
            (s, body.as_str()),
            (500, r#"{"message":"time: invalid duration \"abc\""}"#)
        );
        assert!(head.contains("Content-Type: application/json"));
        let started = Instant::now();
        let (s, _, body) = get(srv.addr, "/x?delay=0.2s&delay=9h").await;
        assert!(
            s == 200 && body.contains("\"path\": \"/x?delay=0.2s\\u0026delay=9h\""),
            "{body}"
        );
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test]
    async fn websocket_backend() {
        let srv = start(AppKind::WebsocketTestBackend).await;
        assert_eq!(get(srv.addr, "/health").await.0, 200);
        assert_eq!(get(srv.addr, "/").await.0, 404);
        assert_eq!(get(srv.addr, "/ws").await.0, 404);
        assert_eq!(get(srv.addr, "/chat").await.0, 400);
        let mut ws = ws_connect(srv.addr, "/chat").await;
        let text = Message::Text("Hello world!!!".into());
        assert_eq!(roundtrip(&mut ws, text.clone()).await, text);
        let bin = Message::Binary(Bytes::from_static(&[0, 1, 2, 255]));
        assert_eq!(roundtrip(&mut ws, bin.clone()).await, bin);
        let ping = roundtrip(&mut ws, Message::Ping(Bytes::from_static(b"p"))).await;
        assert_eq!(ping, Message::Pong(Bytes::from_static(b"p")));
        let close = CloseFrame {
            code: CloseCode::from(4000),
            reason: "bye".into(),
        };
        let reply = roundtrip(&mut ws, Message::Close(Some(close.clone()))).await;
        assert_eq!(reply, Message::Close(Some(close)));
    }

    #[tokio::test]
    async fn echo_websocket() {
        let srv = start(AppKind::EchoBasic).await;
        let mut ws = ws_connect(srv.addr, "/ws").await;
        let text = Message::Text("Hello world!!!".into());
        assert_eq!(roundtrip(&mut ws, text.clone()).await, text);
        // x/net's io.Copy(ws, ws) writes every payload back as a text frame.
        let bin = Message::Binary(Bytes::from_static(b"bin"));
        assert_eq!(roundtrip(&mut ws, bin).await, Message::Text("bin".into()));
        let (s, _, body) = get(srv.addr, "/ws").await;
        assert_eq!((s, body.as_str()), (400, "not websocket protocol"));
    }

    #[tokio::test]
    async fn faults_change_live() {
        let srv = start(AppKind::EchoBasic).await;
        assert_eq!(get(srv.addr, "/health").await.0, 200);
        srv.fault.send(Fault::Unhealthy).unwrap();
        for p in ["/health", "/healthz", "/readyz", "/", "//health?x=1"] {
            let (s, _, body) = get(srv.addr, p).await;
            assert_eq!((s, body.as_str()), (503, UNHEALTHY_BODY), "{p}");
        }
        assert_eq!(get(srv.addr, "/app").await.0, 200);
        srv.fault
            .send(Fault::Slow(Duration::from_millis(800)))
            .unwrap();
        let started = Instant::now();
        assert_eq!(get(srv.addr, "/health").await.0, 200);
        assert!(started.elapsed() >= Duration::from_millis(800));
        srv.fault.send(Fault::Down).unwrap();
        assert_eq!(get(srv.addr, "/health").await.0, 0);
        srv.fault.send(Fault::None).unwrap();
        let started = Instant::now();
        assert_eq!(get(srv.addr, "/").await.0, 200);
        assert!(started.elapsed() < Duration::from_millis(800));

        let ws_srv = start(AppKind::WebsocketTestBackend).await;
        ws_srv.fault.send(Fault::Unhealthy).unwrap();
        assert_eq!(get(ws_srv.addr, "/health").await.0, 503);
        assert_eq!(get(ws_srv.addr, "/").await.0, 503);
        assert_eq!(get(ws_srv.addr, "/other").await.0, 404);
    }

    #[tokio::test]
    async fn shutdown_ends_server_connections_and_websockets() {
        let srv = start(AppKind::EchoBasic).await;
        let mut ws = ws_connect(srv.addr, "/ws").await;
        let mut slow = TcpStream::connect(srv.addr).await.unwrap();
        slow.write_all(b"GET /?delay=30s HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let text = Message::Text("hi".into());
        assert_eq!(roundtrip(&mut ws, text.clone()).await, text);
        srv.stop.send(()).unwrap();
        timeout(T, srv.task).await.unwrap().unwrap();
        let mut buf = Vec::new();
        let _ = timeout(T, slow.read_to_end(&mut buf)).await.unwrap();
        assert!(buf.is_empty());
        assert!(!matches!(
            timeout(T, ws.next()).await.unwrap(),
            Some(Ok(Message::Text(_)))
        ));
        assert!(TcpStream::connect(srv.addr).await.is_err());
    }

    #[test]
    fn parses_faults_and_go_durations() {
        assert_eq!(parse_fault("unhealthy").unwrap(), Fault::Unhealthy);
        assert_eq!(parse_fault(" Down ").unwrap(), Fault::Down);
        assert_eq!(parse_fault("").unwrap(), Fault::None);
        assert_eq!(
            parse_fault("slow:500ms").unwrap(),
            Fault::Slow(Duration::from_millis(500))
        );
        assert_eq!(
            parse_fault("slow:1.5s").unwrap(),
            Fault::Slow(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_fault("SLOW:2m").unwrap(),
            Fault::Slow(Duration::from_secs(120))
        );
        for bad in ["slow:", "slow:5", "slow:-1s", "slow:1x", "sloww", "é"] {
            let msg = parse_fault(bad).unwrap_err().to_string();
            assert!(
                msg.contains(&format!("{bad:?}")) && msg.contains("slow:<duration>"),
                "{msg}"
            );
        }
        let d = |s: &str| parse_go_duration(s.as_bytes());
        assert_eq!(d("1h2m3.5s"), Ok((false, Duration::from_millis(3_723_500))));
        assert_eq!(d(".5us"), Ok((false, Duration::from_nanos(500))));
        assert_eq!(d("1\u{b5}s"), Ok((false, Duration::from_micros(1))));
        assert_eq!(d("-0"), Ok((true, Duration::ZERO)));
        assert_eq!(d("1"), Err(r#"time: missing unit in duration "1""#.into()));
        assert_eq!(
            d("1d"),
            Err(r#"time: unknown unit "d" in duration "1d""#.into())
        );
        assert_eq!(d("."), Err(r#"time: invalid duration ".""#.into()));
        assert_eq!(d("é"), Err(r#"time: invalid duration "\xc3\xa9""#.into()));
        assert!(d("9999999999h").is_err());
        assert_eq!(
            query_value("a=1&delay=1%2Bs&delay=2s", "delay"),
            Some(b"1+s".to_vec())
        );
        assert_eq!(
            query_value("delay=%zz&x;delay=1&delay=3+s", "delay"),
            Some(b"3 s".to_vec())
        );
    }

    #[test]
    fn picks_app_from_image() {
        let ws = "trafficcontrollertestimages.azurecr.io/images/websockets-test-backend";
        assert_eq!(AppKind::for_image(ws), AppKind::WebsocketTestBackend);
        assert_eq!(
            AppKind::for_image(&format!("{ws}:latest")),
            AppKind::WebsocketTestBackend
        );
        let echo = "gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd";
        assert_eq!(AppKind::for_image(echo), AppKind::EchoBasic);
        let old = "gcr.io/k8s-staging-ingressconformance/echoserver@sha256:abc";
        assert_eq!(AppKind::for_image(old), AppKind::EchoBasic);
        assert_eq!(
            AppKind::for_image("localhost:5000/nginx:1"),
            AppKind::GenericEcho
        );
        assert_eq!(AppKind::for_image(""), AppKind::GenericEcho);
    }
}
