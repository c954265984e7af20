//! Traffic per account, UTC day, route and outcome — what
//! `GET /v1/service-accounts/{id}/usage` reports — counted in memory and
//! flushed with the quota meter.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use uuid::Uuid;

use super::window::day_start;
use crate::store::Traffic;

/// How an authenticated request ended, as the usage report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Admitted,
    RateLimited,
    QuotaExhausted,
    AddressNotAllowed,
    /// Refused for scope or method.
    Forbidden,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Admitted => "admitted",
            Outcome::RateLimited => "rate_limited",
            Outcome::QuotaExhausted => "quota_exhausted",
            Outcome::AddressNotAllowed => "address_not_allowed",
            Outcome::Forbidden => "forbidden",
        }
    }
}

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    spent: AtomicU64,
}

#[derive(Default)]
pub struct TrafficCounter {
    counts: DashMap<(Uuid, i64, u16, Outcome), Counts, foldhash::fast::RandomState>,
}

impl TrafficCounter {
    /// One request of `account` on the route at `route` (config position).
    pub fn count(&self, account: Uuid, now_ms: i64, route: usize, outcome: Outcome, spent: u64) {
        let key = (
            account,
            day_start(now_ms),
            u16::try_from(route).unwrap_or(u16::MAX),
            outcome,
        );
        let add = |c: &Counts| {
            c.requests.fetch_add(1, Ordering::Relaxed);
            c.spent.fetch_add(spent, Ordering::Relaxed);
        };
        match self.counts.get(&key) {
            Some(c) => add(&c),
            None => add(&self.counts.entry(key).or_default()),
        }
    }

    /// Takes the counts for a flush; `names`: route names by position.
    pub fn take(&self, names: &[String]) -> Vec<Traffic> {
        let mut out = Vec::new();
        self.counts.retain(|&(account_id, day, route, outcome), c| {
            let requests = c.requests.swap(0, Ordering::AcqRel);
            let spent = c.spent.swap(0, Ordering::AcqRel);
            if requests > 0 {
                out.push(Traffic {
                    account_id,
                    day,
                    route: names.get(usize::from(route)).cloned().unwrap_or_default(),
                    outcome: outcome.as_str().to_owned(),
                    requests,
                    spent,
                });
            }
            // Idle entries go; a busy one stays (its next count is cheap).
            requests > 0
        });
        out
    }

    /// Puts back counts whose flush failed.
    pub fn restore(&self, traffic: &[Traffic], names: &[String]) {
        for t in traffic {
            let Some(route) = names.iter().position(|n| *n == t.route) else {
                continue;
            };
            let outcome = match t.outcome.as_str() {
                "admitted" => Outcome::Admitted,
                "rate_limited" => Outcome::RateLimited,
                "quota_exhausted" => Outcome::QuotaExhausted,
                "address_not_allowed" => Outcome::AddressNotAllowed,
                _ => Outcome::Forbidden,
            };
            let key = (
                t.account_id,
                t.day,
                u16::try_from(route).unwrap_or(u16::MAX),
                outcome,
            );
            let e = self.counts.entry(key).or_default();
            e.requests.fetch_add(t.requests, Ordering::Relaxed);
            e.spent.fetch_add(t.spent, Ordering::Relaxed);
        }
    }
}
