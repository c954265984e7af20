//! The OAuth 2.0 surface of the public listener: `/oauth2/token`,
//! `/oauth2/introspect`, `/oauth2/revoke`, `/.well-known/jwks.json` and
//! discovery (RFC 8414, OpenID Connect Discovery). Who is calling is the
//! authenticator's decision; this module speaks the protocol and renders
//! RFC 6749 §5.2 errors ([`error`]). Served ahead of the configured routes;
//! never the admin API.

mod assertion;
mod discovery;
mod error;
mod federated;
mod form;
mod introspect;
mod token;

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::{Request, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper::body::Incoming;

use self::error::OAuthError;
use self::form::ClientAuth;
use crate::authn::{self, Authenticator, Principal};
use crate::clock::SharedClock;
use crate::jwt::Minter;
use crate::listener::ClientAddr;
use crate::manage::Manager;
use crate::proxy::Beside;
use crate::ratelimit::RateLimits;

/// Paths this module owns on the public listener.
pub fn owns(path: &str) -> bool {
    path.starts_with("/oauth2/") || path.starts_with("/.well-known/")
}

pub struct OAuthState {
    pub minter: Arc<Minter>,
    pub authn: Arc<Authenticator>,
    pub manager: Arc<Manager>,
    pub limits: Arc<RateLimits>,
    pub clock: SharedClock,
}

impl OAuthState {
    /// `e`, after charging a presentation that could not be read to the
    /// caller's address.
    fn charged(&self, peer: IpAddr, e: OAuthError) -> OAuthError {
        refused(self.authn.malformed(peer), e)
    }

    /// The client, authenticated by the one method it presented, with its
    /// client id. Every endpoint that takes client credentials asks here.
    async fn client(
        &self,
        peer: IpAddr,
        c: &ClientAuth,
    ) -> Result<(Arc<Principal>, String), OAuthError> {
        match c {
            ClientAuth::Secret {
                client_id,
                secret,
                basic,
            } => {
                let p = self
                    .authn
                    .client(peer, client_id, secret)
                    .map_err(|r| refused(r, OAuthError::client(*basic)))?;
                Ok((p, client_id.clone()))
            }
            ClientAuth::Assertion {
                client_id,
                assertion,
            } => assertion::authenticate(self, peer, client_id.as_deref(), assertion).await,
        }
    }
}

/// An authentication refusal in RFC 6749 terms; `invalid` is what a bad
/// credential answers here.
fn refused(r: authn::Refusal, invalid: OAuthError) -> OAuthError {
    match r {
        authn::Refusal::Missing | authn::Refusal::Invalid => invalid,
        authn::Refusal::Stale => OAuthError::unavailable(),
        authn::Refusal::Throttled(wait) => OAuthError::too_many_failures(wait),
        authn::Refusal::Ambiguous => OAuthError::new(
            error::Code::InvalidRequest,
            "present one credential, not several",
        ),
    }
}

/// Largest body an OAuth endpoint reads.
const BODY_LIMIT: usize = 16 * 1024;

/// The OAuth endpoints as the public listener serves them: `POST
/// /oauth2/token` directly ([`token::direct`]), the rest through the
/// router, with whatever else was merged into it.
pub struct Endpoints {
    state: Arc<OAuthState>,
    router: Router,
}

impl Endpoints {
    pub fn new(state: Arc<OAuthState>) -> Self {
        Self {
            router: router(Arc::clone(&state)),
            state,
        }
    }

    /// Serves `other`'s routes beside these.
    pub fn merge(self, other: Router) -> Self {
        Self {
            router: self.router.merge(other),
            state: self.state,
        }
    }
}

/// `POST /oauth2/token`, which both HTTP/1.1 servers answer without the
/// router.
fn is_token(method: &[u8], path: &str) -> bool {
    method == b"POST" && path == "/oauth2/token"
}

impl crate::proxy::BesideWhole for Endpoints {
    fn takes(&self, method: &[u8], path: &str) -> Option<u64> {
        is_token(method, path).then_some(BODY_LIMIT as u64)
    }

    fn serve_whole<'a>(
        &'a self,
        client: std::net::IpAddr,
        headers: &'a axum::http::HeaderMap,
        body: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Response<axum::body::Body>> + Send + 'a>> {
        Box::pin(token::answer(&self.state, client, headers, body))
    }
}

impl Beside for Endpoints {
    fn serve(
        &self,
        req: Request<Incoming>,
    ) -> Pin<Box<dyn Future<Output = Response<axum::body::Body>> + Send + '_>> {
        if is_token(req.method().as_str().as_bytes(), req.uri().path()) {
            if let Some(ClientAddr(peer)) = req.extensions().get::<ClientAddr>().copied() {
                return Box::pin(token::direct(&self.state, peer, req, BODY_LIMIT));
            }
        }
        self.router.serve(req)
    }
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
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
