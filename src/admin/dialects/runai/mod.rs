//! The `runai` dialect (`/compat/runai`): NVIDIA Run:ai's service accounts
//! and its token endpoint, for the official `runapy` client. An account's
//! `clientId` is its primary client credential (the oldest live one);
//! `POST /api/v1/token` trades it for a keygate JWT, which the client then
//! presents as `Authorization: Bearer`. Fields are camelCase; errors are
//! `{"code","message"}`. The tenant is the caller's organization.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

mod error;

use self::error::RunaiError;
use super::{mount, uuid_any, QueryPairs, SaysRefusal};
use crate::admin::AdminState;
use crate::authn::{self, Principal};
use crate::clock::rfc3339;
use crate::jwt::Grant;
use crate::listener::ClientAddr;
use crate::manage::{self, AccountPatch, NewAccount, NewCredential, Tenant};
use crate::store::ServiceAccount;

/// Most accounts one list answers (the API's `maxItems`).
const MAX_LIST: u32 = 1000;

type Result<T, E = RunaiError> = std::result::Result<T, E>;
type Caller = super::Caller<RunaiError>;
type Body<T> = super::Body<T, RunaiError>;

pub(super) fn router() -> Router<AdminState> {
    mount::<RunaiError>(
        Router::new()
            .route("/api/v1/token", post(token))
            .route("/api/v1/service-accounts", get(list).post(create))
            .route(
                "/api/v1/service-accounts/{id}",
                get(retrieve).patch(update).delete(delete),
            )
            .route("/api/v1/service-accounts/{id}/secret", post(regenerate)),
    )
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
    ClientAddr(peer): ClientAddr,
    super::Body(body, _): Body<Map<String, Value>>,
) -> Result<Response> {
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
    let p = s.authn.client(peer, id, secret).map_err(|r| match r {
        authn::Refusal::Missing | authn::Refusal::Invalid => {
            RunaiError::new(StatusCode::UNAUTHORIZED, "invalid client credentials")
        }
        other => RunaiError::refused(other),
    })?;
    let scope = p.scopes.to_joined_string();
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

/// The path's account: of the caller's tenant, and open.
async fn account(s: &AdminState, actor: &Principal, id: &str) -> Result<ServiceAccount> {
    let id = uuid_any(id).ok_or_else(RunaiError::not_found)?;
    Ok(s.manager
        .open_account(actor, id, Tenant::Organization(actor.organization_id))
        .await?)
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

/// Accounts as answered, each with its primary credential's `clientId`,
/// read for all of them at once.
async fn described(
    s: &AdminState,
    actor: &Principal,
    accounts: &[ServiceAccount],
) -> Result<Value> {
    let primary = s.manager.primary_credentials(actor, accounts).await?;
    Ok(Value::Array(
        accounts
            .iter()
            .map(|a| account_json(a, primary.get(&a.id).map(|c| c.client_id.as_str())))
            .collect(),
    ))
}

async fn described_one(s: &AdminState, actor: &Principal, a: ServiceAccount) -> Result<Value> {
    let mut list = described(s, actor, std::slice::from_ref(&a)).await?;
    Ok(list
        .as_array_mut()
        .and_then(Vec::pop)
        .unwrap_or(Value::Null))
}

/// The API answers one array (at most 1000 accounts). `offset` and `limit`
/// (1–1000), as Run:ai's other lists take them, page through more.
async fn list(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    q: QueryPairs,
) -> Result<Response> {
    let offset = match q.get("offset") {
        None => 0,
        Some(o) => o
            .parse::<u64>()
            .map_err(|_| RunaiError::bad("offset must be a non-negative integer"))?,
    };
    let limit = match q.get("limit") {
        None => MAX_LIST,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=MAX_LIST).contains(l))
            .ok_or_else(|| RunaiError::bad("limit must be an integer from 1 to 1000"))?,
    };
    let tenant = Tenant::Organization(actor.organization_id);
    let accounts = s
        .manager
        .open_accounts_from(&actor, tenant, offset, limit)
        .await?;
    Ok(Json(described(&s, &actor, &accounts).await?).into_response())
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

#[derive(Deserialize)]
struct CreateAccount {
    #[serde(default)]
    name: Option<String>,
}

async fn create(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    super::Body(body, _): Body<CreateAccount>,
) -> Result<Response> {
    let name = match body.name {
        Some(n) if valid_name(&n) => n,
        Some(_) => {
            return Err(RunaiError::bad(
                "name must match ^[a-z][-_a-z0-9]*[a-z0-9]$ (2-255 characters)",
            ))
        }
        None => return Err(RunaiError::bad("name is required")),
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
        "clientSecret": credential.and_then(|c| c.secret.as_deref()),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

async fn retrieve(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let a = account(&s, &actor, &id).await?;
    Ok(Json(described_one(&s, &actor, a).await?).into_response())
}

#[derive(Deserialize)]
struct Enable {
    #[serde(default)]
    enabled: Option<bool>,
}

/// `PATCH {"enabled": bool}`: disabling cuts the account's live tokens off.
async fn update(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
    super::Body(body, _): Body<Enable>,
) -> Result<Response> {
    let a = account(&s, &actor, &id).await?;
    let Some(enabled) = body.enabled else {
        return Err(RunaiError::bad("enabled is required and must be a boolean"));
    };
    let patch = AccountPatch {
        enabled: Some(enabled),
        ..AccountPatch::default()
    };
    let updated = s.manager.update_account(&actor, a.id, patch).await?.value;
    Ok(Json(described_one(&s, &actor, updated).await?).into_response())
}

async fn delete(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let a = account(&s, &actor, &id).await?;
    s.manager.close_account(&actor, a.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new secret for the primary credential (same `clientId`; the old
/// secret stops working at once), or a first credential if it has none.
async fn regenerate(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let a = account(&s, &actor, &id).await?;
    let primary = s
        .manager
        .primary_credentials(&actor, std::slice::from_ref(&a))
        .await?
        .remove(&a.id);
    let issued = match primary {
        Some(c) => s.manager.regenerate_secret(&actor, a.id, c.id).await?.value,
        None => {
            let new = NewCredential {
                name: Some("runai".into()),
                ..NewCredential::default()
            };
            s.manager.create_credential(&actor, a.id, new).await?.value
        }
    };
    Ok(Json(json!({ "clientSecret": issued.secret.as_deref() })).into_response())
}
