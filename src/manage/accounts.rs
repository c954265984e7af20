//! Service accounts: create, change, close; who may touch which.

use serde_json::json;
use uuid::Uuid;

use super::narrowing::QuotaOn;
use super::validate::{valid_description, valid_expiry, valid_metadata, valid_name, valid_scopes};
use super::{
    from_store, Actor, Audit, Authority, Error, IssuedCredential, IssuedKey, Manager,
    NewCredential, NewKey, QuotaInput, QuotaPatch, Result, Written,
};
use crate::store::{Metadata, Role, ServiceAccount, Write};

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
    pub quota: Option<QuotaInput>,
    pub metadata: Metadata,
    /// An API key to issue with the account (its value is shown once).
    pub key: Option<NewKey>,
    /// A client credential to create with it (its secret is shown once).
    pub credential: Option<NewCredential>,
}

/// A new account, and what was issued with it.
#[derive(Debug)]
pub struct CreatedAccount {
    pub account: ServiceAccount,
    pub key: Option<IssuedKey>,
    pub credential: Option<IssuedCredential>,
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
    pub quota: QuotaPatch,
    /// Merged into the account's metadata; a `null` value removes its key.
    pub metadata: Option<Metadata>,
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
        actor.check_sees(
            account.organization_id,
            account.project_id,
            "service account",
        )?;
        Ok(account)
    }

    /// An account the actor may change — itself, its keys and its
    /// credentials. Every write goes through here, so the rules hold for
    /// all of them.
    ///
    /// SECURITY: accounts holding `keygate:` scopes are platform
    /// infrastructure; only platform admins may change them or their keys,
    /// or an org owner could mint itself an admin key. And a non-admin may
    /// act only on accounts whose scopes are a subset of its own (the rule
    /// that already bounds what it may grant): else an owner holding
    /// `orders:read` could issue itself a key for an account holding more.
    pub(super) async fn account_for_write(
        &self,
        actor: &Actor,
        id: Uuid,
    ) -> Result<ServiceAccount> {
        let account = self.account(actor, id).await?;
        write_permission(actor, &account)?;
        if account.closed_at.is_some() {
            return Err(closed());
        }
        Ok(account)
    }

    /// Whether `actor` may change `account` (which it can see): what an
    /// API that reports permissions tells its caller.
    pub fn may_change(&self, actor: &Actor, account: &ServiceAccount) -> bool {
        actor.require_manager().is_ok()
            && actor.sees(account.organization_id, account.project_id)
            && write_permission(actor, account).is_ok()
    }

    /// Whether `actor` may create accounts in `org` (outside any project).
    pub fn may_create_in(&self, actor: &Actor, org: Uuid) -> bool {
        actor.manages_org(org)
    }

    /// `updated_at` for a write replacing a row last written at `previous`:
    /// strictly later, so the optimistic guard never sees two writes alike.
    fn next_updated_at(&self, previous: i64) -> i64 {
        self.now().max(previous + 1)
    }

    pub async fn create_account(
        &self,
        actor: &Actor,
        new: NewAccount,
    ) -> Result<Written<CreatedAccount>> {
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
                return Err(Error::Archived);
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
            rate_limit: self.delegable_rate(actor, new.rate_limit).await?,
            created_by: Some(actor.account_id),
            created_at: now,
            updated_at: now,
            last_used_at: None,
            tokens_not_before: None,
            metadata: valid_metadata(new.metadata)?,
            quota: self
                .delegable_quota(actor, new.quota, QuotaOn::Account)
                .await?,
        };
        let mut writes = vec![Write::InsertAccount(account.clone())];
        let issued = match new.key {
            Some(k) => Some(self.new_key(actor, &account, now, k).await?),
            None => None,
        };
        if let Some(k) = &issued {
            writes.push(Write::InsertKey(k.key.clone()));
        }
        let credential = match new.credential {
            Some(c) => Some(self.new_credential(actor, &account, now, c).await?),
            None => None,
        };
        if let Some(c) = &credential {
            writes.push(Write::InsertCredential(c.credential.clone()));
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
                "quota": account.quota,
                "api_key_id": issued.as_ref().map(|k| k.key.id),
                "client_id": credential.as_ref().map(|c| c.credential.client_id.as_str()),
            }),
        };
        let revision = self
            .commit(Some(actor), "service account", writes, audit)
            .await?;
        Ok(Written {
            value: CreatedAccount {
                account,
                key: issued,
                credential,
            },
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
        let before = account.clone();
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
            account.rate_limit = self.delegable_rate(actor, rate_limit).await?;
            changed.insert("rate_limit".into(), json!(account.rate_limit));
        }
        if patch.quota.quota.is_some() || patch.quota.reset {
            account.quota = self
                .patched_quota(
                    actor,
                    account.quota,
                    patch.quota,
                    self.now(),
                    QuotaOn::Account,
                )
                .await?;
            changed.insert("quota".into(), json!(account.quota));
        }
        if let Some(metadata) = patch.metadata {
            let mut merged = account.metadata.clone();
            for (k, v) in metadata {
                if v.is_null() {
                    merged.remove(&k);
                } else {
                    merged.insert(k, v);
                }
            }
            account.metadata = valid_metadata(merged)?;
            changed.insert("metadata".into(), json!(account.metadata));
        }
        account.updated_at = self.next_updated_at(previous_updated_at);
        // SECURITY: disabling an account, or taking a scope from it, ends
        // the tokens it already holds — stored, so a restart or another
        // replica never revives them.
        let narrowed = before.scopes.iter().any(|s| !account.scopes.contains(s));
        if (before.enabled && !account.enabled) || narrowed {
            account.tokens_not_before = Some(account.updated_at);
            changed.insert("tokens_not_before".into(), json!(account.updated_at));
        }
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
        account.tokens_not_before = Some(now);
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
}

/// The write rules beyond visibility (see [`Manager::account_for_write`]).
fn write_permission(actor: &Actor, account: &ServiceAccount) -> Result<()> {
    if !actor.admin && account.scopes.iter().any(|s| s.starts_with("keygate:")) {
        return Err(Error::Forbidden(
            "only platform admins may change accounts that hold keygate: scopes",
        ));
    }
    if !actor.admin
        && !actor
            .scopes
            .covers(account.scopes.iter().map(String::as_str))
    {
        return Err(Error::Forbidden(
            "an owner may change only accounts whose scopes it holds itself",
        ));
    }
    Ok(())
}

pub(super) fn closed() -> Error {
    Error::Conflict {
        code: "account_closed",
        param: None,
        message: "service account is closed".into(),
    }
}
