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

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt as _;

    use super::*;

    fn app() -> Router {
        Router::new().route(
            "/",
            get(|ClientAddr(ip): ClientAddr| async move { ip.to_string() }),
        )
    }

    #[tokio::test]
    async fn the_address_the_listener_resolved_reaches_the_handler() {
        let mut req = Request::new(Body::empty());
        req.extensions_mut()
            .insert(ClientAddr(IpAddr::from([203, 0, 113, 9])));
        let res = app().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = axum::body::to_bytes(res.into_body(), 64).await.unwrap();
        assert_eq!(&body[..], b"203.0.113.9");
    }

    #[tokio::test]
    async fn a_request_without_one_is_refused_not_charged_to_a_made_up_address() {
        let res = app().oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
