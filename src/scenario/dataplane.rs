//! Data-plane steps: http, traffic and websocket through a Gateway.

use super::model::{GatewaySpec, HttpExpect, HttpSpec, TrafficSpec, WsSpec};
use super::parse::duration;
use super::shared::{Ctx, StepResult, DEFAULT_RETRY, POLL};
use super::{net, path, tls};
use crate::client::ObjRef;
use crate::meta;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// Resolves a Gateway listener to a socket: `status.addresses[0].value` and the listener port
/// plus the port offset.
pub(crate) async fn gateway_target(ctx: &Ctx<'_>, g: &GatewaySpec) -> Result<net::Target, String> {
    let r = ObjRef {
        res: crate::resources::kinds::gateways(),
        namespace: g.namespace.clone().unwrap_or_else(|| ctx.namespace.clone()),
        name: g.gateway.clone(),
    };
    let gw = ctx
        .client
        .get(&r)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("gateway {}/{} not found", r.namespace, r.name))?;
    let addr = gw
        .pointer("/status/addresses/0/value")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            format!(
                "gateway {}/{} has no status.addresses yet",
                r.namespace, r.name
            )
        })?;
    let listeners = gw
        .pointer("/spec/listeners")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let want_https = g.https;
    let l = listeners
        .iter()
        .find(|l| match (&g.listener, g.port, want_https) {
            (Some(n), _, _) => l["name"] == *n,
            (None, Some(p), _) => l["port"].as_u64() == Some(u64::from(p)),
            (None, None, Some(h)) => (l["protocol"] == "HTTPS") == h,
            (None, None, None) => true,
        })
        .ok_or_else(|| {
            format!(
                "gateway {}/{} has no listener {}",
                r.namespace,
                r.name,
                g.listener
                    .clone()
                    .or(g.port.map(|p| format!("on port {p}")))
                    .unwrap_or_else(|| "of that protocol".into())
            )
        })?;
    let port = l["port"].as_u64().unwrap_or(80) as u16;
    let https = want_https.unwrap_or(l["protocol"] == "HTTPS");
    let host = g
        .host
        .clone()
        .or_else(|| l["hostname"].as_str().map(str::to_string))
        .unwrap_or_else(|| addr.to_string());
    let tls = if https {
        Some(tls::client_config(g.insecure, &ctx.trusted)?)
    } else {
        None
    };
    let ip_port = if addr.contains(':') {
        format!("[{addr}]:{}", port + ctx.port_offset)
    } else {
        format!("{addr}:{}", port + ctx.port_offset)
    };
    Ok(net::Target {
        addr: ip_port,
        tls,
        host,
    })
}

pub(crate) fn retry_of(g: &GatewaySpec) -> Result<Duration, String> {
    g.retry
        .as_deref()
        .map(duration)
        .transpose()
        .map(|d| d.unwrap_or(DEFAULT_RETRY))
}

pub(crate) fn headers_of(g: &GatewaySpec) -> Vec<(String, String)> {
    g.headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `*` wildcards.
pub(crate) fn glob(pattern: &str, s: &str) -> bool {
    let re = format!(
        "^{}$",
        pattern
            .split('*')
            .map(regex::escape)
            .collect::<Vec<_>>()
            .join(".*")
    );
    regex::Regex::new(&re).is_ok_and(|r| r.is_match(s))
}

pub(crate) fn short(body: &str) -> String {
    let b = body.trim();
    if b.chars().count() > 200 {
        format!("{}…", b.chars().take(200).collect::<String>())
    } else {
        b.to_string()
    }
}

/// Checks a reply against `expect`; the error reads "expected status 200, got 503; body: ...".
pub(crate) fn check_reply(e: &HttpExpect, r: &net::Reply) -> Result<(), String> {
    let status = e.status.unwrap_or(200);
    if r.status != status {
        return Err(format!(
            "expected status {status}, got {}; body: {}",
            r.status,
            short(&r.body)
        ));
    }
    for (k, v) in &e.headers {
        match (v, r.header(k)) {
            (None, None) => {}
            (None, Some(got)) => return Err(format!("expected no {k} header, got {got:?}")),
            (Some(v), None) => return Err(format!("expected header {k}: {v:?}, got none")),
            (Some(v), Some(got)) if got != v => {
                return Err(format!("expected header {k}: {v:?}, got {got:?}"))
            }
            _ => {}
        }
    }
    if let Some(b) = &e.body {
        if r.body != *b {
            return Err(format!("expected body {b:?}, got {:?}", short(&r.body)));
        }
    }
    for part in e
        .body_contains
        .as_ref()
        .map(|c| c.list())
        .unwrap_or_default()
    {
        if !r.body.contains(&part) {
            return Err(format!(
                "expected the body to contain {part:?}; body: {}",
                short(&r.body)
            ));
        }
    }
    if e.json.is_some() || e.pod.is_some() || e.namespace.is_some() {
        let v: Value = serde_json::from_str(&r.body)
            .map_err(|_| format!("expected a JSON body, got {:?}", short(&r.body)))?;
        if let Some(j) = &e.json {
            path::subset(j, &v, "body")?;
        }
        if let Some(p) = &e.pod {
            let got = v["pod"].as_str().unwrap_or("");
            if !glob(p, got) {
                return Err(format!("expected pod {p}, got {got:?}"));
            }
        }
        if let Some(ns) = &e.namespace {
            let got = v["namespace"].as_str().unwrap_or("");
            if got != ns {
                return Err(format!("expected namespace {ns:?}, got {got:?}"));
            }
        }
    }
    Ok(())
}

pub(crate) async fn http(ctx: &mut Ctx<'_>, h: &HttpSpec) -> StepResult {
    let deadline = Instant::now() + retry_of(&h.gw)?;
    let headers = headers_of(&h.gw);
    loop {
        let outcome = match gateway_target(ctx, &h.gw).await {
            Ok(t) => {
                match net::request(&t, &h.method, &h.gw.path, &headers, h.body.as_deref()).await {
                    Ok(reply) => check_reply(&h.expect, &reply),
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// The Deployment of a pod name `<deployment>-<rs-hash>-<pod-hash>`.
pub(crate) fn backend_of(pod: &str) -> String {
    let parts: Vec<&str> = pod.rsplitn(3, '-').collect();
    if parts.len() == 3 {
        parts[2].to_string()
    } else {
        pod.to_string()
    }
}

pub(crate) async fn traffic(ctx: &mut Ctx<'_>, t: &TrafficSpec) -> StepResult {
    let want_status = t.status.unwrap_or(200);
    let headers = headers_of(&t.gw);
    // Wait for the route to serve, then count.
    let deadline = Instant::now() + retry_of(&t.gw)?;
    let target = loop {
        let attempt = match gateway_target(ctx, &t.gw).await {
            Ok(tg) => match net::request(&tg, &t.method, &t.gw.path, &headers, None).await {
                Ok(r) if r.status == want_status => Ok(tg),
                Ok(r) => Err(format!(
                    "expected status {want_status}, got {}; body: {}",
                    r.status,
                    short(&r.body)
                )),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match attempt {
            Ok(tg) => break tg,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    };
    let by_pod = t.by.as_deref() == Some("pod");
    let excluded = pods_of(ctx, &t.gw, t.exclude_selector.as_deref()).await?;
    let required = pods_of(ctx, &t.gw, t.require_selector.as_deref()).await?;
    let mut pod_counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..t.requests {
        let r = net::request(&target, &t.method, &t.gw.path, &headers, None).await?;
        if r.status != want_status {
            return Err(format!(
                "request {} of {}: expected status {want_status}, got {}; body: {}",
                i + 1,
                t.requests,
                r.status,
                short(&r.body)
            ));
        }
        let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
        let pod = v["pod"].as_str().unwrap_or("(no pod in the reply)");
        let key = if by_pod {
            pod.to_string()
        } else {
            backend_of(pod)
        };
        *counts.entry(key).or_default() += 1;
        *pod_counts.entry(pod.to_string()).or_default() += 1;
    }
    for p in &required {
        if !pod_counts.contains_key(p) {
            return Err(format!(
                "expected {p} (requireSelector) to answer some of {} requests, it answered none; split: {}",
                t.requests,
                pod_counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    for p in &excluded {
        if let Some(n) = pod_counts.get(p) {
            return Err(format!(
                "expected no request answered by {p} (excludeSelector), got {n} of {}",
                t.requests
            ));
        }
    }
    let n = t.requests.max(1) as f64;
    let share = |k: &str| counts.get(k).copied().unwrap_or(0) as f64 * 100.0 / n;
    let got = counts
        .iter()
        .map(|(k, c)| format!("{k} {:.0}% ({c})", *c as f64 * 100.0 / n))
        .collect::<Vec<_>>()
        .join(", ");
    for (k, want) in &t.expect {
        let s = share(k);
        if (s - want).abs() > t.tolerance {
            return Err(format!(
                "expected {k} {want}% ±{}, got {s:.0}% over {} requests; split: {got}",
                t.tolerance, t.requests
            ));
        }
    }
    for k in counts.keys() {
        if !t.expect.contains_key(k) && share(k) > t.tolerance {
            return Err(format!(
                "unexpected backend {k} took {:.0}% of {} requests; split: {got}",
                share(k),
                t.requests
            ));
        }
    }
    Ok(())
}

/// Names of the pods matching a selector in the Gateway's namespace (none without a selector).
pub(crate) async fn pods_of(
    ctx: &Ctx<'_>,
    g: &GatewaySpec,
    sel: Option<&str>,
) -> Result<Vec<String>, String> {
    let Some(sel) = sel else {
        return Ok(Vec::new());
    };
    let ns = g.namespace.clone().unwrap_or_else(|| ctx.namespace.clone());
    let pods = ctx
        .client
        .list(crate::resources::kinds::pods(), Some(&ns), Some(sel))
        .await
        .map_err(|e| e.to_string())?;
    if pods.is_empty() {
        return Err(format!("selector {sel:?} matched no pod in {ns}"));
    }
    Ok(pods.iter().map(|p| meta::name(p).to_string()).collect())
}

pub(crate) async fn exchange(ws: &mut net::Ws, w: &WsSpec) -> StepResult {
    use futures_util::{SinkExt, StreamExt};
    for m in w.send.as_ref().map(|s| s.list()).unwrap_or_default() {
        ws.send(Message::text(m.clone()))
            .await
            .map_err(|e| format!("sending {m:?} failed: {e}"))?;
    }
    for want in w.expect.as_ref().map(|s| s.list()).unwrap_or_default() {
        let got = loop {
            match tokio::time::timeout(net::REQUEST_TIMEOUT, ws.next()).await {
                Err(_) => {
                    return Err(format!(
                        "expected message {want:?}, got nothing within {:?}",
                        net::REQUEST_TIMEOUT
                    ))
                }
                Ok(None) => {
                    return Err(format!("expected message {want:?}, the connection closed"))
                }
                Ok(Some(Err(e))) => {
                    return Err(format!("expected message {want:?}, got error: {e}"))
                }
                Ok(Some(Ok(Message::Text(t)))) => break t.to_string(),
                Ok(Some(Ok(Message::Binary(b)))) => break String::from_utf8_lossy(&b).to_string(),
                Ok(Some(Ok(Message::Close(c)))) => {
                    return Err(format!(
                        "expected message {want:?}, the server closed the connection ({c:?})"
                    ))
                }
                Ok(Some(Ok(_))) => continue,
            }
        };
        if got != want {
            return Err(format!("expected message {want:?}, got {got:?}"));
        }
    }
    Ok(())
}

pub(crate) async fn websocket(ctx: &mut Ctx<'_>, w: &WsSpec) -> StepResult {
    if let Some(name) = &w.use_ {
        let mut ws = ctx.sockets.remove(name).ok_or_else(|| {
            format!("no open WebSocket named {name:?} (open one with `keep: {name}`)")
        })?;
        let r = exchange(&mut ws, w).await;
        if w.close || r.is_err() {
            let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
        } else {
            ctx.sockets.insert(name.clone(), ws);
        }
        return r;
    }
    let deadline = Instant::now() + retry_of(&w.gw)?;
    let headers = headers_of(&w.gw);
    loop {
        let attempt: Result<Option<net::Ws>, String> = async {
            let t = gateway_target(ctx, &w.gw).await?;
            match (
                net::websocket(&t, &w.gw.path, &headers).await,
                w.expect_status,
            ) {
                (Ok(_), Some(s)) => Err(format!(
                    "expected the upgrade to be refused with {s}, got 101"
                )),
                (Err((Some(reply), _)), Some(s)) if reply.status == s => Ok(None),
                (Err((_, e)), _) => Err(e),
                (Ok(mut ws), None) => {
                    exchange(&mut ws, w).await?;
                    Ok(Some(ws))
                }
            }
        }
        .await;
        match attempt {
            Ok(None) => return Ok(()),
            Ok(Some(mut ws)) => {
                match &w.keep {
                    Some(name) => {
                        ctx.sockets.insert(name.clone(), ws);
                    }
                    None => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
                    }
                }
                return Ok(());
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
