//! `POST /oauth2/token`: RFC 6749 §4.4 client credentials (client_secret_basic
//! and client_secret_post) and RFC 8693 token exchange of an API key.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::json;

use super::error::{Code, OAuthError};
use super::OAuthState;
use crate::cache::Principal;
use crate::token::mint::Subject;

const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TOKEN_TYPE_API_KEY: &str = "urn:keygate:params:oauth:token-type:api_key";
const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

const MAX_PARAMS: usize = 32;

/// The form, each parameter at most once (RFC 6749 §3.2).
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
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
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| OAuthError::new(Code::InvalidRequest, "the form body is malformed"))?;
        // SECURITY: the duplicate check below is quadratic; no OAuth request
        // needs more than a handful of parameters.
        if pairs.len() > MAX_PARAMS {
            return Err(OAuthError::new(Code::InvalidRequest, "too many parameters"));
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
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: each part
/// form-urlencoded, then base64) or from the body; never both.
pub(super) struct ClientAuth {
    pub(super) client_id: String,
    pub(super) secret: String,
    pub(super) basic: bool,
}

pub(super) fn client_auth(
    headers: &HeaderMap,
    form: &Form,
) -> Result<Option<ClientAuth>, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // RFC 9110 §11.1: the scheme name is case-insensitive.
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest)
        })
        .map(|b64| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|_| OAuthError::client(true))?;
            let raw = String::from_utf8(raw).map_err(|_| OAuthError::client(true))?;
            let (id, secret) = raw
                .split_once(':')
                .ok_or_else(|| OAuthError::client(true))?;
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| OAuthError::client(true))
            };
            Ok::<_, OAuthError>(ClientAuth {
                client_id: decode(id)?,
                secret: decode(secret)?,
                basic: true,
            })
        })
        .transpose()?;
    let post = match (form.get("client_id"), form.get("client_secret")) {
        (Some(id), Some(secret)) => Some(ClientAuth {
            client_id: id.to_string(),
            secret: secret.to_string(),
            basic: false,
        }),
        (None, None) => None,
        _ if basic.is_some() => None, // client_id alongside Basic is allowed
        _ => return Err(OAuthError::client(false)),
    };
    match (basic, post) {
        (Some(_), Some(_)) => Err(OAuthError::new(
            Code::InvalidRequest,
            "use one client authentication method, not both",
        )),
        (b, p) => Ok(b.or(p)),
    }
}

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
            if wanted.iter().all(|s| principal.scopes.contains(s)) {
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
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.map(|axum::Extension(ConnectInfo(a))| a.ip());
    match issue(&s, ip, &headers, &body) {
        Ok(res) => res,
        Err(e) => e.into_response(),
    }
}

fn issue(
    s: &OAuthState,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let now = s.clock.now_ms();
    if s.cache.is_stale(now) {
        return Err(OAuthError::unavailable());
    }
    if let Some(wait) = ip.and_then(|ip| s.limits.failed_auth.blocked(ip)) {
        return Err(OAuthError::too_many_failures(wait));
    }
    // Failed client authentication is charged to the address (never the client).
    let failed = |e: OAuthError| match ip.and_then(|ip| s.limits.failed_auth.record_failure(ip)) {
        Some(wait) => OAuthError::too_many_failures(wait),
        None => e,
    };
    let form = Form::parse(headers, body)?;
    let client = client_auth(headers, &form).map_err(failed)?;
    let grant = form
        .get("grant_type")
        .ok_or_else(|| OAuthError::new(Code::InvalidRequest, "grant_type is required"))?;

    let (principal, client_id) =
        match grant {
            GRANT_CLIENT_CREDENTIALS => {
                let c = client.ok_or_else(|| failed(OAuthError::client(false)))?;
                let p = s
                    .cache
                    .authenticate_client(&c.client_id, &c.secret, now)
                    .map_err(|_| failed(OAuthError::client(c.basic)))?;
                (p, c.client_id)
            }
            GRANT_TOKEN_EXCHANGE => {
                // The API key is the credential. A client that also authenticates
                // (as RFC 8693 clients often do) must do so correctly.
                if let Some(c) = &client {
                    s.cache
                        .authenticate_client(&c.client_id, &c.secret, now)
                        .map_err(|_| failed(OAuthError::client(c.basic)))?;
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
                let p = s.cache.authenticate(key, now).map_err(|_| {
                    failed(OAuthError::new(
                        Code::InvalidRequest,
                        "subject_token is not a valid API key",
                    ))
                })?;
                let id = p.key_id.to_string();
                (p, id)
            }
            _ => return Err(OAuthError::new(
                Code::UnsupportedGrantType,
                "supported: client_credentials, urn:ietf:params:oauth:grant-type:token-exchange",
            )),
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
    let subject = Subject {
        account_id: principal.account_id,
        organization_id: principal.organization_id,
        project_id: principal.project_id,
        client_id: &client_id,
        scope: &scope,
        expires_at: principal.expires_at,
    };
    let minted = s.minter.mint(&subject, audience, None).map_err(|e| {
        tracing::error!(error = %e, "token minting failed");
        OAuthError::unavailable()
    })?;
    let mut body = json!({
        "access_token": minted.token,
        "token_type": "Bearer",
        "expires_in": minted.expires_in,
        "scope": scope,
    });
    if grant == GRANT_TOKEN_EXCHANGE {
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
