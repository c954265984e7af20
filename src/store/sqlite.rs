//! The SQLite store: the embedded default. WAL mode, foreign keys on, schema
//! from the embedded migrations. Writes are serialised in-process (SQLite has
//! one writer anyway) so a batch never fails on a lock upgrade; other
//! processes sharing the file wait on `busy_timeout`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool, Transaction};
use tokio::sync::Mutex;
use uuid::Uuid;

use super::rows::*;
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

/// Fails with `NotFound` when an update or delete touched no row.
fn touched(r: sqlx::sqlite::SqliteQueryResult) -> Result<()> {
    if r.rows_affected() == 0 {
        Err(Error::NotFound)
    } else {
        Ok(())
    }
}

async fn apply(tx: &mut Transaction<'_, Sqlite>, w: &Write) -> Result<()> {
    match w {
        Write::InsertOrganization(o) => {
            sqlx::query("INSERT INTO organizations (id, name, abbreviation, created_at, updated_at) VALUES (?, ?, ?, ?, ?)")
                .bind(o.id.to_string())
                .bind(&o.name)
                .bind(&o.abbreviation)
                .bind(o.created_at)
                .bind(o.updated_at)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        Write::UpdateOrganization(o) => touched(
            sqlx::query("UPDATE organizations SET name = ?, abbreviation = ?, updated_at = ? WHERE id = ?")
                .bind(&o.name)
                .bind(&o.abbreviation)
                .bind(o.updated_at)
                .bind(o.id.to_string())
                .execute(&mut **tx)
                .await
                .map_err(db)?,
        )?,
        Write::DeleteOrganization { id, closed_after } => {
            let r = sqlx::query(
                "DELETE FROM organizations WHERE id = $1 AND NOT EXISTS \
                 (SELECT 1 FROM service_accounts WHERE organization_id = $2 \
                  AND (closed_at IS NULL OR closed_at > $3))",
            )
            .bind(id.to_string())
            .bind(id.to_string())
            .bind(closed_after)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            if r.rows_affected() == 0 {
                return Err(Error::Stale);
            }
        }
        Write::InsertProject(p) => {
            sqlx::query("INSERT INTO projects (id, organization_id, name, archived, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(p.id.to_string())
                .bind(p.organization_id.to_string())
                .bind(&p.name)
                .bind(p.archived)
                .bind(p.created_at)
                .bind(p.updated_at)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        Write::UpdateProject(p) => touched(
            sqlx::query("UPDATE projects SET name = ?, archived = ?, updated_at = ? WHERE id = ?")
                .bind(&p.name)
                .bind(p.archived)
                .bind(p.updated_at)
                .bind(p.id.to_string())
                .execute(&mut **tx)
                .await
                .map_err(db)?,
        )?,
        Write::InsertAccount(a) => {
            sqlx::query(
                "INSERT INTO service_accounts (id, organization_id, project_id, name, description, role, scopes, \
                 enabled, expires_at, closed_at, rate_limit, created_by, created_at, updated_at, last_used_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(a.id.to_string())
            .bind(a.organization_id.to_string())
            .bind(a.project_id.map(|p| p.to_string()))
            .bind(&a.name)
            .bind(&a.description)
            .bind(a.role.as_str())
            .bind(scopes_json(&a.scopes))
            .bind(a.enabled)
            .bind(a.expires_at)
            .bind(a.closed_at)
            .bind(&a.rate_limit)
            .bind(a.created_by.map(|p| p.to_string()))
            .bind(a.created_at)
            .bind(a.updated_at)
            .bind(a.last_used_at)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        Write::UpdateAccount {
            account: a,
            previous_updated_at,
        } => {
            let r = sqlx::query(
                "UPDATE service_accounts SET name = ?, description = ?, role = ?, scopes = ?, enabled = ?, \
                 expires_at = ?, closed_at = ?, rate_limit = ?, updated_at = ? \
                 WHERE id = ? AND updated_at = ? AND closed_at IS NULL",
            )
            .bind(&a.name)
            .bind(&a.description)
            .bind(a.role.as_str())
            .bind(scopes_json(&a.scopes))
            .bind(a.enabled)
            .bind(a.expires_at)
            .bind(a.closed_at)
            .bind(&a.rate_limit)
            .bind(a.updated_at)
            .bind(a.id.to_string())
            .bind(previous_updated_at)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
            if r.rows_affected() == 0 {
                return Err(Error::Stale);
            }
        }
        Write::InsertKey(k) => {
            sqlx::query(
                "INSERT INTO api_keys (id, service_account_id, hash, redacted, created_at, expires_at, revoked_at, last_used_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(k.id.to_string())
            .bind(k.service_account_id.to_string())
            .bind(k.hash.to_hex())
            .bind(&k.redacted)
            .bind(k.created_at)
            .bind(k.expires_at)
            .bind(k.revoked_at)
            .bind(k.last_used_at)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        Write::RevokeKey { account_id, key_id, at } => touched(
            sqlx::query(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND service_account_id = ? AND revoked_at IS NULL",
            )
            .bind(at)
            .bind(key_id.to_string())
            .bind(account_id.to_string())
            .execute(&mut **tx)
            .await
            .map_err(db)?,
        )?,
        Write::RevokeAllKeys { account_id, at } => {
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE service_account_id = ? AND revoked_at IS NULL")
                .bind(at)
                .bind(account_id.to_string())
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        Write::ExpireAllKeys { account_id, at } => {
            sqlx::query(
                "UPDATE api_keys SET expires_at = ? WHERE service_account_id = ? AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > ?)",
            )
            .bind(at)
            .bind(account_id.to_string())
            .bind(at)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        other => token_write!(&mut **tx, other)?,
    }
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
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

    async fn revision(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COALESCE(MAX(revision), 0) FROM changes")
            .fetch_one(&self.pool)
            .await
            .map_err(db)
    }

    async fn changes_since(&self, revision: i64, limit: u32) -> Result<Vec<Change>> {
        let rows = sqlx::query(
            "SELECT revision, accounts, topics FROM changes WHERE revision > ? ORDER BY revision LIMIT ?",
        )
        .bind(revision)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(change_from).collect()
    }

    async fn organization(&self, id: Uuid) -> Result<Option<Organization>> {
        sqlx::query("SELECT * FROM organizations WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(org_from)
            .transpose()
    }

    async fn organizations(&self, only: Option<Uuid>, page: Page) -> Result<Vec<Organization>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM organizations WHERE id > ");
        q.push_bind(after(page));
        if let Some(id) = only {
            q.push(" AND id = ").push_bind(id.to_string());
        }
        q.push(" ORDER BY id LIMIT ").push_bind(limit(page));
        q.build()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(org_from)
            .collect()
    }

    async fn open_accounts_in(&self, organization_id: Uuid) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM service_accounts WHERE organization_id = ? AND closed_at IS NULL",
        )
        .bind(organization_id.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn project(&self, id: Uuid) -> Result<Option<Project>> {
        sqlx::query("SELECT * FROM projects WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?
            .as_ref()
            .map(project_from)
            .transpose()
    }

    async fn projects(&self, organization_id: Uuid, page: Page) -> Result<Vec<Project>> {
        sqlx::query(
            "SELECT * FROM projects WHERE organization_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(organization_id.to_string())
        .bind(after(page))
        .bind(limit(page))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(project_from)
        .collect()
    }

    async fn account(&self, id: Uuid) -> Result<Option<ServiceAccount>> {
        sqlx::query(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE a.id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(account_from)
        .transpose()
    }

    async fn accounts(
        &self,
        filter: &AccountFilter,
        now_ms: i64,
        page: Page,
    ) -> Result<Vec<ServiceAccount>> {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE a.id > "
        ));
        q.push_bind(after(page));
        if let Some(org) = filter.organization_id {
            q.push(" AND a.organization_id = ")
                .push_bind(org.to_string());
        }
        if let Some(project) = filter.project_id {
            q.push(" AND a.project_id = ")
                .push_bind(project.to_string());
        }
        match filter.state {
            None => {}
            Some(AccountState::Closed) => {
                q.push(" AND a.closed_at IS NOT NULL");
            }
            Some(AccountState::Disabled) => {
                q.push(" AND a.closed_at IS NULL AND a.enabled = 0");
            }
            Some(AccountState::Expired) => {
                q.push(" AND a.closed_at IS NULL AND a.enabled = 1 AND a.expires_at <= ")
                    .push_bind(now_ms);
            }
            Some(AccountState::Active) => {
                q.push(" AND a.closed_at IS NULL AND a.enabled = 1 AND (a.expires_at IS NULL OR a.expires_at > ")
                    .push_bind(now_ms)
                    .push(")");
            }
        }
        q.push(" ORDER BY a.id LIMIT ").push_bind(limit(page));
        q.build()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(account_from)
            .collect()
    }

    async fn has_admin(&self) -> Result<bool> {
        self.q_has_admin().await
    }

    async fn keys_of(&self, account_id: Uuid) -> Result<Vec<ApiKey>> {
        sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.service_account_id = ? ORDER BY k.id"
        ))
        .bind(account_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(key_from)
        .collect()
    }

    async fn key_by_hash(&self, hash: &KeyHash) -> Result<Option<ApiKey>> {
        sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.hash = ?"
        ))
        .bind(hash.to_hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .as_ref()
        .map(key_from)
        .transpose()
    }

    async fn auth_entries(&self, page: Page) -> Result<Vec<AuthEntry>> {
        self.q_auth_entries(page).await
    }

    async fn record_usage(&self, used: &[(Uuid, Uuid, i64)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        let _serialised = self.write_lock.lock().await;
        let mut tx = self.pool.begin().await.map_err(db)?;
        for (key_id, account_id, at) in used {
            sqlx::query(
                "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
            )
            .bind(at)
            .bind(key_id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db)?;
            sqlx::query("UPDATE service_accounts SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?")
                .bind(at)
                .bind(account_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
            sqlx::query("UPDATE client_credentials SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?")
                .bind(at)
                .bind(key_id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db)?;
        }
        tx.commit().await.map_err(db)
    }

    async fn audit_events(
        &self,
        organization_id: Option<Uuid>,
        page: Page,
    ) -> Result<Vec<AuditEvent>> {
        let mut q = QueryBuilder::<Sqlite>::new("SELECT * FROM audit_events WHERE id > ");
        q.push_bind(after(page));
        if let Some(org) = organization_id {
            q.push(" AND organization_id = ").push_bind(org.to_string());
        }
        q.push(" ORDER BY id LIMIT ").push_bind(limit(page));
        q.build()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(audit_from)
            .collect()
    }

    async fn heartbeat(&self, r: &Replica) -> Result<()> {
        let _serialised = self.write_lock.lock().await;
        sqlx::query(
            "INSERT INTO replicas (id, hostname, started_at, heartbeat_at, revision) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at, revision = excluded.revision",
        )
        .bind(r.id.to_string())
        .bind(&r.hostname)
        .bind(r.started_at)
        .bind(r.heartbeat_at)
        .bind(r.revision)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn replicas(&self, since_ms: i64) -> Result<Vec<Replica>> {
        sqlx::query("SELECT * FROM replicas WHERE heartbeat_at > ? ORDER BY id")
            .bind(since_ms)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(replica_from)
            .collect()
    }

    async fn credentials_of(&self, account_id: Uuid) -> Result<Vec<ClientCredential>> {
        self.q_credentials_of(account_id).await
    }

    async fn credential_records(&self) -> Result<Vec<(ClientCredential, ServiceAccount)>> {
        self.q_credential_records().await
    }

    async fn signing_keys(&self, now_ms: i64) -> Result<Vec<SigningKeyRecord>> {
        self.q_signing_keys(now_ms).await
    }

    async fn revoked_tokens(&self, now_ms: i64) -> Result<Vec<RevokedToken>> {
        self.q_revoked_tokens(now_ms).await
    }

    async fn restricted_accounts(&self) -> Result<Vec<ServiceAccount>> {
        self.q_restricted_accounts().await
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

token_reads!(SqliteStore);
