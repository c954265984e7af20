//! The one SQL implementation of [`Store`], over either backend.
//!
//! Every query and write is written once, as data ([`Stmt`]); a [`Backend`]
//! only binds and runs statements and adds its own hooks: SQLite serialises
//! writers in-process, PostgreSQL orders revisions with an advisory lock and
//! notifies other replicas. Row mapping lives in [`rows`], the write
//! statements in [`writes`].

mod events;
mod filter;
mod metering;
#[cfg(test)]
mod plans;
pub(crate) mod rows;
pub(crate) mod stmt;
mod writes;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use self::filter::{ascending, keyset, where_matching};
use self::rows::*;
use self::stmt::Stmt;
use super::*;

/// Accounts a JWT must be checked against at the proxy: disabled, closed,
/// expiring, with a token cut-off or a rate limit of their own. The
/// `service_accounts_restricted` index (migration 0011) says the same, term
/// for term, so the read at start is as long as its answer.
const RESTRICTED_ACCOUNTS: &str = "a.closed_at IS NOT NULL OR a.enabled = FALSE \
     OR a.expires_at IS NOT NULL OR a.rate_limit IS NOT NULL OR a.tokens_not_before IS NOT NULL";

/// Open accounts whose scopes may hold `keygate:admin` ([`ADMIN_SCOPE`]
/// inside the scopes' JSON array). The `service_accounts_open_admins` index
/// (migration 0012) says the same, term for term and with this literal
/// pattern, so the search for an admin at start reads only these accounts.
/// Candidates only: SQLite's `LIKE` ignores ASCII case.
const OPEN_ADMINS: &str = "a.closed_at IS NULL AND a.scopes LIKE '%\"keygate:admin\"%'";

/// The scopes of every [`OPEN_ADMINS`] candidate: a read of the
/// `service_accounts_open_admins` index and of the few rows it names.
fn admin_search() -> String {
    format!("SELECT a.scopes FROM service_accounts a WHERE {OPEN_ADMINS}")
}

/// What a database backend provides: running statements, and committing a
/// batch with its change-feed row. Everything else is shared.
pub(crate) trait Backend: Send + Sync + 'static {
    type Row: Cols + Send;

    /// The aggregate that joins text with a separator:
    /// `group_concat` (SQLite) or `string_agg` (PostgreSQL).
    const STRING_AGG: &'static str;

    /// What makes a claiming subquery skip rows another transaction holds:
    /// `FOR UPDATE SKIP LOCKED` (PostgreSQL); nothing on SQLite, whose one
    /// writer already serialises claims.
    const SKIP_LOCKED: &'static str;

    /// Rows of one query.
    fn fetch(&self, stmt: Stmt) -> impl Future<Output = Result<Vec<Self::Row>>> + Send;

    /// Rows of a query that reads much of the database (the initial load),
    /// in whatever way the backend reads such queries fastest.
    fn fetch_scan(&self, stmt: Stmt) -> impl Future<Output = Result<Vec<Self::Row>>> + Send {
        self.fetch(stmt)
    }

    /// Runs `stmts` in one transaction, checking each one's `on_no_row`.
    fn run(&self, stmts: Vec<Stmt>) -> impl Future<Output = Result<()>> + Send;

    /// Runs `stmts`, then `change` (an insert returning `revision`), in one
    /// transaction, so that revisions become visible in the order they are
    /// drawn. Returns the new revision.
    fn commit(&self, stmts: Vec<Stmt>, change: Stmt) -> impl Future<Output = Result<i64>> + Send;

    fn close(&self) -> impl Future<Output = ()> + Send;

    /// See [`Store::change_signal`].
    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

/// A [`Store`] over a SQL backend. The backend trait is sealed (private to
/// the crate): only SQLite and PostgreSQL implement it, so the bound is
/// deliberately not part of the public API.
pub struct SqlStore<B> {
    backend: B,
    /// `keygate_store_errors_total`.
    errors: metrics::Counter,
}

#[allow(private_bounds)]
impl<B: Backend> SqlStore<B> {
    pub(crate) fn over(backend: B) -> Self {
        Self {
            backend,
            errors: metrics::Counter::noop(),
        }
    }

    /// Counts failed store operations into `errors`.
    pub fn with_error_counter(mut self, errors: metrics::Counter) -> Self {
        self.errors = errors;
        self
    }

    /// `r`, counted when it is a failure of the store itself (not a
    /// conflict or a missing row, which are answers).
    fn counted<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(Error::Unavailable(_) | Error::Corrupt(_)) = &r {
            self.errors.increment(1);
        }
        r
    }

    async fn fetch(&self, stmt: Stmt) -> Result<Vec<B::Row>> {
        let r = self.backend.fetch(stmt).await;
        self.counted(r)
    }

    async fn run(&self, stmts: Vec<Stmt>) -> Result<()> {
        let r = self.backend.run(stmts).await;
        self.counted(r)
    }

    async fn all<T>(&self, stmt: Stmt, map: fn(&B::Row) -> Result<T>) -> Result<Vec<T>> {
        let r = self.fetch(stmt).await?.iter().map(map).collect();
        self.counted(r)
    }

    /// [`Self::all`] for a query that reads much of the database.
    async fn all_scanned<T>(&self, stmt: Stmt, map: fn(&B::Row) -> Result<T>) -> Result<Vec<T>> {
        let rows = self.backend.fetch_scan(stmt).await;
        let r = self.counted(rows)?.iter().map(map).collect();
        self.counted(r)
    }

    async fn first<T>(&self, stmt: Stmt, map: fn(&B::Row) -> Result<T>) -> Result<Option<T>> {
        let r = self.fetch(stmt).await?.first().map(map).transpose();
        self.counted(r)
    }

    /// A single integer column `n` of the first row.
    async fn count(&self, stmt: Stmt) -> Result<i64> {
        Ok(self.first(stmt, |r| r.int("n")).await?.unwrap_or(0))
    }
}

#[allow(private_bounds)]
#[async_trait]
impl<B: Backend> Store for SqlStore<B> {
    async fn write(&self, batch: WriteBatch) -> Result<i64> {
        let mut stmts: Vec<Stmt> = batch.writes.iter().flat_map(writes::statements).collect();
        stmts.push(writes::audit(&batch));
        let r = self.backend.commit(stmts, writes::change(&batch)).await;
        self.counted(r)
    }

    async fn revision(&self) -> Result<i64> {
        self.count(Stmt::new(
            "SELECT COALESCE(MAX(revision), 0) AS n FROM changes",
        ))
        .await
    }

    async fn changes_since(&self, revision: i64, limit: u32) -> Result<Vec<Change>> {
        let stmt = Stmt::new(
            "SELECT revision, accounts, topics FROM changes WHERE revision > $1 \
             ORDER BY revision LIMIT $2",
        )
        .arg(revision)
        .arg(i64::from(limit));
        self.all(stmt, change_from).await
    }

    async fn organization(&self, id: Uuid) -> Result<Option<Organization>> {
        let stmt = Stmt::new("SELECT * FROM organizations WHERE id = $1").arg(id);
        self.first(stmt, org_from).await
    }

    async fn organizations(&self, only: Option<Uuid>, page: Keyset) -> Result<Vec<Organization>> {
        let mut stmt = Stmt::new("SELECT * FROM organizations WHERE 1 = 1");
        if let Some(id) = only {
            stmt.push_arg(" AND id = ", id);
        }
        keyset(&mut stmt, "id", page);
        Ok(ascending(self.all(stmt, org_from).await?, page))
    }

    async fn open_accounts_in(&self, organization_id: Uuid) -> Result<u64> {
        let stmt = Stmt::new(
            "SELECT COUNT(*) AS n FROM service_accounts \
             WHERE organization_id = $1 AND closed_at IS NULL",
        )
        .arg(organization_id);
        Ok(u64::try_from(self.count(stmt).await?).unwrap_or(0))
    }

    async fn project(&self, id: Uuid) -> Result<Option<Project>> {
        let stmt = Stmt::new("SELECT * FROM projects WHERE id = $1").arg(id);
        self.first(stmt, project_from).await
    }

    async fn projects(&self, organization_id: Uuid, page: Keyset) -> Result<Vec<Project>> {
        let mut stmt =
            Stmt::new("SELECT * FROM projects WHERE organization_id = $1").arg(organization_id);
        keyset(&mut stmt, "id", page);
        Ok(ascending(self.all(stmt, project_from).await?, page))
    }

    async fn account(&self, id: Uuid) -> Result<Option<ServiceAccount>> {
        let stmt = Stmt::new(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE a.id = $1"
        ))
        .arg(id);
        self.first(stmt, account_from).await
    }

    async fn accounts(
        &self,
        filter: &AccountFilter,
        now_ms: i64,
        page: Keyset,
    ) -> Result<Vec<ServiceAccount>> {
        let mut stmt = Stmt::new(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE 1 = 1"
        ));
        where_matching(&mut stmt, filter, now_ms);
        keyset(&mut stmt, "a.id", page);
        Ok(ascending(self.all(stmt, account_from).await?, page))
    }

    async fn accounts_at(
        &self,
        filter: &AccountFilter,
        now_ms: i64,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<ServiceAccount>> {
        let mut stmt = Stmt::new(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE 1 = 1"
        ));
        where_matching(&mut stmt, filter, now_ms);
        stmt.push_arg(" ORDER BY a.id LIMIT ", i64::from(limit));
        stmt.push_arg(" OFFSET ", i64::try_from(offset).unwrap_or(i64::MAX));
        self.all(stmt, account_from).await
    }

    async fn count_accounts(&self, filter: &AccountFilter, now_ms: i64) -> Result<u64> {
        let mut stmt = Stmt::new("SELECT COUNT(*) AS n FROM service_accounts a WHERE 1 = 1");
        where_matching(&mut stmt, filter, now_ms);
        Ok(u64::try_from(self.count(stmt).await?).unwrap_or(0))
    }

    /// A read of the `service_accounts_open_admins` index: as long as its
    /// answer on every start, a store of imported accounts with no admin
    /// yet included. The candidates' scopes decide, exactly: on SQLite
    /// `KEYGATE:ADMIN` matches the pattern but confers nothing, and must
    /// not stop the bootstrap from creating a real admin.
    async fn has_admin(&self) -> Result<bool> {
        let candidates = self.all(Stmt::new(admin_search()), |r| {
            Ok(scopes_from(&r.text("scopes")?)?
                .iter()
                .any(|s| s == ADMIN_SCOPE))
        });
        Ok(candidates.await?.into_iter().any(|admin| admin))
    }

    async fn keys_of(&self, account_id: Uuid) -> Result<Vec<ApiKey>> {
        let stmt = Stmt::new(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.service_account_id = $1 ORDER BY k.id"
        ))
        .arg(account_id);
        self.all(stmt, key_from).await
    }

    async fn credentials_of(&self, account_id: Uuid) -> Result<Vec<ClientCredential>> {
        let stmt = Stmt::new(format!(
            "SELECT {CREDENTIAL_COLUMNS} FROM client_credentials c \
             WHERE c.service_account_id = $1 ORDER BY c.id"
        ))
        .arg(account_id);
        self.all(stmt, credential_from).await
    }

    async fn live_credentials_of(&self, account_ids: &[Uuid]) -> Result<Vec<ClientCredential>> {
        let mut out = Vec::new();
        for ids in account_ids.chunks(500) {
            let mut stmt = Stmt::new(format!(
                "SELECT {CREDENTIAL_COLUMNS} FROM client_credentials c \
                 WHERE c.deleted_at IS NULL AND c.service_account_id IN ("
            ));
            for (i, id) in ids.iter().enumerate() {
                stmt.push_arg(if i == 0 { "" } else { ", " }, *id);
            }
            stmt.push(") ORDER BY c.id");
            out.extend(self.all(stmt, credential_from).await?);
        }
        Ok(out)
    }

    async fn auth_state_of(&self, account_ids: &[Uuid]) -> Result<AuthState> {
        let mut state = AuthState::default();
        // Bounded statements: a few hundred placeholders each.
        for ids in account_ids.chunks(500) {
            let within = |sql: String, col: &str| {
                let mut stmt = Stmt::new(sql);
                stmt.push(&format!(" WHERE {col} IN ("));
                for (i, id) in ids.iter().enumerate() {
                    stmt.push_arg(if i == 0 { "" } else { ", " }, *id);
                }
                stmt.push(")");
                stmt
            };
            let accounts = within(
                format!("SELECT {ACCOUNT_COLUMNS} FROM service_accounts a"),
                "a.id",
            );
            state
                .accounts
                .extend(self.all(accounts, account_from).await?);
            let keys = within(
                format!("SELECT {KEY_COLUMNS} FROM api_keys k"),
                "k.service_account_id",
            );
            state.keys.extend(self.all(keys, key_from).await?);
            let credentials = within(
                format!("SELECT {CREDENTIAL_COLUMNS} FROM client_credentials c"),
                "c.service_account_id",
            );
            state
                .credentials
                .extend(self.all(credentials, credential_from).await?);
            let bindings = within(
                "SELECT * FROM federated_identities f".into(),
                "f.service_account_id",
            );
            state
                .bindings
                .extend(self.all(bindings, federated_identity_from).await?);
        }
        Ok(state)
    }

    async fn federated_identities_of(&self, account_id: Uuid) -> Result<Vec<FederatedIdentity>> {
        let stmt = Stmt::new(
            "SELECT * FROM federated_identities \
             WHERE service_account_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
        )
        .arg(account_id);
        self.all(stmt, federated_identity_from).await
    }

    async fn credential_records(&self) -> Result<Vec<(ClientCredential, ServiceAccount)>> {
        let stmt = Stmt::new(format!(
            "SELECT {CREDENTIAL_COLUMNS}, {ACCOUNT_COLUMNS} FROM client_credentials c \
             CROSS JOIN service_accounts a WHERE a.id = c.service_account_id \
             AND c.deleted_at IS NULL AND a.closed_at IS NULL AND a.enabled = TRUE"
        ));
        // CROSS JOIN: SQLite keeps the order written, so it visits the
        // credentials and looks their accounts up, not every account (by
        // an index on names, so in no order of the table) for credentials.
        self.all_scanned(stmt, |r| Ok((credential_from(r)?, account_from(r)?)))
            .await
    }

    async fn signing_keys(&self, now_ms: i64) -> Result<Vec<SigningKeyRecord>> {
        let stmt = Stmt::new(
            "SELECT * FROM signing_keys WHERE retires_at IS NULL OR retires_at > $1 \
             ORDER BY activates_at, kid",
        )
        .arg(now_ms);
        self.all(stmt, signing_key_from).await
    }

    async fn revoked_tokens(&self, now_ms: i64) -> Result<Vec<RevokedToken>> {
        let stmt = Stmt::new("SELECT jti, expires_at FROM revoked_tokens WHERE expires_at > $1")
            .arg(now_ms);
        self.all(stmt, |r| {
            Ok(RevokedToken {
                jti: r.text("jti")?,
                expires_at: r.int("expires_at")?,
            })
        })
        .await
    }

    async fn restricted_accounts(&self) -> Result<Vec<ServiceAccount>> {
        let stmt = Stmt::new(format!(
            "SELECT {ACCOUNT_COLUMNS} FROM service_accounts a WHERE {RESTRICTED_ACCOUNTS}"
        ));
        // An index read as long as its answer (migration 0011): no mapping
        // of the file as for the whole-table reads of the load.
        self.all(stmt, account_from).await
    }

    async fn dead_credentials(&self, since_ms: i64) -> Result<Vec<DeadCredential>> {
        // Each arm reads one partial index; a key's id is the client_id its
        // tokens carry.
        let stmt = Stmt::new(
            "SELECT id AS client_id, revoked_at AS at FROM api_keys WHERE revoked_at > $1 \
             UNION ALL SELECT id AS client_id, expires_at AS at FROM api_keys \
             WHERE expires_at > $2 AND revoked_at IS NULL \
             UNION ALL SELECT client_id, deleted_at AS at FROM client_credentials WHERE deleted_at > $3 \
             UNION ALL SELECT client_id, expires_at AS at FROM client_credentials \
             WHERE expires_at > $4 AND deleted_at IS NULL \
             UNION ALL SELECT id AS client_id, deleted_at AS at FROM federated_identities \
             WHERE deleted_at > $5",
        )
        .arg(since_ms)
        .arg(since_ms)
        .arg(since_ms)
        .arg(since_ms)
        .arg(since_ms);
        self.all(stmt, |r| {
            Ok(DeadCredential {
                client_id: r.text("client_id")?,
                at: r.int("at")?,
            })
        })
        .await
    }

    async fn auth_entries(&self, page: Keyset, through: Option<Uuid>) -> Result<Vec<AuthEntry>> {
        // One row per page, not one per key. SQLite runs on a thread of its
        // own and hands rows over one at a time, each an allocation and a
        // wake-up; at a million keys the handovers cost more than reading.
        // Fields are tab-separated and entries newline-separated: no stored
        // field can hold either (ids, hex, integers, validated role and rate,
        // and scopes, compact JSON, last). One `format` builds a line in one
        // pass, NULL as empty in both SQLite and PostgreSQL, where a chain
        // of `||` copied the line so far at every step.
        let stmt = Stmt::new(format!(
            "SELECT {agg}(line, '\n') AS page FROM (\
             SELECT format('%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s', k.id, k.hash, \
             k.expires_at, a.id, a.organization_id, a.project_id, a.role, a.expires_at, \
             a.rate_limit, a.scopes) AS line \
             FROM api_keys k JOIN service_accounts a ON a.id = k.service_account_id \
             WHERE k.revoked_at IS NULL AND a.closed_at IS NULL AND a.enabled = TRUE AND k.id > $1 \
             {through} ORDER BY k.id LIMIT $2) AS p",
            agg = B::STRING_AGG,
            through = if through.is_some() {
                "AND k.id <= $3"
            } else {
                ""
            },
        ))
        .arg(after(page))
        .arg(limit(page));
        let stmt = match through {
            Some(last) => stmt.arg(last),
            None => stmt,
        };
        let text = self
            .all_scanned(stmt, |r| r.opt_text("page"))
            .await?
            .into_iter()
            .next()
            .flatten();
        let r = text.as_deref().map_or(Ok(Vec::new()), auth_entries_from);
        self.counted(r)
    }

    async fn key_splits(&self, parts: u32, min_per_part: u32) -> Result<Vec<Uuid>> {
        let keys = self
            .count(Stmt::new("SELECT COUNT(*) AS n FROM api_keys"))
            .await?;
        let parts = i64::from(parts).min(keys / i64::from(min_per_part.max(1)));
        let mut splits = Vec::new();
        for i in 1..parts {
            let stmt = Stmt::new("SELECT id FROM api_keys ORDER BY id LIMIT 1 OFFSET $1")
                .arg(keys * i / parts);
            if let Some(id) = self.first(stmt, |r| r.uuid("id")).await? {
                splits.push(id);
            }
        }
        Ok(splits)
    }

    async fn record_metering(&self, spends: &[Spend], traffic: &[Traffic]) -> Result<()> {
        if spends.is_empty() && traffic.is_empty() {
            return Ok(());
        }
        self.run(metering::record(spends, traffic)).await
    }

    async fn quota_spent(&self, now_ms: i64) -> Result<Vec<Spent>> {
        self.all(metering::open_windows(now_ms), metering::spent_from)
            .await
    }

    async fn traffic_of(
        &self,
        account_id: Uuid,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<Traffic>> {
        self.all(
            metering::traffic_of(account_id, from_day, to_day),
            metering::traffic_from,
        )
        .await
    }

    async fn narrowed_accounts(&self) -> Result<Vec<Uuid>> {
        // Index reads as long as their answer (migration 0011), as above.
        self.all(Stmt::new(metering::NARROWED_ACCOUNTS), |r| r.uuid("id"))
            .await
    }

    async fn record_usage(&self, used: &[(Uuid, Uuid, i64)]) -> Result<()> {
        if used.is_empty() {
            return Ok(());
        }
        self.run(writes::usage(used)).await
    }

    async fn audit_events(
        &self,
        organization_id: Option<Uuid>,
        account_id: Option<Uuid>,
        page: Keyset,
    ) -> Result<Vec<AuditEvent>> {
        let mut stmt = Stmt::new("SELECT * FROM audit_events WHERE 1 = 1");
        if let Some(org) = organization_id {
            stmt.push_arg(" AND organization_id = ", org);
        }
        if let Some(account) = account_id {
            // Key and credential events name their account in `details`
            // (`"service_account_id":"<uuid>"`, as serde_json writes it: a
            // UUID holds no LIKE wildcard).
            stmt.push_arg(" AND (target_id = ", account);
            stmt.push_arg(" OR actor_id = ", account);
            stmt.push_arg(
                " OR details LIKE ",
                format!("%\"service_account_id\":\"{account}\"%"),
            );
            stmt.push(")");
        }
        keyset(&mut stmt, "id", page);
        Ok(ascending(self.all(stmt, audit_from).await?, page))
    }

    async fn heartbeat(&self, replica: &Replica) -> Result<()> {
        self.run(vec![writes::heartbeat(replica)]).await
    }

    async fn replicas(&self, since_ms: i64) -> Result<Vec<Replica>> {
        let stmt =
            Stmt::new("SELECT * FROM replicas WHERE heartbeat_at > $1 ORDER BY id").arg(since_ms);
        self.all(stmt, replica_from).await
    }

    async fn close(&self) {
        self.backend.close().await;
    }

    fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        self.backend.change_signal()
    }
}
