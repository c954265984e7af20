//! `/v1/service-accounts` and their API keys.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{nullable, path_id, query_id, whole_number, Caller, JsonBody, QueryParams};
use super::narrowing::{quota_patch, LimitsBody, QuotaBody};
use super::openapi::Refusals;
use super::views::{AccountView, KeyView, Page};
use super::{written, AdminState, ApiError};
use crate::manage::{accounts_state, AccountPatch, Cursor, NewAccount, NewKey};
use crate::store::{AccountFilter, Metadata};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateAccount {
    organization_id: Uuid,
    /// Scopes the account to one project of the organization.
    #[serde(default)]
    project_id: Option<Uuid>,
    /// Unique within the organization.
    #[schema(schema_with = super::openapi::name)]
    name: String,
    #[serde(default)]
    #[schema(max_length = 1000)]
    description: Option<String>,
    /// `member` (default) or `owner`: an owner manages its organization's accounts.
    #[serde(default)]
    #[schema(schema_with = super::openapi::role)]
    role: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::scopes)]
    scopes: Vec<String>,
    /// RFC 3339, in the future; the account stops then.
    #[serde(default)]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::rate)]
    rate_limit: Option<String>,
    /// Shared by every key and credential of the account.
    #[serde(default)]
    quota: Option<QuotaBody>,
    /// Free-form JSON object: at most 32 keys, 16 KiB as text.
    #[serde(default)]
    #[schema(schema_with = super::openapi::metadata)]
    metadata: Metadata,
    /// Issue the first API key with the account (default true).
    #[serde(default = "yes")]
    #[schema(default = true)]
    create_api_key: bool,
}

fn yes() -> bool {
    true
}

/// Only the fields present change; `null` clears a nullable one.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateAccount {
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_name)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 1000)]
    description: Option<Option<String>>,
    /// Narrowing scopes cuts off tokens minted with the old ones.
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_scopes)]
    scopes: Option<Vec<String>>,
    /// `false` stops every key, credential and token of the account at once.
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, format = DateTime)]
    expires_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::openapi::rate)]
    rate_limit: Option<Option<String>>,
    /// Sets the quota; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<QuotaBody>)]
    quota: Option<Option<QuotaBody>>,
    /// Starts the quota's current window afresh (nothing spent).
    #[serde(default)]
    reset_quota: bool,
    /// Merged into the stored object; a key set to `null` is removed.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListParams {
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    organization_id: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    project_id: Option<String>,
    /// `active`, `disabled`, `expired` or `closed`.
    #[serde(default)]
    #[param(schema_with = super::openapi::account_state)]
    state: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IssueKey {
    #[serde(default)]
    #[schema(schema_with = super::openapi::optional_name)]
    name: Option<String>,
    /// RFC 3339, in the future; the key stops then.
    #[serde(default)]
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::narrower_scopes)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    #[schema(schema_with = super::openapi::cidrs)]
    allowed_cidrs: Option<Vec<String>>,
    /// The key's own quota, spent beside its account's.
    #[serde(default)]
    quota: Option<QuotaBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RotateApiKey)]
pub(super) struct Rotate {
    /// How long the account's current keys keep working, in seconds (default
    /// 0, at most 30 days).
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(maximum = 2_592_000)]
    grace_period_seconds: u64,
}

#[derive(Serialize, ToSchema)]
pub(super) struct KeyList {
    data: Vec<KeyView>,
}

#[utoipa::path(
    post,
    operation_id = "createServiceAccount",
    path = "/v1/service-accounts",
    tag = "service-accounts",
    summary = "Create a service account (and, by default, its first API key)",
    request_body(content = CreateAccount, content_type = "application/json"),
    responses((status = 201, description = "Created", body = AccountView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    JsonBody(b, _): JsonBody<CreateAccount>,
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
        quota: b.quota.map(Into::into),
        metadata: b.metadata,
        key: b.create_api_key.then(NewKey::default),
        credential: None,
    };
    let w = s.manager.create_account(&actor, new).await?;
    let created = w.value;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(AccountView::new(
            created.account,
            s.manager.now(),
            created.key,
        )),
    ))
}

#[utoipa::path(
    get,
    operation_id = "listServiceAccounts",
    path = "/v1/service-accounts",
    tag = "service-accounts",
    summary = "List service accounts",
    params(ListParams),
    responses((status = 200, description = "OK", body = Page<AccountView>), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<Page<AccountView>>, ApiError> {
    let filter = AccountFilter {
        organization_id: query_id(q.organization_id.as_deref(), "organization_id")?,
        project_id: query_id(q.project_id.as_deref(), "project_id")?,
        states: q
            .state
            .as_deref()
            .map(accounts_state)
            .transpose()?
            .into_iter()
            .collect(),
        ..AccountFilter::default()
    };
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s
        .manager
        .accounts(&actor, filter, Cursor::after(after), q.limit)
        .await?;
    let now = s.manager.now();
    Ok(Json(Page::from(
        listing,
        |a| a.id,
        |a| AccountView::new(a, now, None),
    )))
}

#[utoipa::path(
    get,
    operation_id = "getServiceAccount",
    path = "/v1/service-accounts/{id}",
    tag = "service-accounts",
    summary = "Get a service account",
    params(("id" = Uuid, Path, description = "The service account's id")),
    responses((status = 200, description = "OK", body = AccountView), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn get(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let id = path_id(&id, "service account")?;
    let account = s.manager.account(&actor, id).await?;
    Ok(Json(AccountView::new(account, s.manager.now(), None)))
}

#[utoipa::path(
    patch,
    operation_id = "updateServiceAccount",
    path = "/v1/service-accounts/{id}",
    tag = "service-accounts",
    summary = "Update a service account (disable, rescope, expire, limit)",
    params(("id" = Uuid, Path, description = "The service account's id")),
    request_body(content = UpdateAccount, content_type = "application/json"),
    responses((status = 200, description = "Updated", body = AccountView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<UpdateAccount>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let patch = AccountPatch {
        name: b.name,
        description: b.description,
        scopes: b.scopes,
        enabled: b.enabled,
        expires_at: b.expires_at,
        rate_limit: b.rate_limit,
        quota: quota_patch(b.quota, b.reset_quota),
        metadata: b.metadata,
    };
    let w = s.manager.update_account(&actor, id, patch).await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(AccountView::new(w.value, s.manager.now(), None)),
    ))
}

#[utoipa::path(
    delete,
    operation_id = "closeServiceAccount",
    path = "/v1/service-accounts/{id}",
    tag = "service-accounts",
    summary = "Close a service account: every key, credential and token stops at once",
    params(("id" = Uuid, Path, description = "The service account's id")),
    responses((status = 204, description = "Done", headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn close(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let w = s.manager.close_account(&actor, id).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

#[utoipa::path(
    get,
    operation_id = "listApiKeys",
    path = "/v1/service-accounts/{id}/api-keys",
    tag = "api-keys",
    summary = "List a service account's API keys (never their values)",
    params(("id" = Uuid, Path, description = "The service account's id")),
    responses((status = 200, description = "OK", body = KeyList), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn list_keys(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<KeyList>, ApiError> {
    let id = path_id(&id, "service account")?;
    let keys = s.manager.keys(&actor, id).await?;
    Ok(Json(KeyList {
        data: keys.into_iter().map(KeyView::listed).collect(),
    }))
}

#[utoipa::path(
    post,
    operation_id = "issueApiKey",
    path = "/v1/service-accounts/{id}/api-keys",
    tag = "api-keys",
    summary = "Issue another API key; its value is in this response only",
    params(("id" = Uuid, Path, description = "The service account's id")),
    request_body(content = IssueKey, content_type = "application/json"),
    responses((status = 201, description = "Created", body = KeyView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn issue_key(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<IssueKey>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let new = NewKey {
        name: b.name,
        expires_at: b.expires_at,
        limits: LimitsBody {
            scopes: b.scopes,
            allowed_cidrs: b.allowed_cidrs,
            quota: b.quota,
        }
        .into(),
        explicit_expiry: true,
    };
    let w = s.manager.issue_key(&actor, id, new).await?;
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(KeyView::issued(w.value)),
    ))
}

#[utoipa::path(
    delete,
    operation_id = "revokeApiKey",
    path = "/v1/service-accounts/{id}/api-keys/{key_id}",
    tag = "api-keys",
    summary = "Revoke an API key",
    params(("id" = Uuid, Path, description = "The service account's id"), ("key_id" = Uuid, Path, description = "The API key's id")),
    responses((status = 204, description = "Done", headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn revoke_key(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "service account")?;
    let key_id = path_id(&key_id, "api key")?;
    let w = s.manager.revoke_key(&actor, id, key_id).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

#[utoipa::path(
    post,
    operation_id = "rotateApiKey",
    path = "/v1/service-accounts/{id}/rotate-api-key",
    tag = "api-keys",
    summary = "Issue a new key; the old ones stop after the grace period",
    params(("id" = Uuid, Path, description = "The service account's id")),
    request_body(content = Rotate, content_type = "application/json"),
    responses((status = 200, description = "Updated", body = AccountView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn rotate_key(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<Rotate>,
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
