//! The API server over plain HTTP: discovery, CRUD, errors as Status objects, watch semantics,
//! auth, and durability of acknowledged writes across `kill -9` of the real binary.

mod support;

use serde_json::{json, Value};
use support::*;

fn gateway(name: &str, port: i64) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": name},
        "spec": {"gatewayClassName": "azure-alb-external",
                 "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}})
}

const GW: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways";

/// Discovery documents kubectl relies on: version, groups, resources with kind and scope.
#[tokio::test]
async fn discovery_and_version() {
    let sb = Sandbox::start().await;
    let v = get(&sb.url("/version")).await.json();
    assert_eq!(v["minor"], "32");
    let groups = get(&sb.url("/apis")).await.json();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"gateway.networking.k8s.io") && names.contains(&"alb.networking.azure.io"),
        "{names:?}"
    );
    let alb = get(&sb.url("/apis/alb.networking.azure.io/v1"))
        .await
        .json();
    let hcp = alb["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "healthcheckpolicies")
        .unwrap();
    assert_eq!(hcp["kind"], "HealthCheckPolicy");
    assert_eq!(hcp["namespaced"], true);
    let openapi = get(&sb.url("/openapi/v2")).await;
    assert_eq!(openapi.status, 200);
    assert_eq!(openapi.json()["swagger"], "2.0");
    assert_eq!(get(&sb.url("/readyz")).await.status, 200);
    sb.stop().await;
}

/// Create, read, the errors kubectl users meet, and that rejected writes change nothing.
#[tokio::test]
async fn crud_and_errors_leave_the_store_untouched() {
    let sb = Sandbox::start().await;
    let created = post_json(&sb.url(GW), &gateway("gateway-01", 80)).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let obj = created.json();
    assert_eq!(obj["metadata"]["generation"], 1);
    assert_eq!(
        obj["spec"]["listeners"][0]["allowedRoutes"]["namespaces"]["from"],
        "Same"
    );
    // What a rejected request could have changed (the controller writes status meanwhile).
    let snapshot = |list: Value| -> Vec<(Value, Value, Value, Value)> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["metadata"]["name"].clone(),
                    o["metadata"]["uid"].clone(),
                    o["metadata"]["generation"].clone(),
                    o["spec"].clone(),
                )
            })
            .collect()
    };
    let before = snapshot(get(&sb.url(GW)).await.json());

    let dup = post_json(&sb.url(GW), &gateway("gateway-01", 80)).await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["reason"], "AlreadyExists");
    assert_eq!(
        dup.json()["message"],
        "gateways.gateway.networking.k8s.io \"gateway-01\" already exists"
    );

    let bad_port = post_json(&sb.url(GW), &gateway("gw-port", 0)).await;
    assert_eq!(bad_port.status, 422, "{}", bad_port.text());
    let s = bad_port.json();
    assert_eq!(s["reason"], "Invalid");
    assert_eq!(s["details"]["causes"][0]["field"], "spec.listeners[0].port");

    let bad_name = post_json(&sb.url(GW), &gateway("Bad_Name", 80)).await;
    assert_eq!(bad_name.status, 422);
    assert_eq!(
        bad_name.json()["details"]["causes"][0]["field"],
        "metadata.name"
    );

    let no_ns = post_json(
        &sb.url("/apis/gateway.networking.k8s.io/v1/namespaces/nope/gateways"),
        &gateway("g", 80),
    )
    .await;
    assert_eq!(no_ns.status, 404);
    assert_eq!(no_ns.json()["message"], "namespaces \"nope\" not found");

    let mut wrong_kind = gateway("g2", 80);
    wrong_kind["kind"] = json!("HTTPRoute");
    let r = post_json(&sb.url(GW), &wrong_kind).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["details"]["causes"][0]["field"], "kind");

    let mut other_ns = gateway("g3", 80);
    other_ns["metadata"]["namespace"] = json!("kube-system");
    let r = post_json(&sb.url(GW), &other_ns).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["details"]["causes"][0]["field"],
        "metadata.namespace"
    );

    let malformed = http("POST", &sb.url(GW), "application/json", "{not json").await;
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.json()["kind"], "Status");

    let smp = http(
        "PATCH",
        &sb.url(&format!("{GW}/gateway-01")),
        "application/strategic-merge-patch+json",
        "{}",
    )
    .await;
    assert_eq!(smp.status, 415);

    let huge = vec![b' '; 3 * 1024 * 1024 + 10];
    assert_eq!(
        http("POST", &sb.url(GW), "application/json", huge)
            .await
            .status,
        413
    );

    let mut stale = obj.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["spec"]["gatewayClassName"] = json!("other");
    let conflict = http(
        "PUT",
        &sb.url(&format!("{GW}/gateway-01")),
        "application/json",
        serde_json::to_vec(&stale).unwrap(),
    )
    .await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["reason"], "Conflict");

    let after = snapshot(get(&sb.url(GW)).await.json());
    assert_eq!(after, before, "a rejected request changed the store");
    assert_eq!(after.len(), 1);
    sb.stop().await;
}

/// Status is a subresource: main-resource writes keep it, and only spec bumps generation.
#[tokio::test]
async fn status_subresource_and_generation() {
    let sb = Sandbox::start().await;
    post_json(&sb.url(GW), &gateway("gw", 80)).await;
    let url = sb.url(&format!("{GW}/gw/status"));
    let patch = json!({"status": {"conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "m", "lastTransitionTime": "2024-01-01T00:00:00Z"}]}});
    let r = patch_json(&url, "application/merge-patch+json", &patch).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["metadata"]["generation"], 1);
    let label = json!({"metadata": {"labels": {"a": "b"}}, "status": null});
    let r = patch_json(
        &sb.url(&format!("{GW}/gw")),
        "application/merge-patch+json",
        &label,
    )
    .await;
    assert_eq!(r.json()["metadata"]["generation"], 1);
    assert_eq!(
        r.json()["status"]["conditions"][0]["type"],
        "Accepted",
        "main-resource patch must not drop status"
    );
    let spec = json!([{"op": "replace", "path": "/spec/listeners/0/port", "value": 443}]);
    let r = patch_json(
        &sb.url(&format!("{GW}/gw")),
        "application/json-patch+json",
        &spec,
    )
    .await;
    assert_eq!(r.json()["metadata"]["generation"], 2);
    sb.stop().await;
}

/// Reads lines of a watch stream until `n` events arrived.
async fn watch_events(url: &str, n: usize) -> Vec<Value> {
    use http_body_util::BodyExt;
    let mut body = open("GET", url, &[], bytes::Bytes::new(), true)
        .await
        .into_body();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    while events.len() < n {
        let frame = within("watch event", body.frame())
            .await
            .expect("watch ended early")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                events.push(serde_json::from_slice(&line).unwrap());
            }
        }
    }
    events
}

/// resourceVersion rules: `0` replays current objects as ADDED; `N` sends only later changes;
/// fieldSelector on metadata.name filters (kubectl wait depends on it).
#[tokio::test]
async fn watch_resource_version_and_field_selector() {
    let sb = Sandbox::start().await;
    post_json(&sb.url(GW), &gateway("a", 80)).await;
    post_json(&sb.url(GW), &gateway("b", 80)).await;
    let list = get(&sb.url(GW)).await.json();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let replay = watch_events(
        &sb.url(&format!(
            "{GW}?watch=true&resourceVersion=0&fieldSelector=metadata.name%3Db"
        )),
        1,
    )
    .await;
    assert_eq!(replay[0]["type"], "ADDED");
    assert_eq!(replay[0]["object"]["metadata"]["name"], "b");

    let url = sb.url(&format!(
        "{GW}?watch=true&resourceVersion={rv}&fieldSelector=metadata.name%3Da"
    ));
    let watcher = tokio::spawn(async move { watch_events(&url, 1).await });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let patch = json!({"metadata": {"labels": {"x": "y"}}});
    patch_json(
        &sb.url(&format!("{GW}/b")),
        "application/merge-patch+json",
        &patch,
    )
    .await;
    patch_json(
        &sb.url(&format!("{GW}/a")),
        "application/merge-patch+json",
        &patch,
    )
    .await;
    let events = within("watcher", watcher).await.unwrap();
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(
        events[0]["object"]["metadata"]["name"], "a",
        "the change to b must be filtered out"
    );
    sb.stop().await;
}

/// With a token file, requests without `Authorization: Bearer <token>` get 401, and the
/// kubeconfig carries the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_supplies_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let mut args = up_args(dir.path());
    args.token_file = Some(token);
    let sb = Sandbox::start_with(dir, args).await;
    let r = get_anonymous(&sb.url("/api/v1/namespaces")).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["reason"], "Unauthorized");
    let ok = get_with(
        &sb.url("/api/v1/namespaces"),
        &[("authorization", "Bearer s3cret")],
    )
    .await;
    assert_eq!(ok.status, 200);
    let kubeconfig = std::fs::read_to_string(&sb.started.kubeconfig).unwrap();
    assert!(kubeconfig.contains("token: s3cret"), "{kubeconfig}");
    sb.kubectl(&["get", "ns", "default"]).success();
    sb.stop().await;
}

/// By default the API is HTTPS with a generated token: anonymous requests get kube-apiserver's
/// 401 Status (health checks excepted), browsers and foreign Hosts 403, and a body that is not
/// JSON, YAML or protobuf 415, with nothing stored. Secrets on disk are private.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_a_credential_by_default() {
    let sb = Sandbox::start().await;
    assert!(
        sb.started.api_url.starts_with("https://"),
        "{}",
        sb.started.api_url
    );
    for path in [
        "/api/v1/namespaces",
        "/apis",
        "/version",
        "/openapi/v2",
        "/metrics",
        "/api/v1/namespaces/default/configmaps/x",
    ] {
        let r = get_anonymous(&sb.url(path)).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.json(),
            serde_json::json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}),
            "{path}"
        );
    }
    for path in ["/readyz", "/livez", "/healthz"] {
        assert_eq!(get_anonymous(&sb.url(path)).await.status, 200, "{path}");
    }
    // The drive-by: a web page POSTs a Deployment as text/plain (no CORS preflight needed).
    let deploy = r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"evil","annotations":{}},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"},"annotations":{"agc-sandbox.dev/command":"touch /tmp/pwned"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}"#;
    let url = sb.url("/apis/apps/v1/namespaces/default/deployments");
    let r = http_anonymous(
        "POST",
        &url,
        &[
            ("content-type", "text/plain;charset=UTF-8"),
            ("origin", "http://evil.example"),
        ],
        deploy,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    let r = http_anonymous(
        "POST",
        &url,
        &[("content-type", "text/plain;charset=UTF-8")],
        deploy,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = http("POST", &url, "text/plain;charset=UTF-8", deploy).await;
    assert_eq!(r.status, 415, "{}", r.text());
    assert_eq!(r.json()["reason"], "UnsupportedMediaType");
    let r = get_with(
        &sb.url("/api/v1/namespaces"),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = get_with(
        &sb.url("/api/v1/namespaces"),
        &[("host", "rebound.example:6443")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("rebound.example"),
        "{}",
        r.text()
    );
    let list = get(&url).await.json();
    assert_eq!(list["items"], serde_json::json!([]), "nothing was created");
    // Owner-only files: the kubeconfig (token), the CA key, the store (Secrets).
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sb.started.kubeconfig), 0o600);
    assert_eq!(mode(&sb.dir.path().join("pki/ca.key")), 0o600);
    assert_eq!(mode(&sb.dir.path().join("store/db")), 0o600);
    assert_eq!(mode(sb.dir.path()), 0o700);
    sb.kubectl(&["get", "ns", "default"]).success();
    sb.stop().await;
}

/// `--insecure-http` is plain HTTP without a credential, and only on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_http_is_explicit_and_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = up_args(dir.path());
    args.insecure_http = true;
    args.api_addr = "0.0.0.0:0".parse().unwrap();
    let err = agc_sandbox::app::spawn(args).await.err().expect("refused");
    assert!(format!("{err:#}").contains("--insecure-http"), "{err:#}");
    let dir = tempfile::tempdir().unwrap();
    let mut args = up_args(dir.path());
    args.insecure_http = true;
    let sb = Sandbox::start_with(dir, args).await;
    assert!(sb.started.api_url.starts_with("http://"));
    assert_eq!(get(&sb.url("/api/v1/namespaces")).await.status, 200);
    let r = get_with(
        &sb.url("/api/v1/namespaces"),
        &[("origin", "https://evil.example")],
    )
    .await;
    assert_eq!(r.status, 403, "browsers are refused in every mode");
    sb.kubectl(&["get", "ns", "default"]).success();
    sb.stop().await;
}

/// An acknowledged write survives `kill -9` a moment later; after a restart every object has
/// the same uid and resourceVersion keeps increasing.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Binary::start(dir.path(), &[]);
    let url = up.access.server.clone();
    let created = post_json(&format!("{url}{GW}"), &gateway("durable", 80)).await;
    assert_eq!(created.status, 201);
    let uid = created.json()["metadata"]["uid"].clone();
    let rv: u64 = created.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    up.kill(); // SIGKILL

    let up = Binary::start(dir.path(), &[]);
    let url = up.access.server.clone();
    let got = get(&format!("{url}{GW}/durable")).await;
    assert_eq!(got.status, 200, "object lost after kill -9");
    assert_eq!(got.json()["metadata"]["uid"], uid);
    let next = post_json(&format!("{url}{GW}"), &gateway("next", 80))
        .await
        .json();
    let rv2: u64 = next["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv, "resourceVersion went backwards: {rv2} <= {rv}");
    drop(up);
}

/// `default`, `kube-system` and `kube-public` cannot be deleted (NamespaceLifecycle), and
/// namespaces have no deletecollection; nothing changes either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_namespaces_may_not_be_deleted() {
    let sb = Sandbox::start().await;
    for ns in ["default", "kube-system", "kube-public"] {
        let r = http(
            "DELETE",
            &sb.url(&format!("/api/v1/namespaces/{ns}")),
            "application/json",
            "",
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(
            r.json()["message"],
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted")
        );
    }
    let r = http(
        "DELETE",
        &sb.url("/api/v1/namespaces"),
        "application/json",
        "",
    )
    .await;
    assert_eq!(r.status, 405);
    let out = sb.kubectl(&["delete", "ns", "default"]);
    assert!(
        out.stderr.contains("this namespace may not be deleted"),
        "{}",
        out.stderr
    );
    let list = get(&sb.url("/api/v1/namespaces")).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    sb.stop().await;
}

/// The API port caps its open connections (more are closed at once, cheaply) and closes a
/// connection that sends no request head in time, so idle sockets cannot pile up.
#[tokio::test]
async fn api_connections_are_capped_and_idle_ones_closed() {
    use agc_sandbox::apiserver::{ApiServer, Limits};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let store = agc_sandbox::store::Store::open(dir.path()).unwrap();
    let limits = Limits {
        max_connections: 4,
        handshake_timeout: Duration::from_millis(300),
        header_timeout: Duration::from_millis(300),
    };
    let api = std::sync::Arc::new(ApiServer::new(store, None).with_limits(limits));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(api.serve(listener, None, async {
        let _ = stopped.await;
    }));
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The fifth is closed without an answer.
    let mut extra = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let n = within("refused connection closes", extra.read_to_end(&mut buf)).await;
    assert!(
        n.is_err() || buf.is_empty(),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    // The idle ones are closed after the header timeout, and then a client is served.
    for mut s in idle {
        let mut b = [0u8; 1];
        let r = within("idle connection closes", s.read(&mut b)).await;
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    }
    let r = get(&format!("http://{addr}/readyz")).await;
    assert_eq!(r.status, 200);
    let _ = stop.send(());
    within("api stops", task).await.unwrap();
}

/// A JSON patch that turns the object (or its metadata) into something else is a 422 naming
/// the field `patch`, not a dropped connection, and nothing changes.
#[tokio::test]
async fn json_patch_to_a_non_object_is_invalid() {
    let sb = Sandbox::start().await;
    let url = sb.url("/api/v1/namespaces/default/configmaps");
    let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {"a": "1"}});
    assert_eq!(post_json(&url, &cm).await.status, 201);
    for ops in [
        r#"[{"op":"replace","path":"","value":5}]"#,
        r#"[{"op":"replace","path":"","value":["x"]}]"#,
        r#"[{"op":"replace","path":"/metadata","value":"x"}]"#,
    ] {
        let r = http(
            "PATCH",
            &format!("{url}/p"),
            "application/json-patch+json",
            ops,
        )
        .await;
        assert_eq!(r.status, 422, "{ops}: {}", r.text());
        assert_eq!(
            r.json()["details"]["causes"][0]["field"],
            "patch",
            "{}",
            r.text()
        );
    }
    let got = get(&format!("{url}/p")).await.json();
    assert_eq!(got["data"], serde_json::json!({"a": "1"}));
    sb.stop().await;
}

/// Write options are checked before anything is written: `dryRun` other than `All`, apply
/// without a field manager, `force` on a non-apply patch.
#[tokio::test]
async fn bad_write_options_are_refused_and_write_nothing() {
    let sb = Sandbox::start().await;
    let url = sb.url("/api/v1/namespaces/default/configmaps");
    let cm =
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "o"}});
    let r = post_json(&format!("{url}?dryRun=bogus"), &cm).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"bogus"}: supported values: "All""#
    );
    assert_eq!(
        get(&format!("{url}/o")).await.status,
        404,
        "nothing was created"
    );
    // A repeated dryRun is a list: every value must be All (the first alone would write).
    for q in ["dryRun=All&dryRun=", "dryRun=&dryRun=All"] {
        let r = post_json(&format!("{url}?{q}"), &cm).await;
        assert_eq!(r.status, 422, "{q}: {}", r.text());
        assert_eq!(
            get(&format!("{url}/o")).await.status,
            404,
            "{q}: nothing was created"
        );
    }
    // fieldManager must be printable as Go's unicode.IsPrint says (a no-break space is not).
    let r = post_json(&format!("{url}?fieldManager=a%C2%A0b"), &cm).await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text()
            .contains("invalid character U+00A0 (at position 1)"),
        "{}",
        r.text()
    );
    assert_eq!(
        post_json(&format!("{url}?dryRun=All&dryRun=All"), &cm)
            .await
            .status,
        201
    );
    assert_eq!(
        get(&format!("{url}/o")).await.status,
        404,
        "a dry run stores nothing"
    );
    assert_eq!(post_json(&url, &cm).await.status, 201);
    let apply = http(
        "PATCH",
        &format!("{url}/o"),
        "application/apply-patch+yaml",
        "data: {a: b}",
    )
    .await;
    assert_eq!(apply.status, 422, "{}", apply.text());
    assert!(apply
        .text()
        .contains("fieldManager: Required value: is required for apply patch"));
    let forced = http(
        "PATCH",
        &format!("{url}/o?force=true"),
        "application/merge-patch+json",
        r#"{"data":{"a":"b"}}"#,
    )
    .await;
    assert_eq!(forced.status, 422);
    let del = http_with(
        "DELETE",
        &format!("{url}/o"),
        &[("content-type", "application/json")],
        r#"{"dryRun":["Nope"]}"#,
    )
    .await;
    assert_eq!(del.status, 422, "{}", del.text());
    let got = get(&format!("{url}/o")).await.json();
    assert!(got.get("data").is_none(), "{got}");
    sb.stop().await;
}

/// DeleteOptions as handlers/delete.go decodes them: a body that is not DeleteOptions is refused
/// and deletes nothing (it used to be ignored, deleting the object), the body's dryRun is a dry
/// run for deletecollection too, ValidateDeleteOptions's causes come all at once with its texts,
/// and with a body the query's options are not read.
#[tokio::test]
async fn delete_options_are_decoded_and_validated_before_anything_goes() {
    let sb = Sandbox::start().await;
    let url = sb.url("/api/v1/namespaces/default/configmaps");
    for name in ["a", "b"] {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        assert_eq!(post_json(&url, &cm).await.status, 201);
    }
    let delete = |target: String, body: &'static str| async move {
        http("DELETE", &target, "application/json", body).await
    };
    let alive = |name: &'static str| {
        let u = format!("{url}/{name}");
        async move { get(&u).await.status == 200 }
    };
    for bad in [
        "{",
        "[]",
        r#"{"dryRun":"All"}"#,
        r#"{"preconditions":{"uid":7}}"#,
    ] {
        let r = delete(format!("{url}/a"), bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(alive("a").await, "{bad} deleted the object");
        let r = delete(url.clone(), bad).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = delete(url.clone(), r#"{"dryRun":["All"]}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(2));
    assert!(alive("a").await && alive("b").await, "a dry run deleted");
    let r = delete(
        format!("{url}/a"),
        r#"{"orphanDependents":false,"propagationPolicy":"Nope","dryRun":["x"]}"#,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        r#"DeleteOptions.meta.k8s.io "" is invalid: [propagationPolicy: Invalid value: "Nope": orphanDependents and deletionPropagation cannot be both set, propagationPolicy: Unsupported value: "Nope": supported values: "Foreground", "Background", "Orphan", "nil", dryRun: Unsupported value: []string{"x"}: supported values: "All"]"#
    );
    assert_eq!(
        r.json()["details"]["causes"].as_array().map(Vec::len),
        Some(3)
    );
    let r = delete(format!("{url}/a?orphanDependents=maybe"), "").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(alive("a").await);
    // The body is the options: the query's bogus dryRun is not read.
    let r = delete(
        format!("{url}/a?dryRun=bogus"),
        r#"{"propagationPolicy":"Background"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!alive("a").await && alive("b").await);
    sb.stop().await;
}
