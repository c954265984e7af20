//! Sign-in and sign-out. A key typed here is authenticated exactly as on
//! `/v1` (a failure spends the caller's failed-auth budget), then only its
//! SHA-256 is kept, in a server-side session.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::super::form::{same_origin, Posted};
use super::super::layout::{self, Ctx, Notice};
use super::super::session::OpenError;
use super::super::ConsoleState;
use crate::authn::{Accept, CredentialKind, Principal, Refusal};
use crate::listener::{ClientAddr, Scheme};
use crate::secret::KeyHash;
use crate::store::Role;

#[derive(Deserialize)]
pub(in crate::console) struct SignInQuery {
    #[serde(default)]
    ended: Option<String>,
    #[serde(default)]
    out: Option<String>,
}

pub(in crate::console) async fn page(Query(q): Query<SignInQuery>) -> Response {
    let text = if q.out.is_some() {
        Some((false, "You are signed out."))
    } else if q.ended.is_some() {
        Some((true, "Your session has ended. Sign in again."))
    } else {
        None
    };
    form(
        StatusCode::OK,
        text.map(|(error, t)| Notice {
            error,
            text: t.into(),
        }),
    )
}

fn form(status: StatusCode, notice: Option<Notice>) -> Response {
    let invalid = notice.as_ref().is_some_and(|n| n.error);
    let ctx = Ctx::with(notice);
    let body = html! {
        form.panel.signin method="post" action="/console/sign-in" {
            p { "Sign in with the API key of a platform admin or of an owner service account. \
                 The key is not stored in your browser: it opens a session that ends when you \
                 sign out, after a while, or when the key is revoked." }
            div.field {
                label for="key" { "Admin key" }
                input #key type="password" name="key" autocomplete="off" required
                    aria-invalid=[invalid.then_some("true")];
            }
            button type="submit" { "Sign in" }
        }
    };
    layout::respond(status, layout::shell("Sign in", html! {}, &ctx, body))
}

fn refused(status: StatusCode, text: impl Into<String>) -> Response {
    form(
        status,
        Some(Notice {
            error: true,
            text: text.into(),
        }),
    )
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    key: String,
}

pub(in crate::console) async fn submit(
    State(s): State<ConsoleState>,
    headers: HeaderMap,
    client: Option<axum::Extension<ClientAddr>>,
    scheme: Option<axum::Extension<Scheme>>,
    body: Bytes,
) -> Response {
    // SECURITY: no session yet, so no CSRF token: a sign-in posted from
    // another site (to sign the victim in as the attacker) is refused by
    // its Origin.
    if !same_origin(&headers, scheme.map(|e| e.0)) {
        return layout::refused_write("This sign-in was sent from another site.");
    }
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return refused(StatusCode::BAD_REQUEST, "The form could not be read.");
    };
    // The key as typed is zeroed when this answer is made.
    let typed = Zeroizing::new(form.key);
    let key = typed.trim();
    if key.is_empty() {
        return refused(StatusCode::BAD_REQUEST, "Admin key: enter a key.");
    }
    let Some(axum::Extension(ClientAddr(peer))) = client else {
        tracing::error!("console sign-in without its client address");
        return layout::unavailable();
    };
    // The one authenticator, as on /v1: a wrong key spends the address's
    // failed-auth budget.
    let actor = match s.authn.bearer(peer, Ok(key), Accept::Admin) {
        Ok(actor) => actor,
        Err(Refusal::Throttled(wait)) => {
            return refused(
                StatusCode::TOO_MANY_REQUESTS,
                format!("Too many failed sign-ins from your address. Try again in {wait} seconds."),
            )
        }
        Err(Refusal::Stale) => return layout::unavailable(),
        Err(_) => {
            return refused(
                StatusCode::UNAUTHORIZED,
                "That key is not valid: it is wrong, revoked or expired.",
            )
        }
    };
    if actor.kind != CredentialKind::ApiKey {
        return refused(
            StatusCode::BAD_REQUEST,
            "Sign in with an API key, not a token.",
        );
    }
    if !manages(&actor) {
        return refused(
            StatusCode::FORBIDDEN,
            "This key belongs to a member account. Only platform admins and owners use the \
             console.",
        );
    }
    let name = s
        .manager
        .account(&actor, actor.account_id)
        .await
        .map(|a| a.name)
        .unwrap_or_else(|_| "keygate admin".into());
    let now = s.clock.now_ms();
    match s.sessions.open(KeyHash::of(key), &actor, &name, now) {
        Ok(cookie) => {
            tracing::info!(account = %actor.account_id, "console sign-in");
            let mut res = layout::see_other("/console/organizations");
            res.headers_mut().insert(header::SET_COOKIE, cookie);
            res
        }
        Err(OpenError::Full) => refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many console sessions are open on this replica. Try again later.",
        ),
        Err(OpenError::Cookie) => {
            tracing::error!("console session cookie could not be written");
            refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong inside keygate; its log says what.",
            )
        }
    }
}

fn manages(actor: &Arc<Principal>) -> bool {
    actor.admin || actor.role == Role::Owner
}

#[derive(Deserialize)]
pub(in crate::console) struct Nothing {}

pub(in crate::console) async fn sign_out(
    State(s): State<ConsoleState>,
    posted: Posted<Nothing>,
) -> Response {
    let mut res = layout::see_other("/console/sign-in?out=1");
    if let Some(clear) = s.sessions.end(&posted.signed) {
        res.headers_mut().insert(header::SET_COOKIE, clear);
    }
    res
}
