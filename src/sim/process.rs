//! User commands as pod containers (`agc-sandbox.dev/command`), and the HTTP probe helper.
//!
//! A command runs under `sh -c` with `PORT`, `POD_NAME`, `POD_IP` and `NAMESPACE` set (plus the
//! container's env); its output is what `kubectl logs` shows. It counts as started once its
//! port accepts connections. A command that exits is restarted with a doubling back-off
//! (1 s up to 30 s: shorter than the kubelet's 10 s–5 min, because this is a development tool),
//! reported as CrashLoopBackOff with a growing restartCount.

use super::kubelet::Signal;
use super::logs::LogBook;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Runs `cmd` for one container until the task is aborted (the child is killed with it).
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    cmd: String,
    env: HashMap<String, String>,
    pod_key: String,
    container: String,
    uid: String,
    idx: usize,
    addr: SocketAddr,
    logs: Arc<LogBook>,
    signals: mpsc::UnboundedSender<Signal>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            let began = Instant::now();
            let child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .envs(&env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn();
            let code = match child {
                Err(e) => {
                    logs.append(
                        &pod_key,
                        &container,
                        &format!("agc-sandbox: failed to start `{cmd}`: {e}"),
                    );
                    None
                }
                Ok(mut child) => {
                    for out in [
                        child
                            .stdout
                            .take()
                            .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                        child.stderr.take().map(|s| Box::new(s) as _),
                    ]
                    .into_iter()
                    .flatten()
                    {
                        let (logs, key, c) = (logs.clone(), pod_key.clone(), container.clone());
                        tokio::spawn(async move {
                            let mut lines = BufReader::new(out).lines();
                            while let Ok(Some(line)) = lines.next_line().await {
                                logs.append(&key, &c, &line);
                            }
                        });
                    }
                    let started = wait_listening(addr);
                    tokio::pin!(started);
                    let mut reported = false;
                    let status = loop {
                        tokio::select! {
                            s = child.wait() => break s,
                            _ = &mut started, if !reported => {
                                reported = true;
                                let _ = signals.send(Signal::Started { uid: uid.clone(), container: idx });
                            }
                        }
                    };
                    match status {
                        Ok(s) => {
                            logs.append(
                                &pod_key,
                                &container,
                                &format!("agc-sandbox: `{cmd}` exited with {s}"),
                            );
                            s.code()
                        }
                        Err(e) => {
                            logs.append(
                                &pod_key,
                                &container,
                                &format!("agc-sandbox: waiting for `{cmd}` failed: {e}"),
                            );
                            None
                        }
                    }
                }
            };
            if signals
                .send(Signal::Exited {
                    uid: uid.clone(),
                    container: idx,
                    code,
                })
                .is_err()
            {
                return;
            }
            if began.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_secs(1);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    })
}

/// Resolves once something accepts connections on `addr`.
async fn wait_listening(addr: SocketAddr) {
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP GET probe as the kubelet sends it: success is a status from 200 to 399.
pub async fn http_probe(
    addr: SocketAddr,
    path: &str,
    host: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(
                http::header::HOST,
                host.map(str::to_string).unwrap_or_else(|| addr.to_string()),
            )
            .header(http::header::USER_AGENT, "kube-probe/1.32")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| format!("Get \"http://{addr}{path}\": context deadline exceeded"))?
}
