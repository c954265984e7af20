//! The token broker: client credentials, the token endpoint's RFC 6749 §5.2
//! errors, API-key exchange (RFC 8693), JWKS, discovery and key rotation.
//! Tokens are verified with jsonwebtoken against the published JWKS.
//!
//! Over the ~400-line guideline on purpose: each test is one end-to-end
//! scenario over real sockets, and `jwt.rs` reuses this file's helpers.

use base64::Engine as _;
use http::StatusCode;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::support::{header, Harness};

/// Creates an account with `scopes` and a client credential; returns
/// (account id, client_id, client_secret).
pub(crate) async fn client(h: &Harness, scopes: &[&str]) -> (String, String, String) {
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, scopes).await;
    let (status, _, body) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/credentials"),
            Some(json!({ "name": "ci" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["client_id"].as_str().unwrap().to_string();
    let secret = body["client_secret"].as_str().unwrap().to_string();
    assert!(
        id.starts_with("kgc_") && secret.starts_with("kgs_"),
        "{body}"
    );
    (account, id, secret)
}

pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// Verifies `token` as a relying party would: JWKS by `kid`, the issuer
/// discovery advertises, audience.
pub(crate) async fn verify(
    h: &Harness,
    token: &str,
    audience: &str,
) -> (jsonwebtoken::Header, Value) {
    let (_, _, meta) = h
        .proxy("GET", "/.well-known/openid-configuration", &[])
        .await;
    let issuer = meta["issuer"].as_str().unwrap().to_string();
    let (_, _, jwks) = h.proxy("GET", "/.well-known/jwks.json", &[]).await;
    let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
    let header = decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid published in JWKS");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    let data =
        decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v).expect("token verifies");
    (header, data.claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_jwks_describe_the_issuer() {
    let h = Harness::start("").await;
    let (status, _, meta) = h
        .proxy("GET", "/.well-known/oauth-authorization-server", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta["issuer"], "http://127.0.0.1:8080");
    assert_eq!(meta["token_endpoint"], "http://127.0.0.1:8080/oauth2/token");
    assert_eq!(
        meta["jwks_uri"],
        "http://127.0.0.1:8080/.well-known/jwks.json"
    );
    assert!(meta["grant_types_supported"]
        .to_string()
        .contains("client_credentials"));
    let (_, _, oidc) = h
        .proxy("GET", "/.well-known/openid-configuration", &[])
        .await;
    assert_eq!(oidc["issuer"], meta["issuer"]);
    let (_, _, jwks) = h.proxy("GET", "/.well-known/jwks.json", &[]).await;
    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["alg"].as_str(),
            key["use"].as_str()
        ),
        (Some("EC"), Some("ES256"), Some("sig"))
    );
    assert!(key.get("d").is_none(), "never the private part: {key}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_credentials_basic_gets_a_token_a_relying_party_can_verify() {
    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read", "orders:write"]).await;
    let (status, hdrs, body) = h
        .form(
            "/oauth2/token",
            "grant_type=client_credentials",
            &[("authorization", &basic(&id, &secret))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&hdrs, "cache-control"), "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body["expires_in"].as_u64().unwrap() > 0 && body["expires_in"].as_u64().unwrap() <= 300
    );
    assert!(body.get("refresh_token").is_none());
    let (header, claims) = verify(
        &h,
        body["access_token"].as_str().unwrap(),
        "http://127.0.0.1:8080",
    )
    .await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["sub"], account.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["scope"], "orders:read orders:write");
    for claim in ["iat", "nbf", "exp", "jti", "org_id"] {
        assert!(!claims[claim].is_null(), "{claim} missing: {claims}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_secret_post_with_narrowed_scope_and_audience() {
    let h = Harness::start("").await;
    let (_, id, secret) = client(&h, &["orders:read", "orders:write"]).await;
    let form = format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=orders:read&audience=orders-api");
    let (status, _, body) = h.form("/oauth2/token", &form, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "orders:read");
    let (_, claims) = verify(&h, body["access_token"].as_str().unwrap(), "orders-api").await;
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["scope"], "orders:read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors_follow_rfc_6749() {
    let h = Harness::start("").await;
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    let cc = "grant_type=client_credentials";

    // Wrong secret over Basic: 401 invalid_client with a Basic challenge.
    let (status, hdrs, body) = h
        .form(
            "/oauth2/token",
            cc,
            &[("authorization", &basic(&id, "kgs_wrong"))],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    assert!(header(&hdrs, "www-authenticate").starts_with("Basic"));
    assert_eq!(header(&hdrs, "cache-control"), "no-store");
    // Wrong secret in the body: 401 without a Basic challenge.
    let (status, hdrs, body) = h
        .form(
            "/oauth2/token",
            &format!("{cc}&client_id={id}&client_secret=nope"),
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    assert_eq!(header(&hdrs, "www-authenticate"), "");

    let auth = basic(&id, &secret);
    let cases: &[(&str, &str, &str)] = &[
        (
            "grant_type=client_credentials&scope=orders:write",
            "invalid_scope",
            "a scope the account lacks",
        ),
        (
            "grant_type=password&username=a&password=b",
            "unsupported_grant_type",
            "other grant types",
        ),
        (
            "grant_type=authorization_code&code=x",
            "unsupported_grant_type",
            "authorization code",
        ),
        ("scope=orders:read", "invalid_request", "no grant_type"),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "invalid_request",
            "duplicate parameter",
        ),
        (
            "grant_type=client_credentials&grant%5Ftype=client_credentials",
            "invalid_request",
            "duplicate parameter, its second name percent-encoded",
        ),
        (
            "grant_type=client_credentials&scope=orders:read&scope=orders:write",
            "invalid_request",
            "duplicate scope, the second one not granted",
        ),
        (
            "grant_type=client_credentials&audience=a&resource=https://b",
            "invalid_target",
            "two targets",
        ),
    ];
    for (form, error, why) in cases {
        let (status, _, body) = h
            .form("/oauth2/token", form, &[("authorization", &auth)])
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some(*error)),
            "{why}: {body}"
        );
    }
    // At most 32 parameters: 33 are refused before anything is read of
    // them; 32 pass the form and reach the grant.
    for (extra, expected) in [(32, "too many parameters"), (31, "")] {
        let form: String = (0..extra).map(|i| format!("&p{i}=x")).collect();
        let (status, _, body) = h
            .form(
                "/oauth2/token",
                &format!("grant_type=client_credentials{form}"),
                &[("authorization", &auth)],
            )
            .await;
        if expected.is_empty() {
            assert_eq!(status, StatusCode::OK, "{extra} extra parameters: {body}");
        } else {
            assert_eq!(
                (
                    status,
                    body["error"].as_str(),
                    body["error_description"].as_str()
                ),
                (
                    StatusCode::BAD_REQUEST,
                    Some("invalid_request"),
                    Some(expected)
                ),
                "{extra} extra parameters"
            );
        }
    }
    // Both authentication methods at once.
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            &format!("{cc}&client_id={id}&client_secret={secret}"),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // Not a form.
    let (status, _, body) = crate::support::send_json(
        &h,
        "/oauth2/token",
        json!({ "grant_type": "client_credentials" }),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_endpoint_answers_its_edges_as_the_other_oauth_endpoints_do() {
    // `POST /oauth2/token` is served without the router; these are the
    // edges the router used to answer.
    let h = Harness::start("").await;
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    let auth = basic(&id, &secret);
    let (status, hdrs, body) = h
        .form(
            "/oauth2/token",
            "grant_type=client_credentials",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&hdrs, "content-type"), "application/json");
    assert_eq!(header(&hdrs, "pragma"), "no-cache");
    let mut fields: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["access_token", "expires_in", "scope", "token_type"]
    );
    // A body past the 16 KiB the OAuth endpoints read: 413, as on
    // introspect.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(17 * 1024)
    );
    for path in ["/oauth2/token", "/oauth2/introspect"] {
        let (status, _, _) = h.form(path, &big, &[("authorization", &auth)]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    // Other methods still reach the router's answer (405), and other
    // paths its 404.
    let (status, _, _) = h
        .send_to(
            h.public_addr(),
            "GET",
            "/oauth2/token",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, _) = h
        .send_to(h.public_addr(), "POST", "/oauth2/tokens", &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The path is matched exactly: no trailing-slash or case variant is
    // served as the token endpoint.
    for path in ["/oauth2/token/", "/OAUTH2/token", "/oauth2//token"] {
        let (status, _, body) = h
            .form(
                path,
                "grant_type=client_credentials",
                &[("authorization", &auth)],
            )
            .await;
        assert_ne!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.get("access_token").is_none(), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_can_be_exchanged_for_a_jwt() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let form = format!(
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token={key}\
         &subject_token_type=urn:keygate:params:oauth:token-type:api_key"
    );
    let (status, _, body) = h.form("/oauth2/token", &form, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let (_, claims) = verify(
        &h,
        body["access_token"].as_str().unwrap(),
        "http://127.0.0.1:8080",
    )
    .await;
    assert_eq!(claims["sub"], account.as_str());
    // A bad key is refused (RFC 8693 §2.2.2).
    let bad = form.replace(&key, "kg_notarealkey");
    let (status, _, body) = h.form("/oauth2/token", &bad, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_lifecycle_takes_effect_at_the_token_endpoint() {
    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read"]).await;
    let token = |id: String, secret: String| {
        let h = &h;
        async move {
            h.form(
                "/oauth2/token",
                "grant_type=client_credentials",
                &[("authorization", &basic(&id, &secret))],
            )
            .await
            .0
        }
    };
    assert_eq!(token(id.clone(), secret.clone()).await, StatusCode::OK);

    // Listing never shows the secret.
    let (_, _, list) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{account}/credentials"),
            None,
        )
        .await;
    assert!(!list.to_string().contains(&secret));
    let cid = list["data"][0]["id"].as_str().unwrap().to_string();

    // A regenerated secret replaces the old one at once.
    let (status, _, body) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/credentials/{cid}/secret"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["client_secret"].as_str().unwrap().to_string();
    assert_eq!(
        token(id.clone(), secret.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(token(id.clone(), fresh.clone()).await, StatusCode::OK);

    // A disabled account gets no tokens; re-enabled, it does again.
    let path = format!("/v1/service-accounts/{account}");
    h.admin("PATCH", &path, Some(json!({ "enabled": false })))
        .await;
    assert_eq!(
        token(id.clone(), fresh.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    h.admin("PATCH", &path, Some(json!({ "enabled": true })))
        .await;
    assert_eq!(token(id.clone(), fresh.clone()).await, StatusCode::OK);

    // Deleted: gone.
    let (status, _, _) = h
        .admin(
            "DELETE",
            &format!("/v1/service-accounts/{account}/credentials/{cid}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(token(id, fresh).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_publishes_before_signing_and_keeps_old_tokens_verifiable() {
    let h = Harness::start("").await;
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    let mint = || {
        let h = &h;
        let auth = basic(&id, &secret);
        async move {
            let (_, _, body) = h
                .form(
                    "/oauth2/token",
                    "grant_type=client_credentials",
                    &[("authorization", &auth)],
                )
                .await;
            body["access_token"].as_str().unwrap().to_string()
        }
    };
    let before = mint().await;
    let old_kid = decode_header(&before).unwrap().kid.unwrap();

    // Published now, signing in 3 s.
    let rotated = tokio::time::Instant::now();
    let (status, _, key) = h
        .admin(
            "POST",
            "/v1/signing-keys/rotate",
            Some(json!({ "activate_after_seconds": 3 })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let new_kid = key["kid"].as_str().unwrap().to_string();
    let (_, _, jwks) = h.proxy("GET", "/.well-known/jwks.json", &[]).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(
        kids.contains(&new_kid.as_str()) && kids.contains(&old_kid.as_str()),
        "{jwks}"
    );
    // Not signing yet.
    assert_eq!(decode_header(&mint().await).unwrap().kid.unwrap(), old_kid);

    tokio::time::sleep_until(rotated + std::time::Duration::from_millis(3200)).await;
    let after = mint().await;
    assert_eq!(decode_header(&after).unwrap().kid.unwrap(), new_kid);
    // Both verify against the JWKS.
    verify(&h, &before, "http://127.0.0.1:8080").await;
    verify(&h, &after, "http://127.0.0.1:8080").await;
    let (_, _, keys) = h.admin("GET", "/v1/signing-keys", None).await;
    assert_eq!(keys["data"].as_array().unwrap().len(), 2);
    assert!(!keys.to_string().contains("private"), "{keys}");
}
