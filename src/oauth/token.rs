//! `POST /oauth2/token`: RFC 6749 §4.4 client credentials (client_secret_basic,
//! client_secret_post, private_key_jwt) and RFC 8693 token exchange of an
//! API key.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::error::{Code, OAuthError};
use super::form::{client_auth, ClientAuth, Form};
use super::{refused, OAuthState};
use crate::authn::Principal;
use crate::jwt::Grant;
use crate::listener::ClientAddr;

const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TOKEN_TYPE_API_KEY: &str = "urn:keygate:params:oauth:token-type:api_key";
const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The granted scopes: the requested ones if every one is held, else all held.
fn granted_scope(principal: &Principal, requested: Option<&str>) -> Result<String, OAuthError> {
    match requested {
        None => Ok(principal.scopes.iter().collect::<Vec<_>>().join(" ")),
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
    match issue(&s, peer, &headers, &body).await {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
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

    let (principal, client_id) = match grant {
        GRANT_CLIENT_CREDENTIALS => {
            let c = presented.ok_or_else(|| s.charged(peer, OAuthError::client(false)))?;
            client(s, peer, &c).await?
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
                    "subject_token_type must be urn:keygate:params:oauth:token-type:api_key",
                ));
            }
            if let Some(t) = form.get("requested_token_type") {
                if t != TOKEN_TYPE_ACCESS_TOKEN && t != TOKEN_TYPE_JWT {
                    return Err(OAuthError::new(
                        Code::InvalidRequest,
                        "requested_token_type is not supported",
                    ));
                }
            }
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
                "supported: client_credentials, urn:ietf:params:oauth:grant-type:token-exchange",
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
    let subject = principal.token_subject(&client_id, &scope);
    let kind = if grant == GRANT_CLIENT_CREDENTIALS {
        Grant::ClientCredentials
    } else {
        Grant::TokenExchange
    };
    let minted = s.minter.mint(kind, &subject, audience, None).map_err(|e| {
        tracing::error!(error = %e, "token minting failed");
        OAuthError::unavailable()
    })?;
    let mut body = json!({
        "access_token": minted.token,
        "token_type": "Bearer",
        "expires_in": minted.expires_in,
        "scope": scope,
    });
    if kind == Grant::TokenExchange {
        body["issued_token_type"] = json!(TOKEN_TYPE_ACCESS_TOKEN);
    }
    let mut res = Json(body).into_response();
    // RFC 6749 §5.1
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(res)
}
