//! Values that may be used once until they expire — a client assertion's
//! `jti` (RFC 7523 §3): remembered here per replica, and in Redis across
//! the fleet when the Redis backend is configured (see
//! [`super::RateLimits::first_use`]). Owns no notion of what the values mean.

use std::sync::atomic::{AtomicI64, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

#[derive(Default)]
pub(super) struct Seen {
    /// Key → when it may be forgotten (unix ms).
    until: DashMap<Box<str>, i64>,
    /// The latest time a caller judged by: sweeping uses the callers'
    /// (injected) clock, never the system's.
    latest: AtomicI64,
}

impl Seen {
    /// Whether `key` is new (or its last use has expired); it is then
    /// remembered until `until_ms`.
    pub(super) fn first(&self, key: &str, until_ms: i64, now_ms: i64) -> bool {
        self.latest.fetch_max(now_ms, Ordering::Relaxed);
        match self.until.entry(key.into()) {
            Entry::Occupied(mut e) => {
                if *e.get() > now_ms {
                    return false;
                }
                e.insert(until_ms);
                true
            }
            Entry::Vacant(e) => {
                e.insert(until_ms);
                true
            }
        }
    }

    /// Forgets what has expired.
    pub(super) fn sweep(&self) {
        let now = self.latest.load(Ordering::Relaxed);
        self.until.retain(|_, until| *until > now);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.until.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_first_once_until_it_expires_then_forgotten() {
        let s = Seen::default();
        assert!(s.first("a", 2_000, 1_000));
        assert!(!s.first("a", 2_000, 1_500));
        assert!(s.first("b", 2_000, 1_500));
        // Expired: may be used again (the assertion itself is expired by then).
        assert!(s.first("a", 9_000, 2_000));
        s.first("c", 2_500, 3_000);
        s.sweep();
        assert_eq!(s.len(), 1, "only a (until 9000) is kept");
    }
}
