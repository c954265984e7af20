//! The `runai` dialect (`/compat/runai`): NVIDIA Run:ai's service accounts
//! and its token endpoint, for the official `runapy` client. An account's
//! `clientId` is its primary client credential (the oldest live one);
//! `POST /api/v1/token` trades it for a keygate JWT, which the client then
//! presents as `Authorization: Bearer`. Fields are camelCase; errors are
//! `{"code","message"}`. The tenant is the caller's organization.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::{object, uuid_any};
use crate::admin::extract::authenticate;
use crate::admin::{AdminState, MAX_BODY_BYTES};
use crate::authn::{self, Principal};
use crate::clock::rfc3339;
use crate::jwt::Grant;
use crate::manage::{self, AccountPatch, NewAccount, NewCredential};
use crate::store::{AccountFilter, AccountState, ClientCredential, ServiceAccount};

/// An error as Run:ai answers: `{"code": <status>, "message": …}`.
#[derive(Debug)]
struct RunaiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl RunaiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "service account not found")
    }

    fn refused(r: authn::Refusal) -> Self {
        match r {
            authn::Refusal::Missing => {
                Self::new(StatusCode::UNAUTHORIZED, "authentication required")
            }
            authn::Refusal::Invalid => Self::new(StatusCode::UNAUTHORIZED, "invalid credentials"),
            authn::Refusal::Ambiguous => Self::bad("present one credential, not several"),
            authn::Refusal::Stale => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "credential data is stale; retry later",
            ),
            authn::Refusal::Throttled(wait) => Self {
                retry_after: Some(wait),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many failed authentication attempts",
                )
            },
        }
    }
}

impl From<manage::Error> for RunaiError {
    fn from(e: manage::Error) -> Self {
        use manage::Error as E;
        match e {
            E::Invalid { param, message } => Self::bad(format!("{param}: {message}")),
            E::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, m),
            E::NotFound(_) => Self::not_found(),
            E::Archived => Self::bad("the project is archived"),
            E::Conflict { message, .. } => Self::new(StatusCode::CONFLICT, message),
            E::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; retry later",
            ),
            E::Internal => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        }
    }
}

impl IntoResponse for RunaiError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.status.as_u16(), "message": self.message });
        let mut res = (self.status, Json(body)).into_response();
        let h = res.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="keygate""#),
            );
        }
        if let Some(wait) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        res
    }
}

type Result<T, E = RunaiError> = std::result::Result<T, E>;

pub(super) fn router() -> Router<AdminState> {
    Router::new()
        .route("/api/v1/token", post(token))
        .route("/api/v1/service-accounts", get(list).post(create))
        .route(
            "/api/v1/service-accounts/{id}",
            get(retrieve).patch(update).delete(delete),
        )
        .route("/api/v1/service-accounts/{id}/secret", post(regenerate))
        .fallback(|| async { RunaiError::new(StatusCode::NOT_FOUND, "not found") })
        .method_not_allowed_fallback(|m: Method| async move {
            RunaiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{m} is not allowed here"),
            )
        })
}

async fn body_of(body: axum::body::Body) -> Result<Bytes> {
    to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| RunaiError::new(StatusCode::PAYLOAD_TOO_LARGE, "request body is too large"))
}

fn json_object(bytes: &Bytes) -> Result<Map<String, Value>> {
    object(bytes).map_err(|_| RunaiError::bad("the body must be a JSON object"))
}

/// A string field, its name matched case-insensitively (Run:ai's own
/// clients spell `AppId`, `appID` and `clientId` alike).
fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    body.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// `POST /api/v1/token`: a client credential (as `client_credentials` with
/// `clientID`/`clientSecret`, or `app_token` with `AppId`/`AppSecret`) for
/// a keygate JWT for keygate itself, good on this listener.
async fn token(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Result<Response> {
    let body = json_object(&body)?;
    let (id_key, secret_key) = match field(&body, "grantType") {
        Some("client_credentials") => ("clientID", "clientSecret"),
        Some("app_token") => ("AppId", "AppSecret"),
        Some(other) => {
            return Err(RunaiError::bad(format!(
                "grantType {other:?} is not supported"
            )))
        }
        None => return Err(RunaiError::bad("grantType is required")),
    };
    let (Some(id), Some(secret)) = (field(&body, id_key), field(&body, secret_key)) else {
        return Err(RunaiError::bad(format!(
            "{id_key} and {secret_key} are required"
        )));
    };
    let p = s.authn.client(peer.ip(), id, secret).map_err(|r| match r {
        authn::Refusal::Missing | authn::Refusal::Invalid => {
            RunaiError::new(StatusCode::UNAUTHORIZED, "invalid client credentials")
        }
        other => RunaiError::refused(other),
    })?;
    let scope = p.scopes.iter().collect::<Vec<_>>().join(" ");
    let minted = s
        .minter
        .mint(
            Grant::ClientCredentials,
            &p.token_subject(id, &scope),
            None,
            None,
        )
        .map_err(|e| {
            tracing::error!(error = %e, "token minting failed");
            RunaiError::new(StatusCode::SERVICE_UNAVAILABLE, "cannot issue a token now")
        })?;
    let mut res = Json(json!({
        "accessToken": minted.token,
        "expiresIn": minted.expires_in,
    }))
    .into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The caller of a management endpoint.
fn caller(s: &AdminState, parts: &Parts) -> Result<Arc<Principal>> {
    authenticate(parts, s).map_err(RunaiError::refused)
}

/// An account the caller may see, of its tenant, not closed.
async fn account(s: &AdminState, actor: &Principal, id: &str) -> Result<ServiceAccount> {
    let id = uuid_any(id).ok_or_else(RunaiError::not_found)?;
    let a = s.manager.account(actor, id).await?;
    if a.closed_at.is_some() || a.organization_id != actor.organization_id {
        return Err(RunaiError::not_found());
    }
    Ok(a)
}

/// The account's primary credential: its oldest live one.
async fn primary(
    s: &AdminState,
    actor: &Principal,
    a: &ServiceAccount,
) -> Result<Option<ClientCredential>> {
    Ok(s.manager
        .credentials(actor, a.id)
        .await?
        .into_iter()
        .min_by_key(|c| (c.created_at, c.id)))
}

fn account_json(a: &ServiceAccount, client_id: Option<&str>) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "clientId": client_id.unwrap_or(""),
        "createdBy": a.created_by.map_or_else(|| "keygate".to_string(), |c| c.to_string()),
        "createdAt": rfc3339(a.created_at),
        "updatedAt": rfc3339(a.updated_at),
        "enabled": a.enabled,
        "lastLogin": a.last_used_at.map(rfc3339),
        "tenantId": a.organization_id.to_string(),
    })
}

async fn described(s: &AdminState, actor: &Principal, a: &ServiceAccount) -> Result<Value> {
    let cred = primary(s, actor, a).await?;
    Ok(account_json(a, cred.as_ref().map(|c| c.client_id.as_str())))
}

async fn list(State(s): State<AdminState>, req: Request) -> Result<Response> {
    let (parts, _) = req.into_parts();
    let actor = caller(&s, &parts)?;
    let filter = AccountFilter {
        organization_id: Some(actor.organization_id),
        states: vec![
            AccountState::Active,
            AccountState::Disabled,
            AccountState::Expired,
        ],
        ..AccountFilter::default()
    };
    // The API answers one array (at most 1000 accounts).
    let mut items = Vec::new();
    let mut after = None;
    while items.len() < 1000 {
        let page = s
            .manager
            .accounts(&actor, filter.clone(), after, Some(100))
            .await?;
        for a in &page.data {
            items.push(described(&s, &actor, a).await?);
        }
        match page.data.last() {
            Some(last) if page.has_more => after = Some(last.id),
            _ => break,
        }
    }
    Ok(Json(Value::Array(items)).into_response())
}

/// Run:ai's name rule: `^[a-z][-_a-z0-9]*[a-z0-9]$`, 2 to 255 characters.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    (2..=255).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
}

async fn create(State(s): State<AdminState>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = caller(&s, &parts)?;
    let body = json_object(&body_of(body).await?)?;
    let name = match body.get("name") {
        Some(Value::String(n)) if valid_name(n) => n.clone(),
        Some(Value::String(_)) => {
            return Err(RunaiError::bad(
                "name must match ^[a-z][-_a-z0-9]*[a-z0-9]$ (2-255 characters)",
            ))
        }
        _ => return Err(RunaiError::bad("name is required")),
    };
    let new = NewAccount {
        organization_id: actor.organization_id,
        project_id: actor.project_id.filter(|_| !actor.admin),
        name: name.clone(),
        credential: Some(NewCredential {
            name: Some("runai".into()),
            ..NewCredential::default()
        }),
        ..NewAccount::default()
    };
    let created = s
        .manager
        .create_account(&actor, new)
        .await
        .map_err(|e| match e {
            manage::Error::Conflict {
                code: "duplicate_name",
                ..
            } => RunaiError::new(
                StatusCode::CONFLICT,
                format!("service account '{name}' already exists"),
            ),
            other => other.into(),
        })?
        .value;
    let credential = created.credential.as_ref();
    let body = json!({
        "id": created.account.id,
        "name": created.account.name,
        "clientId": credential.map(|c| c.credential.client_id.as_str()),
        "clientSecret": credential.map(|c| c.secret.as_str()),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn retrieve(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response> {
    let (parts, _) = req.into_parts();
    let actor = caller(&s, &parts)?;
    let a = account(&s, &actor, &id).await?;
    Ok(Json(described(&s, &actor, &a).await?).into_response())
}

/// `PATCH {"enabled": bool}`: disabling cuts the account's live tokens off.
async fn update(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let actor = caller(&s, &parts)?;
    let a = account(&s, &actor, &id).await?;
    let body = json_object(&body_of(body).await?)?;
    let Some(enabled) = body.get("enabled").and_then(Value::as_bool) else {
        return Err(RunaiError::bad("enabled is required and must be a boolean"));
    };
    let patch = AccountPatch {
        enabled: Some(enabled),
        ..AccountPatch::default()
    };
    let updated = s.manager.update_account(&actor, a.id, patch).await?.value;
    Ok(Json(described(&s, &actor, &updated).await?).into_response())
}

async fn delete(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response> {
    let (parts, _) = req.into_parts();
    let actor = caller(&s, &parts)?;
    let a = account(&s, &actor, &id).await?;
    s.manager.close_account(&actor, a.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new secret for the primary credential (same `clientId`; the old
/// secret stops working at once), or a first credential if it has none.
async fn regenerate(
    State(s): State<AdminState>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response> {
    let (parts, _) = req.into_parts();
    let actor = caller(&s, &parts)?;
    let a = account(&s, &actor, &id).await?;
    let issued = match primary(&s, &actor, &a).await? {
        Some(c) => s.manager.regenerate_secret(&actor, a.id, c.id).await?.value,
        None => {
            let new = NewCredential {
                name: Some("runai".into()),
                ..NewCredential::default()
            };
            s.manager.create_credential(&actor, a.id, new).await?.value
        }
    };
    Ok(Json(json!({ "clientSecret": issued.secret.as_str() })).into_response())
}
