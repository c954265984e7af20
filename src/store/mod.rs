//! Persistence: the [`Store`] trait, its model, and its one SQL
//! implementation over SQLite (the embedded default) or PostgreSQL.
//!
//! The store is the source of truth. Every write goes through
//! [`Store::write`] as one [`WriteBatch`]: the entity changes, an audit event
//! and a change-feed entry commit in one transaction under one new revision,
//! so nothing is ever half-written and every cache can catch up by revision.
//! The store knows nothing of HTTP or of the cache.

pub mod events;
pub mod metering;
pub mod model;
mod postgres;
pub(crate) mod sql;
mod sqlite;

use async_trait::async_trait;
use uuid::Uuid;

pub use events::*;
pub use metering::{Spend, Spent, Traffic};
pub use model::*;
pub use postgres::PostgresStore;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A uniqueness rule was broken; names the field (`name`).
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The row to change does not exist (or no longer does).
    #[error("not found")]
    NotFound,
    /// The row no longer matches what the write was based on (a concurrent
    /// write won); nothing was written.
    #[error("row changed concurrently")]
    Stale,
    /// The database could not be reached or failed.
    #[error("store unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("store migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(&'static str),
    #[error("{0}")]
    Unsupported(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entity change inside a [`WriteBatch`].
#[derive(Debug, Clone)]
pub enum Write {
    InsertOrganization(Organization),
    UpdateOrganization(Organization),
    /// Deletes an organization with its projects, only if it has no open
    /// accounts at commit time (else `Stale`).
    DeleteOrganization {
        id: Uuid,
        /// Also refused while an account was closed after this (unix ms):
        /// tokens it minted may still be live, and deleting the account would
        /// make replicas forget it is closed.
        closed_after: i64,
    },
    InsertProject(Project),
    UpdateProject(Project),
    InsertAccount(ServiceAccount),
    /// Updates an account, provided it still has `previous_updated_at`
    /// (optimistic concurrency: a stale read never overwrites a newer write,
    /// so a concurrent disable or close cannot be undone).
    UpdateAccount {
        account: ServiceAccount,
        previous_updated_at: i64,
    },
    InsertKey(ApiKey),
    /// A key's name and narrowing (quota, scopes, addresses).
    UpdateKeyLimits(ApiKey),
    /// A quota window was spent: recorded once per window, so the
    /// `quota.exhausted` event is given once across the fleet.
    QuotaExhausted {
        account_id: Uuid,
        subject_id: Uuid,
        window_start: i64,
        at: i64,
    },
    /// Revokes one key of an account (no-op if already revoked).
    RevokeKey {
        account_id: Uuid,
        key_id: Uuid,
        at: i64,
    },
    /// Revokes every live key of an account.
    RevokeAllKeys {
        account_id: Uuid,
        at: i64,
    },
    /// Makes every live key of an account expire at `at` (rotation grace),
    /// unless it already expires earlier.
    ExpireAllKeys {
        account_id: Uuid,
        at: i64,
    },
    InsertCredential(ClientCredential),
    /// Updates name, description, expiry and secret hash of a live credential.
    UpdateCredential(ClientCredential),
    /// Deletes one credential (kept as a tombstone so caches can evict it).
    DeleteCredential {
        account_id: Uuid,
        id: Uuid,
        at: i64,
    },
    /// Deletes every live credential of an account (closing it).
    DeleteAllCredentials {
        account_id: Uuid,
        at: i64,
    },
    InsertFederatedIdentity(FederatedIdentity),
    /// Deletes one binding (kept as a tombstone so caches evict it).
    DeleteFederatedIdentity {
        account_id: Uuid,
        id: Uuid,
        at: i64,
    },
    InsertSigningKey(SigningKeyRecord),
    /// Schedules every unretired key but `except` to retire at `at`.
    RetireSigningKeys {
        except: String,
        at: i64,
    },
    RevokeToken(RevokedToken),
    InsertWebhook(Webhook),
    UpdateWebhook(Webhook),
    /// Deletes a webhook and its deliveries.
    DeleteWebhook {
        id: Uuid,
    },
    /// Records that a key's expiry warning at `threshold` was given; refused
    /// (stale) when it already was, so the warning's batch commits once.
    WarnExpiry {
        key_id: Uuid,
        threshold: &'static str,
        at: i64,
    },
}

impl Write {
    /// The account whose authentication data this write touches, if any.
    fn account(&self) -> Option<Uuid> {
        match self {
            Write::InsertAccount(a) | Write::UpdateAccount { account: a, .. } => Some(a.id),
            Write::InsertKey(k) | Write::UpdateKeyLimits(k) => Some(k.service_account_id),
            Write::QuotaExhausted { account_id, .. } => Some(*account_id),
            Write::RevokeKey { account_id, .. }
            | Write::RevokeAllKeys { account_id, .. }
            | Write::ExpireAllKeys { account_id, .. }
            | Write::DeleteCredential { account_id, .. }
            | Write::DeleteAllCredentials { account_id, .. } => Some(*account_id),
            Write::InsertCredential(c) | Write::UpdateCredential(c) => Some(c.service_account_id),
            Write::InsertFederatedIdentity(f) => Some(f.service_account_id),
            Write::DeleteFederatedIdentity { account_id, .. } => Some(*account_id),
            _ => None,
        }
    }

    fn topic(&self) -> Option<&'static str> {
        match self {
            Write::InsertSigningKey(_) | Write::RetireSigningKeys { .. } => {
                Some(TOPIC_SIGNING_KEYS)
            }
            Write::RevokeToken(_) => Some(TOPIC_REVOCATIONS),
            _ => None,
        }
    }
}

/// Writes that commit together, with the audit event that explains them.
#[derive(Debug, Clone)]
pub struct WriteBatch {
    pub writes: Vec<Write>,
    pub audit: AuditEvent,
}

impl WriteBatch {
    /// Non-account topics touched, deduplicated.
    pub fn topics(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for t in self.writes.iter().filter_map(Write::topic) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// Accounts touched, deduplicated, in first-touched order.
    pub fn accounts(&self) -> Vec<Uuid> {
        let mut out: Vec<Uuid> = Vec::new();
        for id in self.writes.iter().filter_map(Write::account) {
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }
}

/// Accounts with their keys and credentials, as [`Store::auth_state_of`]
/// reads them.
#[derive(Debug, Default)]
pub struct AuthState {
    pub accounts: Vec<ServiceAccount>,
    pub keys: Vec<ApiKey>,
    pub credentials: Vec<ClientCredential>,
    /// Federated identities, deleted ones included.
    pub bindings: Vec<FederatedIdentity>,
}

/// Keyset pagination over ids: at most `limit` items with id greater than
/// `after`, or (when `before` is set) the last `limit` items with id less
/// than `before`; either way in ascending id order. A page costs what it
/// holds, however long the list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Keyset {
    pub after: Option<Uuid>,
    pub before: Option<Uuid>,
    pub limit: u32,
}

impl Keyset {
    /// The first `limit` items after `after` (from the start when `None`).
    pub fn after(after: Option<Uuid>, limit: u32) -> Self {
        Self {
            after,
            before: None,
            limit,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct AccountFilter {
    pub organization_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    /// Any of these states; empty: every state.
    pub states: Vec<AccountState>,
    /// Exactly this name.
    pub name: Option<String>,
    /// `Some(true)`: only accounts in a project; `Some(false)`: only
    /// organization-wide ones.
    pub in_project: Option<bool>,
}

/// Persistence for everything keygate manages: one SQL implementation
/// ([`SqlStore`]) over SQLite or PostgreSQL.
#[async_trait]
pub trait Store: EventStore + Send + Sync + 'static {
    /// Commits a batch atomically and returns its new revision.
    async fn write(&self, batch: WriteBatch) -> Result<i64>;

    /// The latest committed revision.
    async fn revision(&self) -> Result<i64>;
    /// Change-feed entries after `revision`, oldest first, at most `limit`.
    async fn changes_since(&self, revision: i64, limit: u32) -> Result<Vec<Change>>;

    async fn organization(&self, id: Uuid) -> Result<Option<Organization>>;
    /// Organizations by id; `only` restricts to one (an org owner's own).
    async fn organizations(&self, only: Option<Uuid>, page: Keyset) -> Result<Vec<Organization>>;
    /// Number of accounts of the organization that are not closed.
    async fn open_accounts_in(&self, organization_id: Uuid) -> Result<u64>;

    async fn project(&self, id: Uuid) -> Result<Option<Project>>;
    async fn projects(&self, organization_id: Uuid, page: Keyset) -> Result<Vec<Project>>;

    async fn account(&self, id: Uuid) -> Result<Option<ServiceAccount>>;
    async fn accounts(
        &self,
        filter: &AccountFilter,
        now_ms: i64,
        page: Keyset,
    ) -> Result<Vec<ServiceAccount>>;
    /// Accounts matching `filter` by id, skipping `offset` of them (APIs
    /// that page by number).
    async fn accounts_at(
        &self,
        filter: &AccountFilter,
        now_ms: i64,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<ServiceAccount>>;
    /// How many accounts match `filter`.
    async fn count_accounts(&self, filter: &AccountFilter, now_ms: i64) -> Result<u64>;
    /// Whether any open account holds the admin scope (bootstrap check).
    async fn has_admin(&self) -> Result<bool>;

    /// Every key of the account, revoked ones included (the cache needs their
    /// hashes to evict them).
    async fn keys_of(&self, account_id: Uuid) -> Result<Vec<ApiKey>>;

    /// Every credential of the account, deleted ones included (for eviction).
    async fn credentials_of(&self, account_id: Uuid) -> Result<Vec<ClientCredential>>;
    /// The live (not deleted) credentials of several accounts, by id.
    async fn live_credentials_of(&self, account_ids: &[Uuid]) -> Result<Vec<ClientCredential>>;
    /// The live federated identities of an account, oldest first.
    async fn federated_identities_of(&self, account_id: Uuid) -> Result<Vec<FederatedIdentity>>;
    /// What the cache needs of several accounts at once (a batch of
    /// changes): the accounts that still exist, and every key and
    /// credential of each, revoked and deleted ones included.
    async fn auth_state_of(&self, account_ids: &[Uuid]) -> Result<AuthState>;
    /// Live credentials with their open, enabled accounts, for the initial load.
    async fn credential_records(&self) -> Result<Vec<(ClientCredential, ServiceAccount)>>;
    /// Signing keys not yet retired at `now_ms`.
    async fn signing_keys(&self, now_ms: i64) -> Result<Vec<SigningKeyRecord>>;
    /// Revoked token ids that have not expired at `now_ms`.
    async fn revoked_tokens(&self, now_ms: i64) -> Result<Vec<RevokedToken>>;
    /// Accounts a JWT must be checked against at the proxy: disabled,
    /// closed, expiring, with a token cut-off, or with their own rate limit.
    async fn restricted_accounts(&self) -> Result<Vec<ServiceAccount>>;
    /// Keys and client credentials that stopped working after `since_ms`
    /// (or will stop): tokens minted from them die with them.
    async fn dead_credentials(&self, since_ms: i64) -> Result<Vec<DeadCredential>>;

    /// Live keys with their open accounts, ordered by key id, for the cache's
    /// initial load; page forwards through with `page.after` (`page.before`
    /// is not read), up to and including key id `through` when given.
    async fn auth_entries(&self, page: Keyset, through: Option<Uuid>) -> Result<Vec<AuthEntry>>;

    /// Key ids that cut the keys (live or not) into `parts` ranges of about
    /// equal size, ascending: what the initial load reads side by side, each
    /// range through its cut. Fewer (none) when there are too few keys for
    /// `min_per_part` each.
    async fn key_splits(&self, parts: u32, min_per_part: u32) -> Result<Vec<Uuid>>;

    /// Records `last_used_at` for keys and their accounts (batched, best effort;
    /// not a change: authentication does not depend on it).
    async fn record_usage(&self, used: &[(Uuid, Uuid, i64)]) -> Result<()>;

    /// Adds quota spending and traffic counts, in one transaction.
    async fn record_metering(&self, spends: &[Spend], traffic: &[Traffic]) -> Result<()>;
    /// What every quota window still open at `now_ms` has spent.
    async fn quota_spent(&self, now_ms: i64) -> Result<Vec<Spent>>;
    /// An account's traffic from one UTC day to another (day starts, ms).
    async fn traffic_of(
        &self,
        account_id: Uuid,
        from_day: i64,
        to_day: i64,
    ) -> Result<Vec<Traffic>>;
    /// Accounts with a quota, a narrowing key or credential, or a federated
    /// identity (the initial load reads them in full).
    async fn narrowed_accounts(&self) -> Result<Vec<Uuid>>;

    /// Audit events, of one organization and about one account when given
    /// (the account acted, was acted on, or its key or credential was).
    async fn audit_events(
        &self,
        organization_id: Option<Uuid>,
        account_id: Option<Uuid>,
        page: Keyset,
    ) -> Result<Vec<AuditEvent>>;

    async fn heartbeat(&self, replica: &Replica) -> Result<()>;
    /// Replicas whose heartbeat is newer than `since_ms`.
    async fn replicas(&self, since_ms: i64) -> Result<Vec<Replica>>;

    /// Closes connections; called once at shutdown.
    async fn close(&self);

    /// Signalled when another writer may have committed (PostgreSQL
    /// `LISTEN/NOTIFY`); `None` when the backend has no push (SQLite: polling).
    fn change_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// Opens the store named by `url` and brings its schema up to date.
/// Failed operations are counted into `errors`.
pub async fn connect(url: &str, errors: metrics::Counter) -> Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(
            SqliteStore::connect(url).await?.with_error_counter(errors),
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(std::sync::Arc::new(
            PostgresStore::connect(url)
                .await?
                .with_error_counter(errors),
        ))
    } else {
        Err(Error::Unsupported(
            "store.url must start with sqlite: or postgres://",
        ))
    }
}
