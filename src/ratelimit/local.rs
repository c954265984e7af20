//! The local backend: GCRA buckets from `governor`, in this process. Each
//! replica counts on its own, so N replicas admit up to N times a limit.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock, QuantaInstant};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};
use uuid::Uuid;

use super::{Bucket, Outcome, PolicyRef, Subject};
use crate::config::RateSpec;

type Keyed =
    RateLimiter<Subject, DefaultKeyedStateStore<Subject>, DefaultClock, StateInformationMiddleware>;
type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

fn quota(spec: RateSpec) -> Quota {
    // One cell every per/count; burst cells at most.
    let period = spec.per / spec.count.max(1);
    let burst = NonZeroU32::new(spec.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

fn outcome(r: Result<StateSnapshot, NotUntil<QuantaInstant>>) -> Outcome {
    match r {
        Ok(s) => Outcome::Allowed {
            remaining: s.remaining_burst_capacity(),
        },
        Err(n) => Outcome::Denied {
            wait: n.wait_time_from(DefaultClock::default().now()),
        },
    }
}

pub(super) struct Local {
    /// One keyed limiter per named policy (the default, each route's own).
    named: Vec<Keyed>,
    /// Limits set on accounts themselves: they differ per account, so each
    /// account has its own limiter, rebuilt when its spec changes.
    accounts: DashMap<Uuid, Arc<AccountLimit>>,
}

struct AccountLimit {
    spec: RateSpec,
    limiter: Direct,
    /// Last check; an entry idle long enough to have refilled completely
    /// carries no information and is dropped.
    last_seen: Mutex<Instant>,
}

impl Local {
    pub(super) fn new(named: &[RateSpec]) -> Self {
        Self {
            named: named
                .iter()
                .map(|s| {
                    RateLimiter::keyed(quota(*s)).with_middleware::<StateInformationMiddleware>()
                })
                .collect(),
            accounts: DashMap::new(),
        }
    }

    pub(super) fn check(&self, b: &Bucket<'_>) -> Outcome {
        match b.policy {
            PolicyRef::Named(i) => match self.named.get(usize::from(i)) {
                Some(l) => outcome(l.check_key(&b.subject)),
                None => Outcome::Allowed {
                    remaining: b.spec.burst,
                },
            },
            PolicyRef::Account(account) => self.check_account(account, b.spec),
        }
    }

    fn check_account(&self, account: Uuid, spec: RateSpec) -> Outcome {
        // The shard guard must end before `insert` below (same shard: deadlock).
        let existing = self
            .accounts
            .get(&account)
            .filter(|e| e.spec == spec)
            .map(|e| Arc::clone(e.value()));
        let entry = match existing {
            Some(e) => e,
            None => {
                let fresh = Arc::new(AccountLimit {
                    spec,
                    limiter: RateLimiter::direct(quota(spec))
                        .with_middleware::<StateInformationMiddleware>(),
                    last_seen: Mutex::new(Instant::now()),
                });
                self.accounts.insert(account, Arc::clone(&fresh));
                fresh
            }
        };
        if let Ok(mut t) = entry.last_seen.lock() {
            *t = Instant::now();
        }
        outcome(entry.limiter.check())
    }

    /// Drops buckets that have refilled: memory follows active principals,
    /// not every one ever seen. Run every few seconds, so a flood of
    /// distinct subjects holds at most a few seconds' worth of buckets.
    pub(super) fn housekeep(&self) {
        for l in &self.named {
            l.retain_recent();
            l.shrink_to_fit();
        }
        let now = Instant::now();
        self.accounts.retain(|_, e| {
            let refill = e
                .spec
                .per
                .mul_f64(f64::from(e.spec.burst) / f64::from(e.spec.count.max(1)));
            e.last_seen
                .lock()
                .map(|t| now.duration_since(*t) < refill)
                .unwrap_or(false)
        });
    }
}
