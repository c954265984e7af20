//! Waldur's wire format: Django REST framework error bodies, and the
//! service-account objects of both kinds with every field of the API's
//! response tables.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::Kind;
use crate::admin::dialects::{BodyError, Dialect, SaysBadBody, SaysRefusal};
use crate::authn;
use crate::clock::rfc3339;
use crate::manage;
use crate::store::{AccountState, Organization, Project, ServiceAccount};

/// An error in DRF's shapes: `{"detail": …}` or `{"field": ["…"]}`.
#[derive(Debug)]
pub(super) struct WaldurError {
    status: StatusCode,
    body: Value,
    retry_after: Option<u64>,
}

impl WaldurError {
    pub(super) fn detail(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "detail": message.into() }),
            retry_after: None,
        }
    }

    pub(super) fn field(field: &str, message: impl Into<String>) -> Self {
        let mut body = Map::new();
        body.insert(field.into(), json!([message.into()]));
        Self {
            status: StatusCode::BAD_REQUEST,
            body: Value::Object(body),
            retry_after: None,
        }
    }

    pub(super) fn not_found() -> Self {
        Self::detail(StatusCode::NOT_FOUND, "Not found.")
    }
}

impl SaysBadBody for WaldurError {
    fn bad_body(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => {
                Self::detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body is too large.")
            }
            BodyError::Unreadable => Self::detail(
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
            ),
            BodyError::Syntax(m) => {
                Self::detail(StatusCode::BAD_REQUEST, format!("JSON parse error - {m}"))
            }
            BodyError::NotObject => Self::field(
                "non_field_errors",
                "Invalid data. Expected a dictionary, but got list.",
            ),
            BodyError::Field { field, message } => Self::field(&field, message),
        }
    }
}

impl Dialect for WaldurError {
    fn unknown_path() -> Self {
        Self::not_found()
    }

    fn method_not_allowed(method: &Method) -> Self {
        Self::detail(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("Method \"{method}\" not allowed."),
        )
    }
}

impl SaysRefusal for WaldurError {
    fn refused(r: authn::Refusal) -> Self {
        match r {
            authn::Refusal::Missing => Self::detail(
                StatusCode::UNAUTHORIZED,
                "Authentication credentials were not provided.",
            ),
            authn::Refusal::Invalid => Self::detail(StatusCode::UNAUTHORIZED, "Invalid token."),
            authn::Refusal::Ambiguous => Self::detail(
                StatusCode::BAD_REQUEST,
                "Present one credential, not several.",
            ),
            authn::Refusal::Stale => Self::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable.",
            ),
            authn::Refusal::Throttled(wait) => Self {
                retry_after: Some(wait),
                ..Self::detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("Request was throttled. Expected available in {wait} seconds."),
                )
            },
        }
    }
}

impl From<manage::Error> for WaldurError {
    fn from(e: manage::Error) -> Self {
        use manage::Error as E;
        match e {
            E::Invalid { param, message } => Self::field(field_of(param), message),
            E::Forbidden(_) => Self::detail(
                StatusCode::FORBIDDEN,
                "You do not have permission to perform this action.",
            ),
            E::NotFound(_) => Self::not_found(),
            E::Archived => Self::field("project", "Project is archived."),
            E::Conflict {
                code: "duplicate_name",
                ..
            } => Self::field(
                "username",
                "Service account with this username already exists.",
            ),
            E::Conflict {
                code: "account_closed",
                ..
            } => Self::detail(StatusCode::BAD_REQUEST, "Service account is closed."),
            E::Conflict { message, .. } => Self::detail(StatusCode::CONFLICT, message),
            E::Unavailable => Self::detail(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service temporarily unavailable.",
            ),
            E::Internal => Self::detail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "A server error occurred.",
            ),
        }
    }
}

/// keygate's field names as Waldur names them.
fn field_of(param: &str) -> &str {
    match param {
        "name" => "username",
        other => other,
    }
}

impl IntoResponse for WaldurError {
    fn into_response(self) -> Response {
        let mut res = (self.status, Json(self.body)).into_response();
        let h = res.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
        }
        if let Some(wait) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        res
    }
}

/// Waldur writes ids as 32 hex digits.
pub(super) fn hex(id: Uuid) -> String {
    id.simple().to_string()
}

/// Metadata keys this dialect keeps for fields keygate has no use for.
pub(super) const EXTRA_FIELDS: [&str; 3] = ["email", "preferred_identifier", "error_traceback"];

/// Where an account is, resolved: its organization and, for a project
/// account, its project.
pub(super) struct Placement {
    pub(super) organization: Organization,
    pub(super) project: Option<Project>,
}

/// One service account as Waldur answers it. `token`: the key's value in
/// the answer that made it (create, rotate), else null.
pub(super) fn account(
    kind: Kind,
    origin: &str,
    a: &ServiceAccount,
    placement: &Placement,
    token: Option<&str>,
    now_ms: i64,
) -> Value {
    let (state, error_message) = match a.state(now_ms) {
        AccountState::Active => ("OK", ""),
        AccountState::Closed => ("Closed", ""),
        AccountState::Disabled => ("Erred", "Service account is disabled."),
        AccountState::Expired => ("Erred", "Service account has expired."),
    };
    let extra = |k: &str| {
        a.metadata
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut v = json!({
        "url": format!("{origin}/compat/waldur/api/marketplace-{}-service-accounts/{}/", kind.path(), hex(a.id)),
        "uuid": hex(a.id),
        "created": rfc3339(a.created_at),
        "modified": rfc3339(a.updated_at),
        "username": a.name,
        "description": a.description.clone().unwrap_or_default(),
        "error_message": error_message,
        "error_traceback": extra("error_traceback"),
        "state": state,
        "token": token,
        "email": extra("email"),
        "expires_at": a.expires_at.map(rfc3339),
        "preferred_identifier": extra("preferred_identifier"),
    });
    let org = &placement.organization;
    match (kind, &placement.project) {
        (Kind::Project, Some(p)) => {
            v["project"] = json!(hex(p.id));
            v["project_uuid"] = json!(hex(p.id));
            v["project_name"] = json!(p.name);
            v["customer_uuid"] = json!(hex(org.id));
            v["customer_name"] = json!(org.name);
            v["customer_abbreviation"] = json!(org.abbreviation.clone().unwrap_or_default());
        }
        _ => {
            v["customer"] = json!(hex(org.id));
            v["customer_uuid"] = json!(hex(org.id));
            v["customer_name"] = json!(org.name);
        }
    }
    v
}
