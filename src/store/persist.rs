//! The sled side of the store: one tree of objects keyed `group/plural/namespace/name` holding
//! JSON, and the last resourceVersion in the default tree.
//!
//! Durability is a group commit: writers wait until a single flusher thread has made their
//! resourceVersion stable, so concurrent writers share one `fsync`. (sled's own `flush_async`
//! deadlocks when many callers flush at once: every sled IO thread ends up waiting on the others.)

use super::StoreError;
use crate::resources::{by_plural, ResourceDef};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::watch;

const RV_KEY: &[u8] = b"resourceVersion";

/// The kind of a stored object.
pub(super) enum Kind {
    Known(&'static ResourceDef),
    /// (group, plural) of a kind no CRD serves yet.
    Unknown(String, String),
}

pub(super) struct Disk {
    db: sled::Db,
    objects: sled::Tree,
    flusher: Arc<Flusher>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the flusher thread has made durable, published to waiting writers.
#[derive(Debug, Clone, Default)]
struct Durable {
    /// Every write with a resourceVersion up to this one is on disk.
    upto: u64,
    /// The last flush failure, for writers that waited on it.
    error: Option<String>,
}

#[derive(Default)]
struct Request {
    /// The highest resourceVersion a writer is waiting for.
    upto: u64,
    /// Set when the store closes: the thread exits.
    closed: bool,
}

struct Flusher {
    requested: Mutex<Request>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
    /// Bytes of objects dropped since the allocator was last asked to return free memory.
    freed: std::sync::atomic::AtomicUsize,
}

/// After this many bytes of objects were dropped, the flush thread returns free heap pages to
/// the OS (glibc keeps them otherwise: large objects come from its arenas once its dynamic
/// mmap threshold has grown).
const TRIM_AFTER: usize = 16 << 20;

fn key(res: &ResourceDef, ns: &str, name: &str) -> Vec<u8> {
    format!("{}/{}/{}/{}", res.group, res.plural, ns, name).into_bytes()
}

impl Disk {
    pub(super) fn open(dir: &Path) -> Result<Disk, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("store"))
            // sled's default cache is 1 GiB; the working set lives in the in-memory maps anyway.
            .cache_capacity(8 * 1024 * 1024)
            .flush_every_ms(Some(100))
            .open()?;
        let objects = db.open_tree("objects")?;
        let last = db
            .get(RV_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0);
        let flusher = Arc::new(Flusher {
            requested: Mutex::new(Request::default()),
            wake: Condvar::new(),
            durable: watch::channel(Durable {
                upto: last,
                error: None,
            })
            .0,
            freed: std::sync::atomic::AtomicUsize::new(0),
        });
        let (thread_db, thread_flusher) = (db.clone(), flusher.clone());
        let thread = std::thread::Builder::new()
            .name("store-flush".into())
            .spawn(move || flush_loop(thread_db, thread_flusher))
            .map_err(|e| StoreError::Corrupt(format!("failed to start the flush thread: {e}")))?;
        Ok(Disk {
            db,
            objects,
            flusher,
            thread: Some(thread),
        })
    }

    pub(super) fn last_rv(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .get(RV_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Every stored object with its resource type (known now, or a group and plural that a
    /// CRD may define).
    pub(super) fn load(
        &self,
    ) -> Result<impl Iterator<Item = Result<(Kind, Value), StoreError>> + '_, StoreError> {
        Ok(self.objects.iter().map(|item| {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let mut parts = key.splitn(4, '/');
            let (group, plural) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let kind = match by_plural(group, plural) {
                Some(res) => Kind::Known(res),
                None => Kind::Unknown(group.to_string(), plural.to_string()),
            };
            let obj: Value = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
            Ok((kind, obj))
        }))
    }

    pub(super) fn put(
        &self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        obj: &Value,
        rv: u64,
    ) -> Result<usize, StoreError> {
        let bytes = serde_json::to_vec(obj).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let size = bytes.len();
        self.objects.insert(key(res, ns, name), bytes)?;
        self.db.insert(RV_KEY, &rv.to_be_bytes())?;
        Ok(size)
    }

    /// Records that objects of about `bytes` were let go; past [`TRIM_AFTER`] the flush thread
    /// trims the heap.
    pub(super) fn note_freed(&self, bytes: usize) {
        let before = self
            .flusher
            .freed
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        if before < TRIM_AFTER && before + bytes >= TRIM_AFTER {
            self.flusher.wake.notify_one();
        }
    }

    pub(super) fn remove(
        &self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        rv: u64,
    ) -> Result<(), StoreError> {
        self.objects.remove(key(res, ns, name))?;
        self.db.insert(RV_KEY, &rv.to_be_bytes())?;
        Ok(())
    }

    /// Waits until every write up to resourceVersion `rv` is on disk.
    pub(super) async fn flush(&self, rv: u64) -> Result<(), StoreError> {
        let mut rx = self.flusher.durable.subscribe();
        if rx.borrow().upto >= rv {
            return Ok(());
        }
        {
            let mut req = self
                .flusher
                .requested
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            req.upto = req.upto.max(rv);
        }
        self.flusher.wake.notify_one();
        let state = rx
            .wait_for(|d| d.upto >= rv || d.error.is_some())
            .await
            .map_err(|_| StoreError::Corrupt("the flush thread stopped".into()))?
            .clone();
        match state.error {
            Some(e) if state.upto < rv => {
                Err(StoreError::Corrupt(format!("failed to flush to disk: {e}")))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        // Stop the flush thread and wait for it, so its handle on the database is gone and
        // the directory's lock is released when the store is dropped.
        self.flusher
            .requested
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .closed = true;
        self.flusher.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Returns free heap memory to the OS (glibc's `malloc_trim`; a no-op elsewhere).
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Flushes whenever a writer asks, covering every write made before the flush started.
fn flush_loop(db: sled::Db, f: Arc<Flusher>) {
    loop {
        let target = {
            let mut req = f.requested.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if req.closed {
                    return;
                }
                if f.freed.load(std::sync::atomic::Ordering::Relaxed) >= TRIM_AFTER {
                    break 0;
                }
                if req.upto > f.durable.borrow().upto {
                    break req.upto;
                }
                req = f.wake.wait(req).unwrap_or_else(|e| e.into_inner());
            }
        };
        if f.freed.load(std::sync::atomic::Ordering::Relaxed) >= TRIM_AFTER {
            // The objects may still be referenced for a moment (a watch sending them); waiting
            // a little lets more of them go before the trim.
            std::thread::sleep(std::time::Duration::from_millis(200));
            f.freed.store(0, std::sync::atomic::Ordering::Relaxed);
            trim_heap();
            if target == 0 {
                continue;
            }
        }
        // Writes are inserted in resourceVersion order under the store lock before anyone asks
        // for them to be flushed, so this flush covers every rv up to `target`.
        match db.flush() {
            Ok(_) => f.durable.send_modify(|d| {
                d.upto = d.upto.max(target);
                d.error = None;
            }),
            Err(e) => {
                tracing::error!(cause = %e, "failed to flush the store to disk");
                f.durable.send_modify(|d| d.error = Some(e.to_string()));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}
