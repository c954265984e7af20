//! The SQLite store: the embedded default. WAL mode, foreign keys on, schema
//! from the embedded migrations. Writes are serialised in-process (SQLite has
//! one writer anyway) so a batch never fails on a lock upgrade; other
//! processes sharing the file wait on `busy_timeout`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::rows::*;
use super::sql::*;
use super::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    write_lock: Mutex<()>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and migrates it.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(Error::Unavailable)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(Error::Unavailable)?;
        MIGRATOR.run(&pool).await.map_err(Error::Migrate)?;
        Ok(Self {
            pool,
            write_lock: Mutex::new(()),
        })
    }
}

store_impl!(SqliteStore, Sqlite, {
    async fn write(&self, batch: WriteBatch) -> Result<i64> {
        let _serialised = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await.map_err(db)?;
        for w in &batch.writes {
            apply(&mut tx, w).await?;
        }
        let a = &batch.audit;
        sqlx::query(
            "INSERT INTO audit_events (id, at, actor_id, action, target_type, target_id, organization_id, details) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        let revision: i64 = sqlx::query_scalar(
            "INSERT INTO changes (at, accounts, topics) VALUES (?, ?, ?) RETURNING revision",
        )
        .bind(a.at)
        .bind(accounts_json(&batch))
        .bind(topics_json(&batch))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        Ok(revision)
    }

    async fn record_usage(&self, used: &[(Uuid, Uuid, i64)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        // One writer at a time: SQLite would refuse a second.
        let _serialised = self.write_lock.lock().await;
        self.q_record_usage(used).await
    }

    async fn heartbeat(&self, r: &Replica) -> Result<()> {
        // One writer at a time: SQLite would refuse a second.
        let _serialised = self.write_lock.lock().await;
        self.q_heartbeat(r).await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
});

token_reads!(SqliteStore);
