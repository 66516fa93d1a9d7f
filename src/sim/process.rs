//! User commands as pod containers (`agc-sandbox.dev/command`), and the HTTP probe helper.
//!
//! A command runs under `sh -c` with `PORT`, `POD_NAME`, `POD_IP` and `NAMESPACE` set (plus the
//! container's env); its output is what `kubectl logs` shows. It counts as started once its
//! port accepts connections. A command that exits is restarted with a doubling back-off
//! (1 s up to 30 s: shorter than the kubelet's 10 s–5 min, because this is a development tool),
//! reported as CrashLoopBackOff with a growing restartCount.

use super::logs::LogBook;
use super::signal::Signal;
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
            let mut command = tokio::process::Command::new("sh");
            command
                .arg("-c")
                .arg(&cmd)
                .envs(&env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            lifeline::attach(&mut command);
            let child = command.spawn();
            // Stopping the pod (this task aborted) kills the command's whole process group.
            let _group = child
                .as_ref()
                .ok()
                .and_then(|c| c.id())
                .map(lifeline::GroupGuard);
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

/// User commands die with the sandbox, however it ends (issue: after `kill -9` of `up` they
/// kept running and held their pods' ports).
///
/// Each command runs in a process group of its own, so stopping a pod kills everything it
/// started ([`GroupGuard`]). For the sandbox dying without cleanup, each command's group holds
/// a watchdog forked before the `exec`: it blocks reading a pipe whose write end only the
/// sandbox holds, and when the kernel closes that end (the sandbox is gone, even by SIGKILL)
/// it kills the group. The watchdog also dies with the command (`PR_SET_PDEATHSIG`), so
/// restarts leave none behind.
mod lifeline {
    use std::sync::OnceLock;

    /// The pipe (read end, write end), both close-on-exec; the write end is never used.
    fn pipe() -> Option<(i32, i32)> {
        static PIPE: OnceLock<Option<(i32, i32)>> = OnceLock::new();
        *PIPE.get_or_init(|| {
            let mut fds = [0i32; 2];
            // SAFETY: pipe2 writes two descriptors into the array it is given.
            let ok = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0;
            ok.then_some((fds[0], fds[1]))
        })
    }

    /// Sets up the group and the watchdog in the child before it execs.
    pub fn attach(command: &mut tokio::process::Command) {
        let Some((read_fd, _write_fd)) = pipe() else {
            return;
        };
        // The watchdog is `sh` reading the pipe on stdin: `read` returns at EOF, and `kill 0`
        // signals its own process group, the command's. Built here, before the fork: the
        // child may not allocate.
        let (Ok(path), Ok(arg0), Ok(arg1), Ok(arg2)) = (
            std::ffi::CString::new("/bin/sh"),
            // No "agc-sandbox" in its name: `pkill -f agc-sandbox` must not take it along.
            std::ffi::CString::new("pod-lifeline"),
            std::ffi::CString::new("-c"),
            std::ffi::CString::new("read _; kill -9 0"),
        ) else {
            return;
        };
        // SAFETY: the closure runs in the forked child and calls only async-signal-safe
        // functions (setpgid, getpid, fork, dup2, close, prctl, getppid, execv, _exit).
        unsafe {
            command.pre_exec(move || {
                libc::setpgid(0, 0);
                let group = libc::getpid();
                if libc::fork() == 0 {
                    // The watchdog: never returns into the exec path, and keeps only the read
                    // end (as stdin): holding anything else (spawn's error pipe, the command's
                    // output pipes, the write end) would keep those open.
                    libc::dup2(read_fd, 0);
                    close_all_but(0);
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != group {
                        libc::_exit(0);
                    }
                    let argv = [
                        arg0.as_ptr(),
                        arg1.as_ptr(),
                        arg2.as_ptr(),
                        std::ptr::null(),
                    ];
                    libc::execv(path.as_ptr(), argv.as_ptr());
                    libc::_exit(0);
                }
                // No death signal for the command itself: it must outlive the sandbox until
                // the watchdog kills the group (a command killed first would take the
                // watchdog with it, and its children would survive).
                Ok(())
            });
        }
    }

    /// Closes every descriptor but `keep` (async-signal-safe: close_range, else close).
    unsafe fn close_all_but(keep: i32) {
        let upto = u32::MAX;
        let keep_u = keep as u32;
        let ok_low =
            keep_u == 0 || libc::syscall(libc::SYS_close_range, 0u32, keep_u - 1, 0u32) == 0;
        let ok_high = libc::syscall(libc::SYS_close_range, keep_u + 1, upto, 0u32) == 0;
        if !(ok_low && ok_high) {
            for fd in 0..65_536 {
                if fd != keep {
                    libc::close(fd);
                }
            }
        }
    }

    /// Kills a command's process group when dropped.
    pub struct GroupGuard(pub u32);

    impl Drop for GroupGuard {
        fn drop(&mut self) {
            if let Ok(pgid) = i32::try_from(self.0) {
                if pgid > 1 {
                    // SAFETY: kill only sends a signal; the group is the command's own.
                    unsafe {
                        libc::kill(-pgid, libc::SIGKILL);
                    }
                }
            }
        }
    }
}
