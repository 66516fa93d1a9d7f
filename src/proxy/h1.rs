//! HTTP/1.1 on client connections (plain, and TLS with ALPN `http/1.1`).
//!
//! The proxy's own connection loop rather than hyper's server: a request
//! head is parsed with `httparse` straight from the connection's read buffer
//! (header values are slices of it), handed to [`forward::handle`] with a
//! body that reads from the same buffer in the same task, and the response
//! head goes out in one write with the body bytes that are already there.
//! A backend's response fields can be copied into the client's head as
//! they arrived ([`RawHead`]), with no `HeaderMap` in between. Together
//! this took a proxied GET from 25.5k to 19.7k instructions (nginx: 19.0k;
//! BENCHMARKS.md). h2 still runs on hyper.
//!
//! Semantics (RFC 9112):
//! - keep-alive by default on 1.1, on `Connection: keep-alive` for 1.0;
//!   pipelined requests are answered in order;
//! - a 1.1 request needs exactly one `Host`; an absolute-form target's
//!   authority replaces it (§3.2);
//! - request bodies: `Transfer-Encoding` ending in `chunked` (it wins over
//!   `Content-Length`, which is dropped, and the connection closes after
//!   the answer, §6.1), else `Content-Length` (forwarded as one normalised
//!   value), else none; any other transfer coding, a bad or conflicting
//!   length, or a transfer coding on 1.0 is a 400; `Expect: 100-continue`
//!   is answered when the body is first read;
//! - a malformed head is a 400, a head over `max_header_bytes` (or with more
//!   than 100 fields) a 431, a request line that does not fit (or a target
//!   over 64 KiB) a 414, and the connection closes after each;
//! - responses are framed by the body, never by a length the headers claim:
//!   `Content-Length` when the length is known (and counted), else chunked
//!   (1.1) or delimited by closing (1.0); no body for HEAD, 1xx, 204, 304;
//! - a body the handler left unread and not already buffered, a failed
//!   response body and shutdown close the connection after the response
//!   (`connection: close`), write side first, then a short drain (§9.6).
//!
//! A 101 answer to an `Upgrade` request ends the loop: the client socket and
//! whatever it sent past the request go to the tunnel ([`upgrade`]).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::FutureExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri, Version};
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::proxy::forward::{self, ConnCtx, ProxyBody, Shared};
use crate::proxy::normalize;
use crate::proxy::pool::{self, ChunkState, RawHead, Step};
use crate::proxy::timeouts::{signalled, InFlight, TimedIo};
use crate::proxy::upgrade::{self, ClientIo};
use crate::routing::AGC_SERVER_NAME;

/// Most header fields in a request head (hyper's limit too); more is a 431.
const MAX_HEADERS: usize = 100;
/// Longest request target; the `http` crate refuses longer URIs.
const MAX_TARGET: usize = 65_534;
/// Body bytes up to this size are copied after the head (one write);
/// larger ones are written from their own buffer.
const COPY_MAX: usize = 16 * 1024;

/// A client connection's stream, as the tunnel takes it over after a 101.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    fn into_tunnel(self) -> ClientIo;
}

impl ClientStream for TcpStream {
    fn into_tunnel(self) -> ClientIo {
        ClientIo::Plain(self)
    }
}

impl ClientStream for tokio_rustls::server::TlsStream<TcpStream> {
    fn into_tunnel(self) -> ClientIo {
        ClientIo::Tls(Box::new(self))
    }
}

/// The reading side of a connection: the stream, what was read and not yet
/// used, and where the current request's body is.
struct Inbound<I> {
    io: TimedIo<I>,
    buf: BytesMut,
    body: BodyState,
    /// Bytes of `100 Continue` written so far, while one is owed.
    expect: Option<usize>,
}

/// What is left of the current request's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    Done,
    Length(u64),
    Chunked(ChunkState),
}

/// A parsed request head and what it says about the connection.
#[derive(Debug)]
struct Head {
    req: Request<()>,
    body: BodyState,
    keep_alive: bool,
    expect_continue: bool,
}

/// What the loop does after a response.
enum Next {
    KeepAlive,
    Close,
    Tunnel(upgrade::Tunnel),
}

/// Serves HTTP/1.1 on `io` until the client closes, a request says so, or
/// `close` fires (the request in flight then gets the shutdown grace period
/// to finish).
pub(crate) async fn serve<I: ClientStream>(
    shared: Arc<Shared>,
    ctx: Arc<ConnCtx>,
    io: TimedIo<I>,
    in_flight: Arc<InFlight>,
    mut close: watch::Receiver<bool>,
) {
    let closing = close.clone();
    let grace = shared.opts.shutdown_grace;
    let max_head = shared.opts.max_header_bytes;
    let stop = signalled(&mut close).fuse();
    tokio::pin!(stop);
    let mut inb = Inbound {
        io,
        buf: BytesMut::new(),
        body: BodyState::Done,
        expect: None,
    };
    let mut out = BytesMut::new();
    loop {
        let head = tokio::select! {
            biased;
            head = read_head(&mut inb, max_head) => head,
            _ = stop.as_mut() => return,
        };
        let head = match head {
            Ok(Some(Ok(head))) => head,
            Ok(Some(Err(status))) => return reject(&mut inb, status).await,
            // Closed between requests, timed out, or failed.
            Ok(None) | Err(_) => return,
        };
        let mut stopping = false;
        let next = {
            let exchange = respond(
                &shared, &ctx, &in_flight, &mut inb, &mut out, head, &closing,
            );
            tokio::pin!(exchange);
            tokio::select! {
                biased;
                next = exchange.as_mut() => next,
                _ = stop.as_mut() => {
                    stopping = true;
                    tokio::time::timeout(grace, exchange).await.unwrap_or(Next::Close)
                }
            }
        };
        match next {
            Next::KeepAlive if !stopping => {
                // One large message must not pin large buffers to an idle
                // connection.
                if out.capacity() > COPY_MAX {
                    out = BytesMut::new();
                }
                if inb.buf.is_empty() && inb.buf.capacity() > COPY_MAX {
                    inb.buf = BytesMut::new();
                }
            }
            Next::KeepAlive | Next::Close if stopping => return,
            Next::KeepAlive | Next::Close => return close_gracefully(&mut inb).await,
            Next::Tunnel(tunnel) => {
                // Bytes the client sent past the request belong to the new
                // protocol; copied out so the tunnel does not keep the whole
                // read buffer alive.
                let ahead = Bytes::copy_from_slice(&inb.buf);
                let client = inb.io.into_inner().into_tunnel();
                upgrade::spawn_tunnel(&shared.tunnel_ctx(), client, ahead, tunnel);
                return;
            }
        }
    }
}

/// Reads until a whole request head is in the buffer. `Ok(None)`: the
/// client closed (or closed in the middle of a head); `Some(Err(status))`:
/// the head is refused with that status.
async fn read_head<I: AsyncRead + AsyncWrite + Unpin>(
    inb: &mut Inbound<I>,
    max_head: usize,
) -> io::Result<Option<Result<Head, StatusCode>>> {
    loop {
        if !inb.buf.is_empty() {
            match parse_request(&mut inb.buf, max_head) {
                Ok(Some(head)) => return Ok(Some(Ok(head))),
                Ok(None) => {}
                Err(status) => return Ok(Some(Err(status))),
            }
        }
        let n = std::future::poll_fn(|cx| pool::poll_fill(&mut inb.io, &mut inb.buf, cx)).await?;
        if n == 0 {
            return Ok(None);
        }
    }
}

/// Parses the request head at the start of `buf` and removes it from
/// `buf`; `Ok(None)` (and `buf` untouched) if the head is not complete yet.
/// Header values and the target are slices of the bytes read, not copies.
fn parse_request(buf: &mut BytesMut, max_head: usize) -> Result<Option<Head>, StatusCode> {
    normalize_version(buf)?;
    let data = buf.split().freeze();
    match parse_head(&data, max_head) {
        Ok(Some((len, head))) => {
            // Usually nothing: a body or a pipelined request.
            buf.extend_from_slice(&data[len..]);
            Ok(Some(head))
        }
        Ok(None) => {
            // Put the bytes back in front of the spare capacity (no copy:
            // nothing else refers to them).
            let mut front = data
                .try_into_mut()
                .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
            front.unsplit(std::mem::take(buf));
            *buf = front;
            Ok(None)
        }
        Err(status) => Err(status),
    }
}

/// RFC 9110 §2.5: a request line of `HTTP/1.x` with a minor version above 1 is handled as
/// 1.1 (httparse only knows 1.0 and 1.1, so the digit is rewritten in place); a major version
/// above 1 in an HTTP/1 request line is a 505.
fn normalize_version(buf: &mut BytesMut) -> Result<(), StatusCode> {
    // The line ends at the first LF (httparse, like nginx, also takes a bare LF: RFC 9112 §2.2).
    let Some(lf) = buf.iter().position(|b| *b == b'\n') else {
        return Ok(());
    };
    let eol = if lf > 0 && buf[lf - 1] == b'\r' {
        lf - 1
    } else {
        lf
    };
    let line = &buf[..eol];
    if line.len() < 8 {
        return Ok(());
    }
    let v = &line[line.len() - 8..];
    if !(v.starts_with(b"HTTP/") && v[6] == b'.' && v[5].is_ascii_digit() && v[7].is_ascii_digit())
    {
        return Ok(());
    }
    match (v[5], v[7]) {
        (b'1', b'0' | b'1') => Ok(()),
        (b'1', _) => {
            buf[eol - 1] = b'1';
            Ok(())
        }
        (b'0', _) => Err(StatusCode::BAD_REQUEST),
        _ => Err(StatusCode::HTTP_VERSION_NOT_SUPPORTED),
    }
}

fn parse_head(data: &Bytes, max_head: usize) -> Result<Option<(usize, Head)>, StatusCode> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_request_with_uninit_headers(&mut req, data, &mut slots)
    {
        Ok(httparse::Status::Complete(n)) if n > max_head => return Err(too_large(data, max_head)),
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if data.len() > max_head => {
            return Err(too_large(data, max_head))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        }
        // Refusals wait for the request line's end: whether the version makes it a 505 (or a
        // 1.x to normalise, `normalize_version`) is known only there, and the answer must not
        // depend on where a read happened to stop (httparse refuses `HTTP/2.` or a bad method
        // byte as soon as it sees them).
        Err(_) if !data.contains(&b'\n') => {
            return if data.len() > max_head {
                Err(too_large(data, max_head))
            } else {
                Ok(None)
            };
        }
        Err(_) => return Err(StatusCode::BAD_REQUEST),
    };
    let bad = StatusCode::BAD_REQUEST;
    let method = Method::from_bytes(req.method.unwrap_or_default().as_bytes()).map_err(|_| bad)?;
    // A gateway, not a forward proxy: CONNECT is not a method it serves.
    if method == Method::CONNECT {
        return Err(StatusCode::METHOD_NOT_ALLOWED);
    }
    let target = req.path.unwrap_or_default();
    if target.len() > MAX_TARGET {
        return Err(StatusCode::URI_TOO_LONG);
    }
    let uri = Uri::from_maybe_shared(data.slice_ref(target.as_bytes())).map_err(|_| bad)?;
    // A malformed escape in the path is a bad request line (the path is normalised later).
    if normalize::normalize_path(uri.path()).is_none() {
        return Err(bad);
    }
    let http10 = req.version == Some(0);
    // Room for the forwarding headers the proxy adds (`x-forwarded-for`,
    // `-proto`, `x-request-id`) without growing the map.
    let mut headers = HeaderMap::with_capacity(req.headers.len() + 4);
    let (mut length, mut te, mut chunked) = (None::<u64>, false, false);
    let (mut close, mut keep_alive, mut expect) = (false, false, false);
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| bad)?;
        if name == header::HOST {
            hosts += 1;
            if !normalize::valid_host(h.value) {
                return Err(bad);
            }
        } else if name == header::CONTENT_LENGTH {
            // `5, 5` is one length (RFC 9110 §8.6); differing ones are a 400.
            for v in h.value.split(|b| *b == b',') {
                let n = std::str::from_utf8(v)
                    .ok()
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(bad)?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad);
                }
                length = Some(n);
            }
            // Forwarded as one normalised value, below.
            continue;
        } else if name == header::TRANSFER_ENCODING {
            // Only `chunked` is implemented: any other coding is a 501, as nginx answers
            // (RFC 9112 §6.1), and chunked twice cannot be undone once.
            for coding in h.value.split(|b| *b == b',') {
                let coding = coding.trim_ascii();
                if coding.is_empty() {
                    continue;
                }
                if !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(StatusCode::NOT_IMPLEMENTED);
                }
                if chunked {
                    return Err(bad);
                }
                chunked = true;
            }
            te = true;
        } else if name == header::CONNECTION {
            for t in h.value.split(|b| *b == b',') {
                let t = t.trim_ascii();
                close |= t.eq_ignore_ascii_case(b"close");
                keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name == header::EXPECT {
            expect = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
        }
        // SAFETY: httparse accepts exactly the bytes `HeaderValue` allows
        // (HTAB, 0x20-0x7E and obs-text), so the value need not be checked
        // again.
        let value = unsafe { HeaderValue::from_maybe_shared_unchecked(data.slice_ref(h.value)) };
        headers.append(name, value);
    }
    // RFC 9112 §3.2: a 1.1 request without Host, or with two, is a 400.
    if hosts > 1 || (hosts == 0 && !http10) {
        return Err(bad);
    }
    // §3.2.2: with an absolute-form target, the target's authority is the
    // host (for routing and towards the backend).
    if let Some(authority) = uri.authority() {
        // Userinfo has no place in a request target (RFC 9110 §4.2.4).
        if authority.as_str().contains('@') || !normalize::valid_host(authority.as_str().as_bytes())
        {
            return Err(bad);
        }
        let v = HeaderValue::from_str(authority.as_str()).map_err(|_| bad)?;
        headers.insert(header::HOST, v);
    }
    let body = if te {
        // RFC 9112 §6.1: no transfer codings in 1.0; §6.3: a request whose
        // last coding is not chunked cannot be delimited. Its Content-Length
        // (if any) was not kept.
        if http10 || !chunked {
            return Err(bad);
        }
        BodyState::Chunked(ChunkState::Size)
    } else {
        match length {
            None => BodyState::Done,
            Some(n) => {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
                if n == 0 {
                    BodyState::Done
                } else {
                    BodyState::Length(n)
                }
            }
        }
    };
    let mut r = Request::new(());
    *r.method_mut() = method;
    *r.uri_mut() = uri;
    *r.version_mut() = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    *r.headers_mut() = headers;
    Ok(Some((
        len,
        Head {
            req: r,
            body,
            // §6.1: after a request with both Transfer-Encoding and
            // Content-Length the connection is closed (a smuggling guard).
            keep_alive: !(close || (http10 && !keep_alive) || (te && length.is_some())),
            expect_continue: expect && !http10 && body != BodyState::Done,
        },
    )))
}

/// Why a head over the limit is refused: 414 when the request line alone
/// does not fit (as nginx answers), else 431.
fn too_large(data: &[u8], max_head: usize) -> StatusCode {
    if data[..max_head.min(data.len())].contains(&b'\n') {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    } else {
        StatusCode::URI_TOO_LONG
    }
}

/// Handles one request and writes its response.
async fn respond<I: ClientStream>(
    shared: &Arc<Shared>,
    ctx: &Arc<ConnCtx>,
    in_flight: &Arc<InFlight>,
    inb: &mut Inbound<I>,
    out: &mut BytesMut,
    head: Head,
    closing: &watch::Receiver<bool>,
) -> Next {
    let Head {
        req,
        body,
        keep_alive,
        expect_continue,
    } = head;
    inb.body = body;
    inb.expect = expect_continue.then_some(0);
    let is_head = req.method() == Method::HEAD;
    let http10 = req.version() == Version::HTTP_10;
    let busy = in_flight.start();
    let reply = forward::handle(shared, ctx, req.map(|()| ReqBody { inb: &mut *inb })).await;
    drop(busy);
    // Everything up to the write is synchronous, so the response is written
    // at one await point (a smaller future to move per request).
    let (next, framing, mut body) =
        prepare_reply(out, reply, &mut *inb, keep_alive, is_head, http10, closing);
    let clocks = WriteClocks {
        deadline: body.deadline(),
        stall: shared.opts.idle_timeout,
    };
    let mut sent = false;
    match write_body(&mut inb.io, out, &mut body, framing, clocks, &mut sent).await {
        Ok(()) => next,
        // The backend's body broke before a byte went out (a malformed first chunk, say):
        // the client gets a 502, as Envoy and nginx answer, instead of an empty reply.
        Err(error) if !sent && error.kind() != io::ErrorKind::TimedOut => {
            tracing::debug!(%error, "backend response broke before it was sent; answering 502");
            out.clear();
            let (parts, mut local) = forward::local_reply(StatusCode::BAD_GATEWAY, "").into_parts();
            let mut keep_alive = false;
            let framing = encode_head(out, &parts, None, &local, false, false, &mut keep_alive);
            let _ = write_body(&mut inb.io, out, &mut local, framing, clocks, &mut sent).await;
            Next::Close
        }
        Err(error) => {
            tracing::debug!(%error, "response ended early; closing the client connection");
            Next::Close
        }
    }
}

/// Encodes the response head into `out`; returns what follows the
/// response, the body's framing and the body.
fn prepare_reply<I>(
    out: &mut BytesMut,
    reply: forward::Reply,
    inb: &mut Inbound<I>,
    keep_alive: bool,
    is_head: bool,
    http10: bool,
    closing: &watch::Receiver<bool>,
) -> (Next, Framing, ProxyBody) {
    let forward::Reply {
        response,
        raw_head,
        tunnel,
    } = reply;
    let (parts, body) = response.into_parts();
    let raw = raw_head.as_ref();
    if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(tunnel) = tunnel else {
            // A 101 the request did not ask for: nothing to switch to.
            tracing::debug!("backend switched protocols unasked: 502");
            let (p, b) = forward::local_reply(StatusCode::BAD_GATEWAY, "").into_parts();
            let framing = encode_head(out, &p, None, &b, is_head, http10, &mut false);
            return (Next::Close, framing, b);
        };
        encode_head(out, &parts, raw, &body, false, false, &mut true);
        return (Next::Tunnel(tunnel), Framing::None, body);
    }
    // A body the handler left unread (a 404, an early answer) that is
    // already here in full is dropped; one still on its way, or a
    // `100 Continue` never sent, leaves the connection out of step: close.
    if let BodyState::Length(rest) = inb.body {
        if inb.buf.len() as u64 >= rest {
            inb.buf.advance(rest as usize);
            inb.body = BodyState::Done;
            inb.expect = None;
        }
    }
    let mut keep_alive =
        keep_alive && inb.body == BodyState::Done && inb.expect.is_none() && !*closing.borrow();
    let framing = encode_head(out, &parts, raw, &body, is_head, http10, &mut keep_alive);
    let next = if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    };
    (next, framing, body)
}

/// How a response body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    Chunked,
    /// Delimited by closing the connection (1.0 clients, unknown length).
    UntilClose,
}

/// Encodes the status line and headers into `out` and picks the body's
/// framing; clears `keep_alive` when the framing needs the connection
/// closed, and says `connection: close` whenever it is false. `raw`: the
/// backend's fields as received, copied without the hop-by-hop ones and
/// `server`, which becomes AGC's.
fn encode_head(
    out: &mut BytesMut,
    parts: &http::response::Parts,
    raw: Option<&RawHead>,
    body: &ProxyBody,
    is_head: bool,
    http10: bool,
    keep_alive: &mut bool,
) -> Framing {
    let status = parts.status;
    let upgrade = status == StatusCode::SWITCHING_PROTOCOLS;
    let no_body = is_head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    // The body's framing is the proxy's own, whatever the headers say: a
    // given Content-Length is kept only where no body follows it (HEAD,
    // 304: it tells the length a GET would get); none in 1xx and 204
    // (RFC 9110 §8.6). Transfer-Encoding and Connection are hop-by-hop.
    let keep_length = no_body && !(status.is_informational() || status == StatusCode::NO_CONTENT);
    out.reserve(256 + parts.headers.len() * 64);
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(status.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.put_slice(b"\r\n");
    let mut has_date = false;
    for (name, value) in &parts.headers {
        if (name == header::CONTENT_LENGTH && !keep_length)
            || name == header::TRANSFER_ENCODING
            || (name == header::CONNECTION && !upgrade)
        {
            continue;
        }
        has_date |= name == header::DATE;
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if let Some(raw) = raw {
        let connection = || {
            raw.fields()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
                .map(|(_, v)| v)
        };
        let named = connection().any(|v| !is_only_options(v));
        for (name, line) in raw.lines() {
            match Field::of(name) {
                Field::HopByHop | Field::Server => continue,
                Field::ContentLength if !keep_length => continue,
                Field::Date => has_date = true,
                Field::Other if named && forward::named_in_connection(connection(), name) => {
                    continue
                }
                Field::ContentLength | Field::Other => {}
            }
            out.put_slice(&line);
        }
        out.put_slice(b"server: ");
        out.put_slice(AGC_SERVER_NAME.as_bytes());
        out.put_slice(b"\r\n");
    }
    if !has_date {
        out.put_slice(b"date: ");
        put_date(out);
        out.put_slice(b"\r\n");
    }
    let framing = if no_body {
        Framing::None
    } else if let Some(n) = body.size_hint().exact() {
        out.put_slice(b"content-length: ");
        out.put_slice(itoa(n, &mut [0; 20]));
        out.put_slice(b"\r\n");
        Framing::Length(n)
    } else if !http10 {
        out.put_slice(b"transfer-encoding: chunked\r\n");
        Framing::Chunked
    } else {
        *keep_alive = false;
        Framing::UntilClose
    };
    if !upgrade {
        if !*keep_alive {
            out.put_slice(b"connection: close\r\n");
        } else if http10 {
            out.put_slice(b"connection: keep-alive\r\n");
        }
    }
    out.put_slice(b"\r\n");
    framing
}

/// What the response encoder needs to know about a backend's field name.
#[derive(Debug, PartialEq, Eq)]
enum Field {
    HopByHop,
    Server,
    ContentLength,
    Date,
    Other,
}

impl Field {
    /// One length switch and at most two comparisons per name: this runs
    /// for every field of every response.
    fn of(name: &[u8]) -> Field {
        let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
        match name.len() {
            4 if is(b"date") => Field::Date,
            6 if is(b"server") => Field::Server,
            14 if is(b"content-length") => Field::ContentLength,
            2 | 7 | 10 | 16 | 17 if forward::is_hop_by_hop(name) => Field::HopByHop,
            21 if is(forward::ORCA_HEADER.as_bytes()) => Field::HopByHop,
            _ => Field::Other,
        }
    }
}

/// Whether a `Connection` value holds only the `close`, `keep-alive` and
/// `upgrade` options (no field names to drop), as most do.
fn is_only_options(value: &[u8]) -> bool {
    value.split(|b| *b == b',').all(|t| {
        let t = t.trim_ascii();
        t.is_empty()
            || t.eq_ignore_ascii_case(b"close")
            || t.eq_ignore_ascii_case(b"keep-alive")
            || t.eq_ignore_ascii_case(b"upgrade")
    })
}

fn itoa(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Appends the current time as an HTTP date, formatted once per second per
/// thread.
fn put_date(out: &mut BytesMut) {
    use std::cell::RefCell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs || text.is_empty() {
            *at = secs;
            *text = httpdate::fmt_http_date(now);
        }
        out.put_slice(text.as_bytes());
    });
}

/// What polling a response body gave.
enum Polled {
    /// Nothing now: write what is gathered, then wait.
    Wait,
    Frame(Option<Result<Frame<Bytes>, io::Error>>),
}

/// The clocks a response write runs under: a client that stops reading blocks the write, and
/// the body is then not polled, so its own request timeout could not fire.
#[derive(Clone, Copy)]
struct WriteClocks {
    /// The route's request timeout (AGC's is strict, even while the response streams).
    deadline: Option<tokio::time::Instant>,
    /// How long one write may make no progress: the idle timeout (neither side moved).
    stall: std::time::Duration,
}

impl WriteClocks {
    async fn write_all<W: AsyncWrite + Unpin>(self, io: &mut W, buf: &[u8]) -> io::Result<()> {
        let stalled = tokio::time::Instant::now() + self.stall;
        let limit = self.deadline.map_or(stalled, |d| d.min(stalled));
        match tokio::time::timeout_at(limit, io.write_all(buf)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read the response in time",
            )),
        }
    }
}

/// Writes the encoded head in `out` and the body after it: everything the
/// body has ready goes out in one write.
async fn write_body<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut BytesMut,
    body: &mut ProxyBody,
    framing: Framing,
    clocks: WriteClocks,
    sent: &mut bool,
) -> io::Result<()> {
    let result = write_body_inner(io, out, body, framing, clocks, sent).await;
    out.clear();
    result
}

async fn write_body_inner<W: AsyncWrite + Unpin>(
    io: &mut W,
    out: &mut BytesMut,
    body: &mut ProxyBody,
    framing: Framing,
    clocks: WriteClocks,
    sent: &mut bool,
) -> io::Result<()> {
    if framing == Framing::None {
        clocks.write_all(io, out).await?;
        *sent = true;
        return io.flush().await;
    }
    let chunked = framing == Framing::Chunked;
    // A body that does not match the length already sent would desync
    // the client: it fails the response (and closes the connection).
    let mut left = match framing {
        Framing::Length(n) => Some(n),
        _ => None,
    };
    let mismatch = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "body length differs from content-length",
        )
    };
    loop {
        let polled = std::future::poll_fn(|cx| match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending if !out.is_empty() => Poll::Ready(Polled::Wait),
            Poll::Pending => Poll::Pending,
            Poll::Ready(frame) => Poll::Ready(Polled::Frame(frame)),
        })
        .await;
        let data = match polled {
            Polled::Wait => {
                clocks.write_all(io, out).await?;
                *sent = true;
                io.flush().await?;
                out.clear();
                continue;
            }
            Polled::Frame(None) => {
                if left.is_some_and(|n| n > 0) {
                    return Err(mismatch());
                }
                if chunked {
                    out.put_slice(b"0\r\n\r\n");
                }
                clocks.write_all(io, out).await?;
                *sent = true;
                return io.flush().await;
            }
            Polled::Frame(Some(Err(e))) => return Err(e),
            Polled::Frame(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => data,
                _ => continue, // trailers are not forwarded
            },
        };
        if let Some(n) = &mut left {
            *n = n.checked_sub(data.len() as u64).ok_or_else(mismatch)?;
        }
        if chunked {
            out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
        }
        if data.len() <= COPY_MAX {
            out.put_slice(&data);
        } else {
            clocks.write_all(io, out).await?;
            *sent = true;
            out.clear();
            clocks.write_all(io, &data).await?;
            *sent = true;
        }
        if chunked {
            out.put_slice(b"\r\n");
        }
        if out.len() >= COPY_MAX {
            clocks.write_all(io, out).await?;
            *sent = true;
            out.clear();
        }
    }
}

/// Answers a refused request head and closes, after reading (and
/// discarding) what the client still sends for a moment, so the answer is
/// not lost to a reset.
async fn reject<I: ClientStream>(inb: &mut Inbound<I>, status: StatusCode) {
    tracing::debug!(%status, "refused a request head");
    let mut out = BytesMut::new();
    let resp = forward::local_reply(status, "");
    let (parts, mut body) = resp.into_parts();
    let mut keep_alive = false;
    let framing = encode_head(&mut out, &parts, None, &body, false, false, &mut keep_alive);
    // A refusal is tiny; a client that will not take it in 10 s is not waited for.
    let clocks = WriteClocks {
        deadline: None,
        stall: std::time::Duration::from_secs(10),
    };
    if write_body(
        &mut inb.io,
        &mut out,
        &mut body,
        framing,
        clocks,
        &mut false,
    )
    .await
    .is_err()
    {
        return;
    }
    close_gracefully(inb).await;
}

/// Closes a connection after its last response: the write side first (a
/// TLS client gets its close_notify), then what the client still sends (an
/// unread body, say) is read and dropped for a moment, so that a reset does
/// not destroy the response before the client has read it (RFC 9112 §9.6).
async fn close_gracefully<I: ClientStream>(inb: &mut Inbound<I>) {
    let _ = tokio::time::timeout(Duration::from_secs(1), inb.io.shutdown()).await;
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = 1usize << 20;
        while left > 0 {
            match inb.io.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// A request body read from the client connection, in the request's task.
pub(crate) struct ReqBody<'a, I> {
    inb: &'a mut Inbound<I>,
}

impl<I: AsyncRead + AsyncWrite + Unpin> Inbound<I> {
    /// Writes the `100 Continue` the client waits for, if one is owed.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
        if let Some(mut off) = self.expect {
            while off < CONTINUE.len() {
                let n = ready!(Pin::new(&mut self.io).poll_write(cx, &CONTINUE[off..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                off += n;
                self.expect = Some(off);
            }
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
            self.expect = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> Body for ReqBody<'_, I> {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let inb = &mut *self.get_mut().inb;
        if inb.body == BodyState::Done {
            return Poll::Ready(None);
        }
        ready!(inb.poll_continue(cx))?;
        loop {
            match &mut inb.body {
                BodyState::Done => return Poll::Ready(None),
                BodyState::Length(rest) => {
                    if !inb.buf.is_empty() {
                        let n = (*rest).min(inb.buf.len() as u64) as usize;
                        let data = inb.buf.split_to(n).freeze();
                        *rest -= n as u64;
                        if *rest == 0 {
                            inb.body = BodyState::Done;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                BodyState::Chunked(st) => match pool::decode_chunked(&mut inb.buf, st) {
                    Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(Step::Done) => {
                        inb.body = BodyState::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Step::NeedMore) => {}
                    Err(reason) => {
                        return Poll::Ready(Some(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            reason,
                        ))))
                    }
                },
            }
            match ready!(pool::poll_fill(&mut inb.io, &mut inb.buf, cx)) {
                Ok(0) => {
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "client closed the connection in the middle of the request body",
                    ))))
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inb.body == BodyState::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.inb.body {
            BodyState::Done => SizeHint::with_exact(0),
            BodyState::Length(n) => SizeHint::with_exact(n),
            BodyState::Chunked(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
