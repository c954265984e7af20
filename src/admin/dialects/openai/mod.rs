//! The `openai` dialect (`/compat/openai/v1`): OpenAI's project service
//! accounts and their API keys, for the official SDK's
//! `client.admin.organization.projects.service_accounts`. Times are unix
//! seconds; lists page by `limit` and an `after` cursor; errors are
//! `{"error":{"message","type","param","code"}}`. Closed accounts are gone
//! from this API's point of view.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

mod error;

use self::error::{archived, OpenAiError};
use super::{mount, unix_seconds, uuid_any, QueryPairs};
use crate::admin::AdminState;
use crate::authn::Principal;
use crate::clock::rfc3339;
use crate::manage::{self, Cursor, IssuedKey, NewAccount, NewKey, Tenant};
use crate::store::{Project, ServiceAccount};

const DEFAULT_LIMIT: u32 = 20;

type Result<T, E = OpenAiError> = std::result::Result<T, E>;
type Caller = super::Caller<OpenAiError>;
type Body<T> = super::Body<T, OpenAiError>;

pub(super) fn router() -> Router<AdminState> {
    let base = "/organization/projects/{project_id}/service_accounts";
    mount::<OpenAiError>(
        Router::new()
            .route(base, get(list).post(create))
            .route(
                &format!("{base}/{{service_account_id}}"),
                get(retrieve).delete(delete),
            )
            .route(
                &format!("{base}/{{service_account_id}}/api_keys"),
                post(create_key),
            ),
    )
}

/// The path's project, checked in the order the API answers: 404 for a
/// project the caller cannot see, then 403, then 400 when archived.
async fn project(s: &AdminState, actor: &Principal, raw: &str) -> Result<Project> {
    let missing = || OpenAiError::not_found("project_id", "project");
    let id = uuid_any(raw).ok_or_else(missing)?;
    let project = s.manager.project(actor, id).await.map_err(|e| match e {
        manage::Error::NotFound(_) => missing(),
        other => other.into(),
    })?;
    if project.archived {
        return Err(archived());
    }
    Ok(project)
}

/// The path's account: in the path's project, and open.
async fn account(
    s: &AdminState,
    actor: &Principal,
    (project_id, account_id): &(String, String),
) -> Result<ServiceAccount> {
    let project = project(s, actor, project_id).await?;
    let missing = || OpenAiError::not_found("service_account_id", "service account");
    let id = uuid_any(account_id).ok_or_else(missing)?;
    s.manager
        .open_account(actor, id, Tenant::Project(project.id))
        .await
        .map_err(|e| match e {
            manage::Error::NotFound(_) => missing(),
            other => other.into(),
        })
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
fn expiry(secs: Option<i64>, now_ms: i64) -> Result<Option<String>> {
    secs.map(|secs| {
        if secs > 0 && secs <= 10 * 365 * 24 * 3600 {
            Ok(rfc3339(now_ms + secs * 1000))
        } else {
            Err(OpenAiError::invalid(
                "expires_in_seconds",
                "must be a positive integer",
            ))
        }
    })
    .transpose()
}

async fn list(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(project_id): Path<String>,
    q: QueryPairs,
) -> Result<Response> {
    let project = project(&s, &actor, &project_id).await?;
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=100).contains(l))
            .ok_or_else(|| OpenAiError::invalid("limit", "must be an integer from 1 to 100"))?,
    };
    let after = q
        .get("after")
        .filter(|a| !a.is_empty())
        .map(|a| uuid_any(a).ok_or_else(|| OpenAiError::invalid("after", "is not an id")))
        .transpose()?;
    // A cursor is an id; OpenAI pages past one that is gone without
    // complaint, so this reads the list as is rather than checking it.
    let tenant = Tenant::Project(project.id);
    let listing = s
        .manager
        .open_accounts(&actor, tenant, Cursor::after(after), Some(limit))
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

#[derive(Deserialize)]
struct CreateAccount {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    create_service_account_only: Option<bool>,
    #[serde(default)]
    expires_in_seconds: Option<i64>,
}

async fn create(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(project_id): Path<String>,
    super::Body(body, _): Body<CreateAccount>,
) -> Result<Response> {
    let project = project(&s, &actor, &project_id).await?;
    let name = body
        .name
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| OpenAiError::invalid("name", "name is required"))?;
    let only_account = body.create_service_account_only.unwrap_or(false);
    let expires_at = expiry(body.expires_in_seconds, s.manager.now())?;
    if only_account && expires_at.is_some() {
        return Err(OpenAiError::invalid(
            "expires_in_seconds",
            "applies to the API key, and none is created",
        ));
    }
    let new = NewAccount {
        organization_id: project.organization_id,
        project_id: Some(project.id),
        key: (!only_account).then(|| NewKey {
            limits: Default::default(),
            explicit_expiry: false,
            name: Some(name.clone()),
            expires_at,
        }),
        name,
        ..NewAccount::default()
    };
    let created = s.manager.create_account(&actor, new).await?.value;
    let mut v = account_json(&created.account);
    v["api_key"] = created.key.as_ref().map_or(Value::Null, key_json);
    Ok(Json(v).into_response())
}

async fn retrieve(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(ids): Path<(String, String)>,
) -> Result<Response> {
    Ok(Json(account_json(&account(&s, &actor, &ids).await?)).into_response())
}

async fn delete(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(ids): Path<(String, String)>,
) -> Result<Response> {
    let a = account(&s, &actor, &ids).await?;
    s.manager.close_account(&actor, a.id).await?;
    Ok(Json(json!({
        "object": "organization.project.service_account.deleted",
        "id": a.id,
        "deleted": true,
    }))
    .into_response())
}

#[derive(Deserialize)]
struct CreateKey {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    expires_in_seconds: Option<i64>,
}

async fn create_key(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(ids): Path<(String, String)>,
    super::Body(body, _): Body<CreateKey>,
) -> Result<Response> {
    let a = account(&s, &actor, &ids).await?;
    // keygate keys carry their account's scopes: asking for others would
    // silently widen or narrow nothing, so it is refused.
    if let Some(scopes) = &body.scopes {
        if !scopes.iter().all(|s| a.scopes.iter().any(|h| h == s)) {
            return Err(OpenAiError::invalid(
                "scopes",
                "a key carries its account's scopes; name only scopes the account holds",
            ));
        }
    }
    let new = NewKey {
        limits: Default::default(),
        explicit_expiry: false,
        name: Some(body.name.unwrap_or_else(|| "Secret key".into())),
        expires_at: expiry(body.expires_in_seconds, s.manager.now())?,
    };
    let issued = s.manager.issue_key(&actor, a.id, new).await?.value;
    Ok(Json(key_json(&issued)).into_response())
}
