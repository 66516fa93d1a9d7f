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

/// POSTs `obj` to `path` and asserts it was created.
async fn create(api: &ApiClient, path: &str, obj: Value) {
    let (code, body) = call(api, "POST", path, Some(&obj)).await;
    assert_eq!(
        code, 201,
        "POST {path} {}: {body:#}",
        obj["metadata"]["name"]
    );
}

/// Waits for the route at `path` to have a parent status, and returns the first.
async fn first_parent_status(api: &ApiClient, path: &str) -> Value {
    let rt = wait_for(api, path, |o| !o["status"]["parents"].is_null()).await;
    rt["status"]["parents"][0].clone()
}

/// Asserts that `status` has a `ty` condition whose `field` is `want`.
fn assert_condition(status: &Value, ty: &str, field: &str, want: &str) {
    let conds = &status["conditions"];
    let Some(c) = cond(conds, ty) else {
        panic!("no {ty} condition in {conds:#}")
    };
    assert_eq!(c[field], want, "{ty} condition's {field} in {conds:#}");
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

    create(
        &api,
        "/api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "test-infra"}}),
    )
    .await;
    create(&api, "/api/v1/namespaces/test-infra/services", json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "websocket-backend", "namespace": "test-infra"},
        "spec": {"ports": [{"name": "http-back", "port": 8080, "targetPort": "http"}], "selector": {"app": "websocket-backend"}}})).await;
    let gw_path = "/apis/gateway.networking.k8s.io/v1/namespaces/test-infra/gateways";
    create(&api, gw_path, json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gateway-01", "namespace": "test-infra"},
        "spec": {"gatewayClassName": "azure-alb-external", "listeners": [
            {"name": "http-listener", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}]}})).await;
    let rt_path = "/apis/gateway.networking.k8s.io/v1/namespaces/test-infra/httproutes";
    let route = |name: &str, spec: Value| {
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": name, "namespace": "test-infra"}, "spec": spec})
    };
    let good = json!({"parentRefs": [{"name": "gateway-01"}], "hostnames": ["contoso.com"],
                      "rules": [{"backendRefs": [{"name": "websocket-backend", "port": 8080}]}]});
    create(&api, rt_path, route("websocket-example", good)).await;
    // A broken route next to it must not disturb the good one.
    let broken = json!({"parentRefs": [{"name": "gateway-01", "sectionName": "nope"}],
                        "rules": [{"backendRefs": [{"name": "missing", "port": 8080}]}]});
    create(&api, rt_path, route("broken", broken)).await;

    let gw = wait_for(&api, &format!("{gw_path}/gateway-01"), |o| {
        o["status"]["listeners"][0]["attachedRoutes"] == 1
            && cond(&o["status"]["conditions"], "Programmed").is_some_and(|c| c["status"] == "True")
    })
    .await;
    assert_condition(&gw["status"], "Accepted", "message", "Valid Gateway");
    assert!(gw["status"]["addresses"][0]["value"]
        .as_str()
        .unwrap()
        .starts_with("127.20."));

    let parent = first_parent_status(&api, &format!("{rt_path}/websocket-example")).await;
    assert_condition(&parent, "Accepted", "message", "Route is Accepted");
    assert_condition(&parent, "ResolvedRefs", "reason", "ResolvedRefs");

    let parent = first_parent_status(&api, &format!("{rt_path}/broken")).await;
    assert_condition(&parent, "Accepted", "reason", "NoMatchingParent");
    assert_condition(&parent, "ResolvedRefs", "reason", "BackendNotFound");

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
