//! Service accounts and their API keys.

use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{from_store, valid_name, Actor, Audit, Error, Listing, Manager, Result, Written};
use crate::clock::parse_rfc3339;
use crate::config::RateSpec;
use crate::store::{AccountFilter, AccountState, ApiKey, Role, ServiceAccount, Write};

#[derive(Debug, Default)]
pub struct NewAccount {
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub name: String,
    pub description: Option<String>,
    pub role: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at: Option<String>,
    pub rate_limit: Option<String>,
    pub create_api_key: bool,
}

/// A PATCH: `None` leaves a field alone; `Some(None)` clears a nullable one.
#[derive(Debug, Default)]
pub struct AccountPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub scopes: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub expires_at: Option<Option<String>>,
    pub rate_limit: Option<Option<String>>,
}

/// A key just made: its stored form and its value, which is shown once.
pub struct IssuedKey {
    pub key: ApiKey,
    pub value: Zeroizing<String>,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

const MAX_SCOPES: usize = 100;

fn valid_scopes(actor: &Actor, scopes: Vec<String>) -> Result<Vec<String>> {
    if scopes.len() > MAX_SCOPES {
        return Err(Error::invalid(
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::invalid(
                "scopes",
                format!("{s:?} is not a scope: 1-128 visible ASCII characters, no spaces"),
            ));
        }
        // SECURITY: keygate's own scopes confer control over keygate; only a
        // platform admin may hand them out.
        if s.starts_with("keygate:") && !actor.admin {
            return Err(Error::Forbidden(
                "only platform admins may grant keygate: scopes",
            ));
        }
        // SECURITY: scopes are global strings that upstreams trust; an owner
        // delegates from what it holds and can never mint more.
        if !actor.admin && !actor.scopes.contains(&s) {
            return Err(Error::Forbidden(
                "an owner may grant only scopes it holds itself",
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

pub(super) fn valid_description(d: Option<String>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > 1000 => Err(Error::invalid(
            "description",
            "must be at most 1000 characters",
        )),
        other => Ok(other),
    }
}

pub(super) fn valid_expiry(s: Option<String>) -> Result<Option<i64>> {
    s.map(|s| {
        parse_rfc3339(&s)
            .ok_or_else(|| Error::invalid("expires_at", format!("{s:?} is not an RFC 3339 time")))
    })
    .transpose()
}

fn valid_rate(s: Option<String>) -> Result<Option<String>> {
    s.map(|s| {
        RateSpec::parse(&s)
            .map(|r| r.to_string())
            .map_err(|e| Error::invalid("rate_limit", e))
    })
    .transpose()
}

impl Manager {
    /// An account the actor may see; others answer not found.
    pub async fn account(&self, actor: &Actor, id: Uuid) -> Result<ServiceAccount> {
        actor.require_manager()?;
        let account = self
            .store
            .account(id)
            .await
            .map_err(|e| from_store(e, "service account"))?
            .ok_or(Error::NotFound("service account"))?;
        if !actor.sees(account.organization_id, account.project_id) {
            return Err(Error::NotFound("service account"));
        }
        Ok(account)
    }

    /// An account the actor may change. SECURITY: accounts holding
    /// `keygate:` scopes are platform infrastructure; only platform admins may
    /// change them or their keys, or an org owner could mint itself an admin key.
    pub(super) async fn account_for_write(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<ServiceAccount> {
        let account = self.account(actor, id).await?;
        if !actor.admin && account.scopes.iter().any(|s| s.starts_with("keygate:")) {
            return Err(Error::Forbidden(
                "only platform admins may change accounts that hold keygate: scopes",
            ));
        }
        if account.closed_at.is_some() {
            return Err(closed());
        }
        Ok(account)
    }

    /// `updated_at` for a write replacing a row last written at `previous`:
    /// strictly later, so the optimistic guard never sees two writes alike.
    fn next_updated_at(&self, previous: i64) -> i64 {
        self.now().max(previous + 1)
    }

    pub async fn accounts(
        &self,
        actor: &Actor,
        mut filter: AccountFilter,
        after: Option<Uuid>,
        limit: Option<u32>,
    ) -> Result<Listing<ServiceAccount>> {
        actor.require_manager()?;
        if !actor.admin {
            // Narrow to what the actor may see; a filter outside it matches nothing.
            if filter
                .organization_id
                .is_some_and(|o| o != actor.organization_id)
                || (actor.project_id.is_some()
                    && filter
                        .project_id
                        .is_some_and(|p| Some(p) != actor.project_id))
            {
                return Ok(Listing {
                    data: Vec::new(),
                    has_more: false,
                });
            }
            filter.organization_id = Some(actor.organization_id);
            if actor.project_id.is_some() {
                filter.project_id = actor.project_id;
            }
        }
        let page = Self::page(after, limit)?;
        let accounts = self
            .store
            .accounts(&filter, self.now(), page)
            .await
            .map_err(|e| from_store(e, "service account"))?;
        Ok(Self::listing(accounts, page))
    }

    pub async fn create_account(
        &self,
        actor: &Actor,
        new: NewAccount,
    ) -> Result<Written<(ServiceAccount, Option<IssuedKey>)>> {
        actor.require_manager()?;
        if !actor.sees(new.organization_id, new.project_id) {
            return Err(Error::NotFound("organization"));
        }
        self.store
            .organization(new.organization_id)
            .await
            .map_err(|e| from_store(e, "organization"))?
            .ok_or(Error::NotFound("organization"))?;
        if let Some(pid) = new.project_id {
            let project = self
                .store
                .project(pid)
                .await
                .map_err(|e| from_store(e, "project"))?
                .filter(|p| p.organization_id == new.organization_id)
                .ok_or(Error::NotFound("project"))?;
            if project.archived {
                return Err(Error::invalid("project_id", "project is archived"));
            }
        } else if actor.project_id.is_some() && !actor.admin {
            return Err(Error::Forbidden(
                "a project owner may only create accounts in its project",
            ));
        }
        let role = match new.role.as_deref() {
            None => Role::Member,
            Some(r) => Role::parse(r).ok_or_else(|| {
                Error::invalid("role", format!("{r:?} is not one of owner, member"))
            })?,
        };
        let now = self.now();
        let expires_at = valid_expiry(new.expires_at)?;
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let account = ServiceAccount {
            id: Uuid::now_v7(),
            organization_id: new.organization_id,
            project_id: new.project_id,
            name: valid_name("name", &new.name)?,
            description: valid_description(new.description)?,
            role,
            scopes: valid_scopes(actor, new.scopes)?,
            enabled: true,
            expires_at,
            closed_at: None,
            rate_limit: valid_rate(new.rate_limit)?,
            created_by: Some(actor.account_id),
            created_at: now,
            updated_at: now,
            last_used_at: None,
        };
        let mut writes = vec![Write::InsertAccount(account.clone())];
        let issued = new.create_api_key.then(|| self.new_key(account.id, now));
        if let Some(k) = &issued {
            writes.push(Write::InsertKey(k.key.clone()));
        }
        let audit = Audit {
            action: "service_account.create",
            target_type: "service_account",
            target_id: account.id,
            organization_id: Some(account.organization_id),
            details: json!({
                "name": account.name,
                "project_id": account.project_id,
                "role": account.role,
                "scopes": account.scopes,
                "api_key_id": issued.as_ref().map(|k| k.key.id),
            }),
        };
        let revision = self
            .commit(Some(actor), "service account", writes, audit)
            .await?;
        Ok(Written {
            value: (account, issued),
            revision,
        })
    }

    pub async fn update_account(
        &self,
        actor: &Actor,
        id: Uuid,
        patch: AccountPatch,
    ) -> Result<Written<ServiceAccount>> {
        let mut account = self.account_for_write(actor, id).await?;
        let previous_updated_at = account.updated_at;
        let mut changed = serde_json::Map::new();
        if let Some(name) = patch.name {
            account.name = valid_name("name", &name)?;
            changed.insert("name".into(), json!(account.name));
        }
        if let Some(description) = patch.description {
            account.description = valid_description(description)?;
            changed.insert("description".into(), json!(account.description));
        }
        if let Some(scopes) = patch.scopes {
            account.scopes = valid_scopes(actor, scopes)?;
            changed.insert("scopes".into(), json!(account.scopes));
        }
        if let Some(enabled) = patch.enabled {
            account.enabled = enabled;
            changed.insert("enabled".into(), json!(enabled));
        }
        if let Some(expires_at) = patch.expires_at {
            account.expires_at = valid_expiry(expires_at)?;
            changed.insert("expires_at".into(), json!(account.expires_at));
        }
        if let Some(rate_limit) = patch.rate_limit {
            account.rate_limit = valid_rate(rate_limit)?;
            changed.insert("rate_limit".into(), json!(account.rate_limit));
        }
        account.updated_at = self.next_updated_at(previous_updated_at);
        let audit = Audit {
            action: "service_account.update",
            target_type: "service_account",
            target_id: id,
            organization_id: Some(account.organization_id),
            details: serde_json::Value::Object(changed),
        };
        let revision = self
            .commit(
                Some(actor),
                "service account",
                vec![Write::UpdateAccount {
                    account: account.clone(),
                    previous_updated_at,
                }],
                audit,
            )
            .await?;
        Ok(Written {
            value: account,
            revision,
        })
    }

    /// Closes an account: final; every key is revoked in the same commit.
    pub async fn close_account(&self, actor: &Actor, id: Uuid) -> Result<Written<ServiceAccount>> {
        let mut account = self.account_for_write(actor, id).await?;
        let previous_updated_at = account.updated_at;
        let now = self.next_updated_at(previous_updated_at);
        account.closed_at = Some(now);
        account.updated_at = now;
        let audit = Audit {
            action: "service_account.close",
            target_type: "service_account",
            target_id: id,
            organization_id: Some(account.organization_id),
            details: json!({ "name": account.name }),
        };
        let writes = vec![
            Write::UpdateAccount {
                account: account.clone(),
                previous_updated_at,
            },
            Write::RevokeAllKeys {
                account_id: id,
                at: now,
            },
            Write::DeleteAllCredentials {
                account_id: id,
                at: now,
            },
        ];
        let revision = self
            .commit(Some(actor), "service account", writes, audit)
            .await?;
        Ok(Written {
            value: account,
            revision,
        })
    }

    fn new_key(&self, account_id: Uuid, now: i64) -> IssuedKey {
        let g = self.format.generate_key();
        IssuedKey {
            key: ApiKey {
                id: Uuid::now_v7(),
                service_account_id: account_id,
                hash: g.hash,
                redacted: g.redacted,
                created_at: now,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            },
            value: g.value,
        }
    }

    /// Live keys of an account (never their values).
    pub async fn keys(&self, actor: &Actor, account_id: Uuid) -> Result<Vec<ApiKey>> {
        self.account(actor, account_id).await?;
        let now = self.now();
        let keys = self
            .store
            .keys_of(account_id)
            .await
            .map_err(|e| from_store(e, "api key"))?;
        Ok(keys.into_iter().filter(|k| k.is_live(now)).collect())
    }

    pub async fn issue_key(&self, actor: &Actor, account_id: Uuid) -> Result<Written<IssuedKey>> {
        let account = self.account_for_write(actor, account_id).await?;
        let issued = self.new_key(account_id, self.now());
        let audit = Audit {
            action: "api_key.create",
            target_type: "api_key",
            target_id: issued.key.id,
            organization_id: Some(account.organization_id),
            details: json!({ "service_account_id": account_id, "redacted_value": issued.key.redacted }),
        };
        let revision = self
            .commit(
                Some(actor),
                "api key",
                vec![Write::InsertKey(issued.key.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: issued,
            revision,
        })
    }

    pub async fn revoke_key(
        &self,
        actor: &Actor,
        account_id: Uuid,
        key_id: Uuid,
    ) -> Result<Written<()>> {
        let account = self.account_for_write(actor, account_id).await?;
        let audit = Audit {
            action: "api_key.revoke",
            target_type: "api_key",
            target_id: key_id,
            organization_id: Some(account.organization_id),
            details: json!({ "service_account_id": account_id }),
        };
        let revision = self
            .commit(
                Some(actor),
                "api key",
                vec![Write::RevokeKey {
                    account_id,
                    key_id,
                    at: self.now(),
                }],
                audit,
            )
            .await?;
        Ok(Written {
            value: (),
            revision,
        })
    }

    /// Issues a new key; the old ones stop working after `grace_seconds`
    /// (at once when 0). One commit: there is never a moment with no key.
    pub async fn rotate_key(
        &self,
        actor: &Actor,
        account_id: Uuid,
        grace_seconds: u64,
    ) -> Result<Written<(ServiceAccount, IssuedKey)>> {
        const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;
        if grace_seconds > MAX_GRACE_SECONDS {
            return Err(Error::invalid(
                "grace_period_seconds",
                format!("must be at most {MAX_GRACE_SECONDS} (30 days)"),
            ));
        }
        let account = self.account_for_write(actor, account_id).await?;
        let now = self.now();
        let issued = self.new_key(account_id, now);
        let retire = if grace_seconds == 0 {
            Write::RevokeAllKeys {
                account_id,
                at: now,
            }
        } else {
            // u64 → i64 is lossless below the 30-day cap.
            Write::ExpireAllKeys {
                account_id,
                at: now + i64::try_from(grace_seconds).unwrap_or(0) * 1000,
            }
        };
        let audit = Audit {
            action: "service_account.rotate_api_key",
            target_type: "service_account",
            target_id: account_id,
            organization_id: Some(account.organization_id),
            details: json!({ "grace_period_seconds": grace_seconds, "api_key_id": issued.key.id }),
        };
        let writes = vec![retire, Write::InsertKey(issued.key.clone())];
        let revision = self
            .commit(Some(actor), "service account", writes, audit)
            .await?;
        Ok(Written {
            value: (account, issued),
            revision,
        })
    }
}

fn closed() -> Error {
    Error::Conflict {
        code: "account_closed",
        param: None,
        message: "service account is closed".into(),
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
