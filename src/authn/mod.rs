//! Who is calling: the one place keygate decides it, for every listener.
//!
//! [`Authenticator`] turns what a caller presented — an API key, a keygate
//! JWT, an OAuth client credential, the admin key — into a [`Principal`], or
//! a [`Refusal`]. Around every decision it applies the same rules: fail
//! closed when the cache is stale, and charge failures to the client's
//! address ([`budget`]), never to the credential they name. The proxy, the
//! OAuth endpoints and the admin API call it and nothing else.
//!
//! Owns the principal type, credential extraction from headers
//! ([`presented`]), the in-memory [`cache`] of live credentials (kept
//! current by `replicate`), verified JWTs ([`tokens`]) and `last_used_at`
//! bookkeeping ([`usage`]). Knows nothing of HTTP responses.

mod budget;
pub mod cache;
pub mod federation;
pub mod presented;
mod principal;
mod tokens;
pub mod usage;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::sync::Arc;

use subtle::ConstantTimeEq;
use uuid::Uuid;

pub use cache::Cache;
pub use federation::{Federation, IssuerSet};
pub use principal::{CredentialKind, Identity, Principal, Profile};
pub use tokens::VerifiedToken;
pub use usage::UsageQueue;

use self::budget::FailedAuthBudget;
use self::tokens::VerifiedTokens;
use crate::clock::SharedClock;
use crate::config::RateSpec;
use crate::jwt::verify::looks_like_jwt;
use crate::jwt::Verifier;
use crate::secret::{ApiKeyFormat, KeyHash};
use crate::telemetry::metrics::{Metrics, FAILED_AUTH_REFUSALS};

/// Why a caller was not authenticated. Deliberately coarse: the client is
/// told only "invalid", and logs must not help an attacker probe keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credential was presented.
    Missing,
    /// A credential was presented and is not valid (never says why).
    Invalid,
    /// The cache has not heard from the store for longer than
    /// `max_staleness`: revocations may be unknown, so fail closed.
    Stale,
    /// A failed attempt from an address over its failed-attempt budget;
    /// seconds to wait.
    Throttled(u64),
    /// Several credentials presented (several `Authorization` headers, or a
    /// key in both `Authorization` and `X-API-Key`): refused, never guessed.
    Ambiguous,
}

/// Which bearer credentials a listener accepts.
#[derive(Debug, Clone, Copy)]
pub enum Accept<'a> {
    /// A proxied route: API keys, and keygate JWTs whose `aud` is the
    /// route's audience (or, for a route without one, keygate's issuer).
    /// Routes with `accept_issuers` also take those issuers' JWTs that
    /// match a federated identity.
    Route {
        audience: Option<&'a str>,
        issuers: IssuerSet,
    },
    /// The admin listener: API keys, in keygate's format or not (a custom
    /// `KEYGATE_ADMIN_KEY` may be any 32+ character string), and keygate
    /// JWTs for keygate itself (`aud` = the issuer).
    Admin,
}

/// An identity from another issuer, matched to its binding.
pub struct Federated {
    /// The principal of the bound account (`credential_id`: the binding).
    pub principal: Arc<Principal>,
    pub external: Arc<federation::VerifiedExternal>,
}

/// Why an external token bought nothing at the token endpoint.
#[derive(Debug)]
pub enum FederatedRefusal {
    /// As for any credential: stale cache, throttled address.
    Refused(Refusal),
    /// The token itself did not verify.
    Token(federation::Error),
    /// It verified, and no federated identity matches it.
    Unbound,
    /// Bindings of several accounts match, and none was chosen.
    Ambiguous,
}

/// A token as introspection describes it (RFC 7662).
pub enum Inspected {
    Jwt(Arc<VerifiedToken>),
    ApiKey(Arc<Principal>),
}

pub struct Authenticator {
    cache: Arc<Cache>,
    tokens: VerifiedTokens,
    federation: Arc<Federation>,
    budget: FailedAuthBudget,
    usage: Arc<UsageQueue>,
    format: ApiKeyFormat,
    clock: SharedClock,
    /// How long a token may outlive the credential it was minted from, at
    /// most: `tokens.max_ttl` plus leeway.
    token_horizon_ms: i64,
    /// `keygate_failed_auth_refusals_total`.
    throttled: metrics::Counter,
}

impl Authenticator {
    pub fn new(
        cache: Arc<Cache>,
        verifier: Verifier,
        failed_auth: RateSpec,
        format: ApiKeyFormat,
        clock: SharedClock,
    ) -> Self {
        Self {
            tokens: VerifiedTokens::new(verifier, Arc::clone(&cache)),
            federation: Arc::new(Federation::none()),
            cache,
            budget: FailedAuthBudget::new(failed_auth),
            usage: Arc::new(UsageQueue::default()),
            format,
            clock,
            token_horizon_ms: 7 * 24 * 3600 * 1000,
            throttled: metrics::Counter::noop(),
        }
    }

    /// Trusts the issuers of `federation`.
    pub fn with_federation(mut self, federation: Arc<Federation>) -> Self {
        self.federation = federation;
        self
    }

    pub fn federation(&self) -> &Arc<Federation> {
        &self.federation
    }

    /// Counts refusals of addresses over their failed-attempt budget.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.throttled = metrics.counter(FAILED_AUTH_REFUSALS, &[]);
        self
    }

    /// Sets the longest a token lives (`tokens.max_ttl`): what was
    /// remembered of a stopped credential for longer is forgotten.
    pub fn with_token_lifetime(mut self, max_ttl: std::time::Duration) -> Self {
        let ms = i64::try_from(max_ttl.as_millis()).unwrap_or(i64::MAX / 4);
        self.token_horizon_ms = ms + crate::jwt::verify::LEEWAY_SECONDS * 1000 + 60_000;
        self
    }

    /// Whether a token id has been revoked (RFC 7009).
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.cache.is_revoked(jti)
    }

    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Uses queued for `last_used_at`, drained by replication.
    pub fn usage(&self) -> &Arc<UsageQueue> {
        &self.usage
    }

    /// What every decision starts with: the time, and a cache fresh enough
    /// to know of every revocation. SECURITY: past `max_staleness`, fail
    /// closed.
    fn fresh(&self) -> Result<i64, Refusal> {
        let now = self.clock.now_ms();
        if self.cache.freshness().is_stale(now) {
            return Err(Refusal::Stale);
        }
        Ok(now)
    }

    /// A failed attempt from `peer`: an address already over its budget is
    /// told to wait; otherwise the failure is charged.
    fn fail(&self, peer: IpAddr) -> Refusal {
        let peer = crate::addr::address_bucket(peer);
        let wait = match self.budget.blocked(peer) {
            Some(wait) => wait,
            None => match self.budget.record_failure(peer) {
                Some(wait) => wait,
                None => return Refusal::Invalid,
            },
        };
        self.throttled.increment(1);
        Refusal::Throttled(wait)
    }

    /// A presentation that could not even be parsed (a garbled `Basic`
    /// header): a failure like any other.
    pub fn malformed(&self, peer: IpAddr) -> Refusal {
        self.fail(peer)
    }

    /// A bearer credential taken from the headers by [`presented::extract`]:
    /// an API key or a keygate JWT, as `accept` allows.
    pub fn bearer(
        &self,
        peer: IpAddr,
        presented: Result<&str, presented::Error>,
        accept: Accept<'_>,
    ) -> Result<Arc<Principal>, Refusal> {
        let now = self.fresh()?;
        let secret = match presented {
            Ok(s) => s,
            Err(presented::Error::Missing) => return Err(Refusal::Missing),
            Err(presented::Error::Ambiguous) => return Err(Refusal::Ambiguous),
            Err(presented::Error::Malformed) => return Err(self.fail(peer)),
        };
        self.lookup(secret, accept, now)
            .ok_or_else(|| self.fail(peer))
    }

    /// Whether a bearer credential accepted earlier still is, for a
    /// connection that outlives its request (a WebSocket): the account
    /// enabled, the key or token not revoked, the cache fresh. Nothing is
    /// charged to anyone: the credential was good when presented.
    pub fn recheck(&self, secret: &str, accept: Accept<'_>) -> Result<Arc<Principal>, Refusal> {
        let now = self.fresh()?;
        self.lookup(secret, accept, now).ok_or(Refusal::Invalid)
    }

    /// Whether the API key behind a console session (kept only as its
    /// SHA-256) is still live: not revoked, its account open, the cache
    /// fresh. Asked on every console request, so a revocation ends the
    /// session at once. Nothing is charged: the key was good at sign-in.
    pub fn session(&self, key: &KeyHash) -> Result<Arc<Principal>, Refusal> {
        let now = self.fresh()?;
        self.hashed(key, now).ok_or(Refusal::Invalid)
    }

    fn lookup(&self, secret: &str, accept: Accept<'_>, now: i64) -> Option<Arc<Principal>> {
        match accept {
            Accept::Route { audience, issuers } if looks_like_jwt(secret) => {
                if issuers.is_empty() {
                    return self.jwt(secret, audience, now);
                }
                // A route that accepts other issuers: their tokens are kept
                // apart from keygate's, and looked at first once verified.
                self.external(secret, issuers, now, true)
                    .or_else(|| self.jwt(secret, audience, now))
                    .or_else(|| self.external(secret, issuers, now, false))
            }
            Accept::Route { .. } => self.key(secret, now),
            Accept::Admin if looks_like_jwt(secret) => self.jwt(secret, None, now),
            // SECURITY: a key outside keygate's format can only be the custom
            // admin key, and only the admin listener looks such keys up.
            Accept::Admin if self.format.is_well_formed(secret) => self.key(secret, now),
            Accept::Admin => self.hashed(&KeyHash::of(secret), now),
        }
    }

    /// The principal of an external token on a route that accepts its
    /// issuer: verified (once; `kept_only` looks only among tokens verified
    /// earlier), and matched to exactly one account's binding. SECURITY:
    /// the binding is looked up on every request, so a binding deleted or
    /// an account disabled stops its next request.
    fn external(
        &self,
        token: &str,
        issuers: IssuerSet,
        now: i64,
        kept_only: bool,
    ) -> Option<Arc<Principal>> {
        let v = if kept_only {
            self.federation.kept(token)?
        } else {
            self.federation
                .verify(token, issuers, now)
                .map_err(|e| tracing::debug!(reason = %e, "external token refused"))
                .ok()?
        };
        if !issuers.contains(v.issuer) || !v.in_window(now) {
            return None;
        }
        match self.bound(&v) {
            cache::bindings::Matched::One(b) if b.principal.expires_at > now => {
                self.usage.touch(&b.principal, now);
                Some(Arc::clone(&b.principal))
            }
            _ => None,
        }
    }

    /// An external token judged again after its issuer's keys were
    /// refetched: the principal it now stands for, if any. Nothing is
    /// charged: the refusal that led here already was.
    pub fn external_after_refetch(
        &self,
        token: &str,
        issuers: IssuerSet,
    ) -> Option<Arc<Principal>> {
        let now = self.fresh().ok()?;
        self.external(token, issuers, now, false)
    }

    fn bound(&self, v: &federation::VerifiedExternal) -> cache::bindings::Matched {
        self.cache.bindings_matching(
            self.federation.name(v.issuer),
            &v.claims.sub,
            |name, value| v.claims.has(name, value),
        )
    }

    /// An external token at the token endpoint (RFC 8693 subject token,
    /// RFC 7523 assertion): verified, matched to its binding; `account`
    /// chooses among the accounts of several matching bindings.
    pub fn federated(
        &self,
        peer: IpAddr,
        token: &str,
        account: Option<Uuid>,
    ) -> Result<Federated, FederatedRefusal> {
        let now = self.fresh().map_err(FederatedRefusal::Refused)?;
        let v = match self.federation.verify(token, IssuerSet::ALL, now) {
            Ok(v) => v,
            Err(e) => {
                return Err(match self.fail(peer) {
                    Refusal::Throttled(wait) => FederatedRefusal::Refused(Refusal::Throttled(wait)),
                    _ => FederatedRefusal::Token(e),
                })
            }
        };
        let chosen = match self.bound(&v) {
            cache::bindings::Matched::None => None,
            cache::bindings::Matched::One(b) => {
                Some(b).filter(|b| account.is_none_or(|a| a == b.principal.account_id))
            }
            cache::bindings::Matched::Several(all) => match account {
                None => return Err(FederatedRefusal::Ambiguous),
                Some(a) => all.into_iter().find(|b| b.principal.account_id == a),
            },
        };
        match chosen.filter(|b| b.principal.expires_at > now) {
            Some(b) => {
                self.usage.touch(&b.principal, now);
                Ok(Federated {
                    principal: Arc::clone(&b.principal),
                    external: v,
                })
            }
            None => Err(match self.fail(peer) {
                Refusal::Throttled(wait) => FederatedRefusal::Refused(Refusal::Throttled(wait)),
                _ => FederatedRefusal::Unbound,
            }),
        }
    }

    /// The account a verified client certificate's SPIFFE id is bound to
    /// (an `x509` binding), on a `client_cert` route.
    pub fn certificate(&self, spiffe_id: &str) -> Result<Arc<Principal>, Refusal> {
        let now = self.fresh()?;
        match self
            .cache
            .bindings_matching(crate::config::X509_ISSUER, spiffe_id, |_, _| false)
        {
            cache::bindings::Matched::One(b) if b.principal.expires_at > now => {
                self.usage.touch(&b.principal, now);
                Ok(Arc::clone(&b.principal))
            }
            cache::bindings::Matched::Several(_) => Err(Refusal::Ambiguous),
            _ => Err(Refusal::Missing),
        }
    }

    /// An API key alone (RFC 8693's subject token).
    pub fn api_key(&self, peer: IpAddr, key: &str) -> Result<Arc<Principal>, Refusal> {
        let now = self.fresh()?;
        self.key(key, now).ok_or_else(|| self.fail(peer))
    }

    /// OAuth client authentication: client id lookup, SHA-256 of the
    /// secret compared in constant time, expiry.
    pub fn client(
        &self,
        peer: IpAddr,
        client_id: &str,
        secret: &str,
    ) -> Result<Arc<Principal>, Refusal> {
        let now = self.fresh()?;
        let found = self.cache.client(client_id).filter(|entry| {
            // SECURITY: constant time, so response timing says nothing about the secret.
            let presented = KeyHash::of(secret);
            bool::from(presented.0.ct_eq(&entry.secret_hash.0))
                // SECURITY: a credential holding a public key authenticates
                // only by a signed assertion, never by secret.
                && entry.public_key.is_none()
                && entry.principal.expires_at > now
        });
        match found {
            Some(entry) => {
                self.usage.touch(&entry.principal, now);
                Ok(Arc::clone(&entry.principal))
            }
            None => Err(self.fail(peer)),
        }
    }

    /// OAuth client authentication by a signed assertion (RFC 7523 §2.2,
    /// `private_key_jwt`): the credential's public key is handed to
    /// `verify`, which checks the assertion's signature and claims. A
    /// credential without a key, an expired one, or a failed `verify` is a
    /// failure charged to `peer`.
    pub fn client_assertion(
        &self,
        peer: IpAddr,
        client_id: &str,
        verify: impl FnOnce(&crate::jwt::jwk::PublicKey, i64) -> bool,
    ) -> Result<Arc<Principal>, Refusal> {
        let now = self.fresh()?;
        let found = self.cache.client(client_id).filter(|entry| {
            entry.principal.expires_at > now
                && entry.public_key.as_deref().is_some_and(|k| verify(k, now))
        });
        match found {
            Some(entry) => {
                self.usage.touch(&entry.principal, now);
                Ok(Arc::clone(&entry.principal))
            }
            None => Err(self.fail(peer)),
        }
    }

    /// The account's own rate limit. A JWT's principal does not carry it
    /// (it may change while the token lives), so it is looked up.
    pub fn account_limit(&self, p: &Principal) -> Option<RateSpec> {
        match p.kind {
            CredentialKind::Jwt => self.cache.account_rate_limit(&p.account_id),
            _ => p.rate_limit,
        }
    }

    /// The quotas a request by `p` spends from at `now_ms`: its
    /// credential's (a JWT's: the one it was minted from) and its account's.
    /// Looked up, not carried: a quota may change while a principal lives.
    pub fn charges(&self, p: &Principal, now_ms: i64) -> crate::quota::Charges {
        let charge = |subject: Uuid| {
            self.cache.quota(&subject).map(|q| crate::quota::Charge {
                subject,
                account: p.account_id,
                limit: q.limit,
                window: crate::quota::window(&q, now_ms),
            })
        };
        crate::quota::Charges::new(charge(p.source()), charge(p.account_id))
    }

    /// The clock requests are judged by.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// What introspection may say about `token`: a live keygate JWT (any
    /// audience) or a live API key. Not an authentication: nothing is
    /// charged or recorded.
    pub fn inspect(&self, token: &str) -> Option<Inspected> {
        let now = self.clock.now_ms();
        if looks_like_jwt(token) {
            return self.live_jwt(token, now).map(Inspected::Jwt);
        }
        if !self.format.is_well_formed(token) {
            return None;
        }
        self.cache
            .key(&KeyHash::of(token))
            .filter(|p| p.expires_at > now)
            .map(Inspected::ApiKey)
    }

    /// A token whose signature and claims verify, live or not (revocation).
    pub fn verified(&self, token: &str) -> Option<Arc<VerifiedToken>> {
        self.tokens.verify(token, self.clock.now_ms()).ok()
    }

    /// Full JWT verification, bypassing the verified-token map (benches).
    pub fn verify_uncached(&self, token: &str) -> Option<VerifiedToken> {
        self.tokens.verify_uncached(token, self.clock.now_ms()).ok()
    }

    /// The issuer tokens must name.
    pub fn issuer(&self) -> &str {
        self.tokens.issuer()
    }

    /// Forgets state that carries no information any more; call periodically.
    pub fn housekeep(&self) {
        let now = self.clock.now_ms();
        self.budget.housekeep();
        self.tokens.sweep(now);
        self.federation.sweep(now);
        self.cache.sweep_dead(now, self.token_horizon_ms);
    }

    /// How far back stopped credentials matter (the initial load).
    pub fn token_horizon_ms(&self) -> i64 {
        self.token_horizon_ms
    }

    /// A live API key: shape and checksum (no lookup for garbage), SHA-256,
    /// lookup, expiry.
    fn key(&self, secret: &str, now: i64) -> Option<Arc<Principal>> {
        if !self.format.is_well_formed(secret) {
            return None;
        }
        self.hashed(&KeyHash::of(secret), now)
    }

    fn hashed(&self, hash: &KeyHash, now: i64) -> Option<Arc<Principal>> {
        let p = self.cache.key(hash).filter(|p| p.expires_at > now)?;
        self.usage.touch(&p, now);
        Some(p)
    }

    /// A JWT for a route: live, and for that route's audience.
    fn jwt(&self, token: &str, audience: Option<&str>, now: i64) -> Option<Arc<Principal>> {
        let v = self.live_jwt(token, now)?;
        // RFC 9068 §4: the audience is always checked. A route without its
        // own audience accepts only tokens for keygate itself (aud = issuer),
        // never ones minted for another resource.
        if v.claims.aud != audience.unwrap_or(self.tokens.issuer()) {
            tracing::debug!("token refused: audience");
            return None;
        }
        Some(Arc::clone(&v.principal))
    }

    /// A verified token that is still good now: in its time window, its
    /// account neither disabled, closed nor expired, not revoked.
    fn live_jwt(&self, token: &str, now: i64) -> Option<Arc<VerifiedToken>> {
        let v = self
            .tokens
            .verify(token, now)
            .map_err(|e| tracing::debug!(reason = %e, "token refused"))
            .ok()?;
        let allowed = v.in_window(now)
            && self.cache.token_allowed(
                &v.principal.account_id,
                &v.claims.client_id,
                v.minted_ms,
                now,
            )
            && !self.cache.is_revoked(&v.claims.jti);
        allowed.then_some(v)
    }
}
