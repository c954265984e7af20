//! The failed-authentication budget: presented credentials that fail are
//! counted per client address in a bucket of their own (never charged to the
//! key they name); an address that exhausts it is refused for the time one
//! attempt takes to refill. Local to each replica.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::config::RateSpec;

type Keyed = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

pub(crate) struct FailedAuthBudget {
    limiter: Keyed,
    /// Address → refused until (monotonic) instant.
    blocked: DashMap<IpAddr, Instant>,
    /// Lets the common case (nobody blocked) skip the map entirely.
    blocked_count: AtomicUsize,
}

impl FailedAuthBudget {
    pub(crate) fn new(spec: RateSpec) -> Self {
        let period = spec.per / spec.count.max(1);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(spec.burst).unwrap_or(NonZeroU32::MIN));
        Self {
            limiter: RateLimiter::keyed(quota),
            blocked: DashMap::new(),
            blocked_count: AtomicUsize::new(0),
        }
    }

    /// Seconds the address must wait, if it is currently refused.
    pub(crate) fn blocked(&self, ip: IpAddr) -> Option<u64> {
        if self.blocked_count.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let until = *self.blocked.get(&ip)?;
        let now = Instant::now();
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
    pub(crate) fn record_failure(&self, ip: IpAddr) -> Option<u64> {
        match self.limiter.check_key(&ip) {
            Ok(_) => None,
            Err(n) => {
                let wait = n
                    .wait_time_from(DefaultClock::default().now())
                    .max(Duration::from_secs(1));
                if self.blocked.insert(ip, Instant::now() + wait).is_none() {
                    self.blocked_count.fetch_add(1, Ordering::Relaxed);
                }
                Some(wait.as_secs_f64().ceil() as u64)
            }
        }
    }

    /// Forgets addresses whose budget has refilled; call periodically.
    pub(crate) fn housekeep(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        let now = Instant::now();
        let before = self.blocked.len();
        self.blocked.retain(|_, until| *until > now);
        let removed = before.saturating_sub(self.blocked.len());
        self.blocked_count.fetch_sub(
            removed.min(self.blocked_count.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_auth_blocks_the_address_not_others() {
        let f = FailedAuthBudget::new(RateSpec::parse("2/h").unwrap());
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
