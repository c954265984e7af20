//! A console form as posted: the session behind it, its CSRF token checked,
//! its fields read into a typed value, and the raw pairs kept to fill the
//! form again when a value is refused.
//!
//! Owns the write-side guards: a POST without a live session goes back to
//! sign-in (nothing is written), one whose token is missing or wrong, or
//! that another origin sent, is refused (nothing is written).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::layout;
use super::session::Signed;
use super::ConsoleState;
use crate::listener::Scheme;

/// The fields of a form as posted (the CSRF token left out): what fills
/// the form again when one of them is refused.
#[derive(Debug, Default, Clone)]
pub(super) struct Draft {
    /// Which form was posted (its `form` field), so only that one is refilled.
    pub(super) form: String,
    pairs: HashMap<String, String>,
}

impl Draft {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.pairs.get(name).map(String::as_str)
    }

    /// Every field, for a confirmation step that posts them again.
    pub(super) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A posted form from a signed-in caller.
pub(super) struct Posted<T> {
    pub(super) signed: Signed,
    pub(super) form: T,
    pub(super) draft: Draft,
    /// The caller has confirmed (the confirmation step's `confirm=yes`).
    pub(super) confirmed: bool,
}

impl<T: DeserializeOwned> FromRequest<ConsoleState> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &ConsoleState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        // A session first: an ended one goes back to sign-in, unwritten.
        let signed = Signed::from_request_parts(&mut parts, s).await?;
        if !same_origin(&parts.headers, parts.extensions.get::<Scheme>().copied()) {
            return Err(layout::refused_write(
                "This form was sent from another site. Nothing was changed.",
            ));
        }
        let req = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(req, s).await.map_err(|e| {
            layout::bad_request(if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "The form is too large."
            } else {
                "The form could not be read."
            })
        })?;
        let mut pairs: HashMap<String, String> =
            serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
                .map_err(|_| layout::bad_request("The form could not be read."))?
                .into_iter()
                .collect();
        // SECURITY: every write carries the session's CSRF token; a form
        // another site made cannot know it. Compared in constant time.
        let token = pairs.remove("csrf").unwrap_or_default();
        if !signed.csrf_matches(&token) {
            return Err(layout::refused_write(
                "This form did not come from your console session (its security token is \
                 missing or out of date). Nothing was changed; reload the page and try again.",
            ));
        }
        let confirmed = pairs.remove("confirm").as_deref() == Some("yes");
        let form = serde_urlencoded::from_bytes::<T>(&bytes).map_err(|e| {
            layout::bad_request(&format!("The form has a field keygate does not take: {e}."))
        })?;
        let draft = Draft {
            form: pairs.get("form").cloned().unwrap_or_default(),
            pairs,
        };
        Ok(Posted {
            signed,
            form,
            draft,
            confirmed,
        })
    }
}

/// `Origin`, when the browser sends one (every browser does on a POST),
/// must be the console's own: `scheme://host` of this request; and the
/// browser's own `Sec-Fetch-Site`, when sent, must say `same-origin`.
pub(super) fn same_origin(headers: &HeaderMap, scheme: Option<Scheme>) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() != b"same-origin")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let scheme = match scheme {
        Some(Scheme::Https) => "https",
        _ => "http",
    };
    origin
        .to_str()
        .ok()
        .and_then(|o| o.strip_prefix(scheme))
        .and_then(|o| o.strip_prefix("://"))
        == Some(host)
}

/// An optional text field: empty or blank is absent.
pub(super) fn optional(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Scopes as typed: separated by spaces, commas or new lines.
pub(super) fn scopes(value: &str) -> Vec<String> {
    value
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A time typed in a `datetime-local` field (`2026-12-31T23:59`, read as
/// UTC) or as RFC 3339, as the API takes it.
pub(super) fn time(value: Option<String>) -> Option<String> {
    let v = optional(value)?;
    let has_zone =
        v.ends_with('Z') || v.ends_with('z') || v.get(10..).unwrap_or("").contains(['+', '-']);
    Some(match (v.len(), has_zone) {
        (16, false) => format!("{v}:00Z"),
        (19, false) => format!("{v}Z"),
        _ => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn times_from_the_browser_read_as_utc() {
        assert_eq!(
            time(Some("2026-12-31T23:59".into())).unwrap(),
            "2026-12-31T23:59:00Z"
        );
        assert_eq!(
            time(Some("2026-12-31T23:59:30".into())).unwrap(),
            "2026-12-31T23:59:30Z"
        );
        assert_eq!(
            time(Some("2026-12-31T23:59:00+02:00".into())).unwrap(),
            "2026-12-31T23:59:00+02:00"
        );
        assert_eq!(time(Some("  ".into())), None);
        assert_eq!(
            time(Some("soon".into())).unwrap(),
            "soon",
            "left for manage to refuse"
        );
    }

    #[test]
    fn scopes_split_on_spaces_and_commas() {
        assert_eq!(scopes("a:read, b:write\nc"), vec!["a:read", "b:write", "c"]);
        assert!(scopes("  ").is_empty());
    }

    #[test]
    fn another_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8081"));
        assert!(
            same_origin(&h, Some(Scheme::Http)),
            "no Origin: not a browser"
        );
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8081"),
        );
        assert!(same_origin(&h, Some(Scheme::Http)));
        assert!(!same_origin(&h, Some(Scheme::Https)));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h, Some(Scheme::Http)));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h, Some(Scheme::Http)));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8081"),
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(
            !same_origin(&h, Some(Scheme::Http)),
            "a sibling site is another site"
        );
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, Some(Scheme::Http)));
    }
}
