//! `/v1/service-accounts/{id}/credentials`: OAuth client credentials.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{nullable, path_id, Caller, JsonBody};
use super::narrowing::{LimitsBody, LimitsPatchBody, LimitsView, QuotaBody};
use super::openapi::Refusals;
use super::{written, AdminState, ApiError};
use crate::clock::rfc3339;
use crate::manage::{auth_method, CredentialPatch, IssuedCredential, NewCredential};
use crate::store::ClientCredential;

#[derive(Serialize, ToSchema)]
pub(super) struct CredentialView {
    id: Uuid,
    client_id: String,
    service_account_id: Uuid,
    name: String,
    description: Option<String>,
    /// Present only in the response that created or re-keyed it, and never
    /// for a `private_key_jwt` credential (it has no secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
    /// How the client authenticates at the token endpoint.
    #[schema(value_type = String, example = "client_secret")]
    auth_method: &'static str,
    /// The client's public JWK (`private_key_jwt`); `null` for a secret
    /// credential.
    #[schema(value_type = Option<Object>)]
    public_jwk: Option<Value>,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
    /// What the credential narrows of its account.
    #[serde(flatten)]
    limits: LimitsView,
}

impl CredentialView {
    fn listed(c: ClientCredential) -> Self {
        Self {
            auth_method: auth_method(&c),
            public_jwk: c.public_jwk,
            id: c.id,
            client_id: c.client_id,
            service_account_id: c.service_account_id,
            name: c.name,
            description: c.description,
            client_secret: None,
            created_at: rfc3339(c.created_at),
            expires_at: c.expires_at.map(rfc3339),
            last_used_at: c.last_used_at.map(rfc3339),
            limits: c.limits.into(),
        }
    }

    fn issued(i: IssuedCredential) -> Self {
        Self {
            client_secret: i.secret.map(|s| s.to_string()),
            ..Self::listed(i.credential)
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateCredential {
    /// Default `default`.
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_name)]
    name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// RFC 3339, in the future; the credential stops then.
    #[serde(default)]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::narrower_scopes)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::cidrs)]
    allowed_cidrs: Option<Vec<String>>,
    /// The credential's own quota, spent by its tokens beside its account's.
    #[serde(default)]
    quota: Option<QuotaBody>,
    /// A public JWK (RSA ≥ 2048 bits, EC P-256 or Ed25519; no private
    /// parts): the client authenticates with `private_key_jwt` assertions
    /// signed by its private key (RS256, ES256, EdDSA), and no
    /// `client_secret` is made. Absent: a secret credential.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    public_jwk: Option<Value>,
}

/// Only the fields present change; `null` clears a nullable one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateCredential {
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_name)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::openapi::narrower_scopes)]
    scopes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::openapi::cidrs)]
    allowed_cidrs: Option<Option<Vec<String>>>,
    /// `null`: no quota of its own.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<QuotaBody>)]
    quota: Option<Option<QuotaBody>>,
    /// Starts the quota's current window afresh.
    #[serde(default)]
    reset_quota: bool,
    /// Replaces a `private_key_jwt` credential's public JWK; tokens minted
    /// before stop, as when a secret is regenerated.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    public_jwk: Option<Option<Value>>,
}

/// No fields (an empty body reads as `{}`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Empty {}

#[derive(Serialize, ToSchema)]
pub(super) struct CredentialList {
    data: Vec<CredentialView>,
}

fn ids(account: &str, credential: &str) -> Result<(Uuid, Uuid), ApiError> {
    Ok((
        path_id(account, "service account")?,
        path_id(credential, "credential")?,
    ))
}

#[utoipa::path(
    post,
    operation_id = "createClientCredential",
    path = "/v1/service-accounts/{id}/credentials",
    tag = "client-credentials",
    summary = "Create an OAuth client credential; its secret is in this response only (none with public_jwk)",
    params(("id" = Uuid, Path, description = "The service account's id")),
    request_body(content = CreateCredential, content_type = "application/json"),
    responses((status = 201, description = "Created", body = CredentialView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<CreateCredential>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let new = NewCredential {
        name: b.name,
        description: b.description,
        expires_at: b.expires_at,
        limits: LimitsBody {
            scopes: b.scopes,
            allowed_cidrs: b.allowed_cidrs,
            quota: b.quota,
        }
        .into(),
        explicit_expiry: true,
        public_jwk: b.public_jwk,
    };
    let w = s.manager.create_credential(&actor, id, new).await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(CredentialView::issued(w.value)),
    ))
}

#[utoipa::path(
    get,
    operation_id = "listClientCredentials",
    path = "/v1/service-accounts/{id}/credentials",
    tag = "client-credentials",
    summary = "List a service account's client credentials",
    params(("id" = Uuid, Path, description = "The service account's id")),
    responses((status = 200, description = "OK", body = CredentialList), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
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

#[utoipa::path(
    get,
    operation_id = "getClientCredential",
    path = "/v1/service-accounts/{id}/credentials/{cid}",
    tag = "client-credentials",
    summary = "Get a client credential",
    params(("id" = Uuid, Path, description = "The service account's id"), ("cid" = Uuid, Path, description = "The client credential's id")),
    responses((status = 200, description = "OK", body = CredentialView), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn get(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Json<CredentialView>, ApiError> {
    let (id, cid) = ids(&id, &cid)?;
    Ok(Json(CredentialView::listed(
        s.manager.credential(&actor, id, cid).await?,
    )))
}

#[utoipa::path(
    patch,
    operation_id = "updateClientCredential",
    path = "/v1/service-accounts/{id}/credentials/{cid}",
    tag = "client-credentials",
    summary = "Update a client credential",
    params(("id" = Uuid, Path, description = "The service account's id"), ("cid" = Uuid, Path, description = "The client credential's id")),
    request_body(content = UpdateCredential, content_type = "application/json"),
    responses((status = 200, description = "Updated", body = CredentialView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, cid)): Path<(String, String)>,
    JsonBody(b, _): JsonBody<UpdateCredential>,
) -> Result<Response, ApiError> {
    let (id, cid) = ids(&id, &cid)?;
    let patch = CredentialPatch {
        name: b.name,
        description: b.description,
        expires_at: b.expires_at,
        limits: LimitsPatchBody {
            scopes: b.scopes,
            allowed_cidrs: b.allowed_cidrs,
            quota: b.quota,
            reset_quota: b.reset_quota,
        }
        .into(),
        // `null` is refused by validation ("is not a JSON object").
        public_jwk: b.public_jwk.map(|j| j.unwrap_or(Value::Null)),
    };
    let w = s.manager.update_credential(&actor, id, cid, patch).await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(CredentialView::listed(w.value)),
    ))
}

#[utoipa::path(
    delete,
    operation_id = "deleteClientCredential",
    path = "/v1/service-accounts/{id}/credentials/{cid}",
    tag = "client-credentials",
    summary = "Delete a client credential; tokens minted from it stop too",
    params(("id" = Uuid, Path, description = "The service account's id"), ("cid" = Uuid, Path, description = "The client credential's id")),
    responses((status = 204, description = "Done", headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn delete(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, cid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (id, cid) = ids(&id, &cid)?;
    let w = s.manager.delete_credential(&actor, id, cid).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

#[utoipa::path(
    post,
    operation_id = "regenerateClientSecret",
    path = "/v1/service-accounts/{id}/credentials/{cid}/secret",
    tag = "client-credentials",
    summary = "Replace a client secret; the new one is in this response only (400 for a private_key_jwt credential)",
    params(("id" = Uuid, Path, description = "The service account's id"), ("cid" = Uuid, Path, description = "The client credential's id")),
    request_body(content = Empty, content_type = "application/json"),
    responses((status = 200, description = "Updated", body = CredentialView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn regenerate(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, cid)): Path<(String, String)>,
    JsonBody(_, _): JsonBody<Empty>,
) -> Result<Response, ApiError> {
    let (id, cid) = ids(&id, &cid)?;
    let w = s.manager.regenerate_secret(&actor, id, cid).await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(CredentialView::issued(w.value)),
    ))
}
