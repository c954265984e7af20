//! keygate's JWTs as bearer credentials at the proxy, forged tokens,
//! introspection, revocation, and `forward_auth = "jwt"`.
//!
//! Over the ~400-line guideline on purpose: each test is one end-to-end
//! scenario over real sockets, and they share this file's token helpers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::oauth::{basic, client, verify};
use crate::support::{header, Harness};

const ISSUER: &str = "http://127.0.0.1:8080";

/// A token for the harness's `/orders` route (audience `orders-api`) unless
/// `extra` names another audience.
pub(crate) async fn token_for(h: &Harness, id: &str, secret: &str, extra: &str) -> String {
    let extra = if extra.contains("audience=") {
        extra.to_string()
    } else {
        format!("{extra}&audience=orders-api")
    };
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            &format!("grant_type=client_credentials{extra}"),
            &[("authorization", &basic(id, secret))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// keygate's current signing key, read from its store: lets a test sign
/// tokens that are validly signed but otherwise wrong.
async fn signing_key(h: &Harness) -> (String, EncodingKey) {
    let store = keygate::store::connect(&h.store_url(), metrics::Counter::noop())
        .await
        .unwrap();
    let keys = store.signing_keys(0).await.unwrap();
    let k = keys.last().unwrap();
    let der = k.private_der.clone();
    (k.kid.clone(), EncodingKey::from_ec_der(&der))
}

fn seg(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) async fn at_proxy(h: &Harness, token: &str) -> (StatusCode, String) {
    let (status, hdrs, _) = h.bearer("GET", "/orders/1", token).await;
    (status, header(&hdrs, "www-authenticate").to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minted_token_works_at_the_proxy_until_its_account_is_disabled() {
    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read"]).await;
    let token = token_for(&h, &id, &secret, "").await;
    let (status, _, echo) = h.bearer("GET", "/orders/1", &token).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["headers"]["x-keygate-account"], account.as_str());
    assert_eq!(echo["headers"]["x-keygate-scopes"], "orders:read");
    assert!(
        echo["headers"].get("authorization").is_none(),
        "the token is not forwarded"
    );
    // Reused: the second request is served from the verified-token cache.
    assert_eq!(h.bearer("GET", "/orders/2", &token).await.0, StatusCode::OK);
    // Scopes still apply.
    assert_eq!(
        h.bearer("POST", "/orders", &token).await.0,
        StatusCode::FORBIDDEN
    );

    h.admin(
        "PATCH",
        &format!("/v1/service-accounts/{account}"),
        Some(json!({ "enabled": false })),
    )
    .await;
    let (status, challenge) = at_proxy(&h, &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("invalid_token"));
    // Introspection agrees (asked by a platform admin).
    let admin = format!("Bearer {}", h.admin_key);
    let (_, _, intro) = h
        .form(
            "/oauth2/introspect",
            &format!("token={token}"),
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(intro, json!({ "active": false }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_refused_with_invalid_token() {
    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read"]).await;
    let good = token_for(&h, &id, &secret, "").await;
    let (kid, key) = signing_key(&h).await;
    let org = verify(&h, &good, "orders-api").await.1["org_id"].clone();
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({
            "iss": ISSUER, "sub": account, "aud": "orders-api", "exp": now() + 300, "iat": now(),
            "nbf": now(), "jti": uuid::Uuid::now_v7().to_string(), "client_id": id,
            "scope": "orders:read", "org_id": org,
        });
        f(&mut c);
        c
    };
    let signed = |typ: &str, c: Value| {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.clone());
        header.typ = Some(typ.into());
        jsonwebtoken::encode(&header, &c, &key).unwrap()
    };
    // Sanity: a token we sign ourselves with keygate's key is accepted.
    assert_eq!(
        at_proxy(&h, &signed("at+jwt", claims(&|_| {}))).await.0,
        StatusCode::OK
    );

    let parts: Vec<&str> = good.split('.').collect();
    let (_, _, jwks) = h.proxy("GET", "/.well-known/jwks.json", &[]).await;
    let public = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(kid.clone());
    hs.typ = Some("at+jwt".into());
    let forged: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                seg(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
                parts[1]
            ),
        ),
        (
            "HS256 keyed with the public key",
            jsonwebtoken::encode(&hs, &claims(&|_| {}), &EncodingKey::from_secret(&public))
                .unwrap(),
        ),
        (
            "unknown kid",
            format!(
                "{}.{}.{}",
                seg(&json!({"alg": "ES256", "typ": "at+jwt", "kid": "nope"})),
                parts[1],
                parts[2]
            ),
        ),
        (
            "hostile kid",
            format!(
                "{}.{}.{}",
                seg(
                    &json!({"alg": "ES256", "typ": "at+jwt", "kid": "../../../etc/passwd", "jku": "http://evil"})
                ),
                parts[1],
                parts[2]
            ),
        ),
        (
            "tampered payload",
            format!(
                "{}.{}.{}",
                parts[0],
                seg(&claims(&|c| c["scope"] = json!("orders:admin"))),
                parts[2]
            ),
        ),
        (
            "expired",
            signed("at+jwt", claims(&|c| c["exp"] = json!(now() - 120))),
        ),
        (
            "future nbf",
            signed("at+jwt", claims(&|c| c["nbf"] = json!(now() + 120))),
        ),
        (
            "wrong iss",
            signed(
                "at+jwt",
                claims(&|c| c["iss"] = json!("https://evil.example")),
            ),
        ),
        (
            "exp as a string",
            signed(
                "at+jwt",
                claims(&|c| c["exp"] = json!((now() + 300).to_string())),
            ),
        ),
        ("another typ", signed("JWT", claims(&|_| {}))),
        (
            "64 KiB token",
            format!("{}.{}.{}", parts[0], "A".repeat(64 * 1024), parts[2]),
        ),
    ];
    for (what, token) in forged {
        let (status, challenge) = at_proxy(&h, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_audience_refuses_tokens_for_another_audience() {
    let h = Harness::start("").await; // /orders has audience = "orders-api"
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    let other = token_for(&h, &id, &secret, "&audience=billing-api").await;
    assert_eq!(at_proxy(&h, &other).await.0, StatusCode::UNAUTHORIZED);
    let right = token_for(&h, &id, &secret, "&audience=orders-api").await;
    assert_eq!(at_proxy(&h, &right).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_before_and_after_rotation_both_work_at_the_proxy() {
    let h = Harness::start("").await;
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    let before = token_for(&h, &id, &secret, "").await;
    let (status, _, _) = h
        .admin(
            "POST",
            "/v1/signing-keys/rotate",
            Some(json!({ "activate_after_seconds": 0 })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let after = token_for(&h, &id, &secret, "").await;
    assert_ne!(
        jsonwebtoken::decode_header(&before).unwrap().kid,
        jsonwebtoken::decode_header(&after).unwrap().kid
    );
    assert_eq!(at_proxy(&h, &before).await.0, StatusCode::OK);
    assert_eq!(at_proxy(&h, &after).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_describes_and_revocation_ends_a_token() {
    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read"]).await;
    let token = token_for(&h, &id, &secret, "").await;
    let auth = basic(&id, &secret);

    let (status, hdrs, intro) = h
        .form(
            "/oauth2/introspect",
            &format!("token={token}"),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{intro}");
    assert_eq!(header(&hdrs, "cache-control"), "no-store");
    assert_eq!(intro["active"], true);
    assert_eq!(intro["sub"], account.as_str());
    assert_eq!(intro["client_id"], id.as_str());
    assert_eq!(intro["scope"], "orders:read");
    // Another organization's client learns nothing.
    let (_, other_id, other_secret) = client(&h, &["x"]).await;
    let (_, _, hidden) = h
        .form(
            "/oauth2/introspect",
            &format!("token={token}"),
            &[("authorization", &basic(&other_id, &other_secret))],
        )
        .await;
    assert_eq!(hidden, json!({ "active": false }));
    // Nor may it revoke the token.
    let (status, _, _) = h
        .form(
            "/oauth2/revoke",
            &format!("token={token}"),
            &[("authorization", &basic(&other_id, &other_secret))],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Unauthenticated introspection is refused.
    let (status, _, _) = h
        .form("/oauth2/introspect", &format!("token={token}"), &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, _, _) = h
        .form(
            "/oauth2/revoke",
            &format!("token={token}"),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(at_proxy(&h, &token).await.0, StatusCode::UNAUTHORIZED);
    let (_, _, intro) = h
        .form(
            "/oauth2/introspect",
            &format!("token={token}"),
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(intro, json!({ "active": false }));
    // Garbage is not an error (RFC 7009 §2.2).
    let (status, _, _) = h
        .form(
            "/oauth2/revoke",
            "token=eyJ.eyJ.x",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A fresh token from the same client still works.
    let fresh = token_for(&h, &id, &secret, "").await;
    assert_eq!(at_proxy(&h, &fresh).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_jwt_sends_the_upstream_a_minted_token_for_its_audience() {
    let h = Harness::start(
        r#"
[[routes]]
name = "minted"
prefix = "/minted"
upstream = "http://{UPSTREAM}"
audience = "minted-api"
forward_auth = "jwt"
"#,
    )
    .await;
    let org = h.create_org("acme").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let (status, _, first) = h.bearer("GET", "/minted/a", &key).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let auth = first["headers"]["authorization"].as_str().unwrap();
    let jwt = auth.strip_prefix("Bearer ").unwrap();
    assert!(
        !auth.contains(&key),
        "the caller's key never reaches the upstream"
    );
    let (_, claims) = verify(&h, jwt, "minted-api").await;
    assert_eq!(claims["sub"], account.as_str());
    assert_eq!(claims["scope"], "orders:read");
    // Reused for the same principal and route.
    let (_, _, second) = h.bearer("GET", "/minted/b", &key).await;
    assert_eq!(
        second["headers"]["authorization"],
        first["headers"]["authorization"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_audience_takes_only_tokens_for_keygate_itself() {
    // /pass has no audience: a token minted for another resource (or one an
    // upstream received) must not be replayable there.
    let h = Harness::start("").await;
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    let elsewhere = token_for(&h, &id, &secret, "&audience=partner-api").await;
    assert_eq!(
        h.bearer("GET", "/pass/x", &elsewhere).await.0,
        StatusCode::UNAUTHORIZED
    );
    let own = token_for(&h, &id, &secret, "&audience=http://127.0.0.1:8080").await;
    assert_eq!(h.bearer("GET", "/pass/x", &own).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_die_with_account_expiry_and_stay_dead_after_reenabling() {
    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read"]).await;
    let path = format!("/v1/service-accounts/{account}");
    let old = token_for(&h, &id, &secret, "").await;
    assert_eq!(at_proxy(&h, &old).await.0, StatusCode::OK);

    // Disabled, then enabled again: tokens from before stay dead. (`iat` has
    // one-second resolution, so the old token must be a second older.)
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    h.admin("PATCH", &path, Some(json!({ "enabled": false })))
        .await;
    h.admin("PATCH", &path, Some(json!({ "enabled": true })))
        .await;
    assert_eq!(
        at_proxy(&h, &old).await.0,
        StatusCode::UNAUTHORIZED,
        "revived by re-enabling"
    );
    let fresh = token_for(&h, &id, &secret, "").await;
    assert_eq!(at_proxy(&h, &fresh).await.0, StatusCode::OK);

    // Expiring the account ends its live tokens at once.
    h.admin(
        "PATCH",
        &path,
        Some(json!({ "expires_at": "2020-01-01T00:00:00Z" })),
    )
    .await;
    assert_eq!(at_proxy(&h, &fresh).await.0, StatusCode::UNAUTHORIZED);
    let admin = format!("Bearer {}", h.admin_key);
    let (_, _, intro) = h
        .form(
            "/oauth2/introspect",
            &format!("token={fresh}"),
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(intro, json!({ "active": false }));
}
