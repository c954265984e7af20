//! The PostgreSQL backend: for several replicas sharing one database. Same
//! schema and statements as SQLite. A committing transaction takes a
//! transaction-scoped advisory lock before drawing its revision, so
//! revisions commit in order and a cache reading "changes after N" can never
//! skip one that commits late. Each commit also `NOTIFY`s, so replicas pick
//! changes up at once; polling remains the backstop.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::Row as _;
use tokio::sync::Notify;

use super::sql::rows::db;
use super::sql::stmt::{bind_all, Stmt};
use super::sql::{Backend, SqlStore};
use super::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// The channel every commit notifies on.
const CHANNEL: &str = "keygate_changes";
/// Advisory lock key that orders revisions ("kgrv").
const REVISION_LOCK: i64 = 0x6b67_7276;

/// The PostgreSQL store.
pub type PostgresStore = SqlStore<Postgres>;

pub struct Postgres {
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
        Ok(SqlStore::over(Postgres {
            pool,
            notify,
            listener,
        }))
    }
}

/// Wakes the cache sync on every commit anywhere. After any break in the
/// listening connection it listens afresh and then wakes once: a commit
/// notified while it was away is read by that sync, one after it is notified.
async fn listen(pool: PgPool, notify: Arc<Notify>) {
    loop {
        let lost = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(CHANNEL).await {
                Ok(()) => {
                    notify.notify_one();
                    relay(&mut l, &notify).await
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN failed");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the change listener");
                false
            }
        };
        // A dropped connection is re-opened at once; a store that refuses
        // is asked again a second later.
        if !lost {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Wakes the sync on every notification until the connection breaks
/// (`true`) or the listener fails (`false`). `try_recv`, not `recv`: `recv`
/// reconnects silently, and the commits notified meanwhile would wait for
/// the next poll.
async fn relay(l: &mut PgListener, notify: &Notify) -> bool {
    loop {
        match l.try_recv().await {
            Ok(Some(_)) => notify.notify_one(),
            Ok(None) => {
                tracing::warn!("change listener lost its connection; listening afresh");
                return true;
            }
            Err(e) => {
                tracing::warn!(error = %e, "change listener failed");
                return false;
            }
        }
    }
}

impl Postgres {
    async fn run_in(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        stmts: Vec<Stmt>,
    ) -> Result<()> {
        for s in stmts {
            let on_no_row = s.on_no_row;
            let done = bind_all(sqlx::query(&s.sql), s.args)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
            on_no_row.check(done.rows_affected())?;
        }
        Ok(())
    }
}

impl Backend for Postgres {
    type Row = PgRow;
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const STRING_AGG: &'static str = "string_agg";

    async fn fetch(&self, stmt: Stmt) -> Result<Vec<PgRow>> {
        bind_all(sqlx::query(&stmt.sql), stmt.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    async fn run(&self, stmts: Vec<Stmt>) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        Self::run_in(&mut tx, stmts).await?;
        tx.commit().await.map_err(db)
    }

    async fn commit(&self, stmts: Vec<Stmt>, change: Stmt) -> Result<i64> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        Self::run_in(&mut tx, stmts).await?;
        // Serialise only the revision draw and commit: see the module docs.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(REVISION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let revision: i64 = bind_all(sqlx::query(&change.sql), change.args)
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?
            .try_get("revision")
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

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.notify))
    }
}
