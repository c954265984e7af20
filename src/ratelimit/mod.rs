//! Rate limits (local backend): GCRA limiters from `governor`, keyed per
//! principal. Owns the decision and the numbers for the `RateLimit-*`
//! headers; does not own HTTP (the proxy renders headers and 429s).
//!
//! Which limit applies to a request: the route's own `rate_limit`, else the
//! account's `rate_limit`, else `[rate_limit].default`. A route's own limit
//! has its own bucket per principal; the default is one bucket per principal
//! shared by every route that uses it. Public routes key by client address.
//!
//! Failed authentication attempts are counted per client address in a bucket
//! of their own (never charged to the key they name); an address that
//! exhausts it is refused for the time one attempt takes to refill.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use crate::config::RateSpec;

/// Who a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Account(Uuid),
    Address(IpAddr),
}

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;
type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

fn quota(spec: RateSpec) -> Quota {
    // One cell every per/count; burst cells at most.
    let period = spec.per / spec.count.max(1);
    let burst = NonZeroU32::new(spec.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period.max(Duration::from_nanos(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

/// The outcome of a check, with what the response headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'a> {
    pub allowed: bool,
    pub spec: RateSpec,
    /// Requests left in the current burst.
    pub remaining: u32,
    /// Seconds until the bucket is full again (allowed) or until the next
    /// request may pass (denied; the `Retry-After`).
    pub reset_secs: u64,
    /// Policy name for `RateLimit-Policy` / `RateLimit`.
    pub policy: &'a str,
}

impl<'a> Decision<'a> {
    fn from_check<E: governor_outcome::Outcome>(
        spec: RateSpec,
        policy: &'a str,
        outcome: E,
    ) -> Self {
        let per_cell = spec.per.as_secs_f64() / f64::from(spec.count.max(1));
        match outcome.remaining() {
            Ok(remaining) => Decision {
                allowed: true,
                spec,
                remaining,
                reset_secs: (f64::from(spec.burst.saturating_sub(remaining)) * per_cell).ceil()
                    as u64,
                policy,
            },
            Err(wait) => Decision {
                allowed: false,
                spec,
                remaining: 0,
                reset_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                policy,
            },
        }
    }
}

/// Adapts governor's check results to "remaining, or how long to wait".
mod governor_outcome {
    use std::time::Duration;

    use governor::clock::{Clock, DefaultClock, QuantaInstant};
    use governor::middleware::StateSnapshot;
    use governor::NotUntil;

    pub(super) trait Outcome {
        fn remaining(self) -> Result<u32, Duration>;
    }

    impl Outcome for Result<StateSnapshot, NotUntil<QuantaInstant>> {
        fn remaining(self) -> Result<u32, Duration> {
            self.map(|s| s.remaining_burst_capacity())
                .map_err(|n| n.wait_time_from(DefaultClock::default().now()))
        }
    }
}

/// A limiter with one bucket per subject, all with the same quota.
pub struct KeyedLimit {
    spec: RateSpec,
    policy: Box<str>,
    limiter: Keyed<Subject>,
}

impl std::fmt::Debug for KeyedLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedLimit")
            .field("spec", &self.spec)
            .field("policy", &self.policy)
            .finish()
    }
}

impl KeyedLimit {
    pub fn new(spec: RateSpec, policy: &str) -> Self {
        Self {
            spec,
            policy: policy.into(),
            limiter: RateLimiter::keyed(quota(spec))
                .with_middleware::<StateInformationMiddleware>(),
        }
    }

    pub fn check(&self, subject: &Subject) -> Decision<'_> {
        Decision::from_check(self.spec, &self.policy, self.limiter.check_key(subject))
    }

    fn housekeep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Per-account limits set on the account itself (they differ per account,
/// so each account has its own limiter, rebuilt when its spec changes).
#[derive(Default)]
pub struct AccountLimits {
    limits: DashMap<Uuid, Arc<AccountLimit>>,
}

struct AccountLimit {
    spec: RateSpec,
    limiter: Direct,
    /// Monotonic time of the last check; an entry idle long enough to have
    /// refilled completely carries no information and is dropped.
    last_seen: std::sync::Mutex<std::time::Instant>,
}

impl AccountLimits {
    pub fn check(&self, account: Uuid, spec: RateSpec) -> Decision<'static> {
        // The shard guard must end before `insert` below (same shard: deadlock).
        let existing = self
            .limits
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
                    last_seen: std::sync::Mutex::new(std::time::Instant::now()),
                });
                self.limits.insert(account, Arc::clone(&fresh));
                fresh
            }
        };
        if let Ok(mut t) = entry.last_seen.lock() {
            *t = std::time::Instant::now();
        }
        Decision::from_check(spec, "account", entry.limiter.check())
    }

    fn housekeep(&self) {
        let now = std::time::Instant::now();
        self.limits.retain(|_, e| {
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

/// Failed-authentication budget per client address.
pub struct FailedAuth {
    limiter: Keyed<IpAddr>,
    /// Address → refused until (monotonic) instant.
    blocked: DashMap<IpAddr, std::time::Instant>,
    /// Lets the common case (nobody blocked) skip the map entirely.
    blocked_count: AtomicUsize,
}

impl FailedAuth {
    pub fn new(spec: RateSpec) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota(spec))
                .with_middleware::<StateInformationMiddleware>(),
            blocked: DashMap::new(),
            blocked_count: AtomicUsize::new(0),
        }
    }

    /// Seconds the address must wait, if it is currently refused.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        if self.blocked_count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let until = *self.blocked.get(&ip)?;
        let now = std::time::Instant::now();
        if until > now {
            Some((until - now).as_secs_f64().ceil().max(1.0) as u64)
        } else {
            if self.blocked.remove(&ip).is_some() {
                self.blocked_count.fetch_sub(1, Ordering::Relaxed);
            }
            None
        }
    }

    /// Records one failed attempt. Returns the seconds to wait when the
    /// address has now exhausted its budget.
    pub fn record_failure(&self, ip: IpAddr) -> Option<u64> {
        match self.limiter.check_key(&ip) {
            Ok(_) => None,
            Err(n) => {
                let wait = n
                    .wait_time_from(DefaultClock::default().now())
                    .max(Duration::from_secs(1));
                if self
                    .blocked
                    .insert(ip, std::time::Instant::now() + wait)
                    .is_none()
                {
                    self.blocked_count.fetch_add(1, Ordering::Relaxed);
                }
                Some(wait.as_secs_f64().ceil() as u64)
            }
        }
    }

    fn housekeep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = std::time::Instant::now();
        let before = self.blocked.len();
        self.blocked.retain(|_, until| *until > now);
        let removed = before.saturating_sub(self.blocked.len());
        self.blocked_count.fetch_sub(
            removed.min(self.blocked_count.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
    }
}

/// Every limiter of one keygate process.
pub struct Limits {
    pub default: Option<Arc<KeyedLimit>>,
    pub accounts: AccountLimits,
    pub failed_auth: FailedAuth,
    routes: Vec<Arc<KeyedLimit>>,
}

impl Limits {
    pub fn new(default: Option<RateSpec>, failed_auth: RateSpec) -> Self {
        Self {
            default: default.map(|s| Arc::new(KeyedLimit::new(s, "default"))),
            accounts: AccountLimits::default(),
            failed_auth: FailedAuth::new(failed_auth),
            routes: Vec::new(),
        }
    }

    /// A route's own limiter (kept here too, for housekeeping).
    pub fn route_limit(&mut self, spec: RateSpec, name: &str) -> Arc<KeyedLimit> {
        let limit = Arc::new(KeyedLimit::new(spec, name));
        self.routes.push(Arc::clone(&limit));
        limit
    }

    /// Drops state of subjects whose buckets are full again; call periodically.
    pub fn housekeep(&self) {
        if let Some(d) = &self.default {
            d.housekeep();
        }
        for r in &self.routes {
            r.housekeep();
        }
        self.accounts.housekeep();
        self.failed_auth.housekeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> RateSpec {
        RateSpec::parse(s).unwrap()
    }

    #[test]
    fn keyed_limit_counts_down_then_refuses_with_retry_after() {
        let l = KeyedLimit::new(spec("2/m"), "r");
        let a = Subject::Account(Uuid::nil());
        let first = l.check(&a);
        assert!(first.allowed);
        assert_eq!(first.remaining, 1);
        assert!(l.check(&a).allowed);
        let denied = l.check(&a);
        assert!(!denied.allowed);
        assert!(
            denied.reset_secs >= 1 && denied.reset_secs <= 30,
            "{denied:?}"
        );
        // Another subject has its own bucket.
        assert!(l.check(&Subject::Account(Uuid::from_u128(1))).allowed);
    }

    #[test]
    fn account_limit_follows_spec_changes() {
        let a = AccountLimits::default();
        let id = Uuid::nil();
        assert!(a.check(id, spec("1/h")).allowed);
        assert!(!a.check(id, spec("1/h")).allowed);
        // Raising the limit takes effect at once.
        assert!(a.check(id, spec("5/h")).allowed);
    }

    #[test]
    fn failed_auth_blocks_the_address_not_others() {
        let f = FailedAuth::new(spec("2/h"));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(f.blocked(ip), None);
        assert_eq!(f.record_failure(ip), None);
        assert_eq!(f.record_failure(ip), None);
        assert!(f.record_failure(ip).is_some());
        assert!(f.blocked(ip).is_some());
        assert_eq!(f.blocked(other), None);
    }
}
