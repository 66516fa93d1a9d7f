//! The drop-in manifests folder end to end: a sandbox in-process, a temp folder, real file
//! writes, renames and deletes.

use agc_sandbox::client::{ApiClient, ObjRef};
use agc_sandbox::dirwatch::{DirWatch, Report, ANN_SOURCE_FILE};
use agc_sandbox::resources::{kinds, ResourceDef};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(10);

struct Sandbox {
    client: ApiClient,
    handle: agc_sandbox::app::Handle,
}

impl Sandbox {
    async fn start(data: &Path, watch: Vec<PathBuf>) -> Sandbox {
        let args = agc_sandbox::cli::UpArgs {
            data_dir: data.to_path_buf(),
            api_addr: "127.0.0.1:0".parse().unwrap(),
            watch,
            port_offset: 20_000 + (std::process::id() % 20_000) as u16,
            ..Default::default()
        };
        let handle = timeout(STEP, agc_sandbox::app::spawn(args))
            .await
            .expect("sandbox start timed out")
            .expect("sandbox started");
        Sandbox {
            client: ApiClient::new(&handle.started.access).unwrap(),
            handle,
        }
    }

    async fn stop(self) {
        self.handle.shutdown().await.expect("sandbox stops cleanly");
    }
}

/// A sandbox (its data in `<tmp>/data`) with a DirWatch on one folder, running until
/// [`Watch::stop`], the watch's reports collected.
struct Watch {
    sb: Sandbox,
    lines: Arc<Mutex<Vec<Report>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    /// Applies `dir` (bounded by [`STEP`]: a walk that followed a symlink loop times out) and
    /// follows it.
    async fn start(tmp: &Path, dir: &Path) -> Watch {
        let sb = Sandbox::start(&tmp.join("data"), vec![]).await;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let report: agc_sandbox::dirwatch::Reporter = Arc::new(move |r| l.lock().unwrap().push(r));
        let dw = timeout(
            STEP,
            DirWatch::start(sb.client.clone(), &[dir.to_path_buf()], report),
        )
        .await
        .expect("DirWatch start timed out (did the walk follow a symlink loop?)")
        .expect("DirWatch start");
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(dw.run(async move {
            let _ = stop_rx.await;
        }));
        Watch {
            sb,
            lines,
            stop,
            task,
        }
    }

    /// Stops the watch, then the sandbox.
    async fn stop(self) {
        let _ = self.stop.send(());
        timeout(STEP, self.task)
            .await
            .expect("DirWatch stop timed out")
            .expect("DirWatch task panicked");
        self.sb.stop().await;
    }
}

async fn wait_report(lines: &Arc<Mutex<Vec<Report>>>, what: &str) -> Report {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        if let Some(r) = lines
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.to_string().contains(what))
        {
            return r.clone();
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "no report containing {what:?}; got: {:#?}",
                lines.lock().unwrap()
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn obj_ref(res: &'static ResourceDef, namespace: &str, name: &str) -> ObjRef {
    ObjRef {
        res,
        namespace: namespace.into(),
        name: name.into(),
    }
}

fn route_ref(name: &str) -> ObjRef {
    obj_ref(kinds::httproutes(), "test-infra", name)
}

async fn get(c: &ApiClient, r: &ObjRef) -> Option<Value> {
    timeout(STEP, c.get(r))
        .await
        .expect("get timed out")
        .expect("get")
}

async fn wait_gone(c: &ApiClient, r: &ObjRef) {
    let deadline = tokio::time::Instant::now() + STEP;
    while get(c, r).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still exists",
            r.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A temp folder holding the manifests folder `m` with `files` (paths relative to `m`).
fn manifests(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    (tmp, dir)
}

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: test-infra\n";
const GW: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gateway-01\n  namespace: test-infra\nspec:\n  gatewayClassName: azure-alb-external\n  listeners:\n  - name: http\n    port: 80\n    protocol: HTTP\n";

fn route(name: &str, host: &str) -> String {
    format!("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata:\n  name: {name}\n  namespace: test-infra\nspec:\n  parentRefs:\n  - name: gateway-01\n  hostnames: [\"{host}\"]\n  rules:\n  - backendRefs:\n    - name: svc\n      port: 8080\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_is_applied_in_order_and_followed() {
    // The namespace sorts last by name: the kind order must put it first.
    let (tmp, dir) = manifests(&[
        ("a-route.yaml", &route("r1", "contoso.com")),
        ("sub/gateway.yml", GW),
        ("z-namespace.yaml", NS),
        ("notes.txt", "not a manifest"),
    ]);
    let watch = Watch::start(tmp.path(), &dir).await;
    let (sb, lines) = (&watch.sb, &watch.lines);
    {
        let l = lines.lock().unwrap();
        let text: Vec<String> = l.iter().map(|r| r.to_string()).collect();
        let shown = dir.display().to_string();
        assert_eq!(
            text,
            vec![
                format!("{shown}/z-namespace.yaml: namespace/test-infra created"),
                format!(
                    "{shown}/sub/gateway.yml: gateway.gateway.networking.k8s.io/gateway-01 created"
                ),
                format!("{shown}/a-route.yaml: httproute.gateway.networking.k8s.io/r1 created"),
            ]
        );
    }
    let r1 = get(&sb.client, &route_ref("r1")).await.expect("r1 created");
    assert_eq!(
        r1["metadata"]["annotations"][ANN_SOURCE_FILE],
        "a-route.yaml"
    );

    // An in-place edit is re-applied: "configured".
    std::fs::write(dir.join("a-route.yaml"), route("r1", "fabrikam.com")).unwrap();
    wait_report(lines, "httproute.gateway.networking.k8s.io/r1 configured").await;
    let r1 = get(&sb.client, &route_ref("r1")).await.unwrap();
    assert_eq!(r1["spec"]["hostnames"][0], "fabrikam.com");

    // Editor noise is ignored; an atomic-rename save is picked up.
    let before = lines.lock().unwrap().len();
    std::fs::write(dir.join(".a-route.yaml.swp"), "junk: [").unwrap();
    std::fs::write(dir.join("4913"), "").unwrap();
    std::fs::write(dir.join("a-route.yaml~"), "junk: [").unwrap();
    std::fs::write(dir.join("r2.yaml.tmp"), route("r2", "x.com")).unwrap();
    std::fs::rename(dir.join("r2.yaml.tmp"), dir.join("r2.yaml")).unwrap();
    wait_report(lines, "httproute.gateway.networking.k8s.io/r2 created").await;
    assert_eq!(
        lines.lock().unwrap().len(),
        before + 1,
        "{:#?}",
        lines.lock().unwrap()
    );

    // A file that stops declaring an object removes it; a deleted file removes its objects.
    let two = format!("{}---\n{}", route("r3", "a.com"), route("r4", "b.com"));
    std::fs::write(dir.join("multi.yaml"), two).unwrap();
    wait_report(lines, "httproute.gateway.networking.k8s.io/r4 created").await;
    std::fs::write(dir.join("multi.yaml"), route("r3", "a.com")).unwrap();
    wait_report(lines, "httproute.gateway.networking.k8s.io/r4 deleted").await;
    wait_gone(&sb.client, &route_ref("r4")).await;
    assert!(get(&sb.client, &route_ref("r3")).await.is_some());
    std::fs::remove_file(dir.join("r2.yaml")).unwrap();
    wait_report(lines, "httproute.gateway.networking.k8s.io/r2 deleted").await;
    wait_gone(&sb.client, &route_ref("r2")).await;

    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_rejected_whole_and_the_last_good_version_keeps_running() {
    let (tmp, dir) = manifests(&[
        ("ns.yaml", NS),
        ("routes.yaml", &route("good", "contoso.com")),
    ]);
    let watch = Watch::start(tmp.path(), &dir).await;
    let (sb, lines) = (&watch.sb, &watch.lines);
    assert!(get(&sb.client, &route_ref("good")).await.is_some());

    // Invalid YAML: the error names file, line and column; the good route keeps running.
    std::fs::write(
        dir.join("routes.yaml"),
        format!("{}---\nkind: [oops\n", route("good", "changed.com")),
    )
    .unwrap();
    let r = wait_report(lines, "invalid YAML").await;
    assert!(matches!(r, Report::Rejected(_)), "{r}");
    let text = r.to_string();
    assert!(text.contains("routes.yaml:16:1:"), "{text}");
    assert!(text.contains("invalid YAML"), "{text}");
    assert!(text.contains("last good version keep running"), "{text}");
    let good = get(&sb.client, &route_ref("good")).await.unwrap();
    assert_eq!(good["spec"]["hostnames"][0], "contoso.com");

    // An object the API rejects rejects the whole file (the valid one is not applied either).
    let bad_route = route("bad", "x.com").replace("port: 8080", "port: 99999");
    std::fs::write(
        dir.join("routes.yaml"),
        format!("{}---\n{}", route("good", "changed.com"), bad_route),
    )
    .unwrap();
    let r = wait_report(lines, "httproute.gateway.networking.k8s.io/bad:").await;
    let text = r.to_string();
    assert!(text.contains("routes.yaml:15: error:"), "{text}");
    assert!(text.contains("is invalid"), "{text}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let good = get(&sb.client, &route_ref("good")).await.unwrap();
    assert_eq!(good["spec"]["hostnames"][0], "contoso.com");
    assert!(get(&sb.client, &route_ref("bad")).await.is_none());

    // Fixing the file applies it.
    std::fs::write(
        dir.join("routes.yaml"),
        format!(
            "{}---\n{}",
            route("good", "changed.com"),
            route("bad", "x.com")
        ),
    )
    .unwrap();
    wait_report(lines, "httproute.gateway.networking.k8s.io/bad created").await;
    let good = get(&sb.client, &route_ref("good")).await.unwrap();
    assert_eq!(good["spec"]["hostnames"][0], "changed.com");

    watch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_survives_a_restart() {
    let (tmp, dir) = manifests(&[
        ("ns.yaml", NS),
        (
            "routes.yaml",
            &format!("{}---\n{}", route("keep", "a.com"), route("drop", "b.com")),
        ),
        ("gone.yaml", &route("gone", "c.com")),
    ]);
    let data = tmp.path().join("data");
    // `up --watch` applies the folder before it reports being up.
    let sb = Sandbox::start(&data, vec![dir.clone()]).await;
    for n in ["keep", "drop", "gone"] {
        assert!(get(&sb.client, &route_ref(n)).await.is_some(), "{n}");
    }
    sb.stop().await;

    // While the sandbox is down, one object leaves its file and one file is deleted.
    std::fs::write(dir.join("routes.yaml"), route("keep", "a.com")).unwrap();
    std::fs::remove_file(dir.join("gone.yaml")).unwrap();
    let sb = Sandbox::start(&data, vec![dir.clone()]).await;
    assert!(get(&sb.client, &route_ref("keep")).await.is_some());
    wait_gone(&sb.client, &route_ref("drop")).await;
    wait_gone(&sb.client, &route_ref("gone")).await;
    sb.stop().await;
}

/// Two symlinks to `..` and one to a folder outside: the watcher keeps serving, the API keeps
/// answering, each link is reported once (not on every rescan), and the files inside are
/// still applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlink_loops_are_reported_once_and_never_followed() {
    let (tmp, dir) = manifests(&[
        ("z-namespace.yaml", NS),
        ("../outside/secret.yaml", &route("nope", "outside.example")),
    ]);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let outside = tmp.path().join("outside");
    std::os::unix::fs::symlink("..", dir.join("up")).unwrap();
    std::os::unix::fs::symlink("..", dir.join("sub/up")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("out")).unwrap();
    let watch = Watch::start(tmp.path(), &dir).await;
    let (sb, lines) = (&watch.sb, &watch.lines);
    // A rescan (a new file) must not repeat the warnings.
    std::fs::write(dir.join("sub/gw.yaml"), GW).unwrap();
    let ns_ref = obj_ref(kinds::namespaces(), "", "test-infra");
    let gw_ref = obj_ref(kinds::gateways(), "test-infra", "gateway-01");
    timeout(STEP, async {
        while sb.client.get(&gw_ref).await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the gateway from sub/gw.yaml was applied");
    assert!(sb.client.get(&ns_ref).await.unwrap().is_some());
    assert!(
        sb.client.get(&route_ref("nope")).await.unwrap().is_none(),
        "the link out was not followed"
    );
    let warnings: Vec<String> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|r| matches!(r, Report::Warning(_)))
        .map(|r| r.to_string())
        .collect();
    assert_eq!(warnings.len(), 3, "{warnings:#?}");
    for link in ["up", "sub/up", "out"] {
        assert_eq!(
            warnings
                .iter()
                .filter(|w| w.contains(&format!("/m/{link}: ")))
                .count(),
            1,
            "{link}: {warnings:#?}"
        );
    }
    watch.stop().await;
}
