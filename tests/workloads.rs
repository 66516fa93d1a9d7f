//! Simulated workloads, checked from outside: kubectl for the objects, curl-like HTTP and a
//! WebSocket client straight to the pods' loopback addresses.

mod support;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use support::*;
use tokio_tungstenite::tungstenite::Message;

/// Polls `f` until it returns Some, for up to 10 s.
async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    within(what, async {
        loop {
            if let Some(v) = f() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

fn ready_pods(sb: &Sandbox, selector: &str, n: usize) -> Option<Vec<Value>> {
    let ps = sb.pods(selector);
    let ready = ps.iter().filter(|p| {
        p["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
    });
    let ready: Vec<Value> = ready.cloned().collect();
    (ready.len() == n && ps.len() == n).then_some(ready)
}

/// A one-container Deployment `name` in test-infra whose pods run the user's `command`.
fn command_deployment(name: &str, command: &str, container: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: test-infra}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata:
      labels: {{app: {name}}}
      annotations: {{agc-sandbox.dev/command: \"{command}\"}}
    spec:
      containers: [{container}]
"
    )
}

/// Applies the seed's websocket-backend Deployment.
fn apply_seed_backend(sb: &Sandbox) {
    let manifest = seed("websocket-deployment.yaml");
    sb.kubectl(&["apply", "-f", &manifest.to_string_lossy()])
        .success();
}

/// `kubectl scale` of the seed's websocket-backend Deployment.
fn scale_seed_backend(sb: &Sandbox, replicas: u32) {
    let replicas = format!("--replicas={replicas}");
    sb.kubectl(&[
        "scale",
        "deployment",
        "websocket-backend",
        "-n",
        "test-infra",
        &replicas,
    ])
    .success();
}

/// Applies the seed's websocket-backend Deployment and waits for its one ready pod.
async fn seed_backend_pod(sb: &Sandbox) -> Value {
    apply_seed_backend(sb);
    eventually("a ready pod", || ready_pods(sb, "app=websocket-backend", 1))
        .await
        .remove(0)
}

async fn ws_echo(addr: &str, msg: &str) -> String {
    let tcp = within("tcp connect", tokio::net::TcpStream::connect(addr))
        .await
        .unwrap();
    let (mut ws, _) = within(
        "websocket handshake",
        tokio_tungstenite::client_async(format!("ws://{addr}/chat"), tcp),
    )
    .await
    .unwrap();
    within("ws send", ws.send(Message::text(msg)))
        .await
        .unwrap();
    let reply = within("ws reply", ws.next()).await.unwrap().unwrap();
    reply.into_text().unwrap().to_string()
}

/// The seed's websocket backend: a Running, Ready pod on 127.10.x.y that answers /health and
/// echoes over /chat; scale, replacement and restarts keep it serving.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_backend_serves_scales_and_survives_restart() {
    let sb = Sandbox::start().await;
    let pod = seed_backend_pod(&sb).await;
    let ip = pod["status"]["podIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("127.10."), "{ip}");
    let wide = sb
        .kubectl(&["get", "pods", "-n", "test-infra", "-o", "wide"])
        .success();
    assert!(wide.contains("Running") && wide.contains(&ip), "{wide}");
    assert_eq!(get(&format!("http://{ip}:8080/health")).await.status, 200);
    assert_eq!(
        get(&format!("http://{ip}:8080/")).await.status,
        404,
        "AGC's default probe on / must fail"
    );
    assert_eq!(
        ws_echo(&format!("{ip}:8080"), "Hello world!!!").await,
        "Hello world!!!"
    );

    scale_seed_backend(&sb, 3);
    eventually("3 ready pods", || {
        ready_pods(&sb, "app=websocket-backend", 3)
    })
    .await;
    let slices = eventually("3 ready endpoints", || {
        let v = sb.get_json(&[
            "endpointslices",
            "-n",
            "test-infra",
            "-l",
            "kubernetes.io/service-name=websocket-backend",
        ]);
        let eps = v["items"][0]["endpoints"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (eps.iter()
            .filter(|e| e["conditions"]["ready"] == true)
            .count()
            == 3)
            .then_some(v)
    })
    .await;
    assert_eq!(
        slices["items"][0]["ports"][0]["port"], 8080,
        "named targetPort resolved"
    );
    let rollout = sb
        .kubectl(&[
            "rollout",
            "status",
            "deployment/websocket-backend",
            "-n",
            "test-infra",
            "--timeout=20s",
        ])
        .success();
    assert!(rollout.contains("successfully rolled out"), "{rollout}");

    let victim = sb.delete_first_pod("app=websocket-backend");
    let replaced = eventually("a replacement pod", || {
        ready_pods(&sb, "app=websocket-backend", 3)
            .filter(|ps| ps.iter().all(|p| p["metadata"]["name"] != victim.as_str()))
    })
    .await;
    let addrs: Vec<String> = replaced
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();

    // Restart the sandbox on the same data directory: the pods answer again at the same addresses.
    let sb2 = Sandbox::restart(sb.stop_keep_data().await).await;
    let again = eventually("pods after restart", || {
        ready_pods(&sb2, "app=websocket-backend", 3)
    })
    .await;
    let mut addrs2: Vec<String> = again
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    let mut addrs = addrs;
    addrs.sort();
    addrs2.sort();
    assert_eq!(
        addrs, addrs2,
        "pods must keep their addresses across a restart"
    );
    for a in &addrs2 {
        let r = within("health after restart", async {
            loop {
                let r = get(&format!("http://{a}:8080/health")).await;
                if r.status == 200 {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert_eq!(r.text(), "OK");
    }
    sb2.stop().await;
}

/// The traffic-split sample answers with echo JSON naming the pod and namespace that answered.
#[tokio::test(flavor = "multi_thread")]
async fn echo_json_names_the_answering_pod() {
    let sb = Sandbox::start().await;
    sb.kubectl(&[
        "apply",
        "-f",
        seed("traffic-split-deployment.yaml").to_str().unwrap(),
    ])
    .success();
    for app in ["backend-v1", "backend-v2"] {
        let pod = eventually("echo pod", || ready_pods(&sb, &format!("app={app}"), 1))
            .await
            .remove(0);
        let ip = pod["status"]["podIP"].as_str().unwrap();
        let echo = get(&format!("http://{ip}:3000/x?y=1")).await.json();
        assert_eq!(echo["pod"], pod["metadata"]["name"]);
        assert_eq!(echo["namespace"], "test-infra");
        assert_eq!(echo["path"], "/x?y=1");
    }
    sb.stop().await;
}

/// Fault injection through plain kubectl annotations, and healing by removing them.
#[tokio::test(flavor = "multi_thread")]
async fn faults_are_injected_and_healed_with_annotations() {
    let sb = Sandbox::start().await;
    let pod = seed_backend_pod(&sb).await;
    let (name, ip) = (
        pod["metadata"]["name"].as_str().unwrap(),
        pod["status"]["podIP"].as_str().unwrap(),
    );
    let health = format!("http://{ip}:8080/health");
    // `curl`'s status code for the health endpoint is `code`.
    let health_is = |code: &'static [u8]| {
        let health = health.clone();
        move || {
            Some(()).filter(|_| {
                std::process::Command::new("curl")
                    .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", &health])
                    .output()
                    .is_ok_and(|o| o.stdout == code)
            })
        }
    };
    let annotate = |fault: &str| {
        sb.kubectl(&[
            "annotate",
            "--overwrite",
            "pod",
            name,
            "-n",
            "test-infra",
            fault,
        ])
        .success();
    };
    annotate("agc-sandbox.dev/fault=unhealthy");
    eventually("503 while unhealthy", health_is(b"503")).await;
    annotate("agc-sandbox.dev/fault=down");
    eventually("connection refused while down", || {
        Some(()).filter(|_| std::net::TcpStream::connect((ip, 8080)).is_err())
    })
    .await;
    annotate("agc-sandbox.dev/fault-");
    eventually("healthy again", health_is(b"200")).await;
    sb.stop().await;
}

/// A user's own command as the backend: its env, its logs through `kubectl logs`, and a
/// crashing command reported as CrashLoopBackOff.
#[tokio::test(flavor = "multi_thread")]
async fn user_commands_run_per_replica_with_logs_and_backoff() {
    let sb = Sandbox::start().await;
    let manifest = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: test-infra}\n".to_string(),
        command_deployment(
            "mine",
            "echo hello from $POD_NAME in $NAMESPACE; exec python3 -m http.server $PORT --bind $POD_IP",
            "{name: web, image: example.com/mine:1, ports: [{containerPort: 9000}]}",
        ),
        command_deployment("crasher", "echo boom; exit 3", "{name: c, image: example.com/crash:1}"),
    ]
    .join("---\n");
    sb.kubectl_stdin(&["apply", "-f", "-"], &manifest).success();
    let pod = eventually("command pod ready", || ready_pods(&sb, "app=mine", 1))
        .await
        .remove(0);
    let (name, ip) = (
        pod["metadata"]["name"].as_str().unwrap().to_string(),
        pod["status"]["podIP"].as_str().unwrap().to_string(),
    );
    assert_eq!(get(&format!("http://{ip}:9000/")).await.status, 200);
    let logs = sb.kubectl(&["logs", &name, "-n", "test-infra"]).success();
    assert!(
        logs.contains(&format!("hello from {name} in test-infra")),
        "{logs}"
    );
    let state = eventually("crash loop", || {
        let ps = sb.pods("app=crasher");
        let st = ps.first()?["status"]["containerStatuses"][0].clone();
        (st["state"]["waiting"]["reason"] == "CrashLoopBackOff"
            && st["restartCount"].as_u64() >= Some(1))
        .then_some(st)
    })
    .await;
    assert_eq!(state["lastState"]["terminated"]["exitCode"], 3);
    sb.stop().await;
}

/// `--shared-pod-ip`, for hosts where extra loopback addresses do not work: every pod on
/// 127.0.0.1 with its own allocated port (annotation `agc-sandbox.dev/ports`), one
/// EndpointSlice per pod, and the pods still answer.
#[tokio::test(flavor = "multi_thread")]
async fn shared_pod_ip_allocates_ports_per_pod() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = up_args(dir.path());
    args.shared_pod_ip = true;
    let sb = Sandbox::start_with(dir, args).await;
    apply_seed_backend(&sb);
    scale_seed_backend(&sb, 2);
    let ready = eventually("2 ready pods with their ports", || {
        ready_pods(&sb, "app=websocket-backend", 2).filter(|ps| {
            ps.iter()
                .all(|p| p["metadata"]["annotations"]["agc-sandbox.dev/ports"].is_string())
        })
    })
    .await;
    let mut ports = Vec::new();
    for p in &ready {
        assert_eq!(p["status"]["podIP"], "127.0.0.1");
        let map: Value = serde_json::from_str(
            p["metadata"]["annotations"]["agc-sandbox.dev/ports"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let port = map["8080"].as_u64().unwrap();
        assert_eq!(
            get(&format!("http://127.0.0.1:{port}/health")).await.text(),
            "OK"
        );
        assert_eq!(ws_echo(&format!("127.0.0.1:{port}"), "hi").await, "hi");
        ports.push(port);
    }
    assert_ne!(ports[0], ports[1]);
    let slices = eventually("a slice per pod", || {
        let out = sb
            .kubectl(&["get", "endpointslices", "-n", "test-infra", "-o", "json"])
            .success();
        let v: Value = serde_json::from_str(&out).unwrap();
        let mut got: Vec<u64> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["ports"][0]["port"].as_u64())
            .collect();
        got.sort();
        let mut want = ports.clone();
        want.sort();
        (got == want).then_some(got)
    })
    .await;
    assert_eq!(slices.len(), 2);
    sb.stop().await;
}

/// Deployments keep revisions as kube-controller-manager does: `rollout history` lists them,
/// `rollout undo` brings the previous template back (reviving its ReplicaSet under the next
/// revision), `--to-revision` picks one, and an unknown revision is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_history_and_undo() {
    let sb = Sandbox::start().await;
    let k = |args: &[&str]| sb.kubectl(args).success();
    sb.create_deployment("web", "nginx:1.25", 2);
    k(&["set", "image", "deploy/web", "nginx=nginx:1.26"]);
    k(&[
        "annotate",
        "deploy/web",
        "kubernetes.io/change-cause=to 1.26",
    ]);
    k(&["rollout", "status", "deploy/web", "--timeout=20s"]);
    let history = k(&["rollout", "history", "deploy/web"]);
    assert!(history.contains("1         <none>"), "{history}");
    assert!(history.contains("2         to 1.26"), "{history}");

    let undo = k(&["rollout", "undo", "deploy/web"]);
    assert!(undo.contains("deployment.apps/web rolled back"), "{undo}");
    k(&["rollout", "status", "deploy/web", "--timeout=20s"]);
    let image = |sb: &Sandbox| {
        sb.jsonpath(&["deploy", "web"], "{.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\\.kubernetes\\.io/revision}")
    };
    assert_eq!(image(&sb), "nginx:1.25 3");
    // Two ReplicaSets, not three: the first one came back as revision 3.
    let sets: Value = serde_json::from_str(&k(&["get", "rs", "-o", "json"])).unwrap();
    let revs: Vec<(String, i64)> = sets["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                r["spec"]["replicas"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(revs.len(), 2, "{revs:?}");
    assert!(revs.contains(&("3".into(), 2)), "{revs:?}");
    let history = k(&["rollout", "history", "deploy/web"]);
    assert!(!history.contains("\n1 "), "{history}");

    k(&["rollout", "undo", "deploy/web", "--to-revision=2"]);
    k(&["rollout", "status", "deploy/web", "--timeout=20s"]);
    assert_eq!(image(&sb), "nginx:1.26 4");
    let missing = sb.kubectl(&["rollout", "undo", "deploy/web", "--to-revision=9"]);
    assert!(!missing.ok);
    assert!(
        missing
            .stderr
            .contains("unable to find specified revision 9 in history"),
        "{}",
        missing.stderr
    );
    sb.stop().await;
}

/// `kill -9` of `up` leaves no process of `agc-sandbox.dev/command` running, children of the
/// command included; scaling down kills a pod's whole process tree.
#[test]
fn user_commands_die_with_the_sandbox_even_by_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("{}.25", 7000 + std::process::id() % 1000);
    let mut up = Binary::start(dir.path(), &["--port-offset", "25000"]);
    let kubeconfig = up.kubeconfig.clone();
    let manifest = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: cmd}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: cmd}}}}\n  template:\n    metadata:\n      labels: {{app: cmd}}\n      annotations:\n        agc-sandbox.dev/command: 'sleep {marker} & cd / && python3 -m http.server \"$PORT\" --bind \"$POD_IP\"'\n    spec:\n      containers: [{{name: c, image: x, ports: [{{containerPort: 8080}}]}}]\n"
    );
    let cache = dir.path().join("kube-cache");
    kubectl(&kubeconfig, &cache, &["apply", "-f", "-"], Some(&manifest)).success();
    let running = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &format!("^sleep {marker}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    // Polls `running()` until `done` holds, or fails with `what` after `limit`.
    let wait = |limit: u64, done: &dyn Fn(usize) -> bool, what: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(limit);
        loop {
            let n = running();
            if done(n) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what} ({n} running)");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait(20, &|n| n >= 2, "the commands did not start");
    kubectl(
        &kubeconfig,
        &cache,
        &["scale", "deploy/cmd", "--replicas=1"],
        None,
    )
    .success();
    wait(20, &|n| n == 1, "scaling down left processes behind");
    up.kill(); // SIGKILL
    wait(5, &|n| n == 0, "command processes outlived kill -9");
}

/// Request mirroring made visible as the conformance suite sees it: the mirror's echo-basic
/// prints echo-basic's per-request line, and `kubectl logs -l app=X -c X --since-time=...`
/// (utils/kubernetes DumpEchoLogs) finds it. Lines older than `--since-time` are not shown.
#[tokio::test(flavor = "multi_thread")]
async fn mirrored_requests_show_in_the_mirrors_logs() {
    let sb = Sandbox::start().await;
    let backend = |name: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: test-infra, labels: {{app: {name}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: {name}
        image: gcr.io/k8s-staging-gateway-api/echo-basic:v20240412-v1.0.0-394-g40c666fd
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: test-infra}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 8080, targetPort: 3000}}]
"#
        )
    };
    sb.kubectl_stdin(&["create", "namespace", "test-infra"], "")
        .success();
    let manifests = format!(
        "{}---{}---\n{}",
        backend("infra-backend-v1"),
        backend("infra-backend-v2"),
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios/common/gateway-01.yaml")
        )
        .unwrap()
    );
    sb.kubectl_stdin(&["apply", "-f", "-"], &manifests)
        .success();
    sb.kubectl_stdin(
        &["apply", "-f", "-"],
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: mirror, namespace: test-infra}
spec:
  parentRefs: [{name: gateway-01}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: infra-backend-v2, port: 8080}}
    backendRefs: [{name: infra-backend-v1, port: 8080}]
"#,
    )
    .success();
    for d in ["infra-backend-v1", "infra-backend-v2"] {
        sb.kubectl(&[
            "rollout",
            "status",
            "-n",
            "test-infra",
            &format!("deploy/{d}"),
            "--timeout=20s",
        ])
        .success();
    }
    let gw = sb.get_json(&["gateway", "gateway-01", "-n", "test-infra"]);
    let ip = gw["status"]["addresses"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{ip}:{}/mirror/x?a=1", 80 + sb.port_offset);
    // An earlier request, before the mark: --since-time must leave it out.
    let early = format!("http://{ip}:{}/mirror/early", 80 + sb.port_offset);
    let r = within("early request", async {
        loop {
            let r = get(&early).await;
            if r.status == 200 {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mark = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get(&url).await;
    assert_eq!(r.status, 200);
    let pod = serde_json::from_slice::<Value>(&r.body).unwrap()["pod"].clone();
    assert!(
        pod.as_str().unwrap_or("").starts_with("infra-backend-v1-"),
        "answered by {pod}, not the route's backend"
    );
    let logs = eventually("the mirrored request in infra-backend-v2's log", || {
        let out = sb
            .kubectl(&[
                "logs",
                "-n",
                "test-infra",
                "-l",
                "app=infra-backend-v2",
                "-c",
                "infra-backend-v2",
                &format!("--since-time={mark}"),
            ])
            .success();
        out.contains("Echoing back request made to /mirror/x?a=1 to client (")
            .then_some(out)
    })
    .await;
    assert!(
        !logs.contains("/mirror/early"),
        "--since-time kept an older line:\n{logs}"
    );
    sb.stop().await;
}
