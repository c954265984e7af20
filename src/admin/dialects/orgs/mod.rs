//! The `orgs` dialect (`/compat/orgs`): organization-scoped service
//! accounts with several client credentials each — a `client_id` per
//! credential, the secret shown once — and `expand[]=permissions` saying
//! what the caller may do. Lists page by `after` / `before` cursors (the
//! item ids) in `{"items", "page_info"}`. The API documents no error body;
//! errors use keygate's own `{"error":{…}}`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

mod page;
mod wire;

use self::wire::{
    account_json, account_permissions, created_credential, credential_json, credential_permissions,
};
use super::{mount, uuid_any, QueryPairs};
use crate::admin::extract::nullable;
use crate::admin::{AdminState, ApiError};
use crate::authn::Principal;
use crate::manage::{AccountPatch, CredentialPatch, NewAccount, NewCredential, Tenant};
use crate::store::{ClientCredential, ServiceAccount};

type Result<T, E = ApiError> = std::result::Result<T, E>;
type Caller = super::Caller<ApiError>;
type Body<T> = super::Body<T, ApiError>;

pub(super) fn router() -> Router<AdminState> {
    let sa = "/organizations/{org}/service-accounts";
    mount::<ApiError>(
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
            ),
    )
}

/// A name and a description, as create and update take them. A
/// description of `null` clears it on update.
#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
}

impl Named {
    fn required_name(&self) -> Result<String> {
        self.name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or_else(|| {
                ApiError::invalid("missing_field", "name: is required", Some("name".into()))
            })
    }
}

/// `expand[]=permissions`, in any of the spellings clients use.
fn expands_permissions(q: &QueryPairs) -> bool {
    q.0.iter().any(|(k, v)| {
        (k == "expand" || k == "expand[]") && v.split(',').any(|e| e.trim() == "permissions")
    })
}

async fn organization(s: &AdminState, actor: &Principal, org: &str) -> Result<Uuid> {
    let id = uuid_any(org).ok_or_else(|| ApiError::not_found("organization"))?;
    Ok(s.manager.organization(actor, id).await?.id)
}

/// The path's account: of the path's organization, and open.
async fn account(s: &AdminState, actor: &Principal, org: &str, sa: &str) -> Result<ServiceAccount> {
    let org = organization(s, actor, org).await?;
    let id = uuid_any(sa).ok_or_else(|| ApiError::not_found("service account"))?;
    Ok(s.manager
        .open_account(actor, id, Tenant::Organization(org))
        .await?)
}

/// The path's credential, of the path's account.
async fn credential(
    s: &AdminState,
    actor: &Principal,
    (org, sa, cred): &(String, String, String),
) -> Result<(ServiceAccount, ClientCredential)> {
    let a = account(s, actor, org, sa).await?;
    let id = uuid_any(cred).ok_or_else(|| ApiError::not_found("credential"))?;
    let c = s.manager.credential(actor, a.id, id).await?;
    Ok((a, c))
}

async fn list_accounts(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(org): Path<String>,
    q: QueryPairs,
) -> Result<Response> {
    let org = organization(&s, &actor, &org).await?;
    let (cursor, limit) = page::requested(&q)?;
    let tenant = Tenant::Organization(org);
    s.manager.check_cursor(&actor, tenant, cursor).await?;
    let listing = s
        .manager
        .open_accounts(&actor, tenant, cursor, Some(limit))
        .await?;
    let expand = expands_permissions(&q);
    let items: Vec<Value> = listing
        .data
        .iter()
        .map(|a| account_json(a, expand.then(|| account_permissions(&s, &actor, a))))
        .collect();
    let page_info = page::page_info(&listing, |a| a.id);
    let mut body = json!({ "items": items, "page_info": page_info });
    if expand {
        body["permissions"] = json!({ "service_accounts": {
            "list": true,
            "create": s.manager.may_create_in(&actor, org),
        }});
    }
    Ok(Json(body).into_response())
}

async fn create_account(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(org): Path<String>,
    q: QueryPairs,
    super::Body(body, _): Body<Named>,
) -> Result<Response> {
    let org = organization(&s, &actor, &org).await?;
    let new = NewAccount {
        organization_id: org,
        name: body.required_name()?,
        description: body.description.flatten(),
        ..NewAccount::default()
    };
    let a = s.manager.create_account(&actor, new).await?.value.account;
    let p = expands_permissions(&q).then(|| account_permissions(&s, &actor, &a));
    Ok((StatusCode::CREATED, Json(account_json(&a, p))).into_response())
}

async fn get_account(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((org, sa)): Path<(String, String)>,
    q: QueryPairs,
) -> Result<Response> {
    let a = account(&s, &actor, &org, &sa).await?;
    let p = expands_permissions(&q).then(|| account_permissions(&s, &actor, &a));
    Ok(Json(account_json(&a, p)).into_response())
}

async fn update_account(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((org, sa)): Path<(String, String)>,
    q: QueryPairs,
    super::Body(body, _): Body<Named>,
) -> Result<Response> {
    let a = account(&s, &actor, &org, &sa).await?;
    // Names are checked where every dialect's are: in `manage`.
    let patch = AccountPatch {
        name: body.name,
        description: body.description,
        ..AccountPatch::default()
    };
    let updated = s.manager.update_account(&actor, a.id, patch).await?.value;
    let p = expands_permissions(&q).then(|| account_permissions(&s, &actor, &updated));
    Ok(Json(account_json(&updated, p)).into_response())
}

async fn delete_account(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((org, sa)): Path<(String, String)>,
) -> Result<Response> {
    let a = account(&s, &actor, &org, &sa).await?;
    s.manager.close_account(&actor, a.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_credentials(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((org, sa)): Path<(String, String)>,
    q: QueryPairs,
) -> Result<Response> {
    let a = account(&s, &actor, &org, &sa).await?;
    let (cursor, limit) = page::requested(&q)?;
    let listing = s
        .manager
        .credential_page(&actor, a.id, cursor, Some(limit))
        .await?;
    let expand = expands_permissions(&q);
    let change = s.manager.may_change(&actor, &a);
    let items: Vec<Value> = listing
        .data
        .iter()
        .map(|c| credential_json(c, expand.then(|| credential_permissions(change))))
        .collect();
    let page_info = page::page_info(&listing, |c| c.id);
    let mut body = json!({ "items": items, "page_info": page_info });
    if expand {
        body["permissions"] = json!({ "credentials": { "list": true, "create": change } });
    }
    Ok(Json(body).into_response())
}

async fn create_credential(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path((org, sa)): Path<(String, String)>,
    super::Body(body, _): Body<Named>,
) -> Result<Response> {
    let a = account(&s, &actor, &org, &sa).await?;
    let new = NewCredential {
        limits: Default::default(),
        explicit_expiry: false,
        name: Some(body.required_name()?),
        description: body.description.flatten(),
        expires_at: None,
        public_jwk: None,
    };
    let issued = s.manager.create_credential(&actor, a.id, new).await?.value;
    Ok((StatusCode::CREATED, Json(created_credential(&issued))).into_response())
}

async fn get_credential(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(ids): Path<(String, String, String)>,
    q: QueryPairs,
) -> Result<Response> {
    let (a, c) = credential(&s, &actor, &ids).await?;
    let p =
        expands_permissions(&q).then(|| credential_permissions(s.manager.may_change(&actor, &a)));
    Ok(Json(credential_json(&c, p)).into_response())
}

async fn update_credential(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(ids): Path<(String, String, String)>,
    q: QueryPairs,
    super::Body(body, _): Body<Named>,
) -> Result<Response> {
    let (a, c) = credential(&s, &actor, &ids).await?;
    let patch = CredentialPatch {
        limits: Default::default(),
        name: body.name,
        description: body.description,
        expires_at: None,
        public_jwk: None,
    };
    let updated = s
        .manager
        .update_credential(&actor, a.id, c.id, patch)
        .await?
        .value;
    let p =
        expands_permissions(&q).then(|| credential_permissions(s.manager.may_change(&actor, &a)));
    Ok(Json(credential_json(&updated, p)).into_response())
}

async fn delete_credential(
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(ids): Path<(String, String, String)>,
) -> Result<Response> {
    let (a, c) = credential(&s, &actor, &ids).await?;
    s.manager.delete_credential(&actor, a.id, c.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
