//! Federated identities: bindings of identities keygate did not issue (a
//! trusted issuer's subject, a TLS client certificate's SPIFFE id) to a
//! service account. Creating one needs what creating a key needs (the
//! right to manage the account); a binding is never edited, only deleted
//! and made again, so the audit log says exactly what was trusted when.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use super::{from_store, Actor, Audit, Error, Manager, Result, Written};
use crate::config::X509_ISSUER;
use crate::store::{FederatedIdentity, Write};

/// Claims a binding may not condition on: the ones verification itself
/// decides (a binding naming `aud` would read as if it narrowed the
/// audience, which the issuer's config does), and `sub` (that is `subject`).
const RESERVED_CLAIMS: &[&str] = &["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];
const MAX_CLAIMS: usize = 16;
const MAX_TEXT: usize = 512;

#[derive(Debug, Default, Clone)]
pub struct NewBinding {
    pub issuer: String,
    pub subject: String,
    pub claims: BTreeMap<String, String>,
}

impl Manager {
    /// The names a binding may use as `issuer`: the trusted issuers, and
    /// `x509` for client certificates.
    pub fn set_trusted_issuers(&mut self, names: Vec<String>) {
        self.trusted_issuers = names;
    }

    /// Live bindings of an account.
    pub async fn federated_identities(
        &self,
        actor: &Actor,
        account_id: Uuid,
    ) -> Result<Vec<FederatedIdentity>> {
        self.account(actor, account_id).await?;
        self.store
            .federated_identities_of(account_id)
            .await
            .map_err(|e| from_store(e, "federated identity"))
    }

    pub async fn federated_identity(
        &self,
        actor: &Actor,
        account_id: Uuid,
        id: Uuid,
    ) -> Result<FederatedIdentity> {
        self.federated_identities(actor, account_id)
            .await?
            .into_iter()
            .find(|f| f.id == id)
            .ok_or(Error::NotFound("federated identity"))
    }

    pub async fn create_federated_identity(
        &self,
        actor: &Actor,
        account_id: Uuid,
        new: NewBinding,
    ) -> Result<Written<FederatedIdentity>> {
        let account = self.account_for_write(actor, account_id).await?;
        self.valid_binding(&new)?;
        let existing = self.federated_identities(actor, account_id).await?;
        if existing
            .iter()
            .any(|f| f.issuer == new.issuer && f.subject == new.subject && f.claims == new.claims)
        {
            return Err(Error::Conflict {
                code: "duplicate_binding",
                param: Some("subject"),
                message: "this account already has a binding for this issuer, subject and claims"
                    .into(),
            });
        }
        let binding = FederatedIdentity {
            id: Uuid::now_v7(),
            service_account_id: account_id,
            issuer: new.issuer,
            subject: new.subject,
            claims: new.claims,
            created_by: Some(actor.account_id),
            created_at: self.now(),
            deleted_at: None,
        };
        let audit = Audit {
            action: "federated_identity.create",
            target_type: "federated_identity",
            target_id: binding.id,
            organization_id: Some(account.organization_id),
            details: json!({
                "service_account_id": account_id,
                "issuer": binding.issuer,
                "subject": binding.subject,
                "claims": binding.claims,
            }),
        };
        let revision = self
            .commit(
                Some(actor),
                "federated identity",
                vec![Write::InsertFederatedIdentity(binding.clone())],
                audit,
            )
            .await?;
        Ok(Written {
            value: binding,
            revision,
        })
    }

    pub async fn delete_federated_identity(
        &self,
        actor: &Actor,
        account_id: Uuid,
        id: Uuid,
    ) -> Result<Written<()>> {
        let account = self.account_for_write(actor, account_id).await?;
        let binding = self.federated_identity(actor, account_id, id).await?;
        let audit = Audit {
            action: "federated_identity.delete",
            target_type: "federated_identity",
            target_id: id,
            organization_id: Some(account.organization_id),
            details: json!({
                "service_account_id": account_id,
                "issuer": binding.issuer,
                "subject": binding.subject,
            }),
        };
        let revision = self
            .commit(
                Some(actor),
                "federated identity",
                vec![Write::DeleteFederatedIdentity {
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

    fn valid_binding(&self, b: &NewBinding) -> Result<()> {
        if b.issuer != X509_ISSUER && !self.trusted_issuers.contains(&b.issuer) {
            let mut known: Vec<&str> = self.trusted_issuers.iter().map(String::as_str).collect();
            known.push(X509_ISSUER);
            return Err(Error::invalid(
                "issuer",
                format!(
                    "{:?} is not a trusted issuer of this keygate; one of: {}",
                    b.issuer,
                    known.join(", ")
                ),
            ));
        }
        if b.subject.is_empty()
            || b.subject.len() > MAX_TEXT
            || b.subject.chars().any(char::is_control)
        {
            return Err(Error::invalid(
                "subject",
                format!(
                    "must be the exact sub, 1–{MAX_TEXT} characters without control characters"
                ),
            ));
        }
        if b.issuer == X509_ISSUER {
            if !b.subject.starts_with("spiffe://") {
                return Err(Error::invalid(
                    "subject",
                    "an x509 binding's subject is a SPIFFE id (spiffe://trust-domain/path)",
                ));
            }
            if !b.claims.is_empty() {
                return Err(Error::invalid(
                    "claims",
                    "an x509 binding has no claims to compare",
                ));
            }
        }
        if b.claims.len() > MAX_CLAIMS {
            return Err(Error::invalid(
                "claims",
                format!("at most {MAX_CLAIMS} claims"),
            ));
        }
        for (name, value) in &b.claims {
            if RESERVED_CLAIMS.contains(&name.as_str()) {
                return Err(Error::invalid(
                    "claims",
                    format!(
                        "{name:?} is decided by verification (iss, aud, exp…) or by subject; \
                         name other claims"
                    ),
                ));
            }
            if name.is_empty() || name.len() > 128 || value.len() > MAX_TEXT {
                return Err(Error::invalid(
                    "claims",
                    format!("claim names are 1–128 characters, values at most {MAX_TEXT}"),
                ));
            }
        }
        Ok(())
    }
}
