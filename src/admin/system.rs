//! Health, readiness, audit events and replicas.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::extract::{query_id, QueryParams};
use super::organizations::PageParams;
use super::views::{AuditView, Page, ReplicaView};
use super::{AdminState, ApiError};
use crate::manage::Actor;

/// Liveness: the process answers.
pub(super) async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the cache is loaded and not past `max_staleness`.
pub(super) async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let now = s.clock.now_ms();
    let (status, text) = if !s.cache.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "loading")
    } else if s.cache.is_stale(now) {
        (StatusCode::SERVICE_UNAVAILABLE, "stale")
    } else {
        (StatusCode::OK, "ready")
    };
    (
        status,
        Json(json!({
            "status": text,
            "revision": s.cache.revision(),
            "keys": s.cache.len(),
            "staleness_ms": s.cache.staleness_ms(now).max(0),
        })),
    )
}

pub(super) async fn audit_events(
    State(s): State<AdminState>,
    actor: Actor,
    QueryParams(q): QueryParams<PageParams>,
) -> Result<Json<Page<AuditView>>, ApiError> {
    let after = query_id(q.after.as_deref(), "after")?;
    let listing = s.manager.audit_events(&actor, after, q.limit).await?;
    Ok(Json(Page::from(listing, |e| e.id, AuditView::from)))
}

pub(super) async fn replicas(
    State(s): State<AdminState>,
    actor: Actor,
) -> Result<Json<serde_json::Value>, ApiError> {
    let replicas: Vec<ReplicaView> = s
        .manager
        .replicas(&actor)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(
        json!({ "data": replicas, "revision": s.cache.revision() }),
    ))
}
