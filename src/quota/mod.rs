//! Quotas: how much an account, key or client credential may spend per UTC
//! day, calendar month or in all (`period = "none"`), where rate limits say
//! how fast. Every admitted request spends its route's `cost` from its
//! credential's quota and from its account's.
//!
//! - [`window`]: which window of a quota spending counts in;
//! - [`meter`]: the in-memory counters the request path spends from;
//! - [`traffic`]: requests per account, day, route and outcome;
//! - [`Metering`]: both, flushed to the store in batches (every
//!   [`FLUSH_EVERY`]), so a restart or a failover resets nothing; the store's
//!   totals come back with each flush, so replicas counting locally see each
//!   other's spending within one interval. With the Redis rate-limit backend
//!   the check itself is shared and exact (`ratelimit::redis`).

pub mod meter;
pub mod traffic;
pub mod window;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

pub use meter::{Charge, Meter, Spending};
pub use traffic::{Outcome, TrafficCounter};
pub use window::{window, Window};

use crate::clock::SharedClock;
use crate::store::{Spend, Store};

/// How often spending and traffic are written to the store.
pub const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// The quotas a request spends from: its credential's, then its account's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Charges {
    items: [Option<Charge>; 2],
}

impl Charges {
    pub fn new(credential: Option<Charge>, account: Option<Charge>) -> Self {
        Self {
            items: [credential, account],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.iter().all(Option::is_none)
    }

    /// The charges, in order, without gaps.
    pub fn to_array(self) -> ([Charge; 2], usize) {
        let mut out = [Charge {
            subject: uuid::Uuid::nil(),
            account: uuid::Uuid::nil(),
            limit: 0,
            window: Window { start: 0, end: 0 },
        }; 2];
        let mut n = 0;
        for c in self.items.into_iter().flatten() {
            out[n] = c;
            n += 1;
        }
        (out, n)
    }
}

/// What a quota check answered, for the response's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaDecision {
    pub allowed: bool,
    /// The quota that decided: the exhausted one, or the one with least left.
    pub limit: u64,
    pub remaining: u64,
    /// When its window ends, unix ms (`i64::MAX`: never).
    pub window: Window,
}

impl QuotaDecision {
    /// Seconds until the window turns; `None` for one that never does.
    pub fn reset_secs(&self, now_ms: i64) -> Option<u64> {
        (self.window.end != i64::MAX).then(|| {
            u64::try_from(self.window.end - now_ms)
                .unwrap_or(0)
                .div_ceil(1000)
        })
    }
}

/// The meter and the traffic counters, and their flushes to the store.
pub struct Metering {
    pub meter: Meter,
    pub traffic: TrafficCounter,
    /// Route names by config position, for the traffic rows.
    routes: Vec<String>,
    /// Spending written to the store whose totals were not read back yet.
    unsettled: Mutex<Vec<Spend>>,
}

impl Metering {
    pub fn new(routes: Vec<String>) -> Self {
        Self {
            meter: Meter::new(),
            traffic: TrafficCounter::default(),
            routes,
            unsettled: Mutex::new(Vec::new()),
        }
    }

    /// Reads what every open window has spent (start-up, before serving).
    pub async fn load(&self, store: &dyn Store, now_ms: i64) -> crate::store::Result<()> {
        let totals = store.quota_spent(now_ms).await?;
        self.meter.settle(&[], &totals, now_ms);
        Ok(())
    }

    /// Writes what was spent and counted since the last flush, then reads
    /// the store's totals back. A failed write is kept for the next flush.
    pub async fn flush(&self, store: &dyn Store, now_ms: i64) {
        let spends = self.meter.take_unflushed();
        let traffic = self.traffic.take(&self.routes);
        if let Err(e) = store.record_metering(&spends, &traffic).await {
            tracing::warn!(error = %e, "could not record quota spending; will retry");
            self.meter.unflush(&spends);
            self.traffic.restore(&traffic, &self.routes);
            return;
        }
        let mut written = self
            .unsettled
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        written.extend(spends);
        match store.quota_spent(now_ms).await {
            Ok(totals) => self.meter.settle(&written, &totals, now_ms),
            Err(e) => {
                tracing::debug!(error = %e, "could not read quota totals back");
                if let Ok(mut u) = self.unsettled.lock() {
                    u.extend(written);
                }
            }
        }
    }

    /// Flushes every [`FLUSH_EVERY`] until `shutdown` flips, then once more.
    pub async fn run(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        clock: SharedClock,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut every = tokio::time::interval(FLUSH_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => self.flush(store.as_ref(), clock.now_ms()).await,
                _ = shutdown.changed() => break,
            }
        }
        self.flush(store.as_ref(), clock.now_ms()).await;
    }
}
