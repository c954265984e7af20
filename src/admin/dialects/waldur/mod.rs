//! The `waldur` dialect (`/compat/waldur`): Waldur's marketplace project and
//! customer service accounts, for `waldur-api-client` and its users. A
//! customer is a keygate organization (name + abbreviation), a project a
//! project; a customer service account is an organization-wide account.
//! Callers authenticate with `Authorization: Token <key>` (or Bearer).
//!
//! Closing an account (DELETE) keeps it visible as `Closed`, where Waldur
//! deletes the row: keygate never forgets an account whose tokens may live.

mod call;
mod list;
mod wire;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::{Map, Value};
use uuid::Uuid;

use self::call::{Call, Scopes};
use self::list::ListQuery;
use self::wire::{WaldurError, EXTRA_FIELDS};
use super::uuid_any;
use crate::admin::AdminState;
use crate::authn::Principal;
use crate::manage::{AccountPatch, NewAccount, NewKey};
use crate::store::{Metadata, ServiceAccount};

/// Which of Waldur's two service-account APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Project,
    Customer,
}

impl Kind {
    /// As it appears in paths and field names.
    fn path(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Customer => "customer",
        }
    }

    /// Whether `a` is an account of this kind.
    fn owns(self, a: &ServiceAccount) -> bool {
        (self == Kind::Project) == a.project_id.is_some()
    }
}

static RESULT_COUNT: HeaderName = HeaderName::from_static("x-result-count");

type Result<T, E = WaldurError> = std::result::Result<T, E>;

pub(super) fn router() -> Router<AdminState> {
    let mut r = Router::new();
    for kind in [Kind::Project, Kind::Customer] {
        let base = format!("/api/marketplace-{}-service-accounts", kind.path());
        let collection: MethodRouter<AdminState> =
            get(move |s, req| list(kind, s, req)).post(move |s, req| create(kind, s, req));
        let item: MethodRouter<AdminState> = get(move |s, req| retrieve(kind, s, req))
            .put(move |s, req| update(kind, s, req))
            .patch(move |s, req| update(kind, s, req))
            .delete(move |s, req| destroy(kind, s, req));
        let rotate: MethodRouter<AdminState> = post(move |s, req| rotate(kind, s, req));
        // Both spellings, never a redirect: the client does not follow one.
        r = r
            .route(&format!("{base}/"), collection.clone())
            .route(&base, collection)
            .route(&format!("{base}/{{id}}/"), item.clone())
            .route(&format!("{base}/{{id}}"), item)
            .route(&format!("{base}/{{id}}/rotate_api_key/"), rotate.clone())
            .route(&format!("{base}/{{id}}/rotate_api_key"), rotate);
    }
    r.fallback(|| async { WaldurError::not_found() })
        .method_not_allowed_fallback(|method: Method| async move {
            WaldurError::method_not_allowed(method.as_str())
        })
}

/// One account as the answer's JSON.
async fn answer(
    kind: Kind,
    s: &AdminState,
    call: &Call,
    a: &ServiceAccount,
    token: Option<&str>,
) -> Result<Value> {
    let scope = Scopes::default().of(s, &call.actor, a).await?;
    Ok(wire::account(
        kind,
        &call.origin(),
        a,
        &scope,
        token,
        s.manager.now(),
    ))
}

/// The account the path names, if it is of this kind and the caller may
/// see it.
async fn account(kind: Kind, s: &AdminState, call: &Call) -> Result<ServiceAccount> {
    let a = s.manager.account(&call.actor, call.id()?).await?;
    if !kind.owns(&a) {
        return Err(WaldurError::not_found());
    }
    Ok(a)
}

async fn list(kind: Kind, State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let q = ListQuery::parse(kind, call.parts.uri.query())?;
    let size = u64::from(q.page_size);
    let (page, total, accounts) = if q.matches_nothing {
        (q.page_of(0)?, 0, Vec::new())
    } else if let Some(email) = &q.email {
        // The e-mail is an attribute, not a column: filter here. Bounded
        // by what one caller may see.
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let batch = s
                .manager
                .accounts_at(&call.actor, q.filter.clone(), offset, 1000)
                .await?;
            let n = batch.data.len() as u64;
            all.extend(batch.data.into_iter().filter(|a| {
                a.metadata
                    .get("email")
                    .and_then(Value::as_str)
                    .is_some_and(|e| e.to_lowercase().contains(email.as_str()))
            }));
            offset += n;
            if n < 1000 || offset >= 100_000 {
                break;
            }
        }
        let total = all.len() as u64;
        let page = q.page_of(total)?;
        let skip = usize::try_from((page - 1) * size).unwrap_or(usize::MAX);
        let data = all
            .into_iter()
            .skip(skip)
            .take(q.page_size as usize)
            .collect();
        (page, total, data)
    } else {
        let counted = s
            .manager
            .accounts_at(&call.actor, q.filter.clone(), 0, 0)
            .await?;
        let page = q.page_of(counted.total)?;
        let data = s
            .manager
            .accounts_at(
                &call.actor,
                q.filter.clone(),
                (page - 1) * size,
                q.page_size,
            )
            .await?
            .data;
        (page, counted.total, data)
    };
    let mut scopes = Scopes::default();
    let origin = call.origin();
    let now = s.manager.now();
    let mut items = Vec::with_capacity(accounts.len());
    for a in &accounts {
        let scope = scopes.of(&s, &call.actor, a).await?;
        items.push(wire::account(kind, &origin, a, &scope, None, now));
    }
    // The router sees the path below the dialect's prefix.
    let link = q.link(
        &format!("{origin}/compat/waldur{}", call.parts.uri.path()),
        page,
        total,
    );
    let mut res = Json(Value::Array(items)).into_response();
    let h = res.headers_mut();
    h.insert(&RESULT_COUNT, HeaderValue::from(total));
    if let Ok(v) = HeaderValue::from_str(&link) {
        h.insert(axum::http::header::LINK, v);
    }
    Ok(res)
}

/// A string field of a body, if present; `null` reads as absent.
fn text(body: &Map<String, Value>, field: &str) -> Result<Option<String>> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(WaldurError::field(field, "Not a valid string.")),
    }
}

/// The extra attributes a body sets, validated.
fn extras(body: &Map<String, Value>) -> Result<Metadata> {
    let mut m = Metadata::new();
    for field in EXTRA_FIELDS {
        if let Some(v) = text(body, field)? {
            if field == "email" && !v.is_empty() && !looks_like_email(&v) {
                return Err(WaldurError::field("email", "Enter a valid email address."));
            }
            m.insert(field.into(), Value::String(v));
        }
    }
    Ok(m)
}

fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// The scope (project or customer) a body names: required on create and
/// PUT; an id that names nothing the caller may see is a 400 on the field,
/// as Waldur answers.
async fn scope_in_body(
    kind: Kind,
    s: &AdminState,
    actor: &Principal,
    body: &Map<String, Value>,
) -> Result<Option<(Uuid, Option<Uuid>)>> {
    let field = kind.path();
    let raw = match body.get(field) {
        None => return Ok(None),
        Some(Value::Null) => return Err(WaldurError::field(field, "This field may not be null.")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(WaldurError::field(field, "Incorrect type.")),
    };
    let id = uuid_any(&raw)
        .ok_or_else(|| WaldurError::field(field, format!("“{raw}” is not a valid UUID.")))?;
    let missing = || WaldurError::field(field, format!("Object with uuid={raw} does not exist."));
    match kind {
        Kind::Project => {
            let p = s.manager.project(actor, id).await.map_err(|_| missing())?;
            Ok(Some((p.organization_id, Some(p.id))))
        }
        Kind::Customer => {
            let o = s
                .manager
                .organization(actor, id)
                .await
                .map_err(|_| missing())?;
            Ok(Some((o.id, None)))
        }
    }
}

async fn create(kind: Kind, State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let body = call.object()?;
    let (organization_id, project_id) = scope_in_body(kind, &s, &call.actor, &body)
        .await?
        .ok_or_else(|| WaldurError::field(kind.path(), "This field is required."))?;
    // Waldur makes one up when none is given.
    let name = text(&body, "username")?
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("sa-{}", &Uuid::new_v4().simple().to_string()[..8]));
    let new = NewAccount {
        organization_id,
        project_id,
        name,
        description: text(&body, "description")?.filter(|d| !d.is_empty()),
        metadata: extras(&body)?,
        key: Some(NewKey::default()),
        ..NewAccount::default()
    };
    let created = s.manager.create_account(&call.actor, new).await?.value;
    let token = created.key.as_ref().map(|k| k.value.as_str());
    let v = answer(kind, &s, &call, &created.account, token).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn retrieve(kind: Kind, State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = account(kind, &s, &call).await?;
    Ok(Json(answer(kind, &s, &call, &a, None).await?).into_response())
}

/// PUT and PATCH. Both change only what the body names (DRF's update);
/// PUT must name the scope. Neither moves an account to another scope.
async fn update(kind: Kind, State(s): State<AdminState>, req: Request) -> Result<Response> {
    let put = req.method() == Method::PUT;
    let call = Call::new(&s, req).await?;
    let a = account(kind, &s, &call).await?;
    let body = call.object()?;
    match scope_in_body(kind, &s, &call.actor, &body).await? {
        None if put => return Err(WaldurError::field(kind.path(), "This field is required.")),
        Some((org, project)) if (org, project) != (a.organization_id, a.project_id) => {
            return Err(WaldurError::field(
                kind.path(),
                format!(
                    "Service account cannot be moved to another {}.",
                    kind.path()
                ),
            ))
        }
        _ => {}
    }
    let extras = extras(&body)?;
    let patch = AccountPatch {
        name: text(&body, "username")?,
        description: text(&body, "description")?.map(|d| Some(d).filter(|d| !d.is_empty())),
        metadata: (!extras.is_empty()).then_some(extras),
        ..AccountPatch::default()
    };
    let updated = s
        .manager
        .update_account(&call.actor, a.id, patch)
        .await?
        .value;
    Ok(Json(answer(kind, &s, &call, &updated, None).await?).into_response())
}

/// DELETE closes the account (every key and credential revoked); it stays
/// visible as `Closed`, and closing it again is not an error.
async fn destroy(kind: Kind, State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = account(kind, &s, &call).await?;
    if a.closed_at.is_none() {
        s.manager.close_account(&call.actor, a.id).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new key; the old ones stop working at once.
async fn rotate(kind: Kind, State(s): State<AdminState>, req: Request) -> Result<Response> {
    let call = Call::new(&s, req).await?;
    let a = account(kind, &s, &call).await?;
    let (account, key) = s.manager.rotate_key(&call.actor, a.id, 0).await?.value;
    Ok(Json(answer(kind, &s, &call, &account, Some(key.value.as_str())).await?).into_response())
}
