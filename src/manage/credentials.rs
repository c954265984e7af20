//! OAuth client credentials of service accounts: several per account, the
//! secret shown once and stored as SHA-256 — or, for `private_key_jwt`, the
//! client's public JWK and no secret anybody holds.

use serde_json::{json, Value};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::keys::limits_audit;
use super::narrowing::{within_lifetime, LimitsInput, LimitsPatch};
use super::validate::{valid_description, valid_expiry, valid_name};
use super::{from_store, Actor, Audit, Cursor, Error, Listing, Manager, Result, Written};
use crate::store::{ClientCredential, ServiceAccount, Write};

#[derive(Debug, Default, Clone)]
pub struct NewCredential {
    pub name: Option<String>,
    pub description: Option<String>,
    pub expires_at: Option<String>,
    pub limits: LimitsInput,
    /// As [`super::NewKey::explicit_expiry`].
    pub explicit_expiry: bool,
    /// The client's public JWK: the credential authenticates with signed
    /// assertions (`private_key_jwt`) instead of a secret.
    pub public_jwk: Option<Value>,
}

#[derive(Debug, Default)]
pub struct CredentialPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub expires_at: Option<Option<String>>,
    pub limits: LimitsPatch,
    /// A new public JWK for a key credential (`None`: unchanged).
    pub public_jwk: Option<Value>,
}

/// A credential just made or re-keyed: the secret is shown once (`None`:
/// a key credential, which has no secret to show).
pub struct IssuedCredential {
    pub credential: ClientCredential,
    pub secret: Option<Zeroizing<String>>,
}

/// How a credential authenticates, as listings and audit details say it.
pub fn auth_method(c: &ClientCredential) -> &'static str {
    if c.public_jwk.is_some() {
        "private_key_jwt"
    } else {
        "client_secret"
    }
}

/// The largest `public_jwk` kept (an RSA-4096 JWK is under 1 KiB).
const MAX_JWK_BYTES: usize = 8 * 1024;

/// `v` as a credential's public key: a public RSA, P-256 or Ed25519 JWK for
/// an algorithm keygate accepts in assertions; refused whole, naming why.
fn valid_public_jwk(v: Value) -> Result<Value> {
    if v.to_string().len() > MAX_JWK_BYTES {
        return Err(Error::invalid("public_jwk", "is too large"));
    }
    crate::jwt::jwk::parse(&v, crate::jwt::jwk::CLIENT_ALGORITHMS)
        .map_err(|e| Error::invalid("public_jwk", e.to_string()))?;
    Ok(v)
}

/// The audit details of a credential's key: its method and the JWK's
/// `kid` (never other key material).
fn key_audit(c: &ClientCredential) -> Value {
    let kid = c
        .public_jwk
        .as_ref()
        .and_then(|j| j.get("kid"))
        .and_then(Value::as_str);
    json!({ "auth_method": auth_method(c), "kid": kid })
}

impl std::fmt::Debug for IssuedCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCredential")
            .field("credential", &self.credential)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// Live credentials of an account.
    pub async fn credentials(
        &self,
        actor: &Actor,
        account_id: Uuid,
    ) -> Result<Vec<ClientCredential>> {
        self.account(actor, account_id).await?;
        let all = self
            .store
            .credentials_of(account_id)
            .await
            .map_err(|e| from_store(e, "credential"))?;
        Ok(all.into_iter().filter(|c| c.deleted_at.is_none()).collect())
    }

    /// A page of an account's live credentials by id, from `cursor`
    /// either way; a cursor must name one of them. An account holds few
    /// credentials, so they are paged as read.
    pub async fn credential_page(
        &self,
        actor: &Actor,
        account_id: Uuid,
        cursor: Cursor,
        limit: Option<u32>,
    ) -> Result<Listing<ClientCredential>> {
        let size = (Self::page(cursor, limit)?.limit - 1) as usize;
        let mut all = self.credentials(actor, account_id).await?;
        all.sort_by_key(|c| c.id);
        let at = |id: Uuid, param: &'static str| {
            all.iter()
                .position(|c| c.id == id)
                .ok_or_else(|| Error::invalid(param, "names nothing in this list"))
        };
        let (start, end) = match cursor {
            Cursor::Start => (0, size.min(all.len())),
            Cursor::After(id) => {
                let a = at(id, "after")? + 1;
                (a, (a + size).min(all.len()))
            }
            Cursor::Before(id) => {
                let b = at(id, "before")?;
                (b.saturating_sub(size), b)
            }
        };
        let (has_more, has_prev) = (end < all.len(), start > 0);
        all.truncate(end);
        all.drain(..start);
        Ok(Listing {
            data: all,
            has_more,
            has_prev,
        })
    }

    pub async fn credential(
        &self,
        actor: &Actor,
        account_id: Uuid,
        id: Uuid,
    ) -> Result<ClientCredential> {
        self.credentials(actor, account_id)
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or(Error::NotFound("credential"))
    }

    pub async fn create_credential(
        &self,
        actor: &Actor,
        account_id: Uuid,
        new: NewCredential,
    ) -> Result<Written<IssuedCredential>> {
        let account = self.account_for_write(actor, account_id).await?;
        let IssuedCredential { credential, secret } = self
            .new_credential(actor, &account, self.now(), new)
            .await?;
        let audit = Audit {
            action: "credential.create",
            target_type: "credential",
            target_id: credential.id,
            organization_id: Some(account.organization_id),
            details: json!({
                "service_account_id": account_id,
                "client_id": credential.client_id,
                "name": credential.name,
                "limits": limits_audit(&credential.limits),
                "key": key_audit(&credential),
            }),
        };
        let revision = self
            .commit(
                Some(actor),
                "credential",
                vec![Write::InsertCredential(credential.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: IssuedCredential { credential, secret },
            revision,
        })
    }

    /// A fresh credential for `account`, validated (its narrowing, and
    /// its expiry against the organization's longest lifetime); not yet
    /// written.
    pub(super) async fn new_credential(
        &self,
        actor: &Actor,
        account: &ServiceAccount,
        now: i64,
        new: NewCredential,
    ) -> Result<IssuedCredential> {
        let account_id = account.id;
        let mut expires_at = valid_expiry(new.expires_at)?;
        if expires_at.is_some_and(|e| e <= now) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        let cap = self.lifetime_cap(account.organization_id).await?;
        if expires_at.is_none() && !new.explicit_expiry {
            expires_at = cap.map(|c| now.saturating_add(c));
        }
        within_lifetime(cap, expires_at, now)?;
        let limits = self.valid_limits(actor, account, new.limits).await?;
        let public_jwk = new.public_jwk.map(valid_public_jwk).transpose()?;
        // A key credential still has a secret hash: of random bytes that
        // are dropped here, so nobody ever holds the secret.
        let secret = self.format.generate_secret();
        let shown = public_jwk.is_none().then_some(secret.value);
        Ok(IssuedCredential {
            credential: ClientCredential {
                id: Uuid::now_v7(),
                client_id: self.format.generate_client_id(),
                service_account_id: account_id,
                name: valid_name("name", new.name.as_deref().unwrap_or("default"))?,
                description: valid_description(new.description)?,
                secret_hash: secret.hash,
                created_at: now,
                expires_at,
                deleted_at: None,
                last_used_at: None,
                tokens_not_before: None,
                limits,
                public_jwk,
            },
            secret: shown,
        })
    }

    pub async fn update_credential(
        &self,
        actor: &Actor,
        account_id: Uuid,
        id: Uuid,
        patch: CredentialPatch,
    ) -> Result<Written<ClientCredential>> {
        let account = self.account_for_write(actor, account_id).await?;
        let mut c = self.credential(actor, account_id, id).await?;
        if let Some(name) = patch.name {
            c.name = valid_name("name", &name)?;
        }
        if let Some(description) = patch.description {
            c.description = valid_description(description)?;
        }
        if let Some(expires_at) = patch.expires_at {
            c.expires_at = valid_expiry(expires_at)?;
            within_lifetime(
                self.lifetime_cap(account.organization_id).await?,
                c.expires_at,
                self.now(),
            )?;
        }
        c.limits = self
            .patched_limits(actor, &account, c.limits, patch.limits)
            .await?;
        let rekeyed = patch.public_jwk.is_some();
        if let Some(jwk) = patch.public_jwk {
            if c.public_jwk.is_none() {
                return Err(Error::invalid(
                    "public_jwk",
                    "this credential authenticates with a secret; create a new credential with a public_jwk",
                ));
            }
            c.public_jwk = Some(valid_public_jwk(jwk)?);
            // SECURITY: as regeneration does: tokens minted with assertions
            // of the old key die with it.
            c.tokens_not_before = Some(self.now());
        }
        let audit = Audit {
            action: "credential.update",
            target_type: "credential",
            target_id: id,
            organization_id: Some(account.organization_id),
            details: json!({
                "service_account_id": account_id,
                "name": c.name,
                "expires_at": c.expires_at,
                "limits": limits_audit(&c.limits),
                "key": key_audit(&c),
                "public_jwk_replaced": rekeyed,
            }),
        };
        let revision = self
            .commit(
                Some(actor),
                "credential",
                vec![Write::UpdateCredential(c.clone())],
                audit,
            )
            .await?;
        Ok(Written { value: c, revision })
    }

    /// A new secret for the credential; the old one stops working at once,
    /// and so do the tokens minted with it: regeneration is how a leaked
    /// secret is answered.
    pub async fn regenerate_secret(
        &self,
        actor: &Actor,
        account_id: Uuid,
        id: Uuid,
    ) -> Result<Written<IssuedCredential>> {
        let account = self.account_for_write(actor, account_id).await?;
        let mut c = self.credential(actor, account_id, id).await?;
        if c.public_jwk.is_some() {
            return Err(Error::invalid(
                "credential",
                "this credential authenticates with a private key (private_key_jwt) and has no secret to regenerate; replace its public_jwk instead",
            ));
        }
        let secret = self.format.generate_secret();
        c.secret_hash = secret.hash;
        // SECURITY: the credential's cut-off, as deletion sets one; tokens
        // minted after it (with the new secret) live.
        c.tokens_not_before = Some(self.now());
        let audit = Audit {
            action: "credential.regenerate_secret",
            target_type: "credential",
            target_id: id,
            organization_id: Some(account.organization_id),
            details: json!({ "client_id": c.client_id }),
        };
        let revision = self
            .commit(
                Some(actor),
                "credential",
                vec![Write::UpdateCredential(c.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: IssuedCredential {
                credential: c,
                secret: Some(secret.value),
            },
            revision,
        })
    }

    pub async fn delete_credential(
        &self,
        actor: &Actor,
        account_id: Uuid,
        id: Uuid,
    ) -> Result<Written<()>> {
        let account = self.account_for_write(actor, account_id).await?;
        let c = self.credential(actor, account_id, id).await?;
        let audit = Audit {
            action: "credential.delete",
            target_type: "credential",
            target_id: id,
            organization_id: Some(account.organization_id),
            details: json!({ "client_id": c.client_id }),
        };
        let revision = self
            .commit(
                Some(actor),
                "credential",
                vec![Write::DeleteCredential {
                    account_id,
                    id,
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
}
