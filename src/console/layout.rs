//! What every console page shares: the page shell (navigation, who is
//! signed in, "Sign out"), notices, the confirmation step of destructive
//! actions, and the few whole-page answers (sign-in redirect, not found,
//! refused). The form controls are in [`super::controls`].

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};

use super::controls::csrf;
use super::form::Draft;
use super::session::Signed;
use crate::clock::rfc3339;
use crate::manage;

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Organizations,
    Accounts,
    Audit,
    Replicas,
    SigningKeys,
}

/// A message at the top of a page: what just happened, or what went wrong.
pub(super) struct Notice {
    pub(super) error: bool,
    pub(super) text: String,
}

/// What a page shows besides its data: a notice, and the form to refill
/// (with the field at fault) after a refused write.
#[derive(Default)]
pub(super) struct Ctx {
    pub(super) notice: Option<Notice>,
    refill: Option<Draft>,
    param: Option<&'static str>,
}

impl Ctx {
    pub(super) fn with(notice: Option<Notice>) -> Self {
        Self {
            notice,
            ..Self::default()
        }
    }

    pub(super) fn done(text: impl Into<String>) -> Self {
        Self {
            notice: Some(Notice {
                error: false,
                text: text.into(),
            }),
            ..Self::default()
        }
    }

    /// A refused write: its message, the field it names, the form to refill.
    pub(super) fn refused(e: &manage::Error, draft: Draft) -> (StatusCode, Self) {
        let (status, text, param) = explain(e);
        (
            status,
            Self {
                notice: Some(Notice { error: true, text }),
                refill: Some(draft),
                param,
            },
        )
    }

    /// The value to show in field `name` of form `form`.
    pub(super) fn value(&self, form: &str, name: &str) -> Option<&str> {
        self.refill
            .as_ref()
            .filter(|d| d.form == form)
            .and_then(|d| d.get(name))
    }

    pub(super) fn invalid(&self, form: &str, name: &str) -> bool {
        self.param == Some(name) && self.refill.as_ref().is_some_and(|d| d.form == form)
    }
}

/// A manage error as a status, a plain sentence, and the field it names.
pub(super) fn explain(e: &manage::Error) -> (StatusCode, String, Option<&'static str>) {
    use manage::Error as E;
    match e {
        E::Invalid { param, message } => (
            StatusCode::BAD_REQUEST,
            format!("{}: {message}.", label_of(param)),
            Some(param),
        ),
        E::Conflict { param, message, .. } => (StatusCode::CONFLICT, format!("{message}."), *param),
        E::Archived => (
            StatusCode::BAD_REQUEST,
            "The project is archived: nothing new may be made in it.".into(),
            None,
        ),
        E::Forbidden(m) => (StatusCode::FORBIDDEN, format!("Not allowed: {m}."), None),
        E::NotFound(what) => (StatusCode::NOT_FOUND, format!("No such {what}."), None),
        E::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "keygate cannot reach its store right now; nothing was changed. Try again shortly."
                .into(),
            None,
        ),
        E::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong inside keygate; its log says what.".into(),
            None,
        ),
    }
}

/// The label a form shows for an API field name.
fn label_of(param: &str) -> &str {
    match param {
        "name" => "Name",
        "description" => "Description",
        "scopes" => "Scopes",
        "expires_at" => "Expires at",
        "rate_limit" => "Rate limit",
        "role" => "Role",
        "organization_id" => "Organization",
        "project_id" => "Project",
        "grace_period_seconds" => "Grace period",
        "abbreviation" => "Abbreviation",
        other => other,
    }
}

/// The whole page: head, navigation, notice, body.
pub(super) fn page(
    title: &str,
    signed: &Signed,
    nav: Option<Nav>,
    ctx: &Ctx,
    body: Markup,
) -> Markup {
    let a = &signed.actor;
    let role = if a.admin {
        "platform admin"
    } else if a.project_id.is_some() {
        "project owner"
    } else {
        "organization owner"
    };
    let link = |to: Nav, href: &str, text: &str| {
        html! {
            li { a href=(href) aria-current=[(nav == Some(to)).then_some("page")] { (text) } }
        }
    };
    shell(
        title,
        html! {
            nav aria-label="Console" {
                ul {
                    (link(Nav::Organizations, "/console/organizations", "Organizations"))
                    (link(Nav::Accounts, "/console/service-accounts", "Service accounts"))
                    @if a.admin || a.project_id.is_none() {
                        (link(Nav::Audit, "/console/audit", "Audit log"))
                    }
                    @if a.admin {
                        (link(Nav::Replicas, "/console/replicas", "Replicas"))
                        (link(Nav::SigningKeys, "/console/signing-keys", "Signing keys"))
                    }
                }
            }
            div.who {
                span { "Signed in as " strong { (signed.name) } " (" (role) ")" }
                form method="post" action="/console/sign-out" {
                    (csrf(signed))
                    button type="submit" { "Sign out" }
                }
            }
        },
        ctx,
        body,
    )
}

/// The document around a page: the parts a signed-out page has too.
pub(super) fn shell(title: &str, top: Markup, ctx: &Ctx, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · keygate console" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "keygate" }
                    (top)
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    @if let Some(n) = &ctx.notice {
                        @if n.error {
                            p.notice.error role="alert" { (n.text) }
                        } @else {
                            p.notice role="status" { (n.text) }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

/// The confirmation step of a destructive action: the question, the same
/// form again (its fields, `confirm=yes`) with the same button, and a way
/// back that changes nothing.
pub(super) fn confirm(
    signed: &Signed,
    title: &str,
    question: &str,
    action: &str,
    label: &str,
    draft: &Draft,
    back: &str,
) -> Response {
    let body = html! {
        p { (question) }
        form method="post" action=(action) {
            (csrf(signed))
            input type="hidden" name="confirm" value="yes";
            @for (name, value) in draft.pairs() {
                input type="hidden" name=(name) value=(value);
            }
            div.actions {
                button.danger type="submit" { (label) }
                a.button href=(back) { "Cancel" }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(title, signed, None, &Ctx::default(), body),
    )
}

pub(super) fn respond(status: StatusCode, markup: Markup) -> Response {
    (status, Html(markup.into_string())).into_response()
}

/// `303 See Other` to `to` (after a write, or to another page).
pub(super) fn see_other(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(to) => (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response(),
        Err(_) => not_found(),
    }
}

/// Back to sign-in; `ended` when a session was there and is no more.
pub(super) fn to_sign_in(ended: bool, clear: Option<HeaderValue>) -> Response {
    let to = if ended {
        "/console/sign-in?ended=1"
    } else {
        "/console/sign-in"
    };
    let mut res = see_other(to);
    if let Some(clear) = clear {
        res.headers_mut().insert(header::SET_COOKIE, clear);
    }
    res
}

/// A page for a signed-out caller or a broken request: just a message.
fn plain(status: StatusCode, title: &str, text: &str) -> Response {
    let ctx = Ctx {
        notice: Some(Notice {
            error: true,
            text: text.into(),
        }),
        ..Ctx::default()
    };
    let body = html! { p { a href="/console/" { "Back to the console" } } };
    respond(status, shell(title, html! {}, &ctx, body))
}

pub(super) fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page, or nothing you may see there.",
    )
}

pub(super) fn unavailable() -> Response {
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "keygate has not heard from its store for too long, so it cannot tell whether your \
         key is still valid. Try again shortly.",
    )
}

pub(super) fn bad_request(text: &str) -> Response {
    plain(StatusCode::BAD_REQUEST, "Bad request", text)
}

pub(super) fn refused_write(text: &str) -> Response {
    plain(StatusCode::FORBIDDEN, "Refused", text)
}

/// A page that could not be shown, as a page of its own.
pub(super) fn failure(signed: &Signed, e: &manage::Error) -> Response {
    let (status, text, _) = explain(e);
    let ctx = Ctx {
        notice: Some(Notice { error: true, text }),
        ..Ctx::default()
    };
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        _ => "Error",
    };
    let body = html! { p { a href="/console/" { "Back to the console" } } };
    respond(status, page(title, signed, None, &ctx, body))
}

/// A time, readable and machine-readable.
pub(super) fn when(ms: i64) -> Markup {
    let full = rfc3339(ms);
    let shown = full.get(..19).unwrap_or(&full).replace('T', " ");
    html! { time datetime=(full) { (shown) " UTC" } }
}

pub(super) fn when_or(ms: Option<i64>, none: &str) -> Markup {
    match ms {
        Some(ms) => when(ms),
        None => html! { span.muted { (none) } },
    }
}

/// A secret shown once, with a copy button (the page's one use of script).
pub(super) fn secret_once(label: &str, value: &str, note: &str) -> Markup {
    html! {
        section.secret aria-labelledby="secret-heading" {
            h2 #secret-heading { (label) }
            p { (note) }
            div.secret-row {
                code #secret-value { (value) }
                button type="button" data-copy="secret-value" { "Copy" }
            }
            p.muted #secret-value-status aria-live="polite" {}
        }
    }
}
