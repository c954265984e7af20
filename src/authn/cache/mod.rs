//! The in-memory cache of everything authentication needs, kept current by
//! `replicate` from the store's change feed. The hot path reads only this;
//! it never touches the store.
//!
//! Holds: live API keys (SHA-256 → principal), live client credentials
//! (client id → secret hash and principal), the accounts a JWT must be
//! checked against, the credentials that stopped working (their tokens die
//! with them), and revoked token ids. Caches only: the authentication
//! decision itself is the [`super::Authenticator`]'s.

pub(crate) mod bindings;
mod freshness;
mod hasher;
mod intern;
mod keys;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use ipnet::IpNet;
use uuid::Uuid;

pub use freshness::Freshness;

use self::bindings::{BindingEntry, Bindings, Matched};
use self::intern::Interner;
use self::keys::Keys;
use super::principal::{AccountFacts, CredentialKind, Principal, Profile};
use crate::config::RateSpec;
use crate::jwt::jwk::{self, PublicKey};
use crate::scope::ScopeSet;
use crate::secret::KeyHash;
use crate::store::{
    ApiKey, AuthEntry, ClientCredential, CredentialLimits, DeadCredential, FederatedIdentity,
    Quota, RevokedToken, ServiceAccount,
};

/// What a JWT's account may still do; see [`Cache::token_allowed`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Restriction {
    blocked: bool,
    /// Account expiry, unix ms (`i64::MAX`: none).
    expires_at: i64,
    /// Tokens issued at or before this (unix ms) are dead: the account's
    /// stored `tokens_not_before`, so a re-enabled account's old tokens do
    /// not come back, not even after a restart or on another replica.
    not_before: i64,
    rate_limit: Option<RateSpec>,
}

/// When the tokens minted from one credential die: every one from `at` on
/// (it was revoked, deleted or expired; `i64::MAX`: not yet), and those
/// minted at or before `not_before` (its secret was regenerated; `i64::MIN`:
/// none), both unix ms.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stopped {
    at: i64,
    not_before: i64,
}

/// A client credential as the token endpoint needs it.
#[derive(Debug)]
pub(crate) struct ClientEntry {
    pub(crate) secret_hash: KeyHash,
    pub(crate) principal: Arc<Principal>,
    /// The credential's public key (`private_key_jwt`), parsed once here.
    /// SECURITY: a credential with a key never authenticates by secret.
    pub(crate) public_key: Option<Arc<PublicKey>>,
}

pub struct Cache {
    keys: Keys,
    clients: DashMap<Box<str>, Arc<ClientEntry>>,
    /// Accounts a JWT must be checked against: disabled or closed, with an
    /// expiry, re-enabled, or with their own rate limit. Ordinary accounts
    /// are absent, so they cost nothing here.
    restricted: DashMap<Uuid, Restriction>,
    /// Revoked token ids → their expiry (unix ms).
    revoked: DashMap<Box<str>, i64>,
    /// Client ids (an API key's id, a client credential's client id) of
    /// credentials that stopped working, or whose secret was regenerated →
    /// which of the tokens minted from them are dead.
    dead: DashMap<Box<str>, Stopped>,
    /// Quotas of accounts, keys and client credentials, by their id; only
    /// those that have one.
    quotas: DashMap<Uuid, Quota>,
    /// Some quota was ever cached: until then requests skip the lookups.
    has_quotas: AtomicBool,
    /// Federated identities of open, enabled accounts.
    bindings: Bindings,
    interner: Interner,
    freshness: Freshness,
}

impl Cache {
    pub fn new(max_staleness_ms: i64) -> Self {
        Self::with_capacity(max_staleness_ms, 0)
    }

    pub fn with_capacity(max_staleness_ms: i64, capacity: usize) -> Self {
        Self {
            keys: Keys::with_capacity(capacity),
            clients: DashMap::new(),
            restricted: DashMap::new(),
            revoked: DashMap::new(),
            dead: DashMap::new(),
            quotas: DashMap::new(),
            has_quotas: AtomicBool::new(false),
            bindings: Bindings::default(),
            interner: Interner::default(),
            freshness: Freshness::new(max_staleness_ms),
        }
    }

    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// The principal of a live API key, by the SHA-256 of its value.
    pub(crate) fn key(&self, hash: &KeyHash) -> Option<Arc<Principal>> {
        self.keys.get(hash)
    }

    /// A live client credential by its client id.
    pub(crate) fn client(&self, client_id: &str) -> Option<Arc<ClientEntry>> {
        self.clients.get(client_id).map(|e| Arc::clone(e.value()))
    }

    /// Inserts one live key from the initial load.
    pub fn insert(&self, e: &AuthEntry) {
        self.insert_page(std::slice::from_ref(e));
    }

    /// Inserts a page of live keys from the initial load. Keys next to
    /// each other are mostly alike (one account's, or accounts of one
    /// kind): an entry alike the one before it takes that one's profile as
    /// it is; only the others are built and interned (a lock and a hash
    /// each).
    pub fn insert_page(&self, page: &[AuthEntry]) {
        let mut last: Option<(&AuthEntry, Arc<Profile>)> = None;
        for e in page {
            let p = match &last {
                Some((prev, profile)) if AccountFacts::same_profile(prev, e) => {
                    Principal::of_entry_alike(e, profile)
                }
                _ => {
                    let scopes = self.interner.intern_json(&e.scopes_json);
                    let p = self.share(AccountFacts::from_entry(e, scopes));
                    last = Some((e, Arc::clone(p.profile())));
                    p
                }
            };
            self.keys.insert(Arc::new(p));
        }
    }

    /// A principal with its profile interned.
    fn share(&self, facts: AccountFacts) -> Principal {
        Principal::with_profile(facts, |p| self.interner.profile(p))
    }

    /// Inserts one live client credential (the initial load, or its
    /// account changed), with its cut-off for tokens.
    pub fn insert_client(&self, credential: &ClientCredential, account: &ServiceAccount) {
        if let Some(not_before) = credential.tokens_not_before {
            self.dead
                .entry(credential.client_id.as_str().into())
                .and_modify(|s| s.not_before = s.not_before.max(not_before))
                .or_insert(Stopped {
                    at: i64::MAX,
                    not_before,
                });
        }
        let public_key = match &credential.public_jwk {
            None => None,
            Some(v) => match jwk::parse(v, jwk::CLIENT_ALGORITHMS) {
                Ok(k) => Some(Arc::new(k)),
                Err(e) => {
                    // Validated when it was set; a stored key that no longer
                    // parses leaves the credential unusable, never secret-only.
                    tracing::warn!(client_id = %credential.client_id, reason = %e, "stored public_jwk refused; credential not cached");
                    self.clients.remove(credential.client_id.as_str());
                    return;
                }
            },
        };
        self.set_quota(credential.id, credential.limits.quota);
        let principal = self.principal(
            account,
            CredentialKind::Client,
            credential.id,
            credential.expires_at,
            &credential.limits,
        );
        self.clients.insert(
            credential.client_id.as_str().into(),
            Arc::new(ClientEntry {
                secret_hash: credential.secret_hash,
                principal: Arc::new(principal),
                public_key,
            }),
        );
    }

    /// Replaces everything cached for one account with what the store now
    /// says: live keys and credentials of an open, enabled account are
    /// (re)inserted, every other one of it is evicted; a disabled or closed
    /// account is restricted, so its live JWTs fail too.
    pub fn apply_account(
        &self,
        account: &ServiceAccount,
        keys: &[ApiKey],
        credentials: &[ClientCredential],
    ) {
        let open = account.closed_at.is_none() && account.enabled;
        for key in keys {
            if open && key.revoked_at.is_none() {
                let mut facts = self.facts(
                    account,
                    CredentialKind::ApiKey,
                    key.id,
                    key.expires_at,
                    &key.limits,
                );
                facts.key_hash = Some(key.hash);
                self.set_quota(key.id, key.limits.quota);
                self.keys.insert(Arc::new(self.share(facts)));
            } else {
                self.keys.remove(&key.hash);
                self.set_quota(key.id, None);
            }
            if let Some(at) = key.revoked_at.or(key.expires_at) {
                self.stopped(key.id.to_string().into(), at);
            }
        }
        for c in credentials {
            if open && c.deleted_at.is_none() {
                self.insert_client(c, account);
            } else {
                self.clients.remove(c.client_id.as_str());
                self.set_quota(c.id, None);
            }
            if let Some(at) = c.deleted_at.or(c.expires_at) {
                self.stopped(c.client_id.as_str().into(), at);
            }
        }
        self.set_quota(account.id, account.quota.filter(|_| open));
        self.restrict(account);
    }

    /// Replaces the account's federated identities with the store's:
    /// live ones of an open, enabled account are bound, deleted ones stop
    /// the tokens minted through them.
    pub fn apply_bindings(&self, account: &ServiceAccount, bindings: &[FederatedIdentity]) {
        let open = account.closed_at.is_none() && account.enabled;
        let mut live = Vec::new();
        for b in bindings {
            if let Some(at) = b.deleted_at {
                self.stopped(b.id.to_string().into(), at);
            } else if open {
                let principal = self.principal(
                    account,
                    CredentialKind::Federated,
                    b.id,
                    None,
                    &CredentialLimits::default(),
                );
                live.push(Arc::new(BindingEntry {
                    issuer: b.issuer.as_str().into(),
                    subject: b.subject.as_str().into(),
                    claims: b
                        .claims
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    principal: Arc::new(principal),
                }));
            }
        }
        self.bindings.replace(account.id, live);
    }

    /// Forgets the bindings of an account that is gone.
    pub fn evict_bindings(&self, account_id: Uuid) {
        self.bindings.replace(account_id, Vec::new());
    }

    /// The live bindings of `issuer` for `subject` whose claim conditions
    /// `has` confirms.
    pub(crate) fn bindings_matching(
        &self,
        issuer: &str,
        subject: &str,
        has: impl Fn(&str, &str) -> bool,
    ) -> Matched {
        self.bindings.matching(issuer, subject, has)
    }

    fn set_quota(&self, subject: Uuid, quota: Option<Quota>) {
        match quota {
            Some(q) => {
                self.has_quotas.store(true, Ordering::Relaxed);
                self.quotas.insert(subject, q);
            }
            None => {
                self.quotas.remove(&subject);
            }
        }
    }

    /// The quota of an account, key or client credential, if it has one.
    pub(crate) fn quota(&self, subject: &Uuid) -> Option<Quota> {
        if !self.has_quotas.load(Ordering::Relaxed) {
            return None;
        }
        self.quotas.get(subject).map(|q| *q)
    }

    /// Evicts the given keys and credentials (their account is gone).
    pub fn evict(&self, keys: &[ApiKey], credentials: &[ClientCredential]) {
        for key in keys {
            self.keys.remove(&key.hash);
            self.set_quota(key.id, None);
        }
        for c in credentials {
            self.clients.remove(c.client_id.as_str());
            self.set_quota(c.id, None);
        }
    }

    pub fn set_restricted(&self, accounts: &[ServiceAccount]) {
        for a in accounts {
            self.restrict(a);
        }
    }

    /// Records the credentials that stopped working (initial load).
    pub fn set_dead(&self, dead: &[DeadCredential]) {
        for d in dead {
            self.stopped(d.client_id.as_str().into(), d.at);
        }
    }

    /// Every token minted from `client_id` is dead from `at` on.
    fn stopped(&self, client_id: Box<str>, at: i64) {
        self.dead
            .entry(client_id)
            .and_modify(|s| s.at = at)
            .or_insert(Stopped {
                at,
                not_before: i64::MIN,
            });
    }

    /// Records what JWTs of `account` must be checked against.
    fn restrict(&self, account: &ServiceAccount) {
        let blocked = account.closed_at.is_some() || !account.enabled;
        let r = Restriction {
            blocked,
            expires_at: account.expires_at.unwrap_or(i64::MAX),
            not_before: account.tokens_not_before.unwrap_or(0),
            rate_limit: account
                .rate_limit
                .as_deref()
                .and_then(|s| RateSpec::parse(s).ok()),
        };
        if !r.blocked && r.expires_at == i64::MAX && r.not_before == 0 && r.rate_limit.is_none() {
            self.restricted.remove(&account.id);
        } else {
            self.restricted.insert(account.id, r);
        }
    }

    /// Whether a JWT for `account_id`, minted from `client_id` at
    /// `issued_at_ms`, may still be used at `now_ms`: its
    /// account is neither disabled, closed nor expired, the token is not
    /// from before the account's token cut-off, and the credential it was
    /// minted from has not stopped working nor had its secret regenerated
    /// since.
    pub(crate) fn token_allowed(
        &self,
        account_id: &Uuid,
        client_id: &str,
        issued_at_ms: i64,
        now_ms: i64,
    ) -> bool {
        // One shard lock each for the common case (no entry).
        let account_ok = match self.restricted.get(account_id) {
            None => true,
            Some(r) => !r.blocked && now_ms < r.expires_at && issued_at_ms > r.not_before,
        };
        account_ok
            && self
                .dead
                .get(client_id)
                .is_none_or(|s| now_ms < s.at && issued_at_ms > s.not_before)
    }

    /// The account's own rate limit, for principals that do not carry it.
    pub(crate) fn account_rate_limit(&self, account_id: &Uuid) -> Option<RateSpec> {
        self.restricted.get(account_id).and_then(|r| r.rate_limit)
    }

    /// Whether a token id has been revoked (RFC 7009).
    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Forgets stopped credentials whose tokens have all expired
    /// (`horizon_ms`: the longest a token lives, plus leeway), and profiles
    /// no principal holds.
    pub fn sweep_dead(&self, now_ms: i64, horizon_ms: i64) {
        let floor = now_ms.saturating_sub(horizon_ms);
        self.dead
            .retain(|_, s| (s.at != i64::MAX && s.at > floor) || s.not_before > floor);
        // On the same schedule: profiles whose last principal went.
        self.interner.prune_profiles();
    }

    /// Replaces the revoked-token set with `tokens`: adds first, then drops
    /// what is gone, so a revoked id is never briefly missing.
    pub fn set_revoked(&self, tokens: &[RevokedToken]) {
        let fresh: std::collections::HashSet<&str> =
            tokens.iter().map(|t| t.jti.as_str()).collect();
        for t in tokens {
            self.revoked.insert(t.jti.as_str().into(), t.expires_at);
        }
        self.revoked.retain(|k, _| fresh.contains(&**k));
    }

    fn principal(
        &self,
        account: &ServiceAccount,
        kind: CredentialKind,
        credential_id: Uuid,
        credential_expires_at: Option<i64>,
        limits: &CredentialLimits,
    ) -> Principal {
        let facts = self.facts(account, kind, credential_id, credential_expires_at, limits);
        self.share(facts)
    }

    /// What a principal of `account`'s credential is made of.
    fn facts(
        &self,
        account: &ServiceAccount,
        kind: CredentialKind,
        credential_id: Uuid,
        credential_expires_at: Option<i64>,
        limits: &CredentialLimits,
    ) -> AccountFacts {
        let scopes = match &limits.scopes {
            None => self.interner.intern(&account.scopes),
            // What the key may do: its own scopes that its account still
            // covers (an account narrowed later narrows its keys too).
            Some(own) => {
                let account_scopes = ScopeSet::new(&account.scopes);
                let kept: Vec<String> = own
                    .iter()
                    .filter(|s| account_scopes.covers(std::iter::once(s.as_str())))
                    .cloned()
                    .collect();
                self.interner.intern(&kept)
            }
        };
        let cidrs: Option<Arc<[IpNet]>> = limits.allowed_cidrs.as_deref().map(Arc::from);
        AccountFacts::from_account(
            account,
            kind,
            credential_id,
            credential_expires_at,
            scopes,
            cidrs,
        )
    }

    /// Live keys cached.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }

    /// Live client credentials cached.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Distinct profiles held.
    #[cfg(test)]
    pub(crate) fn profile_count(&self) -> usize {
        self.interner.profile_count()
    }
}
