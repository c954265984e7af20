//! The PostgreSQL backend: for several replicas sharing one database. Same
//! schema and statements as SQLite. A committing transaction takes a
//! transaction-scoped advisory lock before drawing its revision, so
//! revisions commit in order and a cache reading "changes after N" can never
//! skip one that commits late. Each commit also `NOTIFY`s, so replicas pick
//! changes up at once; polling remains the backstop.
//!
//! Group commit: writes that arrive while one commits wait, then commit
//! together in one transaction — each in a savepoint of its own (one that
//! fails is rolled back alone, with its own error), each with its own
//! revision and audit row, drawn in arrival order under the lock — so a
//! burst pays one flush instead of one per write. Leadership runs on a task
//! of its own: a caller that goes away never strands the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::Row as _;
use tokio::sync::{oneshot, Notify};

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
    writes: Arc<Writes>,
}

/// Writes waiting to commit, and whether a leader is committing them.
#[derive(Default)]
struct Writes {
    queue: Mutex<Vec<Pending>>,
    leading: AtomicBool,
}

/// One write waiting for its group's commit.
struct Pending {
    stmts: Vec<Stmt>,
    change: Stmt,
    done: oneshot::Sender<Result<i64>>,
}

/// Most writes committed in one transaction.
const MAX_GROUP: usize = 64;

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
            writes: Arc::default(),
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

impl Writes {
    /// Takes up to [`MAX_GROUP`] waiting writes; none: leadership ends
    /// (checked under the queue's lock, so a write queued meanwhile either
    /// is taken or finds no leader and leads).
    fn next_group(&self) -> Vec<Pending> {
        let mut q = self
            .queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.is_empty() {
            self.leading.store(false, Ordering::Release);
            return Vec::new();
        }
        let n = q.len().min(MAX_GROUP);
        q.drain(..n).collect()
    }
}

/// Ends leadership if the leader's task dies unexpectedly.
struct Leadership(Arc<Writes>);

impl Drop for Leadership {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.leading.store(false, Ordering::Release);
        }
    }
}

/// The error of a group whose transaction failed as a whole, for each of
/// its writes but the first (which gets the cause).
fn group_failed() -> Error {
    Error::Unavailable(sqlx::Error::Protocol(
        "the transaction this write was committed in failed".into(),
    ))
}

impl Postgres {
    /// Commits waiting writes, group by group, until none wait.
    async fn lead(pool: PgPool, writes: Arc<Writes>) {
        let _guard = Leadership(Arc::clone(&writes));
        loop {
            let group = writes.next_group();
            if group.is_empty() {
                return;
            }
            Self::commit_group(&pool, group).await;
        }
    }

    async fn commit_group(pool: &PgPool, group: Vec<Pending>) {
        let mut tx = match pool.begin().await {
            Ok(tx) => tx,
            Err(e) => {
                let mut first = Some(db(e));
                for p in group {
                    let _ = p.done.send(Err(first.take().unwrap_or_else(group_failed)));
                }
                return;
            }
        };
        // Each write in a savepoint: one that fails is undone alone.
        let mut kept = Vec::with_capacity(group.len());
        for p in group {
            let outcome = async {
                let mut sp = sqlx::Acquire::begin(&mut tx).await.map_err(db)?;
                match Self::run_in(&mut sp, p.stmts).await {
                    Ok(()) => sp.commit().await.map_err(db),
                    Err(e) => {
                        sp.rollback().await.map_err(db)?;
                        Err(e)
                    }
                }
            }
            .await;
            match outcome {
                Ok(()) => kept.push((p.change, p.done)),
                Err(e) => {
                    let _ = p.done.send(Err(e));
                }
            }
        }
        if kept.is_empty() {
            let _ = tx.rollback().await;
            return;
        }
        // Serialise only the revision draws and the commit: see the module docs.
        let drawn = async {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(REVISION_LOCK)
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            let mut revisions = Vec::with_capacity(kept.len());
            for (change, _) in &mut kept {
                let change = std::mem::replace(change, Stmt::new(""));
                let revision: i64 = bind_all(sqlx::query(&change.sql), change.args)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db)?
                    .try_get("revision")
                    .map_err(db)?;
                revisions.push(revision);
            }
            let last = revisions.last().copied().unwrap_or_default();
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(last.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            tx.commit().await.map_err(db)?;
            Ok::<_, Error>(revisions)
        }
        .await;
        match drawn {
            Ok(revisions) => {
                for ((_, done), revision) in kept.into_iter().zip(revisions) {
                    let _ = done.send(Ok(revision));
                }
            }
            Err(e) => {
                let mut first = Some(e);
                for (_, done) in kept {
                    let _ = done.send(Err(first.take().unwrap_or_else(group_failed)));
                }
            }
        }
    }

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
        let (done, answer) = oneshot::channel();
        let lead = {
            let mut q = self
                .writes
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.push(Pending {
                stmts,
                change,
                done,
            });
            !self.writes.leading.swap(true, Ordering::AcqRel)
        };
        if lead {
            tokio::spawn(Self::lead(self.pool.clone(), Arc::clone(&self.writes)));
        }
        answer.await.unwrap_or_else(|_| Err(group_failed()))
    }

    async fn close(&self) {
        self.listener.abort();
        self.pool.close().await;
    }

    fn change_signal(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.notify))
    }
}
