//! The JSON shapes of the native `/v1` API. Times are RFC 3339; a key's
//! `value` appears only in the response that created it.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::narrowing::{LimitsView, QuotaView};
use crate::clock::rfc3339;
use crate::manage::{lifetime_text, IssuedKey, Listing};
use crate::store::{
    ApiKey, AuditEvent, Metadata, Organization, Project, Replica, Role, ServiceAccount,
};

/// One page of a listing, oldest first. Pass `next_cursor` as `after` for
/// the next page; it is null on the last.
#[derive(Serialize, ToSchema)]
pub(super) struct Page<T> {
    pub data: Vec<T>,
    pub has_more: bool,
    pub next_cursor: Option<Uuid>,
}

impl<T> Page<T> {
    pub(super) fn from<S>(
        listing: Listing<S>,
        id: impl Fn(&S) -> Uuid,
        view: impl Fn(S) -> T,
    ) -> Self {
        let next_cursor = if listing.has_more {
            listing.data.last().map(&id)
        } else {
            None
        };
        Self {
            has_more: listing.has_more,
            next_cursor,
            data: listing.data.into_iter().map(view).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct OrganizationView {
    pub id: Uuid,
    pub name: String,
    pub abbreviation: Option<String>,
    /// The longest a key or credential made in it may live, e.g. `"90d"`.
    pub max_credential_lifetime: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Organization> for OrganizationView {
    fn from(o: Organization) -> Self {
        Self {
            id: o.id,
            name: o.name,
            abbreviation: o.abbreviation,
            max_credential_lifetime: o.max_credential_lifetime.map(lifetime_text),
            created_at: rfc3339(o.created_at),
            updated_at: rfc3339(o.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct ProjectView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub archived: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Project> for ProjectView {
    fn from(p: Project) -> Self {
        Self {
            id: p.id,
            organization_id: p.organization_id,
            name: p.name,
            archived: p.archived,
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct AccountView {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub project_id: Option<Uuid>,
    pub name: String,
    pub description: Option<String>,
    #[schema(schema_with = super::openapi::role)]
    pub role: Role,
    pub scopes: Vec<String>,
    pub enabled: bool,
    /// Derived: `active`, `disabled`, `expired` or `closed`.
    #[schema(schema_with = super::openapi::account_state)]
    pub state: &'static str,
    pub expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: Option<Uuid>,
    pub last_used_at: Option<String>,
    /// This account's own limit, e.g. `"100/s burst 20"`.
    pub rate_limit: Option<String>,
    /// This account's quota, shared by all its keys and credentials.
    pub quota: Option<QuotaView>,
    /// Free-form JSON object.
    #[schema(value_type = Object)]
    pub metadata: Metadata,
    /// The key issued with the account, with its `value`: only in the
    /// response that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<KeyView>,
}

impl AccountView {
    pub(super) fn new(a: ServiceAccount, now_ms: i64, key: Option<IssuedKey>) -> Self {
        Self {
            state: a.state(now_ms).as_str(),
            id: a.id,
            organization_id: a.organization_id,
            project_id: a.project_id,
            name: a.name,
            description: a.description,
            role: a.role,
            scopes: a.scopes,
            enabled: a.enabled,
            expires_at: a.expires_at.map(rfc3339),
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
            created_by: a.created_by,
            last_used_at: a.last_used_at.map(rfc3339),
            rate_limit: a.rate_limit,
            quota: a.quota.map(Into::into),
            metadata: a.metadata,
            api_key: key.map(KeyView::issued),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct KeyView {
    pub id: Uuid,
    pub service_account_id: Uuid,
    pub name: Option<String>,
    /// Present only in the response that created the key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub redacted_value: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    /// What the key narrows of its account.
    #[serde(flatten)]
    pub limits: LimitsView,
}

impl KeyView {
    pub(super) fn listed(k: ApiKey) -> Self {
        Self {
            id: k.id,
            service_account_id: k.service_account_id,
            name: k.name,
            value: None,
            redacted_value: k.redacted,
            created_at: rfc3339(k.created_at),
            expires_at: k.expires_at.map(rfc3339),
            last_used_at: k.last_used_at.map(rfc3339),
            limits: k.limits.into(),
        }
    }

    pub(super) fn issued(k: IssuedKey) -> Self {
        Self {
            value: Some(k.value.to_string()),
            ..Self::listed(k.key)
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct AuditView {
    pub id: Uuid,
    pub at: String,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Uuid,
    pub organization_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditEvent> for AuditView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            at: rfc3339(e.at),
            actor_id: e.actor_id,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            organization_id: e.organization_id,
            details: e.details,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct ReplicaView {
    pub id: Uuid,
    pub hostname: String,
    pub started_at: String,
    pub heartbeat_at: String,
    pub revision: i64,
}

impl From<Replica> for ReplicaView {
    fn from(r: Replica) -> Self {
        Self {
            id: r.id,
            hostname: r.hostname,
            started_at: rfc3339(r.started_at),
            heartbeat_at: rfc3339(r.heartbeat_at),
            revision: r.revision,
        }
    }
}
