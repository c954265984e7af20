//! Account management: the rules behind every admin operation — who may do
//! what, what input is valid, which writes commit together — free of HTTP so
//! the native API and every dialect share them.
//!
//! Authorization model (see docs/ARCHITECTURE.md): a principal holding
//! `keygate:admin` may do anything; a service account with role `owner` may
//! manage its own organization (org-scoped) or project (project-scoped);
//! anything else is forbidden. An owner delegates only from what it has:
//! scopes it holds, rate limits at or below its own. What an actor cannot
//! see answers "not found", never its data.

mod accounts;
mod bootstrap;
mod credentials;
mod federation;
mod keys;
mod limits;
mod listings;
mod narrowing;
mod orgs;
mod revocations;
mod signing_keys;
mod usage;
mod validate;

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

pub use accounts::{AccountPatch, CreatedAccount, NewAccount};
pub use credentials::{auth_method, CredentialPatch, IssuedCredential, NewCredential};
pub use federation::NewBinding;
pub use keys::{IssuedKey, KeyPatch, NewKey};
pub use listings::{parse_state as accounts_state, Counted, Tenant};
pub use narrowing::{lifetime_text, LimitsInput, LimitsPatch, QuotaInput, QuotaPatch};
pub use orgs::{NewOrganization, NewProject, OrganizationPatch, ProjectPatch};
pub use usage::{QuotaOwner, Usage};

use crate::authn::Principal;
use crate::clock::SharedClock;
use crate::config::RateSpec;
use crate::secret::ApiKeyFormat;
use crate::store::{self, AuditEvent, Role, Store, Write, WriteBatch};

/// Who is asking: the authenticated principal, as is.
pub type Actor = Principal;

/// Told of every commit this replica makes, before the write call returns
/// (replication applies it to the local cache, so a revocation through this
/// replica is effective here at once).
#[async_trait]
pub trait AfterCommit: Send + Sync {
    async fn committed(&self, revision: i64);
}

/// The authorization rules an actor is held to.
trait Authority {
    fn sees(&self, org: Uuid, project: Option<Uuid>) -> bool;
    /// `Ok` when the actor sees `org`/`project`; else not found for
    /// another organization's things (never their data), forbidden for
    /// another project of its own organization.
    fn check_sees(&self, org: Uuid, project: Option<Uuid>, what: &'static str) -> Result<()>;
    fn require_manager(&self) -> Result<()>;
    fn manages_org(&self, org: Uuid) -> bool;
}

impl Authority for Principal {
    /// May this actor see things in `org` / `project` at all?
    fn sees(&self, org: Uuid, project: Option<Uuid>) -> bool {
        self.admin
            || (self.organization_id == org
                && (self.project_id.is_none() || self.project_id == project))
    }

    fn check_sees(&self, org: Uuid, project: Option<Uuid>, what: &'static str) -> Result<()> {
        if self.sees(org, project) {
            Ok(())
        } else if self.organization_id == org {
            Err(Error::Forbidden(
                "a project-scoped owner may act only in its own project",
            ))
        } else {
            Err(Error::NotFound(what))
        }
    }

    /// Admin or owner; members manage nothing.
    fn require_manager(&self) -> Result<()> {
        if self.admin || self.role == Role::Owner {
            Ok(())
        } else {
            Err(Error::Forbidden(
                "only owners and platform admins may manage service accounts",
            ))
        }
    }

    /// Org-wide powers: admin, or an org-scoped owner of `org`.
    fn manages_org(&self, org: Uuid) -> bool {
        self.admin
            || (self.role == Role::Owner
                && self.project_id.is_none()
                && self.organization_id == org)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{param}: {message}")]
    Invalid {
        param: &'static str,
        message: String,
    },
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The project is archived: nothing new may be made in it.
    #[error("project is archived")]
    Archived,
    #[error("{message}")]
    Conflict {
        code: &'static str,
        param: Option<&'static str>,
        message: String,
    },
    #[error("store unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl Error {
    pub(crate) fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            param,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Store failures become "unavailable" (retryable) or "internal"; the cause is
/// logged once here, at the edge of the domain.
pub(crate) fn from_store(e: store::Error, what: &'static str) -> Error {
    match e {
        store::Error::Conflict(param) => Error::Conflict {
            code: "duplicate_name",
            param: Some(param),
            message: format!("a {what} with this {param} already exists"),
        },
        store::Error::NotFound => Error::NotFound(what),
        store::Error::Stale => Error::Conflict {
            code: "concurrent_update",
            param: None,
            message: format!("the {what} changed while this request was processed; retry"),
        },
        store::Error::Unavailable(ref cause) => {
            tracing::warn!(error = %cause, "store unavailable");
            Error::Unavailable
        }
        other => {
            tracing::error!(error = %other, "store error");
            Error::Internal
        }
    }
}

/// A write's result and the revision that carries it.
#[derive(Debug)]
pub struct Written<T> {
    pub value: T,
    pub revision: i64,
}

pub struct Manager {
    pub(crate) store: Arc<dyn Store>,
    after_commit: Arc<dyn AfterCommit>,
    format: ApiKeyFormat,
    clock: SharedClock,
    /// Longest a token lives: how long a closed account must be remembered.
    token_max_ttl_ms: i64,
    /// `[rate_limit].default`: the limit of an account without its own.
    default_rate: Option<RateSpec>,
    /// Names of `[[trusted_issuers]]`, which bindings may name.
    trusted_issuers: Vec<String>,
}

/// A page of results, in ascending id order.
#[derive(Debug)]
pub struct Listing<T> {
    pub data: Vec<T>,
    /// More items follow the page.
    pub has_more: bool,
    /// Items precede the page.
    pub has_prev: bool,
}

impl<T> Listing<T> {
    pub(crate) fn empty() -> Self {
        Self {
            data: Vec::new(),
            has_more: false,
            has_prev: false,
        }
    }
}

/// Where a list page starts: at the beginning, just after an item, or
/// (reading backwards) just before one. Items are ordered by id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Cursor {
    #[default]
    Start,
    After(Uuid),
    Before(Uuid),
}

impl Cursor {
    /// The native API's cursor: `after`, or the start.
    pub fn after(after: Option<Uuid>) -> Self {
        after.map_or(Cursor::Start, Cursor::After)
    }
}

pub const MAX_PAGE: u32 = 100;
pub const DEFAULT_PAGE: u32 = 20;

impl Manager {
    pub fn new(
        store: Arc<dyn Store>,
        after_commit: Arc<dyn AfterCommit>,
        format: ApiKeyFormat,
        clock: SharedClock,
        token_max_ttl: std::time::Duration,
        default_rate: Option<RateSpec>,
    ) -> Self {
        Self {
            store,
            after_commit,
            format,
            clock,
            token_max_ttl_ms: i64::try_from(token_max_ttl.as_millis()).unwrap_or(i64::MAX / 2),
            default_rate,
            trusted_issuers: Vec::new(),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Commits a batch, then applies it to this process's cache at once, so a
    /// revocation through this replica is effective before the call returns.
    /// The one write funnel: `events` writes through it too.
    pub(crate) async fn commit(
        &self,
        actor: Option<&Actor>,
        what: &'static str,
        writes: Vec<Write>,
        audit: Audit,
    ) -> Result<i64> {
        let batch = WriteBatch {
            writes,
            audit: AuditEvent {
                id: Uuid::now_v7(),
                at: self.now(),
                actor_id: actor.map(|a| a.account_id),
                action: audit.action.into(),
                target_type: audit.target_type.into(),
                target_id: audit.target_id,
                organization_id: audit.organization_id,
                details: audit.details,
            },
        };
        let revision = self
            .store
            .write(batch)
            .await
            .map_err(|e| from_store(e, what))?;
        self.after_commit.committed(revision).await;
        Ok(revision)
    }

    /// Paging helper: fetch one more than asked to learn whether more
    /// items lie beyond the page in the direction read.
    pub(crate) fn page(cursor: Cursor, limit: Option<u32>) -> Result<store::Keyset> {
        let limit = limit.unwrap_or(DEFAULT_PAGE);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let (after, before) = match cursor {
            Cursor::Start => (None, None),
            Cursor::After(id) => (Some(id), None),
            Cursor::Before(id) => (None, Some(id)),
        };
        Ok(store::Keyset {
            after,
            before,
            limit: limit + 1,
        })
    }

    /// `data` (ascending, up to one more than the page holds) as a page.
    pub(crate) fn listing<T>(mut data: Vec<T>, page: store::Keyset) -> Listing<T> {
        let size = (page.limit - 1) as usize;
        let beyond = data.len() > size;
        if page.before.is_some() {
            // Read backwards: the surplus item is the first.
            if beyond {
                data.drain(..data.len() - size);
            }
            Listing {
                data,
                has_more: true,
                has_prev: beyond,
            }
        } else {
            data.truncate(size);
            Listing {
                data,
                has_more: beyond,
                has_prev: page.after.is_some(),
            }
        }
    }

    /// Audit events the actor may read, newest last; with `account`, only
    /// those about that account (one the actor may see).
    pub async fn audit_events(
        &self,
        actor: &Actor,
        account: Option<Uuid>,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Listing<AuditEvent>> {
        actor.require_manager()?;
        if !actor.admin && actor.project_id.is_some() {
            return Err(Error::Forbidden(
                "audit events are for organization owners and platform admins",
            ));
        }
        let page = Self::page(Cursor::after(after), limit)?;
        if let Some(id) = account {
            // Another organization's account answers not found.
            self.account(actor, id).await?;
        }
        let only = (!actor.admin).then_some(actor.organization_id);
        let events = self
            .store
            .audit_events(only, account, page)
            .await
            .map_err(|e| from_store(e, "audit event"))?;
        Ok(Self::listing(events, page))
    }

    pub async fn replicas(&self, actor: &Actor) -> Result<Vec<store::Replica>> {
        if !actor.admin {
            return Err(Error::Forbidden(
                "replicas are visible to platform admins only",
            ));
        }
        // Live: heard from within three heartbeats.
        let since = self.now() - 15_000;
        self.store
            .replicas(since)
            .await
            .map_err(|e| from_store(e, "replica"))
    }
}

/// What the audit log records for one write.
pub(crate) struct Audit {
    pub(crate) action: &'static str,
    pub(crate) target_type: &'static str,
    pub(crate) target_id: Uuid,
    pub(crate) organization_id: Option<Uuid>,
    pub(crate) details: serde_json::Value,
}
