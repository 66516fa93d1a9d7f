//! The controller end to end: start the sandbox in-process, create objects through the HTTP API
//! and watch their status converge.

use agc_sandbox::client::ApiClient;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(10);

/// One API request; returns (status, JSON body).
async fn call(api: &ApiClient, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let method: http::Method = method.parse().expect("method");
    timeout(
        STEP,
        api.request(
            method,
            path,
            "application/json",
            body.map(|b| b.to_string().into_bytes()),
        ),
    )
    .await
    .expect("request timeout")
    .expect("request")
}

fn cond<'a>(conds: &'a Value, t: &str) -> Option<&'a Value> {
    conds.as_array()?.iter().find(|c| c["type"] == t)
}

/// Polls `path` until `ok` holds, or panics with the last object.
async fn wait_for(addr: &ApiClient, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
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
        // Listener ports are served at port + offset: never a privileged port in tests.
        port_offset: 20_000 + (std::process::id() % 20_000) as u16,
        ..Default::default()
    };
    let sandbox = agc_sandbox::app::spawn(args).await.expect("sandbox starts");
    let api = ApiClient::new(&sandbox.started.access).expect("client");

    // The default class is created and accepted.
    let gc = wait_for(
        &api,
        "/apis/gateway.networking.k8s.io/v1/gatewayclasses/azure-alb-external",
        |o| cond(&o["status"]["conditions"], "Accepted").is_some_and(|c| c["status"] == "True"),
    )
    .await;
    assert_eq!(
        gc["spec"]["controllerName"],
        "alb.networking.azure.io/alb-controller"
    );

    let (code, _) = call(
        &api,
        "POST",
        "/api/v1/namespaces",
        Some(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test-infra"}})),
    )
    .await;
    assert_eq!(code, 201);
    let (code, _) = call(&api, "POST", "/api/v1/namespaces/test-infra/services", Some(&json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "websocket-backend", "namespace": "test-infra"},
        "spec": {"ports": [{"name": "http-back", "port": 8080, "targetPort": "http"}], "selector": {"app": "websocket-backend"}}}))).await;
    assert_eq!(code, 201);
    let gw_path = "/apis/gateway.networking.k8s.io/v1/namespaces/test-infra/gateways";
    let (code, _) = call(&api, "POST", gw_path, Some(&json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gateway-01", "namespace": "test-infra"},
        "spec": {"gatewayClassName": "azure-alb-external", "listeners": [
            {"name": "http-listener", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}))).await;
    assert_eq!(code, 201);
    let rt_path = "/apis/gateway.networking.k8s.io/v1/namespaces/test-infra/httproutes";
    let (code, _) = call(
        &api,
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
        &api,
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

    let gw = wait_for(&api, &format!("{gw_path}/gateway-01"), |o| {
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

    let rt = wait_for(&api, &format!("{rt_path}/websocket-example"), |o| {
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

    let broken = wait_for(&api, &format!("{rt_path}/broken"), |o| {
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
    let events = wait_for(&api, "/api/v1/namespaces/test-infra/events", |o| {
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

    sandbox.shutdown().await.expect("clean shutdown");
}
