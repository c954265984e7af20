//! `/v1/organizations` and `/v1/projects`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;

use super::extract::{nullable, path_id, query_id, JsonBody, QueryParams};
use super::views::{OrganizationView, Page, ProjectView};
use super::{written, AdminState, ApiError};
use crate::manage::{Actor, NewOrganization, NewProject, OrganizationPatch, ProjectPatch};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateOrganization {
    name: String,
    #[serde(default)]
    abbreviation: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateOrganization {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    abbreviation: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PageParams {
    #[serde(default)]
    pub(super) limit: Option<u32>,
    #[serde(default)]
    pub(super) after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateProject {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateProject {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    archived: Option<bool>,
}

pub(super) async fn create(
    State(s): State<AdminState>,
    actor: Actor,
    JsonBody(b): JsonBody<CreateOrganization>,
) -> Result<Response, ApiError> {
    let w = s
        .manager
        .create_organization(
            &actor,
            NewOrganization {
                name: b.name,
                abbreviation: b.abbreviation,
            },
        )
        .await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(OrganizationView::from(w.value)),
    ))
}

pub(super) async fn list(
    State(s): State<AdminState>,
    actor: Actor,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Page<OrganizationView>>, ApiError> {
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s.manager.organizations(&actor, after, q.limit).await?;
    Ok(Json(Page::from(listing, |o| o.id, OrganizationView::from)))
}

pub(super) async fn get(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    let id = path_id(&id, "organization")?;
    Ok(Json(s.manager.organization(&actor, id).await?.into()))
}

pub(super) async fn update(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UpdateOrganization>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "organization")?;
    let w = s
        .manager
        .update_organization(
            &actor,
            id,
            OrganizationPatch {
                name: b.name,
                abbreviation: b.abbreviation,
            },
        )
        .await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(OrganizationView::from(w.value)),
    ))
}

pub(super) async fn delete(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "organization")?;
    let w = s.manager.delete_organization(&actor, id).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

pub(super) async fn create_project(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<CreateProject>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "organization")?;
    let w = s
        .manager
        .create_project(&actor, id, NewProject { name: b.name })
        .await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(ProjectView::from(w.value)),
    ))
}

pub(super) async fn list_projects(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Page<ProjectView>>, ApiError> {
    let id = path_id(&id, "organization")?;
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s.manager.projects(&actor, id, after, q.limit).await?;
    Ok(Json(Page::from(listing, |p| p.id, ProjectView::from)))
}

pub(super) async fn get_project(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let id = path_id(&id, "project")?;
    Ok(Json(s.manager.project(&actor, id).await?.into()))
}

pub(super) async fn update_project(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UpdateProject>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "project")?;
    let w = s
        .manager
        .update_project(
            &actor,
            id,
            ProjectPatch {
                name: b.name,
                archived: b.archived,
            },
        )
        .await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(ProjectView::from(w.value)),
    ))
}
