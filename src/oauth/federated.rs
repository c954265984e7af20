//! The grants that trade an identity keygate did not issue for a keygate
//! JWT: RFC 8693 token exchange with another issuer's JWT as the subject
//! token, and RFC 7523 §2.1 `jwt-bearer` with it as the assertion. Which
//! account the token is (its binding) is the authenticator's decision;
//! this module picks the token out of the form and names every refusal in
//! the RFCs' terms.

use std::net::IpAddr;

use uuid::Uuid;

use super::error::{Code, OAuthError};
use super::form::Form;
use super::OAuthState;
use crate::authn::federation::Error as TokenError;
use crate::authn::{Federated, FederatedRefusal, IssuerSet, Refusal};

pub(super) const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub(super) const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub(super) const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

/// Which grant carried the token: their errors differ (RFC 8693 §2.2.2
/// answers a bad subject token `invalid_request`; RFC 7523 §3.1 a bad
/// assertion `invalid_grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Carrier {
    Exchange,
    Assertion,
}

/// The external token a federated request carries, if it is one: for the
/// refetch of an issuer's keys before the request is judged.
pub(super) fn token_of<'a>(form: &'a Form<'_>) -> Option<&'a str> {
    match form.get("grant_type")? {
        GRANT_JWT_BEARER => form.get("assertion"),
        super::token::GRANT_TOKEN_EXCHANGE
            if matches!(
                form.get("subject_token_type"),
                Some(TOKEN_TYPE_JWT | TOKEN_TYPE_ID_TOKEN)
            ) =>
        {
            form.get("subject_token")
        }
        _ => None,
    }
}

/// When the token names a signing key its issuer's set lacks: refetch that
/// set (at most once per issuer per 30 s) before the request is judged, so
/// a token signed with a freshly rotated key is not refused.
pub(super) async fn refetch_if_unknown(s: &OAuthState, token: &str) {
    let fed = s.authn.federation();
    if fed.is_empty() {
        return;
    }
    let now = s.clock.now_ms();
    if let Err(TokenError::UnknownKey(_)) = fed.verify(token, IssuerSet::ALL, now) {
        fed.refetch_for(token, IssuerSet::ALL, now).await;
    }
}

/// The account a federated token stands for, with the grant's errors.
pub(super) fn principal(
    s: &OAuthState,
    peer: IpAddr,
    form: &Form<'_>,
    token: &str,
    carrier: Carrier,
) -> Result<Federated, OAuthError> {
    let account = match form.get("service_account_id") {
        None => None,
        Some(id) => Some(Uuid::parse_str(id).map_err(|_| {
            OAuthError::new(Code::InvalidRequest, "service_account_id is not a UUID")
        })?),
    };
    s.authn
        .federated(peer, token, account)
        .map_err(|r| refused(r, carrier))
}

fn refused(r: FederatedRefusal, carrier: Carrier) -> OAuthError {
    let bad_token = |description| match carrier {
        Carrier::Exchange => OAuthError::new(Code::InvalidRequest, description),
        Carrier::Assertion => OAuthError::new(Code::InvalidGrant, description),
    };
    match r {
        FederatedRefusal::Refused(Refusal::Stale) => OAuthError::unavailable(),
        FederatedRefusal::Refused(Refusal::Throttled(wait)) => OAuthError::too_many_failures(wait),
        FederatedRefusal::Refused(_) => bad_token("the token is not valid"),
        FederatedRefusal::Token(e) => bad_token(describe(e)),
        FederatedRefusal::Unbound => OAuthError::new(
            Code::InvalidGrant,
            "no federated identity of an active account matches this token",
        ),
        FederatedRefusal::Ambiguous => OAuthError::new(
            Code::InvalidRequest,
            "federated identities of several accounts match this token; name one with service_account_id",
        ),
    }
}

/// The refusal's description: which rule failed, nothing about keys.
fn describe(e: TokenError) -> &'static str {
    match e {
        TokenError::Malformed => "the token is not a JWT, or is too large",
        TokenError::UntrustedIssuer => "the token's issuer (iss) is not trusted here",
        TokenError::UnknownKey(_) => "the token's signing key (kid) is not among its issuer's keys",
        TokenError::Algorithm => "the token's algorithm is not one its issuer may use",
        TokenError::Signature => "the token's signature does not verify",
        TokenError::Claims(why) => why,
        TokenError::Audience => {
            "the token's audience (aud) is not one keygate accepts from its issuer"
        }
        TokenError::Expired => "the token has expired",
        TokenError::NotYetValid => "the token is not valid yet (nbf or iat in the future)",
    }
}
