//! Who a caller is: the [`Principal`] every listener authenticates to, and
//! what it may do. One type for API keys, client credentials and JWTs; the
//! admin API takes it as its actor as is.

use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use ipnet::IpNet;
use uuid::Uuid;

use crate::config::RateSpec;
use crate::jwt::mint::Subject;
use crate::scope::ScopeSet;
use crate::secret::KeyHash;
use crate::store::{AuthEntry, Role, ServiceAccount, ADMIN_SCOPE};

/// What the caller presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    ApiKey,
    /// An OAuth client credential (client id + secret).
    Client,
    /// A keygate JWT.
    Jwt,
    /// An identity keygate did not issue (another issuer's JWT, a client
    /// certificate's SPIFFE id), through its binding to the account.
    Federated,
}

/// Who a credential belongs to, and what it may do. Shared by `Arc`: the
/// cache holds one per live key or client credential, the verified-token
/// cache one per JWT, so a request clones a pointer, never the data.
///
/// Kept small, because the cache holds a million of them: what is the
/// credential's own (its id, its account, its expiry) is held here, and
/// what credentials of accounts alike have in common (organization,
/// project, role, scopes, rate limit, address limits) in a shared
/// [`Profile`], whose fields read as the principal's own (`Deref`).
#[derive(Debug)]
pub struct Principal {
    /// The API key, client credential or token (`jti`) presented.
    pub credential_id: Uuid,
    pub account_id: Uuid,
    /// The earlier of the account's and the credential's expiry, unix ms
    /// (`i64::MAX`: never).
    pub expires_at: i64,
    /// The SHA-256 of the API key presented, by which the cache finds the
    /// principal (all zeros for any other credential).
    key_hash: KeyHash,
    profile: Arc<Profile>,
    /// Last time a use was queued for `last_used_at` (unix ms).
    last_used_ms: AtomicI64,
    /// Ids pre-encoded for forwarding, built on first use: only credentials
    /// that are actually used pay for them.
    identity: OnceLock<Box<Identity>>,
}

/// What a principal has in common with the credentials of accounts alike:
/// the cache interns these, so a million keys of a few kinds of account
/// hold a few profiles.
#[derive(Debug)]
pub struct Profile {
    /// What the caller presented.
    pub kind: CredentialKind,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub role: Role,
    /// Holds `keygate:admin`.
    pub admin: bool,
    pub scopes: Arc<ScopeSet>,
    /// The account's own rate limit. JWT principals do not carry it (it may
    /// change while the token lives): see `Authenticator::account_limit`.
    pub rate_limit: Option<RateSpec>,
    /// Client addresses the credential may be used from; `None`: any.
    pub allowed_cidrs: Option<Arc<[IpNet]>>,
    /// Whose quota the principal spends when that is not its own
    /// credential (a JWT's: the key or client credential it was minted
    /// from); see [`Principal::source`].
    source: Option<Uuid>,
}

// Interning compares scope sets by identity: the cache's are interned, so
// equal sets are the same set (and unequal pointers only cost a profile).
impl PartialEq for Profile {
    fn eq(&self, o: &Self) -> bool {
        self.kind == o.kind
            && self.organization_id == o.organization_id
            && self.project_id == o.project_id
            && self.role == o.role
            && self.admin == o.admin
            && Arc::ptr_eq(&self.scopes, &o.scopes)
            && self.rate_limit == o.rate_limit
            && self.allowed_cidrs == o.allowed_cidrs
            && self.source == o.source
    }
}

impl Eq for Profile {}

impl Hash for Profile {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.organization_id.hash(h);
        self.project_id.hash(h);
        Arc::as_ptr(&self.scopes).hash(h);
        self.source.hash(h);
    }
}

impl Deref for Principal {
    type Target = Profile;

    fn deref(&self) -> &Profile {
        &self.profile
    }
}

/// A principal's ids as text, ready to become header values without copying.
#[derive(Debug)]
pub struct Identity {
    pub account: Bytes,
    pub organization: Bytes,
    pub project: Option<Bytes>,
    pub credential: Bytes,
}

/// The account facts a principal is made of, whichever way they were read.
pub(crate) struct AccountFacts {
    pub(crate) credential_id: Uuid,
    /// An API key's hash.
    pub(crate) key_hash: Option<KeyHash>,
    pub(crate) kind: CredentialKind,
    pub(crate) account_id: Uuid,
    pub(crate) organization_id: Uuid,
    pub(crate) project_id: Option<Uuid>,
    pub(crate) role: Role,
    pub(crate) scopes: Arc<ScopeSet>,
    pub(crate) account_expires_at: Option<i64>,
    pub(crate) credential_expires_at: Option<i64>,
    pub(crate) rate_limit: Option<RateSpec>,
    pub(crate) source: Uuid,
    pub(crate) allowed_cidrs: Option<Arc<[IpNet]>>,
}

impl AccountFacts {
    /// A live key as the initial load reads it.
    pub(crate) fn from_entry(e: &AuthEntry, scopes: Arc<ScopeSet>) -> Self {
        Self {
            credential_id: e.key_id,
            key_hash: Some(e.hash),
            kind: CredentialKind::ApiKey,
            account_id: e.account_id,
            organization_id: e.organization_id,
            project_id: e.project_id,
            role: e.role,
            scopes,
            account_expires_at: e.account_expires_at,
            credential_expires_at: e.key_expires_at,
            rate_limit: e
                .rate_limit
                .as_deref()
                .and_then(|s| RateSpec::parse(s).ok()),
            source: e.key_id,
            allowed_cidrs: None,
        }
    }

    /// Whether two loaded keys' principals have equal profiles: every
    /// field of `a` that [`Self::from_entry`] puts into a profile equals
    /// `b`'s (scopes by the text they share, see `auth_entries_from`).
    pub(crate) fn same_profile(a: &AuthEntry, b: &AuthEntry) -> bool {
        Arc::ptr_eq(&a.scopes_json, &b.scopes_json)
            && a.organization_id == b.organization_id
            && a.project_id == b.project_id
            && a.role == b.role
            && a.rate_limit == b.rate_limit
    }

    /// A key or client credential of `account`.
    pub(crate) fn from_account(
        account: &ServiceAccount,
        kind: CredentialKind,
        credential_id: Uuid,
        credential_expires_at: Option<i64>,
        scopes: Arc<ScopeSet>,
        allowed_cidrs: Option<Arc<[IpNet]>>,
    ) -> Self {
        Self {
            credential_id,
            key_hash: None,
            kind,
            account_id: account.id,
            organization_id: account.organization_id,
            project_id: account.project_id,
            role: account.role,
            scopes,
            account_expires_at: account.expires_at,
            credential_expires_at,
            rate_limit: account
                .rate_limit
                .as_deref()
                .and_then(|s| RateSpec::parse(s).ok()),
            source: credential_id,
            allowed_cidrs,
        }
    }
}

impl Principal {
    /// A principal with a profile of its own (a JWT's).
    pub(crate) fn new(g: AccountFacts) -> Self {
        Self::with_profile(g, Arc::new)
    }

    /// A principal whose profile `share` may find among existing ones.
    pub(crate) fn with_profile(
        g: AccountFacts,
        share: impl FnOnce(Profile) -> Arc<Profile>,
    ) -> Self {
        let profile = Profile {
            kind: g.kind,
            organization_id: g.organization_id,
            project_id: g.project_id,
            role: g.role,
            admin: g.scopes.contains(ADMIN_SCOPE),
            scopes: g.scopes,
            rate_limit: g.rate_limit,
            allowed_cidrs: g.allowed_cidrs,
            source: Some(g.source).filter(|s| *s != g.credential_id),
        };
        Self::on_profile(
            g.credential_id,
            g.account_id,
            [g.account_expires_at, g.credential_expires_at],
            g.key_hash.unwrap_or(KeyHash([0; 32])),
            share(profile),
        )
    }

    /// One credential's principal on a shared `profile`; it expires with
    /// the earliest of `expiries` (the account's and its own).
    fn on_profile(
        credential_id: Uuid,
        account_id: Uuid,
        expiries: [Option<i64>; 2],
        key_hash: KeyHash,
        profile: Arc<Profile>,
    ) -> Self {
        Self {
            credential_id,
            account_id,
            expires_at: expiries.into_iter().flatten().min().unwrap_or(i64::MAX),
            key_hash,
            profile,
            last_used_ms: AtomicI64::new(0),
            identity: OnceLock::new(),
        }
    }

    /// A loaded key's principal on the profile of the entry before it, when
    /// [`AccountFacts::same_profile`] says the two are alike: no profile is
    /// built, compared or interned.
    pub(crate) fn of_entry_alike(e: &AuthEntry, profile: &Arc<Profile>) -> Self {
        Self::on_profile(
            e.key_id,
            e.account_id,
            [e.account_expires_at, e.key_expires_at],
            e.hash,
            Arc::clone(profile),
        )
    }

    /// The shared profile this principal holds.
    pub(crate) fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// The hash of the API key this principal is found by (all zeros for
    /// any other credential).
    pub(crate) fn key_hash(&self) -> &KeyHash {
        &self.key_hash
    }

    /// The key or client credential the principal's authority comes from
    /// (a JWT's: the one it was minted from; nil when unknown): whose quota
    /// it spends.
    pub fn source(&self) -> Uuid {
        self.profile.source.unwrap_or(self.credential_id)
    }

    /// Whether two principals share one profile (tests of the cache).
    #[cfg(test)]
    pub(crate) fn shares_profile(&self, other: &Principal) -> bool {
        Arc::ptr_eq(&self.profile, &other.profile)
    }

    pub fn identity(&self) -> &Identity {
        self.identity.get_or_init(|| {
            let text = |id: Uuid| Bytes::from(id.hyphenated().to_string());
            Box::new(Identity {
                account: text(self.account_id),
                organization: text(self.organization_id),
                project: self.project_id.map(text),
                credential: text(self.credential_id),
            })
        })
    }

    /// What a token minted for this principal says about it.
    pub fn token_subject<'a>(&'a self, client_id: &'a str, scope: &'a str) -> Subject<'a> {
        Subject {
            account_id: self.account_id,
            organization_id: self.organization_id,
            project_id: self.project_id,
            client_id,
            scope,
            expires_at: self.expires_at,
            role: self.role,
            allowed_cidrs: self.allowed_cidrs.as_deref(),
            act: None,
        }
    }

    /// Whether `client` may use this credential (its `allowed_cidrs`).
    pub fn allows_address(&self, client: std::net::IpAddr) -> bool {
        let client = crate::addr::canonical(client);
        self.allowed_cidrs
            .as_deref()
            .is_none_or(|nets| nets.iter().any(|n| n.contains(&client)))
    }

    /// Claims one use for `last_used_at` if none was claimed within
    /// `resolution_ms`: one relaxed load on the common path.
    pub(super) fn claim_use(&self, now_ms: i64, resolution_ms: i64) -> bool {
        let last = self.last_used_ms.load(Ordering::Relaxed);
        if now_ms - last >= resolution_ms {
            self.last_used_ms.store(now_ms, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}
