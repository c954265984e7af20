//! The request side of the OAuth endpoints: the form body (RFC 6749 §3.2,
//! each parameter at most once) and which client authentication it carries
//! (`client_secret_basic`, `client_secret_post` or `private_key_jwt`, never
//! two at once).

use std::borrow::Cow;

use axum::http::{header, HeaderMap, HeaderValue};

use super::assertion::TYPE_JWT_BEARER;
use super::error::{Code, OAuthError};
use crate::authn::presented;

const MAX_PARAMS: usize = 32;

/// The parameters, borrowed from the body where they needed no decoding.
pub(super) struct Form<'a>(Vec<(Cow<'a, str>, Cow<'a, str>)>);

impl<'a> Form<'a> {
    pub(super) fn parse(headers: &HeaderMap, body: &'a [u8]) -> Result<Self, OAuthError> {
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';').next().is_some_and(|t| {
                    t.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            });
        if !form_type {
            return Err(OAuthError::new(
                Code::InvalidRequest,
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        // SECURITY: the duplicate check below is quadratic; no OAuth request
        // needs more than a handful of parameters.
        let mut pairs = Vec::with_capacity(4);
        for pair in form_urlencoded::parse(body) {
            if pairs.len() == MAX_PARAMS {
                return Err(OAuthError::new(Code::InvalidRequest, "too many parameters"));
            }
            pairs.push(pair);
        }
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(o, _)| o == k) {
                return Err(OAuthError::new(
                    Code::InvalidRequest,
                    "a parameter appears more than once",
                ));
            }
        }
        Ok(Self(pairs))
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| &**v)
            .filter(|v| !v.is_empty())
    }
}

/// Client authentication as presented; checking it is the authenticator's.
pub(super) enum ClientAuth {
    /// `client_secret_basic` or `client_secret_post`.
    Secret {
        client_id: String,
        secret: String,
        /// Presented with HTTP Basic (the 401 then challenges with Basic).
        basic: bool,
    },
    /// `private_key_jwt` (RFC 7523 §2.2); `client_id` only if the request
    /// names one besides the assertion.
    Assertion {
        client_id: Option<String>,
        assertion: String,
    },
}

impl ClientAuth {
    /// Presented with HTTP Basic.
    pub(super) fn basic(&self) -> bool {
        matches!(self, ClientAuth::Secret { basic: true, .. })
    }
}

/// The client authentication the request carries, if any. An error is a
/// presentation that cannot be read (or two of them): a failed attempt.
pub(super) fn client_auth(
    headers: &HeaderMap,
    form: &Form<'_>,
) -> Result<Option<ClientAuth>, OAuthError> {
    let basic = presented::basic(
        headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
    )
    .transpose()
    .map_err(|_| OAuthError::client(true))?
    .map(|(client_id, secret)| ClientAuth::Secret {
        client_id,
        secret,
        basic: true,
    });
    // RFC 7521 §4.2: both assertion parameters, or neither.
    let assertion = match (
        form.get("client_assertion_type"),
        form.get("client_assertion"),
    ) {
        (None, None) => None,
        (Some(TYPE_JWT_BEARER), Some(a)) => Some(ClientAuth::Assertion {
            client_id: form.get("client_id").map(str::to_string),
            assertion: a.to_string(),
        }),
        _ => return Err(OAuthError::client(false)),
    };
    let post = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Some(ClientAuth::Secret {
            client_id: id.to_string(),
            secret: secret.to_string(),
            basic: false,
        }),
        (None, None) => None,
        // client_id alongside Basic or an assertion is allowed
        (_, None) if basic.is_some() || assertion.is_some() => None,
        _ => return Err(OAuthError::client(false)),
    };
    let mut presented = [basic, post, assertion].into_iter().flatten();
    let first = presented.next();
    if presented.next().is_some() {
        return Err(OAuthError::new(
            Code::InvalidRequest,
            "use one client authentication method, not several",
        ));
    }
    Ok(first)
}
