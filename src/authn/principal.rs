//! Who a caller is: the [`Principal`] every listener authenticates to, and
//! what it may do. One type for API keys, client credentials and JWTs; the
//! admin API takes it as its actor as is.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use ipnet::IpNet;
use uuid::Uuid;

use crate::config::RateSpec;
use crate::jwt::mint::Subject;
use crate::scope::ScopeSet;
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
#[derive(Debug)]
pub struct Principal {
    /// The API key, client credential or token (`jti`) presented.
    pub credential_id: Uuid,
    pub kind: CredentialKind,
    pub account_id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub role: Role,
    /// Holds `keygate:admin`.
    pub admin: bool,
    pub scopes: Arc<ScopeSet>,
    /// The earlier of the account's and the credential's expiry, unix ms
    /// (`i64::MAX`: never).
    pub expires_at: i64,
    /// The account's own rate limit. JWT principals do not carry it (it may
    /// change while the token lives): see `Authenticator::account_limit`.
    pub rate_limit: Option<RateSpec>,
    /// The key or client credential the principal's authority comes from
    /// (a JWT's: the one it was minted from; nil when unknown): whose quota
    /// it spends.
    pub source: Uuid,
    /// Client addresses the credential may be used from; `None`: any.
    pub allowed_cidrs: Option<Arc<[IpNet]>>,
    /// Last time a use was queued for `last_used_at` (unix ms).
    last_used_ms: AtomicI64,
    /// Ids pre-encoded for forwarding, built on first use: only credentials
    /// that are actually used pay for them.
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

/// The account facts a principal is made of, whichever way they were read.
pub(crate) struct AccountFacts {
    pub(crate) credential_id: Uuid,
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
    pub(crate) fn new(g: AccountFacts) -> Self {
        Self {
            credential_id: g.credential_id,
            kind: g.kind,
            account_id: g.account_id,
            organization_id: g.organization_id,
            project_id: g.project_id,
            role: g.role,
            admin: g.scopes.contains(ADMIN_SCOPE),
            scopes: g.scopes,
            expires_at: g
                .account_expires_at
                .unwrap_or(i64::MAX)
                .min(g.credential_expires_at.unwrap_or(i64::MAX)),
            rate_limit: g.rate_limit,
            source: g.source,
            allowed_cidrs: g.allowed_cidrs,
            last_used_ms: AtomicI64::new(0),
            identity: OnceLock::new(),
        }
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
