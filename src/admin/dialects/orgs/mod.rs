//! The `orgs` dialect (`/compat/orgs`): organization-scoped service
//! accounts with several client credentials each — a `client_id` per
//! credential, the secret shown once — and `expand[]=permissions` saying
//! what the caller may do. Lists page by `after` / `before` cursors (the
//! item ids) in `{"items", "page_info"}`. The API documents no error body;
//! errors use keygate's own `{"error":{…}}`.

use std::sync::Arc;

use axum::body::{to_bytes, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use uuid::Uuid;

mod page;
mod wire;

use self::page::page;
use self::wire::{
    account_json, account_permissions, created_credential, credential_json, credential_permissions,
};
use super::{object, uuid_any, BodyError};
use crate::admin::extract::authenticate;
use crate::admin::{AdminState, ApiError, MAX_BODY_BYTES};
use crate::authn::Principal;
use crate::manage::{AccountPatch, CredentialPatch, NewAccount, NewCredential};
use crate::store::{AccountFilter, AccountState, ClientCredential, ServiceAccount};

/// Most items one list reads before paging in memory (both directions).
const MAX_ITEMS: usize = 100_000;

type Result<T, E = ApiError> = std::result::Result<T, E>;

pub(super) fn router() -> Router<AdminState> {
    let sa = "/organizations/{org}/service-accounts";
    Router::new()
        .route(sa, get(list_accounts).post(create_account))
        .route(
            &format!("{sa}/{{sa}}"),
            get(get_account)
                .patch(update_account)
                .delete(delete_account),
        )
        .route(
            &format!("{sa}/{{sa}}/credentials"),
            get(list_credentials).post(create_credential),
        )
        .route(
            &format!("{sa}/{{sa}}/credentials/{{cred}}"),
            get(get_credential)
                .patch(update_credential)
                .delete(delete_credential),
        )
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                "this method is not allowed on this path",
            )
        })
}

/// A request, authenticated, its body read.
struct Call {
    actor: Arc<Principal>,
    parts: Parts,
    body: Bytes,
}

impl Call {
    async fn new(s: &AdminState, req: Request) -> Result<Self> {
        let (parts, body) = req.into_parts();
        let actor = authenticate(&parts, s).map_err(ApiError::refused)?;
        let body = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            )
        })?;
        Ok(Self { actor, parts, body })
    }

    fn object(&self) -> Result<Map<String, Value>> {
        object(&self.body).map_err(|e| match e {
            BodyError::Syntax(m) => {
                ApiError::invalid("invalid_json", format!("malformed JSON: {m}"), None)
            }
            BodyError::NotObject => {
                ApiError::invalid("invalid_json", "the body must be a JSON object", None)
            }
        })
    }

    /// `expand[]=permissions`, in any of the spellings clients use.
    fn expand_permissions(&self) -> bool {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(self.parts.uri.query().unwrap_or("")).unwrap_or_default();
        pairs.iter().any(|(k, v)| {
            (k == "expand" || k == "expand[]") && v.split(',').any(|e| e.trim() == "permissions")
        })
    }

    /// The organization and account of the path, checked to belong together.
    async fn account(&self, s: &AdminState, org: &str, sa: &str) -> Result<ServiceAccount> {
        let org = self.organization(s, org).await?;
        let id = uuid_any(sa).ok_or_else(|| ApiError::not_found("service account"))?;
        let a = s.manager.account(&self.actor, id).await?;
        if a.organization_id != org || a.closed_at.is_some() {
            return Err(ApiError::not_found("service account"));
        }
        Ok(a)
    }

    async fn organization(&self, s: &AdminState, org: &str) -> Result<Uuid> {
        let id = uuid_any(org).ok_or_else(|| ApiError::not_found("organization"))?;
        Ok(s.manager.organization(&self.actor, id).await?.id)
    }
}

/// An optional string field; `null` reads as absent.
fn text(body: &Map<String, Value>, field: &'static str) -> Result<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid(
            "invalid_value",
            format!("{field}: must be a string"),
            Some(field.into()),
        )),
    }
}

fn required_name(body: &Map<String, Value>) -> Result<String> {
    text(body, "name")?
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::invalid("missing_field", "name: is required", Some("name".into())))
}

async fn list_accounts(
    State(s): State<AdminState>,
    Path(org): Path<String>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let org = call.organization(&s, &org).await?;
    let filter = AccountFilter {
        organization_id: Some(org),
        states: vec![
            AccountState::Active,
            AccountState::Disabled,
            AccountState::Expired,
        ],
        ..AccountFilter::default()
    };
    let mut all = Vec::new();
    let mut after = None;
    while all.len() < MAX_ITEMS {
        let batch = s
            .manager
            .accounts(&call.actor, filter.clone(), after, Some(100))
            .await?;
        let next = batch.data.last().map(|a| a.id).filter(|_| batch.has_more);
        all.extend(batch.data);
        match next {
            Some(id) => after = Some(id),
            None => break,
        }
    }
    let (items, page_info) = page(&call, all, |a: &ServiceAccount| a.id)?;
    let expand = call.expand_permissions();
    let items: Vec<Value> = items
        .iter()
        .map(|a| account_json(a, expand.then(|| account_permissions(&s, &call.actor, a))))
        .collect();
    let mut body = json!({ "items": items, "page_info": page_info });
    if expand {
        body["permissions"] = json!({ "service_accounts": {
            "list": true,
            "create": s.manager.may_create_in(&call.actor, org),
        }});
    }
    Ok(Json(body).into_response())
}

async fn create_account(
    State(s): State<AdminState>,
    Path(org): Path<String>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let org = call.organization(&s, &org).await?;
    let body = call.object()?;
    let new = NewAccount {
        organization_id: org,
        name: required_name(&body)?,
        description: text(&body, "description")?,
        ..NewAccount::default()
    };
    let created = s.manager.create_account(&call.actor, new).await?.value;
    Ok((
        StatusCode::CREATED,
        Json(account_json(&created.account, None)),
    )
        .into_response())
}

async fn get_account(
    State(s): State<AdminState>,
    Path((org, sa)): Path<(String, String)>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = call.account(&s, &org, &sa).await?;
    let p = call
        .expand_permissions()
        .then(|| account_permissions(&s, &call.actor, &a));
    Ok(Json(account_json(&a, p)).into_response())
}

async fn update_account(
    State(s): State<AdminState>,
    Path((org, sa)): Path<(String, String)>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = call.account(&s, &org, &sa).await?;
    let body = call.object()?;
    // Names are checked where every dialect's are: in `manage`.
    let patch = AccountPatch {
        name: text(&body, "name")?,
        description: text(&body, "description")?.map(Some),
        ..AccountPatch::default()
    };
    let updated = s
        .manager
        .update_account(&call.actor, a.id, patch)
        .await?
        .value;
    Ok(Json(account_json(&updated, None)).into_response())
}

async fn delete_account(
    State(s): State<AdminState>,
    Path((org, sa)): Path<(String, String)>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = call.account(&s, &org, &sa).await?;
    s.manager.close_account(&call.actor, a.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_credentials(
    State(s): State<AdminState>,
    Path((org, sa)): Path<(String, String)>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = call.account(&s, &org, &sa).await?;
    let mut all = s.manager.credentials(&call.actor, a.id).await?;
    all.sort_by_key(|c| c.id);
    let (items, page_info) = page(&call, all, |c: &ClientCredential| c.id)?;
    let expand = call.expand_permissions();
    let change = s.manager.may_change(&call.actor, &a);
    let items: Vec<Value> = items
        .iter()
        .map(|c| credential_json(c, expand.then(|| credential_permissions(change))))
        .collect();
    let mut body = json!({ "items": items, "page_info": page_info });
    if expand {
        body["permissions"] = json!({ "credentials": { "list": true, "create": change } });
    }
    Ok(Json(body).into_response())
}

async fn create_credential(
    State(s): State<AdminState>,
    Path((org, sa)): Path<(String, String)>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = call.account(&s, &org, &sa).await?;
    let body = call.object()?;
    let new = NewCredential {
        name: Some(required_name(&body)?),
        description: text(&body, "description")?,
        expires_at: None,
    };
    let issued = s
        .manager
        .create_credential(&call.actor, a.id, new)
        .await?
        .value;
    Ok((StatusCode::CREATED, Json(created_credential(&issued))).into_response())
}

/// The path's credential, of the path's account.
async fn credential(
    s: &AdminState,
    call: &Call,
    org: &str,
    sa: &str,
    cred: &str,
) -> Result<(ServiceAccount, ClientCredential)> {
    let a = call.account(s, org, sa).await?;
    let id = uuid_any(cred).ok_or_else(|| ApiError::not_found("credential"))?;
    let c = s.manager.credential(&call.actor, a.id, id).await?;
    Ok((a, c))
}

async fn get_credential(
    State(s): State<AdminState>,
    Path((org, sa, cred)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let (a, c) = credential(&s, &call, &org, &sa, &cred).await?;
    let p = call
        .expand_permissions()
        .then(|| credential_permissions(s.manager.may_change(&call.actor, &a)));
    Ok(Json(credential_json(&c, p)).into_response())
}

async fn update_credential(
    State(s): State<AdminState>,
    Path((org, sa, cred)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let (a, c) = credential(&s, &call, &org, &sa, &cred).await?;
    let body = call.object()?;
    let patch = CredentialPatch {
        name: text(&body, "name")?,
        description: text(&body, "description")?.map(Some),
        expires_at: None,
    };
    let updated = s
        .manager
        .update_credential(&call.actor, a.id, c.id, patch)
        .await?
        .value;
    Ok(Json(credential_json(&updated, None)).into_response())
}

async fn delete_credential(
    State(s): State<AdminState>,
    Path((org, sa, cred)): Path<(String, String, String)>,
    req: Request,
) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let (a, c) = credential(&s, &call, &org, &sa, &cred).await?;
    s.manager.delete_credential(&call.actor, a.id, c.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
