//! The Redis backend: GCRA buckets in Redis, one atomic Lua script and one
//! round trip per check, so every replica counts against the same buckets
//! and N replicas together admit the configured rate.
//!
//! When Redis cannot be reached (or answers too slowly), checks fall back to
//! the [`Local`] backend at once — requests keep flowing under per-replica
//! limits — and the change is logged once; a background probe notices when
//! Redis is back and shared counting resumes. Keys expire once their bucket
//! has refilled, so idle state does not accumulate in Redis either.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::watch;

use super::local::Local;
use super::{Bucket, Outcome, Subject};
use crate::config::RateSpec;

/// GCRA (the algorithm `governor` implements), in microseconds. KEYS[1]:
/// the bucket, holding its theoretical arrival time; ARGV: emission
/// interval, burst. Returns {allowed, remaining, retry_after_us}.
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local dvt = interval * burst
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - dvt
local diff = now - allow_at
if diff < 0 then
  return {0, 0, allow_at - now}
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor(diff / interval), -1}
",
    )
});

/// The longest a check waits for Redis before falling back.
const BUDGET: Duration = Duration::from_millis(150);
/// How often an unreachable Redis is probed.
const PROBE_EVERY: Duration = Duration::from_millis(500);

pub(super) struct Redis {
    conn: ConnectionManager,
    fallback: Local,
    /// Redis answered the last time it was asked.
    healthy: AtomicBool,
    /// Checks answered by the local fallback (for metrics and `/readyz`).
    fallbacks: AtomicU64,
}

impl Redis {
    /// A backend for `url`; connects on first use, so keygate starts (on
    /// local limits) even when Redis is down.
    pub(super) fn new(url: &str, named: &[RateSpec]) -> redis::RedisResult<Self> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(200)))
            .set_response_timeout(Some(BUDGET))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(redis::Client::open(url)?, config)?;
        Ok(Self {
            conn,
            fallback: Local::new(named),
            healthy: AtomicBool::new(true),
            fallbacks: AtomicU64::new(0),
        })
    }

    pub(super) async fn check(&self, b: &Bucket<'_>) -> Outcome {
        if self.healthy.load(Ordering::Relaxed) {
            match self.shared(b).await {
                Ok(outcome) => return outcome,
                Err(e) => self.set_healthy(false, Some(&e)),
            }
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        self.fallback.check(b)
    }

    /// The check, in Redis.
    async fn shared(&self, b: &Bucket<'_>) -> Result<Outcome, String> {
        let key = key(b);
        let interval_us = i64::try_from(b.spec.per.as_micros() / u128::from(b.spec.count.max(1)))
            .unwrap_or(i64::MAX)
            .max(1);
        let mut invocation = GCRA.key(key);
        invocation.arg(interval_us).arg(b.spec.burst.max(1));
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(
            BUDGET,
            invocation.invoke_async::<(i64, i64, i64)>(&mut conn),
        )
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| e.to_string())?;
        Ok(match answer {
            (1, remaining, _) => Outcome::Allowed {
                remaining: u32::try_from(remaining).unwrap_or(0),
            },
            (_, _, retry_us) => Outcome::Denied {
                wait: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
            },
        })
    }

    /// Records whether Redis answers; logs each change of state once.
    fn set_healthy(&self, healthy: bool, cause: Option<&str>) {
        if self.healthy.swap(healthy, Ordering::Relaxed) != healthy {
            if healthy {
                tracing::info!("redis answers again: rate limits are shared across replicas");
            } else {
                tracing::warn!(
                    error = cause.unwrap_or("unknown"),
                    "redis unreachable: rate limits fall back to this replica's own"
                );
            }
        }
    }

    /// Whether limits are shared right now.
    pub(super) fn is_shared(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(super) fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Probes Redis while it is marked unreachable, until `shutdown` flips.
    pub(super) async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if !self.healthy.load(Ordering::Relaxed) {
                        let mut conn = self.conn.clone();
                        let cmd = redis::cmd("PING");
                        let ping = cmd.query_async::<String>(&mut conn);
                        if let Ok(Ok(_)) = tokio::time::timeout(BUDGET, ping).await {
                            self.set_healthy(true, None);
                        }
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }

    pub(super) fn housekeep(&self) {
        self.fallback.housekeep();
    }
}

/// `kg:rl:<policy>:<spec>:<subject>`: the spec is part of the key, so a
/// changed limit starts fresh buckets instead of misreading old ones.
/// SECURITY: `<policy>` is the bucket's namespace, never a bare route name:
/// a route named `default` must not share the default policy's buckets.
fn key(b: &Bucket<'_>) -> String {
    let policy = b.namespace;
    let spec = format!(
        "{}/{}ms/{}",
        b.spec.count,
        b.spec.per.as_millis(),
        b.spec.burst
    );
    match b.subject {
        Subject::Account(id) => format!("kg:rl:{policy}:{spec}:a:{id}"),
        Subject::Address(ip) => format!("kg:rl:{policy}:{spec}:ip:{ip}"),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::IpAddr;

    use uuid::Uuid;

    use super::key;
    use crate::config::Config;
    use crate::ratelimit::RateLimits;

    /// A route named like an internal policy, with the same spec: its
    /// buckets must still be its own.
    #[test]
    fn a_route_named_like_a_policy_has_buckets_of_its_own() {
        let c = Config::from_toml(
            r#"
[rate_limit]
default = "5/s"
[[routes]]
name = "default"
prefix = "/d"
upstream = "http://127.0.0.1:1"
rate_limit = "5/s"
[[routes]]
name = "revocations"
prefix = "/r"
upstream = "http://127.0.0.1:1"
rate_limit = "30/m burst 10"
[[routes]]
name = "plain"
prefix = "/p"
upstream = "http://127.0.0.1:1"
"#,
            &HashMap::new(),
        )
        .unwrap();
        let l = RateLimits::new(&c.rate_limit, &c.routes);
        let who = Some((Uuid::nil(), None));
        let ip = IpAddr::from([10, 0, 0, 1]);
        let route_default = l.bucket(0, who, ip).unwrap();
        let the_default = l.bucket(2, who, ip).unwrap();
        assert_eq!(
            route_default.name, "default",
            "the header still names the route"
        );
        assert_ne!(key(&route_default), key(&the_default));
        let route_revocations = l.bucket(1, who, ip).unwrap();
        assert!(key(&route_revocations).starts_with("kg:rl:route:revocations:"));
    }
}
