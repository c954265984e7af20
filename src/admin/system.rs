//! Health, readiness, metrics (open, or behind `admin.metrics_token`),
//! audit events and replicas.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::extract::{query_id, Caller, QueryParams};
use super::openapi::Refusals;
use super::views::{AuditView, Page, ReplicaView};
use super::{AdminState, ApiError};

/// Liveness: the process answers.
pub(super) async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the cache is loaded and not past `max_staleness`.
pub(super) async fn readyz(State(s): State<AdminState>) -> impl IntoResponse {
    let now = s.clock.now_ms();
    let cache = s.authn.cache();
    let fresh = cache.freshness();
    let status = s.limits.status();
    let limits = json!({
        "backend": status.backend,
        // "fallback": Redis unreachable, each replica counts on its own.
        "state": match (status.backend, status.shared) {
            ("redis", false) => "fallback",
            ("redis", true) => "shared",
            _ => "local",
        },
        "fallback_checks": status.fallbacks,
    });
    let (status, text) = if !fresh.is_ready() {
        (StatusCode::SERVICE_UNAVAILABLE, "loading")
    } else if fresh.is_stale(now) {
        (StatusCode::SERVICE_UNAVAILABLE, "stale")
    } else {
        (StatusCode::OK, "ready")
    };
    (
        status,
        Json(json!({
            "status": text,
            "revision": fresh.revision(),
            "keys": cache.len(),
            "staleness_ms": fresh.staleness_ms(now).max(0),
            "rate_limit": limits,
        })),
    )
}

/// Whether `headers` carry `Authorization: Bearer <token>`. SECURITY:
/// compared in constant time (only the length can tell).
fn presents(headers: &HeaderMap, token: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .fold(false, |ok, presented| {
            ok | bool::from(presented.ct_eq(token.as_bytes()))
        })
}

/// Prometheus text exposition format (version 0.0.4). The gauges that
/// describe state rather than events are read now, at the scrape.
/// Prometheus' convention is an open `/metrics` on a private listener, so
/// it is open unless `admin.metrics_token` is set; then only a scrape with
/// `Authorization: Bearer <token>` is answered.
pub(super) async fn metrics(State(s): State<AdminState>, headers: HeaderMap) -> Response {
    use crate::telemetry::metrics::*;
    if let Some(token) = &s.metrics_token {
        if !presents(&headers, token.expose()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"keygate-metrics\""),
                )],
                "metrics need admin.metrics_token\n",
            )
                .into_response();
        }
    }
    let m = &s.metrics;
    let now = s.clock.now_ms();
    let cache = s.authn.cache();
    let fresh = cache.freshness();
    m.gauge(CACHE_ENTRIES, &[]).set(cache.len() as f64);
    m.gauge(CACHE_REVISION, &[]).set(fresh.revision() as f64);
    m.gauge(CACHE_STALENESS, &[])
        .set(fresh.staleness_ms(now).max(0) as f64 / 1000.0);
    m.counter(RATE_LIMIT_FALLBACK, &[])
        .absolute(s.limits.status().fallbacks);
    for (issuer, keys, fetched) in s.authn.federation().status() {
        let age = fetched.map_or(-1.0, |t| (now - t).max(0) as f64 / 1000.0);
        m.gauge(ISSUER_KEYS_AGE, &[("issuer", &issuer)]).set(age);
        m.gauge(ISSUER_KEYS, &[("issuer", &issuer)])
            .set(keys as f64);
    }
    let body = m.render().unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditParams {
    /// Only events about this account: it acted, was acted on, or one of
    /// its keys or credentials was.
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    service_account_id: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default)]
    #[param(value_type = Option<Uuid>)]
    after: Option<String>,
}

#[utoipa::path(
    get,
    operation_id = "listAuditEvents",
    path = "/v1/audit-events",
    tag = "audit",
    summary = "List audit events",
    params(AuditParams),
    responses((status = 200, description = "OK", body = Page<AuditView>), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn audit_events(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    QueryParams(q): QueryParams<AuditParams>,
) -> Result<Json<Page<AuditView>>, ApiError> {
    let after = query_id(q.after.as_deref(), "after")?;
    let account = query_id(q.service_account_id.as_deref(), "service_account_id")?;
    let listing = s
        .manager
        .audit_events(&actor, account, after, q.limit)
        .await?;
    Ok(Json(Page::from(listing, |e| e.id, AuditView::from)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ReplicasQuery {
    /// A write's `X-Keygate-Revision`: answers whether every live replica has applied it.
    #[serde(default)]
    revision: Option<i64>,
}

/// The live replicas, and (with `?revision=`) whether they all applied it.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(super) struct ReplicasView {
    /// The revision this replica has applied.
    revision: i64,
    /// With `?revision=N`: every live replica has applied N.
    #[serde(skip_serializing_if = "Option::is_none")]
    applied_everywhere: Option<bool>,
    /// With `?revision=N`: the replicas that have not yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    lagging: Option<Vec<uuid::Uuid>>,
    data: Vec<ReplicaView>,
}

/// Every live replica and the revision its cache has applied. With
/// `?revision=N`: whether every live replica has applied it, and which have
/// not yet — proof that a revocation (whose write answered
/// `X-Keygate-Revision: N`) is in force everywhere.
#[utoipa::path(
    get,
    operation_id = "listReplicas",
    path = "/v1/replicas",
    tag = "replicas",
    summary = "List live replicas; with ?revision=N, whether every one has applied it",
    params(ReplicasQuery),
    responses((status = 200, description = "OK", body = ReplicasView), Refusals),
    security(("bearer" = []))
)]
pub(super) async fn replicas(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    QueryParams(q): QueryParams<ReplicasQuery>,
) -> Result<Json<ReplicasView>, ApiError> {
    let own = s.authn.cache().freshness().revision();
    let mut replicas = s.manager.replicas(&actor).await?;
    // This replica knows its own revision better than its last heartbeat.
    for r in replicas.iter_mut().filter(|r| r.id == s.replica_id) {
        r.revision = r.revision.max(own);
    }
    let lagging: Option<Vec<_>> = q.revision.map(|wanted| {
        replicas
            .iter()
            .filter(|r| r.revision < wanted)
            .map(|r| r.id)
            .collect()
    });
    Ok(Json(ReplicasView {
        revision: own,
        applied_everywhere: lagging
            .as_ref()
            .map(|l| l.is_empty() && !replicas.is_empty()),
        lagging,
        data: replicas.into_iter().map(Into::into).collect(),
    }))
}
