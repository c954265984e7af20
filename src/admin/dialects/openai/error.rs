//! OpenAI's error shape: `{"error":{"message","type","param","code"}}`,
//! and how keygate's refusals and management errors read in it.

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::admin::dialects::{BodyError, Dialect, SaysBadBody, SaysRefusal};
use crate::admin::MAX_BODY_BYTES;
use crate::authn;
use crate::manage;

/// An error in OpenAI's shape. 409s say `x-should-retry: false`: the SDK
/// would otherwise retry a duplicate name.
#[derive(Debug)]
pub(super) struct OpenAiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    param: Option<String>,
    retry_after: Option<u64>,
}

impl OpenAiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind: "invalid_request_error",
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub(super) fn invalid(param: &str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.into()),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_value", message)
        }
    }

    pub(super) fn not_found(param: &str, what: &str) -> Self {
        Self {
            param: Some(param.into()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("No such {what}."),
            )
        }
    }
}

impl SaysRefusal for OpenAiError {
    fn refused(r: authn::Refusal) -> Self {
        match r {
            authn::Refusal::Missing => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "You didn't provide an API key: Authorization: Bearer <key>.",
            ),
            authn::Refusal::Invalid => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "Incorrect API key provided.",
            ),
            authn::Refusal::Ambiguous => Self::new(
                StatusCode::BAD_REQUEST,
                "ambiguous_credentials",
                "Present one credential, not several.",
            ),
            authn::Refusal::Stale => Self {
                kind: "server_error",
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "credentials_stale",
                    "Credential data is stale; retry later.",
                )
            },
            authn::Refusal::Throttled(wait) => Self {
                kind: "rate_limit_exceeded",
                retry_after: Some(wait),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_exceeded",
                    "Too many failed authentication attempts from this address.",
                )
            },
        }
    }
}

impl SaysBadBody for OpenAiError {
    fn bad_body(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("The request body is larger than {MAX_BODY_BYTES} bytes."),
            ),
            BodyError::Unreadable => Self::new(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                "The request body could not be read.",
            ),
            BodyError::Syntax(m) => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("The body is not valid JSON: {m}"),
            ),
            BodyError::NotObject => Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "The body must be a JSON object.",
            ),
            BodyError::Field { field, message } => {
                let m = format!("{field}: {message}");
                Self::invalid(&field, m)
            }
        }
    }
}

impl Dialect for OpenAiError {
    fn unknown_path() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "Unknown endpoint.")
    }

    fn method_not_allowed(m: &Method) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{m} is not allowed here."),
        )
    }
}

impl From<manage::Error> for OpenAiError {
    fn from(e: manage::Error) -> Self {
        use manage::Error as E;
        match e {
            E::Invalid { param, message } => Self::invalid(param, format!("{param}: {message}")),
            E::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "insufficient_permissions", m),
            E::NotFound(what) => Self::not_found("service_account_id", what),
            E::Archived => archived(),
            E::Conflict {
                code: "duplicate_name",
                ..
            } => Self {
                param: Some("name".into()),
                ..Self::new(
                    StatusCode::CONFLICT,
                    "duplicate_name",
                    "A service account with this name already exists in the organization.",
                )
            },
            E::Conflict { code, message, .. } => Self::new(StatusCode::CONFLICT, code, message),
            E::Unavailable => Self {
                kind: "server_error",
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "The store is unavailable; retry later.",
                )
            },
            E::Internal => Self {
                kind: "server_error",
                ..Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error.",
                )
            },
        }
    }
}

pub(super) fn archived() -> OpenAiError {
    OpenAiError {
        param: Some("project_id".into()),
        ..OpenAiError::new(
            StatusCode::BAD_REQUEST,
            "project_archived",
            "The project is archived.",
        )
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }});
        let mut res = (self.status, Json(body)).into_response();
        let h = res.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Bearer realm="keygate""#),
            );
        }
        if self.status == StatusCode::CONFLICT {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if let Some(wait) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        res
    }
}
