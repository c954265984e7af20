//! Listing and finding service accounts as the APIs see them: by cursor
//! (the native API and the dialects, both ways) or by page number with a
//! total (Waldur), always narrowed to what the actor may see; and the rules
//! the dialects share — an account their path places in a tenant is found
//! only there and only while open, and an account's primary credential is
//! its oldest live one. A page costs what it holds, not what the
//! organization holds.

use std::collections::HashMap;

use uuid::Uuid;

use super::{from_store, Actor, Authority, Cursor, Error, Listing, Manager, Result};
use crate::store::{AccountFilter, AccountState, ClientCredential, ServiceAccount};

/// A page of accounts and how many match in all.
#[derive(Debug)]
pub struct Counted<T> {
    pub data: Vec<T>,
    pub total: u64,
}

/// Where an API's path places an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenant {
    /// Anywhere in the organization.
    Organization(Uuid),
    /// In this project.
    Project(Uuid),
}

impl Tenant {
    fn holds(self, a: &ServiceAccount) -> bool {
        match self {
            Tenant::Organization(o) => a.organization_id == o,
            Tenant::Project(p) => a.project_id == Some(p),
        }
    }

    /// The tenant's accounts that are not closed.
    fn open_accounts(self) -> AccountFilter {
        let (organization_id, project_id) = match self {
            Tenant::Organization(o) => (Some(o), None),
            Tenant::Project(p) => (None, Some(p)),
        };
        AccountFilter {
            organization_id,
            project_id,
            states: vec![
                AccountState::Active,
                AccountState::Disabled,
                AccountState::Expired,
            ],
            ..AccountFilter::default()
        }
    }
}

/// `filter` narrowed to what `actor` may see; `None` when it asks for
/// something the actor cannot see at all (it then matches nothing).
fn visible(actor: &Actor, mut filter: AccountFilter) -> Result<Option<AccountFilter>> {
    actor.require_manager()?;
    if actor.admin {
        return Ok(Some(filter));
    }
    if filter
        .organization_id
        .is_some_and(|o| o != actor.organization_id)
        || (actor.project_id.is_some()
            && filter
                .project_id
                .is_some_and(|p| Some(p) != actor.project_id))
    {
        return Ok(None);
    }
    filter.organization_id = Some(actor.organization_id);
    if actor.project_id.is_some() {
        filter.project_id = actor.project_id;
    }
    Ok(Some(filter))
}

impl Manager {
    pub async fn accounts(
        &self,
        actor: &Actor,
        filter: AccountFilter,
        cursor: Cursor,
        limit: Option<u32>,
    ) -> Result<Listing<ServiceAccount>> {
        let Some(filter) = visible(actor, filter)? else {
            return Ok(Listing::empty());
        };
        let page = Self::page(cursor, limit)?;
        let accounts = self
            .store
            .accounts(&filter, self.now(), page)
            .await
            .map_err(|e| from_store(e, "service account"))?;
        Ok(Self::listing(accounts, page))
    }

    /// The open accounts of `tenant`, a page from `cursor`. The cursor is
    /// an id to page past; see [`Manager::check_cursor`] for APIs that
    /// require it to name an item of the list.
    pub async fn open_accounts(
        &self,
        actor: &Actor,
        tenant: Tenant,
        cursor: Cursor,
        limit: Option<u32>,
    ) -> Result<Listing<ServiceAccount>> {
        self.accounts(actor, tenant.open_accounts(), cursor, limit)
            .await
    }

    /// The open accounts of `tenant` by id, skipping `offset` of them (APIs
    /// that page by offset and answer no total).
    pub async fn open_accounts_from(
        &self,
        actor: &Actor,
        tenant: Tenant,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<ServiceAccount>> {
        let Some(filter) = visible(actor, tenant.open_accounts())? else {
            return Ok(Vec::new());
        };
        self.store
            .accounts_at(&filter, self.now(), offset, limit)
            .await
            .map_err(|e| from_store(e, "service account"))
    }

    /// `Ok` when `cursor` names an open account of `tenant` the actor may
    /// see (or is the start); else invalid, naming the parameter.
    pub async fn check_cursor(&self, actor: &Actor, tenant: Tenant, cursor: Cursor) -> Result<()> {
        let (id, param) = match cursor {
            Cursor::Start => return Ok(()),
            Cursor::After(id) => (id, "after"),
            Cursor::Before(id) => (id, "before"),
        };
        match self.open_account(actor, id, tenant).await {
            Ok(_) => Ok(()),
            Err(Error::NotFound(_) | Error::Forbidden(_)) => {
                Err(Error::invalid(param, "names nothing in this list"))
            }
            Err(other) => Err(other),
        }
    }

    /// An account the actor may see, in `tenant` and not closed; any other
    /// answers not found, as if it had never existed.
    pub async fn open_account(
        &self,
        actor: &Actor,
        id: Uuid,
        tenant: Tenant,
    ) -> Result<ServiceAccount> {
        let a = self.account(actor, id).await?;
        if !tenant.holds(&a) || a.closed_at.is_some() {
            return Err(Error::NotFound("service account"));
        }
        Ok(a)
    }

    /// One numbered page: `limit` accounts after the first `offset`, and
    /// how many match in all.
    pub async fn accounts_at(
        &self,
        actor: &Actor,
        filter: AccountFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Counted<ServiceAccount>> {
        let Some(filter) = visible(actor, filter)? else {
            return Ok(Counted {
                data: Vec::new(),
                total: 0,
            });
        };
        let now = self.now();
        let total = self
            .store
            .count_accounts(&filter, now)
            .await
            .map_err(|e| from_store(e, "service account"))?;
        let data = if offset >= total || limit == 0 {
            Vec::new()
        } else {
            self.store
                .accounts_at(&filter, now, offset, limit)
                .await
                .map_err(|e| from_store(e, "service account"))?
        };
        Ok(Counted { data, total })
    }

    /// The primary credential of each account (its oldest live one), for
    /// accounts the actor has already been shown: one read for the lot.
    pub async fn primary_credentials(
        &self,
        actor: &Actor,
        accounts: &[ServiceAccount],
    ) -> Result<HashMap<Uuid, ClientCredential>> {
        actor.require_manager()?;
        let ids: Vec<Uuid> = accounts
            .iter()
            .filter(|a| actor.sees(a.organization_id, a.project_id))
            .map(|a| a.id)
            .collect();
        let live = self
            .store
            .live_credentials_of(&ids)
            .await
            .map_err(|e| from_store(e, "credential"))?;
        let mut primary: HashMap<Uuid, ClientCredential> = HashMap::new();
        for c in live {
            let older = primary
                .get(&c.service_account_id)
                .is_none_or(|p| (c.created_at, c.id) < (p.created_at, p.id));
            if older {
                primary.insert(c.service_account_id, c);
            }
        }
        Ok(primary)
    }
}

/// The state filter as given in a query string.
pub fn parse_state(s: &str) -> Result<AccountState> {
    AccountState::parse(s).ok_or_else(|| {
        Error::invalid(
            "state",
            format!("{s:?} is not one of active, disabled, expired, closed"),
        )
    })
}
