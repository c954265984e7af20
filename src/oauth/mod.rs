//! The OAuth 2.0 surface of the public listener: `/oauth2/token`,
//! `/.well-known/jwks.json` and discovery (RFC 8414, OpenID Connect
//! Discovery). Errors become RFC 6749 §5.2 JSON in [`error`]. Served ahead of
//! the configured routes; never the admin API.

mod discovery;
mod error;
mod introspect;
mod token;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::cache::Cache;
use crate::clock::SharedClock;
use crate::manage::Manager;
use crate::ratelimit::Limits;
use crate::token::{Minter, TokenVerifier};

/// Paths this module owns on the public listener.
pub fn owns(path: &str) -> bool {
    path.starts_with("/oauth2/") || path.starts_with("/.well-known/")
}

pub struct OAuthState {
    pub minter: Arc<Minter>,
    pub verifier: Arc<TokenVerifier>,
    pub manager: Arc<Manager>,
    pub cache: Arc<Cache>,
    pub limits: Arc<Limits>,
    pub clock: SharedClock,
}

pub fn router(state: Arc<OAuthState>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
        .route("/oauth2/token", post(token::token))
        .route("/oauth2/introspect", post(introspect::introspect))
        .route("/oauth2/revoke", post(introspect::revoke))
        .fallback(|| async { error::not_found() })
        .layer(axum::extract::DefaultBodyLimit::max(16 * 1024))
        .with_state(state)
}
