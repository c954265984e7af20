//! `GET /v1/service-accounts/{id}/usage`, and one API key read and changed
//! (`GET/PATCH …/api-keys/{key_id}`: its name, and what it narrows).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{nullable, path_id, Caller, JsonBody, QueryParams};
use super::narrowing::{LimitsPatchBody, QuotaBody, QuotaView};
use super::openapi::Refusals;
use super::views::KeyView;
use super::{written, AdminState, ApiError};
use crate::clock::rfc3339;
use crate::manage::{KeyPatch, QuotaOwner};
use crate::quota::window;

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct UsageParams {
    /// First day, `2026-12-01` or an RFC 3339 time (default: 29 days before `to`).
    #[serde(default)]
    from: Option<String>,
    /// Last day, inclusive (default: today, UTC).
    #[serde(default)]
    to: Option<String>,
}

/// One account's requests on one UTC day and route.
#[derive(Serialize, ToSchema)]
pub(super) struct UsageDay {
    /// `2026-12-05`.
    day: String,
    route: String,
    admitted: u64,
    /// Refused requests by reason: `rate_limited`, `quota_exhausted`,
    /// `address_not_allowed`, `forbidden`.
    refused: BTreeMap<String, u64>,
    /// Quota the admitted requests spent (their routes' `cost`).
    quota_spent: u64,
}

/// A quota the account's requests spend from, now.
#[derive(Serialize, ToSchema)]
pub(super) struct QuotaUsage {
    /// `account`, `api_key` or `credential`.
    owner: &'static str,
    id: Uuid,
    #[serde(flatten)]
    quota: QuotaView,
    spent: u64,
    remaining: u64,
    /// When the current window ends; null for `period = "none"`.
    resets_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct UsageReport {
    service_account_id: Uuid,
    from: String,
    to: String,
    days: Vec<UsageDay>,
    quotas: Vec<QuotaUsage>,
}

#[utoipa::path(
    get,
    operation_id = "getServiceAccountUsage",
    path = "/v1/service-accounts/{id}/usage",
    tag = "service-accounts",
    summary = "Requests per day and route (admitted, refused by reason), and the quotas spent",
    params(("id" = Uuid, Path, description = "The service account's id"), UsageParams),
    responses((status = 200, description = "The account's usage", body = UsageReport), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn usage(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<UsageParams>,
) -> Result<Json<UsageReport>, ApiError> {
    let id = path_id(&id, "service account")?;
    let u = s
        .manager
        .usage(&actor, id, q.from.as_deref(), q.to.as_deref())
        .await?;
    let mut days: Vec<UsageDay> = Vec::new();
    for t in u.traffic {
        let day = rfc3339(t.day)[..10].to_string();
        if !days
            .last()
            .is_some_and(|r| r.day == day && r.route == t.route)
        {
            days.push(UsageDay {
                day,
                route: t.route.clone(),
                admitted: 0,
                refused: BTreeMap::new(),
                quota_spent: 0,
            });
        }
        let Some(row) = days.last_mut() else {
            continue;
        };
        row.quota_spent += t.spent;
        if t.outcome == "admitted" {
            row.admitted += t.requests;
        } else {
            *row.refused.entry(t.outcome).or_default() += t.requests;
        }
    }
    let now = s.clock.now_ms();
    let meter = &s.limits.metering().meter;
    let quotas = u
        .quotas
        .into_iter()
        .map(|(owner, id, q)| {
            let w = window(&q, now);
            let spent = meter.spent(id, w);
            QuotaUsage {
                owner: match owner {
                    QuotaOwner::Account => "account",
                    QuotaOwner::ApiKey => "api_key",
                    QuotaOwner::Credential => "credential",
                },
                id,
                spent,
                remaining: q.limit.saturating_sub(spent),
                resets_at: (w.end != i64::MAX).then(|| rfc3339(w.end)),
                quota: q.into(),
            }
        })
        .collect();
    Ok(Json(UsageReport {
        service_account_id: u.account_id,
        from: rfc3339(u.from_day)[..10].to_string(),
        to: rfc3339(u.to_day)[..10].to_string(),
        days,
        quotas,
    }))
}

/// Only the fields present change; `null` returns a field to the account's.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateKey {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::openapi::narrower_scopes)]
    scopes: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(schema_with = super::openapi::cidrs)]
    allowed_cidrs: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<QuotaBody>)]
    quota: Option<Option<QuotaBody>>,
    /// Starts the key's quota window afresh.
    #[serde(default)]
    reset_quota: bool,
}

fn key_ids(id: &str, key_id: &str) -> Result<(Uuid, Uuid), ApiError> {
    Ok((path_id(id, "service account")?, path_id(key_id, "api key")?))
}

#[utoipa::path(
    get,
    operation_id = "getApiKey",
    path = "/v1/service-accounts/{id}/api-keys/{key_id}",
    tag = "api-keys",
    summary = "A live API key (never its value)",
    params(("id" = Uuid, Path, description = "The service account's id"), ("key_id" = Uuid, Path, description = "The API key's id")),
    responses((status = 200, description = "The key", body = KeyView), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn get_key(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, key_id)): Path<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    let (id, key_id) = key_ids(&id, &key_id)?;
    let key = s.manager.key(&actor, id, key_id).await?;
    Ok(Json(KeyView::listed(key)))
}

#[utoipa::path(
    patch,
    operation_id = "updateApiKey",
    path = "/v1/service-accounts/{id}/api-keys/{key_id}",
    tag = "api-keys",
    summary = "Rename an API key, or change what it narrows (scopes, addresses, quota)",
    params(("id" = Uuid, Path, description = "The service account's id"), ("key_id" = Uuid, Path, description = "The API key's id")),
    request_body(content = UpdateKey, content_type = "application/json"),
    responses((status = 200, description = "Updated", body = KeyView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn update_key(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((id, key_id)): Path<(String, String)>,
    JsonBody(b, _): JsonBody<UpdateKey>,
) -> Result<Response, ApiError> {
    let (id, key_id) = key_ids(&id, &key_id)?;
    let patch = KeyPatch {
        name: b.name,
        limits: LimitsPatchBody {
            scopes: b.scopes,
            allowed_cidrs: b.allowed_cidrs,
            quota: b.quota,
            reset_quota: b.reset_quota,
        }
        .into(),
    };
    let w = s.manager.update_key(&actor, id, key_id, patch).await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(KeyView::listed(w.value)),
    ))
}
