//! Memory of idle keep-alive client connections: starts `bench_gateway`
//! (built alongside this example) and a minimal backend on 127.0.0.1:9001,
//! opens N connections through the gateway that each make one request and
//! then stay open, and reports the gateway's resident-memory growth per
//! connection.
//!
//!     cargo build --release --examples
//!     target/release/examples/bench_keepalive [N]      # default 5000

use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const GATEWAY: &str = "127.20.0.1:18080";
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: http.contoso.com\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\nhello world\n";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(5000, |a| a.parse().expect("N: a number of connections"));
    let backend = TcpListener::bind("127.0.0.1:9001")
        .await
        .expect("port 9001 must be free");
    tokio::spawn(async move {
        while let Ok((s, _)) = backend.accept().await {
            tokio::spawn(serve_backend(s));
        }
    });
    assert!(
        TcpStream::connect(GATEWAY).await.is_err(),
        "something already listens on {GATEWAY}: stop it first"
    );
    let exe = std::env::current_exe()
        .expect("own path")
        .with_file_name("bench_gateway");
    let mut gateway = Command::new(&exe)
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (build it with --examples)", exe.display()));
    let pid = gateway.id();

    // Ready once a request gets the backend's answer (its probe passed).
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(mut s) = TcpStream::connect(GATEWAY).await {
            if one_request(&mut s).await {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gateway did not serve {GATEWAY} within 10 s");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let before = rss_kb(pid);
    let mut open = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(GATEWAY).await.expect("connect");
        assert!(one_request(&mut s).await, "request {i} failed");
        open.push(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = rss_kb(pid).saturating_sub(before) as f64;
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| {n} idle keep-alive client connections (one request each): extra resident memory | {:.1} MB ({:.1} KB per connection) |",
        grown / 1024.0,
        grown / n as f64
    );
    drop(open);
    let _ = gateway.kill();
    let _ = gateway.wait();
}

/// Sends one request on `s` and reads the whole answer.
async fn one_request(s: &mut TcpStream) -> bool {
    if s.write_all(REQUEST).await.is_err() {
        return false;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"hello world\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return false,
        }
    }
    got.starts_with(b"HTTP/1.1 200")
}

/// Answers every request head on the connection with a 12-byte body.
async fn serve_backend(mut s: TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
        while let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..i + 4);
            if s.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
    }
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
