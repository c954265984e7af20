//! Verified JWTs, kept: a token is verified once (signature and claims, by
//! [`crate::jwt::Verifier`]) and then kept, keyed by the exact token string,
//! until it expires — clients reuse a token for its whole lifetime. Only
//! verified tokens are ever inserted, so a fast seeded hash (not a
//! cryptographic one) is enough for the key; a hit compares the whole
//! token. What can change meanwhile (account disabled or closed, `jti`
//! revoked) is checked on every request by the authenticator.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use uuid::Uuid;

use super::principal::{AccountFacts, CredentialKind, Principal};
use crate::jwt::verify::{self, LEEWAY_SECONDS};
use crate::jwt::{AccessClaims, Verifier};
use crate::scope::ScopeSet;
use crate::store::Role;

/// Verified tokens kept at most (each ≤ 4 KiB of token plus its claims);
/// past it, new tokens are verified every time until a sweep frees room.
const MAX_VERIFIED: usize = 100_000;

/// A token verified once: what every later request needs from it.
#[derive(Debug)]
pub struct VerifiedToken {
    pub principal: Arc<Principal>,
    pub claims: AccessClaims,
    /// `exp` / `nbf` in unix ms, leeway applied.
    pub(crate) expires_ms: i64,
    pub(crate) not_before_ms: i64,
    /// When it was minted (unix ms), for cut-offs.
    pub(crate) minted_ms: i64,
}

impl VerifiedToken {
    /// Within its time window at `now_ms` (leeway applied).
    pub(crate) fn in_window(&self, now_ms: i64) -> bool {
        now_ms < self.expires_ms && now_ms >= self.not_before_ms
    }
}

pub(crate) struct VerifiedTokens {
    verifier: Verifier,
    /// Where a token's credential is found (whose quota it spends).
    cache: Arc<super::Cache>,
    verified: DashMap<Box<str>, Arc<VerifiedToken>, foldhash::fast::RandomState>,
    /// When the map was last swept because it was full (unix ms): at most
    /// once a second, so a flood of new tokens cannot make every request sweep.
    last_full_sweep: AtomicI64,
}

impl VerifiedTokens {
    pub(crate) fn new(verifier: Verifier, cache: Arc<super::Cache>) -> Self {
        Self {
            verifier,
            cache,
            verified: DashMap::with_hasher(foldhash::fast::RandomState::default()),
            last_full_sweep: AtomicI64::new(0),
        }
    }

    pub(crate) fn issuer(&self) -> &str {
        self.verifier.issuer()
    }

    /// A verified token, from the map or by verifying it now.
    pub(crate) fn verify(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<Arc<VerifiedToken>, verify::Error> {
        if token.len() > verify::MAX_TOKEN_LEN {
            return Err(verify::Error::Malformed);
        }
        if let Some(v) = self.verified.get(token).map(|e| Arc::clone(e.value())) {
            return Ok(v);
        }
        let v = Arc::new(self.verify_uncached(token, now_ms)?);
        if self.verified.len() >= MAX_VERIFIED {
            let last = self.last_full_sweep.load(Ordering::Relaxed);
            if now_ms - last >= 1000
                && self
                    .last_full_sweep
                    .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            {
                self.sweep(now_ms);
            }
        }
        if self.verified.len() < MAX_VERIFIED {
            self.verified.insert(token.into(), Arc::clone(&v));
        }
        Ok(v)
    }

    /// Full verification, bypassing the map (what a token costs the first
    /// time it is seen).
    pub(crate) fn verify_uncached(
        &self,
        token: &str,
        now_ms: i64,
    ) -> Result<VerifiedToken, verify::Error> {
        let claims = self.verifier.verify(token, now_ms)?;
        let parse = |s: &str| Uuid::parse_str(s).map_err(|_| verify::Error::Invalid);
        let principal = Principal::new(AccountFacts {
            credential_id: parse(&claims.jti)?,
            key_hash: None,
            kind: CredentialKind::Jwt,
            account_id: parse(&claims.sub)?,
            organization_id: parse(&claims.org_id)?,
            project_id: claims.project_id.as_deref().map(parse).transpose()?,
            // The role the account had when the token was minted (roles
            // never change).
            role: if claims.roles.iter().any(|r| r == "owner") {
                Role::Owner
            } else {
                Role::Member
            },
            // Not interned: token scope strings come from callers, and the
            // intern table is never pruned.
            scopes: Arc::new(ScopeSet::from_joined(&claims.scope)),
            account_expires_at: None,
            credential_expires_at: Some(claims.exp.saturating_mul(1000)),
            rate_limit: None,
            // An API key's id, or a client credential's client id.
            source: Uuid::parse_str(&claims.client_id)
                .ok()
                .or_else(|| {
                    self.cache
                        .client(&claims.client_id)
                        .map(|c| c.principal.credential_id)
                })
                .unwrap_or_default(),
            allowed_cidrs: if claims.allowed_cidrs.is_empty() {
                None
            } else {
                // A token we signed with CIDRs we cannot read is refused,
                // never taken as "any address".
                let nets = claims
                    .allowed_cidrs
                    .iter()
                    .map(|c| c.parse::<ipnet::IpNet>())
                    .collect::<Result<Arc<[_]>, _>>()
                    .map_err(|_| verify::Error::Invalid)?;
                Some(nets)
            },
        });
        Ok(VerifiedToken {
            minted_ms: crate::jwt::mint::minted_at_ms(&claims),
            principal: Arc::new(principal),
            expires_ms: (claims.exp + LEEWAY_SECONDS).saturating_mul(1000),
            not_before_ms: (claims.nbf - LEEWAY_SECONDS).saturating_mul(1000),
            claims,
        })
    }

    /// Drops expired entries.
    pub(crate) fn sweep(&self, now_ms: i64) {
        self.verified.retain(|_, v| v.expires_ms > now_ms);
    }
}
