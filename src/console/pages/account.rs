//! One service account: its facts, the form that edits it, its state
//! (disable, enable, close), its API keys, its client credentials and its
//! federated identities. The writes on keys, credentials and bindings are
//! in [`super::account_writes`].

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::super::controls::{button_form, csrf, form_name, Field};
use super::super::form::{optional, scopes, time, Posted};
use super::super::layout::{self, Ctx, Nav};
use super::super::session::{Once, Signed};
use super::super::ConsoleState;
use super::id;
use crate::clock::rfc3339;
use crate::manage::{self, AccountPatch};
use crate::store::{ApiKey, ClientCredential, FederatedIdentity, ServiceAccount};

#[derive(Deserialize)]
pub(in crate::console) struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

/// What a redirect after a write says it did.
fn done(code: Option<&str>) -> Ctx {
    let text = match code {
        Some("saved") => "Changes saved.",
        Some("disabled") => "Account disabled: its keys, credentials and tokens stopped working.",
        Some("enabled") => "Account enabled.",
        Some("closed") => "Account closed: every key and credential is revoked.",
        Some("revoked") => "API key revoked.",
        Some("deleted") => "Credential deleted.",
        Some("created") => "Service account created.",
        Some("issued") => "API key issued.",
        Some("rotated") => "Keys rotated: the new key is below.",
        Some("credential") => "Client credential created.",
        Some("regenerated") => "Secret regenerated.",
        Some("bound") => "Identity bound: its tokens are now credentials of this account.",
        Some("unbound") => "Identity unbound: its tokens stopped working here.",
        _ => return Ctx::default(),
    };
    Ctx::done(text)
}

pub(in crate::console) async fn show(
    State(s): State<ConsoleState>,
    signed: Signed,
    Path(account): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    match id(&account) {
        Ok(account) => {
            render(
                &s,
                &signed,
                account,
                done(q.done.as_deref()),
                StatusCode::OK,
            )
            .await
        }
        Err(r) => r.into_response(),
    }
}

/// The account's page, with a notice, the secret a write just made (shown
/// this once), or a refused form to refill.
pub(in crate::console) async fn render(
    s: &ConsoleState,
    signed: &Signed,
    account: Uuid,
    ctx: Ctx,
    status: StatusCode,
) -> Response {
    let actor = &signed.actor;
    let a = match s.manager.account(actor, account).await {
        Ok(a) => a,
        Err(e) => return layout::failure(signed, &e),
    };
    let (keys, credentials, bindings) = match (
        s.manager.keys(actor, account).await,
        s.manager.credentials(actor, account).await,
        s.manager.federated_identities(actor, account).await,
    ) {
        (Ok(k), Ok(c), Ok(b)) => (k, c, b),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return layout::failure(signed, &e),
    };
    let now = s.manager.now();
    let state = a.state(now).as_str();
    let writable = s.manager.may_change(actor, &a) && a.closed_at.is_none();
    let base = format!("/console/service-accounts/{}", a.id);
    let shown = s.sessions.take_once(signed, a.id);
    let org_name = s
        .manager
        .organization(actor, a.organization_id)
        .await
        .map(|o| o.name)
        .ok();
    let body = html! {
        @match &shown {
            Some(Once::Key(value)) => (layout::secret_once(
                "New API key",
                value,
                "Copy it now: keygate keeps only its hash and will not show it again.",
            )),
            Some(Once::Secret { client_id, secret }) => {
                p { "Client id: " code { (client_id) } }
                (layout::secret_once(
                    "New client secret",
                    secret,
                    "Copy it now: keygate keeps only its hash and will not show it again.",
                ))
            }
            None => {}
        }
        (facts(&a, state, org_name.as_deref()))
        p { a href={ "/console/audit?account=" (a.id) } { "Audit log of this account" } }
        @if writable { (state_actions(signed, &a, &base)) }
        h2 { "API keys" }
        (keys_table(signed, &keys, &base, writable))
        @if writable {
            form.panel method="post" action={ (base) "/keys" } aria-labelledby="h-issue-another-key" {
                h3 #h-issue-another-key { "Issue another key" }
                (csrf(signed))
                (form_name("key"))
                (Field::text("key", "name", "Key name").hint("Optional.").render(&ctx))
                (Field::text("key", "expires_at", "Key expires at (UTC)").kind("datetime-local").hint("Optional.").render(&ctx))
                button type="submit" { "Issue key" }
            }
            form.panel method="post" action={ (base) "/rotate" } aria-labelledby="h-rotate-keys" {
                h3 #h-rotate-keys { "Rotate keys" }
                (csrf(signed))
                (form_name("rotate"))
                (Field::text("rotate", "grace_period_seconds", "Grace period (seconds)").kind("number")
                    .value(Some("0"))
                    .hint("A new key is issued; the current keys keep working this long (0: they stop now).")
                    .render(&ctx))
                button type="submit" { "Rotate" }
            }
        }
        h2 { "Client credentials" }
        (credentials_table(signed, &credentials, &base, writable))
        @if writable {
            form.panel method="post" action={ (base) "/credentials" } aria-labelledby="h-create-a-client-credential" {
                h3 #h-create-a-client-credential { "Create a client credential" }
                (csrf(signed))
                (form_name("credential"))
                (Field::text("credential", "name", "Credential name").required().render(&ctx))
                button type="submit" { "Create credential" }
            }
        }
        h2 { "Federated identities" }
        p.muted { "Tokens of a trusted issuer (Kubernetes, GitHub Actions…) or client certificates whose SPIFFE id is bound here are credentials of this account: no keygate secret needed." }
        (bindings_table(signed, &bindings, &base, writable))
        @if writable {
            form.panel method="post" action={ (base) "/federated-identities" } aria-labelledby="h-bind-an-identity" {
                h3 #h-bind-an-identity { "Bind an identity" }
                (csrf(signed))
                (form_name("binding"))
                (Field::text("binding", "issuer", "Issuer").required().hint("A trusted issuer's name from the configuration, or x509 for client certificates.").render(&ctx))
                (Field::text("binding", "subject", "Subject").required().hint("The token's sub exactly, or a spiffe:// id.").render(&ctx))
                (Field::text("binding", "claims", "Claims").hint("Optional: name=value, separated by commas; each must be equal (repository=acme/app, environment=prod).").render(&ctx))
                button type="submit" { "Bind" }
            }
            (edit_form(signed, &a, &base, &ctx))
        }
    };
    layout::respond(
        status,
        layout::page(&a.name, signed, Some(Nav::Accounts), &ctx, body),
    )
}

fn facts(a: &ServiceAccount, state: &str, org_name: Option<&str>) -> Markup {
    html! {
        dl.facts {
            dt { "Id" } dd { code { (a.id) } }
            dt { "State" } dd { span class={ "state state-" (state) } { (state) } }
            dt { "Organization" } dd { a href={ "/console/organizations/" (a.organization_id) } {
                @if let Some(n) = org_name { (n) } @else { code { (a.organization_id) } }
            } }
            dt { "Project" } dd { @if let Some(p) = a.project_id { code { (p) } } @else { "—" } }
            dt { "Role" } dd { (a.role.as_str()) }
            dt { "Scopes" } dd { @if a.scopes.is_empty() { "none" } @else { (a.scopes.join(" ")) } }
            dt { "Description" } dd { (a.description.as_deref().unwrap_or("—")) }
            dt { "Last used" } dd { (layout::when_or(a.last_used_at, "never")) }
            dt { "Expires" } dd { (layout::when_or(a.expires_at, "never")) }
            dt { "Rate limit" } dd { (a.rate_limit.as_deref().unwrap_or("default")) }
            dt { "Quota" } dd { (quota_text(a.quota.as_ref())) }
            dt { "Created" } dd { (layout::when(a.created_at)) }
        }
    }
}

/// `1000 a day`, `500 in all`, or `none`.
fn quota_text(q: Option<&crate::store::Quota>) -> String {
    match q {
        None => "none".into(),
        Some(q) => match q.period {
            crate::store::QuotaPeriod::Day => format!("{} a day (UTC)", q.limit),
            crate::store::QuotaPeriod::Month => format!("{} a month (UTC)", q.limit),
            crate::store::QuotaPeriod::None => format!("{} in all", q.limit),
        },
    }
}

fn state_actions(signed: &Signed, a: &ServiceAccount, base: &str) -> Markup {
    html! {
        div.actions {
            @if a.enabled {
                form.inline method="post" action={ (base) "/state" } {
                    (csrf(signed))
                    input type="hidden" name="enabled" value="false";
                    button.danger type="submit" { "Disable" }
                }
            } @else {
                form.inline method="post" action={ (base) "/state" } {
                    (csrf(signed))
                    input type="hidden" name="enabled" value="true";
                    button type="submit" { "Enable" }
                }
            }
            (button_form(signed, &format!("{base}/close"), "Close account", true))
        }
    }
}

fn keys_table(signed: &Signed, keys: &[ApiKey], base: &str, writable: bool) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Key" } th scope="col" { "Created" }
                    th scope="col" { "Last used" } th scope="col" { "Stops" }
                    @if writable { th scope="col" { span.muted { "Action" } } }
                } }
                tbody {
                    @for k in keys {
                        tr {
                            td { (k.name.as_deref().unwrap_or("—")) }
                            td { code { (k.redacted) } }
                            td { (layout::when(k.created_at)) }
                            td { (layout::when_or(k.last_used_at, "never")) }
                            td { (layout::when_or(k.expires_at, "never")) }
                            @if writable {
                                td { (button_form(signed, &format!("{base}/keys/{}/revoke", k.id), "Revoke", true)) }
                            }
                        }
                    }
                    @if keys.is_empty() { tr { td colspan="6" { "No live API keys." } } }
                }
            }
        }
    }
}

fn credentials_table(
    signed: &Signed,
    credentials: &[ClientCredential],
    base: &str,
    writable: bool,
) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Client id" } th scope="col" { "Created" }
                    th scope="col" { "Last used" } th scope="col" { "Expires" }
                    @if writable { th scope="col" { span.muted { "Actions" } } }
                } }
                tbody {
                    @for c in credentials {
                        tr {
                            td { (c.name) }
                            td { code { (c.client_id) } }
                            td { (layout::when(c.created_at)) }
                            td { (layout::when_or(c.last_used_at, "never")) }
                            td { (layout::when_or(c.expires_at, "never")) }
                            @if writable {
                                td {
                                    (button_form(signed, &format!("{base}/credentials/{}/secret", c.id), "Regenerate secret", true))
                                    (button_form(signed, &format!("{base}/credentials/{}/delete", c.id), "Delete", true))
                                }
                            }
                        }
                    }
                    @if credentials.is_empty() { tr { td colspan="6" { "No client credentials." } } }
                }
            }
        }
    }
}

fn bindings_table(
    signed: &Signed,
    bindings: &[FederatedIdentity],
    base: &str,
    writable: bool,
) -> Markup {
    html! {
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Issuer" } th scope="col" { "Subject" } th scope="col" { "Claims" }
                    th scope="col" { "Bound" }
                    @if writable { th scope="col" { span.muted { "Actions" } } }
                } }
                tbody {
                    @for b in bindings {
                        tr {
                            td { (b.issuer) }
                            td { code { (b.subject) } }
                            td {
                                @for (name, value) in &b.claims { code { (name) "=" (value) } " " }
                                @if b.claims.is_empty() { span.muted { "none" } }
                            }
                            td { (layout::when(b.created_at)) }
                            @if writable {
                                td { (button_form(signed, &format!("{base}/federated-identities/{}/delete", b.id), "Unbind", true)) }
                            }
                        }
                    }
                    @if bindings.is_empty() { tr { td colspan="5" { "No federated identities." } } }
                }
            }
        }
    }
}

fn edit_form(signed: &Signed, a: &ServiceAccount, base: &str, ctx: &Ctx) -> Markup {
    let scopes = a.scopes.join(" ");
    // A `datetime-local` value: minutes, no zone (read back as UTC).
    let expires = a
        .expires_at
        .map(|e| rfc3339(e).chars().take(16).collect::<String>());
    html! {
        form.panel method="post" action=(base) aria-labelledby="h-edit" {
            h2 #h-edit { "Edit" }
            (csrf(signed))
            (form_name("edit"))
            (Field::text("edit", "name", "Name").value(Some(&a.name)).required().render(ctx))
            (Field::text("edit", "description", "Description").value(a.description.as_deref()).render(ctx))
            (Field::text("edit", "scopes", "Scopes").value(Some(&scopes)).hint("Separated by spaces or commas. Narrowing them ends tokens minted with the old ones.").render(ctx))
            (Field::text("edit", "expires_at", "Expires at (UTC)").kind("datetime-local").value(expires.as_deref()).hint("Empty: never.").render(ctx))
            (Field::text("edit", "rate_limit", "Rate limit").value(a.rate_limit.as_deref()).hint("Empty: the default limit.").render(ctx))
            button type="submit" { "Save changes" }
        }
    }
}

#[derive(Deserialize)]
pub(in crate::console) struct EditForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    rate_limit: Option<String>,
}

/// Renders a refused write on the account's page, or the failure alone
/// when the account itself is not to be seen.
pub(super) async fn refused(
    s: &ConsoleState,
    p: Posted<impl Sized>,
    account: Uuid,
    e: manage::Error,
) -> Response {
    if matches!(e, manage::Error::NotFound(_) | manage::Error::Internal) {
        return layout::failure(&p.signed, &e);
    }
    let (status, ctx) = Ctx::refused(&e, p.draft);
    render(s, &p.signed, account, ctx, status).await
}

pub(in crate::console) async fn edit(
    State(s): State<ConsoleState>,
    Path(account): Path<String>,
    p: Posted<EditForm>,
) -> Response {
    let account = match id(&account) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let f = &p.form;
    let patch = AccountPatch {
        name: Some(f.name.trim().to_string()),
        description: Some(optional(f.description.clone())),
        scopes: Some(scopes(&f.scopes)),
        expires_at: Some(time(f.expires_at.clone())),
        rate_limit: Some(optional(f.rate_limit.clone())),
        ..AccountPatch::default()
    };
    match s
        .manager
        .update_account(&p.signed.actor, account, patch)
        .await
    {
        Ok(_) => layout::see_other(&format!("/console/service-accounts/{account}?done=saved")),
        Err(e) => refused(&s, p, account, e).await,
    }
}

#[derive(Deserialize)]
pub(in crate::console) struct StateForm {
    #[serde(default)]
    enabled: String,
}

pub(in crate::console) async fn state(
    State(s): State<ConsoleState>,
    Path(account): Path<String>,
    p: Posted<StateForm>,
) -> Response {
    let account = match id(&account) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let enabled = match p.form.enabled.as_str() {
        "true" => true,
        "false" => false,
        _ => return layout::bad_request("enabled must be true or false."),
    };
    let base = format!("/console/service-accounts/{account}");
    if !enabled && !p.confirmed {
        return layout::confirm(
            &p.signed,
            "Disable this account?",
            "Every key, credential and token of the account stops working at once, on every \
             replica. You can enable it again later.",
            &format!("{base}/state"),
            "Disable",
            &p.draft,
            &base,
        );
    }
    let patch = AccountPatch {
        enabled: Some(enabled),
        ..AccountPatch::default()
    };
    match s
        .manager
        .update_account(&p.signed.actor, account, patch)
        .await
    {
        Ok(_) => {
            let done = if enabled { "enabled" } else { "disabled" };
            layout::see_other(&format!("{base}?done={done}"))
        }
        Err(e) => refused(&s, p, account, e).await,
    }
}

#[derive(Deserialize)]
pub(in crate::console) struct Nothing {}

pub(in crate::console) async fn close(
    State(s): State<ConsoleState>,
    Path(account): Path<String>,
    p: Posted<Nothing>,
) -> Response {
    let account = match id(&account) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let base = format!("/console/service-accounts/{account}");
    if !p.confirmed {
        return layout::confirm(
            &p.signed,
            "Close this account?",
            "Closing revokes every key and credential of the account for good. This cannot be \
             undone.",
            &format!("{base}/close"),
            "Close account",
            &p.draft,
            &base,
        );
    }
    match s.manager.close_account(&p.signed.actor, account).await {
        Ok(_) => layout::see_other(&format!("{base}?done=closed")),
        Err(e) => refused(&s, p, account, e).await,
    }
}
