//! API keys of service accounts: issue, list, revoke, rotate with grace.

use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::narrowing::{within_lifetime, LimitsInput, LimitsPatch};
use super::validate::{valid_expiry, valid_name};
use super::{from_store, Actor, Audit, Error, Manager, Result, Written};
use crate::store::{ApiKey, CredentialLimits, ServiceAccount, Write};

/// A key to issue: an optional name and expiry (RFC 3339), and what it
/// narrows of its account.
#[derive(Debug, Default, Clone)]
pub struct NewKey {
    pub name: Option<String>,
    pub expires_at: Option<String>,
    pub limits: LimitsInput,
    /// The caller's API has an expiry field: under an organization's
    /// longest lifetime it must be given. A key issued without one (with
    /// an account, by a dialect) gets the longest lifetime instead.
    pub explicit_expiry: bool,
}

/// A change of a key: its name and its narrowing.
#[derive(Debug, Default, Clone)]
pub struct KeyPatch {
    pub name: Option<Option<String>>,
    pub limits: LimitsPatch,
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

impl Manager {
    /// A fresh key for `account`, validated (its narrowing, and its expiry
    /// against the organization's longest lifetime); not yet written.
    pub(super) async fn new_key(
        &self,
        actor: &Actor,
        account: &ServiceAccount,
        now: i64,
        new: NewKey,
    ) -> Result<IssuedKey> {
        let limits = self.valid_limits(actor, account, new.limits).await?;
        let cap = self.lifetime_cap(account.organization_id).await?;
        let mut issued = self.fresh_key(account.id, now, new.name, new.expires_at, limits)?;
        if issued.key.expires_at.is_none() && !new.explicit_expiry {
            issued.key.expires_at = cap.map(|c| now.saturating_add(c));
        }
        within_lifetime(cap, issued.key.expires_at, now)?;
        Ok(issued)
    }

    fn fresh_key(
        &self,
        account_id: Uuid,
        now: i64,
        name: Option<String>,
        expires_at: Option<String>,
        limits: CredentialLimits,
    ) -> Result<IssuedKey> {
        let expires_at = valid_expiry(expires_at)?;
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let name = name.map(|n| valid_name("name", &n)).transpose()?;
        let g = self.format.generate_key();
        Ok(IssuedKey {
            key: ApiKey {
                id: Uuid::now_v7(),
                service_account_id: account_id,
                name,
                hash: g.hash,
                redacted: g.redacted,
                created_at: now,
                expires_at,
                revoked_at: None,
                last_used_at: None,
                limits,
            },
            value: g.value,
        })
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

    pub async fn issue_key(
        &self,
        actor: &Actor,
        account_id: Uuid,
        new: NewKey,
    ) -> Result<Written<IssuedKey>> {
        let account = self.account_for_write(actor, account_id).await?;
        let issued = self.new_key(actor, &account, self.now(), new).await?;
        let audit = Audit {
            action: "api_key.create",
            target_type: "api_key",
            target_id: issued.key.id,
            organization_id: Some(account.organization_id),
            details: json!({
                "service_account_id": account_id,
                "redacted_value": issued.key.redacted,
                "limits": limits_audit(&issued.key.limits),
            }),
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

    /// A live key of an account the actor may see.
    pub async fn key(&self, actor: &Actor, account_id: Uuid, key_id: Uuid) -> Result<ApiKey> {
        self.keys(actor, account_id)
            .await?
            .into_iter()
            .find(|k| k.id == key_id)
            .ok_or(Error::NotFound("api key"))
    }

    /// Renames a key, or changes what it narrows (scopes, addresses,
    /// quota; a quota reset starts its window afresh).
    pub async fn update_key(
        &self,
        actor: &Actor,
        account_id: Uuid,
        key_id: Uuid,
        patch: KeyPatch,
    ) -> Result<Written<ApiKey>> {
        let account = self.account_for_write(actor, account_id).await?;
        let mut key = self.key(actor, account_id, key_id).await?;
        if let Some(name) = patch.name {
            key.name = name.map(|n| valid_name("name", &n)).transpose()?;
        }
        key.limits = self
            .patched_limits(actor, &account, key.limits, patch.limits)
            .await?;
        let audit = Audit {
            action: "api_key.update",
            target_type: "api_key",
            target_id: key_id,
            organization_id: Some(account.organization_id),
            details: json!({
                "service_account_id": account_id,
                "name": key.name,
                "limits": limits_audit(&key.limits),
            }),
        };
        let revision = self
            .commit(
                Some(actor),
                "api key",
                vec![Write::UpdateKeyLimits(key.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: key,
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
        // Rotation takes no expiry: under a longest lifetime, the new key
        // gets exactly that one.
        let cap = self.lifetime_cap(account.organization_id).await?;
        let mut issued =
            self.fresh_key(account_id, now, None, None, CredentialLimits::default())?;
        issued.key.expires_at = cap.map(|c| now.saturating_add(c));
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

/// A key's or credential's narrowing as the audit log records it.
pub(super) fn limits_audit(l: &CredentialLimits) -> serde_json::Value {
    json!({
        "scopes": l.scopes,
        "allowed_cidrs": l.allowed_cidrs.as_ref().map(|c| c.iter().map(ToString::to_string).collect::<Vec<_>>()),
        "quota": l.quota,
    })
}
