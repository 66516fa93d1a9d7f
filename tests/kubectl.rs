//! Real kubectl against the sandbox: every kubectl command of the seed tutorial, plus apply
//! (unchanged / configured / server-side), get -A, get -w, wait, patch, scale and delete -f.

mod support;

use support::*;

const ALB: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: alb-test-infra
---
apiVersion: alb.networking.azure.io/v1
kind: ApplicationLoadBalancer
metadata:
  name: alb-test
  namespace: alb-test-infra
spec:
  associations:
  - /subscriptions/sub/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/alb
";

const GATEWAY_MANAGED: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-01
  namespace: test-infra
  annotations:
    alb.networking.azure.io/alb-namespace: alb-test-infra
    alb.networking.azure.io/alb-name: alb-test
spec:
  gatewayClassName: azure-alb-external
  listeners:
  - name: http-listener
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
";

const GATEWAY_BYO: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gateway-02
  namespace: test-infra
  annotations:
    alb.networking.azure.io/alb-id: /subscriptions/sub/resourceGroups/rg/providers/Microsoft.ServiceNetworking/trafficControllers/alb-test
spec:
  gatewayClassName: azure-alb-external
  listeners:
  - name: http-listener
    port: 80
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: Same
  addresses:
  - type: alb.networking.azure.io/alb-frontend
    value: frontend
";

const ROUTE: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: websocket-example
  namespace: test-infra
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
metadata:
  name: websockets-backend-health-check-policy
  namespace: test-infra
spec:
  targetRef:
    group: \"\"
    kind: Service
    name: websocket-backend
    namespace: test-infra
  default:
    interval: 5s
    timeout: 3s
    healthyThreshold: 1
    unhealthyThreshold: 1
    http:
      path: /health 
";

/// The seed tutorial's kubectl commands, as written, in order.
#[tokio::test(flavor = "multi_thread")]
async fn seed_tutorial_commands_succeed() {
    let sb = Sandbox::start().await;
    let deployment = seed("websocket-deployment.yaml");
    let deployment = deployment.to_str().unwrap();
    let out = sb.kubectl(&["apply", "-f", deployment]).success();
    assert!(out.contains("namespace/test-infra created"), "{out}");
    assert!(
        out.contains("deployment.apps/websocket-backend created"),
        "{out}"
    );
    assert!(out.contains("service/websocket-backend created"), "{out}");

    sb.kubectl_stdin(&["apply", "-f", "-"], ALB).success();
    let out = sb
        .kubectl_stdin(&["apply", "-f", "-"], GATEWAY_MANAGED)
        .success();
    assert_eq!(
        out.trim(),
        "gateway.gateway.networking.k8s.io/gateway-01 created"
    );
    sb.kubectl_stdin(&["apply", "-f", "-"], GATEWAY_BYO)
        .success();
    let yaml = sb
        .kubectl(&[
            "get",
            "gateway",
            "gateway-01",
            "-n",
            "test-infra",
            "-o",
            "yaml",
        ])
        .success();
    assert!(
        yaml.contains("gatewayClassName: azure-alb-external"),
        "{yaml}"
    );
    let out = sb.kubectl_stdin(&["apply", "-f", "-"], ROUTE).success();
    assert_eq!(
        out.trim(),
        "httproute.gateway.networking.k8s.io/websocket-example created"
    );
    sb.kubectl(&[
        "get",
        "httproute",
        "websocket-example",
        "-n",
        "test-infra",
        "-o",
        "yaml",
    ])
    .success();
    let out = sb.kubectl_stdin(&["apply", "-f", "-"], HCP).success();
    assert_eq!(
        out.trim(),
        "healthcheckpolicy.alb.networking.azure.io/websockets-backend-health-check-policy created"
    );
    // The jsonpath query runs (rc 0) whatever the status holds.
    sb.jsonpath(
        &["gateway", "gateway-01", "-n", "test-infra"],
        "{.status.addresses[0].value}",
    );

    // Tables show a real cluster's columns.
    let table = sb
        .kubectl(&["get", "gateway", "-n", "test-infra"])
        .success();
    assert!(
        table.starts_with("NAME") && table.contains("CLASS") && table.contains("PROGRAMMED"),
        "{table}"
    );
    let all = sb
        .kubectl(&["get", "httproute,healthcheckpolicy", "-A"])
        .success();
    assert!(
        all.contains("NAMESPACE") && all.contains("test-infra") && all.contains("contoso.com"),
        "{all}"
    );
    sb.stop().await;
}

/// apply again: unchanged, then configured after an edit; server-side apply; patch; scale.
#[tokio::test(flavor = "multi_thread")]
async fn apply_patch_and_scale() {
    let sb = Sandbox::start().await;
    let deployment = seed("websocket-deployment.yaml");
    let deployment = deployment.to_str().unwrap();
    sb.kubectl(&["apply", "-f", deployment]).success();
    let out = sb.kubectl(&["apply", "-f", deployment]).success();
    assert!(
        out.contains("deployment.apps/websocket-backend unchanged"),
        "{out}"
    );

    let edited = std::fs::read_to_string(deployment)
        .unwrap()
        .replace("replicas: 1", "replicas: 2");
    let out = sb.kubectl_stdin(&["apply", "-f", "-"], &edited).success();
    assert!(
        out.contains("deployment.apps/websocket-backend configured"),
        "{out}"
    );
    // Strategic merge kept the container's ports (a plain merge patch would have wiped them).
    let ports = sb.jsonpath(
        &["deploy", "websocket-backend", "-n", "test-infra"],
        "{.spec.replicas} {.spec.template.spec.containers[0].ports[0].containerPort}",
    );
    assert_eq!(ports, "2 8080");

    let out = sb
        .kubectl_stdin(&["apply", "--server-side", "-f", "-"], &edited)
        .success();
    assert!(
        out.contains("deployment.apps/websocket-backend serverside-applied"),
        "{out}"
    );
    let out = sb
        .kubectl_stdin(&["apply", "--server-side", "-f", "-"], GATEWAY_BYO)
        .success();
    assert!(
        out.contains("gateway.gateway.networking.k8s.io/gateway-02 serverside-applied"),
        "{out}"
    );

    sb.kubectl(&[
        "patch",
        "gateway",
        "gateway-02",
        "-n",
        "test-infra",
        "--type=merge",
        "-p",
        r#"{"metadata":{"labels":{"team":"web"}}}"#,
    ])
    .success();
    sb.kubectl(&[
        "patch",
        "gateway",
        "gateway-02",
        "-n",
        "test-infra",
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/metadata/labels/tier","value":"edge"}]"#,
    ])
    .success();
    let labels = sb
        .kubectl(&[
            "get",
            "gateway",
            "-n",
            "test-infra",
            "-l",
            "team=web,tier=edge",
            "-o",
            "name",
        ])
        .success();
    assert_eq!(
        labels.trim(),
        "gateway.gateway.networking.k8s.io/gateway-02"
    );

    sb.kubectl(&[
        "scale",
        "deployment",
        "websocket-backend",
        "-n",
        "test-infra",
        "--replicas=3",
    ])
    .success();
    let replicas = sb.jsonpath(
        &["deploy", "websocket-backend", "-n", "test-infra"],
        "{.spec.replicas}",
    );
    assert_eq!(replicas, "3");

    let missing = sb.kubectl(&["get", "gateway", "nope", "-n", "test-infra"]);
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains(r#"gateways.gateway.networking.k8s.io "nope" not found"#),
        "{}",
        missing.stderr
    );
    let invalid = sb.kubectl_stdin(
        &["apply", "-f", "-"],
        &GATEWAY_BYO.replace("port: 80", "port: 0"),
    );
    assert!(!invalid.ok);
    assert!(
        invalid.stderr.contains("spec.listeners[0].port"),
        "{}",
        invalid.stderr
    );
    sb.stop().await;
}

/// `get -w` prints changes; `wait` returns once the watched object satisfies the condition.
#[tokio::test(flavor = "multi_thread")]
async fn watch_and_wait() {
    let sb = Sandbox::start().await;
    sb.kubectl(&[
        "apply",
        "-f",
        seed("websocket-deployment.yaml").to_str().unwrap(),
    ])
    .success();
    sb.kubectl_stdin(&["apply", "-f", "-"], GATEWAY_BYO)
        .success();
    let kubeconfig = sb.started.kubeconfig.clone();
    let cache = sb.dir.path().join("kube-cache-w");
    let watcher = std::thread::spawn(move || {
        kubectl(
            &kubeconfig,
            &cache,
            &[
                "get",
                "gateway",
                "gateway-02",
                "-n",
                "test-infra",
                "-w",
                "--request-timeout=4s",
                "-o",
                "jsonpath={.metadata.labels.step}{\"\\n\"}",
            ],
            None,
        )
    });
    let waiter = {
        let kubeconfig = sb.started.kubeconfig.clone();
        let cache = sb.dir.path().join("kube-cache-x");
        std::thread::spawn(move || {
            kubectl(
                &kubeconfig,
                &cache,
                &[
                    "wait",
                    "--for=jsonpath={.metadata.labels.step}=two",
                    "gateway/gateway-02",
                    "-n",
                    "test-infra",
                    "--timeout=20s",
                ],
                None,
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(1500));
    sb.kubectl(&[
        "label",
        "gateway",
        "gateway-02",
        "-n",
        "test-infra",
        "step=one",
    ])
    .success();
    sb.kubectl(&[
        "label",
        "--overwrite",
        "gateway",
        "gateway-02",
        "-n",
        "test-infra",
        "step=two",
    ])
    .success();
    let waited = waiter.join().unwrap();
    assert!(waited.ok, "wait failed: {}", waited.stderr);
    assert!(waited.stdout.contains("condition met"), "{}", waited.stdout);
    let watched = watcher.join().unwrap();
    assert!(
        watched.stdout.contains("one") && watched.stdout.contains("two"),
        "get -w saw: {:?} / {}",
        watched.stdout,
        watched.stderr
    );
    sb.stop().await;
}

/// `delete -f` of a file that starts with its namespace deletes everything without errors.
#[tokio::test(flavor = "multi_thread")]
async fn delete_file_namespace_first() {
    let sb = Sandbox::start().await;
    let deployment = seed("websocket-deployment.yaml");
    let deployment = deployment.to_str().unwrap();
    sb.kubectl(&["apply", "-f", deployment]).success();
    let out = sb.kubectl(&["delete", "-f", deployment]).success();
    assert!(out.contains("namespace \"test-infra\" deleted"), "{out}");
    assert!(
        out.contains("deployment.apps \"websocket-backend\" deleted"),
        "{out}"
    );
    let ns = sb.kubectl(&["get", "ns", "test-infra"]);
    assert!(!ns.ok && ns.stderr.contains("not found"), "{ns:?}");
    sb.stop().await;
}

/// `kubectl create <kind>` sends protobuf (typed clients have no JSON fallback): it must work.
#[tokio::test(flavor = "multi_thread")]
async fn kubectl_create_commands_send_protobuf() {
    let sb = Sandbox::start().await;
    assert_eq!(
        sb.kubectl(&["create", "namespace", "demo"])
            .success()
            .trim(),
        "namespace/demo created"
    );
    sb.kubectl(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "demo",
        "--from-literal=a=b",
    ])
    .success();
    sb.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "demo",
        "--image=gcr.io/k8s-staging-gateway-api/echo-basic:v1",
        "--replicas=2",
    ])
    .success();
    let data = sb.jsonpath(&["secret", "s1", "-n", "demo"], "{.data.a}");
    assert_eq!(data, "Yg==");
    let replicas = sb.jsonpath(
        &["deployment", "web", "-n", "demo"],
        "{.spec.replicas} {.spec.template.spec.containers[0].image}",
    );
    assert_eq!(replicas, "2 gcr.io/k8s-staging-gateway-api/echo-basic:v1");
    sb.stop().await;
}

/// `--sort-by` works: kubectl asks for Table rows with `includeObject=Object` and sorts on the
/// objects' fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_by_sorts_on_the_objects() {
    let sb = Sandbox::start().await;
    for name in ["b-cm", "c-cm", "a-cm"] {
        sb.kubectl(&["create", "configmap", name]).success();
    }
    let out = sb
        .kubectl(&["get", "cm", "--sort-by=.metadata.name", "-o", "name"])
        .success();
    let names: Vec<&str> = out.lines().filter(|l| l.contains("-cm")).collect();
    assert_eq!(
        names,
        ["configmap/a-cm", "configmap/b-cm", "configmap/c-cm"],
        "{out}"
    );
    let table = sb
        .kubectl(&["get", "cm", "--sort-by=.metadata.name"])
        .success();
    let rows: Vec<&str> = table
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.ends_with("-cm"))
        .collect();
    assert_eq!(rows, ["a-cm", "b-cm", "c-cm"], "{table}");
    sb.kubectl(&["create", "deployment", "web", "--image=nginx"])
        .success();
    let events = sb
        .kubectl_until(
            &["get", "events", "-A", "--sort-by=.lastTimestamp"],
            "Scheduled",
        )
        .await;
    assert!(events.contains("Scheduled"), "{events}");
    sb.stop().await;
}

/// A malformed label or field selector is a 400 with kube-apiserver's text and deletes
/// nothing; a field a kind does not support is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_selectors_are_refused_and_delete_nothing() {
    let sb = Sandbox::start().await;
    for name in ["one", "two"] {
        sb.kubectl(&["create", "configmap", name, "-n", "default"])
            .success();
    }
    for (selector, message) in [
        (
            "!!",
            "unable to parse requirement: found '!', expected: identifier",
        ),
        (
            ",",
            "found ',', expected: !, identifier, or 'end of string'",
        ),
        (
            "a in (",
            "unable to parse requirement: found '', expected: ',', ')' or identifier",
        ),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
    ] {
        let out = sb.kubectl(&["delete", "cm", "-n", "default", "-l", selector]);
        assert!(!out.ok, "{selector}: {}", out.stdout);
        assert!(
            out.stderr.contains("(BadRequest)"),
            "{selector}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(message), "{selector}: {}", out.stderr);
    }
    let out = sb.kubectl(&["get", "pods", "--field-selector", "spec.foo=bar"]);
    assert!(
        out.stderr.contains("field label not supported: spec.foo"),
        "{}",
        out.stderr
    );
    let out = sb.kubectl(&["get", "cm", "--field-selector", "data.a=b"]);
    assert!(
        out.stderr.contains(
            r#""data.a" is not a known field selector: only "metadata.name", "metadata.namespace""#
        ),
        "{}",
        out.stderr
    );
    sb.kubectl(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "status.phase=Running",
    ])
    .success();
    let left = sb
        .kubectl(&["get", "cm", "-n", "default", "-o", "name"])
        .success();
    assert!(
        left.contains("configmap/one") && left.contains("configmap/two"),
        "{left}"
    );
    sb.stop().await;
}

/// Field labels as each kind's `ConvertFieldLabel` accepts them (pkg/apis/core/v1/conversion.go,
/// the scheme default for apps/v1, apiextensions' crConverter for custom resources), and the
/// values they select on (a pod's unset hostNetwork is "false", `spec.host` is `spec.nodeName`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_labels_follow_each_kinds_conversion() {
    let sb = Sandbox::start().await;
    let refused = |args: &[&str], message: &str| {
        let out = sb.kubectl(args);
        assert!(!out.ok, "{args:?}: {}", out.stdout);
        assert!(
            out.stderr.contains("(BadRequest)") && out.stderr.contains(message),
            "{args:?}: {}",
            out.stderr
        );
    };
    // apps/v1 registers no field-label conversion, so status.replicas is not selectable.
    refused(
        &["get", "rs", "--field-selector", "status.replicas=1"],
        r#""status.replicas" is not a known field selector: only "metadata.name", "metadata.namespace""#,
    );
    // A Namespace has no metadata.namespace; a cluster-scoped custom resource neither.
    refused(
        &["get", "ns", "--field-selector", "metadata.namespace=x"],
        "field label not supported: metadata.namespace",
    );
    refused(
        &[
            "get",
            "gatewayclass",
            "--field-selector",
            "metadata.namespace=x",
        ],
        "field label not supported: metadata.namespace",
    );
    refused(
        &[
            "get",
            "gateway",
            "--field-selector",
            "spec.gatewayClassName=x",
        ],
        "field label not supported: spec.gatewayClassName",
    );
    refused(
        &["get", "cm", "--field-selector", r"metadata.name=a=b"],
        "invalid field selector: unescaped character in value: 61",
    );
    sb.kubectl(&["create", "service", "clusterip", "web", "--tcp=80:8080"])
        .success();
    let svcs = sb
        .kubectl(&[
            "get",
            "svc",
            "-o",
            "name",
            "--field-selector",
            "spec.type=ClusterIP",
        ])
        .success();
    assert!(svcs.contains("service/web"), "{svcs}");
    sb.kubectl(&["create", "deployment", "web", "--image=nginx"])
        .success();
    let pods = sb
        .kubectl_until(
            &[
                "get",
                "pods",
                "-o",
                "name",
                "--field-selector",
                "spec.hostNetwork=false",
            ],
            "pod/web-",
        )
        .await;
    assert!(pods.contains("pod/web-"), "{pods}");
    sb.stop().await;
}

/// `--cascade=orphan` keeps the ReplicaSet and its pods (without the owner reference),
/// `--cascade=foreground` deletes dependents first, and DELETE answers a `Success` Status once
/// the object is gone; a failed precondition is a 409 and deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cascade_orphan_foreground_and_preconditions() {
    let sb = Sandbox::start().await;
    let k = |args: &[&str]| sb.kubectl(args).success();
    sb.create_deployment("keep", "nginx", 2);
    let out = k(&["delete", "deploy", "keep", "--cascade=orphan"]);
    assert!(out.contains("deployment.apps \"keep\" deleted"), "{out}");
    let rs: serde_json::Value = serde_json::from_str(&k(&["get", "rs", "-o", "json"])).unwrap();
    let items = rs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{rs}");
    assert!(
        items[0]["metadata"].get("ownerReferences").is_none(),
        "{rs}"
    );
    let pods: serde_json::Value = serde_json::from_str(&k(&["get", "pods", "-o", "json"])).unwrap();
    assert_eq!(
        pods["items"].as_array().unwrap().len(),
        2,
        "the orphaned pods stay"
    );

    sb.create_deployment("fg", "nginx", 1);
    k(&["delete", "deploy", "fg", "--cascade=foreground"]);
    let names = k(&["get", "rs", "-o", "name"]);
    assert!(!names.contains("fg-"), "{names}");

    k(&["create", "configmap", "pre"]);
    let url = sb.url("/api/v1/namespaces/default/configmaps/pre");
    let r = http(
        "DELETE",
        &url,
        "application/json",
        r#"{"preconditions":{"uid":"nope"}}"#,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Operation cannot be fulfilled on configmaps \"pre\": Precondition failed: UID in precondition: nope"));
    let r = http(
        "DELETE",
        &url,
        "application/json",
        r#"{"preconditions":{"resourceVersion":"1"}}"#,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = http(
        "DELETE",
        &url,
        "application/json",
        r#"{"propagationPolicy":"Sideways"}"#,
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text());
    let r = http("DELETE", &url, "application/json", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["kind"], "Status");
    assert_eq!(r.json()["status"], "Success");
    assert_eq!(r.json()["details"]["kind"], "configmaps");
    sb.stop().await;
}
