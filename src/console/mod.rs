//! The browser console at `/console/` on the admin listener: server-rendered
//! HTML pages (maud) over the same [`crate::manage`] calls as `/v1`, plain
//! forms that POST and redirect, one small stylesheet and one small script
//! (the copy button), both compiled into the binary.
//!
//! Owns the pages, the sign-in session ([`session`]), the CSRF check on
//! every form ([`form`]) and the headers every console response carries
//! (a strict CSP, `no-store`). Owns no rule: who may see or change what is
//! `manage`'s, who is calling is the authenticator's.

mod assets;
mod controls;
mod form;
mod layout;
mod pages;
mod session;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;

pub use session::Sessions;

use crate::authn::Authenticator;
use crate::clock::SharedClock;
use crate::manage::Manager;

/// Largest console form body; larger answers 413.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// What the console's pages need.
pub struct Console {
    pub manager: Arc<Manager>,
    pub authn: Arc<Authenticator>,
    pub clock: SharedClock,
    /// This replica, as its heartbeats name it (the replicas page).
    pub replica_id: uuid::Uuid,
    /// For signing-key rotation: which algorithm, and how long tokens live.
    pub tokens: crate::config::TokensConfig,
    pub sessions: Sessions,
}

#[derive(Clone)]
pub struct ConsoleState(Arc<Console>);

impl std::ops::Deref for ConsoleState {
    type Target = Console;
    fn deref(&self) -> &Console {
        &self.0
    }
}

impl ConsoleState {
    pub fn new(console: Console) -> Self {
        Self(Arc::new(console))
    }
}

/// The console's routes, every one under `/console/`, with their headers.
pub fn router(state: ConsoleState) -> Router {
    use pages::{account, account_writes as keys, accounts, orgs, sign_in, system};
    Router::new()
        .route("/console", get(|| async { layout::see_other("/console/") }))
        .route("/console/", get(pages::home))
        .route("/console/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/static/{file}", get(assets::serve))
        .route("/console/organizations", get(orgs::list).post(orgs::create))
        .route("/console/organizations/{id}", get(orgs::show))
        .route(
            "/console/organizations/{id}/projects",
            post(orgs::create_project),
        )
        .route(
            "/console/service-accounts",
            get(accounts::list).post(accounts::create),
        )
        .route(
            "/console/service-accounts/{id}",
            get(account::show).post(account::edit),
        )
        .route("/console/service-accounts/{id}/state", post(account::state))
        .route("/console/service-accounts/{id}/close", post(account::close))
        .route("/console/service-accounts/{id}/keys", post(keys::issue_key))
        .route("/console/service-accounts/{id}/rotate", post(keys::rotate))
        .route(
            "/console/service-accounts/{id}/keys/{key}/revoke",
            post(keys::revoke_key),
        )
        .route(
            "/console/service-accounts/{id}/credentials",
            post(keys::create_credential),
        )
        .route(
            "/console/service-accounts/{id}/credentials/{cid}/secret",
            post(keys::regenerate),
        )
        .route(
            "/console/service-accounts/{id}/credentials/{cid}/delete",
            post(keys::delete_credential),
        )
        .route(
            "/console/service-accounts/{id}/federated-identities",
            post(keys::bind),
        )
        .route(
            "/console/service-accounts/{id}/federated-identities/{bid}/delete",
            post(keys::unbind),
        )
        .route("/console/audit", get(system::audit))
        .route("/console/replicas", get(system::replicas))
        .route("/console/signing-keys", get(system::signing_keys))
        .route(
            "/console/signing-keys/rotate",
            post(system::rotate_signing_key),
        )
        .route("/console/{*rest}", any(|| async { layout::not_found() }))
        .layer(axum::middleware::map_response(harden))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(state)
}

/// SECURITY: what every console response carries. Nothing but the
/// console's own stylesheet and script may load (no inline script or
/// style, so an injected tag does nothing); no site may frame it; forms
/// post only to the console; no page is stored by the browser or a proxy
/// (it may show a secret shown once); no referrer leaves it (`same-origin`,
/// not `no-referrer`: under `no-referrer` browsers send `Origin: null` on
/// the console's own forms, and the origin check needs the real one).
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

async fn harden(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    res
}
