//! JWKS and authorization-server metadata.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::OAuthState;
use crate::jwt::{jwk, signing};

/// RFC 7517 JWK Set of every published key, including the next one before it
/// signs. Cacheable briefly: relying parties refetch on an unknown `kid`.
pub(super) async fn jwks(State(s): State<Arc<OAuthState>>) -> Response {
    let mut res = Json(s.minter.ring().jwks(s.clock.now_ms())).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    res
}

/// RFC 8414 metadata (also served as OpenID Connect discovery).
pub(super) async fn metadata(State(s): State<Arc<OAuthState>>) -> Response {
    let issuer = s.minter.issuer().trim_end_matches('/');
    let algs: Vec<&str> = s
        .minter
        .ring()
        .algorithms(s.clock.now_ms())
        .into_iter()
        .map(signing::algorithm_name)
        .collect();
    let client_algs: Vec<&str> = jwk::CLIENT_ALGORITHMS
        .iter()
        .map(|a| signing::algorithm_name(*a))
        .collect();
    Json(json!({
        "issuer": s.minter.issuer(),
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "bearer"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "bearer"],
        "grant_types_supported": [
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
        ],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        // What private_key_jwt assertions may be signed with (RFC 8414 §2).
        "token_endpoint_auth_signing_alg_values_supported": client_algs,
        "introspection_endpoint_auth_signing_alg_values_supported": client_algs,
        "revocation_endpoint_auth_signing_alg_values_supported": client_algs,
        // No authorization endpoint: no response types (RFC 8414 §2).
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        // The algorithms access tokens are signed with (RFC 9068 §4).
        "access_token_signing_alg_values_supported": algs,
    }))
    .into_response()
}
