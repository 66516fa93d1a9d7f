//! The request timeout for h2 responses whose client stops reading.
//!
//! A streamed response carries its deadline ([`ProxyBody::Deadline`]) and is cut when hyper polls
//! it past that point. hyper's h2 server polls a body only while the client's flow-control
//! window is open, so a client that never reads would hold its stream (and the backend's
//! connection) until the 5-minute idle timeout. Each h2 connection therefore keeps the
//! deadlines of its streaming responses here, and closes itself when one is still streaming a
//! grace period after its deadline: a slow reader's body is polled in that time and fails
//! its own stream, a stalled one is not.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::proxy::forward::ProxyBody;

/// How long past its deadline a streaming body may go unpolled before the connection is closed.
pub const GRACE: Duration = Duration::from_secs(1);

/// The deadlines of one h2 connection's responses still streaming.
#[derive(Default)]
pub struct Deadlines {
    open: Mutex<BTreeMap<(Instant, u64), ()>>,
    next_id: std::sync::atomic::AtomicU64,
    changed: Notify,
}

impl Deadlines {
    /// Wraps a response body; a body with a deadline is tracked until it is dropped.
    pub fn track(self: &Arc<Self>, body: ProxyBody) -> TrackedBody {
        let key = body.deadline().map(|d| {
            let id = self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let key = (d, id);
            self.lock().insert(key, ());
            self.changed.notify_one();
            key
        });
        TrackedBody {
            body,
            key,
            owner: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Instant, u64), ()>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn earliest(&self) -> Option<Instant> {
        self.lock().keys().next().map(|(d, _)| *d)
    }

    /// Resolves when a tracked response is still streaming [`GRACE`] after its deadline.
    pub async fn overdue(&self) {
        loop {
            match self.earliest() {
                None => self.changed.notified().await,
                Some(d) => {
                    let at = d + GRACE;
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {
                            if self.earliest().is_some_and(|e| e + GRACE <= Instant::now()) {
                                return;
                            }
                        }
                        _ = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A response body that leaves its connection's [`Deadlines`] when dropped.
pub struct TrackedBody {
    body: ProxyBody,
    key: Option<(Instant, u64)>,
    owner: Arc<Deadlines>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.owner.lock().remove(&key);
            self.owner.changed.notify_one();
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_body_kept_past_its_deadline_makes_the_connection_overdue() {
        let d = Arc::new(Deadlines::default());
        let sleep = Box::pin(tokio::time::sleep(Duration::from_secs(2)));
        let body = d.track(ProxyBody::Deadline(
            crate::proxy::pool::UpstreamBody::empty(),
            sleep,
        ));
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), d.overdue())
            .await
            .expect("overdue");
        assert!(started.elapsed() >= Duration::from_secs(2) + GRACE);
        drop(body);
        assert_eq!(d.earliest(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_dropped_in_time_is_never_overdue() {
        let d = Arc::new(Deadlines::default());
        let sleep = Box::pin(tokio::time::sleep(Duration::from_secs(2)));
        let body = d.track(ProxyBody::Deadline(
            crate::proxy::pool::UpstreamBody::empty(),
            sleep,
        ));
        let local = d.track(ProxyBody::Local(None));
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(body);
        });
        let r = tokio::time::timeout(Duration::from_secs(30), d.overdue()).await;
        assert!(r.is_err(), "no body is overdue");
        drop(local);
    }
}
