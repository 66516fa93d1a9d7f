//! The kubelet simulator: runs each Pod as real listeners on its own loopback address.
//!
//! A Pod's containers play their image's built-in app ([`super::apps`]) or, with the pod
//! annotation `agc-sandbox.dev/command`, a local command per replica. Readiness and liveness
//! probes (httpGet, tcpSocket) run against the pod's address; the `agc-sandbox.dev/fault`
//! annotation injects faults. Everything the kubelet learns comes back to the simulator loop as
//! a [`Signal`](super::signal::Signal), and the loop writes Pod status: this module never writes the store itself
//! except Events.

use super::apps::{self, AppContext, AppKind, Fault};
use super::logs::LogBook;
use super::signal::Signal;
use crate::events::{self, EventKind, Involved};
use crate::meta;
use crate::resources::kinds;
use crate::store::Store;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Pod annotation that runs a local command instead of the image's app.
pub const COMMAND_ANNOTATION: &str = "agc-sandbox.dev/command";
/// Pod annotation for fault injection: `unhealthy`, `down`, `slow:500ms`.
pub const FAULT_ANNOTATION: &str = "agc-sandbox.dev/fault";
/// Pod condition saying that the image could not run and what plays it instead.
pub const SIMULATED_CONDITION: &str = "agc-sandbox.dev/Simulated";

/// How a container is played.
#[derive(Debug, Clone, PartialEq)]
enum Runner {
    App(AppKind),
    Command(String),
}

/// One container's live state.
#[derive(Debug)]
struct Container {
    name: String,
    image: String,
    runner: Runner,
    ports: Vec<u16>,
    started_at: String,
    running: bool,
    /// Readiness from the probe (`None`: no readiness probe; ready once running).
    probe_ready: Option<bool>,
    restart_count: u32,
    waiting: Option<(String, String)>,
    last_terminated: Option<Value>,
    process_ready: bool,
}

/// A listener serving one port of one container.
struct Server {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
    }
}

/// A Pod the kubelet runs.
pub struct RunningPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ip: Ipv4Addr,
    started_at: String,
    containers: Vec<Container>,
    servers: Vec<Server>,
    tasks: Vec<JoinHandle<()>>,
    fault: watch::Sender<Fault>,
    fault_value: String,
    down: bool,
    simulated: Option<String>,
    ctx: Arc<AppContext>,
    /// Condition → (status, lastTransitionTime), so unchanged status writes are no-ops.
    transitions: BTreeMap<&'static str, (bool, String)>,
    /// `--shared-pod-ip`: listeners bind allocated ports on 127.0.0.1 instead of their own.
    shared: bool,
    /// Container port → the port it really listens on (only with `shared`).
    port_map: BTreeMap<u16, u16>,
}

impl Drop for RunningPod {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Resolves a container's env: literal values and the downward API fields the samples use.
fn env_of(container: &Value, pod: &Value, ip: Ipv4Addr) -> HashMap<String, String> {
    let mut env = HashMap::new();
    for e in container["env"].as_array().into_iter().flatten() {
        let Some(name) = e["name"].as_str() else {
            continue;
        };
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if let Some(path) = e
            .pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
        {
            match path {
                "metadata.name" => meta::name(pod).to_string(),
                "metadata.namespace" => meta::namespace(pod).to_string(),
                "metadata.uid" => meta::uid(pod).to_string(),
                "status.podIP" => ip.to_string(),
                "status.hostIP" => "127.0.0.1".to_string(),
                "spec.nodeName" => super::workloads::NODE_NAME.to_string(),
                "spec.serviceAccountName" => pod
                    .pointer("/spec/serviceAccountName")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
                    .to_string(),
                other => {
                    if let Some(key) = other
                        .strip_prefix("metadata.labels['")
                        .and_then(|k| k.strip_suffix("']"))
                    {
                        meta::label(pod, key).unwrap_or("").to_string()
                    } else {
                        String::new()
                    }
                }
            }
        } else {
            String::new()
        };
        env.insert(name.to_string(), value);
    }
    env
}

fn declared_ports(container: &Value) -> Vec<u16> {
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["containerPort"].as_u64())
        .filter_map(|p| u16::try_from(p).ok())
        .collect()
}

/// The ports each container listens on. The real sample images listen on fixed ports whatever
/// the manifest declares (echo-basic: `HTTP_PORT` or 3000; the WebSocket backend: 8080), so do
/// these; the generic app and commands serve what the manifest declares plus the target ports
/// of the Services that select the pod.
fn plan_ports(
    containers: &[Value],
    runners: &[Runner],
    envs: &[HashMap<String, String>],
    service_ports: &[i64],
) -> Vec<Vec<u16>> {
    let mut plan: Vec<Vec<u16>> = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let ports = match &runners[i] {
            Runner::App(AppKind::EchoBasic) => {
                vec![envs[i]
                    .get("HTTP_PORT")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(3000)]
            }
            Runner::App(AppKind::WebsocketTestBackend) => vec![8080],
            Runner::App(AppKind::GenericEcho) | Runner::Command(_) => declared_ports(c),
        };
        plan.push(ports);
    }
    // Service target ports nobody declared go to the first generic container (or command).
    let taken: Vec<u16> = plan.iter().flatten().copied().collect();
    if let Some(first) = runners
        .iter()
        .position(|r| matches!(r, Runner::App(AppKind::GenericEcho) | Runner::Command(_)))
    {
        for p in service_ports.iter().filter_map(|p| u16::try_from(*p).ok()) {
            if !taken.contains(&p) && !plan[first].contains(&p) {
                plan[first].push(p);
            }
        }
        if plan[first].is_empty() {
            plan[first].push(8080);
        }
    }
    plan
}

/// The ports a Pod will listen on (to pick an address where they are free).
pub fn planned_ports(pod: &Value, service_ports: &[i64]) -> Vec<u16> {
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let command = meta::annotation(pod, COMMAND_ANNOTATION).is_some();
    let runners: Vec<Runner> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if command && i == 0 {
                Runner::Command(String::new())
            } else {
                Runner::App(AppKind::for_image(c["image"].as_str().unwrap_or("")))
            }
        })
        .collect();
    let envs: Vec<HashMap<String, String>> = containers
        .iter()
        .map(|c| env_of(c, pod, Ipv4Addr::LOCALHOST))
        .collect();
    plan_ports(&containers, &runners, &envs, service_ports)
        .into_iter()
        .flatten()
        .collect()
}

/// Whether every port is free on `ip` (another sandbox or program may hold some).
pub fn ports_free(ip: Ipv4Addr, ports: &[u16]) -> bool {
    ports
        .iter()
        .all(|p| std::net::TcpListener::bind((ip, *p)).is_ok())
}

/// Starts a Pod: binds its listeners, starts its apps, commands and probes. With `shared`, the
/// pod runs on 127.0.0.1 and every port is allocated (see [`RunningPod::ports_annotation`]).
#[allow(clippy::too_many_arguments)]
pub fn start(
    store: &Store,
    pod: &Value,
    ip: Ipv4Addr,
    shared: bool,
    service_ports: &[i64],
    logs: &Arc<LogBook>,
    signals: &mpsc::UnboundedSender<Signal>,
) -> RunningPod {
    let uid = meta::uid(pod).to_string();
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let command = meta::annotation(pod, COMMAND_ANNOTATION).map(str::to_string);
    let runners: Vec<Runner> = containers
        .iter()
        .enumerate()
        .map(|(i, c)| match (&command, i) {
            (Some(cmd), 0) => Runner::Command(cmd.clone()),
            _ => Runner::App(AppKind::for_image(c["image"].as_str().unwrap_or(""))),
        })
        .collect();
    let envs: Vec<HashMap<String, String>> =
        containers.iter().map(|c| env_of(c, pod, ip)).collect();
    let plan = plan_ports(&containers, &runners, &envs, service_ports);
    let env0 = envs.first().cloned().unwrap_or_default();
    let ctx = Arc::new(AppContext {
        pod: env0.get("POD_NAME").cloned().unwrap_or_default(),
        namespace: env0.get("NAMESPACE").cloned().unwrap_or_default(),
        service: env0.get("SERVICE_NAME").cloned().unwrap_or_default(),
        ingress: env0.get("INGRESS_NAME").cloned().unwrap_or_default(),
        log: None,
    });
    let now = meta::now_rfc3339();
    let (fault_tx, _) = watch::channel(Fault::None);
    let mut rp = RunningPod {
        namespace: meta::namespace(pod).to_string(),
        name: meta::name(pod).to_string(),
        uid: uid.clone(),
        ip,
        started_at: now.clone(),
        containers: Vec::new(),
        servers: Vec::new(),
        tasks: Vec::new(),
        fault: fault_tx,
        fault_value: String::new(),
        down: false,
        simulated: None,
        ctx,
        transitions: BTreeMap::new(),
        shared,
        port_map: BTreeMap::new(),
    };
    let mut generic = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or("").to_string();
        let image = c["image"].as_str().unwrap_or("").to_string();
        if runners[i] == Runner::App(AppKind::GenericEcho) {
            generic.push(format!(
                "{image} (ports {})",
                plan[i]
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        rp.containers.push(Container {
            name,
            image,
            runner: runners[i].clone(),
            ports: plan[i].clone(),
            started_at: now.clone(),
            running: false,
            probe_ready: c.get("readinessProbe").map(|_| false),
            restart_count: 0,
            waiting: None,
            last_terminated: None,
            process_ready: false,
        });
    }
    if !generic.is_empty() {
        rp.simulated = Some(format!(
            "these images cannot run in the sandbox, so the generic echo app answers on their ports instead: {}",
            generic.join("; ")
        ));
    }
    let (ns, name) = (rp.namespace.clone(), rp.name.clone());
    let on = Involved {
        res: kinds::pods(),
        namespace: &ns,
        name: &name,
        uid: &uid,
    };
    events::record(
        store,
        &on,
        EventKind::Normal,
        "Scheduled",
        &format!(
            "Successfully assigned {}/{} to {}",
            rp.namespace,
            rp.name,
            super::workloads::NODE_NAME
        ),
        "default-scheduler",
    );
    if let Some(msg) = &rp.simulated {
        events::record(store, &on, EventKind::Normal, "Simulated", msg, "kubelet");
    }
    for i in 0..rp.containers.len() {
        start_container(&mut rp, i, &envs[i], logs, signals);
        for (field, role) in [
            ("readinessProbe", ProbeRole::Readiness),
            ("livenessProbe", ProbeRole::Liveness),
        ] {
            if let Some(probe) = containers[i].get(field) {
                rp.tasks.push(spawn_probe(
                    probe.clone(),
                    &containers[i],
                    ip,
                    uid.clone(),
                    i,
                    role,
                    signals.clone(),
                ));
            }
        }
    }
    for c in rp.containers.iter().filter(|c| c.running) {
        events::record(
            store,
            &on,
            EventKind::Normal,
            "Started",
            &format!("Started container {}", c.name),
            "kubelet",
        );
    }
    for c in rp.containers.iter().filter_map(|c| c.waiting.as_ref()) {
        events::record(store, &on, EventKind::Warning, &c.0, &c.1, "kubelet");
    }
    rp
}

/// Binds and serves one container's ports (or starts its command).
fn start_container(
    rp: &mut RunningPod,
    i: usize,
    env: &HashMap<String, String>,
    logs: &Arc<LogBook>,
    signals: &mpsc::UnboundedSender<Signal>,
) {
    let key = format!("{}/{}", rp.namespace, rp.name);
    let container_name = rp.containers[i].name.clone();
    match rp.containers[i].runner.clone() {
        Runner::App(kind) => {
            let mut errors = Vec::new();
            for port in rp.containers[i].ports.clone() {
                let bound = if rp.shared {
                    bind(rp.ip, 0).and_then(|l| {
                        let actual = l.local_addr()?.port();
                        rp.port_map.insert(port, actual);
                        Ok(l)
                    })
                } else {
                    bind(rp.ip, port)
                };
                match bound {
                    Ok(listener) => {
                        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                        // The app prints to this container's log.
                        let (book, k, c) = (logs.clone(), key.clone(), container_name.clone());
                        let ctx = Arc::new(AppContext {
                            log: Some(apps::RequestLog(Arc::new(move |line: &str| {
                                book.append(&k, &c, line)
                            }))),
                            ..(*rp.ctx).clone()
                        });
                        let task = tokio::spawn(apps::serve(
                            listener,
                            kind,
                            ctx,
                            rp.fault.subscribe(),
                            async move {
                                let _ = stopped.await;
                            },
                        ));
                        rp.servers.push(Server {
                            port,
                            stop: Some(stop),
                            task,
                        });
                        logs.append(
                            &key,
                            &container_name,
                            &format!("{} listening on {}:{port}", app_label(kind), rp.ip),
                        );
                    }
                    Err(e) => errors.push(format!("port {port}: {e}")),
                }
            }
            let c = &mut rp.containers[i];
            if errors.is_empty() {
                c.running = true;
                c.waiting = None;
            } else {
                c.running = false;
                c.waiting = Some((
                    "PortConflict".into(),
                    format!("cannot listen on {}: {}; another process holds the address (stop it or change the containerPort)", rp.ip, errors.join(", ")),
                ));
            }
        }
        Runner::Command(cmd) => {
            let mut port = rp.containers[i].ports.first().copied().unwrap_or(8080);
            if rp.shared {
                // A free port for the command to listen on (it binds it itself, just after).
                if let Ok(free) =
                    std::net::TcpListener::bind((rp.ip, 0)).and_then(|l| l.local_addr())
                {
                    rp.port_map.insert(port, free.port());
                    port = free.port();
                }
            }
            let mut penv = env.clone();
            penv.insert("PORT".into(), port.to_string());
            penv.insert("POD_NAME".into(), rp.name.clone());
            penv.insert("POD_IP".into(), rp.ip.to_string());
            penv.insert("NAMESPACE".into(), rp.namespace.clone());
            let task = super::process::spawn(
                cmd,
                penv,
                key,
                container_name,
                rp.uid.clone(),
                i,
                SocketAddr::from((rp.ip, port)),
                logs.clone(),
                signals.clone(),
            );
            rp.tasks.push(task);
            rp.containers[i].running = true;
        }
    }
}

fn app_label(kind: AppKind) -> &'static str {
    match kind {
        AppKind::EchoBasic => "echo-basic: serving HTTP",
        AppKind::WebsocketTestBackend => {
            "websockets-test-backend: serving HTTP and WebSocket /chat"
        }
        AppKind::GenericEcho => "agc-sandbox generic echo: serving HTTP",
    }
}

/// Binds with SO_REUSEADDR so a pod restarted at the same address can rebind at once.
fn bind(ip: Ipv4Addr, port: u16) -> std::io::Result<tokio::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((ip, port)))?;
    socket.listen(1024)
}

impl RunningPod {
    /// With `--shared-pod-ip`: the `agc-sandbox.dev/ports` annotation value mapping each
    /// container port to the port it really listens on (`{"8080":41234}`).
    pub fn ports_annotation(&self) -> Option<String> {
        self.shared.then(|| {
            let m: serde_json::Map<String, Value> = self
                .port_map
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            Value::Object(m).to_string()
        })
    }

    /// Applies the fault annotation's value. Returns an error message for a bad value.
    pub fn set_fault(
        &mut self,
        value: &str,
        store: &Store,
        logs: &Arc<LogBook>,
        signals: &mpsc::UnboundedSender<Signal>,
    ) -> Option<String> {
        if value == self.fault_value {
            return None;
        }
        self.fault_value = value.to_string();
        let fault = match apps::parse_fault(value) {
            Ok(f) => f,
            Err(e) => return Some(e.to_string()),
        };
        let down = matches!(fault, Fault::Down);
        if down && !self.down {
            // Stop listening: new connections are refused, as when a process dies.
            self.servers.clear();
        } else if !down && self.down {
            self.restart_servers(store, logs, signals);
        }
        self.down = down;
        let _ = self.fault.send(if down { Fault::None } else { fault });
        None
    }

    /// Starts again the app containers whose listeners failed to bind; returns whether any did.
    pub fn retry_failed(
        &mut self,
        logs: &Arc<LogBook>,
        signals: &mpsc::UnboundedSender<Signal>,
    ) -> bool {
        if self.down {
            return false;
        }
        let failed: Vec<usize> = (0..self.containers.len())
            .filter(|i| {
                matches!(self.containers[*i].runner, Runner::App(_))
                    && self.containers[*i].waiting.is_some()
            })
            .collect();
        for i in &failed {
            // Drop the listeners that did bind, then bind all of the container's ports again.
            let ports = self.containers[*i].ports.clone();
            self.servers.retain(|s| !ports.contains(&s.port));
            start_container(self, *i, &HashMap::new(), logs, signals);
        }
        !failed.is_empty()
    }

    fn restart_servers(
        &mut self,
        _store: &Store,
        logs: &Arc<LogBook>,
        signals: &mpsc::UnboundedSender<Signal>,
    ) {
        self.servers.clear();
        for i in 0..self.containers.len() {
            if matches!(self.containers[i].runner, Runner::App(_)) {
                start_container(self, i, &HashMap::new(), logs, signals);
            }
        }
    }

    /// Handles a probe or process signal; returns an Event to record, if any.
    pub fn on_signal(
        &mut self,
        sig: &Signal,
        store: &Store,
        logs: &Arc<LogBook>,
        signals: &mpsc::UnboundedSender<Signal>,
    ) -> Option<(EventKind, String, String)> {
        match sig {
            Signal::Readiness {
                container, ready, ..
            } => {
                let c = self.containers.get_mut(*container)?;
                c.probe_ready = Some(*ready);
                None
            }
            Signal::LivenessFailed {
                container, reason, ..
            } => {
                let name = self.containers.get(*container)?.name.clone();
                let c = &mut self.containers[*container];
                c.restart_count += 1;
                c.last_terminated = Some(
                    json!({"terminated": {"exitCode": 137, "reason": "Error", "startedAt": c.started_at, "finishedAt": meta::now_rfc3339()}}),
                );
                c.started_at = meta::now_rfc3339();
                if matches!(c.runner, Runner::App(_)) && !self.down {
                    self.restart_servers(store, logs, signals);
                }
                Some((
                    EventKind::Warning,
                    "Unhealthy".into(),
                    format!("Liveness probe failed: {reason}; container {name} will be restarted"),
                ))
            }
            Signal::Started { container, .. } => {
                let c = self.containers.get_mut(*container)?;
                c.waiting = None;
                c.running = true;
                c.process_ready = true;
                c.started_at = meta::now_rfc3339();
                None
            }
            Signal::Exited {
                container, code, ..
            } => {
                let c = self.containers.get_mut(*container)?;
                c.restart_count += 1;
                c.running = false;
                c.process_ready = false;
                c.last_terminated = Some(
                    json!({"terminated": {"exitCode": code.unwrap_or(-1), "reason": if *code == Some(0) {"Completed"} else {"Error"}, "startedAt": c.started_at, "finishedAt": meta::now_rfc3339()}}),
                );
                c.waiting = Some((
                    "CrashLoopBackOff".into(),
                    format!(
                        "back-off restarting failed container {} in pod {}",
                        c.name, self.name
                    ),
                ));
                Some((
                    EventKind::Warning,
                    "BackOff".into(),
                    format!(
                        "Back-off restarting failed container {} (exit code {})",
                        c.name,
                        code.map_or("unknown".into(), |c| c.to_string())
                    ),
                ))
            }
        }
    }

    fn container_ready(&self, c: &Container) -> bool {
        let running = c.running && c.waiting.is_none();
        let process_ok = !matches!(c.runner, Runner::Command(_)) || c.process_ready;
        // `down` stops listening but, as with a real process, the kubelet only notices through
        // a probe: without one the pod stays Ready and AGC's health checker is what sees it.
        running && process_ok && c.probe_ready.unwrap_or(true)
    }

    fn transition(&mut self, cond: &'static str, status: bool) -> String {
        let now = meta::now_rfc3339();
        match self.transitions.get(cond) {
            Some((s, t)) if *s == status => t.clone(),
            _ => {
                self.transitions.insert(cond, (status, now.clone()));
                now
            }
        }
    }

    /// The Pod status to write (byte-identical when nothing changed).
    pub fn status(&mut self, pod: &Value) -> Value {
        let unready: Vec<String> = self
            .containers
            .iter()
            .filter(|c| !self.container_ready(c))
            .map(|c| c.name.clone())
            .collect();
        let ready = unready.is_empty();
        let started = self.started_at.clone();
        let ready_time = self.transition("Ready", ready);
        let mut conditions = vec![
            json!({"type": "PodReadyToStartContainers", "status": "True", "lastProbeTime": null, "lastTransitionTime": started}),
            json!({"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": started}),
        ];
        let mut ready_cond = json!({"type": "Ready", "status": if ready {"True"} else {"False"}, "lastProbeTime": null, "lastTransitionTime": ready_time});
        let mut cr_cond = json!({"type": "ContainersReady", "status": if ready {"True"} else {"False"}, "lastProbeTime": null, "lastTransitionTime": ready_time});
        if !ready {
            let msg = format!("containers with unready status: [{}]", unready.join(" "));
            ready_cond["reason"] = json!("ContainersNotReady");
            ready_cond["message"] = json!(msg);
            cr_cond["reason"] = json!("ContainersNotReady");
            cr_cond["message"] = json!(msg);
        }
        conditions.push(ready_cond);
        conditions.push(cr_cond);
        conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": started}));
        if let Some(msg) = &self.simulated {
            conditions.push(json!({"type": SIMULATED_CONDITION, "status": "True", "lastProbeTime": null, "lastTransitionTime": started, "reason": "GenericEcho", "message": msg}));
        }
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                let state = match &c.waiting {
                    Some((reason, message)) => {
                        json!({"waiting": {"reason": reason, "message": message}})
                    }
                    None if c.running => json!({"running": {"startedAt": c.started_at}}),
                    None => json!({"waiting": {"reason": "ContainerCreating"}}),
                };
                json!({
                    "name": c.name,
                    "state": state,
                    "lastState": c.last_terminated.clone().unwrap_or_else(|| json!({})),
                    "ready": self.container_ready(c),
                    "restartCount": c.restart_count,
                    "image": c.image,
                    "imageID": format!("agc-sandbox://{}", c.image),
                    "containerID": format!("agc-sandbox://{}/{}", self.uid, c.name),
                    "started": c.running,
                })
            })
            .collect();
        let has_requests = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.pointer("/resources/requests").is_some())
            });
        json!({
            "phase": "Running",
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": self.ip.to_string(),
            "podIPs": [{"ip": self.ip.to_string()}],
            "startTime": started,
            "containerStatuses": statuses,
            "qosClass": if has_requests {"Burstable"} else {"BestEffort"},
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ProbeRole {
    Readiness,
    Liveness,
}

/// Runs a readiness or liveness probe (httpGet or tcpSocket) against the pod's address with the
/// probe's timing (Kubernetes defaults: period 10 s, timeout 1 s, thresholds 1/3).
fn spawn_probe(
    probe: Value,
    container: &Value,
    ip: Ipv4Addr,
    uid: String,
    idx: usize,
    role: ProbeRole,
    signals: mpsc::UnboundedSender<Signal>,
) -> JoinHandle<()> {
    let secs = |k: &str, d: u64| probe.get(k).and_then(Value::as_u64).unwrap_or(d);
    let initial = Duration::from_secs(secs("initialDelaySeconds", 0));
    let period = Duration::from_secs(secs("periodSeconds", 10).max(1));
    let timeout = Duration::from_secs(secs("timeoutSeconds", 1).max(1));
    let success_threshold = secs("successThreshold", 1).max(1);
    let failure_threshold = secs("failureThreshold", 3).max(1);
    let port_of = |v: Option<&Value>| -> Option<u16> {
        let v = v?;
        super::endpoints::resolve_target_port(v, &json!({"spec": {"containers": [container]}}))
            .and_then(|p| u16::try_from(p).ok())
    };
    let http = probe.get("httpGet").map(|h| {
        (
            port_of(h.get("port")),
            h.get("path")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string(),
            h.get("host").and_then(Value::as_str).map(str::to_string),
        )
    });
    let tcp = probe.get("tcpSocket").map(|t| port_of(t.get("port")));
    tokio::spawn(async move {
        tokio::time::sleep(initial).await;
        let (mut ok_run, mut fail_run) = (0u64, 0u64);
        let mut last: Option<bool> = None;
        loop {
            let result: Result<(), String> = match (&http, &tcp) {
                (Some((Some(port), path, host)), _) => {
                    super::process::http_probe(
                        SocketAddr::from((ip, *port)),
                        path,
                        host.as_deref(),
                        timeout,
                    )
                    .await
                }
                (None, Some(Some(port))) => tokio::time::timeout(
                    timeout,
                    tokio::net::TcpStream::connect(SocketAddr::from((ip, *port))),
                )
                .await
                .map_err(|_| "timeout".to_string())
                .and_then(|r| r.map(drop).map_err(|e| e.to_string())),
                (Some((None, _, _)), _) | (None, Some(None)) => {
                    Err("the probe's port does not resolve to a container port".into())
                }
                // exec and grpc probes cannot run here: treat them as passing.
                _ => Ok(()),
            };
            match &result {
                Ok(()) => {
                    ok_run += 1;
                    fail_run = 0;
                }
                Err(_) => {
                    fail_run += 1;
                    ok_run = 0;
                }
            }
            let signal = match role {
                ProbeRole::Readiness => {
                    let state = if ok_run >= success_threshold {
                        Some(true)
                    } else if fail_run >= failure_threshold || last.is_none() && fail_run > 0 {
                        Some(false)
                    } else {
                        last
                    };
                    let changed = state != last;
                    last = state;
                    state.filter(|_| changed).map(|ready| Signal::Readiness {
                        uid: uid.clone(),
                        container: idx,
                        ready,
                    })
                }
                ProbeRole::Liveness if fail_run >= failure_threshold => {
                    fail_run = 0;
                    Some(Signal::LivenessFailed {
                        uid: uid.clone(),
                        container: idx,
                        reason: result.err().unwrap_or_default(),
                    })
                }
                ProbeRole::Liveness => None,
            };
            if signal.is_some_and(|s| signals.send(s).is_err()) {
                return;
            }
            tokio::time::sleep(period).await;
        }
    })
}
