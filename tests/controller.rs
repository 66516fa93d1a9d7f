//! The controller end to end: start the sandbox in-process, create objects through the HTTP API
//! and watch their status converge.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(10);

/// One HTTP/1.1 request with `Connection: close`; returns (status, JSON body).
async fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = timeout(STEP, TcpStream::connect(addr))
        .await
        .expect("connect timeout")
        .expect("connect");
    timeout(STEP, s.write_all(req.as_bytes()))
        .await
        .expect("write timeout")
        .expect("write");
    let mut buf = Vec::new();
    timeout(STEP, s.read_to_end(&mut buf))
        .await
        .expect("read timeout")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").expect("response head");
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn cond<'a>(conds: &'a Value, t: &str) -> Option<&'a Value> {
    conds.as_array()?.iter().find(|c| c["type"] == t)
}

/// Polls `path` until `ok` holds, or panics with the last object.
async fn wait_for(addr: SocketAddr, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let (_, obj) = call(addr, "GET", path, None).await;
        if ok(&obj) {
            return obj;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting on {path}: {obj:#}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_and_route_status_converge_through_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = agc_sandbox::cli::UpArgs {
        data_dir: dir.path().to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        watch: vec![],
        port_offset: 0,
        token_file: None,
        alb_provisioning_delay: Duration::ZERO,
        shared_pod_ip: false,
    };
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(agc_sandbox::app::run(
        args,
        async move {
            let _ = stop_rx.await;
        },
        move |s| {
            let _ = addr_tx.send(s.api_addr);
        },
    ));
    let addr = timeout(STEP, addr_rx)
        .await
        .expect("start timeout")
        .expect("started");

    // The default class is created and accepted.
    let gc = wait_for(
        addr,
        "/apis/gateway.networking.k8s.io/v1/gatewayclasses/azure-alb-external",
        |o| cond(&o["status"]["conditions"], "Accepted").is_some_and(|c| c["status"] == "True"),
    )
    .await;
    assert_eq!(
        gc["spec"]["controllerName"],
        "alb.networking.azure.io/alb-controller"
    );

    let (code, _) = call(
        addr,
        "POST",
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test-infra"}})),
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = call(addr, "POST", "/api/v1/namespaces/test-infra/services", Some(&json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "websocket-backend", "namespace": "test-infra"},
        "spec": {"ports": [{"name": "http-back", "port": 8080, "targetPort": "http"}], "selector": {"app": "websocket-backend"}}}))).await;
    assert_eq!(code, 201);
    let gw_path = "/apis/gateway.networking.k8s.io/v1/namespaces/test-infra/gateways";
    let (code, _) = call(addr, "POST", gw_path, Some(&json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gateway-01", "namespace": "test-infra"},
        "spec": {"gatewayClassName": "azure-alb-external", "listeners": [
            {"name": "http-listener", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}))).await;
    assert_eq!(code, 201);
    let rt_path = "/apis/gateway.networking.k8s.io/v1/namespaces/test-infra/httproutes";
    let (code, _) = call(
        addr,
        "POST",
        rt_path,
        Some(&json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "websocket-example", "namespace": "test-infra"},
        "spec": {"parentRefs": [{"name": "gateway-01"}], "hostnames": ["contoso.com"],
                 "rules": [{"backendRefs": [{"name": "websocket-backend", "port": 8080}]}]}})),
    )
    .await;
    assert_eq!(code, 201);
    // A broken route next to it must not disturb the good one.
    let (code, _) = call(
        addr,
        "POST",
        rt_path,
        Some(&json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "broken", "namespace": "test-infra"},
        "spec": {"parentRefs": [{"name": "gateway-01", "sectionName": "nope"}],
                 "rules": [{"backendRefs": [{"name": "missing", "port": 8080}]}]}})),
    )
    .await;
    assert_eq!(code, 201);

    let gw = wait_for(addr, &format!("{gw_path}/gateway-01"), |o| {
        o["status"]["listeners"][0]["attachedRoutes"] == 1
            && cond(&o["status"]["conditions"], "Programmed").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_eq!(
        cond(&gw["status"]["conditions"], "Accepted").unwrap()["message"],
        "Valid Gateway"
    );
    assert!(gw["status"]["addresses"][0]["value"]
        .as_str()
        .unwrap()
        .starts_with("127.20."));

    let rt = wait_for(addr, &format!("{rt_path}/websocket-example"), |o| {
        !o["status"]["parents"].is_null()
    })
    .await;
    let p = &rt["status"]["parents"][0];
    assert_eq!(
        cond(&p["conditions"], "Accepted").unwrap()["message"],
        "Route is Accepted"
    );
    assert_eq!(
        cond(&p["conditions"], "ResolvedRefs").unwrap()["reason"],
        "ResolvedRefs"
    );

    let broken = wait_for(addr, &format!("{rt_path}/broken"), |o| {
        !o["status"]["parents"].is_null()
    })
    .await;
    let p = &broken["status"]["parents"][0];
    assert_eq!(
        cond(&p["conditions"], "Accepted").unwrap()["reason"],
        "NoMatchingParent"
    );
    assert_eq!(
        cond(&p["conditions"], "ResolvedRefs").unwrap()["reason"],
        "BackendNotFound"
    );

    // The rejection is explained by an Event.
    let events = wait_for(addr, "/api/v1/namespaces/test-infra/events", |o| {
        o["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|e| e["reason"] == "NoMatchingParent"))
    })
    .await;
    assert!(events["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["involvedObject"]["name"] == "broken"));

    let _ = stop_tx.send(());
    timeout(STEP, server)
        .await
        .expect("shutdown timeout")
        .expect("join")
        .expect("run");
}
