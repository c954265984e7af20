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
use crate::quota::{Charge, Metering, Spending};

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

/// The rate limit and the quotas of one request, in one round trip.
/// KEYS: the GCRA bucket (when ARGV[1] = 1), then one counter per quota.
/// ARGV: has-bucket, emission interval (µs), burst, cost, quota count, then
/// per quota: limit, the count to start from when Redis has none (what the
/// store says was spent), time to live (ms; 0: none). Over the rate limit:
/// nothing is spent. Within it, the bucket is spent; the quotas only when
/// every one of them has room. Returns {rate_allowed, remaining,
/// retry_after_us, exhausted quota (1-based; 0: none), [left per quota]}.
static ADMIT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local has_rate = ARGV[1] == '1'
local cost = tonumber(ARGV[4])
local nq = tonumber(ARGV[5])
local first = 1
local remaining = -1
local now, new_tat
if has_rate then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local interval = tonumber(ARGV[2])
  local burst = tonumber(ARGV[3])
  local tat = tonumber(redis.call('GET', KEYS[1])) or now
  if tat < now then tat = now end
  new_tat = tat + interval
  local allow_at = new_tat - interval * burst
  local diff = now - allow_at
  if diff < 0 then
    return {0, 0, allow_at - now, 0}
  end
  redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000))
  remaining = math.floor(diff / interval)
  first = 2
end
local spent = {}
for i = 1, nq do
  local key = KEYS[first + i - 1]
  local limit = tonumber(ARGV[3 + 3 * i])
  local cur = tonumber(redis.call('GET', key))
  if cur == nil then
    cur = tonumber(ARGV[4 + 3 * i])
    local ttl = tonumber(ARGV[5 + 3 * i])
    if ttl > 0 then
      redis.call('SET', key, cur, 'PX', ttl)
    else
      redis.call('SET', key, cur)
    end
  end
  if cur + cost > limit then
    return {1, remaining, -1, i}
  end
  spent[i] = cur
end
local out = {1, remaining, -1, 0}
for i = 1, nq do
  local after = redis.call('INCRBY', KEYS[first + i - 1], cost)
  out[4 + i] = tonumber(ARGV[3 + 3 * i]) - after
end
return out
",
    )
});

/// Spending decided by a replica while Redis was away, added on its
/// return to the counters Redis still holds (one Redis lost meanwhile is
/// seeded again from the store, which the spending has been flushed to).
static RECONCILE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return -1
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
    metering: Arc<Metering>,
}

impl Redis {
    /// A backend for `url`; connects on first use, so keygate starts (on
    /// local limits) even when Redis is down.
    pub(super) fn new(
        url: &str,
        named: &[RateSpec],
        metering: Arc<Metering>,
    ) -> redis::RedisResult<Self> {
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
            metering,
        })
    }

    /// The rate limit (when `bucket` is set) and the quotas, in one round
    /// trip; on the local fallback while Redis is unreachable. `None` for
    /// the quotas: the rate limit refused first.
    pub(super) async fn admit(
        &self,
        bucket: Option<&Bucket<'_>>,
        charges: &[Charge],
        cost: u64,
    ) -> (Option<Outcome>, Option<Spending>) {
        let meter = &self.metering.meter;
        if self.healthy.load(Ordering::Relaxed) {
            match self.shared_admit(bucket, charges, cost).await {
                Ok(answer) => {
                    if let (_, Some(Spending::Spent { .. })) = answer {
                        // Redis decided; the store still learns what was spent.
                        meter.record(charges, cost);
                    }
                    return answer;
                }
                Err(e) => self.set_healthy(false, Some(&e)),
            }
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let outcome = bucket.map(|b| self.fallback.check(b));
        if matches!(outcome, Some(Outcome::Denied { .. })) {
            return (outcome, None);
        }
        let spending = meter.spend(charges, cost);
        if let Spending::Spent { .. } = spending {
            meter.unshared(charges, cost);
        }
        (outcome, Some(spending))
    }

    async fn shared_admit(
        &self,
        bucket: Option<&Bucket<'_>>,
        charges: &[Charge],
        cost: u64,
    ) -> Result<(Option<Outcome>, Option<Spending>), String> {
        let now_ms = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let mut invocation = ADMIT.prepare_invoke();
        match bucket {
            Some(b) => {
                invocation
                    .key(key(b))
                    .arg(1)
                    .arg(interval_us(b))
                    .arg(b.spec.burst.max(1));
            }
            None => {
                invocation.arg(0).arg(1).arg(1);
            }
        }
        invocation.arg(cost).arg(charges.len());
        for c in charges {
            let ttl = if c.window.end == i64::MAX {
                0
            } else {
                // A day past the window's end: late spending still lands.
                (c.window.end - now_ms).max(0) + 86_400_000
            };
            invocation
                .key(quota_key(c))
                .arg(c.limit)
                .arg(self.metering.meter.spent(c.subject, c.window))
                .arg(ttl);
        }
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(BUDGET, invocation.invoke_async::<Vec<i64>>(&mut conn))
            .await
            .map_err(|_| "timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let field = |i: usize| answer.get(i).copied().unwrap_or(-1);
        let outcome = bucket.map(|_| match field(0) {
            1 => Outcome::Allowed {
                remaining: u32::try_from(field(1)).unwrap_or(0),
            },
            _ => Outcome::Denied {
                wait: Duration::from_micros(u64::try_from(field(2)).unwrap_or(0)),
            },
        });
        if field(0) != 1 {
            return Ok((outcome, None));
        }
        let spending = match usize::try_from(field(3)).unwrap_or(0) {
            0 => {
                let (mut remaining, mut index) = (u64::MAX, 0);
                for i in 0..charges.len() {
                    let left = u64::try_from(field(4 + i)).unwrap_or(0);
                    if left < remaining {
                        (remaining, index) = (left, i);
                    }
                }
                Spending::Spent { remaining, index }
            }
            exhausted => Spending::Exhausted(exhausted - 1),
        };
        Ok((outcome, Some(spending)))
    }

    /// Adds what was spent on the local fallback to Redis's counters.
    async fn reconcile(&self) {
        for (subject, window_start, amount) in self.metering.meter.take_unshared() {
            let mut conn = self.conn.clone();
            let mut invocation = RECONCILE.key(quota_key_of(subject, window_start));
            invocation.arg(amount);
            let done =
                tokio::time::timeout(BUDGET, invocation.invoke_async::<i64>(&mut conn)).await;
            if !matches!(done, Ok(Ok(_))) {
                tracing::debug!("could not add fallback quota spending to redis");
            }
        }
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
        let mut invocation = GCRA.key(key(b));
        invocation.arg(interval_us(b)).arg(b.spec.burst.max(1));
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

    /// Whether `key` is new to the fleet (`SET NX PX`), remembered for
    /// `ttl_ms`. While Redis is unreachable: `true`, the caller's own
    /// memory having answered already.
    pub(super) async fn first_use(&self, key: &str, ttl_ms: i64) -> bool {
        if !self.healthy.load(Ordering::Relaxed) {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("kg:once:{key}"))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms.max(1));
        let mut conn = self.conn.clone();
        let answer = tokio::time::timeout(BUDGET, cmd.query_async::<Option<String>>(&mut conn))
            .await
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match answer {
            Ok(set) => set.is_some(),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "redis unreachable: one-time values (assertion jti) are checked on this replica only"
                );
                self.set_healthy(false, Some(&e));
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                true
            }
        }
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
                            self.reconcile().await;
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

fn interval_us(b: &Bucket<'_>) -> i64 {
    i64::try_from(b.spec.per.as_micros() / u128::from(b.spec.count.max(1)))
        .unwrap_or(i64::MAX)
        .max(1)
}

/// `kg:q:<subject>:<window start>`: a window's counter, shared by replicas.
fn quota_key(c: &Charge) -> String {
    quota_key_of(c.subject, c.window.start)
}

fn quota_key_of(subject: uuid::Uuid, window_start: i64) -> String {
    format!("kg:q:{subject}:{window_start}")
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
