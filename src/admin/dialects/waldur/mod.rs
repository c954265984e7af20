//! The `waldur` dialect (`/compat/waldur`): Waldur's marketplace project and
//! customer service accounts, for `waldur-api-client` and its users. A
//! customer is a keygate organization (name + abbreviation), a project a
//! project; a customer service account is an organization-wide account.
//! Callers authenticate with `Authorization: Token <key>` (or Bearer).
//!
//! Closing an account (DELETE) keeps it visible as `Closed`, where Waldur
//! deletes the row: keygate never forgets an account whose tokens may live.

mod list;
mod placement;
mod wire;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Json, Router};
use serde_json::{Map, Value};
use uuid::Uuid;

use self::list::ListQuery;
use self::placement::Placements;
use self::wire::{WaldurError, EXTRA_FIELDS};
use super::{mount, uuid_any, Origin};
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
type Caller = super::Caller<WaldurError>;
/// Waldur's bodies are read as objects: DRF tells an absent field from a
/// null one, and names the field at fault in its own words.
type Body = super::Body<Map<String, Value>, WaldurError>;

pub(super) fn router() -> Router<AdminState> {
    let mut r = Router::new();
    for kind in [Kind::Project, Kind::Customer] {
        let base = format!("/api/marketplace-{}-service-accounts", kind.path());
        let collection: MethodRouter<AdminState> = get(move |s, c, o, u| list(kind, s, c, o, u))
            .post(move |s, c, o, b| create(kind, s, c, o, b));
        let item: MethodRouter<AdminState> = get(move |s, c, o, p| retrieve(kind, s, c, o, p))
            .put(move |s, c, o, p, b| update(kind, true, s, c, o, p, b))
            .patch(move |s, c, o, p, b| update(kind, false, s, c, o, p, b))
            .delete(move |s, c, p| destroy(kind, s, c, p));
        let rotate: MethodRouter<AdminState> = post(move |s, c, o, p| rotate(kind, s, c, o, p));
        // Both spellings, never a redirect: the client does not follow one.
        r = r
            .route(&format!("{base}/"), collection.clone())
            .route(&base, collection)
            .route(&format!("{base}/{{id}}/"), item.clone())
            .route(&format!("{base}/{{id}}"), item)
            .route(&format!("{base}/{{id}}/rotate_api_key/"), rotate.clone())
            .route(&format!("{base}/{{id}}/rotate_api_key"), rotate);
    }
    mount::<WaldurError>(r)
}

/// One account as the answer's JSON.
async fn answer(
    kind: Kind,
    s: &AdminState,
    actor: &Principal,
    origin: &Origin,
    a: &ServiceAccount,
    token: Option<&str>,
) -> Result<Value> {
    let placement = Placements::default().of(s, actor, a).await?;
    Ok(wire::account(
        kind,
        &origin.0,
        a,
        &placement,
        token,
        s.manager.now(),
    ))
}

/// The account the path names, if it is of this kind and the caller may
/// see it. Closed accounts stay visible here, as `Closed`.
async fn account(
    kind: Kind,
    s: &AdminState,
    actor: &Principal,
    id: &str,
) -> Result<ServiceAccount> {
    let id = uuid_any(id).ok_or_else(WaldurError::not_found)?;
    let a = s.manager.account(actor, id).await?;
    if !kind.owns(&a) {
        return Err(WaldurError::not_found());
    }
    Ok(a)
}

async fn list(
    kind: Kind,
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    origin: Origin,
    OriginalUri(uri): OriginalUri,
) -> Result<Response> {
    let q = ListQuery::parse(kind, uri.query())?;
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
                .accounts_at(&actor, q.filter.clone(), offset, 1000)
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
        // A numbered page is read with the total in one call; only `last`
        // needs the total first.
        let number = match q.page_number() {
            Some(n) => n,
            None => {
                let counted = s
                    .manager
                    .accounts_at(&actor, q.filter.clone(), 0, 0)
                    .await?;
                q.page_of(counted.total)?
            }
        };
        let offset = (number - 1).saturating_mul(size);
        let counted = s
            .manager
            .accounts_at(&actor, q.filter.clone(), offset, q.page_size)
            .await?;
        let page = q.page_of(counted.total)?;
        let data = counted.data;
        (page, counted.total, data)
    };
    let mut placements = Placements::default();
    let now = s.manager.now();
    let mut items = Vec::with_capacity(accounts.len());
    for a in &accounts {
        let placement = placements.of(&s, &actor, a).await?;
        items.push(wire::account(kind, &origin.0, a, &placement, None, now));
    }
    let link = q.link(&format!("{}{}", origin.0, uri.path()), page, total);
    let mut res = Json(Value::Array(items)).into_response();
    let h = res.headers_mut();
    h.insert(&RESULT_COUNT, HeaderValue::from(total));
    if let Some(v) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
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

/// The placement (project or customer) a body names: required on create and
/// PUT; an id that names nothing the caller may see is a 400 on the field,
/// as Waldur answers.
async fn placement_in_body(
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

async fn create(
    kind: Kind,
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    origin: Origin,
    super::Body(body, _): Body,
) -> Result<Response> {
    let (organization_id, project_id) = placement_in_body(kind, &s, &actor, &body)
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
    let created = s.manager.create_account(&actor, new).await?.value;
    let token = created.key.as_ref().map(|k| k.value.as_str());
    let v = answer(kind, &s, &actor, &origin, &created.account, token).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn retrieve(
    kind: Kind,
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<Response> {
    let a = account(kind, &s, &actor, &id).await?;
    Ok(Json(answer(kind, &s, &actor, &origin, &a, None).await?).into_response())
}

/// PUT and PATCH. Both change only what the body names (DRF's update);
/// PUT must name the scope. Neither moves an account to another scope.
async fn update(
    kind: Kind,
    put: bool,
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    origin: Origin,
    Path(id): Path<String>,
    super::Body(body, _): Body,
) -> Result<Response> {
    let a = account(kind, &s, &actor, &id).await?;
    match placement_in_body(kind, &s, &actor, &body).await? {
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
    let updated = s.manager.update_account(&actor, a.id, patch).await?.value;
    Ok(Json(answer(kind, &s, &actor, &origin, &updated, None).await?).into_response())
}

/// DELETE closes the account (every key and credential revoked); it stays
/// visible as `Closed`, and closing it again is not an error.
async fn destroy(
    kind: Kind,
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let a = account(kind, &s, &actor, &id).await?;
    if a.closed_at.is_none() {
        s.manager.close_account(&actor, a.id).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A new key; the old ones stop working at once.
async fn rotate(
    kind: Kind,
    State(s): State<AdminState>,
    Caller { actor, .. }: Caller,
    origin: Origin,
    Path(id): Path<String>,
) -> Result<Response> {
    let a = account(kind, &s, &actor, &id).await?;
    let (account, key) = s.manager.rotate_key(&actor, a.id, 0).await?.value;
    let token = Some(key.value.as_str());
    Ok(Json(answer(kind, &s, &actor, &origin, &account, token).await?).into_response())
}
