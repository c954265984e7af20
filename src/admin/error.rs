//! Where admin errors become HTTP: `{"error":{"type","code","message","param"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::manage;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
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
            E::Internal => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "internal",
                "internal error",
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": {
                "type": self.kind,
                "code": self.code,
                "message": self.message,
                "param": self.param,
            }
        });
        let mut res = (self.status, axum::Json(body)).into_response();
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
