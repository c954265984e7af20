//! The client's address, resolved once per request by the listener that
//! accepted it (the peer's, or behind `trusted_proxies` the one the
//! forwarding chain names) and carried to the edges that charge failures
//! to it: the OAuth endpoints and the admin API. Not a socket address: the
//! client's port is unknown behind a proxy, so none is pretended.

use std::net::IpAddr;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;

/// The resolved client address of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Every listener inserts a [`ClientAddr`]; a request without one was not
/// served by a listener, and is refused rather than charged to a made-up
/// address that every such request would share.
impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<ClientAddr>()
            .copied()
            .ok_or_else(|| {
                tracing::error!("request reached an edge without its client address");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            })
    }
}
