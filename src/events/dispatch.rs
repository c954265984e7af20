//! The outbox, run on every replica: tail the event feed and enqueue one
//! delivery per event and subscribed webhook (replicas enqueueing the same
//! event collapse into one row), claim due deliveries with a lease, send
//! them, and record the attempt — delivered, retried with exponential
//! backoff and jitter, or failed once the retry window has passed. A
//! replica that dies mid-delivery leaves its lease to run out; another
//! replica then takes the delivery over.
//!
//! Bounded: at most `concurrency` attempts in flight, `per_target` per
//! webhook; each attempt within `timeout`. A slow receiver holds its own
//! slots, never a write or another receiver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{watch, Notify, Semaphore};
use uuid::Uuid;

use super::deliver::{Outcome, Sender, Signed};
use super::{body, event_type, lane, sign, subscribed};
use crate::clock::SharedClock;
use crate::config::EventsConfig;
use crate::store::{self, Attempt, Claim, Delivery, DeliveryStatus, Store, Webhook};
use crate::telemetry::metrics::{self, Metrics};

const EVENTS_PAGE: u32 = 500;
/// How often old deliveries are forgotten (`keep_deliveries`).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The longest wait between two retries, whatever the doubling says.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

struct Counters {
    delivered: ::metrics::Counter,
    retried: ::metrics::Counter,
    failed: ::metrics::Counter,
    refused: ::metrics::Counter,
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    sender: Sender,
    config: EventsConfig,
    replica: Uuid,
    clock: SharedClock,
    slots: Arc<Semaphore>,
    /// Attempts in flight per webhook on this replica.
    busy: Mutex<HashMap<Uuid, usize>>,
    /// An attempt finished: its lane may have the next delivery ready.
    finished: Notify,
    counters: Counters,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        config: EventsConfig,
        replica: Uuid,
        clock: SharedClock,
        metrics: &Metrics,
    ) -> Result<Self, rustls::Error> {
        let policy = super::target::Policy {
            allow_insecure: config.allow_insecure_targets,
        };
        let outcome = |o: &str| metrics.counter(metrics::WEBHOOK_ATTEMPTS, &[("outcome", o)]);
        Ok(Self {
            sender: Sender::new(policy, config.timeout)?,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            store,
            config,
            replica,
            clock,
            busy: Mutex::new(HashMap::new()),
            finished: Notify::new(),
            counters: Counters {
                delivered: outcome("delivered"),
                retried: outcome("retried"),
                failed: outcome("failed"),
                refused: outcome("refused"),
            },
        })
    }

    /// Runs until `shutdown` flips: woken when the cache applies a new
    /// revision (`applied`), when an attempt finishes, and every
    /// `poll_interval` (due retries, other replicas' leases running out).
    pub async fn run(
        self: Arc<Self>,
        mut applied: watch::Receiver<i64>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(self.config.poll_interval);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        loop {
            tokio::select! {
                _ = prune.tick() => {
                    let keep = i64::try_from(self.config.keep_deliveries.as_millis()).unwrap_or(i64::MAX / 2);
                    if let Err(e) = self.store.prune_deliveries(self.clock.now_ms() - keep).await {
                        tracing::warn!(error = %e, "old webhook deliveries could not be pruned");
                    }
                    continue;
                }
                changed = applied.changed() => {
                    if changed.is_err() {
                        // The syncer is gone: keep polling.
                        applied = watch::channel(0).1;
                    }
                }
                () = self.finished.notified() => {}
                _ = poll.tick() => {}
                _ = shutdown.changed() => break,
            }
            if let Err(e) = self.enqueue().await {
                tracing::warn!(error = %e, "webhook events could not be enqueued");
            }
            if let Err(e) = Arc::clone(&self).claim_and_send().await {
                tracing::warn!(error = %e, "webhook deliveries could not be claimed");
            }
        }
    }

    /// Turns every event after the shared cursor into deliveries.
    async fn enqueue(&self) -> store::Result<()> {
        let mut cursor = self.store.event_cursor().await?;
        // No webhook anywhere, nothing to deliver: the cursor moves past
        // every committed change without reading one. (The first start after
        // a bulk import otherwise parsed every account list it wrote, to
        // match them against no webhook: at a million accounts ~60 MB of
        // rows and parsing, of which 20-50 MiB stayed resident.) The head is
        // read before the webhooks: a webhook committed after it has its
        // creation event after it too, so it hears everything from then on.
        let head = self.store.revision().await?;
        if head <= cursor {
            return Ok(());
        }
        if self.store.all_webhooks().await?.is_empty() {
            return self.store.enqueue(Vec::new(), head).await;
        }
        loop {
            let events = self.store.events_since(cursor, EVENTS_PAGE).await?;
            let Some(last) = events.last().map(|e| e.revision) else {
                return Ok(());
            };
            // Read after the events: a webhook commits no later than its
            // own creation event, so every webhook made before any of these
            // events is seen.
            let hooks: Vec<Webhook> = self.store.all_webhooks().await?;
            let now = self.clock.now_ms();
            let mut deliveries = Vec::new();
            for event in &events {
                let a = &event.audit;
                let ty = event_type(&a.action, &a.details);
                let matching = hooks.iter().filter(|h| {
                    h.created_at <= a.at
                        && h.organization_id
                            .is_none_or(|o| Some(o) == a.organization_id)
                        && subscribed(&h.events, &ty)
                });
                let mut payload = None;
                for h in matching {
                    let payload = payload.get_or_insert_with(|| body(event, &ty)).clone();
                    deliveries.push(Delivery {
                        id: Uuid::now_v7(),
                        webhook_id: h.id,
                        revision: event.revision,
                        lane: lane(event),
                        event_id: format!("evt_{}", a.id.simple()),
                        event_type: ty.clone(),
                        payload,
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        created_at: now,
                        next_attempt_at: now,
                        last_attempt_at: None,
                        last_status: None,
                        last_error: None,
                        delivered_at: None,
                    });
                }
            }
            self.store.enqueue(deliveries, last).await?;
            cursor = last;
        }
    }

    async fn claim_and_send(self: Arc<Self>) -> store::Result<()> {
        loop {
            let free = self.slots.available_permits();
            if free == 0 {
                return Ok(());
            }
            let skip: Vec<Uuid> = self
                .busy()
                .iter()
                .filter(|(_, n)| **n >= self.config.per_target)
                .map(|(id, _)| *id)
                .collect();
            let now = self.clock.now_ms();
            let lease = i64::try_from(self.config.lease.as_millis()).unwrap_or(60_000);
            let claimed = self
                .store
                .claim(Claim {
                    replica: self.replica,
                    now,
                    lease_until: now + lease,
                    limit: u32::try_from(free).unwrap_or(u32::MAX),
                    skip: &skip,
                })
                .await?;
            if claimed.is_empty() {
                return Ok(());
            }
            for d in claimed {
                let room = {
                    let mut busy = self.busy();
                    let n = busy.entry(d.webhook_id).or_insert(0);
                    (*n < self.config.per_target).then(|| *n += 1)
                };
                let permit = match (room, Arc::clone(&self.slots).try_acquire_owned()) {
                    (Some(()), Ok(p)) => p,
                    (room, _) => {
                        if room.is_some() {
                            self.release(d.webhook_id);
                        }
                        // No room after all: hand it back at once.
                        self.store.release(d.id, self.replica).await?;
                        continue;
                    }
                };
                let me = Arc::clone(&self);
                tokio::spawn(async move {
                    let webhook = d.webhook_id;
                    me.attempt(d).await;
                    me.release(webhook);
                    drop(permit);
                    me.finished.notify_one();
                });
            }
        }
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        self.busy
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn release(&self, webhook: Uuid) {
        let mut busy = self.busy();
        if let Some(n) = busy.get_mut(&webhook) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                busy.remove(&webhook);
            }
        }
    }

    async fn attempt(&self, d: Delivery) {
        let hook = match self.store.webhook(d.webhook_id).await {
            Ok(Some(h)) => h,
            // Deleted meanwhile: its deliveries went with it.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "webhook could not be read; the lease will run out");
                return;
            }
        };
        let now = self.clock.now_ms();
        let timestamp = now / 1000;
        let outcome =
            match sign::signature(&hook.secret, &d.event_id, timestamp, d.payload.as_bytes()) {
                Some(signature) => {
                    let signed = Signed {
                        id: &d.event_id,
                        timestamp,
                        signature: &signature,
                    };
                    self.sender
                        .send(&hook.url, &signed, Bytes::from(d.payload.clone()))
                        .await
                }
                None => Outcome::Failed("webhook secret is malformed"),
            };
        let at = self.clock.now_ms();
        let attempt = self.judge(&d, &outcome, at);
        // One outcome per attempt; giving up is always `failed`.
        match (&attempt, &outcome) {
            (Attempt::Failed { .. }, _) => self.counters.failed.increment(1),
            (_, Outcome::Refused(_)) => self.counters.refused.increment(1),
            (Attempt::Delivered { .. }, _) => self.counters.delivered.increment(1),
            (Attempt::Retry { .. }, _) => self.counters.retried.increment(1),
        }
        if let Outcome::Refused(why) = &outcome {
            tracing::warn!(webhook = %hook.id, reason = %why, "webhook target refused at delivery");
        }
        tracing::debug!(webhook = %hook.id, event = %d.event_id, ?outcome, "webhook attempt");
        if let Err(e) = self.store.finish(d.id, self.replica, at, attempt).await {
            tracing::warn!(error = %e, "webhook attempt could not be recorded; it will be retried");
        }
    }

    /// Delivered on 2xx; anything else is retried until the window closes.
    fn judge(&self, d: &Delivery, outcome: &Outcome, at: i64) -> Attempt {
        let (status, error) = match outcome {
            Outcome::Answered(s) if (200..300).contains(s) => {
                return Attempt::Delivered {
                    status: i64::from(*s),
                }
            }
            Outcome::Answered(s) if (300..400).contains(s) => {
                (Some(i64::from(*s)), "redirect not followed".to_string())
            }
            Outcome::Answered(s) => (Some(i64::from(*s)), format!("answered {s}")),
            Outcome::Refused(why) => (None, format!("target not allowed: url {why}")),
            Outcome::Failed(why) => (None, (*why).to_string()),
        };
        let delay = backoff(
            self.config.retry_first,
            d.attempts + 1,
            &mut rand::thread_rng(),
        );
        let next_at = at + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
        let window = i64::try_from(self.config.retry_for.as_millis()).unwrap_or(i64::MAX / 2);
        if next_at > d.created_at + window {
            Attempt::Failed { status, error }
        } else {
            Attempt::Retry {
                status,
                error,
                next_at,
            }
        }
    }
}

/// The wait after the `attempts`-th failed attempt: `first`, doubling with
/// each attempt, at most an hour, jittered into its upper half (so the
/// first retry comes within `first`, and replicas' retries spread out).
pub fn backoff(first: Duration, attempts: i64, rng: &mut impl rand::Rng) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 30)).unwrap_or(30);
    let full = first
        .checked_mul(1u32 << doublings)
        .unwrap_or(MAX_BACKOFF)
        .min(MAX_BACKOFF);
    full.mul_f64(rng.gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_within_the_first_delay_and_doubles() {
        let mut rng = rand::thread_rng();
        let first = Duration::from_secs(5);
        for _ in 0..100 {
            let d1 = backoff(first, 1, &mut rng);
            assert!(d1 <= first && d1 >= first / 2, "{d1:?}");
            let d3 = backoff(first, 3, &mut rng);
            assert!(d3 <= first * 4 && d3 >= first * 2, "{d3:?}");
            assert!(backoff(first, 40, &mut rng) <= MAX_BACKOFF);
        }
    }
}
