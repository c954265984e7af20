//! `/v1/signing-keys`: the JWT signing keys, and their rotation.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::Caller;
use super::extract::{whole_number, JsonBody};
use super::openapi::Refusals;
use super::{written, AdminState, ApiError};
use crate::clock::rfc3339;
use crate::jwt::signing;
use crate::store::SigningKeyRecord;

#[derive(Serialize, ToSchema)]
pub(super) struct SigningKeyView {
    kid: String,
    /// `ES256`, `EdDSA` or `RS256`.
    algorithm: String,
    created_at: String,
    /// Published in the JWKS from creation; signs from this time.
    activates_at: String,
    retires_at: Option<String>,
    /// The public key as a JWK (RFC 7517).
    #[schema(value_type = Object)]
    public_jwk: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub(super) struct SigningKeyList {
    data: Vec<SigningKeyView>,
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RotateSigningKey)]
pub(super) struct Rotate {
    /// Seconds the new key is published before it signs (default 120: twice
    /// the JWKS max-age, so relying parties' caches see it first).
    #[serde(default = "default_activation", deserialize_with = "whole_number")]
    #[schema(default = 120, maximum = 604_800)]
    activate_after_seconds: u64,
}

fn default_activation() -> u64 {
    120
}

#[utoipa::path(
    get,
    operation_id = "listSigningKeys",
    path = "/v1/signing-keys",
    tag = "signing-keys",
    summary = "List JWT signing keys (platform admins)",
    responses((status = 200, description = "OK", body = SigningKeyList), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
) -> Result<Json<SigningKeyList>, ApiError> {
    let data = s
        .manager
        .signing_keys(&actor)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(SigningKeyList { data }))
}

#[utoipa::path(
    post,
    operation_id = "rotateSigningKey",
    path = "/v1/signing-keys/rotate",
    tag = "signing-keys",
    summary = "Add a signing key that takes over after a delay",
    request_body(content = Rotate, content_type = "application/json"),
    responses((status = 201, description = "Created", body = SigningKeyView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn rotate(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    JsonBody(b, _): JsonBody<Rotate>,
) -> Result<Response, ApiError> {
    let w = s
        .manager
        .rotate_signing_key(
            &actor,
            signing::jwt_algorithm(s.tokens.algorithm),
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
