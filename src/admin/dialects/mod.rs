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
//! - `extract::JsonBody<T, E>` (here `Body`): a typed JSON body, its faults
//!   named in the dialect's shape (`SaysBadBody`), read as the native API
//!   reads its own;
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

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::Router;
use uuid::Uuid;

pub(super) use super::extract::{BodyError, Caller, JsonBody as Body, SaysBadBody, SaysRefusal};
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
pub(super) trait Dialect:
    SaysRefusal + SaysBadBody + From<manage::Error> + Send + 'static
{
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

    #[test]
    fn ids_are_read_hyphenated_or_not_in_any_case() {
        let id = Uuid::now_v7();
        assert_eq!(uuid_any(&id.to_string()), Some(id));
        assert_eq!(uuid_any(&id.simple().to_string().to_uppercase()), Some(id));
        assert_eq!(uuid_any("not-an-id"), None);
    }
}
