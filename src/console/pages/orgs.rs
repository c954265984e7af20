//! Organizations and their projects.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use uuid::Uuid;

use super::super::controls::{csrf, form_name, Field};
use super::super::form::{optional, Posted};
use super::super::layout::{self, Ctx, Nav};
use super::super::session::Signed;
use super::super::ConsoleState;
use super::{id, query_id};
use crate::manage::{self, NewOrganization, NewProject};

#[derive(Deserialize)]
pub(in crate::console) struct PageQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    done: Option<String>,
}

pub(in crate::console) async fn list(
    State(s): State<ConsoleState>,
    signed: Signed,
    Query(q): Query<PageQuery>,
) -> Response {
    let after = match query_id(q.after.as_deref()) {
        Ok(a) => a,
        Err(r) => return r.into_response(),
    };
    let ctx = match q.done.as_deref() {
        Some("created") => Ctx::done("Organization created."),
        _ => Ctx::default(),
    };
    render_list(&s, &signed, after, ctx, StatusCode::OK).await
}

async fn render_list(
    s: &ConsoleState,
    signed: &Signed,
    after: Option<Uuid>,
    ctx: Ctx,
    status: StatusCode,
) -> Response {
    let listing = match s.manager.organizations(&signed.actor, after, None).await {
        Ok(l) => l,
        Err(e) => return layout::failure(signed, &e),
    };
    let next = listing
        .has_more
        .then(|| listing.data.last().map(|o| o.id))
        .flatten();
    let body = html! {
        div.table-wrap {
            table {
                caption { "Organizations you may see" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Abbreviation" } th scope="col" { "Created" } } }
                tbody {
                    @for o in &listing.data {
                        tr {
                            td { a href={ "/console/organizations/" (o.id) } { (o.name) } }
                            td { (o.abbreviation.as_deref().unwrap_or("")) }
                            td { (layout::when(o.created_at)) }
                        }
                    }
                    @if listing.data.is_empty() {
                        tr { td colspan="3" { "No organizations yet." } }
                    }
                }
            }
        }
        (pager("/console/organizations?", after.is_some(), next))
        @if signed.actor.admin {
            form.panel method="post" action="/console/organizations" aria-labelledby="h-create-an-organization" {
                h2 #h-create-an-organization { "Create an organization" }
                (csrf(signed))
                (form_name("org"))
                (Field::text("org", "name", "Name").required().render(&ctx))
                (Field::text("org", "abbreviation", "Abbreviation").hint("Optional; a short code such as ACME.").render(&ctx))
                button type="submit" { "Create organization" }
            }
        }
    };
    layout::respond(
        status,
        layout::page(
            "Organizations",
            signed,
            Some(Nav::Organizations),
            &ctx,
            body,
        ),
    )
}

/// Links to the first and the next page of a list.
pub(super) fn pager(base: &str, paged: bool, next: Option<Uuid>) -> Markup {
    html! {
        nav.pager aria-label="Pages" {
            @if paged { a href=(base) { "First page" } }
            @if let Some(n) = next { a href={ (base) "after=" (n) } { "Next page" } }
        }
    }
}

#[derive(Deserialize)]
pub(in crate::console) struct OrgForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    abbreviation: Option<String>,
}

pub(in crate::console) async fn create(
    State(s): State<ConsoleState>,
    p: Posted<OrgForm>,
) -> Response {
    let new = NewOrganization {
        name: p.form.name,
        abbreviation: optional(p.form.abbreviation),
        max_credential_lifetime: None,
    };
    match s.manager.create_organization(&p.signed.actor, new).await {
        Ok(w) => layout::see_other(&format!(
            "/console/organizations/{}?done=created",
            w.value.id
        )),
        Err(e) => {
            let (status, ctx) = Ctx::refused(&e, p.draft);
            render_list(&s, &p.signed, None, ctx, status).await
        }
    }
}

pub(in crate::console) async fn show(
    State(s): State<ConsoleState>,
    signed: Signed,
    Path(org): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let (org, after) = match (id(&org), query_id(q.after.as_deref())) {
        (Ok(o), Ok(a)) => (o, a),
        (Err(r), _) | (_, Err(r)) => return r.into_response(),
    };
    let ctx = match q.done.as_deref() {
        Some("created") => Ctx::done("Organization created."),
        Some("project") => Ctx::done("Project created."),
        _ => Ctx::default(),
    };
    render_org(&s, &signed, org, after, ctx, StatusCode::OK).await
}

async fn render_org(
    s: &ConsoleState,
    signed: &Signed,
    org: Uuid,
    after: Option<Uuid>,
    ctx: Ctx,
    status: StatusCode,
) -> Response {
    let actor = &signed.actor;
    let o = match s.manager.organization(actor, org).await {
        Ok(o) => o,
        Err(e) => return layout::failure(signed, &e),
    };
    let projects = match s.manager.projects(actor, org, after, None).await {
        Ok(p) => p,
        Err(e) => return layout::failure(signed, &e),
    };
    let next = projects
        .has_more
        .then(|| projects.data.last().map(|p| p.id))
        .flatten();
    let base = format!("/console/organizations/{org}?");
    let body = html! {
        dl.facts {
            dt { "Id" } dd { code { (o.id) } }
            dt { "Abbreviation" } dd { (o.abbreviation.as_deref().unwrap_or("—")) }
            dt { "Created" } dd { (layout::when(o.created_at)) }
        }
        p { a href={ "/console/service-accounts?organization_id=" (o.id) } { "Service accounts of " (o.name) } }
        h2 { "Projects" }
        div.table-wrap {
            table {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Archived" } th scope="col" { "Created" } th scope="col" { "Accounts" } } }
                tbody {
                    @for p in &projects.data {
                        tr {
                            td { (p.name) }
                            td { @if p.archived { "archived" } @else { "no" } }
                            td { (layout::when(p.created_at)) }
                            td { a href={ "/console/service-accounts?organization_id=" (o.id) "&project_id=" (p.id) } { "Service accounts" } }
                        }
                    }
                    @if projects.data.is_empty() {
                        tr { td colspan="4" { "No projects." } }
                    }
                }
            }
        }
        (pager(&base, after.is_some(), next))
        @if s.manager.may_create_in(actor, o.id) && actor.project_id.is_none() {
            form.panel method="post" action={ "/console/organizations/" (o.id) "/projects" } aria-labelledby="h-create-a-project" {
                h2 #h-create-a-project { "Create a project" }
                (csrf(signed))
                (form_name("project"))
                (Field::text("project", "name", "Name").required().render(&ctx))
                button type="submit" { "Create project" }
            }
        }
    };
    layout::respond(
        status,
        layout::page(&o.name, signed, Some(Nav::Organizations), &ctx, body),
    )
}

#[derive(Deserialize)]
pub(in crate::console) struct ProjectForm {
    #[serde(default)]
    name: String,
}

pub(in crate::console) async fn create_project(
    State(s): State<ConsoleState>,
    Path(org): Path<String>,
    p: Posted<ProjectForm>,
) -> Response {
    let org = match id(&org) {
        Ok(o) => o,
        Err(r) => return r.into_response(),
    };
    let new = NewProject { name: p.form.name };
    match s.manager.create_project(&p.signed.actor, org, new).await {
        Ok(_) => layout::see_other(&format!("/console/organizations/{org}?done=project")),
        Err(e @ (manage::Error::NotFound(_) | manage::Error::Internal)) => {
            layout::failure(&p.signed, &e)
        }
        Err(e) => {
            let (status, ctx) = Ctx::refused(&e, p.draft);
            render_org(&s, &p.signed, org, None, ctx, status).await
        }
    }
}
