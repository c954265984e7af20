//! Rate limits: which limit applies to a request, and its decision with the
//! numbers the `RateLimit-*` headers need. Does not own HTTP (the proxy
//! renders headers and 429s). Buckets live in a backend: [`local`] (GCRA
//! from `governor`, per process) or [`redis`] (GCRA in Redis, shared by
//! every replica, falling back to local when Redis is unreachable).
//!
//! Which limit applies: the route's own `rate_limit` (one bucket per
//! principal on that route), else the account's own `rate_limit`, else
//! `[rate_limit].default` (one bucket per principal shared by every route
//! that uses it). Anonymous requests (public routes) count per client
//! address.

mod local;
mod once;
mod redis;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use crate::addr::address_bucket;
use crate::config::{RateLimitBackend, RateLimitConfig, RateSpec, RouteConfig};
use crate::quota::{Charge, Charges, Metering, QuotaDecision, Spending};

/// Who a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Account(Uuid),
    Address(IpAddr),
}

/// Which limit a bucket counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PolicyRef {
    /// A configured limit (the default or a route's own), by position.
    Named(u16),
    /// The limit set on this account itself.
    Account(Uuid),
}

/// One bucket to check: its policy, its spec and whose it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket<'a> {
    pub(crate) policy: PolicyRef,
    /// The policy's name, as the `RateLimit-Policy` field shows it.
    pub(crate) name: &'a str,
    /// Where a shared backend keeps the policy's buckets: `route:<name>`
    /// for a route's own limit, so no route name can land in the buckets
    /// of an internal policy (`default`, `revocations`, `account`).
    pub(crate) namespace: &'a str,
    pub(crate) spec: RateSpec,
    pub(crate) subject: Subject,
}

/// A backend's answer for one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Allowed { remaining: u32 },
    Denied { wait: Duration },
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
    fn new(b: &Bucket<'a>, outcome: Outcome) -> Self {
        let spec = b.spec;
        let per_cell = spec.per.as_secs_f64() / f64::from(spec.count.max(1));
        match outcome {
            Outcome::Allowed { remaining } => Decision {
                allowed: true,
                spec,
                remaining,
                reset_secs: (f64::from(spec.burst.saturating_sub(remaining)) * per_cell).ceil()
                    as u64,
                policy: b.name,
            },
            Outcome::Denied { wait } => Decision {
                allowed: false,
                spec,
                remaining: 0,
                reset_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                policy: b.name,
            },
        }
    }
}

/// What the limit phase decided: the rate limit's decision (if one
/// applies) and the quotas' (if any were charged). A request over its rate
/// limit spends no quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission<'a> {
    pub limit: Option<Decision<'a>>,
    pub quota: Option<QuotaDecision>,
}

/// The quota decision for `charges` from what the meter (or Redis) found.
pub(crate) fn quota_decision(charges: &[Charge], spending: Spending) -> Option<QuotaDecision> {
    let (i, allowed, remaining) = match spending {
        Spending::Spent { remaining, index } => (index, true, remaining),
        Spending::Exhausted(i) => (i, false, 0),
    };
    let c = charges.get(i)?;
    Some(QuotaDecision {
        allowed,
        limit: c.limit,
        remaining,
        window: c.window,
    })
}

/// Where buckets live. An enum rather than a trait object: the local check
/// completes without awaiting, and the hot path pays no allocation.
enum Backend {
    Local(local::Local),
    Redis(Arc<redis::Redis>),
}

impl Backend {
    async fn check(&self, b: &Bucket<'_>) -> Outcome {
        match self {
            Backend::Local(l) => l.check(b),
            Backend::Redis(r) => r.check(b).await,
        }
    }

    fn housekeep(&self) {
        match self {
            Backend::Local(l) => l.housekeep(),
            Backend::Redis(r) => r.housekeep(),
        }
    }
}

/// How limits are counted right now, for `/readyz` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// `"local"` or `"redis"`.
    pub backend: &'static str,
    /// Counted across replicas (Redis answering).
    pub shared: bool,
    /// Checks answered by the local fallback while Redis was unreachable.
    pub fallbacks: u64,
}

struct Named {
    name: Box<str>,
    namespace: Box<str>,
    spec: RateSpec,
}

/// Token revocations (RFC 7009) per caller: each one is a store write that
/// every replica applies, so a client cannot be allowed to make them at any
/// rate. Legitimate clients revoke a token at logout or on compromise.
const REVOCATIONS: RateSpec = RateSpec {
    count: 30,
    per: Duration::from_secs(60),
    burst: 10,
};

/// Every limit of one keygate process, and the backend that counts them.
pub struct RateLimits {
    backend: Backend,
    /// Quota spending and traffic, counted here and flushed to the store.
    metering: Arc<Metering>,
    named: Vec<Named>,
    default: Option<u16>,
    /// By route position in the config: the route's own limit, if any.
    routes: Vec<Option<u16>>,
    revocations: u16,
    /// Values used once (assertion `jti`s), on this replica.
    seen: once::Seen,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig, routes: &[RouteConfig]) -> Self {
        let mut named: Vec<Named> = Vec::new();
        let mut add = |name: &str, namespace: String, spec: RateSpec| {
            named.push(Named {
                name: name.into(),
                namespace: namespace.into(),
                spec,
            });
            u16::try_from(named.len() - 1).unwrap_or(u16::MAX)
        };
        let default = config.default.map(|s| add("default", "default".into(), s));
        let metering = Arc::new(Metering::new(
            routes.iter().map(|r| r.name.clone()).collect(),
        ));
        let routes = routes
            .iter()
            .map(|r| {
                r.rate_limit
                    .map(|s| add(&r.name, format!("route:{}", r.name), s))
            })
            .collect();
        let revocations = add("revocations", "revocations".into(), REVOCATIONS);
        let specs: Vec<RateSpec> = named.iter().map(|n| n.spec).collect();
        let backend = match config.backend {
            RateLimitBackend::Local => Backend::Local(local::Local::new(&specs)),
            RateLimitBackend::Redis => {
                match redis::Redis::new(config.redis_url.expose(), &specs, Arc::clone(&metering)) {
                    Ok(r) => Backend::Redis(Arc::new(r)),
                    Err(e) => {
                        // Validated at load; should it still fail, limits stay on.
                        tracing::error!(error = %e, "cannot use redis for rate limits; counting locally");
                        Backend::Local(local::Local::new(&specs))
                    }
                }
            }
        };
        Self {
            backend,
            metering,
            named,
            default,
            routes,
            revocations,
            seen: once::Seen::default(),
        }
    }

    /// Whether `key` is used for the first time (RFC 7523 §3: a `jti` is
    /// used once), remembering it until `until_ms`. Always on this replica;
    /// with the Redis backend also across the fleet (`SET NX PX`). While
    /// Redis is unreachable this replica's memory answers alone (logged at
    /// warn when Redis goes away).
    pub async fn first_use(&self, key: &str, until_ms: i64, now_ms: i64) -> bool {
        if !self.seen.first(key, until_ms, now_ms) {
            return false;
        }
        match &self.backend {
            Backend::Local(_) => true,
            Backend::Redis(r) => r.first_use(key, until_ms.saturating_sub(now_ms)).await,
        }
    }

    /// One token revocation by `account`.
    pub async fn revocation(&self, account: Uuid) -> Decision<'_> {
        let bucket = Bucket {
            policy: PolicyRef::Named(self.revocations),
            name: "revocations",
            namespace: "revocations",
            spec: REVOCATIONS,
            subject: Subject::Account(account),
        };
        let outcome = self.backend.check(&bucket).await;
        Decision::new(&bucket, outcome)
    }

    /// The decision for one request on the route at `route` (its config
    /// position); `None` when no limit applies. `account`: the
    /// authenticated account and its own limit; `None` for anonymous
    /// requests, which count per `peer` address.
    pub async fn check(
        &self,
        route: usize,
        account: Option<(Uuid, Option<RateSpec>)>,
        peer: IpAddr,
    ) -> Option<Decision<'_>> {
        let bucket = self.bucket(route, account, peer)?;
        let outcome = self.backend.check(&bucket).await;
        Some(Decision::new(&bucket, outcome))
    }

    /// The rate limit and the quotas of one request on the route at
    /// `route`: the rate limit first (see [`RateLimits::check`]); if it
    /// admits, `cost` is spent from every quota in `charges`, or from none
    /// when one is exhausted. With Redis both are one round trip.
    pub async fn admit(
        &self,
        route: usize,
        account: Option<(Uuid, Option<RateSpec>)>,
        peer: IpAddr,
        charges: Charges,
        cost: u64,
    ) -> Admission<'_> {
        let bucket = self.bucket(route, account, peer);
        let (charges, n) = charges.to_array();
        let charges = &charges[..n];
        if let Backend::Redis(r) = &self.backend {
            if !charges.is_empty() {
                let (outcome, spending) = r.admit(bucket.as_ref(), charges, cost).await;
                if let Some(s) = spending {
                    self.note_spent(charges, s);
                }
                return Admission {
                    limit: bucket.zip(outcome).map(|(b, o)| Decision::new(&b, o)),
                    quota: spending.and_then(|s| quota_decision(charges, s)),
                };
            }
        }
        let limit = match &bucket {
            Some(b) => Some(Decision::new(b, self.backend.check(b).await)),
            None => None,
        };
        if limit.is_some_and(|d| !d.allowed) || charges.is_empty() {
            return Admission { limit, quota: None };
        }
        let spending = self.metering.meter.spend(charges, cost);
        self.note_spent(charges, spending);
        Admission {
            limit,
            quota: quota_decision(charges, spending),
        }
    }

    /// A quota this spending left empty, or found empty, is noted for the
    /// `quota.exhausted` event.
    fn note_spent(&self, charges: &[Charge], spending: Spending) {
        let i = match spending {
            Spending::Exhausted(i)
            | Spending::Spent {
                remaining: 0,
                index: i,
            } => i,
            Spending::Spent { .. } => return,
        };
        if let Some(c) = charges.get(i) {
            self.metering.meter.note_exhausted(c);
        }
    }

    /// Quota spending and traffic counts.
    pub fn metering(&self) -> &Arc<Metering> {
        &self.metering
    }

    fn bucket(
        &self,
        route: usize,
        account: Option<(Uuid, Option<RateSpec>)>,
        peer: IpAddr,
    ) -> Option<Bucket<'_>> {
        let subject = match account {
            Some((id, _)) => Subject::Account(id),
            None => Subject::Address(address_bucket(peer)),
        };
        let named = |i: u16| {
            self.named.get(usize::from(i)).map(|n| Bucket {
                policy: PolicyRef::Named(i),
                name: &n.name,
                namespace: &n.namespace,
                spec: n.spec,
                subject,
            })
        };
        if let Some(i) = self.routes.get(route).copied().flatten() {
            return named(i);
        }
        if let Some((id, Some(spec))) = account {
            return Some(Bucket {
                policy: PolicyRef::Account(id),
                name: "account",
                namespace: "account",
                spec,
                subject,
            });
        }
        self.default.and_then(named)
    }

    /// Drops state of subjects whose buckets are full again; call periodically.
    pub fn housekeep(&self) {
        self.backend.housekeep();
        self.seen.sweep();
    }

    pub fn status(&self) -> Status {
        match &self.backend {
            Backend::Local(_) => Status {
                backend: "local",
                shared: false,
                fallbacks: 0,
            },
            Backend::Redis(r) => Status {
                backend: "redis",
                shared: r.is_shared(),
                fallbacks: r.fallbacks(),
            },
        }
    }

    /// The task that notices an unreachable Redis coming back; `None` for
    /// the local backend.
    pub fn watcher(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        match &self.backend {
            Backend::Redis(r) => Some(Arc::clone(r).watch(shutdown)),
            Backend::Local(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::Config;

    fn limits(toml: &str) -> RateLimits {
        let c = Config::from_toml(toml, &HashMap::new()).unwrap();
        RateLimits::new(&c.rate_limit, &c.routes)
    }

    fn check(
        l: &RateLimits,
        route: usize,
        account: Option<(Uuid, Option<RateSpec>)>,
    ) -> Option<Decision<'_>> {
        use futures_util::FutureExt as _;
        l.check(route, account, IpAddr::from([10, 0, 0, 1]))
            .now_or_never()
            .flatten()
    }

    const ROUTES: &str = r#"
[[routes]]
name = "limited"
prefix = "/l"
upstream = "http://127.0.0.1:1"
rate_limit = "2/m"
[[routes]]
name = "plain"
prefix = "/p"
upstream = "http://127.0.0.1:1"
"#;

    #[test]
    fn a_routes_own_limit_counts_down_then_refuses_with_retry_after() {
        let l = limits(ROUTES);
        let a = Some((Uuid::nil(), None));
        let first = check(&l, 0, a).unwrap();
        assert!(first.allowed);
        assert_eq!((first.remaining, first.policy), (1, "limited"));
        assert!(check(&l, 0, a).unwrap().allowed);
        let denied = check(&l, 0, a).unwrap();
        assert!(!denied.allowed);
        assert!((1..=30).contains(&denied.reset_secs), "{denied:?}");
        // Another subject has its own bucket; an unlimited route has none.
        assert!(
            check(&l, 0, Some((Uuid::from_u128(1), None)))
                .unwrap()
                .allowed
        );
        assert!(check(&l, 1, a).is_none());
    }

    #[test]
    fn an_accounts_own_limit_applies_where_the_route_sets_none_and_follows_changes() {
        let l = limits(&format!("[rate_limit]\ndefault = \"100/s\"\n{ROUTES}"));
        let id = Uuid::nil();
        let one = RateSpec::parse("1/h").unwrap();
        assert_eq!(
            check(&l, 1, Some((id, Some(one)))).unwrap().policy,
            "account"
        );
        assert!(!check(&l, 1, Some((id, Some(one)))).unwrap().allowed);
        // Raising the limit takes effect at once.
        let five = RateSpec::parse("5/h").unwrap();
        assert!(check(&l, 1, Some((id, Some(five)))).unwrap().allowed);
        // Without an account limit, the default applies.
        assert_eq!(
            check(&l, 1, Some((Uuid::from_u128(7), None)))
                .unwrap()
                .policy,
            "default"
        );
    }
}
