//! How current the cache is: the store revision it reflects, when it last
//! heard from the store, and whether it is ready to serve. Authentication
//! fails closed once the cache is staler than `max_staleness`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

pub struct Freshness {
    revision: AtomicI64,
    last_sync_ms: AtomicI64,
    max_staleness_ms: i64,
    ready: AtomicBool,
}

impl Freshness {
    pub(crate) fn new(max_staleness_ms: i64) -> Self {
        Self {
            revision: AtomicI64::new(0),
            last_sync_ms: AtomicI64::new(0),
            max_staleness_ms,
            ready: AtomicBool::new(false),
        }
    }

    /// The store revision the cache reflects.
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    pub(crate) fn set_revision(&self, revision: i64) {
        self.revision.store(revision, Ordering::Release);
    }

    pub fn mark_synced(&self, now_ms: i64) {
        self.last_sync_ms.store(now_ms, Ordering::Release);
    }

    /// Milliseconds since the cache last heard from the store.
    pub fn staleness_ms(&self, now_ms: i64) -> i64 {
        now_ms - self.last_sync_ms.load(Ordering::Acquire)
    }

    /// Past `max_staleness` without the store: authentication fails closed.
    pub fn is_stale(&self, now_ms: i64) -> bool {
        self.staleness_ms(now_ms) > self.max_staleness_ms
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Ready to serve: the cache is loaded and the public listener accepts.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
}
