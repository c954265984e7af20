//! Token revocation (RFC 7009): the `jti` is kept until the token would
//! have expired, and reaches every replica through the change feed.

use serde_json::json;
use uuid::Uuid;

use super::{Actor, Audit, Manager, Result, Written};
use crate::store::{RevokedToken, Write};

impl Manager {
    /// Revokes a token by `jti`, on behalf of `by` (who authenticated at the
    /// revocation endpoint; whether it may is the endpoint's rule).
    pub async fn revoke_token(
        &self,
        by: &Actor,
        jti: &str,
        expires_at_ms: i64,
        organization_id: Uuid,
    ) -> Result<Written<()>> {
        let audit = Audit {
            action: "token.revoke",
            target_type: "token",
            target_id: Uuid::parse_str(jti).unwrap_or_default(),
            organization_id: Some(organization_id),
            details: json!({ "jti": jti, "by": by.account_id }),
        };
        let revision = self
            .commit(
                Some(by),
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
