//! A small Kubernetes API client over HTTP/1.1 (TLS with the sandbox's CA and bearer token, as the
//! kubeconfig says), shared by `up` (the folder watcher) and the scenario runner.
//!
//! Both talk to the sandbox through its HTTP API (in-process or `--server URL`) rather than
//! reaching into the store, so what they write gets exactly the admission kubectl gets: decoding,
//! `apiVersion`/`kind` checks, defaults, validation, server-side apply with a field manager, and
//! `dryRun=All`. Errors are the API's own `Status` messages. A loopback round trip costs well
//! under a millisecond, which is noise next to the watcher's 50 ms debounce.

pub mod kubeconfig;

pub use kubeconfig::Access;

use crate::meta;
use crate::resources::{self, ResourceDef, RESOURCES};
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// How long one API request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What an API call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API could not be reached or answered something that is not HTTP.
    #[error("failed to reach the API at {addr}: {reason}")]
    Transport { addr: String, reason: String },
    /// The API answered with an error `Status`; `message` is what kubectl would print.
    #[error("{message}")]
    Api {
        code: u16,
        reason: String,
        message: String,
    },
}

impl ClientError {
    /// The HTTP status of an API error (0 for transport errors).
    pub fn code(&self) -> u16 {
        match self {
            ClientError::Api { code, .. } => *code,
            ClientError::Transport { .. } => 0,
        }
    }
}

/// One object: its kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjRef {
    pub res: &'static ResourceDef,
    pub namespace: String,
    pub name: String,
}

impl PartialOrd for ObjRef {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjRef {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.res.group, self.res.plural, &self.namespace, &self.name).cmp(&(
            other.res.group,
            other.res.plural,
            &other.namespace,
            &other.name,
        ))
    }
}

impl ObjRef {
    /// The reference of a manifest object (`apiVersion`, `kind`, `metadata`); namespaced objects
    /// without a namespace land in `default_ns`, as with kubectl.
    pub fn of(obj: &Value, default_ns: &str) -> Result<ObjRef, String> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        if av.is_empty() || kind.is_empty() {
            return Err("the object has no apiVersion or kind".into());
        }
        let res = resources::by_api_version_kind(av, kind).ok_or_else(|| {
            format!("no kind \"{kind}\" is served in version \"{av}\" (is the apiVersion right?)")
        })?;
        let name = meta::name(obj);
        if name.is_empty() {
            return Err(format!("{kind} has no metadata.name"));
        }
        let namespace = if res.namespaced {
            match meta::namespace(obj) {
                "" => default_ns.to_string(),
                ns => ns.to_string(),
            }
        } else {
            String::new()
        };
        Ok(ObjRef {
            res,
            namespace,
            name: name.to_string(),
        })
    }

    /// `gateway.gateway.networking.k8s.io/gateway-01`, as kubectl names objects.
    pub fn display(&self) -> String {
        format!("{}/{}", kind_display(self.res), self.name)
    }

    /// The object's URL path.
    pub fn path(&self) -> String {
        format!(
            "{}/{}",
            collection_path(self.res, Some(&self.namespace)),
            self.name
        )
    }
}

/// `gateway.gateway.networking.k8s.io` or `service`: the lower-case kind with its group.
pub fn kind_display(res: &ResourceDef) -> String {
    if res.group.is_empty() {
        res.kind.to_ascii_lowercase()
    } else {
        format!("{}.{}", res.kind.to_ascii_lowercase(), res.group)
    }
}

/// The URL of a kind's collection, in one namespace or (`None`) across all.
pub fn collection_path(res: &ResourceDef, ns: Option<&str>) -> String {
    let version = res.versions[0];
    let prefix = if res.group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{}/{version}", res.group)
    };
    match ns {
        Some(ns) if res.namespaced && !ns.is_empty() => {
            format!("{prefix}/namespaces/{ns}/{}", res.plural)
        }
        _ => format!("{prefix}/{}", res.plural),
    }
}

/// Finds a kind as a user types it: `Gateway`, `gateways`, `gw`/`svc` short names, or
/// `httproute.gateway.networking.k8s.io` (case-insensitive).
pub fn resolve_kind(s: &str) -> Option<&'static ResourceDef> {
    let s = s.to_ascii_lowercase();
    let (base, group) = match s.split_once('.') {
        Some((b, g)) => (b.to_string(), Some(g.to_string())),
        None => (s.clone(), None),
    };
    RESOURCES.iter().find(|r| {
        group.as_deref().is_none_or(|g| g == r.group)
            && (r.kind.to_ascii_lowercase() == base
                || r.plural == base
                || r.short_names.contains(&base.as_str()))
    })
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 connection over `io`, its driver spawned.
async fn handshake<I>(io: I) -> Result<Sender, hyper::Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A TLS client configuration trusting `ca_pem` (the sandbox's CA), offering HTTP/1.1.
pub fn tls_config(ca_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = ca_pem.ok_or("an https API needs the CA certificate (certificate-authority-data)")?;
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("the CA certificate is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("the CA certificate is not usable: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA data holds no certificate".into());
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Percent-encodes a query value.
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A client of one API server.
#[derive(Clone)]
pub struct ApiClient {
    /// `host:port`.
    addr: String,
    /// TLS towards `host`, for `https://` servers.
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    token: Option<String>,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// A client of the API `access` describes (`https://127.0.0.1:6443` with the sandbox's CA
    /// and token; `http://...` for `--insecure-http`; a bare `host:port` means http).
    pub fn new(access: &Access) -> Result<ApiClient, ClientError> {
        let url = access.server.as_str();
        let bad = |reason: String| ClientError::Transport {
            addr: url.into(),
            reason,
        };
        let rest = url.trim().trim_end_matches('/');
        let (https, rest) = if let Some(r) = rest.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = rest.strip_prefix("http://") {
            (false, r)
        } else {
            (false, rest)
        };
        if rest.is_empty() || rest.contains('/') {
            return Err(bad("expected a URL like https://127.0.0.1:6443".into()));
        }
        let addr = if rest
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            && !rest.ends_with(']')
        {
            rest.to_string()
        } else {
            format!("{rest}:{}", if https { 443 } else { 80 })
        };
        let tls = if https {
            let host = addr
                .rsplit_once(':')
                .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
                .unwrap_or("");
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| bad(format!("{host:?} is not a valid server name: {e}")))?;
            let cfg = tls_config(access.ca_pem.as_deref()).map_err(bad)?;
            Some((tokio_rustls::TlsConnector::from(cfg), name))
        } else {
            None
        };
        Ok(ApiClient {
            addr,
            tls,
            token: access.token.clone(),
        })
    }

    /// A client of the API the kubeconfig at `path` points at (its current context).
    pub fn from_kubeconfig(path: &std::path::Path) -> Result<ApiClient, ClientError> {
        let access = kubeconfig::read(path).map_err(|e| ClientError::Transport {
            addr: path.display().to_string(),
            reason: crate::error_chain(&e),
        })?;
        ApiClient::new(&access)
    }

    /// `https://host:port` (or `http://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Sends one request and returns the status code and the JSON body (`Null` when the body is
    /// empty or not JSON).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Value), ClientError> {
        let transport = |reason: String| ClientError::Transport {
            addr: self.addr.clone(),
            reason,
        };
        let fut = async {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let mut sender = match &self.tls {
                Some((connector, name)) => {
                    let tls = connector
                        .connect(name.clone(), stream)
                        .await
                        .map_err(|e| transport(format!("TLS handshake failed: {e}")))?;
                    handshake(tls).await.map_err(|e| transport(e.to_string()))?
                }
                None => handshake(stream)
                    .await
                    .map_err(|e| transport(e.to_string()))?,
            };
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, &self.addr)
                .header(header::ACCEPT, "application/json")
                .header(header::CONTENT_TYPE, content_type);
            if let Some(t) = &self.token {
                req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
            }
            let req = req
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| transport(e.to_string()))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| transport(e.to_string()))?
                .to_bytes();
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, fut)
            .await
            .map_err(|_| transport("the request timed out".into()))?
    }

    /// Like [`ApiClient::request`], turning non-2xx answers into [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let (code, v) = self.request(method, path, content_type, body).await?;
        if (200..300).contains(&code) {
            Ok(v)
        } else {
            Err(ClientError::Api {
                code,
                reason: v["reason"].as_str().unwrap_or("").to_string(),
                message: v["message"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("the API answered {code}")),
            })
        }
    }

    /// The object, or `None` when it does not exist.
    pub async fn get(&self, r: &ObjRef) -> Result<Option<Value>, ClientError> {
        match self
            .call(Method::GET, &r.path(), "application/json", None)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The objects of a kind, in one namespace or all, optionally filtered by a label selector.
    pub async fn list(
        &self,
        res: &ResourceDef,
        ns: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, ClientError> {
        let mut path = collection_path(res, ns);
        if let Some(sel) = label_selector.filter(|s| !s.is_empty()) {
            path.push_str(&format!("?labelSelector={}", encode_query(sel)));
        }
        let v = self
            .call(Method::GET, &path, "application/json", None)
            .await?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// Server-side apply of `obj` (which must carry apiVersion, kind, name, and its namespace
    /// when namespaced) by `manager`; with `dry_run` nothing is written.
    pub async fn apply(
        &self,
        r: &ObjRef,
        obj: &Value,
        manager: &str,
        dry_run: bool,
    ) -> Result<Value, ClientError> {
        let mut path = format!(
            "{}?fieldManager={}&force=true",
            r.path(),
            encode_query(manager)
        );
        if dry_run {
            path.push_str("&dryRun=All");
        }
        let body = serde_json::to_vec(obj).unwrap_or_default();
        self.call(
            Method::PATCH,
            &path,
            "application/apply-patch+yaml",
            Some(body),
        )
        .await
    }

    /// A patch (`content_type` names its kind); `sub` is `""`, `status` or `scale`.
    pub async fn patch(
        &self,
        r: &ObjRef,
        sub: &str,
        content_type: &str,
        patch: &Value,
    ) -> Result<Value, ClientError> {
        let path = if sub.is_empty() {
            r.path()
        } else {
            format!("{}/{sub}", r.path())
        };
        self.call(
            Method::PATCH,
            &path,
            content_type,
            Some(serde_json::to_vec(patch).unwrap_or_default()),
        )
        .await
    }

    /// Deletes an object; `Ok(false)` when it was already gone.
    pub async fn delete(&self, r: &ObjRef) -> Result<bool, ClientError> {
        let body = serde_json::to_vec(&json!({"kind": "DeleteOptions", "apiVersion": "v1"}))
            .unwrap_or_default();
        match self
            .call(Method::DELETE, &r.path(), "application/json", Some(body))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == 404 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::kinds;

    #[test]
    fn kinds_resolve_like_kubectl() {
        for (name, want) in [
            ("Gateway", kinds::gateways()),
            ("httproutes", kinds::httproutes()),
            ("svc", kinds::services()),
            (
                "healthcheckpolicy.alb.networking.azure.io",
                kinds::healthcheckpolicies(),
            ),
        ] {
            let got = resolve_kind(name);
            assert!(
                got.is_some_and(|r| std::ptr::eq(r, want)),
                "{name}: {got:?}"
            );
        }
        assert!(resolve_kind("nope").is_none());
    }

    #[test]
    fn refs_name_objects_like_kubectl() {
        let r = ObjRef::of(
            &json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gateway-01"}}),
            "default",
        )
        .unwrap();
        assert_eq!(r.display(), "gateway.gateway.networking.k8s.io/gateway-01");
        assert_eq!(
            r.path(),
            "/apis/gateway.networking.k8s.io/v1/namespaces/default/gateways/gateway-01"
        );
        let ns = ObjRef::of(
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x", "namespace": "y"}}),
            "default",
        )
        .unwrap();
        assert_eq!(ns.path(), "/api/v1/namespaces/x");
        assert_eq!(ns.display(), "namespace/x");
        assert!(ObjRef::of(
            &json!({"apiVersion": "v9", "kind": "Pod", "metadata": {"name": "p"}}),
            "d"
        )
        .is_err());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("app in (a,b)"), "app%20in%20%28a%2Cb%29");
    }
}
