//! The `openai` dialect (`/compat/openai/v1`): OpenAI's project service
//! accounts and their API keys, for the official SDK's
//! `client.admin.organization.projects.service_accounts`. Times are unix
//! seconds; lists page by `limit` and an `after` cursor; errors are
//! `{"error":{"message","type","param","code"}}`. Closed accounts are gone
//! from this API's point of view.

use std::sync::Arc;

use axum::body::{to_bytes, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

mod error;

use self::error::{archived, OpenAiError};
use super::{object, unix_seconds, uuid_any, BodyError};
use crate::admin::extract::authenticate;
use crate::admin::{AdminState, MAX_BODY_BYTES};
use crate::authn::Principal;
use crate::clock::rfc3339;
use crate::manage::{self, IssuedKey, NewAccount, NewKey};
use crate::store::{AccountFilter, AccountState, Project, ServiceAccount};

const DEFAULT_LIMIT: u32 = 20;

type Result<T, E = OpenAiError> = std::result::Result<T, E>;

pub(super) fn router() -> Router<AdminState> {
    Router::new()
        .route(
            "/organization/projects/{project_id}/service_accounts",
            get(list).post(create),
        )
        .route(
            "/organization/projects/{project_id}/service_accounts/{service_account_id}",
            get(retrieve).delete(delete),
        )
        .route(
            "/organization/projects/{project_id}/service_accounts/{service_account_id}/api_keys",
            post(create_key),
        )
        .fallback(|| async {
            OpenAiError::new(StatusCode::NOT_FOUND, "not_found", "Unknown endpoint.")
        })
        .method_not_allowed_fallback(|m: Method| async move {
            OpenAiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{m} is not allowed here."),
            )
        })
}

/// A request: authenticated, its project resolved and checked (the order
/// the API answers in: 401, 404 project, 403, 400 archived).
struct Call {
    actor: Arc<Principal>,
    project: Project,
    /// The service account id of the path, if any.
    account_id: Option<String>,
    parts: Parts,
    body: Bytes,
}

impl Call {
    async fn new(s: &AdminState, req: Request) -> Result<Self> {
        let (parts, body) = req.into_parts();
        let actor = authenticate(&parts, s).map_err(OpenAiError::refused)?;
        let body = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
            OpenAiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "The request body is too large.",
            )
        })?;
        // /organization/projects/{project_id}/service_accounts[/{id}[/api_keys]]
        let segments: Vec<&str> = parts
            .uri
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let pid = segments
            .iter()
            .position(|s| *s == "projects")
            .and_then(|i| segments.get(i + 1));
        let account_id = segments
            .iter()
            .position(|s| *s == "service_accounts")
            .and_then(|i| segments.get(i + 1))
            .map(|s| s.to_string());
        let project_id = pid
            .and_then(|p| uuid_any(p))
            .ok_or_else(|| OpenAiError::not_found("project_id", "project"))?;
        let project = s
            .manager
            .project(&actor, project_id)
            .await
            .map_err(|e| match e {
                manage::Error::NotFound(_) => OpenAiError::not_found("project_id", "project"),
                other => other.into(),
            })?;
        if project.archived {
            return Err(archived());
        }
        Ok(Self {
            actor,
            project,
            account_id,
            parts,
            body,
        })
    }

    fn object(&self) -> Result<Map<String, Value>> {
        object(&self.body).map_err(|e| {
            let message = match e {
                BodyError::Syntax(m) => format!("The body is not valid JSON: {m}"),
                BodyError::NotObject => "The body must be a JSON object.".into(),
            };
            OpenAiError::new(StatusCode::BAD_REQUEST, "invalid_json", message)
        })
    }

    /// The path's account: in this project, and not closed.
    async fn account(&self, s: &AdminState) -> Result<ServiceAccount> {
        let missing = || OpenAiError::not_found("service_account_id", "service account");
        let id = self
            .account_id
            .as_deref()
            .and_then(uuid_any)
            .ok_or_else(missing)?;
        let a = s
            .manager
            .account(&self.actor, id)
            .await
            .map_err(|e| match e {
                manage::Error::NotFound(_) => missing(),
                other => other.into(),
            })?;
        if a.project_id != Some(self.project.id) || a.closed_at.is_some() {
            return Err(missing());
        }
        Ok(a)
    }
}

fn account_json(a: &ServiceAccount) -> Value {
    json!({
        "object": "organization.project.service_account",
        "id": a.id,
        "name": a.name,
        "role": a.role,
        "created_at": unix_seconds(a.created_at),
    })
}

fn key_json(k: &IssuedKey) -> Value {
    json!({
        "object": "organization.project.service_account.api_key",
        "id": k.key.id,
        "name": k.key.name.clone().unwrap_or_default(),
        "created_at": unix_seconds(k.key.created_at),
        "expires_at": k.key.expires_at.map(unix_seconds),
        "value": k.value.as_str(),
    })
}

/// `expires_in_seconds`: a positive integer, as an RFC 3339 expiry.
fn expiry(body: &Map<String, Value>, now_ms: i64) -> Result<Option<String>> {
    match body.get("expires_in_seconds") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let secs = v
                .as_i64()
                .filter(|n| *n > 0 && *n <= 10 * 365 * 24 * 3600)
                .ok_or_else(|| {
                    OpenAiError::invalid("expires_in_seconds", "must be a positive integer")
                })?;
            Ok(Some(rfc3339(now_ms + secs * 1000)))
        }
    }
}

async fn list(State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    #[derive(serde::Deserialize)]
    struct Query {
        limit: Option<String>,
        after: Option<String>,
    }
    let q: Query = serde_urlencoded::from_str(call.parts.uri.query().unwrap_or(""))
        .map_err(|_| OpenAiError::invalid("limit", "malformed query string"))?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| OpenAiError::invalid("limit", "must be an integer from 1 to 100"))?,
    };
    let after = q
        .after
        .as_deref()
        .filter(|a| !a.is_empty())
        .map(|a| uuid_any(a).ok_or_else(|| OpenAiError::invalid("after", "is not an id")))
        .transpose()?;
    let filter = AccountFilter {
        project_id: Some(call.project.id),
        states: vec![
            AccountState::Active,
            AccountState::Disabled,
            AccountState::Expired,
        ],
        ..AccountFilter::default()
    };
    let listing = s
        .manager
        .accounts(&call.actor, filter, after, Some(limit))
        .await?;
    let data: Vec<Value> = listing.data.iter().map(account_json).collect();
    Ok(Json(json!({
        "object": "list",
        "first_id": listing.data.first().map(|a| a.id),
        "last_id": listing.data.last().map(|a| a.id),
        "has_more": listing.has_more,
        "data": data,
    }))
    .into_response())
}

async fn create(State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let body = call.object()?;
    let name = match body.get("name") {
        Some(Value::String(n)) if !n.trim().is_empty() => n.clone(),
        _ => return Err(OpenAiError::invalid("name", "name is required")),
    };
    let only_account = match body.get("create_service_account_only") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(OpenAiError::invalid(
                "create_service_account_only",
                "must be a boolean",
            ))
        }
    };
    let expires_at = expiry(&body, s.manager.now())?;
    if only_account && expires_at.is_some() {
        return Err(OpenAiError::invalid(
            "expires_in_seconds",
            "applies to the API key, and none is created",
        ));
    }
    let new = NewAccount {
        organization_id: call.project.organization_id,
        project_id: Some(call.project.id),
        key: (!only_account).then(|| NewKey {
            name: Some(name.clone()),
            expires_at,
        }),
        name,
        ..NewAccount::default()
    };
    let created = s.manager.create_account(&call.actor, new).await?.value;
    let mut v = account_json(&created.account);
    v["api_key"] = created.key.as_ref().map_or(Value::Null, key_json);
    Ok(Json(v).into_response())
}

async fn retrieve(State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    Ok(Json(account_json(&call.account(&s).await?)).into_response())
}

async fn delete(State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = call.account(&s).await?;
    s.manager.close_account(&call.actor, a.id).await?;
    Ok(Json(json!({
        "object": "organization.project.service_account.deleted",
        "id": a.id,
        "deleted": true,
    }))
    .into_response())
}

async fn create_key(State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = call.account(&s).await?;
    let body = call.object()?;
    // keygate keys carry their account's scopes: asking for others would
    // silently widen or narrow nothing, so it is refused.
    if let Some(scopes) = body.get("scopes").filter(|v| !v.is_null()) {
        let held = scopes.as_array().is_some_and(|list| {
            list.iter()
                .all(|s| s.as_str().is_some_and(|s| a.scopes.iter().any(|h| h == s)))
        });
        if !held {
            return Err(OpenAiError::invalid(
                "scopes",
                "a key carries its account's scopes; name only scopes the account holds",
            ));
        }
    }
    let name = match body.get("name") {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(OpenAiError::invalid("name", "must be a string")),
    };
    let new = NewKey {
        name: Some(name.unwrap_or_else(|| "Secret key".into())),
        expires_at: expiry(&body, s.manager.now())?,
    };
    let issued = s.manager.issue_key(&call.actor, a.id, new).await?.value;
    Ok(Json(key_json(&issued)).into_response())
}
