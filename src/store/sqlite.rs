//! The SQLite backend: the embedded default. WAL mode with
//! `synchronous = FULL`, foreign keys on, schema from the embedded
//! migrations. Writes are serialised in-process
//! (SQLite has one writer anyway) so a batch never fails on a lock upgrade;
//! other processes sharing the file wait on `busy_timeout`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, SqliteConnection, SqlitePool};
use tokio::sync::Mutex;

use super::sql::rows::db;
use super::sql::stmt::{bind_all, Stmt};
use super::sql::{Backend, SqlStore};
use super::{Error, Result};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");

/// The SQLite store.
pub type SqliteStore = SqlStore<Sqlite>;

pub struct Sqlite {
    pool: SqlitePool,
    /// One writer at a time: SQLite would refuse a second.
    write_lock: Mutex<()>,
}

/// Rows the SQLite thread may hand over before the reading task takes them:
/// more than the longest page keygate reads.
const ROW_BUFFER: usize = 4_096;

/// Maps as much of the file as SQLite allows (it caps the size at its
/// compile-time maximum, 2 GB), and ends the mapping.
const MAP_FILE: &str = "PRAGMA mmap_size = 1099511627776";
const UNMAP_FILE: &str = "PRAGMA mmap_size = 0";
/// Never waits: a reader or writer in another process leaves the rest of
/// the log for SQLite's own checkpoints.
const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and migrates it.
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(Error::Unavailable)?
            .create_if_missing(true)
            // WAL: readers never block the writer, and a commit is one
            // append. A process killed mid-write loses nothing committed in
            // either `NORMAL` or `FULL` (the WAL is in the OS's hands once
            // written); `FULL` also fsyncs it at every commit, so an answered
            // revocation survives a power cut or a kernel crash too, where
            // `NORMAL` could roll the last commits back and revive a revoked
            // key. Admin writes are rare; an fsync each is cheap insurance.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // SQLite runs on a thread of its own and hands rows over one by
            // one; with sqlx's default of 50 buffered rows, a long result (a
            // page of the change feed, a listing) stops that thread every 50
            // rows. Room for a whole page lets it run through.
            .row_buffer_size(ROW_BUFFER);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await
            .map_err(Error::Unavailable)?;
        MIGRATOR.run(&pool).await.map_err(Error::Migrate)?;
        checkpoint(&pool).await;
        Ok(SqlStore::over(Sqlite {
            pool,
            write_lock: Mutex::new(()),
        }))
    }
}

/// Copies whatever the write-ahead log holds into the database file before
/// keygate reads it, as far as that can go without waiting for another
/// process. Pages still in the log are read through it, a `pread` and a
/// cached copy each, where the file's pages are read in place: after
/// seeding a million keys (an 80 MB log) the start was ready ~5 MiB
/// smaller with the checkpoint first. Not needed for correctness, so a
/// failure is only logged.
async fn checkpoint(pool: &sqlx::SqlitePool) {
    if let Err(e) = sqlx::query(CHECKPOINT).execute(pool).await {
        tracing::warn!(error = %e, "could not checkpoint the write-ahead log at start");
    }
}

/// A connection in the middle of a write; dropped unfinished, it is closed.
struct Unfinished(Option<PoolConnection<sqlx::Sqlite>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(conn) = self.0.as_mut() {
            conn.close_on_drop();
        }
    }
}

impl Sqlite {
    /// Runs `stmts` (and `change`, returning its revision) in one
    /// transaction on a connection of its own, under the writer lock.
    ///
    /// A write that fails, or is abandoned midway (its request cancelled),
    /// closes its connection instead of returning it to the pool; closing
    /// rolls back whatever it held. After `SQLITE_FULL` or an I/O error
    /// SQLite may or may not have rolled the transaction back, and sqlx's own
    /// count of open transactions could disagree with it: a connection reused
    /// in that state nested the next writes in a transaction that never
    /// committed — answered 201, then lost, with the write lock held.
    async fn transact(&self, stmts: Vec<Stmt>, change: Option<Stmt>) -> Result<Option<i64>> {
        let _serialised = self.write_lock.lock().await;
        let mut writing = Unfinished(Some(self.pool.acquire().await.map_err(db)?));
        let Some(conn) = writing.0.as_mut() else {
            return Err(Error::Corrupt("no connection to write on"));
        };
        let done = Self::in_transaction(conn, stmts, change).await;
        if done.is_ok() {
            // Committed: the connection goes back to the pool as it was.
            writing.0.take();
        }
        done
    }

    async fn in_transaction(
        conn: &mut SqliteConnection,
        stmts: Vec<Stmt>,
        change: Option<Stmt>,
    ) -> Result<Option<i64>> {
        // IMMEDIATE: the write lock is taken here, so another process sharing
        // the file makes this wait (busy_timeout), never fail mid-batch.
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        for s in stmts {
            let on_no_row = s.on_no_row;
            let done = bind_all(sqlx::query(&s.sql), s.args)
                .execute(&mut *conn)
                .await
                .map_err(db)?;
            on_no_row.check(done.rows_affected())?;
        }
        let revision = match change {
            Some(change) => Some(
                bind_all(sqlx::query(&change.sql), change.args)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(db)?
                    .try_get("revision")
                    .map_err(db)?,
            ),
            None => None,
        };
        sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        Ok(revision)
    }
}

impl Backend for Sqlite {
    type Row = SqliteRow;
    const SKIP_LOCKED: &'static str = "";
    const STRING_AGG: &'static str = "group_concat";

    async fn fetch(&self, stmt: Stmt) -> Result<Vec<SqliteRow>> {
        bind_all(sqlx::query(&stmt.sql), stmt.args)
            .fetch_all(&self.pool)
            .await
            .map_err(db)
    }

    /// With the file memory-mapped for the one statement. Read through
    /// `pread`, the initial load of 1M keys made ~3M calls, each copying a
    /// page SQLite's cache had let go: half its time. Mapped, pages are read
    /// where they lie. The mapping ends with the statement, so the file's
    /// pages do not stay in the resident set.
    async fn fetch_scan(&self, stmt: Stmt) -> Result<Vec<SqliteRow>> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        sqlx::query(MAP_FILE)
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let rows = bind_all(sqlx::query(&stmt.sql), stmt.args)
            .fetch_all(&mut *conn)
            .await
            .map_err(db);
        if sqlx::query(UNMAP_FILE).execute(&mut *conn).await.is_err() {
            // It may still map the file: not for the next borrower.
            conn.close_on_drop();
        }
        rows
    }

    async fn run(&self, stmts: Vec<Stmt>) -> Result<()> {
        self.transact(stmts, None).await.map(|_| ())
    }

    async fn commit(&self, stmts: Vec<Stmt>, change: Stmt) -> Result<i64> {
        self.transact(stmts, Some(change))
            .await?
            .ok_or(Error::Corrupt("the change feed returned no revision"))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
