//! End-to-end tests of the gateway proxy and health checker with hand-built
//! routing tables (no controller) and the simulator's sample apps as
//! backends. Each test uses its own gateway address in 127.20.2xx.0/24 so
//! tests can run in parallel; every await is bounded by a timeout.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use agc_sandbox::proxy::{self, ProxyOptions};
use agc_sandbox::routing::*;
use agc_sandbox::sim::apps::{self, AppContext, AppKind, Fault};

const T: Duration = Duration::from_secs(15);
const OFFSET: u16 = 30000;

// ---------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------

struct App {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn app(kind: AppKind, pod: &str) -> App {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (_fault_tx, fault_rx) = watch::channel(Fault::None);
    let ctx = Arc::new(AppContext {
        pod: pod.into(),
        namespace: "ns".into(),
        ..Default::default()
    });
    tokio::spawn(async move {
        let _keep = _fault_tx;
        apps::serve(l, kind, ctx, fault_rx, async {
            let _ = rx.await;
        })
        .await
    });
    App { addr, _stop: tx }
}

fn key(svc: &str) -> BackendKey {
    format!("ns/{svc}/80").parse().unwrap()
}

fn fast_probe(path: &str) -> ProbeSettings {
    ProbeSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(2),
        path: path.into(),
        ..ProbeSettings::agc_default()
    }
}

/// A TCP connect probe every 100 ms (for backends that answer no HTTP probe).
fn tcp_probe() -> ProbeSettings {
    ProbeSettings {
        kind: ProbeKind::Tcp,
        ..fast_probe("/")
    }
}

fn backend(svc: &str, addrs: &[SocketAddr], probe: ProbeSettings) -> BackendRuntime {
    BackendRuntime {
        key: key(svc),
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
    }
}

fn to(svc: &str, weight: u32) -> WeightedBackend {
    WeightedBackend {
        weight,
        target: BackendTarget::Service(key(svc)),
        filters: vec![],
    }
}

fn prefix(p: &str) -> HttpMatch {
    HttpMatch {
        path: PathMatch::Prefix(p.into()),
        ..Default::default()
    }
}

fn rule(path: &str, backends: Vec<WeightedBackend>, filters: Vec<Filter>) -> RuleRuntime {
    RuleRuntime {
        matches: vec![prefix(path)],
        filters,
        backends,
        ..Default::default()
    }
}

fn route(name: &str, hosts: &[&str], rules: Vec<RuleRuntime>) -> Arc<RouteRuntime> {
    Arc::new(RouteRuntime {
        namespace: "ns".into(),
        name: name.into(),
        creation_timestamp: "2024-01-01T00:00:00Z".into(),
        hostnames: hosts.iter().map(|h| h.to_string()).collect(),
        rules,
    })
}

fn http_listener(name: &str, port: u16, routes: Vec<Arc<RouteRuntime>>) -> ListenerRuntime {
    ListenerRuntime {
        name: name.into(),
        port,
        protocol: ListenerProtocol::Http,
        hostname: None,
        tls: None,
        routes: RouteIndex::new(routes),
    }
}

fn table(
    version: u64,
    ip: Ipv4Addr,
    listeners: Vec<ListenerRuntime>,
    backends: Vec<BackendRuntime>,
) -> Arc<RoutingTable> {
    Arc::new(RoutingTable {
        version,
        gateways: vec![Arc::new(GatewayRuntime {
            namespace: "ns".into(),
            name: "gw".into(),
            address: ip,
            listeners,
        })],
        backends: backends
            .into_iter()
            .map(|b| (b.key.clone(), Arc::new(b)))
            .collect(),
    })
}

/// One HTTP listener on port 80 whose one route ("r") sends every request
/// to `b`'s Service.
fn catch_all(ip: Ipv4Addr, b: BackendRuntime) -> Arc<RoutingTable> {
    let svc = b.key.service.clone();
    let r = route("r", &[], vec![rule("/", vec![to(&svc, 1)], vec![])]);
    table(1, ip, vec![http_listener("http", 80, vec![r])], vec![b])
}

struct Sandbox {
    table: watch::Sender<Arc<RoutingTable>>,
    started: proxy::Started,
    stop: watch::Sender<bool>,
}

impl Sandbox {
    fn start(t: Arc<RoutingTable>) -> Sandbox {
        Sandbox::start_with(t, ProxyOptions::new(OFFSET))
    }

    fn start_with(t: Arc<RoutingTable>, opts: ProxyOptions) -> Sandbox {
        let (table, rx) = watch::channel(t);
        let (stop, stop_rx) = watch::channel(false);
        let started = proxy::start(rx, opts, stop_rx);
        Sandbox {
            table,
            started,
            stop,
        }
    }

    async fn wait_bound(&self) {
        let mut b = self.started.bindings.clone();
        timeout(
            T,
            b.wait_for(|b| !b.is_empty() && b.values().all(|r| r.is_ok())),
        )
        .await
        .expect("listeners not bound in time")
        .unwrap();
    }

    async fn wait_healthy(&self, svc: &str, n: usize) {
        let mut h = self.started.health.clone();
        let k = key(svc);
        timeout(
            T,
            h.wait_for(|v| {
                v.backend(&k).is_some_and(|eps| {
                    eps.iter()
                        .filter(|e| e.status == agc_sandbox::health::HealthStatus::Healthy)
                        .count()
                        >= n
                })
            }),
        )
        .await
        .expect("endpoints not healthy in time")
        .unwrap();
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        timeout(T, self.started.task)
            .await
            .expect("proxy did not stop")
            .unwrap();
    }
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, n: &str) -> &str {
        self.headers
            .get(n)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
}

async fn get(addr: SocketAddr, host: &str, path: &str, extra: &[(&str, &str)]) -> Reply {
    timeout(T, async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::get(path).header("host", host);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .unwrap();
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    })
    .await
    .expect("request timed out")
}

fn gw_addr(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::from((ip, port + OFFSET))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn routes_filters_redirects_weights_and_errors() {
    let ip = Ipv4Addr::new(127, 20, 201, 1);
    let a = app(AppKind::EchoBasic, "pod-a").await;
    let b = app(AppKind::EchoBasic, "pod-b").await;
    let set = HeaderModifier {
        set: vec![(
            HeaderName::from_static("x-set"),
            HeaderValue::from_static("s"),
        )],
        add: vec![],
        remove: vec![HeaderName::from_static("x-drop")],
    };
    let resp_mod = HeaderModifier {
        set: vec![],
        add: vec![(
            HeaderName::from_static("x-resp"),
            HeaderValue::from_static("yes"),
        )],
        remove: vec![],
    };
    let redirect = RequestRedirect {
        scheme: Some("https".into()),
        hostname: Some("www.contoso.com".into()),
        status_code: 301,
        ..Default::default()
    };
    let r1 = route(
        "web",
        &["a.contoso.com"],
        vec![
            rule(
                "/a",
                vec![to("echo-a", 1)],
                vec![
                    Filter::RequestHeaderModifier(set),
                    Filter::ResponseHeaderModifier(resp_mod),
                ],
            ),
            rule("/old", vec![], vec![Filter::RequestRedirect(redirect)]),
            rule("/split", vec![to("echo-a", 0), to("echo-b", 100)], vec![]),
            rule(
                "/invalid",
                vec![WeightedBackend {
                    weight: 1,
                    target: BackendTarget::Invalid {
                        reason: "BackendNotFound".into(),
                    },
                    filters: vec![],
                }],
                vec![],
            ),
            rule(
                "/shop",
                vec![to("echo-a", 1)],
                vec![Filter::UrlRewrite(UrlRewrite {
                    hostname: Some("rewritten.example".into()),
                    path: Some(PathModifier::ReplacePrefixMatch("/ecommerce".into())),
                })],
            ),
        ],
    );
    let r2 = route(
        "other",
        &["b.contoso.com"],
        vec![rule("/", vec![to("echo-b", 1)], vec![])],
    );
    let t = table(
        1,
        ip,
        vec![http_listener("http", 80, vec![r1, r2])],
        vec![
            backend("echo-a", &[a.addr], fast_probe("/health")),
            backend("echo-b", &[b.addr], fast_probe("/health")),
        ],
    );
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("echo-a", 1).await;
    sb.wait_healthy("echo-b", 1).await;
    let gw = gw_addr(ip, 80);

    // Routing by host and path, request/response header modifiers, x-forwarded-*.
    let r = get(
        gw,
        "a.contoso.com",
        "/a/x?q=1",
        &[("x-drop", "1"), ("x-forwarded-for", "10.0.0.9")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("server"), AGC_SERVER_NAME);
    assert_eq!(r.header("x-resp"), "yes");
    let j = r.json();
    assert_eq!(j["pod"], "pod-a");
    assert_eq!(j["path"], "/a/x?q=1");
    assert_eq!(j["host"], "a.contoso.com");
    let h = &j["headers"];
    assert_eq!(h["X-Set"][0], "s");
    assert!(h.get("X-Drop").is_none(), "{h}");
    assert_eq!(h["X-Forwarded-For"][0], "10.0.0.9, 127.0.0.1");
    assert_eq!(h["X-Forwarded-Proto"][0], "http");
    let id = h["X-Request-Id"][0].as_str().unwrap();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(&id[14..15], "4", "UUID v4: {id}");

    let r = get(gw, "b.contoso.com", "/anything", &[]).await;
    assert_eq!(r.json()["pod"], "pod-b");

    // 404: unknown host, unmatched path.
    let r = get(gw, "nope.contoso.com", "/a", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("server"), AGC_SERVER_NAME);
    assert_eq!(get(gw, "a.contoso.com", "/zzz", &[]).await.status, 404);

    // Redirect.
    let r = get(gw, "a.contoso.com", "/old/page?x=1", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), "https://www.contoso.com/old/page?x=1");
    assert_eq!(r.header("content-length"), "0");
    assert_eq!(r.header("server"), AGC_SERVER_NAME);

    // 0/100 weighted split.
    for _ in 0..5 {
        assert_eq!(
            get(gw, "a.contoso.com", "/split", &[]).await.json()["pod"],
            "pod-b"
        );
    }

    // Invalid backend: 500.
    let r = get(gw, "a.contoso.com", "/invalid", &[]).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.header("server"), AGC_SERVER_NAME);

    // URL rewrite.
    let j = get(gw, "a.contoso.com", "/shop/cart?id=2", &[])
        .await
        .json();
    assert_eq!(j["path"], "/ecommerce/cart?id=2");
    assert_eq!(j["host"], "rewritten.example");

    // Metrics and backend health through the admin extension.
    let q = agc_sandbox::apiserver::Query::parse(Some("service-name=ns/echo-a/80&detailed=true"));
    let resp = sb.started.extension.get("/backendHealth", &q).unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["services"].as_array().unwrap().len(), 1);
    assert_eq!(j["services"][0]["serviceName"], "ns/echo-a/80");
    assert_eq!(
        j["services"][0]["serviceHealth"][0]["totalHealthyEndpoints"],
        1
    );
    assert_eq!(
        j["services"][0]["serviceHealth"][0]["endpoints"][0]["health"]["status"],
        "HEALTHY"
    );
    let q = agc_sandbox::apiserver::Query::parse(None);
    let resp = sb.started.extension.get("/metrics", &q).unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains("agc_requests_total{gateway=\"ns/gw\",route=\"ns/web\",code=\"301\"} 1"),
        "{text}"
    );
    assert!(text.contains("total_healthy_endpoints 2"), "{text}");
    sb.stop().await;
}

#[tokio::test]
async fn round_robin_and_managed_cookie_affinity() {
    let ip = Ipv4Addr::new(127, 20, 202, 1);
    let a = app(AppKind::EchoBasic, "pod-a").await;
    let b = app(AppKind::EchoBasic, "pod-b").await;
    let mut r = rule("/", vec![to("echo", 1)], vec![]);
    let mut sticky = rule("/sticky", vec![to("echo", 1)], vec![]);
    sticky.session_affinity = Some(SessionAffinity::ManagedCookie);
    r.matches = vec![prefix("/")];
    let t = table(
        1,
        ip,
        vec![http_listener(
            "http",
            80,
            vec![route("rr", &[], vec![r, sticky])],
        )],
        vec![backend("echo", &[a.addr, b.addr], fast_probe("/health"))],
    );
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("echo", 2).await;
    let gw = gw_addr(ip, 80);
    let mut pods = Vec::new();
    for _ in 0..4 {
        pods.push(
            get(gw, "x", "/", &[]).await.json()["pod"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(pods.iter().filter(|p| *p == "pod-a").count(), 2, "{pods:?}");
    assert_ne!(pods[0], pods[1], "{pods:?}");

    let first = get(gw, "x", "/sticky", &[]).await;
    let cookie = first.header("set-cookie").to_owned();
    assert!(cookie.starts_with("AGCAffinity="), "{cookie}");
    let pinned = first.json()["pod"].as_str().unwrap().to_owned();
    let value = cookie.split(';').next().unwrap().to_owned();
    for _ in 0..4 {
        let r = get(gw, "x", "/sticky", &[("cookie", &value)]).await;
        assert_eq!(r.json()["pod"], pinned.as_str());
        assert_eq!(
            r.header("set-cookie"),
            "",
            "pinned requests get no new cookie"
        );
    }
    sb.stop().await;
}

#[tokio::test]
async fn no_healthy_upstream_then_websocket_through_table_swaps() {
    let ip = Ipv4Addr::new(127, 20, 203, 1);
    let ws = app(AppKind::WebsocketTestBackend, "ws").await;
    let mk = |version, path: &str| {
        table(
            version,
            ip,
            vec![http_listener(
                "http",
                80,
                vec![route("ws", &[], vec![rule("/", vec![to("ws", 1)], vec![])])],
            )],
            vec![backend("ws", &[ws.addr], fast_probe(path))],
        )
    };
    // Default probe path `/` answers 404 on the websocket backend: unhealthy.
    let sb = Sandbox::start(mk(1, "/"));
    sb.wait_bound().await;
    let mut h = sb.started.health.clone();
    timeout(
        T,
        h.wait_for(|v| {
            v.backend(&key("ws"))
                .is_some_and(|e| e[0].last_failure.as_deref() == Some("status code 404"))
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let gw = gw_addr(ip, 80);
    let r = get(gw, "ws.contoso.com", "/chat", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(&r.body[..], b"no healthy upstream");
    assert_eq!(r.header("content-type"), "text/plain");
    assert_eq!(r.header("content-length"), "19");
    assert_eq!(r.header("server"), AGC_SERVER_NAME);

    // A HealthCheckPolicy-like probe on /health makes it healthy.
    sb.table.send(mk(2, "/health")).unwrap();
    sb.wait_healthy("ws", 1).await;
    assert_eq!(get(gw, "ws.contoso.com", "/health", &[]).await.status, 200);

    // WebSocket echo through the proxy.
    let url = format!("ws://{gw}/chat");
    let (mut socket, resp) = timeout(T, async {
        let tcp = TcpStream::connect(gw).await.unwrap();
        tokio_tungstenite::client_async(url, tcp).await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.status(), 101);
    assert_eq!(resp.headers()["server"], AGC_SERVER_NAME);
    timeout(T, socket.send(Message::text("Hello world!!!")))
        .await
        .unwrap()
        .unwrap();
    let echoed = timeout(T, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, Message::text("Hello world!!!"));
    assert_eq!(
        sb.started
            .metrics
            .tunnels_open
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // An unrelated table change (new version, extra listener) keeps the tunnel.
    let mut t3 = (*mk(3, "/health")).clone();
    let gw3 = Arc::make_mut(&mut t3.gateways[0]);
    gw3.listeners.push(http_listener("extra", 81, vec![]));
    sb.table.send(Arc::new(t3)).unwrap();
    let mut b = sb.started.bindings.clone();
    timeout(T, b.wait_for(|b| b.len() == 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(get(gw_addr(ip, 81), "x", "/", &[]).await.status, 404);
    timeout(T, socket.send(Message::text("still here")))
        .await
        .unwrap()
        .unwrap();
    let echoed = timeout(T, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, Message::text("still here"));

    // Shutdown closes the tunnel cleanly and the proxy stops.
    sb.stop().await;
    let end = timeout(T, socket.next()).await.unwrap();
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
}

#[tokio::test]
async fn backend_dying_mid_request_is_502_and_big_headers_431() {
    let ip = Ipv4Addr::new(127, 20, 204, 1);
    // Reads a request head, then closes without answering.
    let dying = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dying_addr = dying.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = dying.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                drop(s);
            });
        }
    });
    let echo = app(AppKind::EchoBasic, "pod-a").await;
    let tcp_probe = tcp_probe();
    let t = table(
        1,
        ip,
        vec![http_listener(
            "http",
            80,
            vec![route(
                "r",
                &[],
                vec![
                    rule("/die", vec![to("dying", 1)], vec![]),
                    rule("/", vec![to("echo", 1)], vec![]),
                ],
            )],
        )],
        vec![
            backend("dying", &[dying_addr], tcp_probe),
            backend("echo", &[echo.addr], fast_probe("/health")),
        ],
    );
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("dying", 1).await;
    sb.wait_healthy("echo", 1).await;
    let gw = gw_addr(ip, 80);
    let r = get(gw, "x", "/die", &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("server"), AGC_SERVER_NAME);
    // Other requests are unaffected.
    assert_eq!(get(gw, "x", "/ok", &[]).await.status, 200);

    // Oversized request head: 431, never reaches a backend.
    let big = "a".repeat(100 * 1024);
    let mut s = timeout(T, TcpStream::connect(gw)).await.unwrap().unwrap();
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let _ = timeout(T, s.write_all(req.as_bytes())).await.unwrap();
    let mut out = Vec::new();
    let _ = timeout(T, s.read_to_end(&mut out)).await.unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");

    // Malformed request: 400.
    let mut s = timeout(T, TcpStream::connect(gw)).await.unwrap().unwrap();
    timeout(T, s.write_all(b"GET / HTTP/1.1\r\nHost x\r\n\r\n"))
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    let _ = timeout(T, s.read_to_end(&mut out)).await.unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"));
    sb.stop().await;
}

#[tokio::test]
async fn bind_errors_are_reported_and_do_not_disturb_other_listeners() {
    let ip = Ipv4Addr::new(127, 20, 205, 1);
    let echo = app(AppKind::EchoBasic, "pod-a").await;
    // Someone else holds port 81 + offset on the gateway address.
    let squatter = std::net::TcpListener::bind(gw_addr(ip, 81)).unwrap();
    // And port 82 is held by a SO_REUSEPORT listener (say another sandbox's): the proxy must not
    // join its group and split the traffic, but refuse as for any other holder.
    let group = tokio::net::TcpSocket::new_v4().unwrap();
    group.set_reuseaddr(true).unwrap();
    group.set_reuseport(true).unwrap();
    group.bind(gw_addr(ip, 82)).unwrap();
    let group = group.listen(16).unwrap();
    let routes = || {
        vec![route(
            "r",
            &[],
            vec![rule("/", vec![to("echo", 1)], vec![])],
        )]
    };
    let t = table(
        1,
        ip,
        vec![
            http_listener("http", 80, routes()),
            http_listener("busy", 81, routes()),
            http_listener("grouped", 82, routes()),
        ],
        vec![backend("echo", &[echo.addr], fast_probe("/health"))],
    );
    let sb = Sandbox::start(t);
    let mut b = sb.started.bindings.clone();
    let got = timeout(T, b.wait_for(|b| b.len() == 3))
        .await
        .unwrap()
        .unwrap()
        .clone();
    let k = |l: &str| ("ns".to_owned(), "gw".to_owned(), l.to_owned());
    assert_eq!(got[&k("http")], Ok(()));
    let err = got[&k("busy")].clone().unwrap_err();
    assert!(
        err.contains("failed to bind") && err.contains(&gw_addr(ip, 81).to_string()),
        "{err}"
    );
    let err = got[&k("grouped")].clone().unwrap_err();
    assert!(err.contains("failed to bind"), "{err}");
    drop(group);
    sb.wait_healthy("echo", 1).await;

    // A kept-alive connection on :80 survives removing the busy listener.
    let tcp = TcpStream::connect(gw_addr(ip, 80)).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = || {
        Request::get("/")
            .header("host", "x")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let r = timeout(T, send.send_request(req())).await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.into_body().collect().await;
    sb.table
        .send(table(
            2,
            ip,
            vec![http_listener("http", 80, routes())],
            vec![backend("echo", &[echo.addr], fast_probe("/health"))],
        ))
        .unwrap();
    timeout(T, b.wait_for(|b| b.len() == 1))
        .await
        .unwrap()
        .unwrap();
    let r = timeout(T, send.send_request(req())).await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    drop(squatter);
    sb.stop().await;
}

fn tls_listener(pem: (&str, &str), routes: Vec<Arc<RouteRuntime>>) -> ListenerRuntime {
    ListenerRuntime {
        name: "https".into(),
        port: 443,
        protocol: ListenerProtocol::Https,
        hostname: Some("secure.contoso.com".into()),
        tls: Some(TlsSettings {
            certificates: vec![CertificatePem {
                secret: "ns/tls".into(),
                hostname: None,
                cert_chain_pem: pem.0.into(),
                key_pem: pem.1.into(),
            }],
        }),
        routes: RouteIndex::new(routes),
    }
}

async fn tls_connect(addr: SocketAddr, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut cfg = (*agc_sandbox::health::insecure_client_config()).clone();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("secure.contoso.com").unwrap();
    timeout(
        T,
        tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn https_with_sni_alpn_h2_and_certificate_rotation() {
    let ip = Ipv4Addr::new(127, 20, 206, 1);
    let echo = app(AppKind::EchoBasic, "pod-a").await;
    let rsa = (
        include_str!("fixtures/test-cert.pem"),
        include_str!("fixtures/test-key.pem"),
    );
    let ec = (
        include_str!("fixtures/test2-cert.pem"),
        include_str!("fixtures/test2-key.pem"),
    );
    let routes = || {
        vec![route(
            "r",
            &["secure.contoso.com"],
            vec![rule("/", vec![to("echo", 1)], vec![])],
        )]
    };
    let mk = |v, pem| {
        table(
            v,
            ip,
            vec![tls_listener(pem, routes())],
            vec![backend("echo", &[echo.addr], fast_probe("/health"))],
        )
    };
    let sb = Sandbox::start(mk(1, rsa));
    sb.wait_bound().await;
    sb.wait_healthy("echo", 1).await;
    let gw = gw_addr(ip, 443);

    // HTTP/1.1 over TLS.
    let tls = tls_connect(gw, b"http/1.1").await;
    let first_cert = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/t")
        .header("host", "secure.contoso.com")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let r = timeout(T, send.send_request(req)).await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["server"], AGC_SERVER_NAME);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["headers"]["X-Forwarded-Proto"][0], "https");

    // h2 via ALPN.
    let tls = tls_connect(gw, b"h2").await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = Request::get("https://secure.contoso.com/h2")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let r = timeout(T, send.send_request(req)).await.unwrap().unwrap();
    assert_eq!(r.status(), 200);
    let body = r.into_body().collect().await.unwrap().to_bytes();
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["host"], "secure.contoso.com");
    assert_eq!(j["path"], "/h2");

    // Secret rotation: the next handshake serves the new certificate.
    sb.table.send(mk(2, ec)).unwrap();
    let mut rotated = false;
    for _ in 0..50 {
        let tls = tls_connect(gw, b"http/1.1").await;
        if tls.get_ref().1.peer_certificates().unwrap()[0] != first_cert {
            rotated = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rotated, "certificate not rotated");
    sb.stop().await;
}

#[tokio::test]
async fn timeouts_slow_clients_and_application_cookie() {
    let ip = Ipv4Addr::new(127, 20, 207, 1);
    let a = app(AppKind::EchoBasic, "pod-a").await;
    let b = app(AppKind::EchoBasic, "pod-b").await;
    let mut slow = rule("/slow", vec![to("echo", 1)], vec![]);
    slow.timeouts.request = Some(Duration::from_millis(300));
    let mut unlimited = rule("/unlimited", vec![to("echo", 1)], vec![]);
    unlimited.timeouts.request = Some(Duration::ZERO);
    // backendRequest under a longer (or no) request timeout: the backend's deadline cuts.
    let mut backend_only = rule("/backend", vec![to("echo", 1)], vec![]);
    backend_only.timeouts.backend_request = Some(Duration::from_millis(300));
    let mut both = rule("/both", vec![to("echo", 1)], vec![]);
    both.timeouts.request = Some(Duration::from_secs(10));
    both.timeouts.backend_request = Some(Duration::from_millis(300));
    let mut app_cookie = rule("/app", vec![to("echo", 1)], vec![]);
    app_cookie.session_affinity = Some(SessionAffinity::ApplicationCookie {
        name: "sid".into(),
        duration: None,
    });
    let t = table(
        1,
        ip,
        vec![http_listener(
            "http",
            80,
            vec![route(
                "r",
                &[],
                vec![slow, unlimited, backend_only, both, app_cookie],
            )],
        )],
        vec![backend("echo", &[a.addr, b.addr], fast_probe("/health"))],
    );
    let mut opts = ProxyOptions::new(OFFSET);
    opts.header_read_timeout = Duration::from_millis(500);
    let sb = Sandbox::start_with(t, opts);
    sb.wait_bound().await;
    sb.wait_healthy("echo", 2).await;
    let gw = gw_addr(ip, 80);

    // The route's request timeout: 504; zero disables it.
    let r = get(gw, "x", "/slow?delay=2s", &[]).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.header("server"), AGC_SERVER_NAME);
    assert_eq!(get(gw, "x", "/slow?delay=10ms", &[]).await.status, 200);
    assert_eq!(
        get(gw, "x", "/unlimited?delay=400ms", &[]).await.status,
        200
    );
    // HTTPRouteTimeoutBackendRequest: a backend slower than backendRequest is a 504.
    for p in ["/backend", "/both"] {
        let r = get(gw, "x", &format!("{p}?delay=1s"), &[]).await;
        assert_eq!(r.status, 504, "{p}");
        assert_eq!(
            get(gw, "x", &format!("{p}?delay=10ms"), &[]).await.status,
            200,
            "{p}"
        );
    }

    // Application cookie: the same value always lands on the same pod.
    for sid in ["alpha", "beta", "gamma"] {
        let cookie = format!("sid={sid}");
        let first = get(gw, "x", "/app", &[("cookie", &cookie)]).await.json()["pod"].clone();
        for _ in 0..3 {
            let again = get(gw, "x", "/app", &[("cookie", &cookie)]).await.json()["pod"].clone();
            assert_eq!(again, first, "{sid}");
        }
    }

    // A client that never finishes its request head is cut off.
    let mut s = TcpStream::connect(gw).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut out = Vec::new();
    let res = timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    assert!(res.is_ok(), "slow client not cut off");
    sb.stop().await;
}

#[tokio::test]
async fn idle_websocket_tunnels_are_closed() {
    let ip = Ipv4Addr::new(127, 20, 208, 1);
    let ws = app(AppKind::WebsocketTestBackend, "ws").await;
    let t = table(
        1,
        ip,
        vec![http_listener(
            "http",
            80,
            vec![route("ws", &[], vec![rule("/", vec![to("ws", 1)], vec![])])],
        )],
        vec![backend("ws", &[ws.addr], fast_probe("/health"))],
    );
    let mut opts = ProxyOptions::new(OFFSET);
    opts.idle_timeout = Duration::from_millis(400);
    let sb = Sandbox::start_with(t, opts);
    sb.wait_bound().await;
    sb.wait_healthy("ws", 1).await;
    let gw = gw_addr(ip, 80);
    let (mut socket, _) = timeout(T, async {
        let tcp = TcpStream::connect(gw).await.unwrap();
        tokio_tungstenite::client_async(format!("ws://{gw}/chat"), tcp).await
    })
    .await
    .unwrap()
    .unwrap();
    timeout(T, socket.send(Message::text("ping")))
        .await
        .unwrap()
        .unwrap();
    let echoed = timeout(T, socket.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(echoed, Message::text("ping"));
    // Then silence: the proxy closes the tunnel after the idle timeout.
    let end = timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("tunnel not closed");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
    sb.stop().await;
}

/// A backend speaking raw HTTP/1.1: answers each request on a connection by
/// its path, for the framings a hyper-based backend would not produce.
async fn raw_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    buf.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    if path == "/drip" {
                        // A response that streams a chunk every 100 ms, forever.
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                            .await;
                        while s.write_all(b"1\r\n.\r\n").await.is_ok() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        return;
                    }
                    let reply: &[u8] = match path.as_str() {
                        "/health" => b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
                        "/chunked" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\ntrailer: t\r\n\r\n",
                        "/interim" => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                        "/until-close" => b"HTTP/1.1 200 OK\r\n\r\nuntil close",
                        "/hop" => b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Private\r\nX-Private: 1\r\nKeep-Alive: timeout=5\r\nServer: backend/1.0\r\nX-Kept: yes\r\nContent-Length: 3\r\n\r\nhop",
                        "/garbage" => b"HTTP/1.1 OK\r\n\r\n",
                        "/bad-chunk" => b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                        // Keep-alive implied, then the backend's idle timer
                        // closes the connection shortly after.
                        _ => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                    };
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                    match path.as_str() {
                        "/until-close" | "/garbage" | "/bad-chunk" => return,
                        "/short-lived" => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            return;
                        }
                        _ => {}
                    }
                }
            });
        }
    });
    addr
}

/// A hyper backend that echoes the request body and how it was framed.
async fn body_echo_backend() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let framing = match (
                            req.headers().get("transfer-encoding"),
                            req.headers().get("content-length"),
                        ) {
                            (Some(te), _) => format!("te={}", te.to_str().unwrap()),
                            (None, Some(cl)) => format!("cl={}", cl.to_str().unwrap()),
                            (None, None) => "none".into(),
                        };
                        let path = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let host = req
                            .headers()
                            .get("host")
                            .map(|h| h.to_str().unwrap_or("?").to_string())
                            .unwrap_or_default();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("x-framing", framing)
                                .header("x-path", path)
                                .header("x-host", host)
                                .body(http_body_util::Full::new(body))
                                .unwrap(),
                        )
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn backend_framing_bodies_and_keep_alive() {
    let ip = Ipv4Addr::new(127, 20, 209, 1);
    let raw = raw_backend().await;
    let echo = body_echo_backend().await;
    let t = table(
        1,
        ip,
        vec![http_listener(
            "http",
            80,
            vec![route(
                "r",
                &[],
                vec![
                    rule("/upload", vec![to("echo", 1)], vec![]),
                    rule("/", vec![to("raw", 1)], vec![]),
                ],
            )],
        )],
        vec![
            backend("raw", &[raw], fast_probe("/health")),
            backend("echo", &[echo], tcp_probe()),
        ],
    );
    let mut opts = ProxyOptions::new(OFFSET);
    opts.header_read_timeout = Duration::from_millis(300);
    let sb = Sandbox::start_with(t, opts);
    sb.wait_bound().await;
    sb.wait_healthy("raw", 1).await;
    sb.wait_healthy("echo", 1).await;
    let gw = gw_addr(ip, 80);

    // Response framings: chunked (extensions and trailers dropped), interim
    // 100 skipped, close-delimited; a bad head is a 502.
    let r = get(gw, "x", "/chunked", &[]).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"hello world"[..]));
    assert!(r.headers.get("trailer").is_none());
    let r = get(gw, "x", "/interim", &[]).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"ok"[..]));
    let r = get(gw, "x", "/until-close", &[]).await;
    assert_eq!((r.status.as_u16(), &r.body[..]), (200, &b"until close"[..]));
    assert_eq!(get(gw, "x", "/garbage", &[]).await.status, 502);
    // A body that breaks before anything was sent (a malformed first chunk) is a 502 too,
    // not an empty reply.
    assert_eq!(get(gw, "x", "/bad-chunk", &[]).await.status, 502);

    // Hop-by-hop fields of a response (and those its Connection names) stop
    // at the proxy; `server` becomes AGC's; the rest passes as received.
    let mut c = RawClient::connect(gw).await;
    c.send(b"GET /hop HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, body) = c.response(true).await;
    assert_eq!(body, b"hop");
    assert!(head.contains("x-kept: yes\r\n"), "{head}");
    assert!(head.contains(&format!("server: {}\r\n", AGC_SERVER_NAME.to_lowercase())));
    for gone in ["x-private", "keep-alive:", "server: backend", "connection"] {
        assert!(!head.contains(gone), "{gone} in {head}");
    }

    // A pooled connection the backend closed while idle is not used.
    for _ in 0..3 {
        assert_eq!(get(gw, "x", "/short-lived", &[]).await.status, 200);
        tokio::time::sleep(Duration::from_millis(150)).await;
    }

    // Request bodies: a known length keeps content-length, a streamed one
    // goes chunked; both arrive whole.
    let tcp = timeout(T, TcpStream::connect(gw)).await.unwrap().unwrap();
    let (mut send, conn) = timeout(T, hyper::client::conn::http1::handshake(TokioIo::new(tcp)))
        .await
        .unwrap()
        .unwrap();
    tokio::spawn(conn);
    let body: http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible> =
        http_body_util::Full::new(Bytes::from_static(b"0123456789")).boxed();
    let req = Request::post("/upload")
        .header("host", "x")
        .body(body)
        .unwrap();
    let resp = timeout(T, send.send_request(req)).await.unwrap().unwrap();
    assert_eq!(resp.headers()["x-framing"], "cl=10");
    let got = timeout(T, resp.into_body().collect())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.to_bytes()[..], b"0123456789");

    let frames = (0..50).map(|i| Ok(hyper::body::Frame::data(Bytes::from(format!("{i},")))));
    let body = BodyExt::boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )));
    let req = Request::post("/upload")
        .header("host", "x")
        .body(body)
        .unwrap();
    let resp = timeout(T, send.send_request(req)).await.unwrap().unwrap();
    assert_eq!(resp.headers()["x-framing"], "te=chunked");
    let got = timeout(T, resp.into_body().collect())
        .await
        .unwrap()
        .unwrap();
    let want: String = (0..50).map(|i| format!("{i},")).collect();
    assert_eq!(got.to_bytes(), want.as_bytes());

    // The same client connection, idle for longer than the header-read
    // timeout, still serves its next request (idle clock: AGC's 5 min).
    tokio::time::sleep(Duration::from_millis(900)).await;
    let req = Request::post("/upload")
        .header("host", "x")
        .body(http_body_util::Full::new(Bytes::from_static(b"again")).boxed())
        .unwrap();
    let resp = timeout(T, send.send_request(req))
        .await
        .unwrap()
        .expect("idle keep-alive connection was closed");
    assert_eq!(resp.status(), 200);
    sb.stop().await;
}

#[tokio::test]
async fn idle_client_connections_close_after_the_idle_timeout() {
    let ip = Ipv4Addr::new(127, 20, 210, 1);
    let raw = raw_backend().await;
    let t = catch_all(ip, backend("raw", &[raw], fast_probe("/health")));
    let mut opts = ProxyOptions::new(OFFSET);
    opts.idle_timeout = Duration::from_millis(400);
    let sb = Sandbox::start_with(t, opts);
    sb.wait_bound().await;
    sb.wait_healthy("raw", 1).await;
    let mut s = timeout(T, TcpStream::connect(gw_addr(ip, 80)))
        .await
        .unwrap()
        .unwrap();
    timeout(T, s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .unwrap()
        .unwrap();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    timeout(T, s.read_to_end(&mut out))
        .await
        .expect("idle connection not closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(350),
        "closed after {waited:?}"
    );
    sb.stop().await;
}

/// A backend that reports every request it gets (method, path, request id
/// and body) and answers 200.
async fn recording_backend() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let line = format!(
                            "{} {} {}",
                            req.method(),
                            req.uri().path(),
                            req.headers()
                                .get("x-request-id")
                                .map_or("-", |v| v.to_str().unwrap()),
                        );
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        if line.split(' ').nth(1) != Some("/health") {
                            let _ = tx.send(format!("{line} {}", String::from_utf8_lossy(&body)));
                        }
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from_static(b"mirror")),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn request_mirrors_get_copies_and_streams_obey_the_request_timeout() {
    let ip = Ipv4Addr::new(127, 20, 211, 1);
    let echo = body_echo_backend().await;
    let (mirror_addr, mut mirrored) = recording_backend().await;
    let raw = raw_backend().await;
    // Nothing listens here: a mirror that cannot connect.
    let gone = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let mirror_to = |svc: &str| {
        Filter::RequestMirror(RequestMirror {
            target: BackendTarget::Service(key(svc)),
            numerator: 1,
            denominator: 1,
        })
    };
    let mut drip = rule("/drip", vec![to("raw", 1)], vec![]);
    drip.timeouts.request = Some(Duration::from_millis(400));
    let t = table(
        1,
        ip,
        vec![http_listener(
            "http",
            80,
            vec![route(
                "r",
                &[],
                vec![
                    rule("/upload", vec![to("echo", 1)], vec![mirror_to("mirror")]),
                    rule(
                        "/broken-mirror",
                        vec![to("echo", 1)],
                        vec![mirror_to("gone")],
                    ),
                    drip,
                ],
            )],
        )],
        vec![
            backend("echo", &[echo], tcp_probe()),
            backend("mirror", &[mirror_addr], fast_probe("/health")),
            backend("gone", &[gone], tcp_probe()),
            backend("raw", &[raw], fast_probe("/health")),
        ],
    );
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("echo", 1).await;
    sb.wait_healthy("mirror", 1).await;
    sb.wait_healthy("raw", 1).await;
    let gw = gw_addr(ip, 80);

    // The client gets the primary backend's answer; the mirror gets the same
    // request, body and request id.
    let tcp = timeout(T, TcpStream::connect(gw)).await.unwrap().unwrap();
    let (mut send, conn) = timeout(T, hyper::client::conn::http1::handshake(TokioIo::new(tcp)))
        .await
        .unwrap()
        .unwrap();
    tokio::spawn(conn);
    let req = Request::post("/upload")
        .header("host", "x")
        .header("x-request-id", "req-1")
        .body(http_body_util::Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let resp = timeout(T, send.send_request(req)).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let got = timeout(T, resp.into_body().collect())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.to_bytes()[..], b"payload");
    let copy = timeout(T, mirrored.recv())
        .await
        .expect("no mirrored request")
        .unwrap();
    assert_eq!(copy, "POST /upload req-1 payload");

    // A mirror that cannot be reached does not affect the request.
    let r = get(gw, "x", "/broken-mirror", &[]).await;
    assert_eq!(r.status, 200);

    // AGC's request timeout is strict even while the response streams: the
    // head arrives, then the stream is cut.
    let started = std::time::Instant::now();
    let mut s = timeout(T, TcpStream::connect(gw)).await.unwrap().unwrap();
    timeout(T, s.write_all(b"GET /drip HTTP/1.1\r\nHost: x\r\n\r\n"))
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    timeout(T, s.read_to_end(&mut out))
        .await
        .expect("streaming response not cut off")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the stream ended normally: {text}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(350) && took < Duration::from_secs(5),
        "cut after {took:?}"
    );
    sb.stop().await;
}

#[tokio::test]
async fn a_refused_connect_is_retried_on_another_endpoint() {
    let ip = Ipv4Addr::new(127, 20, 212, 1);
    let alive = app(AppKind::EchoBasic, "alive").await;
    let dying = app(AppKind::EchoBasic, "dying").await;
    // Probed once at start, then not for a minute: the endpoint that stops
    // listening still counts as healthy, as between two AGC probes.
    let slow_probe = ProbeSettings {
        interval: Duration::from_secs(60),
        ..tcp_probe()
    };
    let t = catch_all(ip, backend("echo", &[alive.addr, dying.addr], slow_probe));
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("echo", 2).await;
    drop(dying); // stops listening: connections are refused
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gw = gw_addr(ip, 80);
    for _ in 0..6 {
        let r = get(gw, "x", "/", &[]).await;
        assert_eq!(
            r.status, 200,
            "round robin hit the dead endpoint without a retry"
        );
        assert_eq!(r.json()["pod"], "alive");
    }
    sb.stop().await;
}

/// A TLS backend (the fixture certificate) that answers every request with
/// the server name the client sent and the path.
fn fixture_tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let pem = CertificatePem {
        secret: "ns/backend".into(),
        hostname: None,
        cert_chain_pem: include_str!("fixtures/test-cert.pem").into(),
        key_pem: include_str!("fixtures/test-key.pem").into(),
    };
    let key = Arc::new(agc_sandbox::proxy::tls::certified_key(&pem).unwrap());
    #[derive(Debug)]
    struct One(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for One {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.clone())
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(One(key)));
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

async fn tls_backend() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let acceptor = fixture_tls_acceptor();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = conns.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return; // TCP health probes connect and leave
                };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_owned();
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let sni = sni.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .header("x-sni", sni)
                                .body(http_body_util::Full::new(Bytes::from(
                                    req.uri().path().to_owned(),
                                )))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

#[tokio::test]
async fn backend_tls_policy_connects_with_tls_and_sni() {
    let ip = Ipv4Addr::new(127, 20, 213, 1);
    let (tls_addr, handshakes) = tls_backend().await;
    let mut b = backend("secure", &[tls_addr], tcp_probe());
    b.app_protocol_tls = true;
    b.tls_sni = Some("backend.contoso.com".into());
    let t = catch_all(ip, b);
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("secure", 1).await;
    let gw = gw_addr(ip, 80);
    // One client connection: its requests are served on one worker, whose
    // pool keeps the backend connection.
    let tcp = timeout(T, TcpStream::connect(gw)).await.unwrap().unwrap();
    let (mut send, conn) = timeout(T, hyper::client::conn::http1::handshake(TokioIo::new(tcp)))
        .await
        .unwrap()
        .unwrap();
    tokio::spawn(conn);
    for path in ["/one", "/two", "/three"] {
        let req = Request::get(path)
            .header("host", "x")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let r = timeout(T, send.send_request(req)).await.unwrap().unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-sni"], "backend.contoso.com");
        let body = timeout(T, r.into_body().collect()).await.unwrap().unwrap();
        assert_eq!(&body.to_bytes()[..], path.as_bytes());
    }
    assert_eq!(
        handshakes.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the TLS connection to the backend was not reused"
    );
    sb.stop().await;
}

/// A TLS backend whose every connection is a WebSocket echo.
async fn tls_ws_backend() -> SocketAddr {
    let acceptor = fixture_tls_acceptor();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_through_to_a_tls_backend() {
    let ip = Ipv4Addr::new(127, 20, 214, 1);
    let ws_addr = tls_ws_backend().await;
    let mut b = backend("securews", &[ws_addr], tcp_probe());
    b.app_protocol_tls = true;
    let t = catch_all(ip, b);
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("securews", 1).await;
    let gw = gw_addr(ip, 80);
    let (mut socket, _) = timeout(T, async {
        let tcp = TcpStream::connect(gw).await.unwrap();
        tokio_tungstenite::client_async(format!("ws://{gw}/chat"), tcp).await
    })
    .await
    .unwrap()
    .unwrap();
    for text in ["Hello world!!!", "again"] {
        timeout(T, socket.send(Message::text(text)))
            .await
            .unwrap()
            .unwrap();
        let echoed = timeout(T, socket.next()).await.unwrap().unwrap().unwrap();
        assert_eq!(echoed, Message::text(text));
    }
    sb.stop().await;
}

/// A raw HTTP/1.1 client connection that reads responses one at a time.
struct RawClient {
    s: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    async fn connect(addr: SocketAddr) -> RawClient {
        let s = timeout(T, TcpStream::connect(addr)).await.unwrap().unwrap();
        RawClient { s, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        timeout(T, self.s.write_all(bytes)).await.unwrap().unwrap();
    }

    /// The next response's head (lowercased) and body, read by its
    /// `content-length` (none for a HEAD request or a 1xx answer).
    async fn response(&mut self, has_body: bool) -> (String, Vec<u8>) {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_lowercase();
        self.buf.drain(..end);
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        let len = if has_body { len } else { 0 };
        while self.buf.len() < len {
            self.fill().await;
        }
        let body = self.buf.drain(..len).collect();
        (head, body)
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = timeout(T, self.s.read(&mut chunk)).await.unwrap().unwrap();
        assert!(
            n > 0,
            "connection closed; read so far: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }

    /// Whether the proxy closes the connection (after what was read).
    async fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        matches!(timeout(T, self.s.read_to_end(&mut rest)).await, Ok(Ok(_))) && rest.is_empty()
    }
}

#[tokio::test]
async fn client_http1_pipelining_http10_expect_continue_head_and_bad_framing() {
    let ip = Ipv4Addr::new(127, 20, 216, 1);
    let echo = body_echo_backend().await;
    let t = catch_all(ip, backend("echo", &[echo], tcp_probe()));
    let sb = Sandbox::start_with(t, ProxyOptions::new(OFFSET));
    sb.wait_bound().await;
    sb.wait_healthy("echo", 1).await;
    let gw = gw_addr(ip, 80);

    // Pipelined requests, one with a body, are answered in order.
    let mut c = RawClient::connect(gw).await;
    c.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let (head, body) = c.response(true).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("x-framing: cl=3\r\n"), "{head}");
    assert!(head.contains(&format!("server: {}\r\n", AGC_SERVER_NAME.to_lowercase())));
    assert!(head.contains("date: "), "{head}");
    assert_eq!(body, b"abc");
    let (head, body) = c.response(true).await;
    assert!(head.contains("x-framing: none\r\n"), "{head}");
    assert!(body.is_empty());

    // A chunked request body reaches the backend whole; HEAD gets the
    // length but no body, and the connection stays usable after it.
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        .await;
    let (head, body) = c.response(true).await;
    assert!(head.contains("x-framing: te=chunked\r\n"), "{head}");
    assert_eq!(body, b"hello world");
    c.send(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (head, _) = c.response(false).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        .await;
    let (head, body) = c.response(true).await;
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert_eq!(body, b"ok");
    assert!(c.closed().await, "Connection: close was not honoured");

    // Expect: 100-continue gets its interim answer before the body is sent.
    let mut c = RawClient::connect(gw).await;
    c.send(b"PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    let (head, _) = c.response(false).await;
    assert!(head.starts_with("http/1.1 100 continue\r\n"), "{head}");
    c.send(b"hello").await;
    let (head, body) = c.response(true).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert_eq!(body, b"hello");

    // HTTP/1.0: closed after the answer unless it asks for keep-alive.
    let mut c = RawClient::connect(gw).await;
    c.send(b"GET / HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let (head, _) = c.response(true).await;
    assert!(head.contains("connection: keep-alive\r\n"), "{head}");
    c.send(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").await;
    let (head, _) = c.response(true).await;
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert!(c.closed().await, "an HTTP/1.0 connection stayed open");

    // Both Transfer-Encoding and Content-Length: chunked wins, and the
    // connection is closed after the answer (RFC 9112 §6.1).
    let mut c = RawClient::connect(gw).await;
    c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        .await;
    let (head, body) = c.response(true).await;
    assert!(head.contains("x-framing: te=chunked\r\n"), "{head}");
    assert!(head.contains("connection: close\r\n"), "{head}");
    assert_eq!(body, b"ok");
    assert!(c.closed().await);

    // Paths are normalised before routing and forwarding (dot segments, unreserved escapes);
    // the query is not touched; `Connection: host` does not strip Host.
    let mut c = RawClient::connect(gw).await;
    c.send(
        b"GET /public/../admin/%7Ex/./y?q=/../%7E HTTP/1.1\r\nHost: x\r\nConnection: host\r\n\r\n",
    )
    .await;
    let (head, _) = c.response(true).await;
    // (The raw client lower-cases what it reads.)
    assert!(head.contains("x-path: /admin/~x/y?q=/../%7e\r\n"), "{head}");
    assert!(head.contains("x-host: x\r\n"), "{head}");

    // Bodies that cannot be delimited, and 1.1 requests without a Host, are
    // refused before any backend sees them, and the connection is closed.
    for (bad, status) in [
        (&b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"[..], "400 bad request"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "501 not implemented"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", "501 not implemented"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\nok\r\n0\r\n\r\n", "400 bad request"),
        (b"GET / HTTP/1.1\r\n\r\n", "400 bad request"),
        (b"GET / HTTP/1.1\r\nHost: evil.com/x?y\r\n\r\n", "400 bad request"),
        (b"GET http://u@x/ HTTP/1.1\r\nHost: x\r\n\r\n", "400 bad request"),
        (b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", "405 method not allowed"),
        (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", "400 bad request"),
    ] {
        let mut c = RawClient::connect(gw).await;
        c.send(bad).await;
        let (head, _) = c.response(true).await;
        assert!(head.starts_with(&format!("http/1.1 {status}\r\n")), "{head}");
        assert!(head.contains("connection: close\r\n"), "{head}");
        assert!(c.closed().await);
    }
    sb.stop().await;
}

/// A client that asks for a large response and never reads it is cut by the route's request
/// timeout (AGC's is strict, even while the response streams) although the write to it is
/// blocked, and its backend connection is let go.
#[tokio::test]
async fn a_client_that_never_reads_is_cut_by_the_request_timeout() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let ip = Ipv4Addr::new(127, 20, 231, 1);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let big = l.local_addr().unwrap();
    // Backend connections that served /big and are still open: the proxy holds one for as
    // long as it keeps the client's response going.
    let open = Arc::new(AtomicUsize::new(0));
    let open2 = open.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let open = open2.clone();
            tokio::spawn(async move {
                let served = Arc::new(AtomicBool::new(false));
                let served2 = served.clone();
                let open3 = open.clone();
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (served, open) = (served2.clone(), open3.clone());
                    async move {
                        let body = if req.uri().path() == "/health" {
                            Bytes::from_static(b"ok")
                        } else {
                            if !served.swap(true, Ordering::SeqCst) {
                                open.fetch_add(1, Ordering::SeqCst);
                            }
                            Bytes::from(vec![b'x'; 50 << 20])
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(body),
                        ))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
                if served.load(Ordering::SeqCst) {
                    open.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
    });
    let mut r = rule("/big", vec![to("big", 1)], vec![]);
    r.timeouts.request = Some(Duration::from_millis(500));
    let t = table(
        1,
        ip,
        vec![http_listener("http", 80, vec![route("r", &[], vec![r])])],
        vec![backend("big", &[big], fast_probe("/health"))],
    );
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("big", 1).await;
    let mut s = timeout(T, TcpStream::connect(gw_addr(ip, 80)))
        .await
        .unwrap()
        .unwrap();
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Do not read while the request timeout passes: the proxy must give up the response (and
    // the backend connection) although its write to the client is blocked.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while open.load(Ordering::SeqCst) == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        open.load(Ordering::SeqCst),
        1,
        "the backend was asked for /big"
    );
    while open.load(Ordering::SeqCst) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the response to a client that does not read was still held after the request timeout"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut got = Vec::new();
    let read = timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(
        read.is_ok(),
        "the connection was still open after the request timeout"
    );
    assert!(
        got.len() < 50 << 20,
        "the whole response was sent anyway ({} bytes)",
        got.len()
    );
    sb.stop().await;
}

/// Idle sockets held against one listener spend its connection budget: new clients there are
/// refused at once (not left hanging), another listener keeps serving, and the refusals are
/// counted in /metrics.
#[tokio::test]
async fn a_flood_on_one_listener_spends_only_its_own_budget() {
    let ip = Ipv4Addr::new(127, 20, 232, 1);
    let echo = body_echo_backend().await;
    let t = table(
        1,
        ip,
        vec![
            http_listener(
                "a",
                80,
                vec![route(
                    "r",
                    &[],
                    vec![rule("/", vec![to("echo", 1)], vec![])],
                )],
            ),
            http_listener(
                "b",
                81,
                vec![route(
                    "r2",
                    &[],
                    vec![rule("/", vec![to("echo", 1)], vec![])],
                )],
            ),
        ],
        vec![backend("echo", &[echo], tcp_probe())],
    );
    let mut opts = ProxyOptions::new(OFFSET);
    opts.max_connections_per_listener = 8;
    opts.max_connections = 12;
    let sb = Sandbox::start_with(t, opts);
    sb.wait_bound().await;
    sb.wait_healthy("echo", 1).await;
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(
            timeout(T, TcpStream::connect(gw_addr(ip, 80)))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The ninth on listener a: closed at once, no answer.
    let mut s = timeout(T, TcpStream::connect(gw_addr(ip, 80)))
        .await
        .unwrap()
        .unwrap();
    let _ = s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buf = Vec::new();
    let r = timeout(Duration::from_secs(2), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "a refused client must not hang");
    assert!(buf.is_empty(), "{}", String::from_utf8_lossy(&buf));
    // Listener b still answers.
    let r = get(gw_addr(ip, 81), "x", "/", &[]).await;
    assert_eq!(r.status, 200);
    let q = agc_sandbox::apiserver::Query::parse(None);
    let resp = sb.started.extension.get("/metrics", &q).unwrap();
    let metrics = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        metrics.contains("agc_connections_refused_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("agc_connection_limit{scope=\"listener\"} 8"),
        "{metrics}"
    );
    drop(idle);
    sb.stop().await;
}

/// A Gateway on `ip` whose HTTPS route streams an endless backend response under a 500 ms
/// request timeout, and an h2 client on it with h2's default 64 KiB windows (not hyper's 2 MiB:
/// the gateway may run only that far ahead). Returns the sandbox, the request sender and the
/// client connection's future.
async fn endless_h2_gateway(
    ip: Ipv4Addr,
) -> (
    Sandbox,
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    impl std::future::Future<Output = hyper::Result<()>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endless = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let body = if req.uri().path() == "/health" {
                            http_body_util::Either::Left(http_body_util::Full::new(
                                Bytes::from_static(b"ok"),
                            ))
                        } else {
                            let chunks = futures_util::stream::repeat_with(|| {
                                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(
                                    Bytes::from(vec![b'x'; 16 * 1024]),
                                ))
                            });
                            http_body_util::Either::Right(http_body_util::StreamBody::new(chunks))
                        };
                        Ok::<_, std::convert::Infallible>(http::Response::new(body))
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let mut r = rule("/", vec![to("endless", 1)], vec![]);
    r.timeouts.request = Some(Duration::from_millis(500));
    let t = table(
        1,
        ip,
        vec![tls_listener(
            (
                include_str!("fixtures/test-cert.pem"),
                include_str!("fixtures/test-key.pem"),
            ),
            vec![route("r", &["secure.contoso.com"], vec![r])],
        )],
        vec![backend("endless", &[endless], fast_probe("/health"))],
    );
    let sb = Sandbox::start(t);
    sb.wait_bound().await;
    sb.wait_healthy("endless", 1).await;
    let tls = tls_connect(gw_addr(ip, 443), b"h2").await;
    let (send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(65_535)
            .initial_connection_window_size(65_535)
            .handshake(TokioIo::new(tls))
            .await
            .unwrap();
    (sb, send, conn)
}

/// An h2 client that reads a never-ending response slowly is cut by the route's request timeout
/// (the stream is reset), although the backend always has data ready.
#[tokio::test]
async fn an_h2_client_that_reads_slowly_is_cut_by_the_request_timeout() {
    let ip = Ipv4Addr::new(127, 20, 232, 1);
    let (sb, mut send, conn) = endless_h2_gateway(ip).await;
    tokio::spawn(conn);
    let req = Request::get("https://secure.contoso.com/stream")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let started = std::time::Instant::now();
    let resp = timeout(T, send.send_request(req)).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = 0usize;
    let ended = loop {
        // A slow reader: one frame every 20 ms (the window opens a little each time).
        tokio::time::sleep(Duration::from_millis(20)).await;
        match timeout(T, body.frame()).await {
            Ok(Some(Ok(f))) => got += f.into_data().map_or(0, |d| d.len()),
            Ok(Some(Err(e))) => break format!("reset: {e}"),
            Ok(None) => break "ended".to_string(),
            Err(_) => panic!("no frame within {T:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "still streaming after {:?} ({got} bytes): the request timeout did not cut it",
            started.elapsed()
        );
    };
    assert!(ended.starts_with("reset"), "{ended}");
    sb.stop().await;
}

/// An h2 client that never reads its response: hyper stops polling the body once the client's
/// window is full, so the gateway closes the connection a grace second after the request
/// timeout instead of holding it (and the backend) until the 5-minute idle timeout.
#[tokio::test]
async fn an_h2_client_that_never_reads_is_closed_after_the_request_timeout() {
    let ip = Ipv4Addr::new(127, 20, 232, 2);
    let (sb, mut send, conn) = endless_h2_gateway(ip).await;
    let conn = tokio::spawn(conn);
    let req = Request::get("https://secure.contoso.com/stream")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let started = std::time::Instant::now();
    let resp = timeout(T, send.send_request(req)).await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
    // Never read: hold the body and wait for the gateway to end the connection.
    let _body = resp.into_body();
    timeout(Duration::from_secs(10), conn)
        .await
        .expect("the gateway closed the connection")
        .unwrap()
        .ok();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    sb.stop().await;
}
