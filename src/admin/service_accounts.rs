//! `/v1/service-accounts` and their API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{nullable, path_id, query_id, JsonBody, QueryParams};
use super::views::{AccountView, KeyView, Page};
use super::{written, AdminState, ApiError};
use crate::manage::{accounts_state, AccountPatch, Actor, NewAccount};
use crate::store::AccountFilter;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateAccount {
    organization_id: Uuid,
    #[serde(default)]
    project_id: Option<Uuid>,
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    rate_limit: Option<String>,
    #[serde(default = "yes")]
    create_api_key: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateAccount {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    rate_limit: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    after: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IssueKey {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Rotate {
    #[serde(default)]
    grace_period_seconds: u64,
}

#[derive(Serialize)]
pub(super) struct KeyList {
    data: Vec<KeyView>,
}

pub(super) async fn create(
    State(s): State<AdminState>,
    actor: Actor,
    JsonBody(b): JsonBody<CreateAccount>,
) -> Result<Response, ApiError> {
    let new = NewAccount {
        organization_id: b.organization_id,
        project_id: b.project_id,
        name: b.name,
        description: b.description,
        role: b.role,
        scopes: b.scopes,
        expires_at: b.expires_at,
        rate_limit: b.rate_limit,
        create_api_key: b.create_api_key,
    };
    let w = s.manager.create_account(&actor, new).await?;
    let (account, key) = w.value;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(AccountView::new(account, s.manager.now(), key)),
    ))
}

pub(super) async fn list(
    State(s): State<AdminState>,
    actor: Actor,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<AccountView>>, ApiError> {
    let filter = AccountFilter {
        organization_id: query_id(q.organization_id.as_deref(), "organization_id")?,
        project_id: query_id(q.project_id.as_deref(), "project_id")?,
        state: q.state.as_deref().map(accounts_state).transpose()?,
    };
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s.manager.accounts(&actor, filter, after, q.limit).await?;
    let now = s.manager.now();
    Ok(Json(Page::from(
        listing,
        |a| a.id,
        |a| AccountView::new(a, now, None),
    )))
}

pub(super) async fn get(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let id = path_id(&id, "service account")?;
    let account = s.manager.account(&actor, id).await?;
    Ok(Json(AccountView::new(account, s.manager.now(), None)))
}

pub(super) async fn update(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<UpdateAccount>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let patch = AccountPatch {
        name: b.name,
        description: b.description,
        scopes: b.scopes,
        enabled: b.enabled,
        expires_at: b.expires_at,
        rate_limit: b.rate_limit,
    };
    let w = s.manager.update_account(&actor, id, patch).await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(AccountView::new(w.value, s.manager.now(), None)),
    ))
}

pub(super) async fn close(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let w = s.manager.close_account(&actor, id).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

pub(super) async fn list_keys(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    let id = path_id(&id, "service account")?;
    let keys = s.manager.keys(&actor, id).await?;
    Ok(Json(KeyList {
        data: keys.into_iter().map(KeyView::listed).collect(),
    }))
}

pub(super) async fn issue_key(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(_): JsonBody<IssueKey>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let w = s.manager.issue_key(&actor, id).await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(KeyView::issued(w.value)),
    ))
}

pub(super) async fn revoke_key(
    State(s): State<AdminState>,
    actor: Actor,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let key_id = path_id(&key_id, "api key")?;
    let w = s.manager.revoke_key(&actor, id, key_id).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

pub(super) async fn rotate_key(
    State(s): State<AdminState>,
    actor: Actor,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<Rotate>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let w = s
        .manager
        .rotate_key(&actor, id, b.grace_period_seconds)
        .await?;
    let (account, key) = w.value;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(AccountView::new(account, s.manager.now(), Some(key))),
    ))
}
