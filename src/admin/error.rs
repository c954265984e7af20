//! Where admin errors become HTTP: `{"error":{"type","code","message","param"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{authn, manage};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    /// Seconds for `Retry-After` (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>, param: Option<String>) -> Self {
        Self {
            param,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                code,
                message,
            )
        }
    }

    pub fn unauthenticated(presented: bool) -> Self {
        let msg = if presented {
            "the credential is invalid, expired or revoked"
        } else {
            "a credential is required: Authorization: Bearer <key>"
        };
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            if presented {
                "invalid_credential"
            } else {
                "missing_credential"
            },
            msg,
        )
    }

    /// An authentication refusal.
    pub fn refused(r: authn::Refusal) -> Self {
        match r {
            authn::Refusal::Missing => Self::unauthenticated(false),
            authn::Refusal::Invalid => Self::unauthenticated(true),
            authn::Refusal::Stale => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable_error",
                "credentials_stale",
                "credential data is stale; refusing to authenticate",
            ),
            authn::Refusal::Ambiguous => Self::invalid(
                "ambiguous_credentials",
                "present one credential: one Authorization header, or one X-API-Key header, not several",
                None,
            ),
            authn::Refusal::Throttled(wait) => Self {
                retry_after: Some(wait),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "too_many_failed_attempts",
                    "too many failed authentication attempts from this address",
                )
            },
        }
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found_error",
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<manage::Error> for ApiError {
    fn from(e: manage::Error) -> Self {
        use manage::Error as E;
        match e {
            E::Invalid { param, message } => Self::invalid(
                "invalid_value",
                format!("{param}: {message}"),
                Some(param.into()),
            ),
            E::Forbidden(msg) => {
                Self::new(StatusCode::FORBIDDEN, "permission_error", "forbidden", msg)
            }
            E::NotFound(what) => Self::not_found(what),
            E::Archived => Self::invalid(
                "invalid_value",
                "project_id: project is archived",
                Some("project_id".into()),
            ),
            E::Conflict {
                code,
                param,
                message,
            } => Self {
                param: param.map(Into::into),
                ..Self::new(StatusCode::CONFLICT, "conflict_error", code, message)
            },
            E::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable_error",
                "store_unavailable",
                "the store is unavailable; retry later",
            ),
            // Logged where it happened (manage), once.
            E::Internal => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal",
                "internal error",
            ),
        }
    }
}

/// Every error's body: `{"error":{"type","code","message","param"}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// The kind of error: `invalid_request_error`, `authentication_error`,
    /// `permission_error`, `not_found_error`, `conflict_error`,
    /// `rate_limit_error`, `unavailable_error` or `api_error`.
    #[serde(rename = "type")]
    #[schema(example = "invalid_request_error")]
    pub kind: &'static str,
    /// A stable, machine-readable code, e.g. `invalid_value`.
    #[schema(example = "invalid_value")]
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// The parameter at fault, when there is one.
    pub param: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                kind: self.kind,
                code: self.code,
                message: self.message,
                param: self.param,
            },
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.code == "invalid_credential" {
                r#"Bearer realm="keygate", error="invalid_token""#
            } else {
                r#"Bearer realm="keygate""#
            };
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        res
    }
}
