//! The list of service accounts (filtered by organization, project and
//! state) and the form that creates one.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;
use uuid::Uuid;

use super::super::controls::{csrf, form_name, select, Field};
use super::super::form::{optional, scopes, time, Posted};
use super::super::layout::{self, Ctx, Nav};
use super::super::session::{Once, Signed};
use super::super::ConsoleState;
use super::account_writes::shown;
use super::orgs::pager;
use super::{query_id, NoSuchPage};
use crate::manage::{accounts_state, Cursor, NewAccount, NewKey};
use crate::store::{AccountFilter, ServiceAccount};

#[derive(Deserialize, Default)]
pub(in crate::console) struct ListQuery {
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

/// A list query, its ids read.
struct Filter {
    org: Option<Uuid>,
    project: Option<Uuid>,
    state: Option<String>,
    after: Option<Uuid>,
}

impl Filter {
    fn read(q: &ListQuery) -> Result<Self, NoSuchPage> {
        Ok(Self {
            org: query_id(q.organization_id.as_deref())?,
            project: query_id(q.project_id.as_deref())?,
            state: q.state.clone().filter(|s| !s.is_empty()),
            after: query_id(q.after.as_deref())?,
        })
    }

    /// The query string of this filter, without the page.
    fn query(&self) -> String {
        let mut q = String::from("/console/service-accounts?");
        if let Some(o) = self.org {
            q.push_str(&format!("organization_id={o}&"));
        }
        if let Some(p) = self.project {
            q.push_str(&format!("project_id={p}&"));
        }
        if let Some(s) = &self.state {
            q.push_str(&format!("state={}&", urlencode(s)));
        }
        q
    }
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

pub(in crate::console) async fn list(
    State(s): State<ConsoleState>,
    signed: Signed,
    Query(q): Query<ListQuery>,
) -> Response {
    let filter = match Filter::read(&q) {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    render(&s, &signed, &filter, Ctx::default(), StatusCode::OK).await
}

async fn render(
    s: &ConsoleState,
    signed: &Signed,
    f: &Filter,
    ctx: Ctx,
    status: StatusCode,
) -> Response {
    let actor = &signed.actor;
    let states = match f.state.as_deref().map(accounts_state).transpose() {
        Ok(st) => st.into_iter().collect(),
        Err(e) => return layout::failure(signed, &e),
    };
    let wanted = AccountFilter {
        organization_id: f.org,
        project_id: f.project,
        states,
        ..AccountFilter::default()
    };
    let listing = match s
        .manager
        .accounts(actor, wanted, Cursor::after(f.after), None)
        .await
    {
        Ok(l) => l,
        Err(e) => return layout::failure(signed, &e),
    };
    let orgs = match s.manager.organizations(actor, None, Some(100)).await {
        Ok(o) => o.data,
        Err(e) => return layout::failure(signed, &e),
    };
    // Projects to create in: the filtered organization's (or the owner's own).
    let org_for_projects = f.org.or((!actor.admin).then_some(actor.organization_id));
    let projects = match org_for_projects {
        Some(org) => s
            .manager
            .projects(actor, org, None, Some(100))
            .await
            .map(|l| l.data)
            .unwrap_or_default(),
        None => Vec::new(),
    };
    let now = s.manager.now();
    let next = listing
        .has_more
        .then(|| listing.data.last().map(|a| a.id))
        .flatten();
    let org_options: Vec<(String, String)> = orgs
        .iter()
        .map(|o| (o.id.to_string(), o.name.clone()))
        .collect();
    let mut filter_orgs = vec![(String::new(), "All".to_string())];
    filter_orgs.extend(org_options.iter().cloned());
    let mut project_options = Vec::new();
    if actor.project_id.is_none() || actor.admin {
        project_options.push((String::new(), "None: the whole organization".to_string()));
    }
    project_options.extend(projects.iter().map(|p| (p.id.to_string(), p.name.clone())));
    let state_options: Vec<(String, String)> = ["", "active", "disabled", "expired", "closed"]
        .iter()
        .map(|s| {
            (
                s.to_string(),
                if s.is_empty() { "Any" } else { s }.to_string(),
            )
        })
        .collect();
    let selected_org = f.org.map(|o| o.to_string());
    let body = html! {
        form.panel method="get" action="/console/service-accounts" aria-labelledby="h-filter" {
            h2 #h-filter { "Filter" }
            (select(&ctx, "filter", "organization_id", "Organization", &filter_orgs, selected_org.as_deref()))
            (select(&ctx, "filter", "state", "State", &state_options, f.state.as_deref()))
            @if let Some(p) = f.project { input type="hidden" name="project_id" value=(p); }
            button type="submit" { "Filter" }
        }
        div.table-wrap {
            table {
                caption { "Service accounts" }
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "State" } th scope="col" { "Role" }
                    th scope="col" { "Scopes" } th scope="col" { "Last used" } th scope="col" { "Created" }
                } }
                tbody {
                    @for a in &listing.data { (row(a, now)) }
                    @if listing.data.is_empty() {
                        tr { td colspan="6" { "No service accounts match." } }
                    }
                }
            }
        }
        (pager(&f.query(), f.after.is_some(), next))
        @if !org_options.is_empty() {
            form.panel method="post" action="/console/service-accounts" aria-labelledby="h-create-a-service-account" {
                h2 #h-create-a-service-account { "Create a service account" }
                (csrf(signed))
                (form_name("account"))
                (select(&ctx, "account", "organization_id", "Organization", &org_options, selected_org.as_deref()))
                @if !project_options.is_empty() {
                    (select(&ctx, "account", "project_id", "Project", &project_options, f.project.map(|p| p.to_string()).as_deref()))
                } @else {
                    p.hint { "To create an account in a project, filter by its organization first." }
                }
                (Field::text("account", "name", "Name").required().hint("Unique within the organization.").render(&ctx))
                (Field::text("account", "description", "Description").render(&ctx))
                (select(&ctx, "account", "role", "Role", &[
                    ("member".into(), "member: uses APIs".into()),
                    ("owner".into(), "owner: manages its organization or project".into()),
                ], Some("member")))
                (Field::text("account", "scopes", "Scopes").hint("Separated by spaces or commas, e.g. orders:read orders:write.").render(&ctx))
                (Field::text("account", "expires_at", "Expires at (UTC)").kind("datetime-local").hint("Optional.").render(&ctx))
                (Field::text("account", "rate_limit", "Rate limit").hint("Optional, e.g. 100/s or 50/m burst 10.").render(&ctx))
                button type="submit" { "Create account" }
            }
        }
    };
    layout::respond(
        status,
        layout::page("Service accounts", signed, Some(Nav::Accounts), &ctx, body),
    )
}

fn row(a: &ServiceAccount, now: i64) -> maud::Markup {
    let state = a.state(now).as_str();
    html! {
        tr {
            td { a href={ "/console/service-accounts/" (a.id) } { (a.name) } }
            td { span class={ "state state-" (state) } { (state) } }
            td { (a.role.as_str()) }
            td { (a.scopes.join(" ")) }
            td { (layout::when_or(a.last_used_at, "never")) }
            td { (layout::when(a.created_at)) }
        }
    }
}

#[derive(Deserialize)]
pub(in crate::console) struct CreateForm {
    #[serde(default)]
    organization_id: String,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    rate_limit: Option<String>,
}

pub(in crate::console) async fn create(
    State(s): State<ConsoleState>,
    p: Posted<CreateForm>,
) -> Response {
    let f = p.form;
    let org = Uuid::parse_str(f.organization_id.trim());
    let project = optional(f.project_id).map(|p| Uuid::parse_str(&p));
    let (org, project) = match (org, project.transpose()) {
        (Ok(o), Ok(p)) => (o, p),
        (Err(_), _) => {
            return refused(
                &s,
                p.signed,
                p.draft,
                "organization_id",
                "choose an organization",
            )
            .await
        }
        (_, Err(_)) => {
            return refused(&s, p.signed, p.draft, "project_id", "choose a project").await
        }
    };
    let new = NewAccount {
        organization_id: org,
        project_id: project,
        name: f.name,
        description: optional(f.description),
        role: optional(f.role),
        scopes: scopes(&f.scopes),
        expires_at: time(f.expires_at),
        rate_limit: optional(f.rate_limit),
        key: Some(NewKey::default()),
        ..NewAccount::default()
    };
    match s.manager.create_account(&p.signed.actor, new).await {
        Ok(w) => {
            let created = w.value;
            match created.key {
                Some(k) => {
                    let key = Once::Key(k.value);
                    shown(&s, &p.signed, created.account.id, key, "created")
                }
                None => layout::see_other(&format!(
                    "/console/service-accounts/{}?done=created",
                    created.account.id
                )),
            }
        }
        Err(e) => {
            let (status, ctx) = Ctx::refused(&e, p.draft);
            let filter = Filter {
                org: Some(org),
                project: None,
                state: None,
                after: None,
            };
            render(&s, &p.signed, &filter, ctx, status).await
        }
    }
}

async fn refused(
    s: &ConsoleState,
    signed: Signed,
    draft: super::super::form::Draft,
    param: &'static str,
    message: &str,
) -> Response {
    let e = crate::manage::Error::Invalid {
        param,
        message: message.into(),
    };
    let (status, ctx) = Ctx::refused(&e, draft);
    let filter = Filter {
        org: None,
        project: None,
        state: None,
        after: None,
    };
    render(s, &signed, &filter, ctx, status).await
}
