//! `/v1/service-accounts/{id}/federated-identities`: bindings of
//! identities keygate did not issue (another issuer's subject, a client
//! certificate's SPIFFE id) to an account.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::extract::{path_id, Caller, JsonBody};
use super::openapi::Refusals;
use super::{written, AdminState, ApiError};
use crate::clock::rfc3339;
use crate::manage::NewBinding;
use crate::store::FederatedIdentity;

#[derive(Serialize, ToSchema)]
pub(super) struct FederatedIdentityView {
    id: Uuid,
    service_account_id: Uuid,
    /// A `[[trusted_issuers]]` name, or `x509`.
    issuer: String,
    subject: String,
    claims: BTreeMap<String, String>,
    created_at: String,
}

impl From<FederatedIdentity> for FederatedIdentityView {
    fn from(f: FederatedIdentity) -> Self {
        Self {
            id: f.id,
            service_account_id: f.service_account_id,
            issuer: f.issuer,
            subject: f.subject,
            claims: f.claims,
            created_at: rfc3339(f.created_at),
        }
    }
}

/// A token of `issuer` whose `sub` is `subject` and whose every listed
/// claim has exactly the given string value is a credential of the account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateFederatedIdentity {
    /// The name of a trusted issuer of this keygate, or `x509` for TLS
    /// client certificates (then `subject` is a `spiffe://` id).
    #[schema(min_length = 1, max_length = 64)]
    issuer: String,
    /// The token's `sub`, exactly.
    #[schema(min_length = 1, max_length = 512)]
    subject: String,
    /// Further claims that must be equal (`repository`, `environment`…).
    #[serde(default)]
    claims: BTreeMap<String, String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct FederatedIdentityList {
    data: Vec<FederatedIdentityView>,
}

#[utoipa::path(
    post,
    operation_id = "createFederatedIdentity",
    path = "/v1/service-accounts/{id}/federated-identities",
    tag = "federated-identities",
    summary = "Bind an identity from a trusted issuer (or a client certificate) to the account",
    params(("id" = Uuid, Path, description = "The service account's id")),
    request_body(content = CreateFederatedIdentity, content_type = "application/json"),
    responses((status = 201, description = "Created", body = FederatedIdentityView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<CreateFederatedIdentity>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let new = NewBinding {
        issuer: b.issuer,
        subject: b.subject,
        claims: b.claims,
    };
    let w = s.manager.create_federated_identity(&actor, id, new).await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(FederatedIdentityView::from(w.value)),
    ))
}

#[utoipa::path(
    get,
    operation_id = "listFederatedIdentities",
    path = "/v1/service-accounts/{id}/federated-identities",
    tag = "federated-identities",
    summary = "List the identities bound to a service account",
    params(("id" = Uuid, Path, description = "The service account's id")),
    responses((status = 200, description = "OK", body = FederatedIdentityList), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<FederatedIdentityList>, ApiError> {
    let id = path_id(&id, "service account")?;
    let data = s
        .manager
        .federated_identities(&actor, id)
        .await?
        .into_iter()
        .map(FederatedIdentityView::from)
        .collect();
    Ok(Json(FederatedIdentityList { data }))
}

#[utoipa::path(
    get,
    operation_id = "getFederatedIdentity",
    path = "/v1/service-accounts/{id}/federated-identities/{binding_id}",
    tag = "federated-identities",
    summary = "Get one bound identity",
    params(("id" = Uuid, Path, description = "The service account's id"), ("binding_id" = Uuid, Path, description = "The binding's id")),
    responses((status = 200, description = "OK", body = FederatedIdentityView), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn get(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, binding)): Path<(String, String)>,
) -> Result<Json<FederatedIdentityView>, ApiError> {
    let id = path_id(&id, "service account")?;
    let binding = path_id(&binding, "federated identity")?;
    Ok(Json(
        s.manager
            .federated_identity(&actor, id, binding)
            .await?
            .into(),
    ))
}

#[utoipa::path(
    delete,
    operation_id = "deleteFederatedIdentity",
    path = "/v1/service-accounts/{id}/federated-identities/{binding_id}",
    tag = "federated-identities",
    summary = "Unbind an identity; its next exchange and request are refused, and tokens minted through it stop",
    params(("id" = Uuid, Path, description = "The service account's id"), ("binding_id" = Uuid, Path, description = "The binding's id")),
    responses((status = 204, description = "Done", headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn delete(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, binding)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let binding = path_id(&binding, "federated identity")?;
    let w = s
        .manager
        .delete_federated_identity(&actor, id, binding)
        .await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}
