//! The seed tutorial end to end through the data plane, as a user runs it: kubectl applies,
//! the status blocks the tutorial shows, `503 no healthy upstream` until the
//! HealthCheckPolicy exists, then the WebSocket echo through the gateway; both deployment modes.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;

const ALB: &str = "apiVersion: v1
kind: Namespace
metadata: {name: alb-test-infra}
---
apiVersion: alb.networking.azure.io/v1
kind: ApplicationLoadBalancer
metadata: {name: alb-test, namespace: alb-test-infra}
spec:
  associations: [/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/alb]
";

fn gateway(mode: &str) -> String {
    let (annotations, addresses) = match mode {
        "managed" => (
            "    alb.networking.azure.io/alb-namespace: alb-test-infra\n    alb.networking.azure.io/alb-name: alb-test\n",
            "",
        ),
        _ => (
            "    alb.networking.azure.io/alb-id: /subscriptions/sub/resourceGroups/rg/providers/Microsoft.ServiceNetworking/trafficControllers/alb-test\n",
            "  addresses:\n  - type: alb.networking.azure.io/alb-frontend\n    value: frontend\n",
        ),
    };
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-01
  namespace: test-infra
  annotations:
{annotations}spec:
  gatewayClassName: azure-alb-external
  listeners:
  - name: http-listener
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
{addresses}"
    )
}

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: websocket-example, namespace: test-infra}
spec:
  parentRefs:
  - name: gateway-01
  hostnames:
  - \"contoso.com\"
  rules:
    - backendRefs:
        - name: websocket-backend
          port: 8080
";

const HCP: &str = "apiVersion: alb.networking.azure.io/v1
kind: HealthCheckPolicy
metadata: {name: websockets-backend-health-check-policy, namespace: test-infra}
spec:
  targetRef: {group: \"\", kind: Service, name: websocket-backend, namespace: test-infra}
  default:
    interval: 5s
    timeout: 3s
    healthyThreshold: 1
    unhealthyThreshold: 1
    http:
      path: /health
";

fn condition<'a>(conds: &'a Value, type_: &str) -> &'a Value {
    conds
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conds}"))
}

/// Asserts one condition as the seed shows it (type, status, reason, message, observedGeneration).
fn assert_condition(conds: &Value, type_: &str, reason: &str, message: &str) {
    let c = condition(conds, type_);
    assert_eq!(
        (
            c["status"].as_str(),
            c["reason"].as_str(),
            c["message"].as_str()
        ),
        (Some("True"), Some(reason), Some(message)),
        "{type_}: {c}"
    );
    assert_eq!(c["observedGeneration"], 1, "{type_}: {c}");
}

const PROGRAMMED: &str =
    "Application Gateway For Containers resource has been successfully updated.";

/// Retries `f` until it returns Some, for up to 10 s.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut f: impl FnMut() -> F,
) -> T {
    within(what, async {
        loop {
            if let Some(v) = f().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

/// `websocat -t - --ws-c-uri=ws://contoso.com/chat ws-c:tcp:<ip>:<port>`: connect to the
/// gateway's address with Host contoso.com, send a message, read the echo.
async fn chat(addr: &str, msg: &str) -> Result<String, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut ws, _) = tokio_tungstenite::client_async("ws://contoso.com/chat", tcp)
        .await
        .map_err(|e| e.to_string())?;
    ws.send(Message::text(msg))
        .await
        .map_err(|e| e.to_string())?;
    match ws.next().await {
        Some(Ok(m)) => Ok(m.into_text().map_err(|e| e.to_string())?.to_string()),
        other => Err(format!("{other:?}")),
    }
}

async fn run_tutorial(mode: &str) {
    let sb = Sandbox::start().await;
    let offset = sb_port_offset(&sb);
    sb.kubectl(&[
        "apply",
        "-f",
        seed("websocket-deployment.yaml").to_str().unwrap(),
    ])
    .success();
    if mode == "managed" {
        sb.kubectl_stdin(&["apply", "-f", "-"], ALB).success();
    }
    sb.kubectl_stdin(&["apply", "-f", "-"], &gateway(mode))
        .success();
    sb.kubectl(&[
        "wait",
        "--for=condition=Programmed",
        "gateway/gateway-01",
        "-n",
        "test-infra",
        "--timeout=10s",
    ])
    .success();
    sb.kubectl_stdin(&["apply", "-f", "-"], ROUTE).success();

    // The Gateway's status block, as the tutorial shows it.
    let gw = eventually("attachedRoutes 1", || {
        let gw = sb.get_json(&["gateway", "gateway-01", "-n", "test-infra"]);
        async move { (gw["status"]["listeners"][0]["attachedRoutes"] == 1).then_some(gw) }
    })
    .await;
    let st = &gw["status"];
    assert_condition(&st["conditions"], "Accepted", "Accepted", "Valid Gateway");
    assert_condition(&st["conditions"], "Programmed", "Programmed", PROGRAMMED);
    let l = &st["listeners"][0];
    assert_eq!(l["name"], "http-listener");
    assert_condition(&l["conditions"], "ResolvedRefs", "ResolvedRefs", "");
    assert_condition(
        &l["conditions"],
        "Accepted",
        "Accepted",
        "Listener is accepted",
    );
    assert_condition(&l["conditions"], "Programmed", "Programmed", PROGRAMMED);
    assert_eq!(
        l["supportedKinds"],
        serde_json::json!([{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}])
    );
    let ip = st["addresses"][0]["value"].as_str().unwrap().to_string();
    let addr = format!("{ip}:{}", 80 + offset);

    // The HTTPRoute's status block.
    let route = sb.get_json(&["httproute", "websocket-example", "-n", "test-infra"]);
    let parent = &route["status"]["parents"][0];
    assert_eq!(
        parent["controllerName"],
        "alb.networking.azure.io/alb-controller"
    );
    assert_eq!(
        parent["parentRef"],
        serde_json::json!({"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gateway-01", "namespace": "test-infra"})
    );
    assert_condition(&parent["conditions"], "ResolvedRefs", "ResolvedRefs", "");
    assert_condition(
        &parent["conditions"],
        "Accepted",
        "Accepted",
        "Route is Accepted",
    );
    assert_condition(
        &parent["conditions"],
        "Programmed",
        "Programmed",
        PROGRAMMED,
    );

    // Before the HealthCheckPolicy: AGC's default probe on / fails on this backend.
    let r = eventually("503 before the HealthCheckPolicy", || {
        let url = format!("http://{addr}/chat");
        async move {
            let r = http_with("GET", &url, &[("host", "contoso.com")], bytes::Bytes::new()).await;
            (r.status == 503).then_some(r)
        }
    })
    .await;
    assert_eq!(r.text(), "no healthy upstream");
    assert_eq!(r.headers["content-type"], "text/plain");
    assert_eq!(r.headers["server"], "Microsoft-Azure-Application-LB/AGC");
    assert!(
        chat(&addr, "Hello world!!!").await.is_err(),
        "the upgrade must fail while no endpoint is healthy"
    );

    sb.kubectl_stdin(&["apply", "-f", "-"], HCP).success();
    let hcp = sb.get_json(&[
        "healthcheckpolicy",
        "websockets-backend-health-check-policy",
        "-n",
        "test-infra",
    ]);
    assert_condition(
        &hcp["status"]["conditions"],
        "Accepted",
        "Accepted",
        "Valid HealthCheckPolicy",
    );
    let echoed = eventually("echo through the gateway", || {
        let addr = addr.clone();
        async move { chat(&addr, "Hello world!!!").await.ok() }
    })
    .await;
    assert_eq!(echoed, "Hello world!!!");

    // Deleting the only pod fails over to its replacement.
    sb.delete_first_pod("app=websocket-backend");
    let echoed = eventually("echo after the pod was replaced", || {
        let addr = addr.clone();
        async move { chat(&addr, "again").await.ok() }
    })
    .await;
    assert_eq!(echoed, "again");
    sb.stop().await;
}

fn sb_port_offset(sb: &Sandbox) -> u16 {
    sb.port_offset
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_tutorial_alb_managed() {
    run_tutorial("managed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_tutorial_bring_your_own() {
    run_tutorial("byo").await;
}
