//! RFC 6749 §5.2 error responses: `{"error","error_description"}`, 400 (or
//! 401 for `invalid_client`, with `WWW-Authenticate: Basic` when the client
//! tried Basic), never cacheable.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Code {
    InvalidRequest,
    InvalidClient,
    /// RFC 6749 §5.2, RFC 7523 §3.1
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    InvalidTarget,
    UnsupportedTokenType,
    /// RFC 6749 §4.1.2.1
    ServerError,
}

impl Code {
    fn as_str(self) -> &'static str {
        match self {
            Code::InvalidRequest => "invalid_request",
            Code::InvalidClient => "invalid_client",
            Code::InvalidGrant => "invalid_grant",
            Code::UnauthorizedClient => "unauthorized_client",
            Code::UnsupportedGrantType => "unsupported_grant_type",
            Code::InvalidScope => "invalid_scope",
            // RFC 8707 §2
            Code::InvalidTarget => "invalid_target",
            // RFC 7009 §2.2.1
            Code::UnsupportedTokenType => "unsupported_token_type",
            Code::ServerError => "server_error",
        }
    }
}

#[derive(Debug)]
pub(super) struct OAuthError {
    code: Code,
    description: &'static str,
    /// The client authenticated (or tried to) with HTTP Basic.
    basic: bool,
    retry_after: Option<u64>,
    status: Option<StatusCode>,
}

impl OAuthError {
    pub(super) fn new(code: Code, description: &'static str) -> Self {
        Self {
            code,
            description,
            basic: false,
            retry_after: None,
            status: None,
        }
    }

    pub(super) fn client(basic: bool) -> Self {
        Self {
            basic,
            ..Self::new(Code::InvalidClient, "client authentication failed")
        }
    }

    pub(super) fn too_many_failures(wait: u64) -> Self {
        Self {
            retry_after: Some(wait),
            status: Some(StatusCode::TOO_MANY_REQUESTS),
            ..Self::new(
                Code::InvalidClient,
                "too many failed client authentications from this address",
            )
        }
    }

    pub(super) fn too_many_revocations(wait: u64) -> Self {
        Self {
            retry_after: Some(wait),
            status: Some(StatusCode::TOO_MANY_REQUESTS),
            ..Self::new(
                Code::InvalidRequest,
                "too many revocations from this client; retry later",
            )
        }
    }

    pub(super) fn internal() -> Self {
        Self {
            status: Some(StatusCode::INTERNAL_SERVER_ERROR),
            ..Self::new(Code::ServerError, "internal error")
        }
    }

    pub(super) fn unavailable() -> Self {
        Self {
            status: Some(StatusCode::SERVICE_UNAVAILABLE),
            ..Self::new(
                Code::InvalidRequest,
                "the token service is temporarily unavailable",
            )
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.status.unwrap_or(if self.code == Code::InvalidClient {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        });
        let mut res = (
            status,
            Json(json!({ "error": self.code.as_str(), "error_description": self.description })),
        )
            .into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if status == StatusCode::UNAUTHORIZED && self.basic {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(r#"Basic realm="keygate""#),
            );
        }
        if let Some(wait) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(wait));
        }
        res
    }
}

pub(super) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": "not_found", "error_description": "no such endpoint" })),
    )
        .into_response()
}
