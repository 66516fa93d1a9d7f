//! Keep-alive HTTP/1.1 connections to backend endpoints.
//!
//! One `Vec` of idle [`SendRequest`]s per endpoint behind a short-held
//! mutex. A connection goes back to the pool when its response body has
//! been read to the end ([`PooledBody`]); a body dropped early (client gone)
//! drops the connection instead, since it still has unread bytes. Requests
//! on a pooled connection use `try_send_request`, so a connection the
//! backend closed while idle hands the request back and it is retried on a
//! fresh connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be made; the request was not sent and is
    /// returned for a retry on another endpoint.
    #[error("failed to connect to {addr}: {reason}")]
    Connect {
        addr: SocketAddr,
        reason: String,
        request: Box<Request<Incoming>>,
    },
    /// The request was (maybe partly) sent and failed.
    #[error("backend {addr} failed: {source}")]
    Upstream {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
}

/// Per-endpoint idle connections.
#[derive(Debug)]
pub struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<SendRequest<Incoming>>>>,
    connect_timeout: Duration,
    max_idle: usize,
}

impl Pool {
    pub fn new(connect_timeout: Duration, max_idle: usize) -> Self {
        Pool {
            idle: Mutex::new(HashMap::new()),
            connect_timeout,
            max_idle,
        }
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<SendRequest<Incoming>> {
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.get_mut(&addr)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() {
                return Some(s);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to the end.
    pub fn put(&self, addr: SocketAddr, sender: SendRequest<Incoming>) {
        if sender.is_closed() {
            return;
        }
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = map.entry(addr).or_default();
        if list.len() < self.max_idle {
            list.push(sender);
        }
    }

    /// Drops idle connections to endpoints not in `keep` (called on table
    /// changes so removed endpoints do not hold sockets).
    pub fn retain(&self, keep: impl Fn(&SocketAddr) -> bool) {
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|a, _| keep(a));
    }

    async fn connect(&self, addr: SocketAddr) -> Result<SendRequest<Incoming>, String> {
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err("connection refused".into())
            }
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("connect timeout".into()),
        };
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%addr, %error, "backend connection ended");
            }
        });
        Ok(sender)
    }

    /// Sends `req` to `addr` on an idle connection, else a new one. Returns
    /// the response and the connection (to check in once the body is read).
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<Incoming>,
    ) -> Result<(Response<Incoming>, SendRequest<Incoming>), SendError> {
        while let Some(mut sender) = self.take_idle(addr) {
            if sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    // Not sent: the connection was closed under us; retry.
                    Some(back) => req = back,
                    None => {
                        return Err(SendError::Upstream {
                            addr,
                            source: e.into_error(),
                        })
                    }
                },
            }
        }
        let mut sender = match self.connect(addr).await {
            Ok(s) => s,
            Err(reason) => {
                return Err(SendError::Connect {
                    addr,
                    reason,
                    request: Box::new(req),
                })
            }
        };
        match sender.send_request(req).await {
            Ok(resp) => Ok((resp, sender)),
            Err(source) => Err(SendError::Upstream { addr, source }),
        }
    }
}

/// A backend response body that checks its connection back into the pool
/// when read to the end.
pub struct PooledBody {
    inner: Incoming,
    checkin: Option<(Arc<Pool>, SocketAddr, SendRequest<Incoming>)>,
}

impl PooledBody {
    /// Wraps `inner`; `checkin` is `None` for connections that must not be
    /// reused (upgrades).
    pub fn new(
        inner: Incoming,
        checkin: Option<(Arc<Pool>, SocketAddr, SendRequest<Incoming>)>,
    ) -> Self {
        let mut body = PooledBody { inner, checkin };
        if body.inner.is_end_stream() {
            // hyper never polls an empty body; check in right away.
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((pool, addr, sender)) = self.checkin.take() {
            pool.put(addr, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        match &res {
            Poll::Ready(None) => self.release(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.release(),
            Poll::Ready(Some(Err(_))) => self.checkin = None,
            _ => {}
        }
        res
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
