//! The official Python and Node.js Kubernetes clients drive the real binary through the
//! kubeconfig `up` writes, unchanged (HTTPS, the sandbox's CA, the bearer token).
//!
//! The clients are installed on first use into `target/client-deps` from PyPI and npm (the
//! `kubernetes` package and `@kubernetes/client-node` 1.x, the line that runs on this
//! machine's Node 20), so `cargo test` works on a fresh machine; the test fails, not skips,
//! when they cannot be installed.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use support::Binary;

fn deps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/client-deps")
}

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs `cmd`, panicking with its output unless it succeeds within `limit`.
fn run(mut cmd: Command, what: &str, limit: Duration) -> String {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: failed to start: {e}"));
    let id = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.unwrap_or_else(|e| panic!("{what}: {e}")),
        Err(_) => {
            let _ = Command::new("kill").arg("-9").arg(id.to_string()).status();
            panic!("{what}: hung for {limit:?}");
        }
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// `pip install --target` once; the returned folder goes on PYTHONPATH.
fn python_deps() -> PathBuf {
    let dir = deps_dir().join("python");
    if !dir.join("kubernetes").exists() {
        let mut pip = Command::new("python3");
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&dir)
        .arg("kubernetes");
        run(pip, "pip install kubernetes", Duration::from_secs(300));
    }
    dir
}

/// `npm install` once; the returned folder holds node_modules.
fn node_deps() -> PathBuf {
    let dir = deps_dir().join("node");
    if !dir.join("node_modules/@kubernetes/client-node").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let mut npm = Command::new("npm");
        npm.args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("@kubernetes/client-node@1");
        run(
            npm,
            "npm install @kubernetes/client-node@1",
            Duration::from_secs(300),
        );
    }
    dir
}

#[test]
fn python_and_node_clients_work_with_the_written_kubeconfig() {
    let py = python_deps();
    let node = node_deps();
    let dir = tempfile::tempdir().unwrap();
    let up = Binary::start(dir.path(), &["--port-offset", "24000"]);
    let kubeconfig = up.kubeconfig.clone();

    let mut cmd = Command::new("python3");
    cmd.arg(scripts().join("python_client.py"))
        .arg(&kubeconfig)
        .env("PYTHONPATH", &py);
    let out = run(cmd, "the Python client", Duration::from_secs(60));
    assert!(out.contains("python client ok"), "{out}");

    // Node resolves packages from the script's folder upwards: run a copy next to node_modules.
    let script = node.join("node_client.mjs");
    std::fs::copy(scripts().join("node_client.mjs"), &script).unwrap();
    let mut cmd = Command::new("node");
    cmd.arg(&script).arg(&kubeconfig);
    let out = run(cmd, "the Node.js client", Duration::from_secs(60));
    assert!(out.contains("node client ok"), "{out}");
    drop(up);
}
