//! Keeps a [`Cache`] current with the store: the initial load, catching up
//! on the change feed (at once after a local write, and every
//! `poll_interval` for other writers), batched `last_used_at` writes and the
//! replica heartbeat. Runs beside the hot path, never on it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Mutex};
use uuid::Uuid;

use super::Cache;
use crate::clock::SharedClock;
use crate::store::{self, Page, Replica, Store, TOPIC_REVOCATIONS, TOPIC_SIGNING_KEYS};
use crate::token::KeyRing;

const LOAD_PAGE: u32 = 2_000;
const CHANGES_PAGE: u32 = 1_000;
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
const USAGE_FLUSH_EVERY: Duration = Duration::from_secs(10);

pub struct Syncer {
    cache: Arc<Cache>,
    ring: Arc<KeyRing>,
    store: Arc<dyn Store>,
    clock: SharedClock,
    replica: Replica,
    /// One catch-up at a time; held across store awaits, never on the hot path.
    applying: Mutex<()>,
}

impl Syncer {
    pub fn new(
        cache: Arc<Cache>,
        ring: Arc<KeyRing>,
        store: Arc<dyn Store>,
        clock: SharedClock,
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
            store,
            clock,
            replica,
            applying: Mutex::new(()),
        }
    }

    pub fn replica_id(&self) -> Uuid {
        self.replica.id
    }

    /// Loads every live key, then whatever changed meanwhile. The caller
    /// marks the cache ready once the public listener serves.
    pub async fn load(&self) -> store::Result<()> {
        let _one = self.applying.lock().await;
        let revision = self.store.revision().await?;
        let mut after = None;
        loop {
            let page = self
                .store
                .auth_entries(Page {
                    after,
                    limit: LOAD_PAGE,
                })
                .await?;
            for record in &page {
                self.cache.insert(record);
            }
            match page.last() {
                Some(last) if page.len() == LOAD_PAGE as usize => after = Some(last.key_id),
                _ => break,
            }
        }
        for (credential, account) in self.store.credential_records().await? {
            self.cache.insert_client(&credential, &account);
        }
        self.cache
            .set_restricted(&self.store.restricted_accounts().await?);
        self.cache
            .set_revoked(&self.store.revoked_tokens(self.clock.now_ms()).await?);
        self.cache.set_revision(revision);
        self.reload_ring().await?;
        self.catch_up_locked().await?;
        Ok(())
    }

    /// Applies every change after the cache's revision. Returns the revision
    /// now reflected.
    pub async fn catch_up(&self) -> store::Result<i64> {
        let _one = self.applying.lock().await;
        self.catch_up_locked().await
    }

    async fn catch_up_locked(&self) -> store::Result<i64> {
        loop {
            let changes = self
                .store
                .changes_since(self.cache.revision(), CHANGES_PAGE)
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
            let mut seen: Vec<Uuid> = Vec::new();
            for id in changes.iter().flat_map(|c| c.accounts.iter()) {
                if seen.contains(id) {
                    continue;
                }
                seen.push(*id);
                let keys = self.store.keys_of(*id).await?;
                let credentials = self.store.credentials_of(*id).await?;
                match self.store.account(*id).await? {
                    Some(account) => self.cache.apply_account(&account, &keys, &credentials),
                    None => self.cache.evict(&keys, &credentials),
                }
            }
            self.cache.set_revision(last);
        }
        self.cache.mark_synced(self.clock.now_ms());
        Ok(self.cache.revision())
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
        loop {
            tokio::select! {
                () = pushed(signal.as_deref()) => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, "cache sync after notification failed");
                    }
                }
                _ = poll.tick() => {
                    if let Err(e) = self.catch_up().await {
                        tracing::warn!(error = %e, staleness_ms = self.cache.staleness_ms(self.clock.now_ms()), "cache sync failed; serving from cache");
                    }
                }
                _ = flush.tick() => self.flush_usage().await,
                _ = beat.tick() => self.heartbeat().await,
                _ = shutdown.changed() => break,
            }
        }
        self.flush_usage().await;
    }

    async fn flush_usage(&self) {
        let used = self.cache.take_usage();
        if let Err(e) = self.store.record_usage(&used).await {
            tracing::warn!(error = %e, dropped = used.len(), "could not record last_used_at");
        }
    }

    async fn heartbeat(&self) {
        let mut r = self.replica.clone();
        r.heartbeat_at = self.clock.now_ms();
        r.revision = self.cache.revision();
        if let Err(e) = self.store.heartbeat(&r).await {
            tracing::debug!(error = %e, "heartbeat failed");
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
