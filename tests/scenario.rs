//! The scenario runner itself: its own small scenarios (status only, plus a stand-in data plane),
//! exit codes, failure diffs and JUnit output.

use agc_sandbox::scenario::{self, Options, Out};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(60);

/// The step both scenarios start with: the namespace and a Gateway with one HTTP listener.
macro_rules! apply_gateway {
    () => {
        r#"  - apply:
      yaml: |
        apiVersion: v1
        kind: Namespace
        metadata: {name: test-infra}
        ---
        apiVersion: gateway.networking.k8s.io/v1
        kind: Gateway
        metadata: {name: gateway-01, namespace: test-infra}
        spec:
          gatewayClassName: azure-alb-external
          listeners:
          - {name: http-listener, port: 80, protocol: HTTP}
"#
    };
}

const PASSING: &str = concat!(
    r#"
name: gateway status
namespace: test-infra
steps:
"#,
    apply_gateway!(),
    r#"  - wait: {ref: gateway/gateway-01, condition: Accepted, timeout: 10s}
  - assert:
      ref: gateway/gateway-01
      status:
        conditions:
          - {type: Accepted, status: "True", message: Valid Gateway}
  - assert: {ref: gateway/gateway-01, path: '{.status.conditions[?(@.type=="Accepted")].reason}', equals: Accepted}
  - patch: {ref: gateway/gateway-01, patch: {metadata: {labels: {team: a}}}}
  - assert: {ref: gateway/gateway-01, object: {metadata: {labels: {team: a}}}}
  - delete: {ref: gateway/gateway-01, wait: true}
  - sleep: 10ms
"#
);

const FAILING: &str = concat!(
    r#"
name: a wrong expectation
steps:
"#,
    apply_gateway!(),
    r#"  - wait: {ref: gateway/gateway-01, namespace: test-infra, condition: Accepted}
  - name: expects the <wrong> message
    assert:
      ref: gateway/gateway-01
      namespace: test-infra
      timeout: 100ms
      status:
        conditions:
          - {type: Accepted, message: "Totally & wrong"}
  - sleep: 1s
"#
);

fn collect() -> (Out, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    (
        Arc::new(move |s: &str| l.lock().unwrap().push(s.to_string())),
        lines,
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passing_and_failing_scenarios_report_steps_diffs_and_junit() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = write(tmp.path(), "pass.yaml", PASSING);
    let fail = write(tmp.path(), "fail.yaml", FAILING);
    let junit = tmp.path().join("junit.xml");
    let (out, lines) = collect();
    let opts = Options {
        files: vec![pass.clone(), fail.clone()],
        junit: Some(junit.clone()),
        ..Default::default()
    };
    let summary = timeout(STEP, scenario::run(&opts, out))
        .await
        .expect("scenario run timed out")
        .expect("scenarios load");
    assert_eq!((summary.passed(), summary.failed()), (1, 1));
    let text = lines.lock().unwrap().join("\n");
    assert!(
        text.contains("  ✓ wait gateway/gateway-01 Accepted ("),
        "{text}"
    );
    assert!(text.contains("  ✗ expects the <wrong> message ("), "{text}");
    let fail_shown = fail.display().to_string();
    let msg = summary.cases[1].failure.as_ref().unwrap().0.clone();
    assert!(
        msg.starts_with(&format!(
            "{fail_shown} step 3 (expects the <wrong> message): "
        )),
        "{msg}"
    );
    assert!(
        msg.contains(".status.conditions[type=Accepted].message: expected \"Totally & wrong\", got \"Valid Gateway\""),
        "{msg}"
    );
    // The scenario stopped at its first failure: the sleep after it never ran.
    assert!(!text.contains("sleep 1s"), "{text}");
    assert!(text.ends_with("1 passed, 1 failed"), "{text}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
    assert!(xml.contains("<testcase name=\"gateway status\""), "{xml}");
    assert!(xml.contains("expects the &lt;wrong&gt; message"), "{xml}");
    assert!(xml.contains("Totally &amp; wrong"), "{xml}");
    assert_eq!(xml.matches("<failure").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_of_the_binary() {
    let tmp = tempfile::tempdir().unwrap();
    let pass = write(tmp.path(), "pass.yaml", PASSING);
    let fail = write(tmp.path(), "fail.yaml", FAILING);
    let bad = write(tmp.path(), "bad.yaml", "steps:\n  - htp: {}\n");
    let bin = env!("CARGO_BIN_EXE_agc-sandbox");
    let run = |args: Vec<std::path::PathBuf>| async move {
        let out = timeout(
            STEP,
            tokio::process::Command::new(bin)
                .args(["--log-level", "warn", "scenario", "run"])
                .args(&args)
                .output(),
        )
        .await
        .expect("binary timed out")
        .expect("binary runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, stdout, _) = run(vec![pass.clone()]).await;
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    let (code, stdout, _) = run(vec![pass.clone(), fail.clone()]).await;
    assert_eq!(code, Some(1), "{stdout}");
    let (code, _, stderr) = run(vec![bad.clone()]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("bad.yaml: step 1: unknown step `htp`"),
        "{stderr}"
    );
    let (code, _, stderr) = run(vec![tmp.path().join("missing.yaml")]).await;
    assert_eq!(code, Some(2), "{stderr}");
}

/// A stand-in data plane: answers every request like an echo backend, alternating two pods,
/// except `/down` (503 "no healthy upstream").
async fn fake_gateway(addr: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind the stand-in gateway");
    tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            n += 1;
            let pod = if n.is_multiple_of(2) {
                "backend-v1-5d8f7c9b4-abcde"
            } else {
                "backend-v2-6c9d8e7f5-fghij"
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let Ok(len) = s.read(&mut buf).await else {
                    return;
                };
                let req = String::from_utf8_lossy(&buf[..len]).to_string();
                let path = req.split(' ').nth(1).unwrap_or("/").to_string();
                let host = req
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("host: ")
                            .or_else(|| l.strip_prefix("Host: "))
                    })
                    .unwrap_or("")
                    .to_string();
                let (status, body) = if path == "/down" {
                    ("503 Service Unavailable", "no healthy upstream".to_string())
                } else {
                    (
                        "200 OK",
                        format!(
                            r#"{{"path":"{path}","host":"{host}","namespace":"test-infra","pod":"{pod}"}}"#
                        ),
                    )
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nServer: Microsoft-Azure-Application-LB/AGC\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_traffic_steps_against_a_running_sandbox() {
    // A running sandbox (`--server`), and a stand-in for its data plane on the Gateway's
    // address at a port offset of our own, so this test needs no proxy.
    let tmp = tempfile::tempdir().unwrap();
    let sandbox_offset = scenario::pick_port_offset();
    let args = agc_sandbox::cli::UpArgs {
        data_dir: tmp.path().join("data"),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        port_offset: sandbox_offset,
        ..Default::default()
    };
    let handle = timeout(STEP, agc_sandbox::app::spawn(args))
        .await
        .expect("start timeout")
        .unwrap();
    let access = handle.started.access.clone();

    let setup = write(
        tmp.path(),
        "setup.yaml",
        &PASSING.replace("  - delete: {ref: gateway/gateway-01, wait: true}\n", ""),
    );
    let (out, _) = collect();
    let opts = Options {
        files: vec![setup],
        server: Some(access.clone()),
        ..Default::default()
    };
    let s = timeout(STEP, scenario::run(&opts, out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.failed(), 0, "{:?}", s.cases[0].failure);

    // The Gateway's address, and our stand-in on it.
    let client = agc_sandbox::client::ApiClient::new(&access).unwrap();
    let gw = client
        .get(&agc_sandbox::client::ObjRef {
            res: agc_sandbox::resources::kinds::gateways(),
            namespace: "test-infra".into(),
            name: "gateway-01".into(),
        })
        .await
        .unwrap()
        .unwrap();
    let ip = gw["status"]["addresses"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    let mut runner_offset = scenario::pick_port_offset();
    while runner_offset == sandbox_offset {
        runner_offset = scenario::pick_port_offset();
    }
    let fake = fake_gateway(format!("{ip}:{}", 80 + runner_offset).parse().unwrap()).await;

    let traffic = write(
        tmp.path(),
        "traffic.yaml",
        r#"
namespace: test-infra
steps:
  - http:
      gateway: gateway-01
      host: contoso.com
      path: /shop
      expect:
        status: 200
        headers: {server: Microsoft-Azure-Application-LB/AGC, x-nope: null}
        json: {host: contoso.com, path: /shop}
        pod: backend-v*
        namespace: test-infra
  - http: {gateway: gateway-01, host: contoso.com, path: /down, expect: {status: 503, body: no healthy upstream}}
  - traffic: {gateway: gateway-01, host: contoso.com, requests: 40, expect: {backend-v1: 50, backend-v2: 50}, tolerance: 15}
  - http: {gateway: gateway-01, host: contoso.com, path: /down, retry: 200ms}
"#,
    );
    let (out, lines) = collect();
    let opts = Options {
        files: vec![traffic.clone()],
        server: Some(access),
        port_offset: Some(runner_offset),
        ..Default::default()
    };
    let s = timeout(STEP, scenario::run(&opts, out))
        .await
        .unwrap()
        .unwrap();
    let text = lines.lock().unwrap().join("\n");
    assert_eq!(s.failed(), 1, "{text}");
    let msg = &s.cases[0].failure.as_ref().unwrap().0;
    assert_eq!(
        msg,
        &format!(
            "{} step 4 (http GET contoso.com/down): expected status 200, got 503; body: no healthy upstream",
            traffic.display()
        ),
        "{text}"
    );
    assert!(text.contains("  ✓ traffic contoso.com/ ×40 ("), "{text}");

    fake.abort();
    handle.shutdown().await.expect("sandbox stops cleanly");
}

#[test]
fn shipped_scenarios_parse_and_their_files_exist() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "yaml") {
            let sc = scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            assert!(!sc.name.is_empty());
            n += 1;
        }
    }
    assert!(n >= 10, "only {n} scenarios");
    for f in [
        "namespace",
        "deployment",
        "service",
        "alb",
        "gateway",
        "httproute",
        "healthcheckpolicy",
    ] {
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("manifests/websocket/{f}.yaml"))
                .exists(),
            "{f}"
        );
    }
}

/// `agc-sandbox scenario run scenarios/*.yaml` passes: every shipped how-to end to end against
/// the real binary, with a JUnit report naming each scenario.
#[test]
fn shipped_scenarios_pass_end_to_end() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the how-to scenarios, found {files:?}"
    );
    let junit = tempfile::tempdir().unwrap().keep().join("junit.xml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_agc-sandbox"))
        .current_dir(root)
        .args(["scenario", "run", "--junit"])
        .arg(&junit)
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scenarios failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{} passed, 0 failed", files.len())),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("websocket.yaml") && !xml.contains("<failure"),
        "{xml}"
    );
}
