//! `/v1/organizations` and `/v1/projects`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::extract::{nullable, path_id, query_id, Caller, JsonBody, QueryParams};
use super::openapi::Refusals;
use super::views::{OrganizationView, Page, ProjectView};
use super::{written, AdminState, ApiError};
use crate::manage::{NewOrganization, NewProject, OrganizationPatch, ProjectPatch};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateOrganization {
    /// Unique among organizations.
    #[schema(schema_with = super::openapi::name)]
    name: String,
    #[serde(default)]
    #[schema(schema_with = super::openapi::abbreviation)]
    abbreviation: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::lifetime)]
    max_credential_lifetime: Option<String>,
}

/// Only the fields present change; `null` clears a nullable one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateOrganization {
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_name)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::openapi::abbreviation)]
    abbreviation: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::openapi::lifetime)]
    max_credential_lifetime: Option<Option<String>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PageParams {
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    pub(super) limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    pub(super) after: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateProject {
    #[schema(schema_with = super::openapi::name)]
    name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateProject {
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_name)]
    name: Option<String>,
    #[serde(default)]
    archived: Option<bool>,
}

#[utoipa::path(
    post,
    operation_id = "createOrganization",
    path = "/v1/organizations",
    tag = "organizations",
    summary = "Create an organization (platform admins)",
    request_body(content = CreateOrganization, content_type = "application/json"),
    responses((status = 201, description = "Created", body = OrganizationView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    JsonBody(b, _): JsonBody<CreateOrganization>,
) -> Result<Response, ApiError> {
    let w = s
        .manager
        .create_organization(
            &actor,
            NewOrganization {
                name: b.name,
                abbreviation: b.abbreviation,
                max_credential_lifetime: b.max_credential_lifetime,
            },
        )
        .await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(OrganizationView::from(w.value)),
    ))
}

#[utoipa::path(
    get,
    operation_id = "listOrganizations",
    path = "/v1/organizations",
    tag = "organizations",
    summary = "List the organizations the caller can see",
    params(PageParams),
    responses((status = 200, description = "OK", body = Page<OrganizationView>), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Page<OrganizationView>>, ApiError> {
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s.manager.organizations(&actor, after, q.limit).await?;
    Ok(Json(Page::from(listing, |o| o.id, OrganizationView::from)))
}

#[utoipa::path(
    get,
    operation_id = "getOrganization",
    path = "/v1/organizations/{id}",
    tag = "organizations",
    summary = "Get an organization",
    params(("id" = Uuid, Path, description = "The organization's id")),
    responses((status = 200, description = "OK", body = OrganizationView), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn get(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<OrganizationView>, ApiError> {
    let id = path_id(&id, "organization")?;
    Ok(Json(s.manager.organization(&actor, id).await?.into()))
}

#[utoipa::path(
    patch,
    operation_id = "updateOrganization",
    path = "/v1/organizations/{id}",
    tag = "organizations",
    summary = "Update an organization",
    params(("id" = Uuid, Path, description = "The organization's id")),
    request_body(content = UpdateOrganization, content_type = "application/json"),
    responses((status = 200, description = "Updated", body = OrganizationView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<UpdateOrganization>,
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
                max_credential_lifetime: b.max_credential_lifetime,
            },
        )
        .await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(OrganizationView::from(w.value)),
    ))
}

#[utoipa::path(
    delete,
    operation_id = "deleteOrganization",
    path = "/v1/organizations/{id}",
    tag = "organizations",
    summary = "Delete an organization with no open accounts",
    params(("id" = Uuid, Path, description = "The organization's id")),
    responses((status = 204, description = "Done", headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn delete(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "organization")?;
    let w = s.manager.delete_organization(&actor, id).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

#[utoipa::path(
    post,
    operation_id = "createProject",
    path = "/v1/organizations/{id}/projects",
    tag = "projects",
    summary = "Create a project",
    params(("id" = Uuid, Path, description = "The organization's id")),
    request_body(content = CreateProject, content_type = "application/json"),
    responses((status = 201, description = "Created", body = ProjectView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn create_project(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<CreateProject>,
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

#[utoipa::path(
    get,
    operation_id = "listProjects",
    path = "/v1/organizations/{id}/projects",
    tag = "projects",
    summary = "List an organization's projects",
    params(("id" = Uuid, Path, description = "The organization's id"), PageParams),
    responses((status = 200, description = "OK", body = Page<ProjectView>), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn list_projects(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Page<ProjectView>>, ApiError> {
    let id = path_id(&id, "organization")?;
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s.manager.projects(&actor, id, after, q.limit).await?;
    Ok(Json(Page::from(listing, |p| p.id, ProjectView::from)))
}

#[utoipa::path(
    get,
    operation_id = "getProject",
    path = "/v1/projects/{id}",
    tag = "projects",
    summary = "Get a project",
    params(("id" = Uuid, Path, description = "The project's id")),
    responses((status = 200, description = "OK", body = ProjectView), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn get_project(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<ProjectView>, ApiError> {
    let id = path_id(&id, "project")?;
    Ok(Json(s.manager.project(&actor, id).await?.into()))
}

#[utoipa::path(
    patch,
    operation_id = "updateProject",
    path = "/v1/projects/{id}",
    tag = "projects",
    summary = "Rename or archive a project",
    params(("id" = Uuid, Path, description = "The project's id")),
    request_body(content = UpdateProject, content_type = "application/json"),
    responses((status = 200, description = "Updated", body = ProjectView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn update_project(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<UpdateProject>,
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
