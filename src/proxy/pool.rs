//! The backend side of the proxy: an HTTP/1.1 client driven inside the
//! request's own task, over keep-alive connections pooled per endpoint.
//!
//! Why not hyper's client: it runs each backend connection as a task of its
//! own and passes every request, response and body chunk across channels to
//! it. For a small GET that hand-off cost about as much user-space CPU as
//! everything else the proxy does (BENCHMARKS.md). Here the request task
//! writes the request head, reads and parses the response head (with
//! `httparse`, as hyper does), and a body that arrived with the head is
//! handed on without touching the socket again; the connection goes back to
//! the pool at once.
//!
//! Message framing follows RFC 9112 §6.3: no body for HEAD and for 1xx, 204
//! and 304 answers; chunked when `Transfer-Encoding` ends in `chunked`; else
//! `Content-Length`; else until the backend closes (then the connection is
//! not reused). Interim 1xx answers other than 101 (`100 Continue`) are
//! skipped. A connection taken from the pool that turns out to have been
//! closed by the backend while idle is replaced by a fresh one and the
//! request sent again, if it had no body.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Most response header fields accepted from a backend.
const MAX_HEADERS: usize = 128;
/// Largest response head accepted from a backend.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const READ_CHUNK: usize = 8 * 1024;
/// Reads go into the buffer's spare capacity until less than this is left.
const MIN_READ_SPACE: usize = 1024;

/// Why a request to a backend failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made (nothing was sent).
    #[error("failed to connect to {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("backend {addr}: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("backend {addr} closed the connection before answering")]
    Closed { addr: SocketAddr },
    #[error("backend {addr} sent an invalid response: {reason}")]
    Protocol {
        addr: SocketAddr,
        reason: &'static str,
    },
    #[error("reading the request body from the client failed: {0}")]
    ClientBody(String),
}

/// One keep-alive connection to a backend endpoint and the bytes read from
/// it but not yet consumed.
#[derive(Debug)]
pub struct Conn {
    io: Io,
    buf: BytesMut,
    reused: bool,
}

/// A backend connection: plain TCP, or TLS when a BackendTLSPolicy targets
/// the Service.
#[derive(Debug)]
pub enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// TLS towards a backend: the server name to send (`None`: none, the
/// endpoint's IP is used for the handshake). As AGC does without
/// `verify`, the backend's certificate is not checked.
#[derive(Debug, Clone, Copy)]
pub struct TlsTarget<'a> {
    pub sni: Option<&'a str>,
}

impl Conn {
    /// Whether the backend closed the connection (or sent something
    /// unsolicited) while it sat idle. Free when the socket has not become
    /// readable: tokio answers from its readiness state without a syscall.
    fn is_stale(&self) -> bool {
        // Not for TLS: bytes may legitimately wait under it (TLS 1.3 session
        // tickets), and peeking would eat them. A TLS connection the backend
        // closed is caught when the request fails on it instead (a request
        // without a body is then sent again on a new connection).
        let Io::Plain(tcp) = &self.io else {
            return false;
        };
        let mut probe = [0u8; 1];
        match tcp.try_read(&mut probe) {
            Err(e) => e.kind() != io::ErrorKind::WouldBlock,
            Ok(_) => true,
        }
    }
}

/// A backend connection switched to another protocol (101), with the bytes
/// the backend sent after its 101 head.
#[derive(Debug)]
pub struct Upgraded {
    pub io: Io,
    pub read_ahead: Bytes,
}

/// An endpoint and whether its connections speak TLS.
type IdleKey = (SocketAddr, bool);

/// Per-endpoint idle connections, one pool per worker runtime (a
/// connection is registered with its runtime's reactor).
#[derive(Debug)]
pub struct Pool {
    /// Scanned linearly: a worker talks to few endpoints, and comparing
    /// addresses is cheaper than hashing them.
    idle: Mutex<Vec<(IdleKey, Vec<Conn>)>>,
    connect_timeout: Duration,
    max_idle: usize,
}

impl Pool {
    pub fn new(connect_timeout: Duration, max_idle: usize) -> Self {
        Pool {
            idle: Mutex::new(Vec::new()),
            connect_timeout,
            max_idle,
        }
    }

    fn take_idle(&self, key: IdleKey) -> Option<Conn> {
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let (_, list) = map.iter_mut().find(|(k, _)| *k == key)?;
        while let Some(c) = list.pop() {
            if !c.is_stale() {
                return Some(c);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to the end.
    fn put(&self, addr: SocketAddr, mut conn: Conn) {
        if !conn.buf.is_empty() {
            return; // bytes beyond the response: not safe to reuse
        }
        conn.reused = true;
        let key = (addr, matches!(conn.io, Io::Tls(_)));
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let i = match map.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                map.push((key, Vec::new()));
                map.len() - 1
            }
        };
        let list = &mut map[i].1;
        if list.len() < self.max_idle {
            list.push(conn);
        }
    }

    /// Drops idle connections to endpoints not in `keep` (called on table
    /// changes so removed endpoints do not hold sockets).
    pub fn retain(&self, keep: impl Fn(&SocketAddr) -> bool) {
        let mut map = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|((a, _), _)| keep(a));
    }

    async fn connect(
        &self,
        addr: SocketAddr,
        tls: Option<TlsTarget<'_>>,
    ) -> Result<Conn, UpstreamError> {
        let fail = |reason: String| UpstreamError::Connect { addr, reason };
        let io = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(io)) => io,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(fail("connection refused".into()))
            }
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Err(_) => return Err(fail("connect timeout".into())),
        };
        let _ = io.set_nodelay(true);
        let io = match tls {
            None => Io::Plain(io),
            Some(t) => {
                let name = match t.sni.map(|n| ServerName::try_from(n.to_owned())) {
                    Some(Ok(n)) => n,
                    Some(Err(_)) => return Err(fail(format!("invalid SNI {:?}", t.sni))),
                    None => ServerName::IpAddress(addr.ip().into()),
                };
                let handshake =
                    tokio_rustls::TlsConnector::from(backend_tls_config()).connect(name, io);
                match tokio::time::timeout(self.connect_timeout, handshake).await {
                    Ok(Ok(s)) => Io::Tls(Box::new(s)),
                    Ok(Err(e)) => return Err(fail(format!("TLS handshake failed: {e}"))),
                    Err(_) => return Err(fail("TLS handshake timeout".into())),
                }
            }
        };
        Ok(Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            reused: false,
        })
    }

    /// An idle connection to `addr`, else a new one.
    async fn checkout(
        &self,
        addr: SocketAddr,
        tls: Option<TlsTarget<'_>>,
    ) -> Result<Conn, UpstreamError> {
        match self.take_idle((addr, tls.is_some())) {
            Some(c) => Ok(c),
            // Boxed: the connect future (with a TLS handshake) is large, and
            // inline it would be moved with every request's future.
            None => Box::pin(self.connect(addr, tls)).await,
        }
    }

    /// Sends `req` (origin-form target, hop-by-hop headers already removed)
    /// to `addr`, or to `alt` if `addr` refuses the connection, and reads
    /// the response head. Returns the response (its body streams from the
    /// backend), the endpoint used, and for a 101 answer to an upgrade
    /// request the switched connection.
    pub async fn forward<B>(
        self: &Arc<Self>,
        addr: SocketAddr,
        alt: Option<SocketAddr>,
        req: Request<B>,
        upgrade: bool,
        tls: Option<TlsTarget<'_>>,
        fwd: Option<&Forwarding>,
    ) -> Result<Forwarded, UpstreamError>
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Display,
    {
        let (parts, mut body) = req.into_parts();
        let (head, framing) = encode_head(&parts, &body, fwd);
        let head = head.freeze();
        let (mut conn, used) = match self.checkout(addr, tls).await {
            Ok(c) => (c, addr),
            Err(error) => match alt {
                Some(alt) => {
                    tracing::debug!(%error, retry = %alt, "connect failed; retrying on another endpoint");
                    (self.checkout(alt, tls).await?, alt)
                }
                None => return Err(error),
            },
        };
        let is_head = parts.method == Method::HEAD;
        let mut result = exchange(&mut conn, used, &head, &mut body, framing, is_head).await;
        if conn.reused && framing == ReqFraming::Empty {
            if let Err(UpstreamError::Closed { .. } | UpstreamError::Io { .. }) = &result {
                // Closed by the backend while idle, just as we reused it.
                conn = Box::pin(self.connect(used, tls)).await?;
                result = exchange(&mut conn, used, &head, &mut body, framing, is_head).await;
            }
        }
        let ((status, raw_head, resp_framing, keep_alive), rest) = result?;
        let mut response = Response::new(UpstreamBody::empty());
        *response.status_mut() = status;
        if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
            let read_ahead = rest;
            return Ok(Forwarded {
                response,
                head: raw_head,
                used,
                upgraded: Some(Upgraded {
                    io: conn.io,
                    read_ahead,
                }),
            });
        }
        // A connection that asked for an upgrade and was refused is not
        // reused: the backend may still be waiting for the new protocol.
        let reuse = keep_alive && !upgrade;
        *response.body_mut() = UpstreamBody::new(
            conn,
            rest,
            resp_framing,
            reuse.then(|| (self.clone(), used)),
        );
        Ok(Forwarded {
            response,
            head: raw_head,
            used,
            upgraded: None,
        })
    }
}

/// The TLS client configuration towards backends: HTTP/1.1 by ALPN, and
/// no certificate check (AGC checks only when a BackendTLSPolicy has
/// `verify`, which the sandbox does not implement).
fn backend_tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<Arc<rustls::ClientConfig>> = std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut cfg = (*crate::health::insecure_client_config()).clone();
            cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(cfg)
        })
        .clone()
}

/// What [`Pool::forward`] returns.
#[derive(Debug)]
pub struct Forwarded {
    /// The status and the body; the headers are in `head`.
    pub response: Response<UpstreamBody>,
    pub head: RawHead,
    /// The endpoint that answered.
    pub used: SocketAddr,
    pub upgraded: Option<Upgraded>,
}

/// How the request body is framed towards the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReqFraming {
    Empty,
    Length(u64),
    Chunked,
}

/// Serializes the request head. The body's framing comes from the body
/// itself (a known length keeps `Content-Length`, an unknown one is sent
/// chunked), since `Transfer-Encoding` was a hop-by-hop header.
fn encode_head<B: Body>(
    parts: &http::request::Parts,
    body: &B,
    fwd: Option<&Forwarding>,
) -> (BytesMut, ReqFraming) {
    let framing = if body.is_end_stream() {
        ReqFraming::Empty
    } else if let Some(n) = body.size_hint().exact() {
        ReqFraming::Length(n)
    } else {
        ReqFraming::Chunked
    };
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut out = BytesMut::with_capacity(128 + pq.len() + parts.headers.len() * 48);
    out.put_slice(parts.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(pq.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    let mut has_length = false;
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            if framing == ReqFraming::Chunked {
                continue;
            }
            has_length = true;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    match framing {
        ReqFraming::Length(n) if !has_length => {
            out.put_slice(b"content-length: ");
            out.put_slice(n.to_string().as_bytes());
            out.put_slice(b"\r\n");
        }
        ReqFraming::Chunked => out.put_slice(b"transfer-encoding: chunked\r\n"),
        _ => {}
    }
    if let Some(f) = fwd {
        out.put_slice(b"x-forwarded-for: ");
        if let Some(prev) = &f.xff_prev {
            out.put_slice(prev.as_bytes());
            out.put_slice(b", ");
        }
        out.put_slice(f.peer_ip.as_bytes());
        out.put_slice(b"\r\nx-forwarded-proto: ");
        out.put_slice(f.proto.as_bytes());
        out.put_slice(b"\r\n");
        if let Some(id) = &f.request_id {
            out.put_slice(b"x-request-id: ");
            out.put_slice(id);
            out.put_slice(b"\r\n");
        }
    }
    out.put_slice(b"\r\n");
    (out, framing)
}

/// The forwarding fields the proxy adds to a backend request (AGC sends
/// all three), written after the request's own fields.
#[derive(Debug, Clone)]
pub struct Forwarding {
    /// `x-forwarded-for` as the client sent it, if it did; the client's
    /// address is appended.
    pub xff_prev: Option<String>,
    pub peer_ip: HeaderValue,
    /// `x-forwarded-proto`.
    pub proto: &'static str,
    /// A new `x-request-id`, when the request had none.
    pub request_id: Option<[u8; 36]>,
}

type Head = (StatusCode, RawHead, Framing, bool);

/// A backend's response header fields as they arrived: ranges of the bytes
/// read. An HTTP/1.1 client gets them copied straight into its response
/// head; a `HeaderMap` is built only when something needs one (h2 clients,
/// response header filters, cookies, upgrades).
#[derive(Debug, Clone, Default)]
pub struct RawHead {
    bytes: Bytes,
    /// `(name start, name end, value start, value end)` in `bytes`.
    fields: Vec<[u32; 4]>,
    /// `Content-Length` is void (a transfer coding delimits the body).
    length_void: bool,
}

impl RawHead {
    /// The fields in order, `Content-Length` left out when void.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields.iter().filter_map(|&[a, b, c, d]| {
            let name = &self.bytes[a as usize..b as usize];
            let void = self.length_void && name.eq_ignore_ascii_case(b"content-length");
            (!void).then(|| (name, &self.bytes[c as usize..d as usize]))
        })
    }

    /// The fields in order as `(name, field line)`: the line is the field
    /// as received with its CRLF (`Name: value\r\n`, to copy in one piece),
    /// or rebuilt when the backend ended it with a bare LF.
    pub fn lines(&self) -> impl Iterator<Item = (&[u8], std::borrow::Cow<'_, [u8]>)> {
        self.fields.iter().filter_map(|&[a, b, c, d]| {
            let name = &self.bytes[a as usize..b as usize];
            if self.length_void && name.eq_ignore_ascii_case(b"content-length") {
                return None;
            }
            let (a, d) = (a as usize, d as usize);
            let line = match self.bytes.get(d..d + 2) {
                Some(b"\r\n") => std::borrow::Cow::Borrowed(&self.bytes[a..d + 2]),
                _ => {
                    let value = &self.bytes[c as usize..d];
                    std::borrow::Cow::Owned([name, b": ", value, b"\r\n"].concat())
                }
            };
            Some((name, line))
        })
    }

    /// The fields as a `HeaderMap` (values share the read buffer), with
    /// `extra` slots free.
    pub fn to_header_map(&self, extra: usize) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(self.fields.len() + extra);
        for (name, value) in self.fields() {
            // httparse accepted the name as a token.
            let Ok(name) = HeaderName::from_bytes(name) else {
                continue;
            };
            // SAFETY: httparse accepts exactly the bytes `HeaderValue`
            // allows (HTAB, 0x20-0x7E and obs-text 0x80-0xFF; not other
            // controls or DEL), so the value need not be checked again.
            let value =
                unsafe { HeaderValue::from_maybe_shared_unchecked(self.bytes.slice_ref(value)) };
            headers.append(name, value);
        }
        headers
    }
}

/// Writes the request on `conn` and reads the response head (and the bytes
/// read past it).
async fn exchange<B>(
    conn: &mut Conn,
    addr: SocketAddr,
    head: &Bytes,
    body: &mut B,
    framing: ReqFraming,
    is_head: bool,
) -> Result<(Head, Bytes), UpstreamError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let io_err = |source| UpstreamError::Io { addr, source };
    if let Err(e) = write_request(&mut conn.io, head, body, framing).await {
        match e {
            WriteError::Client(reason) => return Err(UpstreamError::ClientBody(reason)),
            // The backend may have answered early (e.g. 413) and closed:
            // read what it said, else report the write error.
            WriteError::Io(source) => {
                return match read_head(conn, addr, is_head).await {
                    Ok(((status, headers, framing, _), rest)) => {
                        Ok(((status, headers, framing, false), rest))
                    }
                    Err(_) => Err(io_err(source)),
                }
            }
        }
    }
    read_head(conn, addr, is_head).await
}

enum WriteError {
    Io(io::Error),
    Client(String),
}

async fn write_request<B>(
    io: &mut Io,
    head: &Bytes,
    body: &mut B,
    framing: ReqFraming,
) -> Result<(), WriteError>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    if framing == ReqFraming::Empty {
        io.write_all(head).await.map_err(WriteError::Io)?;
        // TLS holds records until flushed; for TCP this is free.
        return io.flush().await.map_err(WriteError::Io);
    }
    // The head and the body's first chunk in one write when the chunk is
    // already there (a small POST usually is).
    let mut out = BytesMut::from(&head[..]);
    let mut first = body.frame().now_or_never();
    loop {
        let frame = match first.take() {
            Some(f) => f,
            None => {
                if !out.is_empty() {
                    io.write_all(&out).await.map_err(WriteError::Io)?;
                    out.clear();
                }
                body.frame().await
            }
        };
        match frame {
            None => break,
            Some(Err(e)) => return Err(WriteError::Client(e.to_string())),
            Some(Ok(frame)) => {
                // Trailers are not forwarded.
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                if data.is_empty() {
                    continue;
                }
                if framing == ReqFraming::Chunked {
                    out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    out.put_slice(&data);
                    out.put_slice(b"\r\n");
                } else {
                    out.put_slice(&data);
                }
            }
        }
    }
    if framing == ReqFraming::Chunked {
        out.put_slice(b"0\r\n\r\n");
    }
    if !out.is_empty() {
        io.write_all(&out).await.map_err(WriteError::Io)?;
    }
    io.flush().await.map_err(WriteError::Io)
}

/// How a response body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked(ChunkState),
    UntilClose,
}

/// Reads and parses the response head; 1xx answers other than 101 are
/// skipped. Returns the status, headers, body framing and whether the
/// connection may be reused afterwards, and the bytes read past the head.
///
/// Everything read is frozen into one `Bytes` before parsing, so header
/// values and a body that came with the head are slices of the read buffer,
/// not copies.
async fn read_head(
    conn: &mut Conn,
    addr: SocketAddr,
    is_head: bool,
) -> Result<(Head, Bytes), UpstreamError> {
    let protocol = |reason| UpstreamError::Protocol { addr, reason };
    loop {
        if !conn.buf.is_empty() {
            let data = conn.buf.split().freeze();
            match parse_head(&data, is_head) {
                Ok(Some((len, head))) => {
                    let rest = data.slice(len..);
                    let interim =
                        head.0.is_informational() && head.0 != StatusCode::SWITCHING_PROTOCOLS;
                    if !interim {
                        return Ok((head, rest));
                    }
                    // The final answer follows the interim one.
                    conn.buf.extend_from_slice(&rest);
                    continue;
                }
                Ok(None) if data.len() >= MAX_HEAD_BYTES => {
                    return Err(protocol("response head too large"))
                }
                Ok(None) => {
                    // Incomplete: put the bytes back in front of the spare
                    // capacity (no copy while `data` is the only reference).
                    let mut front = data
                        .try_into_mut()
                        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                    front.unsplit(std::mem::take(&mut conn.buf));
                    conn.buf = front;
                }
                Err(reason) => return Err(protocol(reason)),
            }
        }
        match std::future::poll_fn(|cx| poll_fill(&mut conn.io, &mut conn.buf, cx)).await {
            Ok(0) => return Err(UpstreamError::Closed { addr }),
            Ok(_) => {}
            Err(source) => return Err(UpstreamError::Io { addr, source }),
        }
    }
}

/// Parses a complete response head at the start of `buf`: its length and
/// what it says, or `None` if more bytes are needed.
fn parse_head(buf: &Bytes, is_head: bool) -> Result<Option<(usize, Head)>, &'static str> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err("too many header fields"),
        Err(_) => return Err("malformed response head"),
    };
    let status = resp
        .code
        .and_then(|c| StatusCode::from_u16(c).ok())
        .ok_or("invalid status code")?;
    let http10 = resp.version == Some(0);
    let base = buf.as_ptr() as usize;
    let offset = |part: &[u8]| (part.as_ptr() as usize - base) as u32;
    let mut fields = Vec::with_capacity(resp.headers.len());
    let (mut length, mut chunked, mut te, mut close, mut keep_alive) =
        (None::<u64>, false, false, false, false);
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            // 1*DIGIT (RFC 9110 §8.6): `parse` alone would take `+5`, a desync vector.
            let v = h.value.trim_ascii();
            let n = std::str::from_utf8(v)
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or("invalid content-length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length");
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te = true;
            // Only the last coding decides (RFC 9112 §6.3 rule 4).
            chunked = h
                .value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for t in h.value.split(|b| *b == b',') {
                let t = t.trim_ascii();
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        let (n, v) = (offset(name), offset(h.value));
        fields.push([n, n + name.len() as u32, v, v + h.value.len() as u32]);
    }
    let head = RawHead {
        bytes: buf.clone(),
        fields,
        length_void: te,
    };
    let no_body = is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = if no_body {
        Framing::Empty
    } else if te {
        if chunked {
            Framing::Chunked(ChunkState::Size)
        } else {
            Framing::UntilClose
        }
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let reusable = framing != Framing::UntilClose && !close && (!http10 || keep_alive);
    Ok(Some((len, (status, head, framing, reusable))))
}

/// Where a chunked body decoder is (RFC 9112 §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkState {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// What one decoding step produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Data(Bytes),
    NeedMore,
    Done,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 8 * 1024;

/// Decodes from `buf` as far as it can: returns the next data, or that more
/// bytes are needed, or the end of the body (trailers are dropped).
pub(crate) fn decode_chunked(
    buf: &mut BytesMut,
    st: &mut ChunkState,
) -> Result<Step, &'static str> {
    loop {
        match *st {
            ChunkState::Size | ChunkState::Trailers => {
                let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
                    return if buf.len() > MAX_LINE {
                        Err("chunk line too long")
                    } else {
                        Ok(Step::NeedMore)
                    };
                };
                let line = &buf[..eol];
                if *st == ChunkState::Trailers {
                    if line.is_empty() {
                        *st = ChunkState::Done;
                    }
                } else {
                    // Hex digits only (no sign, no leading space), then
                    // optional whitespace before an extension (RFC 9112
                    // §7.1): a lenient decoder is a smuggling vector.
                    let (digits, ext) = match line.iter().position(|b| *b == b';') {
                        Some(i) => (&line[..i], &line[i..]),
                        None => (line, &b""[..]),
                    };
                    // Only SP and HTAB may follow the digits (BWS), and an extension holds
                    // no control bytes: a CR or LF inside the line is a smuggling vector.
                    let digits = trim_bws_end(digits);
                    if ext.iter().any(|b| b.is_ascii_control() && *b != b'\t') {
                        return Err("invalid chunk extension");
                    }
                    let size = std::str::from_utf8(digits)
                        .ok()
                        .filter(|s| {
                            (1..=16).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
                        })
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or("invalid chunk size")?;
                    *st = if size == 0 {
                        ChunkState::Trailers
                    } else {
                        ChunkState::Data(size)
                    };
                }
                buf.advance(eol + 2);
            }
            ChunkState::Data(rest) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = rest.min(buf.len() as u64) as usize;
                let data = buf.split_to(n).freeze();
                *st = if rest == n as u64 {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(rest - n as u64)
                };
                return Ok(Step::Data(data));
            }
            ChunkState::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err("missing CRLF after chunk data");
                }
                buf.advance(2);
                *st = ChunkState::Size;
            }
            ChunkState::Done => return Ok(Step::Done),
        }
    }
}

/// `s` without trailing SP and HTAB (RFC 9110 §5.6.3's BWS; not CR, unlike `trim_ascii_end`).
fn trim_bws_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|b| *b != b' ' && *b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

/// A backend response body. Checks its connection back into the pool once
/// read to the end; a body dropped early (client gone) closes it instead,
/// since unread bytes remain.
#[derive(Debug)]
pub struct UpstreamBody {
    state: BodyState,
}

#[derive(Debug)]
enum BodyState {
    /// The whole body (possibly empty) is here; the connection is released.
    Full(Option<Bytes>),
    Streaming {
        conn: Conn,
        framing: Framing,
        checkin: Option<(Arc<Pool>, SocketAddr)>,
    },
}

impl UpstreamBody {
    /// Whether the whole body is already here (nothing left to read from
    /// the backend).
    pub fn is_complete(&self) -> bool {
        matches!(self.state, BodyState::Full(_))
    }

    pub(crate) fn empty() -> Self {
        UpstreamBody {
            state: BodyState::Full(None),
        }
    }

    /// The body of a response whose head `conn` just read; `rest` holds the
    /// bytes that came after the head.
    fn new(
        mut conn: Conn,
        rest: Bytes,
        framing: Framing,
        checkin: Option<(Arc<Pool>, SocketAddr)>,
    ) -> Self {
        let whole = match framing {
            Framing::Empty => Some((None, rest.clone())),
            Framing::Length(n) if rest.len() as u64 >= n => {
                let n = n as usize;
                Some((Some(rest.slice(..n)), rest.slice(n..)))
            }
            _ => None,
        };
        match whole {
            Some((data, extra)) => {
                // Bytes beyond the response: the connection is out of step.
                if let (Some((pool, addr)), true) = (checkin, extra.is_empty()) {
                    pool.put(addr, conn);
                }
                UpstreamBody {
                    state: BodyState::Full(data),
                }
            }
            None => {
                conn.buf.extend_from_slice(&rest);
                UpstreamBody {
                    state: BodyState::Streaming {
                        conn,
                        framing,
                        checkin,
                    },
                }
            }
        }
    }
}

/// Reads more bytes into `buf`; `Ok(0)` at end of stream.
pub(crate) fn poll_fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < MIN_READ_SPACE {
        buf.reserve(READ_CHUNK);
    }
    let spare = buf.spare_capacity_mut();
    let mut rb = ReadBuf::uninit(spare);
    ready!(Pin::new(io).poll_read(cx, &mut rb))?;
    let n = rb.filled().len();
    // SAFETY: `poll_read` initialized the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Ok(n))
}

fn unexpected_eof() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "backend closed the connection in the middle of the body",
    )
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let (conn, framing) = match &mut this.state {
            BodyState::Full(data) => return Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            BodyState::Streaming { conn, framing, .. } => (conn, framing),
        };
        let step = loop {
            match framing {
                Framing::Empty => break Ok(None),
                Framing::Length(rest) => {
                    if !conn.buf.is_empty() {
                        let n = (*rest).min(conn.buf.len() as u64) as usize;
                        let data = conn.buf.split_to(n).freeze();
                        *rest -= n as u64;
                        if *rest == 0 {
                            *framing = Framing::Empty;
                        }
                        break Ok(Some(data));
                    }
                }
                Framing::Chunked(st) => match decode_chunked(&mut conn.buf, st) {
                    Ok(Step::Data(d)) => break Ok(Some(d)),
                    Ok(Step::Done) => {
                        *framing = Framing::Empty;
                        break Ok(None);
                    }
                    Ok(Step::NeedMore) => {}
                    Err(reason) => break Err(io::Error::new(io::ErrorKind::InvalidData, reason)),
                },
                Framing::UntilClose => {
                    if !conn.buf.is_empty() {
                        break Ok(Some(conn.buf.split().freeze()));
                    }
                }
            }
            match ready!(poll_fill(&mut conn.io, &mut conn.buf, cx)) {
                Ok(0) if *framing == Framing::UntilClose => {
                    *framing = Framing::Empty;
                    break Ok(None);
                }
                Ok(0) => break Err(unexpected_eof()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        let finished = matches!(step, Ok(None)) || *framing == Framing::Empty;
        let failed = step.is_err();
        if finished || failed {
            let state = std::mem::replace(&mut this.state, BodyState::Full(None));
            if let (
                false,
                BodyState::Streaming {
                    conn,
                    checkin: Some((pool, addr)),
                    ..
                },
            ) = (failed, state)
            {
                pool.put(addr, conn);
            }
        }
        Poll::Ready(step.transpose().map(|r| r.map(Frame::data)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            BodyState::Full(d) => d.is_none(),
            BodyState::Streaming { framing, .. } => *framing == Framing::Empty,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            BodyState::Full(d) => SizeHint::with_exact(d.as_ref().map_or(0, |d| d.len() as u64)),
            BodyState::Streaming {
                framing: Framing::Length(n),
                ..
            } => SizeHint::with_exact(*n),
            BodyState::Streaming { .. } => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
