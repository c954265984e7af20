//! Listing service accounts: by cursor (the native API, OpenAI) or by page
//! number with a total (Waldur), always narrowed to what the actor may see.

use uuid::Uuid;

use super::{from_store, Actor, Authority, Error, Listing, Manager, Result};
use crate::store::{AccountFilter, AccountState, ServiceAccount};

/// A page of accounts and how many match in all.
#[derive(Debug)]
pub struct Counted<T> {
    pub data: Vec<T>,
    pub total: u64,
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
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Listing<ServiceAccount>> {
        let Some(filter) = visible(actor, filter)? else {
            return Ok(Listing {
                data: Vec::new(),
                has_more: false,
            });
        };
        let page = Self::page(after, limit)?;
        let accounts = self
            .store
            .accounts(&filter, self.now(), page)
            .await
            .map_err(|e| from_store(e, "service account"))?;
        Ok(Self::listing(accounts, page))
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
        let data = if offset >= total {
            Vec::new()
        } else {
            self.store
                .accounts_at(&filter, now, offset, limit)
                .await
                .map_err(|e| from_store(e, "service account"))?
        };
        Ok(Counted { data, total })
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
