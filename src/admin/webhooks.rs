//! `/v1/webhooks` and their deliveries log. Rules, validation and audit are
//! `events::webhooks`'; this file only translates.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::extract::{path_id, query_id, Caller, JsonBody, QueryParams};
use super::openapi::Refusals;
use super::views::Page;
use super::{written, AdminState, ApiError};
use crate::clock::rfc3339;
use crate::events::webhooks::{NewWebhook, WebhookPatch};
use crate::store::{Delivery, Webhook};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateWebhook {
    /// Where events are POSTed: `https` to a public address (unless
    /// `[events] allow_insecure_targets`). Redirects are not followed.
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://"
    )]
    url: String,
    /// Event types (`api_key.revoked`), families (`api_key.*`) or `*`.
    events: Vec<String>,
    /// Only this organization's events. Platform admins may omit it for
    /// every organization's; an owner's webhook is its organization's.
    #[serde(default)]
    organization_id: Option<Uuid>,
}

/// Only the fields present change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateWebhook {
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = "^[hH][tT][tT][pP][sS]?://"
    )]
    url: Option<String>,
    #[serde(default)]
    events: Option<Vec<String>>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PageParams {
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct WebhookView {
    id: Uuid,
    organization_id: Option<Uuid>,
    url: String,
    events: Vec<String>,
    created_at: String,
    updated_at: String,
    /// The signing secret (`whsec_…`), in the creation answer only: verify
    /// deliveries with it (Standard Webhooks).
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn new(h: Webhook, secret: Option<String>) -> Self {
        Self {
            id: h.id,
            organization_id: h.organization_id,
            url: h.url,
            events: h.events,
            created_at: rfc3339(h.created_at),
            updated_at: rfc3339(h.updated_at),
            secret,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct DeliveryView {
    id: Uuid,
    /// The `webhook-id` header: the same on every attempt of the event.
    event_id: String,
    event_type: String,
    /// The store revision of the change the event is about.
    revision: i64,
    /// `pending`, `delivered` or `failed` (retried for the whole window).
    status: String,
    attempts: i64,
    created_at: String,
    /// When the next attempt is due (pending deliveries).
    next_attempt_at: Option<String>,
    last_attempt_at: Option<String>,
    /// The receiver's last HTTP status, if it answered.
    last_status: Option<i64>,
    last_error: Option<String>,
    delivered_at: Option<String>,
    /// The body as sent (`{"type","timestamp","data"}`).
    #[schema(value_type = Object)]
    payload: serde_json::Value,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        let pending = d.status == crate::store::DeliveryStatus::Pending;
        Self {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            revision: d.revision,
            status: d.status.as_str().to_string(),
            attempts: d.attempts,
            created_at: rfc3339(d.created_at),
            next_attempt_at: pending.then(|| rfc3339(d.next_attempt_at)),
            last_attempt_at: d.last_attempt_at.map(rfc3339),
            last_status: d.last_status,
            last_error: d.last_error,
            delivered_at: d.delivered_at.map(rfc3339),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[utoipa::path(
    post,
    operation_id = "createWebhook",
    path = "/v1/webhooks",
    tag = "webhooks",
    summary = "Subscribe a URL to events (the signing secret is returned once)",
    request_body(content = CreateWebhook, content_type = "application/json"),
    responses((status = 201, description = "Created", body = WebhookView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn create(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    JsonBody(b, _): JsonBody<CreateWebhook>,
) -> Result<Response, ApiError> {
    let new = NewWebhook {
        url: b.url,
        events: b.events,
        organization_id: b.organization_id,
    };
    let w = s.webhooks.create(&actor, new).await?;
    let secret = Some(w.value.secret.to_string());
    Ok(written(
        StatusCode::CREATED,
        w.revision,
        Some(WebhookView::new(w.value.webhook, secret)),
    ))
}

#[utoipa::path(
    get,
    operation_id = "listWebhooks",
    path = "/v1/webhooks",
    tag = "webhooks",
    summary = "List webhooks",
    params(PageParams),
    responses((status = 200, description = "OK", body = Page<WebhookView>), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn list(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Page<WebhookView>>, ApiError> {
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s.webhooks.list(&actor, after, q.limit).await?;
    Ok(Json(Page::from(
        listing,
        |h| h.id,
        |h| WebhookView::new(h, None),
    )))
}

#[utoipa::path(
    get,
    operation_id = "getWebhook",
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    summary = "Get a webhook (never its secret)",
    params(("id" = Uuid, Path, description = "The webhook's id")),
    responses((status = 200, description = "OK", body = WebhookView), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn get(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    let id = path_id(&id, "webhook")?;
    Ok(Json(WebhookView::new(
        s.webhooks.get(&actor, id).await?,
        None,
    )))
}

#[utoipa::path(
    patch,
    operation_id = "updateWebhook",
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    summary = "Change a webhook's URL or events",
    params(("id" = Uuid, Path, description = "The webhook's id")),
    request_body(content = UpdateWebhook, content_type = "application/json"),
    responses((status = 200, description = "Updated", body = WebhookView, headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn update(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    JsonBody(b, _): JsonBody<UpdateWebhook>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "webhook")?;
    let patch = WebhookPatch {
        url: b.url,
        events: b.events,
    };
    let w = s.webhooks.update(&actor, id, patch).await?;
    Ok(written(
        StatusCode::OK,
        w.revision,
        Some(WebhookView::new(w.value, None)),
    ))
}

#[utoipa::path(
    delete,
    operation_id = "deleteWebhook",
    path = "/v1/webhooks/{id}",
    tag = "webhooks",
    summary = "Delete a webhook and its deliveries",
    params(("id" = Uuid, Path, description = "The webhook's id")),
    responses((status = 204, description = "Deleted", headers(("x-keygate-revision" = i64, description = "The store revision that carries this write (see GET /v1/replicas?revision=)"))), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn delete(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(&id, "webhook")?;
    let w = s.webhooks.delete(&actor, id).await?;
    Ok(written::<()>(StatusCode::NO_CONTENT, w.revision, None))
}

#[utoipa::path(
    get,
    operation_id = "listWebhookDeliveries",
    path = "/v1/webhooks/{id}/deliveries",
    tag = "webhooks",
    summary = "The deliveries log: every event sent to the webhook, its attempts and outcome",
    params(("id" = Uuid, Path, description = "The webhook's id"), PageParams),
    responses((status = 200, description = "OK", body = Page<DeliveryView>), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn deliveries(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Page<DeliveryView>>, ApiError> {
    let id = path_id(&id, "webhook")?;
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s.webhooks.deliveries(&actor, id, after, q.limit).await?;
    Ok(Json(Page::from(listing, |d| d.id, DeliveryView::from)))
}
