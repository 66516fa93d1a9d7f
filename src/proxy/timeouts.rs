//! Client connection timeouts, enforced in the connection's IO.
//!
//! Two clocks, as AGC runs them: an idle connection (no request in flight,
//! nothing written) is closed after the idle timeout (AGC: 5 min), and a
//! client that has started a request head must finish it within the
//! header-read timeout (slow clients). hyper's own `header_read_timeout`
//! would not do: its timer also runs while a keep-alive connection waits for
//! its next request, so idle connections closed after 30 s. While a request
//! is in flight neither clock runs; the route's request timeout applies.
//!
//! The request handler marks requests in flight on a shared counter
//! ([`InFlight`]); the IO sees the rest. One timer per connection, re-armed
//! only when its deadline moves.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests of one connection being handled (h2 multiplexes several).
#[derive(Debug, Default)]
pub struct InFlight(AtomicUsize);

impl InFlight {
    /// Marks a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlightGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(self.clone())
    }

    fn busy(&self) -> bool {
        self.0.load(Ordering::Relaxed) > 0
    }
}

/// See [`InFlight::start`].
pub struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request: the idle clock runs.
    Idle,
    /// Part of a request head has arrived: the header clock runs.
    Head,
}

/// Client connection IO with the idle and header-read timeouts. An expired
/// clock makes reads fail with `TimedOut`, which ends the connection.
pub struct TimedIo<T> {
    inner: T,
    in_flight: Arc<InFlight>,
    idle: Duration,
    /// `None` for h2, whose frames do not delimit request heads.
    header: Option<Duration>,
    phase: Phase,
    deadline: Instant,
    /// Armed at `armed`; reset only when `deadline` differs.
    sleep: Pin<Box<Sleep>>,
    armed: Instant,
}

impl<T> TimedIo<T> {
    pub fn new(
        inner: T,
        in_flight: Arc<InFlight>,
        idle: Duration,
        header: Option<Duration>,
    ) -> Self {
        let deadline = Instant::now() + idle;
        TimedIo {
            inner,
            in_flight,
            idle,
            header,
            phase: Phase::Idle,
            deadline,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: deadline,
        }
    }

    pub fn into_inner(self) -> T {
        self.inner
    }

    /// Whether the running clock has expired (registers for a wake-up when
    /// it has not). Called only when a read would wait.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.in_flight.busy() || self.idle.is_zero() {
            return false;
        }
        if self.armed != self.deadline {
            self.sleep.as_mut().reset(self.deadline);
            self.armed = self.deadline;
        }
        self.sleep.as_mut().poll(cx).is_ready()
    }
}

use std::future::Future;

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && self.phase == Phase::Idle {
                    if let Some(h) = self.header {
                        if !self.in_flight.busy() {
                            self.phase = Phase::Head;
                            self.deadline = Instant::now() + h;
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.expired(cx) => {
                let what = match self.phase {
                    Phase::Idle => "idle timeout",
                    Phase::Head => "request head not received in time",
                };
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, b);
        self.wrote(&res);
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(&res);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T> TimedIo<T> {
    /// A response going out with no request in flight: the connection is
    /// (again) waiting for a request, so the idle clock restarts.
    fn wrote(&mut self, res: &Poll<io::Result<usize>>) {
        if matches!(res, Poll::Ready(Ok(n)) if *n > 0) && !self.in_flight.busy() {
            self.phase = Phase::Idle;
            self.deadline = Instant::now() + self.idle;
        }
    }
}

/// Resolves once `rx` holds `true` (or its sender is gone): how connections, tunnels and
/// accept loops learn to stop. Returns nothing, so no `watch` guard is held across an await.
pub(crate) async fn signalled(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const T: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn idle_connections_close_after_the_idle_timeout() {
        let (client, server) = tokio::io::duplex(64);
        let flight = Arc::new(InFlight::default());
        let mut io = TimedIo::new(
            server,
            flight,
            Duration::from_secs(300),
            Some(Duration::from_secs(30)),
        );
        let started = Instant::now();
        let mut b = [0u8; 8];
        let err = tokio::time::timeout(Duration::from_secs(400), io.read(&mut b))
            .await
            .expect("closed before 400 s")
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(300));
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_started_head_must_finish_within_the_header_timeout() {
        let (mut client, server) = tokio::io::duplex(64);
        let flight = Arc::new(InFlight::default());
        let mut io = TimedIo::new(
            server,
            flight,
            Duration::from_secs(300),
            Some(Duration::from_secs(30)),
        );
        tokio::time::sleep(Duration::from_secs(100)).await;
        client.write_all(b"GET / HT").await.unwrap();
        let mut b = [0u8; 8];
        assert_eq!(io.read(&mut b).await.unwrap(), 8);
        let started = Instant::now();
        let err = tokio::time::timeout(T * 100, io.read(&mut b))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn no_clock_runs_while_a_request_is_in_flight_and_a_response_restarts_idle() {
        let (mut client, server) = tokio::io::duplex(64);
        let flight = Arc::new(InFlight::default());
        let mut io = TimedIo::new(
            server,
            flight.clone(),
            Duration::from_secs(300),
            Some(Duration::from_secs(30)),
        );
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut b = [0u8; 64];
        assert_eq!(io.read(&mut b).await.unwrap(), 18);
        let guard = flight.start();
        // A slow backend: an hour with the request in flight.
        let pending = tokio::time::timeout(Duration::from_secs(3600), io.read(&mut b)).await;
        assert!(pending.is_err(), "a request in flight was cut off");
        drop(guard);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let started = Instant::now();
        let err = tokio::time::timeout(T * 100, io.read(&mut b))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            started.elapsed(),
            Duration::from_secs(300),
            "idle clock, not header clock"
        );
    }
}
