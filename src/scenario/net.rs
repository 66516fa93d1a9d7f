//! The data-plane clients of scenarios: one HTTP/1.1 request, or a WebSocket, to a Gateway's
//! listener socket (plain or TLS), with the Host header (and SNI) of the virtual host under test.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

/// How long one request (connect, handshake, response) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A byte stream: TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open WebSocket.
pub type Ws = WebSocketStream<Box<dyn Io>>;

/// Where and how to connect.
#[derive(Clone)]
pub struct Target {
    /// `ip:port` of the listener socket.
    pub addr: String,
    /// TLS client configuration for HTTPS listeners.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Host header and SNI.
    pub host: String,
}

/// A response, body read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Lower-case names, in order received.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn connect(t: &Target) -> Result<Box<dyn Io>, String> {
    let tcp = TcpStream::connect(&t.addr)
        .await
        .map_err(|e| format!("failed to connect to {}: {e}", t.addr))?;
    let _ = tcp.set_nodelay(true);
    match &t.tls {
        None => Ok(Box::new(tcp)),
        Some(cfg) => {
            let sni = t.host.split(':').next().unwrap_or(&t.host).to_string();
            let name = ServerName::try_from(sni.clone())
                .map_err(|e| format!("invalid TLS server name {sni:?}: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(cfg.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {} failed: {e}", t.addr))?;
            Ok(Box::new(tls))
        }
    }
}

/// Sends one request.
pub async fn request(
    t: &Target,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> Result<Reply, String> {
    let fut = async {
        let io = connect(t).await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake with {} failed: {e}", t.addr))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &t.host);
        for (k, v) in headers {
            let k = HeaderName::from_bytes(k.as_bytes()).map_err(|e| format!("header {k}: {e}"))?;
            let v = HeaderValue::from_str(v).map_err(|e| format!("header {k}: {e}"))?;
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
            .map_err(|e| format!("invalid request: {e}"))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request to {} failed: {e}", t.addr))?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).to_string(),
                )
            })
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the response body failed: {e}"))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| format!("no response from {} within {REQUEST_TIMEOUT:?}", t.addr))?
}

/// Opens a WebSocket to `path`. A refused upgrade comes back as `Err(Some(reply))`.
pub async fn websocket(
    t: &Target,
    path: &str,
    headers: &[(String, String)],
) -> Result<Ws, (Option<Reply>, String)> {
    let fut = async {
        let scheme = if t.tls.is_some() { "wss" } else { "ws" };
        let mut req = format!("{scheme}://{}{path}", t.host)
            .into_client_request()
            .map_err(|e| (None, format!("invalid WebSocket URL: {e}")))?;
        for (k, v) in headers {
            let k = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| (None, format!("header {k}: {e}")))?;
            let v = HeaderValue::from_str(v).map_err(|e| (None, format!("header {k}: {e}")))?;
            req.headers_mut().insert(k, v);
        }
        let io = connect(t).await.map_err(|e| (None, e))?;
        match tokio_tungstenite::client_async(req, io).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status().as_u16();
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| String::from_utf8_lossy(b).to_string())
                    .unwrap_or_default();
                let reply = Reply {
                    status,
                    headers: resp
                        .headers()
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.as_str().to_string(),
                                String::from_utf8_lossy(v.as_bytes()).to_string(),
                            )
                        })
                        .collect(),
                    body: body.clone(),
                };
                Err((
                    Some(reply),
                    format!(
                        "the upgrade was refused with {status}; body: {}",
                        body.trim()
                    ),
                ))
            }
            Err(e) => Err((None, format!("WebSocket handshake failed: {e}"))),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| {
            (
                None,
                format!("no WebSocket handshake within {REQUEST_TIMEOUT:?}"),
            )
        })?
}
