//! The audit log (by account), the replicas with their revisions, and the
//! signing keys.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::super::controls::{csrf, form_name, Field};
use super::super::form::Posted;
use super::super::layout::{self, Ctx, Nav};
use super::super::session::Signed;
use super::super::ConsoleState;
use super::orgs::pager;
use super::query_id;
use crate::jwt::signing;

#[derive(Deserialize)]
pub(in crate::console) struct AuditQuery {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

pub(in crate::console) async fn audit(
    State(s): State<ConsoleState>,
    signed: Signed,
    Query(q): Query<AuditQuery>,
) -> Response {
    let (account, after) = match (query_id(q.account.as_deref()), query_id(q.after.as_deref())) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let listing = match s
        .manager
        .audit_events(&signed.actor, account, after, None)
        .await
    {
        Ok(l) => l,
        Err(e) => return layout::failure(&signed, &e),
    };
    let next = listing
        .has_more
        .then(|| listing.data.last().map(|e| e.id))
        .flatten();
    let base = match account {
        Some(a) => format!("/console/audit?account={a}&"),
        None => "/console/audit?".to_string(),
    };
    let ctx = Ctx::default();
    let account_text = account.map(|a| a.to_string());
    let body = html! {
        form.panel method="get" action="/console/audit" aria-label="Filter the audit log" {
            (Field::text("audit", "account", "Service account id")
                .value(account_text.as_deref())
                .hint("Only what this account did, or what was done to it, its keys and credentials.")
                .render(&ctx))
            div.actions {
                button type="submit" { "Filter" }
                @if account.is_some() { a href="/console/audit" { "Show all" } }
            }
        }
        div.table-wrap {
            table {
                caption { "Oldest first" }
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Target" }
                    th scope="col" { "By" } th scope="col" { "Details" }
                } }
                tbody {
                    @for e in &listing.data {
                        tr {
                            td { (layout::when(e.at)) }
                            td { code { (e.action) } }
                            td {
                                (e.target_type) " "
                                @if e.target_type == "service_account" {
                                    a href={ "/console/service-accounts/" (e.target_id) } { code { (e.target_id) } }
                                } @else {
                                    code { (e.target_id) }
                                }
                            }
                            td { @if let Some(by) = e.actor_id { a href={ "/console/service-accounts/" (by) } { code { (by) } } } @else { "keygate" } }
                            td { code { (e.details.to_string()) } }
                        }
                    }
                    @if listing.data.is_empty() { tr { td colspan="5" { "No events." } } }
                }
            }
        }
        (pager(&base, after.is_some(), next))
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Audit log", &signed, Some(Nav::Audit), &ctx, body),
    )
}

pub(in crate::console) async fn replicas(
    State(s): State<ConsoleState>,
    signed: Signed,
) -> Response {
    let own = s.authn.cache().freshness().revision();
    let mut replicas = match s.manager.replicas(&signed.actor).await {
        Ok(r) => r,
        Err(e) => return layout::failure(&signed, &e),
    };
    // This replica knows its own revision better than its last heartbeat.
    for r in replicas.iter_mut().filter(|r| r.id == s.replica_id) {
        r.revision = r.revision.max(own);
    }
    let newest = replicas.iter().map(|r| r.revision).max().unwrap_or(own);
    let now = s.clock.now_ms();
    let staleness = s.authn.cache().freshness().staleness_ms(now).max(0);
    let ctx = Ctx::default();
    let body = html! {
        p { "The newest revision applied is " strong { (newest) } ". A replica behind it has not yet applied every write (a revocation takes effect on a replica when it has)." }
        p { "This replica last heard from the store " strong { (staleness / 1000) " s" } " ago (past " code { "store.max_staleness" } " it refuses every credential)." }
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Replica" } th scope="col" { "Host" } th scope="col" { "Revision" }
                    th scope="col" { "Behind" } th scope="col" { "Last heartbeat" } th scope="col" { "Started" }
                } }
                tbody {
                    @for r in &replicas {
                        tr {
                            td { code { (r.id) } @if r.id == s.replica_id { " (this one)" } }
                            td { (r.hostname) }
                            td { (r.revision) }
                            td { @if r.revision >= newest { "caught up" } @else { (newest - r.revision) " revisions" } }
                            td { ((now - r.heartbeat_at).max(0) / 1000) " s ago" }
                            td { (layout::when(r.started_at)) }
                        }
                    }
                    @if replicas.is_empty() { tr { td colspan="6" { "No live replica has sent a heartbeat yet." } } }
                }
            }
        }
    };
    layout::respond(
        StatusCode::OK,
        layout::page("Replicas", &signed, Some(Nav::Replicas), &ctx, body),
    )
}

pub(in crate::console) async fn signing_keys(
    State(s): State<ConsoleState>,
    signed: Signed,
) -> Response {
    render_keys(&s, &signed, Ctx::default(), StatusCode::OK).await
}

async fn render_keys(s: &ConsoleState, signed: &Signed, ctx: Ctx, status: StatusCode) -> Response {
    let keys = match s.manager.signing_keys(&signed.actor).await {
        Ok(k) => k,
        Err(e) => return layout::failure(signed, &e),
    };
    let now = s.clock.now_ms();
    // The key that signs now: the newest active one (as the key ring picks).
    let signer = keys
        .iter()
        .filter(|k| k.activates_at <= now && k.retires_at.is_none_or(|r| r > now))
        .max_by_key(|k| (k.activates_at, &k.kid))
        .map(|k| &k.kid);
    let body = html! {
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Key id" } th scope="col" { "Algorithm" } th scope="col" { "State" }
                    th scope="col" { "Created" } th scope="col" { "Signs from" } th scope="col" { "Retires" }
                } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { code { (k.kid) } }
                            td { (k.algorithm) }
                            td { @if k.activates_at > now { "published, not signing yet" } @else if Some(&k.kid) == signer { "signing" } @else { "verifies only, until it retires" } }
                            td { (layout::when(k.created_at)) }
                            td { (layout::when(k.activates_at)) }
                            td { (layout::when_or(k.retires_at, "—")) }
                        }
                    }
                }
            }
        }
        form.panel method="post" action="/console/signing-keys/rotate" aria-labelledby="h-rotate" {
            h2 #h-rotate { "Rotate" }
            (csrf(signed))
            (form_name("rotate"))
            (Field::text("rotate", "activate_after_seconds", "Activate after (seconds)").kind("number").value(Some("120"))
                .hint("The new key is published at once and signs after this delay, so relying parties' caches see it first.")
                .render(&ctx))
            button type="submit" { "Rotate signing key" }
        }
    };
    layout::respond(
        status,
        layout::page("Signing keys", signed, Some(Nav::SigningKeys), &ctx, body),
    )
}

#[derive(Deserialize)]
pub(in crate::console) struct RotateForm {
    #[serde(default)]
    activate_after_seconds: String,
}

pub(in crate::console) async fn rotate_signing_key(
    State(s): State<ConsoleState>,
    p: Posted<RotateForm>,
) -> Response {
    let text = p.form.activate_after_seconds.trim();
    let Ok(delay) = (if text.is_empty() {
        Ok(120)
    } else {
        text.parse::<u64>()
    }) else {
        let e = crate::manage::Error::Invalid {
            param: "activate_after_seconds",
            message: "must be a whole number of seconds".into(),
        };
        let (status, ctx) = Ctx::refused(&e, p.draft);
        return render_keys(&s, &p.signed, ctx, status).await;
    };
    if !p.confirmed {
        return layout::confirm(
            &p.signed,
            "Rotate the signing key?",
            &format!(
                "A new key is published now and signs tokens in {delay} seconds; the current \
                 keys retire once every token they signed has expired."
            ),
            "/console/signing-keys/rotate",
            "Rotate signing key",
            &p.draft,
            "/console/signing-keys",
        );
    }
    let alg = signing::jwt_algorithm(s.tokens.algorithm);
    match s
        .manager
        .rotate_signing_key(
            &p.signed.actor,
            alg,
            Duration::from_secs(delay),
            s.tokens.max_ttl,
        )
        .await
    {
        Ok(_) => {
            render_keys(
                &s,
                &p.signed,
                Ctx::done("New signing key published."),
                StatusCode::OK,
            )
            .await
        }
        Err(e) => {
            let (status, ctx) = Ctx::refused(&e, p.draft);
            render_keys(&s, &p.signed, ctx, status).await
        }
    }
}
