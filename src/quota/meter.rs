//! The in-memory quota meter: what each quota window has spent, counted on
//! the request path with atomics (no store access, no lock across an
//! await), flushed to the store in batches by [`super::Metering`].
//!
//! A counter's total is what the store last said the window had spent in
//! all (every replica's flushes), plus what this replica spent since and
//! has not yet seen come back from the store. Spending is a reservation:
//! add, and take it back if that went over, so concurrent requests never
//! spend past the limit on one replica.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use uuid::Uuid;

use super::window::Window;
use crate::store::{Spend, Spent};

/// One quota a request spends from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// The account, key or client credential whose quota it is.
    pub subject: Uuid,
    /// The account it belongs to (the subject itself for an account's).
    pub account: Uuid,
    pub limit: u64,
    pub window: Window,
}

#[derive(Default)]
struct Counter {
    /// The window's total as the store last reported it.
    stored: AtomicU64,
    /// Spent here and not yet flushed.
    unflushed: AtomicU64,
    /// Flushed, but not yet seen in `stored`.
    in_flight: AtomicU64,
    /// Spent here while the shared backend was unreachable, to be added
    /// to it when it answers again.
    unshared: AtomicU64,
    end: AtomicU64,
}

impl Counter {
    fn total(&self) -> u64 {
        self.stored.load(Ordering::Acquire)
            + self.unflushed.load(Ordering::Acquire)
            + self.in_flight.load(Ordering::Acquire)
    }
}

/// What a spend found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spending {
    /// Admitted; `remaining` is the least left of the quotas charged,
    /// `index` the charge it is left of.
    Spent { remaining: u64, index: usize },
    /// Refused: the charge at this index is exhausted.
    Exhausted(usize),
}

/// A window noted spent, and whether it was handed out for its event.
struct Exhausted {
    charge: Charge,
    reported: bool,
}

#[derive(Default)]
pub struct Meter {
    counters: DashMap<(Uuid, i64), Counter, foldhash::fast::RandomState>,
    /// Windows found spent since the last [`Meter::take_exhausted`], each
    /// once (by subject and window start).
    exhausted: DashMap<(Uuid, i64), Exhausted, foldhash::fast::RandomState>,
}

impl Meter {
    pub fn new() -> Self {
        Self::default()
    }

    /// What `charge`'s window has spent, as far as this replica knows.
    pub fn spent(&self, subject: Uuid, window: Window) -> u64 {
        self.counters
            .get(&(subject, window.start))
            .map_or(0, |c| c.total())
    }

    /// Spends `cost` from every charge, or from none: the first exhausted
    /// one refuses the request and nothing is spent.
    pub fn spend(&self, charges: &[Charge], cost: u64) -> Spending {
        let (mut remaining, mut index) = (u64::MAX, 0);
        for (i, c) in charges.iter().enumerate() {
            match self.reserve(c, cost) {
                Some(left) if left < remaining => (remaining, index) = (left, i),
                Some(_) => {}
                None => {
                    for done in &charges[..i] {
                        self.release(done, cost);
                    }
                    return Spending::Exhausted(i);
                }
            }
        }
        Spending::Spent { remaining, index }
    }

    /// Notes that `c`'s window is spent, for the `quota.exhausted` event.
    /// Cheap after the first time: one map lookup.
    pub fn note_exhausted(&self, c: &Charge) {
        let key = (c.subject, c.window.start);
        if !self.exhausted.contains_key(&key) {
            self.exhausted.entry(key).or_insert(Exhausted {
                charge: *c,
                reported: false,
            });
        }
    }

    /// The windows found spent since the last call. Each is kept as
    /// reported (not reported again) until its window ends.
    pub fn take_exhausted(&self, now_ms: i64) -> Vec<Charge> {
        let mut out = Vec::new();
        self.exhausted.retain(|_, e| {
            if !e.reported {
                out.push(e.charge);
                e.reported = true;
            }
            e.charge.window.end > now_ms
        });
        out
    }

    /// Notes spending decided here while the shared backend was away, to be
    /// added to it when it answers again.
    pub fn unshared(&self, charges: &[Charge], cost: u64) {
        for c in charges {
            self.counter(c).unshared.fetch_add(cost, Ordering::AcqRel);
        }
    }

    /// Records spending a shared backend already admitted (it decides; this
    /// replica still flushes what it spent to the store).
    pub fn record(&self, charges: &[Charge], cost: u64) {
        for c in charges {
            self.counter(c).unflushed.fetch_add(cost, Ordering::AcqRel);
        }
    }

    fn counter(&self, c: &Charge) -> dashmap::mapref::one::Ref<'_, (Uuid, i64), Counter> {
        let key = (c.subject, c.window.start);
        if let Some(r) = self.counters.get(&key) {
            return r;
        }
        self.counters
            .entry(key)
            .or_insert_with(|| Counter {
                end: AtomicU64::new(u64::try_from(c.window.end).unwrap_or(0)),
                ..Counter::default()
            })
            .downgrade()
    }

    /// Adds `cost` if it fits under the limit; the quota left after it.
    fn reserve(&self, c: &Charge, cost: u64) -> Option<u64> {
        let counter = self.counter(c);
        let before = counter.unflushed.fetch_add(cost, Ordering::AcqRel);
        let total = counter.stored.load(Ordering::Acquire)
            + before
            + cost
            + counter.in_flight.load(Ordering::Acquire);
        if total > c.limit {
            counter.unflushed.fetch_sub(cost, Ordering::AcqRel);
            return None;
        }
        Some(c.limit - total)
    }

    fn release(&self, c: &Charge, cost: u64) {
        if let Some(counter) = self.counters.get(&(c.subject, c.window.start)) {
            counter.unflushed.fetch_sub(cost, Ordering::AcqRel);
        }
    }

    /// Moves what was spent since the last flush to in-flight, returning it
    /// as increments for the store.
    pub fn take_unflushed(&self) -> Vec<Spend> {
        let mut out = Vec::new();
        for e in self.counters.iter() {
            let n = e.unflushed.swap(0, Ordering::AcqRel);
            if n > 0 {
                e.in_flight.fetch_add(n, Ordering::AcqRel);
                let (subject, window_start) = *e.key();
                out.push(Spend {
                    subject,
                    window_start,
                    window_end: i64::try_from(e.end.load(Ordering::Relaxed)).unwrap_or(i64::MAX),
                    amount: n,
                });
            }
        }
        out
    }

    /// The flush of `spends` failed: they count as unflushed again.
    pub fn unflush(&self, spends: &[Spend]) {
        for s in spends {
            if let Some(c) = self.counters.get(&(s.subject, s.window_start)) {
                c.in_flight.fetch_sub(s.amount, Ordering::AcqRel);
                c.unflushed.fetch_add(s.amount, Ordering::AcqRel);
            }
        }
    }

    /// The store's totals after a flush of `flushed` (or at start-up, with
    /// nothing flushed): each becomes its window's `stored`, and what was in
    /// flight is now part of it. Windows that ended before `now_ms` go.
    pub fn settle(&self, flushed: &[Spend], totals: &[Spent], now_ms: i64) {
        for t in totals {
            let c = self
                .counters
                .entry((t.subject, t.window_start))
                .or_default();
            c.stored.store(t.spent, Ordering::Release);
            c.end.store(
                u64::try_from(t.window_end).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        for s in flushed {
            if let Some(c) = self.counters.get(&(s.subject, s.window_start)) {
                c.in_flight.fetch_sub(s.amount, Ordering::AcqRel);
            }
        }
        let now = u64::try_from(now_ms).unwrap_or(0);
        self.counters.retain(|_, c| {
            c.end.load(Ordering::Relaxed) > now || c.unflushed.load(Ordering::Relaxed) > 0
        });
    }

    /// Takes what was spent while the shared backend was away: (subject,
    /// window start, amount).
    pub fn take_unshared(&self) -> Vec<(Uuid, i64, u64)> {
        self.counters
            .iter()
            .filter_map(|e| {
                let n = e.unshared.swap(0, Ordering::AcqRel);
                (n > 0).then(|| (e.key().0, e.key().1, n))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(subject: u128, limit: u64) -> Charge {
        Charge {
            subject: Uuid::from_u128(subject),
            account: Uuid::from_u128(subject),
            limit,
            window: Window {
                start: 0,
                end: 1000,
            },
        }
    }

    #[test]
    fn spends_up_to_the_limit_then_refuses_without_spending() {
        let m = Meter::new();
        let c = [charge(1, 3)];
        assert_eq!(
            m.spend(&c, 2),
            Spending::Spent {
                remaining: 1,
                index: 0
            }
        );
        assert_eq!(m.spend(&c, 2), Spending::Exhausted(0));
        assert_eq!(
            m.spend(&c, 1),
            Spending::Spent {
                remaining: 0,
                index: 0
            }
        );
        assert_eq!(m.spent(c[0].subject, c[0].window), 3);
    }

    #[test]
    fn an_exhausted_account_quota_takes_back_the_keys_spend() {
        let m = Meter::new();
        let key = charge(1, 10);
        let account = charge(2, 1);
        assert!(matches!(
            m.spend(&[key, account], 1),
            Spending::Spent { .. }
        ));
        assert_eq!(m.spend(&[key, account], 1), Spending::Exhausted(1));
        assert_eq!(m.spent(key.subject, key.window), 1);
    }

    #[test]
    fn flushed_spending_counts_until_the_store_reports_it() {
        let m = Meter::new();
        let c = [charge(1, 5)];
        m.spend(&c, 3);
        let flushed = m.take_unflushed();
        assert_eq!(flushed[0].amount, 3);
        assert_eq!(
            m.spent(c[0].subject, c[0].window),
            3,
            "in flight still counts"
        );
        // Another replica spent 1 meanwhile: the store says 4.
        let total = Spent {
            subject: c[0].subject,
            window_start: 0,
            window_end: 1000,
            spent: 4,
        };
        m.settle(&flushed, &[total], 10);
        assert_eq!(m.spent(c[0].subject, c[0].window), 4);
        assert_eq!(m.spend(&c, 2), Spending::Exhausted(0));
        // A failed flush puts its spending back.
        m.spend(&c, 1);
        let f = m.take_unflushed();
        m.unflush(&f);
        assert_eq!(m.take_unflushed()[0].amount, 1);
    }

    #[test]
    fn a_spent_window_is_handed_out_once_until_it_ends() {
        let m = Meter::new();
        let c = charge(1, 5);
        m.note_exhausted(&c);
        m.note_exhausted(&c);
        assert_eq!(m.take_exhausted(10), vec![c]);
        m.note_exhausted(&c);
        assert!(m.take_exhausted(10).is_empty(), "reported once per window");
        // Past its end the note goes; the next window is a new one.
        assert!(m.take_exhausted(2000).is_empty());
        m.note_exhausted(&c);
        assert_eq!(m.take_exhausted(10), vec![c]);
    }

    #[test]
    fn ended_windows_are_dropped() {
        let m = Meter::new();
        m.spend(&[charge(1, 5)], 1);
        let f = m.take_unflushed();
        m.settle(&f, &[], 2000);
        assert_eq!(
            m.spent(
                Uuid::from_u128(1),
                Window {
                    start: 0,
                    end: 1000
                }
            ),
            0
        );
    }
}
