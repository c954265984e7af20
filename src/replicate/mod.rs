//! Replication: keeps this replica's view of the store current. The
//! initial load, catching up on the change feed (at once after a local
//! write, on a push from the store, and every `poll_interval` as the
//! backstop), into the credential [`Cache`] and the signing-key
//! [`KeyRing`]; batched `last_used_at` writes and the replica heartbeat.
//! Runs beside the hot path, never on it. Sits above `store`, `authn` and
//! `jwt`; `manage` reaches it only through its [`AfterCommit`] hook.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{watch, Mutex};
use uuid::Uuid;

use crate::authn::{Cache, UsageQueue};
use crate::clock::SharedClock;
use crate::jwt::KeyRing;
use crate::manage::AfterCommit;
use crate::store::{self, Keyset, Replica, Store, TOPIC_REVOCATIONS, TOPIC_SIGNING_KEYS};

const LOAD_PAGE: u32 = 2_000;
/// At most this many key ranges load side by side at start (at least two,
/// so that the split is taken on every machine, one core or many; at most
/// half the SQLite pool's connections).
const LOAD_PARTS: usize = 4;
/// The fewest keys worth a range of their own.
pub const LOAD_MIN_PER_PART: u32 = LOAD_PAGE;
const CHANGES_PAGE: u32 = 1_000;
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const USAGE_FLUSH_EVERY: Duration = Duration::from_secs(10);
/// The soonest a heartbeat follows a change of the applied revision.
const PROMPT_BEAT: Duration = Duration::from_millis(100);

pub struct Syncer {
    cache: Arc<Cache>,
    ring: Arc<KeyRing>,
    usage: Arc<UsageQueue>,
    store: Arc<dyn Store>,
    clock: SharedClock,
    replica: Replica,
    /// How far back stopped credentials matter to live tokens (ms).
    token_horizon_ms: i64,
    /// One catch-up at a time; held across store awaits, never on the hot path.
    applying: Mutex<()>,
    /// Signalled when the applied revision moves: the heartbeat then tells
    /// the fleet soon, so `GET /v1/replicas?revision=N` can answer.
    advanced: tokio::sync::Notify,
    /// The revision this replica has applied, for whoever acts on new
    /// changes (the webhook dispatcher).
    applied: watch::Sender<i64>,
}

/// The (after, through) bounds of the ranges that `cuts` (ascending key
/// ids, as [`Store::key_splits`] gives them) make: each range runs through
/// its cut, the next starts after it, the last has no end.
pub fn load_ranges(cuts: &[Uuid]) -> Vec<(Option<Uuid>, Option<Uuid>)> {
    let starts = std::iter::once(None).chain(cuts.iter().copied().map(Some));
    let ends = cuts.iter().copied().map(Some).chain(std::iter::once(None));
    starts.zip(ends).collect()
}

/// The live keys after `after`, through `through`, into `cache`, page by page.
async fn load_range(
    store: Arc<dyn Store>,
    cache: Arc<Cache>,
    mut after: Option<Uuid>,
    through: Option<Uuid>,
) -> store::Result<()> {
    loop {
        let page = store
            .auth_entries(Keyset::after(after, LOAD_PAGE), through)
            .await?;
        cache.insert_page(&page);
        match page.last() {
            Some(last) if page.len() == LOAD_PAGE as usize => after = Some(last.key_id),
            _ => return Ok(()),
        }
    }
}

impl Syncer {
    pub fn new(
        cache: Arc<Cache>,
        ring: Arc<KeyRing>,
        usage: Arc<UsageQueue>,
        store: Arc<dyn Store>,
        clock: SharedClock,
        token_horizon_ms: i64,
    ) -> Self {
        let now = clock.now_ms();
        let replica = Replica {
            id: Uuid::now_v7(),
            hostname: hostname(),
            started_at: now,
            heartbeat_at: now,
            revision: 0,
        };
        Self {
            cache,
            ring,
            usage,
            store,
            clock,
            replica,
            token_horizon_ms,
            applying: Mutex::new(()),
            advanced: tokio::sync::Notify::new(),
            applied: watch::channel(0).0,
        }
    }

    pub fn replica_id(&self) -> Uuid {
        self.replica.id
    }

    /// Changes whenever this replica applies a newer revision.
    pub fn applied(&self) -> watch::Receiver<i64> {
        self.applied.subscribe()
    }

    /// Loads every live key, then whatever changed meanwhile. The caller
    /// marks the cache ready once the public listener serves.
    pub async fn load(&self) -> store::Result<()> {
        let _one = self.applying.lock().await;
        let revision = self.store.revision().await?;
        self.load_keys().await?;
        for (credential, account) in self.store.credential_records().await? {
            self.cache.insert_client(&credential, &account);
        }
        self.cache
            .set_restricted(&self.store.restricted_accounts().await?);
        // The load above reads keys without their narrowing and quotas;
        // the (few) accounts that have any are read again in full.
        let narrowed = self.store.narrowed_accounts().await?;
        self.apply_accounts(&narrowed).await?;
        let since = self.clock.now_ms().saturating_sub(self.token_horizon_ms);
        self.cache
            .set_dead(&self.store.dead_credentials(since).await?);
        self.cache
            .set_revoked(&self.store.revoked_tokens(self.clock.now_ms()).await?);
        self.cache.freshness().set_revision(revision);
        self.reload_ring().await?;
        self.catch_up_locked().await?;
        Ok(())
    }

    /// Every live key into the cache, in ranges of the key ids read side by
    /// side, two per core (2 to [`LOAD_PARTS`]; one range when there are
    /// too few keys for two of [`LOAD_MIN_PER_PART`]): each range's pages
    /// come through a store connection of its own (for SQLite, a thread of
    /// its own) and are cached on a task of its own, so one range's pages
    /// are read while another's are cached. Read one after the other, a
    /// page's handover between SQLite's thread and the loader's crossed
    /// cores at every page, and a start on two cores took longer than on
    /// one; one range per core still left the cores idle a third of the
    /// time, two per core (four on two cores) did not.
    async fn load_keys(&self) -> store::Result<()> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cuts = self
            .store
            .key_splits((2 * cores).clamp(2, LOAD_PARTS) as u32, LOAD_MIN_PER_PART)
            .await?;
        let mut ranges = tokio::task::JoinSet::new();
        for (after, through) in load_ranges(&cuts) {
            let (store, cache) = (Arc::clone(&self.store), Arc::clone(&self.cache));
            ranges.spawn(load_range(store, cache, after, through));
        }
        while let Some(done) = ranges.join_next().await {
            match done {
                Ok(loaded) => loaded?,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        Ok(())
    }

    /// Applies every change after the cache's revision. Returns the revision
    /// now reflected.
    pub async fn catch_up(&self) -> store::Result<i64> {
        let _one = self.applying.lock().await;
        self.catch_up_locked().await
    }

    /// Applies changes until the cache reflects `revision` at least. A
    /// cache already there (another writer's catch-up took this revision
    /// along, as happens for every write of a burst but the first) costs no
    /// store read: the writes of a burst wait on one catch-up, not on one
    /// each in turn. Revisions commit in order, so a cache at `revision`
    /// holds every change up to it.
    pub async fn catch_up_to(&self, revision: i64) -> store::Result<i64> {
        let now = self.cache.freshness().revision();
        if now >= revision {
            return Ok(now);
        }
        let _one = self.applying.lock().await;
        let now = self.cache.freshness().revision();
        if now >= revision {
            return Ok(now);
        }
        self.catch_up_locked().await
    }

    async fn catch_up_locked(&self) -> store::Result<i64> {
        loop {
            let changes = self
                .store
                .changes_since(self.cache.freshness().revision(), CHANGES_PAGE)
                .await?;
            let Some(last) = changes.last().map(|c| c.revision) else {
                break;
            };
            if changes
                .iter()
                .any(|c| c.topics.iter().any(|t| t == TOPIC_SIGNING_KEYS))
            {
                self.reload_ring().await?;
            }
            if changes
                .iter()
                .any(|c| c.topics.iter().any(|t| t == TOPIC_REVOCATIONS))
            {
                self.cache
                    .set_revoked(&self.store.revoked_tokens(self.clock.now_ms()).await?);
            }
            // Every account the batch touched, read in three statements: a
            // burst of changes costs about what one does.
            let mut touched: Vec<Uuid> = changes
                .iter()
                .flat_map(|c| c.accounts.iter().copied())
                .collect();
            touched.sort_unstable();
            touched.dedup();
            self.apply_accounts(&touched).await?;
            self.cache.freshness().set_revision(last);
            self.advanced.notify_one();
            self.applied.send_replace(last);
        }
        self.cache.freshness().mark_synced(self.clock.now_ms());
        Ok(self.cache.freshness().revision())
    }

    /// Replaces what the cache holds of each account with the store's.
    async fn apply_accounts(&self, ids: &[Uuid]) -> store::Result<()> {
        let state = self.store.auth_state_of(ids).await?;
        for id in ids {
            let keys: Vec<_> = state
                .keys
                .iter()
                .filter(|k| k.service_account_id == *id)
                .cloned()
                .collect();
            let credentials: Vec<_> = state
                .credentials
                .iter()
                .filter(|c| c.service_account_id == *id)
                .cloned()
                .collect();
            let bindings: Vec<_> = state
                .bindings
                .iter()
                .filter(|b| b.service_account_id == *id)
                .cloned()
                .collect();
            match state.accounts.iter().find(|a| a.id == *id) {
                Some(account) => {
                    self.cache.apply_account(account, &keys, &credentials);
                    self.cache.apply_bindings(account, &bindings);
                }
                None => {
                    self.cache.evict(&keys, &credentials);
                    self.cache.evict_bindings(*id);
                }
            }
        }
        Ok(())
    }

    async fn reload_ring(&self) -> store::Result<()> {
        let keys = self.store.signing_keys(self.clock.now_ms()).await?;
        self.ring.replace(&keys);
        Ok(())
    }

    /// Polls the change feed until `shutdown` flips, flushing usage and
    /// heartbeating as it goes; flushes usage once more on the way out.
    pub async fn run(
        self: Arc<Self>,
        poll_interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(poll_interval);
        let mut flush = tokio::time::interval(USAGE_FLUSH_EVERY);
        let mut beat = tokio::time::interval(HEARTBEAT_EVERY);
        // A store that pushes changes wakes us at once; polling is the backstop.
        // `notify_one` keeps a permit while nobody waits, so none is lost.
        let signal = self.store.change_signal();
        // After the applied revision moves, one early heartbeat, at most one
        // per PROMPT_BEAT: the fleet learns what this replica has applied.
        let mut early_beat: Option<tokio::time::Instant> = None;
        let mut last_beat = tokio::time::Instant::now();
        loop {
            let early = async {
                match early_beat {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = pushed(signal.as_deref()) => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, "cache sync after notification failed");
                    }
                }
                _ = poll.tick() => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, staleness_ms = self.cache.freshness().staleness_ms(self.clock.now_ms()), "cache sync failed; serving from cache");
                    }
                }
                () = self.advanced.notified() => {
                    early_beat.get_or_insert((last_beat + PROMPT_BEAT).max(tokio::time::Instant::now()));
                }
                () = early => {
                    early_beat = None;
                    last_beat = tokio::time::Instant::now();
                    self.heartbeat().await;
                }
                _ = flush.tick() => self.flush_usage().await,
                _ = beat.tick() => {
                    last_beat = tokio::time::Instant::now();
                    self.heartbeat().await;
                }
                _ = shutdown.changed() => break,
            }
        }
        self.flush_usage().await;
    }

    async fn flush_usage(&self) {
        let used = self.usage.take();
        if let Err(e) = self.store.record_usage(&used).await {
            tracing::warn!(error = %e, dropped = used.len(), "could not record last_used_at");
        }
    }

    async fn heartbeat(&self) {
        let mut r = self.replica.clone();
        r.heartbeat_at = self.clock.now_ms();
        r.revision = self.cache.freshness().revision();
        if let Err(e) = self.store.heartbeat(&r).await {
            tracing::debug!(error = %e, "heartbeat failed");
        }
    }
}

/// After a write commits through this replica, its cache applies it before
/// the write call returns: a revocation through a replica is effective there
/// at once.
#[async_trait]
impl AfterCommit for Syncer {
    async fn committed(&self, revision: i64) {
        if let Err(e) = self.catch_up_to(revision).await {
            // Committed; other replicas (and this one's poll) will pick it up.
            tracing::warn!(error = %e, revision, "write committed but local cache catch-up failed");
        }
    }
}

async fn pushed(signal: Option<&tokio::sync::Notify>) {
    match signal {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Which ranges `id` falls in: after `after`, up to and including `through`.
    fn holding(ranges: &[(Option<Uuid>, Option<Uuid>)], id: Uuid) -> usize {
        ranges
            .iter()
            .filter(|(after, through)| {
                after.is_none_or(|a| id > a) && through.is_none_or(|t| id <= t)
            })
            .count()
    }

    #[test]
    fn load_ranges_cover_every_id_once_and_run_through_their_cut() {
        assert_eq!(load_ranges(&[]), vec![(None, None)]);
        let a = Uuid::from_u128(0x10);
        let b = Uuid::from_u128(0x20);
        let ranges = load_ranges(&[a, b]);
        assert_eq!(
            ranges,
            vec![(None, Some(a)), (Some(a), Some(b)), (Some(b), None)]
        );
        for id in [0u128, 0xf, 0x10, 0x11, 0x1f, 0x20, 0x21, u128::MAX] {
            assert_eq!(holding(&ranges, Uuid::from_u128(id)), 1, "{id:#x}");
        }
        // The greatest id as a cut: the last range is empty.
        let ranges = load_ranges(&[Uuid::max()]);
        assert_eq!(holding(&ranges, Uuid::max()), 1);
        assert_eq!(holding(&ranges, Uuid::nil()), 1);
    }
}
