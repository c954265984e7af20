//! `POST /oauth2/introspect` (RFC 7662) and `POST /oauth2/revoke` (RFC 7009).
//! Callers authenticate with a client credential (Basic or body) or an admin
//! API key (Bearer). A caller that is not a platform admin sees and revokes
//! only tokens of its own organization.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{Code, OAuthError};
use super::token::{client_auth, Form};
use super::OAuthState;
use crate::cache::Principal;
use crate::credential;
use crate::token::verify::looks_like_jwt;

/// Who is calling: the principal and whether it is a platform admin.
struct Caller {
    principal: Arc<Principal>,
    client_id: Option<String>,
}

impl Caller {
    fn may_see(&self, organization_id: &uuid::Uuid) -> bool {
        self.principal.admin || &self.principal.organization_id == organization_id
    }
}

fn authenticate(
    s: &OAuthState,
    ip: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    form: &Form,
) -> Result<Caller, OAuthError> {
    let now = s.clock.now_ms();
    if let Some(wait) = ip.and_then(|ip| s.limits.failed_auth.blocked(ip)) {
        return Err(OAuthError::too_many_failures(wait));
    }
    let failed = |e: OAuthError| match ip.and_then(|ip| s.limits.failed_auth.record_failure(ip)) {
        Some(wait) => OAuthError::too_many_failures(wait),
        None => e,
    };
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if let Some(bytes) = auth.filter(|b| credential::is_keygate_authorization(b)) {
        // An admin API key as Bearer.
        let key = credential::extract(Some(bytes), None)
            .map_err(|_| failed(OAuthError::client(false)))?;
        // A custom KEYGATE_ADMIN_KEY need not be in keygate's key format.
        let found = if s.cache.format().is_well_formed(key) {
            s.cache.authenticate(key, now)
        } else {
            s.cache.authenticate_any(key, now)
        };
        let principal = found
            .ok()
            .filter(|p| p.admin)
            .ok_or_else(|| failed(OAuthError::client(false)))?;
        return Ok(Caller {
            principal,
            client_id: None,
        });
    }
    let c = client_auth(headers, form)
        .map_err(failed)?
        .ok_or_else(|| failed(OAuthError::client(false)))?;
    let principal = s
        .cache
        .authenticate_client(&c.client_id, &c.secret, now)
        .map_err(|_| failed(OAuthError::client(c.basic)))?;
    Ok(Caller {
        principal,
        client_id: Some(c.client_id),
    })
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub(super) async fn introspect(
    State(s): State<Arc<OAuthState>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.map(|axum::Extension(ConnectInfo(a))| a.ip());
    let result = (|| {
        if s.cache.is_stale(s.clock.now_ms()) {
            // Past max_staleness we cannot vouch for any token.
            return Err(OAuthError::unavailable());
        }
        let form = Form::parse(&headers, &body)?;
        let caller = authenticate(&s, ip, &headers, &form)?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::new(Code::InvalidRequest, "token is required"))?;
        Ok::<Value, OAuthError>(describe(&s, &caller, token))
    })();
    match result {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

/// RFC 7662 §2.2: active tokens with their claims; anything else, or a token
/// the caller may not see, is just `{"active": false}`.
fn describe(s: &OAuthState, caller: &Caller, token: &str) -> Value {
    let now = s.clock.now_ms();
    let inactive = json!({ "active": false });
    if looks_like_jwt(token) {
        let Ok(v) = s.verifier.live(token, &s.cache, now) else {
            return inactive;
        };
        if !caller.may_see(&v.principal.organization_id) {
            return inactive;
        }
        let c = &v.claims;
        let mut out = json!({
            "active": true,
            "token_type": "Bearer",
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "aud": c.aud,
            "iss": c.iss,
            "exp": c.exp,
            "iat": c.iat,
            "nbf": c.nbf,
            "jti": c.jti,
            "org_id": c.org_id,
        });
        if let Some(p) = &c.project_id {
            out["project_id"] = json!(p);
        }
        return out;
    }
    match s.cache.authenticate(token, now) {
        Ok(p) if caller.may_see(&p.organization_id) => {
            // RFC 7662: absent, never null.
            let mut out = json!({
                "active": true,
                "token_type": "api_key",
                "scope": p.scopes.iter().collect::<Vec<_>>().join(" "),
                "client_id": p.key_id,
                "sub": p.account_id,
                "org_id": p.organization_id,
            });
            if let Some(project) = p.project_id {
                out["project_id"] = json!(project);
            }
            if p.expires_at != i64::MAX {
                out["exp"] = json!(p.expires_at / 1000);
            }
            out
        }
        _ => inactive,
    }
}

pub(super) async fn revoke(
    State(s): State<Arc<OAuthState>>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let ip = peer.map(|axum::Extension(ConnectInfo(a))| a.ip());
    if s.cache.is_stale(s.clock.now_ms()) {
        return OAuthError::unavailable().into_response();
    }
    let form = match Form::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let caller = match authenticate(&s, ip, &headers, &form) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Some(token) = form.get("token") else {
        return OAuthError::new(Code::InvalidRequest, "token is required").into_response();
    };
    if !looks_like_jwt(token) {
        // RFC 7009 §2.2.1; API keys are revoked through the admin API.
        return OAuthError::new(
            Code::UnsupportedTokenType,
            "only keygate JWTs can be revoked here",
        )
        .into_response();
    }
    // RFC 7009 §2.2: an invalid or already expired token is not an error.
    let Ok(v) = s.verifier.verify(token, &s.cache, s.clock.now_ms()) else {
        return StatusCode::OK.into_response();
    };
    let own = caller.principal.admin
        || caller.client_id.as_deref() == Some(v.claims.client_id.as_str())
        || caller.principal.account_id == v.principal.account_id;
    if !own {
        return OAuthError::new(
            Code::UnauthorizedClient,
            "the token was not issued to this client",
        )
        .into_response();
    }
    match s
        .manager
        .revoke_token(
            Some(caller.principal.account_id),
            &v.claims.jti,
            // Kept while the proxy could still accept the token (leeway).
            (v.claims.exp + crate::token::verify::LEEWAY_SECONDS).saturating_mul(1000),
            v.principal.organization_id,
        )
        .await
    {
        Ok(_) => no_store(StatusCode::OK.into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "token revocation failed");
            OAuthError::unavailable().into_response()
        }
    }
}
