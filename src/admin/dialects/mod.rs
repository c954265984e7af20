//! API dialects: four service-account APIs served in their own shapes over
//! the one core, so each API's official client works against keygate
//! unchanged. An account made through any dialect is the same account in
//! `/v1`, in every other dialect, at the proxy and at the token endpoint.
//!
//! Each dialect only translates: its paths and field names onto `manage`
//! calls (which hold every rule, audit and write), and `manage`'s answers
//! and errors back into its own shape — never another dialect's, never a
//! 500 for bad input. Who is calling is the authenticator's decision, as
//! for every admin endpoint.

mod openai;
mod orgs;
mod runai;
mod waldur;

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use axum::Router;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::AdminState;
use crate::listener::Scheme;

/// Every dialect, each under its prefix.
pub(super) fn router() -> Router<AdminState> {
    Router::new()
        .nest("/compat/waldur", waldur::router())
        .nest("/compat/openai/v1", openai::router())
        .nest("/compat/orgs", orgs::router())
        .nest("/compat/runai", runai::router())
}

/// A path id as these APIs write them: a UUID, hyphenated or not, any case.
fn uuid_any(s: &str) -> Option<Uuid> {
    Uuid::try_parse(s.trim()).ok()
}

/// Why a request body is not the JSON object an endpoint needs.
#[derive(Debug)]
enum BodyError {
    /// Not JSON at all; serde's message.
    Syntax(String),
    /// JSON, but not an object.
    NotObject,
}

/// The body as a JSON object; an empty body is `{}`.
fn object(body: &Bytes) -> Result<Map<String, Value>, BodyError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(BodyError::NotObject),
        Err(e) => Err(BodyError::Syntax(e.to_string())),
    }
}

/// `scheme://host` of the request, for absolute URLs in answers.
fn origin(headers: &HeaderMap, scheme: Option<&Scheme>) -> String {
    let scheme = match scheme {
        Some(Scheme::Https) => "https",
        _ => "http",
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// Unix seconds of unix milliseconds.
fn unix_seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
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

    #[test]
    fn bodies_are_objects_or_nothing() {
        assert!(object(&Bytes::from_static(b"")).unwrap().is_empty());
        assert!(matches!(
            object(&Bytes::from_static(b"[1]")),
            Err(BodyError::NotObject)
        ));
        assert!(matches!(
            object(&Bytes::from_static(b"{")),
            Err(BodyError::Syntax(_))
        ));
    }
}
