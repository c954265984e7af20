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

/// Why a request body is not the input an endpoint takes.
#[derive(Debug)]
pub(super) enum BodyError {
    /// Over the admin listener's limit.
    TooLarge,
    /// The body could not be read (the client went away mid-body).
    Unreadable,
    /// Not JSON at all; serde's message.
    Syntax(String),
    /// JSON, but not an object.
    NotObject,
    /// An object whose `field` is unknown, missing or of the wrong type;
    /// serde's message.
    Field { field: String, message: String },
}

/// An error shape that can say what is wrong with a body: the native
/// API's, and each dialect's.
pub(super) trait SaysBadBody: IntoResponse {
    fn bad_body(e: BodyError) -> Self;
}

/// A JSON body read as `T`, refused in the shape of `E` (the native API's
/// by default, a dialect's in its handlers). Any content type is accepted
/// (curl's `-d` sends a form type); an empty body reads as `{}`. Unknown
/// fields are refused by the target types that deny them.
pub(super) struct JsonBody<T, E = ApiError>(pub T, pub(super) PhantomData<fn() -> E>);

impl<T: DeserializeOwned, E: SaysBadBody, S: Send + Sync> FromRequest<S> for JsonBody<T, E> {
    type Rejection = E;

    async fn from_request(req: Request, state: &S) -> Result<Self, E> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            E::bad_body(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                BodyError::TooLarge
            } else {
                BodyError::Unreadable
            })
        })?;
        parse(&bytes)
            .map(|v| JsonBody(v, PhantomData))
            .map_err(E::bad_body)
    }
}

/// `bytes` as `T`, its faults told apart.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    use serde_json::error::Category;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| BodyError::Syntax(e.to_string()))?;
    if !value.is_object() {
        return Err(BodyError::NotObject);
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let text = e.inner().to_string();
        // The field at fault: where the path says, else the one serde names
        // in backticks ("unknown field `x`", "missing field `y`").
        let field = Some(e.path().to_string())
            .filter(|p| !p.is_empty() && p != ".")
            .or_else(|| {
                text.split('`')
                    .nth(1)
                    .filter(|_| text.contains(" field `"))
                    .map(str::to_string)
            });
        match (e.inner().classify(), field) {
            (Category::Data, Some(field)) => BodyError::Field {
                field,
                message: text,
            },
            _ => BodyError::Syntax(text),
        }
    })
}

impl SaysBadBody for ApiError {
    fn bad_body(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                format!("request body exceeds {} bytes", super::MAX_BODY_BYTES),
            ),
            BodyError::Unreadable => ApiError::invalid(
                "unreadable_body",
                "the request body could not be read",
                None,
            ),
            BodyError::Syntax(m) => {
                ApiError::invalid("invalid_json", format!("malformed JSON: {m}"), None)
            }
            BodyError::NotObject => {
                ApiError::invalid("invalid_json", "the body must be a JSON object", None)
            }
            BodyError::Field { field, message } => {
                let code = if message.starts_with("unknown field") {
                    "unknown_field"
                } else if message.starts_with("missing field") {
                    "missing_field"
                } else {
                    "invalid_value"
                };
                let message = if message.contains(&format!("`{field}`")) {
                    message
                } else {
                    format!("{field}: {message}")
                };
                ApiError::invalid(code, message, Some(field))
            }
        }
    }
}

/// Parses an id from the path; a malformed id cannot name anything, so 404.
pub(super) fn path_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what))
}

/// Parses an optional id from a query parameter, naming it when malformed.
/// An id from the query; present but empty is malformed, as the document's
/// `format: uuid` says.
pub(super) fn query_id(raw: Option<&str>, param: &str) -> Result<Option<Uuid>, ApiError> {
    raw.map(|s| {
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

/// Serde helper for counts of seconds: a JSON number without a fractional
/// part, as JSON Schema's `integer` means it, so `30.0` reads as 30 like `30`.
pub(super) fn whole_number<'de, D>(d: D) -> Result<u64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    let n = <serde_json::Number as serde::Deserialize>::deserialize(d)?;
    if let Some(v) = n.as_u64() {
        return Ok(v);
    }
    match n.as_f64() {
        // 2^64 is exactly representable; anything at or past it does not fit.
        Some(f) if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) => {
            // The range check above makes this cast exact and lossless enough:
            // every such value is a whole number below 2^64.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(f as u64)
        }
        _ => Err(D::Error::custom(
            "must be a whole, non-negative number of seconds",
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Named {
        #[allow(dead_code)]
        name: String,
    }

    #[test]
    fn bodies_are_objects_and_faults_name_their_field() {
        assert!(matches!(parse::<Named>(b"[1]"), Err(BodyError::NotObject)));
        assert!(matches!(parse::<Named>(b"{"), Err(BodyError::Syntax(_))));
        match parse::<Named>(b"{\"name\": 3}") {
            Err(BodyError::Field { field, .. }) => assert_eq!(field, "name"),
            other => panic!("{other:?}"),
        }
        match parse::<Named>(b"  ") {
            Err(BodyError::Field { field, message }) => {
                assert_eq!(field, "name");
                assert!(message.starts_with("missing field"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse::<Named>(b"{\"name\":\"a\"}").is_ok());
    }

    #[test]
    fn unknown_fields_are_named_and_coded() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Strict {
            name: String,
        }
        let e = ApiError::bad_body(parse::<Strict>(b"{\"name\":\"a\",\"x\":1}").unwrap_err());
        assert_eq!((e.code, e.param.as_deref()), ("unknown_field", Some("x")));
        let e = ApiError::bad_body(parse::<Strict>(b"{\"name\":1}").unwrap_err());
        assert_eq!(
            (e.code, e.param.as_deref()),
            ("invalid_value", Some("name"))
        );
        assert!(e.message.starts_with("name: "), "{}", e.message);
    }
}
