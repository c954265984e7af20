//! API keys of service accounts: issue, list, revoke, rotate with grace.

use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::validate::{valid_expiry, valid_name};
use super::{from_store, Actor, Audit, Error, Manager, Result, Written};
use crate::store::{ApiKey, ServiceAccount, Write};

/// A key to issue: an optional name and expiry (RFC 3339).
#[derive(Debug, Default, Clone)]
pub struct NewKey {
    pub name: Option<String>,
    pub expires_at: Option<String>,
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
    /// A fresh key for `account_id`, validated; not yet written.
    pub(super) fn new_key(&self, account_id: Uuid, now: i64, new: NewKey) -> Result<IssuedKey> {
        let expires_at = valid_expiry(new.expires_at)?;
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let name = new.name.map(|n| valid_name("name", &n)).transpose()?;
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
        let issued = self.new_key(account_id, self.now(), new)?;
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
        let issued = self.new_key(account_id, now, NewKey::default())?;
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
