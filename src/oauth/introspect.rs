//! `POST /oauth2/introspect` (RFC 7662) and `POST /oauth2/revoke` (RFC 7009).
//! Callers authenticate with a client credential (Basic, body or
//! `private_key_jwt`) or an admin API key (Bearer). A caller that is not a platform admin sees and revokes
//! only tokens of its own organization.

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::error::{Code, OAuthError};
use super::form::{client_auth, Form};
use super::{refused, OAuthState};
use crate::authn::{presented, Accept, Inspected, Principal};
use crate::jwt::verify::{looks_like_jwt, LEEWAY_SECONDS};
use crate::listener::ClientAddr;
use crate::manage;

/// Who asks to introspect or revoke: an authenticated client (with its
/// client id) or a platform admin (with none).
struct Requester {
    principal: Arc<Principal>,
    client_id: Option<String>,
}

impl Requester {
    fn may_see(&self, organization_id: &uuid::Uuid) -> bool {
        self.principal.admin || &self.principal.organization_id == organization_id
    }
}

async fn authenticate(
    s: &OAuthState,
    peer: IpAddr,
    headers: &HeaderMap,
    form: &Form<'_>,
) -> Result<Requester, OAuthError> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if auth.is_some_and(presented::is_keygate_authorization) {
        // An admin API key as Bearer (a custom admin key included).
        let principal = s
            .authn
            .bearer(
                peer,
                presented::extract(
                    headers
                        .get_all(header::AUTHORIZATION)
                        .iter()
                        .map(HeaderValue::as_bytes),
                    None,
                ),
                Accept::Admin,
            )
            .map_err(|r| refused(r, OAuthError::client(false)))?;
        if !principal.admin {
            return Err(OAuthError::client(false));
        }
        return Ok(Requester {
            principal,
            client_id: None,
        });
    }
    let c = client_auth(headers, form)
        .map_err(|e| s.charged(peer, e))?
        .ok_or_else(|| s.charged(peer, OAuthError::client(false)))?;
    let (principal, client_id) = s.client(peer, &c).await?;
    Ok(Requester {
        principal,
        client_id: Some(client_id),
    })
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub(super) async fn introspect(
    State(s): State<Arc<OAuthState>>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let form = Form::parse(&headers, &body)?;
        let caller = authenticate(&s, peer, &headers, &form).await?;
        let token = form
            .get("token")
            .ok_or_else(|| OAuthError::new(Code::InvalidRequest, "token is required"))?;
        Ok::<Value, OAuthError>(describe(&s, &caller, token))
    }
    .await;
    match result {
        Ok(v) => no_store(Json(v).into_response()),
        Err(e) => e.into_response(),
    }
}

/// RFC 7662 §2.2: active tokens with their claims; anything else, or a token
/// the caller may not see, is just `{"active": false}`.
fn describe(s: &OAuthState, caller: &Requester, token: &str) -> Value {
    let inactive = json!({ "active": false });
    match s.authn.inspect(token) {
        Some(Inspected::Jwt(v)) if caller.may_see(&v.principal.organization_id) => {
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
            if !c.allowed_cidrs.is_empty() {
                out["allowed_cidrs"] = json!(c.allowed_cidrs);
            }
            quota_remaining(s, &v.principal, &mut out);
            out
        }
        Some(Inspected::ApiKey(p)) if caller.may_see(&p.organization_id) => {
            // RFC 7662: absent, never null.
            let mut out = json!({
                "active": true,
                "token_type": "api_key",
                "scope": p.scopes.to_joined_string(),
                "client_id": p.credential_id,
                "sub": p.account_id,
                "org_id": p.organization_id,
            });
            if let Some(project) = p.project_id {
                out["project_id"] = json!(project);
            }
            if p.expires_at != i64::MAX {
                out["exp"] = json!(p.expires_at / 1000);
            }
            quota_remaining(s, &p, &mut out);
            out
        }
        _ => inactive,
    }
}

/// `keygate_quota_remaining`: what the least-left quota the credential
/// spends from still holds (absent when none applies).
fn quota_remaining(s: &OAuthState, p: &crate::authn::Principal, out: &mut Value) {
    let (charges, n) = s.authn.charges(p, s.clock.now_ms()).to_array();
    let meter = &s.limits.metering().meter;
    let remaining = charges[..n]
        .iter()
        .map(|c| c.limit.saturating_sub(meter.spent(c.subject, c.window)))
        .min();
    if let Some(r) = remaining {
        out["keygate_quota_remaining"] = json!(r);
    }
}

/// Why a revocation could not be written, in RFC 6749 §5.2 terms: only a
/// store that is down is worth retrying.
fn revocation_failed(e: manage::Error) -> Response {
    use manage::Error as E;
    let e = match e {
        E::Unavailable => OAuthError::unavailable(),
        // Two revocations of one token raced; it is revoked (RFC 7009 §2.2).
        E::Conflict { .. } => return no_store(StatusCode::OK.into_response()),
        E::Forbidden(_) => OAuthError::new(
            Code::UnauthorizedClient,
            "this client may not revoke the token",
        ),
        E::Invalid { .. } | E::NotFound(_) | E::Archived => {
            OAuthError::new(Code::InvalidRequest, "the token cannot be revoked")
        }
        // Logged where it happened (manage), once.
        E::Internal => OAuthError::internal(),
    };
    e.into_response()
}

pub(super) async fn revoke(
    State(s): State<Arc<OAuthState>>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = match Form::parse(&headers, &body) {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let caller = match authenticate(&s, peer, &headers, &form).await {
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
    let Some(v) = s.authn.verified(token) else {
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
    // SECURITY: a revocation is a write every replica applies. Revoking a
    // revoked token is a no-op (RFC 7009 §2.2 answers 200 either way), and
    // each caller may revoke only so fast.
    if s.authn.is_revoked(&v.claims.jti) {
        return no_store(StatusCode::OK.into_response());
    }
    let limit = s.limits.revocation(caller.principal.account_id).await;
    if !limit.allowed {
        return OAuthError::too_many_revocations(limit.reset_secs).into_response();
    }
    match s
        .manager
        .revoke_token(
            &caller.principal,
            &v.claims.jti,
            // Kept while the proxy could still accept the token (leeway).
            (v.claims.exp + LEEWAY_SECONDS).saturating_mul(1000),
            v.principal.organization_id,
        )
        .await
    {
        Ok(_) => no_store(StatusCode::OK.into_response()),
        Err(e) => revocation_failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(e: manage::Error) -> StatusCode {
        revocation_failed(e).status()
    }

    #[test]
    fn only_an_unavailable_store_answers_503() {
        assert_eq!(status(manage::Error::Unavailable), 503);
        assert_eq!(status(manage::Error::Internal), 500);
        assert_eq!(status(manage::Error::Forbidden("no")), 400);
        assert_eq!(status(manage::Error::NotFound("token")), 400);
        let raced = manage::Error::Conflict {
            code: "concurrent_update",
            param: None,
            message: "retry".into(),
        };
        assert_eq!(status(raced), 200);
    }
}
