//! `last_used_at` bookkeeping: authentication queues a credential's use at
//! most once per resolution window; replication drains the queue and writes
//! it in batches, never on the request path.

use std::sync::Mutex;

use uuid::Uuid;

use super::Principal;

/// How often, at most, one credential's use is queued.
pub(crate) const RESOLUTION_MS: i64 = 10_000;

/// One use: (credential id, account id, unix ms).
pub type Use = (Uuid, Uuid, i64);

#[derive(Default)]
pub struct UsageQueue {
    queue: Mutex<Vec<Use>>,
}

impl UsageQueue {
    /// Queues `p`'s use at `now_ms` unless one was queued recently.
    pub(crate) fn touch(&self, p: &Principal, now_ms: i64) {
        if p.claim_use(now_ms, RESOLUTION_MS) {
            if let Ok(mut q) = self.queue.lock() {
                q.push((p.credential_id, p.account_id, now_ms));
            }
        }
    }

    /// Takes the queued uses for a batched write.
    pub fn take(&self) -> Vec<Use> {
        self.queue
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }
}
