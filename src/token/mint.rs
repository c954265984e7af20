//! Minting RFC 9068 JWT access tokens.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::KeyRing;
use crate::clock::SharedClock;

/// RFC 9068 §2.2 claims, plus keygate's `org_id` / `project_id`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub iss: String,
    /// The service account id.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated.
    pub scope: String,
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
}

/// Who a token is for and what it carries.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    pub account_id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    /// `client_id` claim: the credential's client id, or the API key's id.
    pub client_id: &'a str,
    /// Space-separated scopes granted.
    pub scope: &'a str,
    /// Unix ms after which the credential stops working; tokens never outlive it.
    pub expires_at: i64,
}

#[derive(Debug)]
pub struct Minted {
    pub token: String,
    pub expires_in: u64,
    pub claims: AccessClaims,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no signing key is active")]
    NoKey,
    #[error("signing failed")]
    Sign,
}

pub struct Minter {
    ring: Arc<KeyRing>,
    issuer: String,
    ttl: Duration,
    max_ttl: Duration,
    clock: SharedClock,
}

impl Minter {
    pub fn new(
        ring: Arc<KeyRing>,
        issuer: String,
        ttl: Duration,
        max_ttl: Duration,
        clock: SharedClock,
    ) -> Self {
        Self {
            ring,
            issuer,
            ttl,
            max_ttl,
            clock,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// Mints a token for `subject` with `audience` (default: the issuer) and
    /// lifetime `ttl` (default `tokens.ttl`, capped at `tokens.max_ttl` and at
    /// the credential's own expiry).
    pub fn mint(
        &self,
        subject: &Subject<'_>,
        audience: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<Minted, Error> {
        let now_ms = self.clock.now_ms();
        let key = self.ring.signer(now_ms).ok_or(Error::NoKey)?;
        let now = now_ms / 1000;
        let ttl = ttl.unwrap_or(self.ttl).min(self.max_ttl).as_secs() as i64;
        let exp = (now + ttl).min(subject.expires_at / 1000).max(now + 1);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: subject.account_id.to_string(),
            aud: audience.unwrap_or(&self.issuer).to_string(),
            exp,
            iat: now,
            nbf: now,
            jti: Uuid::now_v7().to_string(),
            client_id: subject.client_id.to_string(),
            scope: subject.scope.to_string(),
            org_id: subject.organization_id.to_string(),
            project_id: subject.project_id.map(|p| p.to_string()),
        };
        let token =
            jsonwebtoken::encode(&key.header, &claims, &key.encoding).map_err(|_| Error::Sign)?;
        Ok(Minted {
            token,
            expires_in: (exp - now).max(0) as u64,
            claims,
        })
    }
}
