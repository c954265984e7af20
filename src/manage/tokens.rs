//! Token revocation (RFC 7009): the `jti` is kept until the token would
//! have expired, and reaches every replica through the change feed.

use serde_json::json;
use uuid::Uuid;

use super::{Audit, Manager, Result, Written};
use crate::store::{RevokedToken, Write};

impl Manager {
    /// Revokes a token by `jti`. `by`: the revoking account (None: keygate).
    pub async fn revoke_token(
        &self,
        by: Option<Uuid>,
        jti: &str,
        expires_at_ms: i64,
        organization_id: Uuid,
    ) -> Result<Written<()>> {
        let audit = Audit {
            action: "token.revoke",
            target_type: "token",
            target_id: Uuid::parse_str(jti).unwrap_or_default(),
            organization_id: Some(organization_id),
            details: json!({ "jti": jti, "by": by }),
        };
        let actor = by.map(|id| super::Actor {
            account_id: id,
            organization_id,
            project_id: None,
            role: crate::store::Role::Member,
            admin: false,
            scopes: std::sync::Arc::new(crate::cache::ScopeSet::empty()),
        });
        let revision = self
            .commit(
                actor.as_ref(),
                "token",
                vec![Write::RevokeToken(RevokedToken {
                    jti: jti.to_string(),
                    expires_at: expires_at_ms,
                })],
                audit,
            )
            .await?;
        Ok(Written {
            value: (),
            revision,
        })
    }
}
