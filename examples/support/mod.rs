//! Helpers shared by the benchmark examples: start the release binary, talk to its API, read
//! its resident memory.
#![allow(dead_code)] // each example uses a subset

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

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
/// and its API address (`127.0.0.1:PORT`), read from what it prints.
pub fn start_sandbox(dir: &Path, extra: &[&str]) -> (Child, String) {
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
    let addr = loop {
        let line = lines.next().expect("sandbox exited").expect("read");
        if let Some(u) = line.trim().strip_prefix("API:") {
            break u.trim().trim_start_matches("http://").to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

/// One JSON request on a fresh connection (`Value::Null`: no body).
pub async fn api(
    addr: &str,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let body = if body.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(&body).expect("json")
    };
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "sandbox")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = send.send_request(req).await.expect("send");
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
