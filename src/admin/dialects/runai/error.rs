//! Run:ai's error shape, `{"code": <status>, "message": …}`, and how
//! keygate's refusals and management errors read in it.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::admin::dialects::{BodyError, Dialect, SaysBadBody, SaysRefusal};
use crate::admin::MAX_BODY_BYTES;
use crate::authn;
use crate::manage;

/// An error as Run:ai answers: `{"code": <status>, "message": …}`.
#[derive(Debug)]
pub(super) struct RunaiError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl RunaiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(super) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "service account not found")
    }
}

impl SaysRefusal for RunaiError {
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

impl SaysBadBody for RunaiError {
    fn bad_body(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is larger than {MAX_BODY_BYTES} bytes"),
            ),
            BodyError::Unreadable => Self::bad("the request body could not be read"),
            BodyError::Syntax(_) | BodyError::NotObject => {
                Self::bad("the body must be a JSON object")
            }
            BodyError::Field { field, message } => Self::bad(format!("{field}: {message}")),
        }
    }
}

impl Dialect for RunaiError {
    fn unknown_path() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    fn method_not_allowed(m: &Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{m} is not allowed here"),
        )
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
