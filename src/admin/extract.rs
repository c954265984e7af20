//! Request extractors for the admin API: the authenticated [`Actor`], JSON
//! bodies and path ids, each failing with an [`ApiError`] that names the
//! problem.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;
use super::AdminState;
use crate::authn::{presented, Accept, Principal, Refusal};
use crate::listener::ClientAddr;

/// An error shape that can say why the authenticator refused a caller:
/// the native API's, and each dialect's.
pub(super) trait SaysRefusal: IntoResponse {
    fn refused(r: Refusal) -> Self;
}

impl SaysRefusal for ApiError {
    fn refused(r: Refusal) -> Self {
        ApiError::refused(r)
    }
}

/// The authenticated caller of an admin endpoint, refused in the shape of
/// `E`: the native API's by default, a dialect's in its handlers.
pub(super) struct Caller<E = ApiError> {
    pub(super) actor: Arc<Principal>,
    shape: PhantomData<fn() -> E>,
}

impl<E: SaysRefusal> FromRequestParts<AdminState> for Caller<E> {
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, E> {
        let actor = authenticate(parts, state).map_err(E::refused)?;
        Ok(Self {
            actor,
            shape: PhantomData,
        })
    }
}

/// Who is calling the admin listener (the native API and every dialect):
/// the authenticator's answer for the request's credential headers.
pub(super) fn authenticate(parts: &Parts, state: &AdminState) -> Result<Arc<Principal>, Refusal> {
    let h = &parts.headers;
    let presented = presented::extract(
        h.get_all(header::AUTHORIZATION)
            .iter()
            .map(HeaderValue::as_bytes),
        h.get_all("x-api-key").iter().map(HeaderValue::as_bytes),
    );
    // SECURITY: failures are charged to the client's address, which the
    // listener resolved. Without one, the request is refused as if its
    // credential had failed, never charged to an address others share.
    let Some(ClientAddr(peer)) = parts.extensions.get::<ClientAddr>().copied() else {
        tracing::error!("admin request without its client address");
        return Err(Refusal::Stale);
    };
    state.authn.bearer(peer, presented, Accept::Admin)
}

/// A JSON body. Any content type is accepted (curl's `-d` sends a form type);
/// an empty body reads as `{}`. Unknown fields are refused by the target types.
pub(super) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "invalid_request_error",
                    "body_too_large",
                    format!("request body exceeds {} bytes", super::MAX_BODY_BYTES),
                )
            } else {
                ApiError::invalid(
                    "unreadable_body",
                    "the request body could not be read",
                    None,
                )
            }
        })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let value: T = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| json_error(e.path().to_string(), e.inner()))?;
        de.end().map_err(|e| json_error(String::new(), &e))?;
        Ok(JsonBody(value))
    }
}

fn json_error(path: String, e: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let text = e.to_string();
    // The field at fault: where serde_path_to_error says, else the one serde
    // names in backticks ("unknown field `x`", "missing field `y`").
    let param = Some(path)
        .filter(|p| !p.is_empty() && p != ".")
        .or_else(|| {
            text.split('`')
                .nth(1)
                .filter(|_| text.contains(" field `"))
                .map(str::to_string)
        });
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::invalid("invalid_json", format!("malformed JSON: {text}"), None)
        }
        Category::Data => {
            let code = if text.starts_with("unknown field") {
                "unknown_field"
            } else if text.starts_with("missing field") {
                "missing_field"
            } else {
                "invalid_value"
            };
            let message = match &param {
                Some(p) if !text.contains(&format!("`{p}`")) => format!("{p}: {text}"),
                _ => text,
            };
            ApiError::invalid(code, message, param)
        }
    }
}

/// Parses an id from the path; a malformed id cannot name anything, so 404.
pub(super) fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}

/// Parses an optional id from a query parameter, naming it when malformed.
pub(super) fn query_id(raw: Option<&str>, param: &str) -> Result<Option<Uuid>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            Uuid::parse_str(s).map_err(|_| {
                ApiError::invalid(
                    "invalid_value",
                    format!("{param}: {s:?} is not an id"),
                    Some(param.into()),
                )
            })
        })
        .transpose()
}

/// Serde helper for PATCH fields: absent → `None`, `null` → `Some(None)`.
pub(super) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

/// Query parameters; a malformed one is a 400 that names it.
pub(super) struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        serde_urlencoded_from_str(query)
    }
}

fn serde_urlencoded_from_str<T: DeserializeOwned>(query: &str) -> Result<QueryParams<T>, ApiError> {
    axum::extract::Query::<T>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::invalid("invalid_query", "malformed query string", None))?,
    )
    .map(|q| QueryParams(q.0))
    .map_err(|e| ApiError::invalid("invalid_query", e.body_text(), None))
}
