//! Helpers shared by the benchmark examples: start the release binary, talk to its API, read
//! its resident memory.
#![allow(dead_code)] // each example uses a subset

use agc_sandbox::client::Access;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tokio_rustls::rustls;

/// `target/release/agc-sandbox`, next to the running example.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/release/examples/<name> -> target/release/agc-sandbox
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("agc-sandbox")
}

/// Starts `agc-sandbox up` on a free API port in `dir` (plus `extra` flags); returns the child
/// and how to reach its API (the kubeconfig it wrote: HTTPS, CA, token).
pub fn start_sandbox(dir: &Path, extra: &[&str]) -> (Child, Access) {
    let mut child = Command::new(binary())
        .args([
            "up",
            "--log-level",
            "warn",
            "--api-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run target/release/agc-sandbox (cargo build --release first)");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let kubeconfig = loop {
        let line = lines.next().expect("sandbox exited").expect("read");
        if let Some(u) = line.trim().strip_prefix("kubeconfig:") {
            break PathBuf::from(u.trim());
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let access = agc_sandbox::client::kubeconfig::read(&kubeconfig).expect("kubeconfig");
    (child, access)
}

/// A keep-alive HTTP/1.1 connection to the API (TLS when the server is https).
pub async fn connect(access: &Access) -> SendRequest<Full<Bytes>> {
    let addr = access
        .server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_string();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    if access.server.starts_with("https://") {
        let cfg = agc_sandbox::client::tls_config(access.ca_pem.as_deref()).expect("tls");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, stream)
            .await
            .expect("tls handshake");
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        send
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        send
    }
}

/// A request to the API carrying its bearer token.
pub fn request(
    access: &Access,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> http::Request<Full<Bytes>> {
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json");
    if let Some(t) = &access.token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Full::new(Bytes::from(body))).expect("request")
}

/// One JSON request on a fresh connection (`Value::Null`: no body).
pub async fn api(
    access: &Access,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut send = connect(access).await;
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    let resp = send
        .send_request(request(access, method, path, body))
        .await
        .expect("send");
    let code = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (code, serde_json::from_slice(&bytes).unwrap_or_default())
}

/// Resident memory of a process, in MB.
pub fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
