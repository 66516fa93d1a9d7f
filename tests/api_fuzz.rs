//! Mutated requests at every API endpoint: whatever arrives, the API answers with a Status
//! (never a 5xx, never a dropped connection from a panic), and it keeps serving.
//!
//! A seeded generator (fastrand) mutates valid requests: methods, paths, query parameters
//! (selectors, dryRun, fieldValidation, propagationPolicy, watch), content types, and bodies
//! (fields dropped, retyped or renamed, truncated or random bytes, deep nesting, JSON patch
//! operations with arbitrary paths and values). The seed is printed, so a failure replays
//! with `API_FUZZ_SEED=N cargo test --test api_fuzz`; `API_FUZZ_CASES` sets the count.

mod support;

use agc_sandbox::resources::RESOURCES;
use serde_json::{json, Value};
use std::time::Duration;
use support::*;

/// Valid objects to start from, one per kind the sandbox serves (others get a bare object).
fn seed_object(kind: &str, api_version: &str, name: &str) -> Value {
    let spec = match kind {
        "Gateway" => json!({"gatewayClassName": "azure-alb-external",
            "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}),
        "HTTPRoute" | "GRPCRoute" => json!({"parentRefs": [{"name": "gw"}],
            "rules": [{"backendRefs": [{"name": "svc", "port": 80}]}]}),
        "Deployment" | "ReplicaSet" => json!({"replicas": 1,
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "a"}},
                "spec": {"containers": [{"name": "c", "image": "echo"}]}}}),
        "Pod" => json!({"containers": [{"name": "c", "image": "echo"}]}),
        "Service" => json!({"selector": {"app": "a"}, "ports": [{"port": 80, "targetPort": 8080}]}),
        "GatewayClass" => json!({"controllerName": "example.com/x"}),
        "ReferenceGrant" => json!({"from": [{"group": "gateway.networking.k8s.io",
            "kind": "HTTPRoute", "namespace": "default"}], "to": [{"group": "", "kind": "Service"}]}),
        "BackendLoadBalancingPolicy" => {
            json!({"targetRefs": [{"group": "", "kind": "Service", "name": "svc"}]})
        }
        _ => json!({"targetRef": {"group": "", "kind": "Service", "name": "svc"}}),
    };
    let mut obj = json!({"apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "a"}}});
    match kind {
        "ConfigMap" => obj["data"] = json!({"k": "v"}),
        "Secret" => obj["stringData"] = json!({"k": "v"}),
        "Namespace" => {
            obj["metadata"]
                .as_object_mut()
                .map(|m| m.remove("namespace"));
        }
        "Endpoints" => obj["subsets"] = json!([]),
        "EndpointSlice" => {
            obj["addressType"] = json!("IPv4");
            obj["endpoints"] = json!([]);
        }
        "Event" => obj["involvedObject"] = json!({"kind": "Pod", "name": "p"}),
        _ => obj["spec"] = spec,
    }
    obj
}

struct Gen(fastrand::Rng);

impl Gen {
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.0.usize(..xs.len())]
    }

    fn string(&mut self) -> String {
        let atoms = [
            "",
            "a",
            "!",
            "!!",
            ",",
            "=",
            "==",
            "!=",
            "a in (",
            "a notin ()",
            "a in (b,c)",
            "x=y=z",
            "(",
            ")",
            " ",
            "\u{0}",
            "%",
            "%ZZ",
            "é",
            "a,",
            "-",
            "a b",
            "metadata.name=x",
            "spec.foo=bar",
            "status.phase!=Running",
            "\\",
            "*",
            "..",
            "/",
            "999999999999999999999",
            "-1",
            "true",
            "null",
            "{}",
            "[]",
            "All",
            "all",
            "Strict",
            "Warn",
            "Ignore",
            "Orphan",
            "Foreground",
            "Background",
            "bogus",
        ];
        let n = self.0.usize(1..4);
        (0..n).map(|_| *self.pick(&atoms)).collect()
    }

    fn scalar(&mut self) -> Value {
        match self.0.u8(..9) {
            0 => Value::Null,
            1 => json!(self.0.bool()),
            2 => json!(self.0.i64(..)),
            3 => json!(f64::MAX),
            4 => json!(-0.5),
            5 => json!(self.string()),
            6 => json!([]),
            7 => json!({}),
            _ => json!("x".repeat(self.0.usize(..300))),
        }
    }

    /// A JSON pointer into `v` (often existing, sometimes not).
    fn pointer(&mut self, v: &Value) -> String {
        let mut path = String::new();
        let mut cur = v;
        loop {
            if self.0.u8(..4) == 0 {
                return path;
            }
            match cur {
                Value::Object(m) if !m.is_empty() => {
                    let keys: Vec<&String> = m.keys().collect();
                    let k = *self.pick(&keys);
                    path.push('/');
                    path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    cur = &m[k];
                }
                Value::Array(a) if !a.is_empty() => {
                    let i = self.0.usize(..a.len());
                    path.push_str(&format!("/{i}"));
                    cur = &a[i];
                }
                _ => {
                    let tail = ["/-", "/0", "/new", "/~2", "", "/metadata", "/999"];
                    let t: &&str = self.pick(&tail);
                    path.push_str(t);
                    return path;
                }
            }
        }
    }

    /// `v` with one random change.
    fn mutate(&mut self, mut v: Value) -> Value {
        let at = self.pointer(&v);
        match self.0.u8(..5) {
            0 => {
                if let Some((parent, last)) = at.rsplit_once('/') {
                    if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                        m.remove(last);
                    }
                }
            }
            1 => {
                let new = self.scalar();
                match v.pointer_mut(&at) {
                    Some(slot) => *slot = new,
                    None => v = new,
                }
            }
            2 => {
                let key = self.string();
                let new = self.scalar();
                if let Some(Value::Object(m)) = v.pointer_mut(&at) {
                    m.insert(key, new);
                }
            }
            3 => {
                if let Some(slot) = v.pointer_mut(&at) {
                    *slot = json!([slot.clone(), slot.clone()]);
                }
            }
            _ => {
                let mut deep = json!(1);
                for _ in 0..self.0.usize(..200) {
                    deep = json!({"a": [deep]});
                }
                if let Some(slot) = v.pointer_mut(&at) {
                    *slot = deep;
                }
            }
        }
        v
    }

    fn body(&mut self, base: &Value, patch_type: Option<&str>) -> Vec<u8> {
        let mut v = base.clone();
        for _ in 0..self.0.usize(..4) {
            v = self.mutate(v);
        }
        let mut bytes = match patch_type {
            Some("application/json-patch+json") => {
                let ops = ["add", "remove", "replace", "move", "copy", "test", "bogus"];
                let n = self.0.usize(..4);
                let list: Vec<Value> = (0..n)
                    .map(|_| {
                        let op = *self.pick(&ops);
                        let path = self.pointer(base);
                        json!({"op": op, "path": path, "from": self.pointer(base),
                               "value": if self.0.bool() { self.scalar() } else { v.clone() }})
                    })
                    .collect();
                serde_json::to_vec(&list).unwrap()
            }
            _ => serde_json::to_vec(&v).unwrap(),
        };
        match self.0.u8(..12) {
            0 => bytes.truncate(self.0.usize(..bytes.len().max(1))),
            1 => bytes = (0..self.0.usize(..64)).map(|_| self.0.u8(..)).collect(),
            2 => bytes = serde_yaml::to_string(&v).unwrap_or_default().into_bytes(),
            3 => bytes = b"- a\n- : b\n  c: [".to_vec(),
            4 => bytes.clear(),
            _ => {}
        }
        bytes
    }

    fn query(&mut self) -> String {
        let keys = [
            "labelSelector",
            "fieldSelector",
            "dryRun",
            "fieldValidation",
            "fieldManager",
            "propagationPolicy",
            "resourceVersion",
            "limit",
            "continue",
            "force",
            "includeObject",
            "container",
            "tailLines",
            "service-name",
        ];
        let n = self.0.usize(..3);
        let parts: Vec<String> = (0..n)
            .map(|_| {
                let k = *self.pick(&keys);
                let v: String = self.string().bytes().map(|b| format!("%{b:02X}")).collect();
                format!("{k}={v}")
            })
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_requests_never_get_a_5xx_or_a_dropped_connection() {
    let sb = Sandbox::start().await;
    let seed: u64 = std::env::var("API_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let cases: usize = std::env::var("API_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    println!("API_FUZZ_SEED={seed} API_FUZZ_CASES={cases}");
    let mut g = Gen(fastrand::Rng::with_seed(seed));

    // (collection path, item path, seed object) for every kind.
    let mut targets = Vec::new();
    for r in RESOURCES {
        let v = r.versions[0];
        let prefix = if r.group.is_empty() {
            format!("/api/{v}")
        } else {
            format!("/apis/{}/{v}", r.group)
        };
        let coll = if r.namespaced {
            format!("{prefix}/namespaces/default/{}", r.plural)
        } else {
            format!("{prefix}/{}", r.plural)
        };
        let obj = seed_object(r.kind, &r.api_version(v), "fuzz");
        // Start from a stored object, so item requests reach real handlers.
        let _ = post_json(&sb.url(&coll), &obj).await;
        targets.push((coll, obj));
    }
    let fixed = [
        "/",
        "/api",
        "/apis",
        "/version",
        "/openapi/v2",
        "/openapi/v3",
        "/metrics",
        "/backendHealth",
        "/apis/gateway.networking.k8s.io",
        "/apis/nope/v1",
        "/api/v1/namespaces/default/pods/fuzz/log",
        "/api/v2",
        "/apis/apps/v1/x/y/z/w",
    ];
    let methods = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "BREW",
    ];
    let patch_types = [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "application/json",
        "text/plain",
    ];
    let subs = ["", "/status", "/scale", "/log", "/bogus"];
    let mut failures = Vec::new();
    for case in 0..cases {
        let (coll, obj) = g.pick(&targets).clone();
        let method = *g.pick(&methods);
        let path = match g.0.u8(..10) {
            0 => g.pick(&fixed).to_string(),
            1 | 2 => coll.clone(),
            3 => {
                let name: String = g.string().bytes().map(|b| format!("%{b:02X}")).collect();
                format!("{coll}/{name}")
            }
            _ => format!("{coll}/fuzz{}", g.pick(&subs)),
        };
        let query = g.query();
        let (ct, body) = match method {
            "PATCH" => {
                let pt = *g.pick(&patch_types);
                (pt, g.body(&obj, Some(pt)))
            }
            "POST" | "PUT" => (
                *g.pick(&[
                    "application/json",
                    "application/yaml",
                    "application/vnd.kubernetes.protobuf",
                    "",
                ]),
                g.body(&obj, None),
            ),
            "DELETE" => (
                "application/json",
                if g.0.bool() {
                    serde_json::to_vec(&json!({"propagationPolicy": g.string(),
                        "preconditions": {"uid": g.string(), "resourceVersion": g.string()},
                        "dryRun": [g.string()]}))
                    .unwrap()
                } else {
                    Vec::new()
                },
            ),
            _ => ("application/json", Vec::new()),
        };
        let url = sb.url(&format!("{path}{query}"));
        let headers: Vec<(&str, &str)> = if ct.is_empty() {
            vec![]
        } else {
            vec![("content-type", ct)]
        };
        let sent = tokio::time::timeout(
            Duration::from_secs(10),
            try_request(method, &url, &headers, body.clone()),
        )
        .await;
        let what = || {
            format!(
                "case {case}: {method} {path}{query} ({ct}) {}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            )
        };
        match sent {
            Ok(Ok((status, text))) if status >= 500 => {
                failures.push(format!("{status} ({text}) for {}", what()))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(format!("connection failed ({e}) for {}", what())),
            Err(_) => failures.push(format!("no answer within 10 s for {}", what())),
        }
        if failures.len() >= 10 {
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "API_FUZZ_SEED={seed}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(get(&sb.url("/readyz")).await.status, 200);
    sb.kubectl(&["get", "ns", "default"]).success();
    sb.stop().await;
}

/// One request; the status (and a 5xx's body), or why no answer came (a reset connection means a handler
/// panicked). Watch responses are not read to the end.
async fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    let method = method.to_string();
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The support helpers panic on transport errors; run them in a task to catch that.
    tokio::spawn(async move {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let resp = open(&method, &url, &h, body, true).await;
        let status = resp.status().as_u16();
        // Only a server error's body is read (watch answers would not end).
        let text = if status >= 500 {
            use http_body_util::BodyExt;
            match tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await {
                Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(300)
                    .collect(),
                _ => String::new(),
            }
        } else {
            String::new()
        };
        (status, text)
    })
    .await
    .map_err(|e| e.to_string())
}
