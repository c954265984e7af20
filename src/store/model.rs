//! The stored entities. Plain data: no HTTP, no SQL. Times are unix ms.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::secret::KeyHash;

/// The scope that makes a principal a platform administrator.
pub const ADMIN_SCOPE: &str = "keygate:admin";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub abbreviation: Option<String>,
    /// The longest a key or credential made in it may live, seconds.
    pub max_credential_lifetime: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub archived: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Role::Owner),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

/// Derived, never stored: closed beats disabled beats expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountState {
    Active,
    Disabled,
    Expired,
    Closed,
}

impl AccountState {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::Disabled => "disabled",
            AccountState::Expired => "expired",
            AccountState::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            "expired" => Some(Self::Expired),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub name: String,
    pub description: Option<String>,
    pub role: Role,
    pub scopes: Vec<String>,
    pub enabled: bool,
    pub expires_at: Option<i64>,
    pub closed_at: Option<i64>,
    /// A rate spec as configured (`"50/s"`), validated on write.
    pub rate_limit: Option<String>,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_used_at: Option<i64>,
    /// Tokens issued before this (unix ms) are dead, whatever the account's
    /// state now: set when it is disabled or its scopes are narrowed.
    pub tokens_not_before: Option<i64>,
    /// Free-form attributes an API dialect carries per account (Waldur's
    /// `email`, …): stored and echoed, never interpreted.
    pub metadata: Metadata,
    pub quota: Option<Quota>,
}

/// A JSON object of string keys.
pub type Metadata = serde_json::Map<String, serde_json::Value>;

impl ServiceAccount {
    pub fn state(&self, now_ms: i64) -> AccountState {
        if self.closed_at.is_some() {
            AccountState::Closed
        } else if !self.enabled {
            AccountState::Disabled
        } else if self.expires_at.is_some_and(|e| e <= now_ms) {
            AccountState::Expired
        } else {
            AccountState::Active
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: Uuid,
    pub service_account_id: Uuid,
    pub name: Option<String>,
    pub hash: KeyHash,
    pub redacted: String,
    pub created_at: i64,
    /// Set by rotation with a grace period; the key stops working then.
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub limits: CredentialLimits,
}

impl ApiKey {
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now_ms)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub id: Uuid,
    pub at: i64,
    /// The acting service account; `None` for keygate itself (bootstrap).
    pub actor_id: Option<Uuid>,
    /// e.g. `service_account.create`.
    pub action: String,
    pub target_type: String,
    pub target_id: Uuid,
    pub organization_id: Option<Uuid>,
    /// What changed; never a secret or hash.
    pub details: serde_json::Value,
}

/// One entry of the change feed: a revision and the accounts whose
/// authentication data it touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    pub accounts: Vec<Uuid>,
    /// Non-account topics touched ([`TOPIC_SIGNING_KEYS`], [`TOPIC_REVOCATIONS`]).
    pub topics: Vec<String>,
}

/// A live replica, as its heartbeat records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: Uuid,
    pub hostname: String,
    pub started_at: i64,
    pub heartbeat_at: i64,
    pub revision: i64,
}

/// One live key and what authentication needs of its account: the cache's
/// initial load reads only this (not whole accounts), so loading a million
/// keys stays cheap in time and memory.
#[derive(Debug, Clone)]
pub struct AuthEntry {
    pub key_id: Uuid,
    pub hash: KeyHash,
    pub key_expires_at: Option<i64>,
    pub account_id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub role: Role,
    /// The account's scopes as stored (a JSON array): many accounts share a
    /// set, so it is parsed once per distinct text, and entries read one
    /// after another with the same text share it.
    pub scopes_json: Arc<str>,
    pub account_expires_at: Option<i64>,
    pub rate_limit: Option<String>,
}

/// A JWT signing key as stored. The private half is a secret at rest.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// `ES256`, `EdDSA` or `RS256`.
    pub algorithm: String,
    /// PKCS#8 DER.
    pub private_der: Vec<u8>,
    /// The public JWK (with `kid`, `alg`, `use`), as published.
    pub public_jwk: serde_json::Value,
    pub created_at: i64,
    /// Published in JWKS from creation; signs from this time.
    pub activates_at: i64,
    /// Neither published nor accepted from this time.
    pub retires_at: Option<i64>,
}

// SECURITY: never print the private key.
impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("activates_at", &self.activates_at)
            .field("retires_at", &self.retires_at)
            .finish_non_exhaustive()
    }
}

/// An OAuth client credential of a service account: a public `client_id`
/// and a secret stored only as SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredential {
    pub id: Uuid,
    /// `kgc_…`, public.
    pub client_id: String,
    pub service_account_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub secret_hash: KeyHash,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub deleted_at: Option<i64>,
    pub last_used_at: Option<i64>,
    /// Tokens minted from it at or before this (unix ms) are dead: set when
    /// its secret is regenerated.
    pub tokens_not_before: Option<i64>,
    pub limits: CredentialLimits,
    /// The client's public JWK when it authenticates with a signed
    /// assertion (`private_key_jwt`); then `secret_hash` is the hash of
    /// random bytes nobody holds.
    pub public_jwk: Option<serde_json::Value>,
}

impl ClientCredential {
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.deleted_at.is_none() && self.expires_at.is_none_or(|e| e > now_ms)
    }
}

/// An identity keygate did not issue, bound to a service account: tokens of
/// the trusted issuer named `issuer` (or, for `"x509"`, TLS client
/// certificates) whose `sub` is `subject` and whose every listed claim is
/// equal are credentials of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedIdentity {
    pub id: Uuid,
    pub service_account_id: Uuid,
    /// A `[[trusted_issuers]]` name, or `"x509"`.
    pub issuer: String,
    pub subject: String,
    /// Claim name → the exact string value it must have.
    pub claims: std::collections::BTreeMap<String, String>,
    pub created_by: Option<Uuid>,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

/// A key or client credential that stopped working (revoked, deleted or
/// expired) recently enough that tokens minted from it may still be live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadCredential {
    /// The `client_id` claim of tokens minted from it: a client
    /// credential's client id, or an API key's id.
    pub client_id: String,
    /// When it stopped working (unix ms).
    pub at: i64,
}

/// A revoked token id, kept until the token would have expired anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    pub jti: String,
    pub expires_at: i64,
}

/// Change-feed topics for changes not about one account.
pub const TOPIC_SIGNING_KEYS: &str = "signing_keys";
pub const TOPIC_REVOCATIONS: &str = "revocations";

/// How much an account, key or credential may spend: `limit` per UTC
/// `period`. `reset_at` (unix ms) starts the current window afresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub limit: u64,
    pub period: QuotaPeriod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Month,
    /// A fixed number of uses, never renewed (a reset renews it).
    None,
}

impl QuotaPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPeriod::Day => "day",
            QuotaPeriod::Month => "month",
            QuotaPeriod::None => "none",
        }
    }
}

/// What a key or credential narrows of its account: fewer scopes, fewer
/// addresses, its own quota. Default: nothing narrowed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CredentialLimits {
    /// A subset of the account's scopes; `None`: the account's.
    pub scopes: Option<Vec<String>>,
    /// CIDRs the client address must be in; `None`: any.
    pub allowed_cidrs: Option<Vec<ipnet::IpNet>>,
    pub quota: Option<Quota>,
}

impl CredentialLimits {
    pub fn is_empty(&self) -> bool {
        self.scopes.is_none() && self.allowed_cidrs.is_none() && self.quota.is_none()
    }
}
