//! Signing keys: the first one, and rotation (publish first, sign later,
//! retire the old ones once every token they signed has expired).

use std::time::Duration;

use serde_json::json;

use super::{from_store, Actor, Audit, Error, Manager, Result, Written};
use crate::jwt::signing;
use crate::store::{SigningKeyRecord, Write};

/// Old keys stay published this long past their last token's expiry: the
/// proxy's exp leeway plus clock skew between replicas.
const RETIRE_MARGIN_MS: i64 = 60_000;

/// Longest a caller may delay a new key's activation.
pub(crate) const MAX_ACTIVATION_DELAY_SECONDS: u64 = 7 * 24 * 3600;

impl Manager {
    pub async fn signing_keys(&self, actor: &Actor) -> Result<Vec<SigningKeyRecord>> {
        if !actor.admin {
            return Err(Error::Forbidden("signing keys are for platform admins"));
        }
        self.store
            .signing_keys(self.now())
            .await
            .map_err(|e| from_store(e, "signing key"))
    }

    /// Makes sure a key of `alg` signs: on a store without one, creates it,
    /// active at once (nothing can hold a token of a key that never existed).
    /// Keys of another algorithm retire after `max_ttl`.
    pub async fn ensure_signing_key(
        &self,
        alg: jsonwebtoken::Algorithm,
        max_ttl: Duration,
    ) -> Result<()> {
        let now = self.now();
        let existing = self
            .store
            .signing_keys(now)
            .await
            .map_err(|e| from_store(e, "signing key"))?;
        if existing
            .iter()
            .any(|k| k.algorithm == signing::algorithm_name(alg))
        {
            return Ok(());
        }
        // On an empty store nothing can hold a token yet: sign at once.
        // Switching algorithm: publish first, sign once relying parties'
        // JWKS caches (max-age 60 s) have seen the key.
        let activates_at = if existing.is_empty() {
            now
        } else {
            now + 120_000
        };
        let retire_others_at = activates_at
            + i64::try_from(max_ttl.as_millis()).unwrap_or(i64::MAX / 2)
            + RETIRE_MARGIN_MS;
        self.add_signing_key(
            None,
            alg,
            activates_at,
            retire_others_at,
            "signing_key.create",
        )
        .await?;
        Ok(())
    }

    /// Creates the next key, published now and signing from
    /// `now + activate_after`; every other key retires once the tokens it
    /// could still sign until then have expired (`+ max_ttl`).
    pub async fn rotate_signing_key(
        &self,
        actor: &Actor,
        alg: jsonwebtoken::Algorithm,
        activate_after: Duration,
        max_ttl: Duration,
    ) -> Result<Written<SigningKeyRecord>> {
        if !actor.admin {
            return Err(Error::Forbidden("signing keys are for platform admins"));
        }
        if activate_after.as_secs() > MAX_ACTIVATION_DELAY_SECONDS {
            return Err(Error::invalid(
                "activate_after_seconds",
                format!("must be at most {MAX_ACTIVATION_DELAY_SECONDS}"),
            ));
        }
        let now = self.now();
        let activates_at = now + i64::try_from(activate_after.as_millis()).unwrap_or(0);
        let retire_at = activates_at
            + i64::try_from(max_ttl.as_millis()).unwrap_or(i64::MAX / 4)
            + RETIRE_MARGIN_MS;
        self.add_signing_key(
            Some(actor),
            alg,
            activates_at,
            retire_at,
            "signing_key.rotate",
        )
        .await
    }

    async fn add_signing_key(
        &self,
        actor: Option<&Actor>,
        alg: jsonwebtoken::Algorithm,
        activates_at: i64,
        retire_others_at: i64,
        action: &'static str,
    ) -> Result<Written<SigningKeyRecord>> {
        let kid = uuid::Uuid::now_v7().simple().to_string();
        let (private_der, public_jwk) = signing::generate(alg, &kid).map_err(|e| {
            tracing::error!(error = %e, "signing key generation failed");
            Error::Internal
        })?;
        let record = SigningKeyRecord {
            kid: kid.clone(),
            algorithm: signing::algorithm_name(alg).into(),
            private_der,
            public_jwk,
            created_at: self.now(),
            activates_at,
            retires_at: None,
        };
        let audit = Audit {
            action,
            target_type: "signing_key",
            target_id: uuid::Uuid::nil(),
            organization_id: None,
            details: json!({ "kid": kid, "algorithm": record.algorithm, "activates_at": activates_at, "others_retire_at": retire_others_at }),
        };
        let writes = vec![
            Write::InsertSigningKey(record.clone()),
            Write::RetireSigningKeys {
                except: kid,
                at: retire_others_at,
            },
        ];
        let revision = self.commit(actor, "signing key", writes, audit).await?;
        Ok(Written {
            value: record,
            revision,
        })
    }
}
