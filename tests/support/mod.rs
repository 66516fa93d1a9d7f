//! Test support: an in-process sandbox on port 0 in a temp dir, a tiny HTTP client, and a
//! kubectl runner. Every await is wrapped in a timeout naming what probably hung.
#![allow(dead_code)]

use agc_sandbox::app::{self, Started};
use agc_sandbox::cli::UpArgs;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::net::TcpStream;

pub const T: Duration = Duration::from_secs(10);

/// Awaits `fut` for at most `T`, panicking with `what` if it hangs.
pub async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(T, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A sandbox running inside the test process.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub started: Started,
    /// Added to Gateway listener ports (`--port-offset`).
    pub port_offset: u16,
    handle: Option<app::Handle>,
}

/// A port offset no other sandbox of this test run uses, so parallel tests' gateways (which
/// share the 127.20.0.0/16 addresses) never compete for a listener port.
pub fn unique_port_offset() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let per_process = (std::process::id() % 50) as u16 * 400;
    20_000 + per_process + NEXT.fetch_add(1, Ordering::Relaxed) % 400
}

pub fn up_args(dir: &Path) -> UpArgs {
    UpArgs {
        data_dir: dir.to_path_buf(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        watch: vec![],
        port_offset: unique_port_offset(),
        ..Default::default()
    }
}

impl Sandbox {
    pub async fn start() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let args = up_args(dir.path());
        Sandbox::start_with(dir, args).await
    }

    pub async fn start_with(dir: tempfile::TempDir, args: UpArgs) -> Sandbox {
        let port_offset = args.port_offset;
        let handle = within("sandbox start", app::spawn(args))
            .await
            .expect("sandbox failed to start");
        let started = handle.started.clone();
        register(&started.access);
        Sandbox {
            dir,
            started,
            port_offset,
            handle: Some(handle),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.started.api_url, path)
    }

    /// Stops the sandbox and hands back its data directory, to start it again on the same data.
    pub async fn stop_keep_data(mut self) -> tempfile::TempDir {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("sandbox stops cleanly");
        }
        self.dir
    }

    /// Starts a sandbox on an existing data directory.
    pub async fn restart(dir: tempfile::TempDir) -> Sandbox {
        let args = up_args(dir.path());
        Sandbox::start_with(dir, args).await
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await.expect("sandbox stops cleanly");
        }
    }

    /// An API client with this sandbox's credentials.
    pub fn client(&self) -> agc_sandbox::client::ApiClient {
        agc_sandbox::client::ApiClient::new(&self.started.access).expect("client")
    }

    /// Runs real kubectl against this sandbox.
    pub fn kubectl(&self, args: &[&str]) -> Kubectl {
        kubectl(
            &self.started.kubeconfig,
            &self.dir.path().join("kube-cache"),
            args,
            None,
        )
    }

    /// Runs a given kubectl binary (see [`versioned_kubectl`]), with its own cache directory.
    pub fn kubectl_with(&self, bin: &Path, args: &[&str], stdin: Option<&str>) -> Kubectl {
        let name = bin.file_name().map(|n| n.to_string_lossy().into_owned());
        let cache = self
            .dir
            .path()
            .join(format!("kube-cache-{}", name.unwrap_or_default()));
        kubectl_bin(bin, &self.started.kubeconfig, &cache, args, stdin)
    }

    /// `kubectl get <args> -o json`, parsed.
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.kubectl(&a).success();
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {a:?}: {e}: {out}"))
    }

    /// The pods in `test-infra` that match the label `selector`.
    pub fn pods(&self, selector: &str) -> Vec<Value> {
        let list = self.get_json(&["pods", "-n", "test-infra", "-l", selector]);
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Deletes the first pod in `test-infra` that matches `selector`, and names it: the
    /// failover tests watch its replacement come up.
    pub fn delete_first_pod(&self, selector: &str) -> String {
        let pods = self.pods(selector);
        let Some(name) = pods.first().and_then(|p| p["metadata"]["name"].as_str()) else {
            panic!("no pod matches {selector}: {pods:?}")
        };
        self.kubectl(&["delete", "pod", name, "-n", "test-infra"])
            .success();
        name.to_string()
    }

    /// `kubectl get <args> -o jsonpath=<path>`: what it printed.
    pub fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let output = format!("jsonpath={path}");
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", &output]);
        self.kubectl(&a).success()
    }

    /// Runs `kubectl <args>` (which must succeed) every 100 ms, for up to 5 s, until what it
    /// prints contains `want`; hands back the last output (the caller asserts on it).
    pub async fn kubectl_until(&self, args: &[&str], want: &str) -> String {
        let mut out = String::new();
        for _ in 0..50 {
            out = self.kubectl(args).success();
            if out.contains(want) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        out
    }

    /// `kubectl wait` (10 s) until the CustomResourceDefinition `crd` (`plural.group`) is
    /// Established, so its kind is served.
    pub fn wait_established(&self, crd: &str) {
        let crd = format!("crd/{crd}");
        self.kubectl(&[
            "wait",
            "--for",
            "condition=established",
            &crd,
            "--timeout=10s",
        ])
        .success();
    }

    /// `kubectl create deployment <name> --image=<image> --replicas=<n>` in the default
    /// namespace, then `rollout status` (20 s) until its pods are up.
    pub fn create_deployment(&self, name: &str, image: &str, replicas: u32) {
        let image = format!("--image={image}");
        let replicas = format!("--replicas={replicas}");
        self.kubectl(&["create", "deployment", name, &image, &replicas])
            .success();
        let deploy = format!("deploy/{name}");
        self.kubectl(&["rollout", "status", &deploy, "--timeout=20s"])
            .success();
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Kubectl {
        kubectl(
            &self.started.kubeconfig,
            &self.dir.path().join("kube-cache"),
            args,
            Some(stdin),
        )
    }
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct Kubectl {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Kubectl {
    /// Panics with kubectl's output unless it succeeded.
    pub fn success(self) -> String {
        assert!(
            self.ok,
            "kubectl failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self.stdout
    }
}

pub fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str], stdin: Option<&str>) -> Kubectl {
    kubectl_bin(Path::new("kubectl"), kubeconfig, cache, args, stdin)
}

/// The kubectl of one minor version (`/usr/lib/google-cloud-sdk/bin/kubectl.1.27`), when this
/// machine has it; `kubectl` on the PATH picks its version from the server's.
pub fn versioned_kubectl(minor: u32) -> Option<PathBuf> {
    let p = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"));
    p.exists().then_some(p)
}

pub fn kubectl_bin(
    bin: &Path,
    kubeconfig: &Path,
    cache: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Kubectl {
    use std::io::Write;
    let mut cmd = Command::new(bin);
    cmd.env("KUBECONFIG", kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // The tests fail, not skip, without kubectl: the product is driven by it.
    let mut child = cmd
        .spawn()
        .expect("kubectl must be installed (it is on these machines)");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = wait_timeout(child, Duration::from_secs(60));
    Kubectl {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wait_timeout(child: std::process::Child, limit: Duration) -> std::process::Output {
    let (tx, rx) = std::sync::mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out.expect("kubectl output"),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("kubectl hung for {limit:?}");
        }
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn http(method: &str, url: &str, content_type: &str, body: impl Into<Bytes>) -> Resp {
    http_with(method, url, &[("content-type", content_type)], body).await
}

pub async fn http_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    request(method, url, headers, body, true).await
}

/// A GET with `headers` (and the sandbox's token).
pub async fn get_with(url: &str, headers: &[(&str, &str)]) -> Resp {
    http_with("GET", url, headers, Bytes::new()).await
}

/// A GET without the sandbox's token.
pub async fn get_anonymous(url: &str) -> Resp {
    http_anonymous("GET", url, &[], Bytes::new()).await
}

/// Like [`http_with`], but never adds the sandbox's token (to see what an anonymous client gets).
pub async fn http_anonymous(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    request(method, url, headers, body, false).await
}

/// API servers started by this test process, by `host:port`: `https://` URLs get their CA, and
/// their token unless a request sets `authorization` itself.
fn registry(
) -> &'static std::sync::Mutex<std::collections::HashMap<String, agc_sandbox::client::Access>> {
    static R: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, agc_sandbox::client::Access>>,
    > = std::sync::OnceLock::new();
    R.get_or_init(Default::default)
}

/// Makes [`http_with`] and friends reach the API `access` describes with its CA and token.
pub fn register(access: &agc_sandbox::client::Access) {
    let key = access
        .server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_string();
    registry().lock().unwrap().insert(key, access.clone());
}

async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    with_token: bool,
) -> Resp {
    let resp = open(method, url, headers, body, with_token).await;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = within("response body", resp.into_body().collect())
        .await
        .unwrap()
        .to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

/// Sends one request on a fresh connection and returns the response with its body unread (for
/// watch streams). `https://` URLs of registered sandboxes use their CA and (`with_token`) token.
pub async fn open(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    with_token: bool,
) -> http::Response<hyper::body::Incoming> {
    let uri: http::Uri = url.parse().unwrap();
    let https = uri.scheme_str() == Some("https");
    let default_port = if https { 443 } else { 80 };
    let addr = format!(
        "{}:{}",
        uri.host().unwrap(),
        uri.port_u16().unwrap_or(default_port)
    );
    let access = registry().lock().unwrap().get(&addr).cloned();
    let stream = within("connect", TcpStream::connect(&addr)).await.unwrap();
    let mut req = http::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req = req.header("host", addr.clone());
    }
    if let Some(token) = access.as_ref().and_then(|a| a.token.as_ref()) {
        if with_token
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        {
            req = req.header("authorization", format!("Bearer {token}"));
        }
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).unwrap();
    let resp = if https {
        let cfg =
            agc_sandbox::client::tls_config(access.as_ref().and_then(|a| a.ca_pem.as_deref()))
                .expect("the test registered this https server's CA");
        let name =
            tokio_rustls::rustls::pki_types::ServerName::try_from(uri.host().unwrap().to_string())
                .unwrap();
        let tls = within(
            "TLS handshake",
            tokio_rustls::TlsConnector::from(cfg).connect(name, stream),
        )
        .await
        .unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn);
        within("request", send.send_request(req)).await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        within("request", send.send_request(req)).await.unwrap()
    };
    resp
}

pub async fn get(url: &str) -> Resp {
    http("GET", url, "application/json", Bytes::new()).await
}

/// A PATCH of `patch`, serialized, as `content_type` (merge, JSON or strategic merge patch).
pub async fn patch_json(url: &str, content_type: &str, patch: &Value) -> Resp {
    http(
        "PATCH",
        url,
        content_type,
        serde_json::to_vec(patch).unwrap(),
    )
    .await
}

pub async fn post_json(url: &str, v: &Value) -> Resp {
    http(
        "POST",
        url,
        "application/json",
        serde_json::to_vec(v).unwrap(),
    )
    .await
}

/// The real binary running `up` on a free API port: killed (SIGKILL) when dropped, so no
/// sandbox outlives a failed test.
pub struct Binary {
    pub child: std::process::Child,
    /// The kubeconfig it wrote (its path is read from what it prints).
    pub kubeconfig: PathBuf,
    /// How to reach its API; registered for [`http_with`] and friends.
    pub access: agc_sandbox::client::Access,
}

impl Binary {
    /// Starts `agc-sandbox up --api-addr 127.0.0.1:0 --data-dir DIR` plus `extra` flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Binary {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(binary())
            .args(["up", "--api-addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let kubeconfig = loop {
            let line = lines
                .next()
                .expect("the binary exited before printing its kubeconfig")
                .expect("read its output");
            if let Some(p) = line.trim().strip_prefix("kubeconfig:") {
                break PathBuf::from(p.trim());
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let access = agc_sandbox::client::kubeconfig::read(&kubeconfig).expect("its kubeconfig");
        register(&access);
        Binary {
            child,
            kubeconfig,
            access,
        }
    }

    /// `kill -9`, and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Path of the built binary, for tests that drive it as a user would.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_agc-sandbox"))
}

/// cert-manager's Certificate CRD (a user's CRD, as fetched from upstream).
pub fn cert_manager_crd() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cert-manager.io_certificates.yaml")
        .display()
        .to_string()
}

/// The seed's sample manifests.
pub fn seed(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("manifests/examples")
        .join(name)
}
