//! API dialects: four service-account APIs served in their own shapes over
//! the one core, so each API's official client works against keygate
//! unchanged. An account made through any dialect is the same account in
//! `/v1`, in every other dialect, at the proxy and at the token endpoint.
//!
//! Every dialect stands on the skeleton here, and is only its wire types,
//! its error shape and handlers that map:
//! - [`Dialect`]: the error shape — how an authentication refusal, a
//!   management error, a bad body, an unknown path and a wrong method read
//!   in this API;
//! - `extract::Caller<E>`: the authenticated caller, refused in the
//!   dialect's shape (`E`), as the native API's handlers take it;
//! - [`Body`]: a typed JSON body, its faults named in the dialect's shape;
//! - [`QueryPairs`]: the query string, as the pairs the API's clients send;
//! - [`mount`]: the dialect's routes with its 404 and 405 fallbacks.
//!
//! Rules live in `manage`, never here: who may see what, a closed account
//! reading as not found (`Manager::open_account`), tenant narrowing, cursor
//! pages both ways, primary credentials. Who is calling is the
//! authenticator's decision, as for every admin endpoint.

mod openai;
mod orgs;
mod runai;
mod waldur;

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::Router;
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub(super) use super::extract::{Caller, SaysRefusal};
use super::{AdminState, ApiError};
use crate::listener::Scheme;
use crate::manage;

/// Every dialect, each under its prefix.
pub(super) fn router() -> Router<AdminState> {
    Router::new()
        .nest("/compat/waldur", waldur::router())
        .nest("/compat/openai/v1", openai::router())
        .nest("/compat/orgs", orgs::router())
        .nest("/compat/runai", runai::router())
}

/// A dialect's error shape: everything that can go wrong, as its API says
/// it. `manage::Error` converts through `From`, so handlers use `?`.
/// (How an authentication refusal reads is `SaysRefusal`, which the
/// native API's error shape implements too.)
pub(super) trait Dialect: SaysRefusal + From<manage::Error> + Send + 'static {
    /// The body is not the endpoint's input.
    fn bad_body(e: BodyError) -> Self;
    /// A path under the dialect's prefix that names no endpoint.
    fn unknown_path() -> Self;
    /// A method the path does not take.
    fn method_not_allowed(method: &Method) -> Self;
}

/// The dialect's routes, with its own answers for unknown paths and
/// methods: never another dialect's shape, never the native one.
pub(super) fn mount<E: Dialect>(routes: Router<AdminState>) -> Router<AdminState> {
    routes
        .fallback(|| async { E::unknown_path() })
        .method_not_allowed_fallback(|m: Method| async move { E::method_not_allowed(&m) })
}

/// Why a request body is not the input an endpoint takes.
#[derive(Debug)]
pub(super) enum BodyError {
    /// Over the admin listener's limit.
    TooLarge,
    /// Not JSON at all; serde's message.
    Syntax(String),
    /// JSON, but not an object.
    NotObject,
    /// An object whose `field` is missing or of the wrong type.
    Field { field: String, message: String },
}

/// A JSON body read as `T`. Any content type is accepted (clients differ);
/// an empty body reads as `{}`. Declared last among a handler's arguments.
pub(super) struct Body<T, E>(pub(super) T, PhantomData<fn() -> E>);

impl<T: DeserializeOwned, E: Dialect> FromRequest<AdminState> for Body<T, E> {
    type Rejection = E;

    async fn from_request(req: Request, s: &AdminState) -> Result<Self, E> {
        let bytes = Bytes::from_request(req, s)
            .await
            .map_err(|_| E::bad_body(BodyError::TooLarge))?;
        parse(&bytes)
            .map(|v| Body(v, PhantomData))
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
        // in backticks ("missing field `name`").
        let path = e.path().to_string();
        let field = Some(path)
            .filter(|p| !p.is_empty() && p != ".")
            .or_else(|| text.split('`').nth(1).map(str::to_string))
            .unwrap_or_default();
        match e.inner().classify() {
            Category::Data if !field.is_empty() => BodyError::Field {
                field,
                message: text,
            },
            _ => BodyError::Syntax(text),
        }
    })
}

/// The query string as `(name, value)` pairs, in order, repeats kept (the
/// dialects' clients send `expand[]` and filters more than once). A query
/// that does not decode reads as empty, as the APIs keygate mirrors do.
pub(super) struct QueryPairs(pub(super) Vec<(String, String)>);

impl QueryPairs {
    /// The first value of `name`.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(
            serde_urlencoded::from_str(parts.uri.query().unwrap_or("")).unwrap_or_default(),
        ))
    }
}

/// `scheme://host` of the request, for absolute URLs in answers.
pub(super) struct Origin(pub(super) String);

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let scheme = match parts.extensions.get::<Scheme>() {
            Some(Scheme::Https) => "https",
            _ => "http",
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
            .unwrap_or("localhost");
        Ok(Self(format!("{scheme}://{host}")))
    }
}

/// A path id as these APIs write them: a UUID, hyphenated or not, any case.
fn uuid_any(s: &str) -> Option<Uuid> {
    Uuid::try_parse(s.trim()).ok()
}

/// Unix seconds of unix milliseconds.
fn unix_seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// The `orgs` dialect answers in keygate's own error shape.
impl Dialect for ApiError {
    fn bad_body(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "body_too_large",
                format!("request body exceeds {} bytes", super::MAX_BODY_BYTES),
            ),
            BodyError::Syntax(m) => {
                ApiError::invalid("invalid_json", format!("malformed JSON: {m}"), None)
            }
            BodyError::NotObject => {
                ApiError::invalid("invalid_json", "the body must be a JSON object", None)
            }
            BodyError::Field { field, message } => {
                let code = if message.starts_with("missing field") {
                    "missing_field"
                } else {
                    "invalid_value"
                };
                ApiError::invalid(code, format!("{field}: {message}"), Some(field))
            }
        }
    }

    fn unknown_path() -> Self {
        ApiError::not_found("route")
    }

    fn method_not_allowed(_: &Method) -> Self {
        ApiError::method_not_allowed()
    }
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
    fn ids_are_read_hyphenated_or_not_in_any_case() {
        let id = Uuid::now_v7();
        assert_eq!(uuid_any(&id.to_string()), Some(id));
        assert_eq!(uuid_any(&id.simple().to_string().to_uppercase()), Some(id));
        assert_eq!(uuid_any("not-an-id"), None);
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
}
