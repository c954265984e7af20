//! The in-memory cache of everything authentication needs: SHA-256(key) →
//! [`Principal`]. The hot path reads only this; it never touches the store.
//!
//! Kept current by [`sync`] from the store's change feed. Owns the
//! authentication *decision* for API keys (shape, checksum, lookup, expiry);
//! does not own scopes per route or HTTP (that is the proxy's).

pub mod sync;

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use dashmap::DashMap;
use uuid::Uuid;

use crate::config::RateSpec;
use crate::credential::{ApiKeyFormat, KeyHash};
use subtle::ConstantTimeEq;

use crate::store::{
    ApiKey, AuthEntry, ClientCredential, RevokedToken, Role, ServiceAccount, ADMIN_SCOPE,
};

/// How often, at most, one key's use is queued for `last_used_at`.
const USAGE_RESOLUTION_MS: i64 = 10_000;

/// Who a live key belongs to, and what it may do. One per live key; shared by
/// `Arc` so a lookup clones a pointer, never the data.
#[derive(Debug)]
pub struct Principal {
    pub key_id: Uuid,
    pub account_id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub role: Role,
    /// Holds `keygate:admin`.
    pub admin: bool,
    pub scopes: Arc<ScopeSet>,
    /// The earlier of the account's and the key's expiry; `i64::MAX`: never.
    pub expires_at: i64,
    pub rate_limit: Option<RateSpec>,
    /// A JWT's principal: its account's limits are looked up, not carried.
    pub via_token: bool,
    last_used_ms: AtomicI64,
    /// Ids pre-encoded for forwarding, built on first use: only keys that are
    /// actually used pay for them.
    identity: OnceLock<Box<Identity>>,
}

/// A principal's ids as text, ready to become header values without copying.
#[derive(Debug)]
pub struct Identity {
    pub account: Bytes,
    pub organization: Bytes,
    pub project: Option<Bytes>,
    pub credential: Bytes,
}

impl Principal {
    pub fn identity(&self) -> &Identity {
        self.identity.get_or_init(|| {
            let text = |id: Uuid| Bytes::from(id.hyphenated().to_string());
            Box::new(Identity {
                account: text(self.account_id),
                organization: text(self.organization_id),
                project: self.project_id.map(text),
                credential: text(self.key_id),
            })
        })
    }
}

/// A set of scopes, interned: accounts with the same scopes share one.
#[derive(Debug)]
pub struct ScopeSet {
    list: Box<[Box<str>]>,
    /// Space-separated, ready to be sent as a header value without formatting.
    joined: Bytes,
}

impl ScopeSet {
    pub fn empty() -> Self {
        Self {
            list: Box::new([]),
            joined: Bytes::new(),
        }
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.list.iter().any(|s| &**s == scope)
    }

    pub fn joined(&self) -> &Bytes {
        &self.joined
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|s| &**s)
    }
}

/// Why an API key did not authenticate. Deliberately coarse: callers tell the
/// client only "invalid", and logs must not help an attacker probe keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("credential is not a well-formed key")]
    Malformed,
    #[error("key is unknown, revoked, or its account is not active")]
    Unknown,
    #[error("key or account has expired")]
    Expired,
}

/// Maps a [`KeyHash`] (already uniformly random) to its own first 8 bytes.
#[derive(Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only reached for types other than KeyHash; fold them in (FNV-1a).
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Default, Clone, Copy)]
pub struct BuildIdentity;

impl BuildHasher for BuildIdentity {
    type Hasher = IdentityHasher;

    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// What a JWT's account may still do; see [`Cache::token_allowed`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Restriction {
    blocked: bool,
    /// Account expiry, unix ms (`i64::MAX`: none).
    expires_at: i64,
    /// Tokens issued before this (unix ms) are dead: set when a blocked
    /// account is enabled again, so its old tokens do not come back.
    not_before: i64,
    rate_limit: Option<RateSpec>,
}

/// A client credential as the token endpoint needs it.
#[derive(Debug)]
struct ClientEntry {
    secret_hash: KeyHash,
    principal: Arc<Principal>,
}

pub struct Cache {
    keys: DashMap<KeyHash, Arc<Principal>, BuildIdentity>,
    clients: DashMap<Box<str>, Arc<ClientEntry>>,
    /// Accounts a JWT must be checked against: disabled or closed, with an
    /// expiry, re-enabled, or with their own rate limit. Ordinary accounts
    /// are absent, so they cost nothing here.
    restricted: DashMap<Uuid, Restriction>,
    /// Revoked token ids → their expiry (unix ms).
    revoked: DashMap<Box<str>, i64>,
    scope_sets: Mutex<HashMap<Box<str>, Arc<ScopeSet>>>,
    /// Stored scopes JSON → its interned set (initial load).
    scope_json: Mutex<HashMap<Box<str>, Arc<ScopeSet>>>,
    format: ApiKeyFormat,
    revision: AtomicI64,
    last_sync_ms: AtomicI64,
    max_staleness_ms: i64,
    ready: AtomicBool,
    usage: Mutex<Vec<(Uuid, Uuid, i64)>>,
}

impl Cache {
    pub fn new(format: ApiKeyFormat, max_staleness_ms: i64) -> Self {
        Self::with_capacity(format, max_staleness_ms, 0)
    }

    pub fn with_capacity(format: ApiKeyFormat, max_staleness_ms: i64, capacity: usize) -> Self {
        Self {
            keys: DashMap::with_capacity_and_hasher(capacity, BuildIdentity),
            clients: DashMap::new(),
            restricted: DashMap::new(),
            revoked: DashMap::new(),
            scope_sets: Mutex::new(HashMap::new()),
            scope_json: Mutex::new(HashMap::new()),
            format,
            revision: AtomicI64::new(0),
            last_sync_ms: AtomicI64::new(0),
            max_staleness_ms,
            ready: AtomicBool::new(false),
            usage: Mutex::new(Vec::new()),
        }
    }

    pub fn format(&self) -> &ApiKeyFormat {
        &self.format
    }

    /// The authentication decision for a presented API key: shape and checksum
    /// (no lookup for garbage), SHA-256, lookup, expiry.
    pub fn authenticate(&self, credential: &str, now_ms: i64) -> Result<Arc<Principal>, AuthError> {
        if !self.format.is_well_formed(credential) {
            return Err(AuthError::Malformed);
        }
        self.authenticate_hash(&KeyHash::of(credential), now_ms)
    }

    /// As [`Cache::authenticate`] for a credential that is not in keygate's key
    /// format (a custom `KEYGATE_ADMIN_KEY`); the admin listener only.
    pub fn authenticate_any(
        &self,
        credential: &str,
        now_ms: i64,
    ) -> Result<Arc<Principal>, AuthError> {
        self.authenticate_hash(&KeyHash::of(credential), now_ms)
    }

    fn authenticate_hash(&self, hash: &KeyHash, now_ms: i64) -> Result<Arc<Principal>, AuthError> {
        // The shard guard lives only for this expression; never across an await.
        let principal = self
            .keys
            .get(hash)
            .map(|e| Arc::clone(e.value()))
            .ok_or(AuthError::Unknown)?;
        if principal.expires_at <= now_ms {
            return Err(AuthError::Expired);
        }
        self.touch(&principal, now_ms);
        Ok(principal)
    }

    /// Queues the key for a `last_used_at` write at most once per resolution
    /// window: one relaxed load on the common path.
    fn touch(&self, p: &Principal, now_ms: i64) {
        let last = p.last_used_ms.load(Ordering::Relaxed);
        if now_ms - last >= USAGE_RESOLUTION_MS {
            p.last_used_ms.store(now_ms, Ordering::Relaxed);
            if let Ok(mut q) = self.usage.lock() {
                q.push((p.key_id, p.account_id, now_ms));
            }
        }
    }

    /// Takes the queued usage records for a batched write.
    pub fn take_usage(&self) -> Vec<(Uuid, Uuid, i64)> {
        self.usage
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    /// Inserts one live key from the initial load.
    pub fn insert(&self, e: &AuthEntry) {
        let scopes = self.intern_json(&e.scopes_json);
        let p = Principal {
            key_id: e.key_id,
            account_id: e.account_id,
            organization_id: e.organization_id,
            project_id: e.project_id,
            role: e.role,
            admin: scopes.contains(ADMIN_SCOPE),
            scopes,
            expires_at: e
                .account_expires_at
                .unwrap_or(i64::MAX)
                .min(e.key_expires_at.unwrap_or(i64::MAX)),
            rate_limit: e
                .rate_limit
                .as_deref()
                .and_then(|s| RateSpec::parse(s).ok()),
            via_token: false,
            last_used_ms: AtomicI64::new(0),
            identity: OnceLock::new(),
        };
        self.keys.insert(e.hash, Arc::new(p));
    }

    /// A scope set from its stored JSON text, parsed once per distinct text.
    fn intern_json(&self, json: &str) -> Arc<ScopeSet> {
        if let Some(found) = self
            .scope_json
            .lock()
            .ok()
            .and_then(|m| m.get(json).cloned())
        {
            return found;
        }
        let scopes: Vec<String> = serde_json::from_str(json).unwrap_or_default();
        let set = self.intern(&scopes);
        if let Ok(mut m) = self.scope_json.lock() {
            m.insert(json.into(), Arc::clone(&set));
        }
        set
    }

    /// Inserts one live client credential from the initial load.
    pub fn insert_client(&self, credential: &ClientCredential, account: &ServiceAccount) {
        self.put_client(credential, account);
    }

    fn put_client(&self, c: &ClientCredential, account: &ServiceAccount) {
        let principal = Arc::new(self.principal(account, c.id, c.expires_at));
        self.clients.insert(
            c.client_id.as_str().into(),
            Arc::new(ClientEntry {
                secret_hash: c.secret_hash,
                principal,
            }),
        );
    }

    /// Replaces everything cached for one account with what the store now
    /// says: live keys and credentials of an open, enabled account are
    /// (re)inserted, every other one of it is evicted; a disabled or closed
    /// account is blocked, so its live JWTs fail too.
    pub fn apply_account(
        &self,
        account: &ServiceAccount,
        keys: &[ApiKey],
        credentials: &[ClientCredential],
    ) {
        let open = account.closed_at.is_none() && account.enabled;
        for key in keys {
            if open && key.revoked_at.is_none() {
                let p = self.principal(account, key.id, key.expires_at);
                self.keys.insert(key.hash, Arc::new(p));
            } else {
                self.keys.remove(&key.hash);
            }
        }
        for c in credentials {
            if open && c.deleted_at.is_none() {
                self.put_client(c, account);
            } else {
                self.clients.remove(c.client_id.as_str());
            }
        }
        self.restrict(account);
    }

    pub(crate) fn set_restricted(&self, accounts: &[ServiceAccount]) {
        for a in accounts {
            self.restrict(a);
        }
    }

    /// Records what JWTs of `account` must be checked against.
    pub(crate) fn restrict(&self, account: &ServiceAccount) {
        let blocked = account.closed_at.is_some() || !account.enabled;
        let prior = self.restricted.get(&account.id).map(|r| *r);
        let not_before = match prior {
            // Enabled again: tokens from before the block stay dead.
            Some(p) if p.blocked && !blocked => account.updated_at,
            Some(p) => p.not_before,
            None => 0,
        };
        let r = Restriction {
            blocked,
            expires_at: account.expires_at.unwrap_or(i64::MAX),
            not_before,
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

    /// Evicts the given keys and credentials (their account is gone).
    pub fn evict(&self, keys: &[ApiKey], credentials: &[ClientCredential]) {
        for key in keys {
            self.keys.remove(&key.hash);
        }
        for c in credentials {
            self.clients.remove(c.client_id.as_str());
        }
    }

    /// Client authentication for the token endpoint: `client_id` lookup,
    /// SHA-256 of the secret, constant-time comparison, expiry.
    pub fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
        now_ms: i64,
    ) -> Result<Arc<Principal>, AuthError> {
        let entry = self
            .clients
            .get(client_id)
            .map(|e| Arc::clone(e.value()))
            .ok_or(AuthError::Unknown)?;
        // SECURITY: constant time, so response timing says nothing about the secret.
        let presented = KeyHash::of(secret);
        if !bool::from(presented.0.ct_eq(&entry.secret_hash.0)) {
            return Err(AuthError::Unknown);
        }
        if entry.principal.expires_at <= now_ms {
            return Err(AuthError::Expired);
        }
        self.touch(&entry.principal, now_ms);
        Ok(Arc::clone(&entry.principal))
    }

    /// A principal for a verified JWT: identity and scopes from its claims
    /// (`key_id` is the token's `jti`).
    pub fn token_principal(
        &self,
        account_id: Uuid,
        organization_id: Uuid,
        project_id: Option<Uuid>,
        jti: Uuid,
        scope: &str,
        expires_at: i64,
    ) -> Principal {
        // Not interned: token scope strings come from callers, and the intern
        // table is never pruned.
        let list: Box<[Box<str>]> = scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(Into::into)
            .collect();
        Principal {
            key_id: jti,
            account_id,
            organization_id,
            project_id,
            role: Role::Member,
            admin: false,
            scopes: Arc::new(ScopeSet {
                joined: Bytes::from(list.join(" ")),
                list,
            }),
            expires_at,
            rate_limit: None,
            via_token: true,
            last_used_ms: AtomicI64::new(0),
            identity: OnceLock::new(),
        }
    }

    /// Whether a JWT issued at `issued_at_ms` for `account_id` may still be
    /// used at `now_ms`: its account is neither disabled, closed nor expired,
    /// and the token is not from before the account was last re-enabled.
    pub fn token_allowed(&self, account_id: &Uuid, issued_at_ms: i64, now_ms: i64) -> bool {
        // One shard lock for the common case (no restriction).
        match self.restricted.get(account_id) {
            None => true,
            Some(r) => {
                !r.blocked && now_ms < r.expires_at && issued_at_ms / 1000 >= r.not_before / 1000
            }
        }
    }

    /// The account's own rate limit, for principals that do not carry it
    /// (JWTs).
    pub fn account_rate_limit(&self, account_id: &Uuid) -> Option<RateSpec> {
        self.restricted.get(account_id).and_then(|r| r.rate_limit)
    }

    /// Whether a token id has been revoked (RFC 7009).
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.contains_key(jti)
    }

    /// Replaces the revoked-token set with `tokens`: adds first, then drops
    /// what is gone, so a revoked id is never briefly missing.
    pub(crate) fn set_revoked(&self, tokens: &[RevokedToken]) {
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
        credential_id: Uuid,
        credential_expires_at: Option<i64>,
    ) -> Principal {
        let expires_at = account
            .expires_at
            .unwrap_or(i64::MAX)
            .min(credential_expires_at.unwrap_or(i64::MAX));
        Principal {
            key_id: credential_id,
            account_id: account.id,
            organization_id: account.organization_id,
            project_id: account.project_id,
            role: account.role,
            admin: account.is_admin(),
            scopes: self.intern(&account.scopes),
            expires_at,
            rate_limit: account
                .rate_limit
                .as_deref()
                .and_then(|s| RateSpec::parse(s).ok()),
            via_token: false,
            last_used_ms: AtomicI64::new(0),
            identity: OnceLock::new(),
        }
    }

    fn intern(&self, scopes: &[String]) -> Arc<ScopeSet> {
        let joined = scopes.join(" ");
        let make = || {
            Arc::new(ScopeSet {
                list: scopes.iter().map(|s| s.as_str().into()).collect(),
                joined: Bytes::from(joined.clone()),
            })
        };
        match self.scope_sets.lock() {
            Ok(mut sets) => Arc::clone(sets.entry(joined.as_str().into()).or_insert_with(make)),
            Err(_) => make(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The store revision this cache reflects.
    pub fn revision(&self) -> i64 {
        self.revision.load(Ordering::Acquire)
    }

    pub(crate) fn set_revision(&self, revision: i64) {
        self.revision.store(revision, Ordering::Release);
    }

    pub(crate) fn mark_synced(&self, now_ms: i64) {
        self.last_sync_ms.store(now_ms, Ordering::Release);
    }

    /// Milliseconds since the cache last heard from the store.
    pub fn staleness_ms(&self, now_ms: i64) -> i64 {
        now_ms - self.last_sync_ms.load(Ordering::Acquire)
    }

    /// Past `max_staleness` without the store: authentication fails closed.
    pub fn is_stale(&self, now_ms: i64) -> bool {
        self.staleness_ms(now_ms) > self.max_staleness_ms
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Ready to serve: the cache is loaded and the public listener accepts.
    pub(crate) fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ServiceAccount;

    fn account(enabled: bool) -> ServiceAccount {
        ServiceAccount {
            id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            project_id: None,
            name: "a".into(),
            description: None,
            role: Role::Member,
            scopes: vec!["orders:read".into()],
            enabled,
            expires_at: None,
            closed_at: None,
            rate_limit: None,
            created_by: None,
            created_at: 0,
            updated_at: 0,
            last_used_at: None,
        }
    }

    fn key(format: &ApiKeyFormat, account: &ServiceAccount) -> (String, ApiKey) {
        let g = format.generate_key();
        (
            g.value.to_string(),
            ApiKey {
                id: Uuid::now_v7(),
                service_account_id: account.id,
                hash: g.hash,
                redacted: g.redacted,
                created_at: 0,
                expires_at: None,
                revoked_at: None,
                last_used_at: None,
            },
        )
    }

    #[test]
    fn live_key_authenticates_and_disabling_evicts_it() {
        let format = ApiKeyFormat::new("kg");
        let cache = Cache::new(format.clone(), 1000);
        let mut acct = account(true);
        let (secret, k) = key(&format, &acct);
        cache.apply_account(&acct, std::slice::from_ref(&k), &[]);
        let p = cache.authenticate(&secret, 1).unwrap();
        assert_eq!(p.account_id, acct.id);
        assert!(p.scopes.contains("orders:read"));
        assert_eq!(&p.scopes.joined()[..], b"orders:read");

        acct.enabled = false;
        cache.apply_account(&acct, std::slice::from_ref(&k), &[]);
        assert_eq!(
            cache.authenticate(&secret, 1).unwrap_err(),
            AuthError::Unknown
        );
    }

    #[test]
    fn garbage_is_refused_before_lookup_and_expiry_is_enforced() {
        let format = ApiKeyFormat::new("kg");
        let cache = Cache::new(format.clone(), 1000);
        assert_eq!(
            cache.authenticate("kg_nope", 1).unwrap_err(),
            AuthError::Malformed
        );
        let mut acct = account(true);
        acct.expires_at = Some(100);
        let (secret, k) = key(&format, &acct);
        cache.apply_account(&acct, &[k], &[]);
        assert!(cache.authenticate(&secret, 99).is_ok());
        assert_eq!(
            cache.authenticate(&secret, 100).unwrap_err(),
            AuthError::Expired
        );
    }

    #[test]
    fn usage_is_queued_once_per_window() {
        let format = ApiKeyFormat::new("kg");
        let cache = Cache::new(format.clone(), 1000);
        let acct = account(true);
        let (secret, k) = key(&format, &acct);
        cache.apply_account(&acct, &[k], &[]);
        for t in [
            USAGE_RESOLUTION_MS,
            USAGE_RESOLUTION_MS + 1,
            USAGE_RESOLUTION_MS + 2,
        ] {
            cache.authenticate(&secret, t).unwrap();
        }
        assert_eq!(cache.take_usage().len(), 1);
        assert!(cache.take_usage().is_empty());
    }

    #[test]
    fn equal_scope_sets_are_shared() {
        let format = ApiKeyFormat::new("kg");
        let cache = Cache::new(format.clone(), 1000);
        let (a, b) = (account(true), account(true));
        let (sa, ka) = key(&format, &a);
        let (sb, kb) = key(&format, &b);
        cache.apply_account(&a, &[ka], &[]);
        cache.apply_account(&b, &[kb], &[]);
        let pa = cache.authenticate(&sa, 1).unwrap();
        let pb = cache.authenticate(&sb, 1).unwrap();
        assert!(Arc::ptr_eq(&pa.scopes, &pb.scopes));
    }
}
