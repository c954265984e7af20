//! First start: make sure the store has a platform admin.

use serde_json::json;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{from_store, Audit, Error, Manager, Result};
use crate::config::Secret;
use crate::secret::KeyHash;
use crate::store::{ApiKey, Organization, Role, ServiceAccount, Write, ADMIN_SCOPE};

const PLATFORM_ORG: &str = "platform";

impl Manager {
    /// On a store with no open admin account, creates the `platform`
    /// organization (if missing) and a `platform-admin` account holding
    /// `keygate:admin`. Its key is `admin_key` when given, else generated and
    /// returned so the caller can print it once.
    pub async fn bootstrap(&self, admin_key: Option<&Secret>) -> Result<Option<Zeroizing<String>>> {
        if self
            .store
            .has_admin()
            .await
            .map_err(|e| from_store(e, "service account"))?
        {
            return Ok(None);
        }
        let now = self.now();
        let existing = self
            .store
            .organizations(None, crate::store::Keyset::after(None, u32::MAX))
            .await
            .map_err(|e| from_store(e, "organization"))?
            .into_iter()
            .find(|o| o.name == PLATFORM_ORG);
        let mut writes = Vec::new();
        let org_id = match existing {
            Some(o) => o.id,
            None => {
                let org = Organization {
                    id: Uuid::now_v7(),
                    name: PLATFORM_ORG.into(),
                    abbreviation: None,
                    max_credential_lifetime: None,
                    created_at: now,
                    updated_at: now,
                };
                writes.push(Write::InsertOrganization(org.clone()));
                org.id
            }
        };
        let account = ServiceAccount {
            id: Uuid::now_v7(),
            organization_id: org_id,
            project_id: None,
            name: "platform-admin".into(),
            description: Some("created by keygate at first start".into()),
            role: Role::Owner,
            scopes: vec![ADMIN_SCOPE.into()],
            enabled: true,
            expires_at: None,
            closed_at: None,
            rate_limit: None,
            created_by: None,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            tokens_not_before: None,
            metadata: Default::default(),
            quota: None,
        };
        let (value, hash, redacted, generated) = match admin_key {
            Some(k) => (
                Zeroizing::new(k.expose().to_string()),
                KeyHash::of(k.expose()),
                // A chosen key may be guessable from fragments: show none of it.
                "(KEYGATE_ADMIN_KEY)".to_string(),
                false,
            ),
            None => {
                let g = self.format.generate_key();
                (g.value, g.hash, g.redacted, true)
            }
        };
        let api_key = ApiKey {
            id: Uuid::now_v7(),
            service_account_id: account.id,
            name: None,
            hash,
            redacted,
            created_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            limits: Default::default(),
        };
        writes.push(Write::InsertAccount(account.clone()));
        writes.push(Write::InsertKey(api_key));
        let audit = Audit {
            action: "service_account.bootstrap",
            target_type: "service_account",
            target_id: account.id,
            organization_id: Some(org_id),
            details: json!({ "name": account.name, "from_env": !generated }),
        };
        match self.commit(None, "service account", writes, audit).await {
            Ok(_) => Ok(generated.then_some(value)),
            Err(Error::Conflict { .. }) => Ok(None), // another replica won the race
            Err(e) => Err(e),
        }
    }
}
