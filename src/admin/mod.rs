//! The admin listener: the native `/v1` management API, health and readiness.
//! HTTP only — every rule lives in [`crate::manage`]; errors become HTTP in
//! [`error`]. Never mounted on the public listener.

mod credentials;
mod error;
mod extract;
mod organizations;
mod service_accounts;
mod system;
mod views;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

pub use error::ApiError;

use crate::cache::Cache;
use crate::clock::SharedClock;
use crate::manage::Manager;
use crate::ratelimit::Limits;

/// Largest admin request body; larger answers 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

static REVISION: HeaderName = HeaderName::from_static("x-keygate-revision");

#[derive(Clone)]
pub struct AdminState(Arc<Inner>);

pub struct Inner {
    pub manager: Arc<Manager>,
    pub cache: Arc<Cache>,
    pub limits: Arc<Limits>,
    pub clock: SharedClock,
    /// For signing-key rotation: which algorithm, and how long tokens live.
    pub tokens: crate::config::TokensConfig,
}

impl std::ops::Deref for AdminState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AdminState {
    pub fn new(
        manager: Arc<Manager>,
        cache: Arc<Cache>,
        limits: Arc<Limits>,
        clock: SharedClock,
        tokens: crate::config::TokensConfig,
    ) -> Self {
        Self(Arc::new(Inner {
            manager,
            cache,
            limits,
            clock,
            tokens,
        }))
    }
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route(
            "/v1/organizations",
            get(organizations::list).post(organizations::create),
        )
        .route(
            "/v1/organizations/{id}",
            get(organizations::get)
                .patch(organizations::update)
                .delete(organizations::delete),
        )
        .route(
            "/v1/organizations/{id}/projects",
            get(organizations::list_projects).post(organizations::create_project),
        )
        .route(
            "/v1/projects/{id}",
            get(organizations::get_project).patch(organizations::update_project),
        )
        .route(
            "/v1/service-accounts",
            get(service_accounts::list).post(service_accounts::create),
        )
        .route(
            "/v1/service-accounts/{id}",
            get(service_accounts::get)
                .patch(service_accounts::update)
                .delete(service_accounts::close),
        )
        .route(
            "/v1/service-accounts/{id}/api-keys",
            get(service_accounts::list_keys).post(service_accounts::issue_key),
        )
        .route(
            "/v1/service-accounts/{id}/api-keys/{key_id}",
            axum::routing::delete(service_accounts::revoke_key),
        )
        .route(
            "/v1/service-accounts/{id}/rotate-api-key",
            post(service_accounts::rotate_key),
        )
        .route(
            "/v1/service-accounts/{id}/credentials",
            get(credentials::list).post(credentials::create),
        )
        .route(
            "/v1/service-accounts/{id}/credentials/{cid}",
            get(credentials::get)
                .patch(credentials::update)
                .delete(credentials::delete),
        )
        .route(
            "/v1/service-accounts/{id}/credentials/{cid}/secret",
            post(credentials::regenerate),
        )
        .route("/v1/signing-keys", get(credentials::signing_keys))
        .route(
            "/v1/signing-keys/rotate",
            post(credentials::rotate_signing_key),
        )
        .route("/v1/audit-events", get(system::audit_events))
        .route("/v1/replicas", get(system::replicas))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                "this method is not allowed on this path",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// A successful write: status, the revision that carries it, and the body.
pub(crate) fn written<T: Serialize>(
    status: StatusCode,
    revision: i64,
    body: Option<T>,
) -> Response {
    let header = [(REVISION.clone(), HeaderValue::from(revision))];
    match body {
        Some(b) => (status, header, Json(b)).into_response(),
        None => (status, header).into_response(),
    }
}
