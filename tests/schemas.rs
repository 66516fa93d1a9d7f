//! Strict schemas with the real kubectl: undeclared fields (fieldValidation Strict, Warn,
//! Ignore; create, update, patch, server-side apply), wrong JSON types in built-ins, and
//! `kubectl explain` from the served OpenAPI v3 documents.

mod support;

use serde_json::json;
use support::*;

const NS: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: test-infra
";

/// gateway-01 up to its listeners, which follow.
macro_rules! gateway_head {
    () => {
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-01
  namespace: test-infra
spec:
  gatewayClassName: azure-alb-external
"
    };
}

/// A Gateway whose first listener misspells `allowedRoutes`.
const GW_TYPO: &str = concat!(
    gateway_head!(),
    "  listeners:
  - name: http
    port: 80
    protocol: HTTP
    alowedRoutes:
      namespaces:
        from: Same
"
);

/// `kubectl apply` of `manifest` fails, and its stderr says `error`.
fn apply_refused(sb: &Sandbox, manifest: &str, error: &str) {
    let out = sb.kubectl_stdin(&["apply", "-f", "-"], manifest);
    assert!(!out.ok, "applied: {out:?}");
    assert!(out.stderr.contains(error), "{}", out.stderr);
}

async fn sandbox_with_ns() -> Sandbox {
    let sb = Sandbox::start().await;
    sb.kubectl_stdin(&["apply", "-f", "-"], NS).success();
    sb
}

/// `kubectl apply` (fieldValidation=Strict) of a misspelt field is refused with the strict
/// decoding error and stores nothing; `--validate=warn` warns, `--validate=false` drops it.
#[tokio::test(flavor = "multi_thread")]
async fn unknown_gateway_field_strict_warn_ignore() {
    let sb = sandbox_with_ns().await;
    let listners = concat!(
        gateway_head!(),
        "  listners:
  - name: http
    port: 80
    protocol: HTTP
"
    );
    apply_refused(
        &sb,
        listners,
        r#"Error from server (BadRequest): error when creating "STDIN": Gateway in version "v1" cannot be handled as a Gateway: strict decoding error: unknown field "spec.listners""#,
    );
    let get = sb.kubectl(&["get", "gateway", "gateway-01", "-n", "test-infra"]);
    assert!(!get.ok && get.stderr.contains("not found"), "{get:?}");

    let warn = sb.kubectl_stdin(&["apply", "--validate=warn", "-f", "-"], GW_TYPO);
    assert!(warn.ok, "{warn:?}");
    assert!(
        warn.stderr
            .contains(r#"Warning: unknown field "spec.listeners[0].alowedRoutes""#),
        "{}",
        warn.stderr
    );
    let stored = sb.get_json(&["gateway", "gateway-01", "-n", "test-infra"]);
    let l = &stored["spec"]["listeners"][0];
    assert!(l.get("alowedRoutes").is_none(), "dropped: {l}");
    assert_eq!(
        l["allowedRoutes"],
        json!({"namespaces": {"from": "Same"}}),
        "CRD default"
    );

    sb.kubectl(&["delete", "gateway", "gateway-01", "-n", "test-infra"])
        .success();
    let ignore = sb.kubectl_stdin(&["apply", "--validate=false", "-f", "-"], GW_TYPO);
    assert!(ignore.ok, "{ignore:?}");
    assert!(!ignore.stderr.contains("Warning"), "{}", ignore.stderr);
    sb.stop().await;
}

/// Server-side apply refuses undeclared fields as kube-apiserver's typed conversion does.
#[tokio::test(flavor = "multi_thread")]
async fn server_side_apply_unknown_field() {
    let sb = sandbox_with_ns().await;
    let out = sb.kubectl_stdin(&["apply", "--server-side", "-f", "-"], GW_TYPO);
    assert!(!out.ok);
    assert!(
        out.stderr.contains(r#"failed to create typed patch object (test-infra/gateway-01; gateway.networking.k8s.io/v1, Kind=Gateway): .spec.listeners[name="http"].alowedRoutes: field not declared in schema"#),
        "{}",
        out.stderr
    );
    let get = sb.kubectl(&["get", "gateway", "gateway-01", "-n", "test-infra"]);
    assert!(!get.ok, "nothing stored: {get:?}");
    sb.stop().await;
}

/// Built-ins: undeclared fields in a ConfigMap and a Deployment (all of them, in document
/// order), and a Service port name that is a number (a Go decode error).
#[tokio::test(flavor = "multi_thread")]
async fn builtin_unknown_fields_and_types() {
    let sb = sandbox_with_ns().await;
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: test-infra\ndat:\n  a: b\n";
    apply_refused(
        &sb,
        cm,
        r#"ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "dat""#,
    );
    let deploy = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: test-infra
spec:
  replicaz: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: echo:1
        imagePullPolicyy: Always
";
    apply_refused(
        &sb,
        deploy,
        r#"Deployment in version "v1" cannot be handled as a Deployment: strict decoding error: unknown field "spec.replicaz", unknown field "spec.template.spec.containers[0].imagePullPolicyy""#,
    );
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: echo\n  namespace: test-infra\nspec:\n  ports:\n  - name: 12345\n    port: 80\n";
    apply_refused(
        &sb,
        svc,
        r#"Error from server (BadRequest): error when creating "STDIN": Service in version "v1" cannot be handled as a Service: json: cannot unmarshal number into Go struct field ServicePort.spec.ports.name of type string"#,
    );
    for kind in ["configmap/c", "deployment/web", "service/echo"] {
        assert!(
            !sb.kubectl(&["get", kind, "-n", "test-infra"]).ok,
            "{kind} stored"
        );
    }
    sb.stop().await;
}

/// `(method, url, content type, body)` sent with `fieldValidation=Strict` is a 400 with `message`.
async fn strict_refuses(
    (method, url, content_type, body): (&str, &str, &str, Vec<u8>),
    message: &str,
) {
    let r = http(
        method,
        &format!("{url}?fieldValidation=Strict"),
        content_type,
        body,
    )
    .await;
    assert_eq!(r.status, 400, "{method} {url}: {}", r.text());
    assert_eq!(r.json()["message"], message, "{method} {url}");
}

/// PUT and the patch types: Strict is a bare strict decoding error for patches, the server's
/// default (no parameter) is Warn with a `Warning: 299` header, and the field is dropped.
#[tokio::test(flavor = "multi_thread")]
async fn update_and_patch_field_validation() {
    let sb = sandbox_with_ns().await;
    let gw = GW_TYPO.replace(
        "    alowedRoutes:\n      namespaces:\n        from: Same\n",
        "",
    );
    sb.kubectl_stdin(&["apply", "-f", "-"], &gw).success();
    let item =
        sb.url("/apis/gateway.networking.k8s.io/v1/namespaces/test-infra/gateways/gateway-01");

    let merge = r#"{"spec":{"listners":[]}}"#;
    strict_refuses(
        ("PATCH", &item, "application/merge-patch+json", merge.into()),
        r#"strict decoding error: unknown field "spec.listners""#,
    )
    .await;

    let json_patch = r#"[{"op":"add","path":"/spec/foo","value":1}]"#;
    let r = http("PATCH", &item, "application/json-patch+json", json_patch).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let warning = r
        .headers
        .get("warning")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(warning, r#"299 - "unknown field \"spec.foo\"""#);
    assert!(r.json()["spec"].get("foo").is_none());

    let mut obj = get(&item).await.json();
    obj["spec"]["bogus"] = json!(true);
    let body = serde_json::to_vec(&obj).unwrap();
    strict_refuses(
        ("PUT", &item, "application/json", body),
        r#"Gateway in version "v1" cannot be handled as a Gateway: strict decoding error: unknown field "spec.bogus""#,
    )
    .await;
    // The controller writes status meanwhile: re-read and retry on a resourceVersion conflict.
    let mut r = None;
    for _ in 0..10 {
        let mut obj = get(&item).await.json();
        obj["spec"]["bogus"] = json!(true);
        let body = serde_json::to_vec(&obj).unwrap();
        let put = http(
            "PUT",
            &format!("{item}?fieldValidation=Ignore"),
            "application/json",
            body,
        )
        .await;
        if put.status != 409 {
            r = Some(put);
            break;
        }
    }
    let r = r.expect("PUT kept conflicting");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.headers.get("warning").is_none());
    assert!(r.json()["spec"].get("bogus").is_none());

    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: test-infra\ndata:\n  a: b\n";
    sb.kubectl_stdin(&["apply", "-f", "-"], cm).success();
    let cm = sb.url("/api/v1/namespaces/test-infra/configmaps/c");
    let smp = r#"{"dat":{"a":"c"}}"#;
    strict_refuses(
        (
            "PATCH",
            &cm,
            "application/strategic-merge-patch+json",
            smp.into(),
        ),
        r#"strict decoding error: unknown field "dat""#,
    )
    .await;

    let r = http(
        "PATCH",
        &format!("{item}?fieldValidation=Sometimes"),
        "application/merge-patch+json",
        merge,
    )
    .await;
    // ValidatePatchOptions: 422 on PatchOptions.meta.k8s.io.
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.text()
            .contains(r#"fieldValidation: Unsupported value: \"Sometimes\""#),
        "{}",
        r.text()
    );
    sb.stop().await;
}

/// `kubectl explain` reads the served OpenAPI v3 documents, for a CRD and a built-in.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_explain() {
    let sb = Sandbox::start().await;
    let gw = sb
        .kubectl(&["explain", "gateway.spec.listeners.port"])
        .success();
    assert!(gw.contains("FIELD: port <integer>"), "{gw}");
    assert!(gw.contains("GROUP:      gateway.networking.k8s.io"), "{gw}");
    let deploy = sb
        .kubectl(&["explain", "deployment.spec.replicas"])
        .success();
    assert!(deploy.contains("FIELD: replicas <integer>"), "{deploy}");
    let hcp = sb
        .kubectl(&["explain", "healthcheckpolicy.spec.default.http"])
        .success();
    assert!(hcp.contains("path\t<string>"), "{hcp}");
    sb.stop().await;
}
