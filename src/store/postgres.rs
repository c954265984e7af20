//! The PostgreSQL store: for several replicas sharing one database. Same
//! schema and mapping as SQLite. Change-producing transactions take a
//! transaction-scoped advisory lock before drawing their revision, so
//! revisions commit in order and a cache reading "changes after N" can never
//! skip one that commits late. Each commit also `NOTIFY`s, so replicas pick
//! changes up at once; polling remains the backstop.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use sqlx::Postgres;
use tokio::sync::Notify;
use uuid::Uuid;

use super::rows::*;
use super::sql::*;
use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// The channel every commit notifies on.
const CHANNEL: &str = "keygate_changes";
/// Advisory lock key that orders revisions ("kgrv").
const REVISION_LOCK: i64 = 0x6b67_7276;

pub struct PostgresStore {
    pool: PgPool,
    notify: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
}

impl PostgresStore {
    /// Connects, migrates, and starts listening for other replicas' commits.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .map_err(Error::Unavailable)?;
        MIGRATOR.run(&pool).await.map_err(Error::Migrate)?;
        let notify = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(pool.clone(), Arc::clone(&notify)));
        Ok(Self {
            pool,
            notify,
            listener,
        })
    }
}

/// Wakes the cache sync on every commit anywhere; reconnects after errors
/// (and wakes once then, since notifications may have been missed).
async fn listen(pool: PgPool, notify: Arc<Notify>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                if let Err(e) = l.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "LISTEN failed");
                } else {
                    notify.notify_one();
                    while l.recv().await.is_ok() {
                        notify.notify_one();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open the change listener"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

store_impl!(PostgresStore, Postgres, {
    async fn write(&self, batch: WriteBatch) -> Result<i64> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        for w in &batch.writes {
            apply(&mut tx, w).await?;
        }
        let a = &batch.audit;
        sqlx::query(
            "INSERT INTO audit_events (id, at, actor_id, action, target_type, target_id, organization_id, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(a.id.to_string())
        .bind(a.at)
        .bind(a.actor_id.map(|u| u.to_string()))
        .bind(&a.action)
        .bind(&a.target_type)
        .bind(a.target_id.to_string())
        .bind(a.organization_id.map(|u| u.to_string()))
        .bind(a.details.to_string())
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        // Serialise only the revision draw and commit: see the module docs.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REVISION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let revision: i64 = sqlx::query_scalar(
            "INSERT INTO changes (at, accounts, topics) VALUES ($1, $2, $3) RETURNING revision",
        )
        .bind(a.at)
        .bind(accounts_json(&batch))
        .bind(topics_json(&batch))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(revision.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(revision)
    }

    async fn record_usage(&self, used: &[(Uuid, Uuid, i64)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        self.q_record_usage(used).await
    }

    async fn heartbeat(&self, r: &Replica) -> Result<()> {
        self.q_heartbeat(r).await
    }

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.notify))
    }
});

token_reads!(PostgresStore);
