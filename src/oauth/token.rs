//! `POST /oauth2/token`: RFC 6749 §4.4 client credentials (client_secret_basic,
//! client_secret_post, private_key_jwt), RFC 8693 token exchange of an API
//! key, and the grants for identities from other issuers
//! ([`super::federated`]).

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper::body::Incoming;

use super::error::{Code, OAuthError};
use super::federated::{self, Carrier, GRANT_JWT_BEARER, TOKEN_TYPE_ID_TOKEN, TOKEN_TYPE_JWT};
use super::form::{client_auth, ClientAuth, Form};
use super::{refused, OAuthState};
use crate::authn::Principal;
use crate::jwt::Grant;
use crate::listener::ClientAddr;

const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub(super) const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TOKEN_TYPE_API_KEY: &str = "urn:keygate:params:oauth:token-type:api_key";
const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The granted scopes: the requested ones if every one is held, else all held.
fn granted_scope(principal: &Principal, requested: Option<&str>) -> Result<String, OAuthError> {
    match requested {
        None => Ok(principal.scopes.to_joined_string()),
        Some(req) => {
            // Deduplicated and in a canonical order: a caller cannot make
            // scope strings of any length.
            let mut wanted: Vec<&str> = req.split(' ').filter(|s| !s.is_empty()).collect();
            wanted.sort_unstable();
            wanted.dedup();
            if principal.scopes.covers(wanted.iter().copied()) {
                Ok(wanted.join(" "))
            } else {
                Err(OAuthError::new(
                    Code::InvalidScope,
                    "a requested scope is not granted to this account",
                ))
            }
        }
    }
}

pub(super) async fn token(
    State(s): State<Arc<OAuthState>>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(&s, peer, &headers, &body).await
}

/// `POST /oauth2/token` as the listener hands it over, without the router
/// and its extractors (the busiest OAuth endpoint): the body is read up to
/// `limit` bytes (413 past it, as the router answers), then answered as
/// [`token`] answers.
pub(super) async fn direct(
    s: &OAuthState,
    peer: IpAddr,
    req: Request<Incoming>,
    limit: usize,
) -> Response {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return (StatusCode::PAYLOAD_TOO_LARGE, "the body is too large").into_response();
        }
        Err(_) => return (StatusCode::BAD_REQUEST, "the body could not be read").into_response(),
    };
    answer(s, peer, &parts.headers, &body).await
}

/// Answers a token request whose body has been read.
pub(super) async fn answer(
    s: &OAuthState,
    peer: IpAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if !s.authn.federation().is_empty() {
        if let Some(t) = Form::parse(headers, body)
            .ok()
            .as_ref()
            .and_then(federated::token_of)
        {
            federated::refetch_if_unknown(s, t).await;
        }
    }
    let res = match issue(s, peer, headers, body).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    };
    // The answer is written once the requests other connections have
    // ready are answered too. A token is CPU work (a signature) and its
    // caller, waiting, sleeps: written at once, every answer pays for
    // waking it (on a VM a cross-core wake-up cost about half a
    // signature); written after the others, one wake-up serves a burst.
    // With nothing else ready it costs one look for I/O.
    tokio::task::yield_now().await;
    res
}

/// The client, authenticated, with its client id.
async fn client(
    s: &OAuthState,
    peer: IpAddr,
    c: &ClientAuth,
) -> Result<(Arc<Principal>, String), OAuthError> {
    let (p, client_id) = s.client(peer, c).await?;
    // A credential bound to addresses authenticates only from them.
    if !p.allows_address(peer) {
        return Err(OAuthError::client(c.basic()));
    }
    Ok((p, client_id))
}

/// RFC 8693 §2.1: keygate issues access tokens (JWTs) only.
fn requested_type(form: &Form<'_>) -> Result<(), OAuthError> {
    match form.get("requested_token_type") {
        None | Some(TOKEN_TYPE_ACCESS_TOKEN | TOKEN_TYPE_JWT) => Ok(()),
        Some(_) => Err(OAuthError::new(
            Code::InvalidRequest,
            "requested_token_type is not supported",
        )),
    }
}

async fn issue(
    s: &OAuthState,
    peer: IpAddr,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let form = Form::parse(headers, body)?;
    let presented = client_auth(headers, &form).map_err(|e| s.charged(peer, e))?;
    let grant = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::new(Code::InvalidRequest, "grant_type is required"))?;

    // The federated identity a token was exchanged for (`act`).
    let mut federated_from = None;
    let (principal, client_id) = match grant {
        GRANT_CLIENT_CREDENTIALS => {
            let c = presented.ok_or_else(|| s.charged(peer, OAuthError::client(false)))?;
            client(s, peer, &c).await?
        }
        GRANT_JWT_BEARER => {
            // RFC 7523 §3.1: the assertion is the grant; a client that
            // also authenticates must do so correctly.
            if let Some(c) = &presented {
                client(s, peer, c).await?;
            }
            let token = form
                .get("assertion")
                .ok_or_else(|| OAuthError::new(Code::InvalidRequest, "assertion is required"))?;
            let f = federated::principal(s, peer, &form, token, Carrier::Assertion)?;
            let id = f.principal.credential_id.to_string();
            federated_from = Some(f.external);
            (f.principal, id)
        }
        GRANT_TOKEN_EXCHANGE
            if matches!(
                form.get("subject_token_type"),
                Some(TOKEN_TYPE_JWT | TOKEN_TYPE_ID_TOKEN)
            ) =>
        {
            if let Some(c) = &presented {
                client(s, peer, c).await?;
            }
            requested_type(&form)?;
            let token = form.get("subject_token").ok_or_else(|| {
                OAuthError::new(Code::InvalidRequest, "subject_token is required")
            })?;
            let f = federated::principal(s, peer, &form, token, Carrier::Exchange)?;
            let id = f.principal.credential_id.to_string();
            federated_from = Some(f.external);
            (f.principal, id)
        }
        GRANT_TOKEN_EXCHANGE => {
            // The API key is the credential. A client that also authenticates
            // (as RFC 8693 clients often do) must do so correctly.
            if let Some(c) = &presented {
                client(s, peer, c).await?;
            }
            if form.get("subject_token_type") != Some(TOKEN_TYPE_API_KEY) {
                return Err(OAuthError::new(
                    Code::InvalidRequest,
                    "subject_token_type must be urn:keygate:params:oauth:token-type:api_key, \
                     urn:ietf:params:oauth:token-type:jwt or urn:ietf:params:oauth:token-type:id_token",
                ));
            }
            requested_type(&form)?;
            let key = form.get("subject_token").ok_or_else(|| {
                OAuthError::new(Code::InvalidRequest, "subject_token is required")
            })?;
            // RFC 8693 §2.2.2: an unacceptable subject_token is invalid_request.
            let p = s.authn.api_key(peer, key).map_err(|r| {
                refused(
                    r,
                    OAuthError::new(Code::InvalidRequest, "subject_token is not a valid API key"),
                )
            })?;
            if !p.allows_address(peer) {
                return Err(OAuthError::new(
                    Code::InvalidRequest,
                    "subject_token may not be used from this address",
                ));
            }
            let id = p.credential_id.to_string();
            (p, id)
        }
        _ => {
            return Err(OAuthError::new(
                Code::UnsupportedGrantType,
                "supported: client_credentials, urn:ietf:params:oauth:grant-type:token-exchange, \
                 urn:ietf:params:oauth:grant-type:jwt-bearer",
            ))
        }
    };

    let scope = granted_scope(&principal, form.get("scope"))?;
    // RFC 8707 resource / RFC 8693 audience: one target, named once.
    let audience = match (form.get("audience"), form.get("resource")) {
        (Some(a), Some(r)) if a != r => {
            return Err(OAuthError::new(
                Code::InvalidTarget,
                "audience and resource name different targets",
            ))
        }
        (a, r) => a.or(r),
    };
    let mut subject = principal.token_subject(&client_id, &scope);
    // RFC 8693 §4.1: the identity the token was exchanged for, so an
    // upstream can tell a federated caller (and which one).
    subject.act = federated_from
        .as_deref()
        .map(|v| (v.claims.iss.as_str(), v.claims.sub.as_str()));
    let kind = match grant {
        GRANT_CLIENT_CREDENTIALS => Grant::ClientCredentials,
        GRANT_JWT_BEARER => Grant::JwtBearer,
        _ => Grant::TokenExchange,
    };
    let minted = s.minter.mint(kind, &subject, audience, None).map_err(|e| {
        tracing::error!(error = %e, "token minting failed");
        OAuthError::unavailable()
    })?;
    let answer = Issued {
        access_token: &minted.token,
        token_type: "Bearer",
        expires_in: minted.expires_in,
        scope: &scope,
        issued_token_type: (kind == Grant::TokenExchange).then_some(TOKEN_TYPE_ACCESS_TOKEN),
    };
    // Room for the token and the scope beside the fixed fields.
    let mut body = Vec::with_capacity(minted.token.len() + scope.len() + 160);
    serde_json::to_writer(&mut body, &answer).map_err(|e| {
        tracing::error!(error = %e, "token response could not be written");
        OAuthError::unavailable()
    })?;
    let mut res = Response::new(axum::body::Body::from(body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // RFC 6749 §5.1
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}

/// RFC 6749 §5.1 (and RFC 8693 §2.2.1 for `issued_token_type`), written
/// from the values as they are.
#[derive(serde::Serialize)]
struct Issued<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}
