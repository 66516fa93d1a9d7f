//! `RequestMirror` (AGC 1.12.1+): a copy of each selected request goes to
//! another backend. The copy's response is read and dropped; its latency and
//! failures never touch the primary request.
//!
//! A request body is teed: each chunk the primary request reads is also
//! queued for the mirror (a `Bytes` clone, no copy). The queue is bounded by
//! [`MAX_TEED_BYTES`]; past that the mirror request is aborted rather than
//! let the proxy buffer an upload for a slow mirror backend.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::proxy::pool::{Forwarding, Pool, TlsTarget};

/// Most request-body bytes queued for one mirror.
pub const MAX_TEED_BYTES: usize = 8 * 1024 * 1024;

/// What a mirror's body channel carries: a chunk, or the news that the tee
/// gave up (budget exceeded or the client body failed).
type Item = Result<Bytes, ()>;

/// The primary request's body, copying its data chunks to mirrors.
pub struct Tee<B> {
    inner: B,
    copies: Vec<(mpsc::UnboundedSender<Item>, usize)>,
}

impl<B: Body<Data = Bytes>> Tee<B> {
    /// Wraps `inner`; returns one body per mirror.
    pub fn new(inner: B, mirrors: usize) -> (Self, Vec<MirrorBody>) {
        let hint = inner.size_hint();
        let end = inner.is_end_stream();
        let mut copies = Vec::new();
        let mut bodies = Vec::new();
        for _ in 0..mirrors {
            let (tx, rx) = mpsc::unbounded_channel();
            if !end {
                copies.push((tx, 0));
            }
            bodies.push(MirrorBody { rx, hint, end });
        }
        (Tee { inner, copies }, bodies)
    }
}

impl<B> Body for Tee<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let res = Pin::new(&mut self.inner).poll_frame(cx);
        if !self.copies.is_empty() {
            match &res {
                Poll::Ready(Some(Ok(frame))) => {
                    if let Some(data) = frame.data_ref() {
                        self.copies.retain_mut(|(tx, sent)| {
                            *sent += data.len();
                            if *sent > MAX_TEED_BYTES {
                                let _ = tx.send(Err(()));
                                return false;
                            }
                            tx.send(Ok(data.clone())).is_ok()
                        });
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    for (tx, _) in self.copies.drain(..) {
                        let _ = tx.send(Err(()));
                    }
                }
                // End of body: dropping the senders ends the copies.
                Poll::Ready(None) => self.copies.clear(),
                Poll::Pending => {}
            }
        }
        if self.inner.is_end_stream() {
            self.copies.clear();
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

impl<B> Drop for Tee<B> {
    /// Dropped before its end (the primary request failed or the client
    /// left): the mirrors' copies are incomplete.
    fn drop(&mut self) {
        for (tx, _) in self.copies.drain(..) {
            let _ = tx.send(Err(()));
        }
    }
}

/// A mirror's copy of the request body.
pub struct MirrorBody {
    rx: mpsc::UnboundedReceiver<Item>,
    hint: SizeHint,
    end: bool,
}

/// Why a mirror's body ended early.
#[derive(Debug, thiserror::Error)]
#[error("the mirrored request body was not copied whole")]
pub struct Abandoned;

impl Body for MirrorBody {
    type Data = Bytes;
    type Error = Abandoned;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Abandoned>>> {
        if self.end {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Err(()))) => Poll::Ready(Some(Err(Abandoned))),
            Poll::Ready(None) => {
                self.end = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

/// Sends `req` to `addr` in the background and discards the answer. `tls`:
/// connect with TLS, sending this server name.
pub fn spawn(
    pool: Arc<Pool>,
    addr: SocketAddr,
    req: Request<MirrorBody>,
    timeout: Duration,
    tls: Option<Option<String>>,
    fwd: Forwarding,
) {
    tokio::spawn(async move {
        let send = async {
            let tls = tls.as_ref().map(|sni| TlsTarget {
                sni: sni.as_deref(),
            });
            let fwd = pool
                .forward(addr, None, req, false, tls, Some(&fwd))
                .await?;
            let status = fwd.response.status();
            // Read to the end so the connection goes back to the pool.
            let _ = fwd.response.into_body().collect().await;
            Ok::<_, crate::proxy::pool::UpstreamError>(status)
        };
        match tokio::time::timeout(timeout, send).await {
            Ok(Ok(status)) => tracing::debug!(%addr, %status, "mirrored request answered"),
            Ok(Err(error)) => tracing::debug!(%addr, %error, "mirrored request failed"),
            Err(_) => tracing::debug!(%addr, "mirrored request timed out"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    fn stream(chunks: &[&'static str]) -> impl Body<Data = Bytes, Error = Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn the_primary_and_every_mirror_get_the_whole_body() {
        let (tee, mirrors) = Tee::new(stream(&["ab", "cd", "e"]), 2);
        let primary = tee.collect().await.unwrap().to_bytes();
        assert_eq!(&primary[..], b"abcde");
        for m in mirrors {
            assert_eq!(&m.collect().await.unwrap().to_bytes()[..], b"abcde");
        }
    }

    #[tokio::test]
    async fn an_empty_body_gives_empty_mirrors() {
        let (_tee, mirrors) = Tee::new(http_body_util::Empty::<Bytes>::new(), 1);
        for m in mirrors {
            assert!(m.is_end_stream());
            assert!(m.collect().await.unwrap().to_bytes().is_empty());
        }
    }

    #[tokio::test]
    async fn a_mirror_is_abandoned_past_the_budget() {
        let big = vec![Bytes::from(vec![b'x'; MAX_TEED_BYTES / 2 + 1]); 3];
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            big.into_iter().map(|b| Ok(Frame::data(b))).collect();
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let (tee, mirrors) = Tee::new(body, 1);
        let primary = tee.collect().await.unwrap().to_bytes();
        assert_eq!(primary.len(), 3 * (MAX_TEED_BYTES / 2 + 1));
        for m in mirrors {
            assert!(m.collect().await.is_err());
        }
    }
}
