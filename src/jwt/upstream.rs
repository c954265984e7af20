//! Tokens keygate mints for upstreams (`forward_auth = "jwt"`): one per
//! credential and route, with `aud` = the route's audience and only the
//! scopes the route names, reused until 80% of its lifetime or until the
//! caller's scopes or expiry change.

use std::sync::Arc;

use dashmap::DashMap;
use uuid::Uuid;

use super::mint::{self, Grant, Minter, Subject};
use crate::clock::SharedClock;
use crate::scope::ScopeSet;

/// Whom a token is for, and where it goes.
pub struct For<'a> {
    pub credential_id: Uuid,
    pub account_id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub role: crate::store::Role,
    pub scopes: &'a Arc<ScopeSet>,
    /// Unix ms after which the credential stops working.
    pub expires_at: i64,
    /// The route's position in the config.
    pub route: usize,
    pub audience: &'a str,
    /// Every scope the route names; the token carries only those of them the
    /// caller holds (all it holds when the route names none).
    pub route_scopes: &'a [String],
    /// The credential's `allowed_cidrs`: the token is bound to them too.
    pub allowed_cidrs: Option<&'a [ipnet::IpNet]>,
}

struct Entry<V> {
    value: V,
    refresh_at: i64,
    scopes: Arc<ScopeSet>,
    expires_at: i64,
}

/// Minted tokens as `V` (what the caller sends: a header value).
pub struct UpstreamTokens<V> {
    minter: Arc<Minter>,
    clock: SharedClock,
    tokens: DashMap<(Uuid, usize), Arc<Entry<V>>>,
}

impl<V: Clone> UpstreamTokens<V> {
    pub fn new(minter: Arc<Minter>, clock: SharedClock) -> Self {
        Self {
            minter,
            clock,
            tokens: DashMap::new(),
        }
    }

    /// The token for `f`, reused while still fresh, else minted and turned
    /// into `V` by `wrap` (given the compact JWT).
    pub fn get(&self, f: &For<'_>, wrap: impl FnOnce(&str) -> Option<V>) -> Result<V, mint::Error> {
        let now = self.clock.now_ms();
        let key = (f.credential_id, f.route);
        if let Some(t) = self.tokens.get(&key).map(|e| Arc::clone(e.value())) {
            // Reused only while the principal is unchanged: narrowed scopes or
            // an earlier expiry make a new token at once.
            if now < t.refresh_at
                && Arc::ptr_eq(&t.scopes, f.scopes)
                && t.expires_at == f.expires_at
            {
                return Ok(t.value.clone());
            }
        }
        // Only the scopes this route asks for, so the token is worth no more
        // to the upstream (or its logs) than this route's access.
        let scope = f
            .scopes
            .iter()
            .filter(|s| f.route_scopes.is_empty() || f.route_scopes.iter().any(|r| r == s))
            .collect::<Vec<_>>()
            .join(" ");
        let client_id = f.credential_id.to_string();
        let subject = Subject {
            account_id: f.account_id,
            organization_id: f.organization_id,
            project_id: f.project_id,
            client_id: &client_id,
            scope: &scope,
            expires_at: f.expires_at,
            role: f.role,
            allowed_cidrs: f.allowed_cidrs,
            act: None,
        };
        let minted = self
            .minter
            .mint(Grant::Upstream, &subject, Some(f.audience), None)?;
        let value = wrap(&minted.token).ok_or(mint::Error::Sign)?;
        let refresh_at = now + i64::try_from(minted.expires_in).unwrap_or(0) * 800;
        self.tokens.insert(
            key,
            Arc::new(Entry {
                value: value.clone(),
                refresh_at,
                scopes: Arc::clone(f.scopes),
                expires_at: f.expires_at,
            }),
        );
        Ok(value)
    }

    /// Drops tokens past their reuse window; call periodically.
    pub fn sweep(&self) {
        let now = self.clock.now_ms();
        self.tokens.retain(|_, t| t.refresh_at > now);
    }
}
