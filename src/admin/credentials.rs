//! `/v1/service-accounts/{id}/credentials` and `/v1/signing-keys`.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{nullable, path_id, JsonBody};
use super::{written, AdminState, ApiError};
use crate::clock::rfc3339;
use crate::manage::{Actor, CredentialPatch, IssuedCredential, NewCredential};
use crate::store::{ClientCredential, SigningKeyRecord};
use crate::token::keys;

#[derive(Serialize)]
pub(super) struct CredentialView {
    id: Uuid,
    client_id: String,
    service_account_id: Uuid,
    name: String,
    description: Option<String>,
    /// Present only in the response that created or re-keyed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
}

impl CredentialView {
    fn listed(c: ClientCredential) -> Self {
        Self {
            id: c.id,
            client_id: c.client_id,
            service_account_id: c.service_account_id,
            name: c.name,
            description: c.description,
            client_secret: None,
            created_at: rfc3339(c.created_at),
            expires_at: c.expires_at.map(rfc3339),
            last_used_at: c.last_used_at.map(rfc3339),
        }
    }

    fn issued(i: IssuedCredential) -> Self {
        Self {
            client_secret: Some(i.secret.to_string()),
            ..Self::listed(i.credential)
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateCredential {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateCredential {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Empty {}

#[derive(Serialize)]
pub(super) struct CredentialList {
    data: Vec<CredentialView>,
}

fn ids(account: &str, credential: &str) -> Result<(Uuid, Uuid), ApiError> {
    Ok((
        path_id(account, "service account")?,
        path_id(credential, "credential")?,
    ))
}

pub(super) async fn create(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CreateCredential>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let new = NewCredential {
        name: b.name,
        description: b.description,
        expires_at: b.expires_at,
    };
    let w = s.manager.create_credential(&actor, id, new).await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(CredentialView::issued(w.value)),
    ))
}

pub(super) async fn list(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<CredentialList>, ApiError> {
    let id = path_id(&id, "service account")?;
    let data = s
        .manager
        .credentials(&actor, id)
        .await?
        .into_iter()
        .map(CredentialView::listed)
        .collect();
    Ok(Json(CredentialList { data }))
}

pub(super) async fn get(
    State(s): State<AdminState>,
    actor: Actor,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<CredentialView>, ApiError> {
    let (id, cid) = ids(&id, &cid)?;
    Ok(Json(CredentialView::listed(
        s.manager.credential(&actor, id, cid).await?,
    )))
}

pub(super) async fn update(
    State(s): State<AdminState>,
    actor: Actor,
    Path((id, cid)): Path<(String, String)>,
    JsonBody(b): JsonBody<UpdateCredential>,
) -> Result<Response, ApiError> {
    let (id, cid) = ids(&id, &cid)?;
    let patch = CredentialPatch {
        name: b.name,
        description: b.description,
        expires_at: b.expires_at,
    };
    let w = s.manager.update_credential(&actor, id, cid, patch).await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(CredentialView::listed(w.value)),
    ))
}

pub(super) async fn delete(
    State(s): State<AdminState>,
    actor: Actor,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (id, cid) = ids(&id, &cid)?;
    let w = s.manager.delete_credential(&actor, id, cid).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

pub(super) async fn regenerate(
    State(s): State<AdminState>,
    actor: Actor,
    Path((id, cid)): Path<(String, String)>,
    JsonBody(_): JsonBody<Empty>,
) -> Result<Response, ApiError> {
    let (id, cid) = ids(&id, &cid)?;
    let w = s.manager.regenerate_secret(&actor, id, cid).await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(CredentialView::issued(w.value)),
    ))
}

#[derive(Serialize)]
pub(super) struct SigningKeyView {
    kid: String,
    algorithm: String,
    created_at: String,
    activates_at: String,
    retires_at: Option<String>,
    public_jwk: serde_json::Value,
}

impl From<SigningKeyRecord> for SigningKeyView {
    fn from(k: SigningKeyRecord) -> Self {
        Self {
            kid: k.kid,
            algorithm: k.algorithm,
            created_at: rfc3339(k.created_at),
            activates_at: rfc3339(k.activates_at),
            retires_at: k.retires_at.map(rfc3339),
            public_jwk: k.public_jwk,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rotate {
    /// Seconds the new key is published before it signs (default 120: twice
    /// the JWKS max-age, so relying parties' caches see it first).
    #[serde(default = "default_activation")]
    activate_after_seconds: u64,
}

fn default_activation() -> u64 {
    120
}

pub(super) async fn signing_keys(
    State(s): State<AdminState>,
    actor: Actor,
) -> Result<Json<serde_json::Value>, ApiError> {
    let keys: Vec<SigningKeyView> = s
        .manager
        .signing_keys(&actor)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(serde_json::json!({ "data": keys })))
}

pub(super) async fn rotate_signing_key(
    State(s): State<AdminState>,
    actor: Actor,
    JsonBody(b): JsonBody<Rotate>,
) -> Result<Response, ApiError> {
    let w = s
        .manager
        .rotate_signing_key(
            &actor,
            keys::jwt_algorithm(s.tokens.algorithm),
            Duration::from_secs(b.activate_after_seconds),
            s.tokens.max_ttl,
        )
        .await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(SigningKeyView::from(w.value)),
    ))
}
