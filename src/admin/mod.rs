//! The admin listener: the native `/v1` management API and its OpenAPI
//! description ([`openapi`]), the dialects, health, readiness and metrics.
//! HTTP only — who is calling is the authenticator's decision, every rule
//! lives in [`crate::manage`]; errors become HTTP in [`error`]. Never
//! mounted on the public listener.

mod credentials;
mod dialects;
mod error;
mod extract;
mod federation;
mod narrowing;
pub mod openapi;
mod organizations;
mod service_accounts;
mod signing_keys;
mod system;
mod usage;
mod views;
mod webhooks;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};

use crate::authn::Authenticator;
use crate::clock::SharedClock;
use crate::jwt::Minter;
use crate::manage::Manager;
use crate::ratelimit::RateLimits;

/// Largest admin request body; larger answers 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

static REVISION: HeaderName = HeaderName::from_static("x-keygate-revision");

#[derive(Clone)]
pub struct AdminState(Arc<Inner>);

pub struct Inner {
    pub manager: Arc<Manager>,
    pub authn: Arc<Authenticator>,
    /// For the dialects that hand out tokens (Run:ai's `/api/v1/token`).
    pub minter: Arc<Minter>,
    /// For `/readyz`: how rate limits are counted.
    pub limits: Arc<RateLimits>,
    /// This replica, as its heartbeats name it.
    pub replica_id: uuid::Uuid,
    pub clock: SharedClock,
    /// For signing-key rotation: which algorithm, and how long tokens live.
    pub tokens: crate::config::TokensConfig,
    /// Rendered on `/metrics` (404 when disabled).
    pub metrics: Arc<crate::telemetry::metrics::Metrics>,
    /// `admin.metrics_token`: what a scrape must present, if anything.
    pub metrics_token: Option<crate::config::Secret>,
    /// Webhook subscriptions (`/v1/webhooks`).
    pub webhooks: Arc<crate::events::webhooks::Webhooks>,
}

impl std::ops::Deref for AdminState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AdminState {
    pub fn new(parts: Inner) -> Self {
        Self(Arc::new(parts))
    }
}

/// The native `/v1` routes, each with its OpenAPI description.
fn v1() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(openapi::AdminApi::openapi())
        .routes(routes!(organizations::list, organizations::create))
        .routes(routes!(
            organizations::get,
            organizations::update,
            organizations::delete
        ))
        .routes(routes!(
            organizations::list_projects,
            organizations::create_project
        ))
        .routes(routes!(
            organizations::get_project,
            organizations::update_project
        ))
        .routes(routes!(service_accounts::list, service_accounts::create))
        .routes(routes!(
            service_accounts::get,
            service_accounts::update,
            service_accounts::close
        ))
        .routes(routes!(
            service_accounts::list_keys,
            service_accounts::issue_key
        ))
        .routes(routes!(
            service_accounts::revoke_key,
            usage::get_key,
            usage::update_key
        ))
        .routes(routes!(usage::usage))
        .routes(routes!(service_accounts::rotate_key))
        .routes(routes!(credentials::list, credentials::create))
        .routes(routes!(
            credentials::get,
            credentials::update,
            credentials::delete
        ))
        .routes(routes!(credentials::regenerate))
        .routes(routes!(federation::list, federation::create))
        .routes(routes!(federation::get, federation::delete))
        .routes(routes!(signing_keys::list))
        .routes(routes!(signing_keys::rotate))
        .routes(routes!(system::audit_events))
        .routes(routes!(system::replicas))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::deliveries))
}

/// The OpenAPI 3.1 document of the `/v1` API, as served at `/openapi.json`.
pub fn openapi_document() -> String {
    let mut doc = v1().into_openapi();
    openapi::finish(&mut doc);
    doc.to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

pub fn router(state: AdminState) -> Router {
    let (v1, mut spec) = v1().split_for_parts();
    openapi::finish(&mut spec);
    let spec: Arc<str> = spec
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
        .into();
    let router = Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        // Unauthenticated, like the code it describes: clients are generated from it.
        .route(
            "/openapi.json",
            get(move || {
                let spec = Arc::clone(&spec);
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/json"),
                        )],
                        spec.to_string(),
                    )
                }
            }),
        )
        .merge(v1)
        .merge(dialects::router());
    // `/metrics` only when they are recorded (`admin.metrics`).
    let router = if state.metrics.enabled() {
        router.route("/metrics", get(system::metrics))
    } else {
        router
    };
    router
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
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
