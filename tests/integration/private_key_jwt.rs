//! `private_key_jwt` client authentication (RFC 7523 §2.2): credentials
//! created with a `public_jwk`, assertions signed with the matching private
//! key at the token endpoint (and introspection), `jti` replay refused (on
//! one replica, and across two on Redis), and every bad assertion or key an
//! `invalid_client` / 400 — never a 500.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::StatusCode;
use jsonwebtoken::Algorithm;
use keygate::jwt::signing::{self, Signer};
use serde_json::{json, Value};

use crate::fleet::redis_url;
use crate::oauth::basic;
use crate::support::{send, Harness};

/// The token endpoint of every harness (`tokens.issuer` is the default).
const ISSUER: &str = "http://127.0.0.1:8080";
const TOKEN_ENDPOINT: &str = "http://127.0.0.1:8080/oauth2/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const LIFT_BUDGET: (&str, &str) = ("KEYGATE_RATE_LIMIT__FAILED_AUTH", "1000000/s");

/// A client's key pair: what it signs with and the public JWK keygate holds.
struct ClientKey {
    signer: Signer,
    jwk: Value,
    alg: Algorithm,
}

fn key(alg: Algorithm, kid: &str) -> ClientKey {
    let (der, jwk) = signing::generate(alg, kid).unwrap();
    ClientKey {
        signer: Signer::from_pkcs8(alg, &der).unwrap(),
        jwk,
        alg,
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// A JWS over `header` and `claims`, signed with `signer`.
fn sign(signer: &Signer, header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// RFC 7523 §3 claims for `client_id`, a fresh `jti` each time.
fn claims(client_id: &str) -> Value {
    let now = now();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": TOKEN_ENDPOINT,
        "exp": now + 60,
        "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(),
    })
}

fn header(k: &ClientKey) -> Value {
    json!({ "alg": signing::algorithm_name(k.alg), "kid": k.jwk["kid"], "typ": "JWT" })
}

/// A good assertion of `client_id` signed with `k`.
fn assertion(k: &ClientKey, client_id: &str) -> String {
    sign(&k.signer, &header(k), &claims(client_id))
}

/// Creates an account with `scopes` and a key credential for `k`; returns
/// (account id, credential id, client_id).
async fn key_client(h: &Harness, k: &ClientKey, scopes: &[&str]) -> (String, String, String) {
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, scopes).await;
    let (status, _, body) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/credentials"),
            Some(json!({ "name": "workload", "public_jwk": k.jwk })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("client_secret").is_none(), "no secret: {body}");
    assert_eq!(body["auth_method"], "private_key_jwt", "{body}");
    assert_eq!(body["public_jwk"], k.jwk, "{body}");
    (
        account,
        body["id"].as_str().unwrap().to_string(),
        body["client_id"].as_str().unwrap().to_string(),
    )
}

fn form_for(assertion: &str, extra: &str) -> String {
    format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}{extra}",
        urlencode(JWT_BEARER)
    )
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A")
}

/// The token endpoint's answer to `assertion` (with `extra` form fields).
async fn token(h: &Harness, assertion: &str, extra: &str) -> (StatusCode, Value) {
    let (status, _, body) = h
        .form("/oauth2/token", &form_for(assertion, extra), &[])
        .await;
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    (status, body)
}

fn assert_invalid_client(case: &str, (status, body): (StatusCode, Value)) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{case}: {body}");
    assert_eq!(body["error"], "invalid_client", "{case}: {body}");
}

async fn orders(h: &Harness, token: &str) -> StatusCode {
    h.proxy(
        "GET",
        "/orders/1",
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
    .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_es256_and_eddsa_clients_get_tokens_that_work_on_a_route() {
    let h = Harness::start("").await;
    for alg in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
        let k = key(alg, "k1");
        let (account, credential, client_id) = key_client(&h, &k, &["orders:read"]).await;
        let a = assertion(&k, &client_id);
        // client_id may accompany the assertion when it names the same client.
        let (status, body) = token(
            &h,
            &a,
            &format!("&client_id={client_id}&audience=orders-api"),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{alg:?}: {body}");
        assert_eq!(body["scope"], "orders:read");
        let t = body["access_token"].as_str().unwrap();
        assert_eq!(orders(&h, t).await, StatusCode::OK, "{alg:?}");
        let (_, claims) = crate::oauth::verify(&h, t, "orders-api").await;
        assert_eq!(claims["sub"], account.as_str());
        assert_eq!(claims["client_id"], client_id.as_str());
        // The listing says how it authenticates, and shows the public key.
        let (_, _, got) = h
            .admin(
                "GET",
                &format!("/v1/service-accounts/{account}/credentials/{credential}"),
                None,
            )
            .await;
        assert_eq!(got["auth_method"], "private_key_jwt", "{got}");
        assert_eq!(got["public_jwk"], k.jwk);
    }
    // Secret credentials say so too.
    let (account, _, _) = crate::oauth::client(&h, &["orders:read"]).await;
    let (_, _, list) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{account}/credentials"),
            None,
        )
        .await;
    assert_eq!(list["data"][0]["auth_method"], "client_secret", "{list}");
    assert_eq!(list["data"][0]["public_jwk"], Value::Null);
    // Discovery advertises the method and its algorithms.
    let (_, _, meta) = h
        .proxy("GET", "/.well-known/oauth-authorization-server", &[])
        .await;
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("private_key_jwt")),
        "{meta}"
    );
    assert_eq!(
        meta["token_endpoint_auth_signing_alg_values_supported"],
        json!(["RS256", "ES256", "EdDSA"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jti_is_used_once() {
    let h = Harness::start("").await;
    let k = key(Algorithm::ES256, "k1");
    let (_, _, client_id) = key_client(&h, &k, &["orders:read"]).await;
    let a = assertion(&k, &client_id);
    assert_eq!(token(&h, &a, "").await.0, StatusCode::OK);
    assert_invalid_client("replay", token(&h, &a, "").await);
    // Another jti from the same client is fine.
    assert_eq!(
        token(&h, &assertion(&k, &client_id), "").await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jti_is_used_once_across_replicas_on_redis() {
    let Some(redis) = redis_url() else {
        return;
    };
    let h = Harness::start_with(
        None,
        "",
        &[
            ("KEYGATE_RATE_LIMIT__BACKEND", "redis"),
            ("KEYGATE_RATE_LIMIT__REDIS_URL", redis.as_str()),
            LIFT_BUDGET,
        ],
    )
    .await;
    let other = h.boot_replica().await;
    let k = key(Algorithm::EdDSA, "k1");
    let (_, _, client_id) = key_client(&h, &k, &["orders:read"]).await;
    let on_other = |a: String| {
        let (client, addr) = (h.client.clone(), other.public_addr());
        async move {
            send(
                &client,
                addr,
                "POST",
                "/oauth2/token",
                &[("content-type", "application/x-www-form-urlencoded")],
                form_for(&a, "").into_bytes(),
            )
            .await
        }
    };
    // The other replica learns of the credential through the store.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, _, body) = on_other(assertion(&k, &client_id)).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let a = assertion(&k, &client_id);
    assert_eq!(token(&h, &a, "").await.0, StatusCode::OK);
    let (status, _, body) = on_other(a).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
    other.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_assertions_are_invalid_client_never_a_500() {
    let h = Harness::start_with(None, "", &[LIFT_BUDGET]).await;
    let k = key(Algorithm::ES256, "k1");
    let (_, _, client_id) = key_client(&h, &k, &["orders:read"]).await;
    let (_, _, other_client) = key_client(&h, &key(Algorithm::ES256, "k9"), &["orders:read"]).await;
    let with = |name: &str, v: Value| {
        let mut c = claims(&client_id);
        c[name] = v;
        sign(&k.signer, &header(&k), &c)
    };
    let without = |name: &str| {
        let mut c = claims(&client_id);
        c.as_object_mut().unwrap().remove(name);
        sign(&k.signer, &header(&k), &c)
    };
    let t = now();
    let stranger = key(Algorithm::ES256, "k1");
    let hs256 = {
        // HS256 "signed" with the public key's bytes as the HMAC secret.
        let input = format!(
            "{}.{}",
            b64(&json!({ "alg": "HS256", "kid": "k1" })),
            b64(&claims(&client_id))
        );
        let secret =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, k.jwk.to_string().as_bytes());
        let tag = aws_lc_rs::hmac::sign(&secret, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({ "alg": "none" })),
        b64(&claims(&client_id))
    );
    let mut cases: Vec<(&str, String)> = vec![
        ("wrong aud", with("aud", json!("https://elsewhere.example"))),
        (
            "aud of another endpoint",
            with("aud", json!(format!("{ISSUER}/oauth2/other"))),
        ),
        ("iss is not sub", with("iss", json!(other_client))),
        ("exp missing", without("exp")),
        ("exp over 5 minutes ahead", with("exp", json!(t + 600))),
        ("expired", with("exp", json!(t - 120))),
        ("nbf in the future", with("nbf", json!(t + 300))),
        ("iat in the future", with("iat", json!(t + 300))),
        ("jti missing", without("jti")),
        ("exp as a string", with("exp", json!((t + 60).to_string()))),
        ("aud as a number", with("aud", json!(7))),
        ("iss as an object", with("iss", json!({ "a": 1 }))),
        ("alg none", none),
        ("HS256 with the public key", hs256),
        (
            "a stranger's signature under the right kid",
            sign(&stranger.signer, &header(&stranger), &claims(&client_id)),
        ),
        (
            "a kid naming another key",
            sign(
                &k.signer,
                &json!({ "alg": "ES256", "kid": "k2" }),
                &claims(&client_id),
            ),
        ),
        (
            "signed for another client's id",
            sign(&k.signer, &header(&k), &claims(&other_client)),
        ),
        ("not a JWT", "not-a-jwt".to_string()),
        (
            "too large",
            format!("{}.{}.x", b64(&json!({"alg": "ES256"})), "A".repeat(9000)),
        ),
    ];
    // RS256 claimed over an ES256 signature.
    cases.push((
        "alg the key cannot do",
        sign(&k.signer, &json!({ "alg": "RS256" }), &claims(&client_id)),
    ));
    for (case, a) in &cases {
        assert_invalid_client(case, token(&h, a, "").await);
    }
    // The client_id parameter must name the assertion's subject.
    assert_invalid_client(
        "client_id of another client",
        token(
            &h,
            &assertion(&k, &client_id),
            &format!("&client_id={other_client}"),
        )
        .await,
    );
    // A half-presented assertion, or another assertion type.
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            &format!(
                "grant_type=client_credentials&client_assertion={}",
                assertion(&k, &client_id)
            ),
            &[],
        )
        .await;
    assert_invalid_client("no assertion type", (status, body));
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            &format!(
                "grant_type=client_credentials&client_assertion_type=urn%3Aexample%3Asaml&client_assertion={}",
                assertion(&k, &client_id)
            ),
            &[],
        )
        .await;
    assert_invalid_client("other assertion type", (status, body));
    // After all that, a good assertion still works.
    assert_eq!(
        token(&h, &assertion(&k, &client_id), "").await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_assertions_spend_the_callers_failed_auth_budget() {
    let h = Harness::start_with(
        None,
        "",
        &[("KEYGATE_RATE_LIMIT__FAILED_AUTH", "3/m burst 3")],
    )
    .await;
    let k = key(Algorithm::ES256, "k1");
    let (_, _, client_id) = key_client(&h, &k, &["orders:read"]).await;
    let stranger = key(Algorithm::ES256, "k1");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let bad = sign(&stranger.signer, &header(&stranger), &claims(&client_id));
        statuses.push(token(&h, &bad, "").await.0);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(
        statuses[4],
        StatusCode::TOO_MANY_REQUESTS,
        "charged like a bad secret: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_are_exclusive_and_a_key_credential_never_takes_a_secret() {
    let h = Harness::start_with(None, "", &[LIFT_BUDGET]).await;
    let k = key(Algorithm::EdDSA, "k1");
    let (_, _, client_id) = key_client(&h, &k, &["orders:read"]).await;
    let (_, secret_id, secret) = crate::oauth::client(&h, &["orders:read"]).await;
    // An assertion beside Basic, or beside client_secret: invalid_request.
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            &form_for(&assertion(&k, &client_id), ""),
            &[("authorization", &basic(&secret_id, &secret))],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    let (status, body) = token(
        &h,
        &assertion(&k, &client_id),
        &format!("&client_id={client_id}&client_secret={secret}"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    // A key credential asked for by secret (whatever the secret): refused.
    for guess in ["", "kgs_x", secret.as_str()] {
        let (status, _, body) = h
            .form(
                "/oauth2/token",
                "grant_type=client_credentials",
                &[("authorization", &basic(&client_id, guess))],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_public_jwks_are_refused_at_creation_naming_public_jwk() {
    let h = Harness::start("").await;
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let ec = key(Algorithm::ES256, "k1").jwk;
    let with = |name: &str, v: Value| {
        let mut j = ec.clone();
        j[name] = v;
        j
    };
    for (case, jwk) in [
        (
            "oct",
            json!({ "kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ" }),
        ),
        ("private d", with("d", json!("AAAA"))),
        ("P-521", with("crv", json!("P-521"))),
        ("not an object", json!("a string")),
        ("an array", json!([ec.clone()])),
        ("alg HS256", with("alg", json!("HS256"))),
        ("null", Value::Null),
    ] {
        let (status, _, body) = h
            .admin_raw(
                Some(&h.admin_key),
                "POST",
                &format!("/v1/service-accounts/{account}/credentials"),
                serde_json::to_vec(&json!({ "name": "w", "public_jwk": jwk })).unwrap(),
            )
            .await;
        if case == "null" {
            // null is "no key": a secret credential.
            assert_eq!(status, StatusCode::CREATED, "{body}");
            assert!(body["client_secret"].is_string());
            continue;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body["error"]["param"], "public_jwk", "{case}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.len() > 10, "{case}: a reason: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_credential_is_rekeyed_not_regenerated_and_dies_when_deleted() {
    let h = Harness::start_with(None, "", &[LIFT_BUDGET]).await;
    let old = key(Algorithm::ES256, "old");
    let (account, credential, client_id) = key_client(&h, &old, &["orders:read"]).await;
    let path = format!("/v1/service-accounts/{account}/credentials/{credential}");
    let (status, body) = token(&h, &assertion(&old, &client_id), "&audience=orders-api").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let minted = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(orders(&h, &minted).await, StatusCode::OK);

    // No secret to regenerate.
    let (status, _, body) = h
        .admin("POST", &format!("{path}/secret"), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("private_key_jwt"),
        "{body}"
    );
    // A bad replacement is refused and changes nothing.
    let (status, _, body) = h
        .admin("PATCH", &path, Some(json!({ "public_jwk": null })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "public_jwk");

    // Replacing the key: the old key's assertions and the tokens minted
    // with them stop; the new key works.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let new = key(Algorithm::RS256, "new");
    let (status, _, body) = h
        .admin("PATCH", &path, Some(json!({ "public_jwk": new.jwk })))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["public_jwk"]["kid"], "new");
    assert_invalid_client("old key", token(&h, &assertion(&old, &client_id), "").await);
    assert_eq!(orders(&h, &minted).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        token(&h, &assertion(&new, &client_id), "").await.0,
        StatusCode::OK
    );

    // The audit trail says which method and which kid, never key material.
    let (_, _, audit) = h
        .admin(
            "GET",
            &format!("/v1/audit-events?service_account_id={account}&limit=100"),
            None,
        )
        .await;
    let text = audit.to_string();
    assert!(
        text.contains("private_key_jwt") && text.contains("\"kid\":\"new\""),
        "{audit}"
    );
    let n = new.jwk["n"].as_str().unwrap();
    assert!(!text.contains(n), "no key material in the audit log");

    // Deleted: invalid_client.
    let (status, _, _) = h.admin("DELETE", &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_invalid_client("deleted", token(&h, &assertion(&new, &client_id), "").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_authenticate_introspection_and_token_exchange() {
    let h = Harness::start("").await;
    let k = key(Algorithm::ES256, "k1");
    let (_, _, client_id) = key_client(&h, &k, &["orders:read"]).await;
    let (status, body) = token(&h, &assertion(&k, &client_id), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let t = body["access_token"].as_str().unwrap();
    let form = format!(
        "token={t}&client_assertion_type={}&client_assertion={}",
        urlencode(JWT_BEARER),
        assertion(&k, &client_id)
    );
    let (status, _, body) = h.form("/oauth2/introspect", &form, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["client_id"], client_id.as_str());

    // RFC 8693 exchange of an API key, the client authenticating by assertion.
    let org = h.create_org(&h.unique_name()).await;
    let (_, api_key) = h.create_account(&org, &["orders:read"]).await;
    let form = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
         &subject_token={api_key}&subject_token_type=urn%3Akeygate%3Aparams%3Aoauth%3Atoken-type%3Aapi_key\
         &client_assertion_type={}&client_assertion={}",
        urlencode(JWT_BEARER),
        assertion(&k, &client_id)
    );
    let (status, _, body) = h.form("/oauth2/token", &form, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ... and a bad assertion fails the exchange.
    let stranger = key(Algorithm::ES256, "k1");
    let form = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
         &subject_token={api_key}&subject_token_type=urn%3Akeygate%3Aparams%3Aoauth%3Atoken-type%3Aapi_key\
         &client_assertion_type={}&client_assertion={}",
        urlencode(JWT_BEARER),
        assertion(&stranger, &client_id)
    );
    let (status, _, body) = h.form("/oauth2/token", &form, &[]).await;
    assert_invalid_client("exchange with a stranger's assertion", (status, body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_a_key_credential_from_a_jwk_file() {
    let h = Harness::start("").await;
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let k = key(Algorithm::EdDSA, "cli-1");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client.jwk.json");
    std::fs::write(&file, k.jwk.to_string()).unwrap();
    let args: Vec<String> = vec![
        "credential".into(),
        "create".into(),
        account,
        "--name".into(),
        "cli".into(),
        "--public-jwk-file".into(),
        file.display().to_string(),
        "--admin-url".into(),
        format!("http://{}", h.admin_addr()),
        "--admin-key".into(),
        h.admin_key.clone(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_keygate"))
            .args(&args)
            .env_remove("KEYGATE_ADMIN_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["auth_method"], "private_key_jwt", "{body}");
    assert!(body.get("client_secret").is_none(), "{body}");
    let client_id = body["client_id"].as_str().unwrap();
    assert_eq!(
        token(&h, &assertion(&k, client_id), "").await.0,
        StatusCode::OK
    );
}

/// Redis unreachable: assertions still authenticate, and a replay is still
/// refused by the replica that saw the jti.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_a_replica_still_refuses_replays_it_saw() {
    let url = format!("redis://127.0.0.1:{}", crate::support::dead_port().await);
    let h = Harness::start_with(
        None,
        "",
        &[
            ("KEYGATE_RATE_LIMIT__BACKEND", "redis"),
            ("KEYGATE_RATE_LIMIT__REDIS_URL", url.as_str()),
        ],
    )
    .await;
    let k = key(Algorithm::ES256, "k1");
    let (_, _, client_id) = key_client(&h, &k, &["orders:read"]).await;
    let a = assertion(&k, &client_id);
    assert_eq!(token(&h, &a, "").await.0, StatusCode::OK);
    assert_invalid_client("replay with redis down", token(&h, &a, "").await);
}

/// Time is keygate's injected clock, not the system's: on a clock an hour
/// ahead, an assertion made for the system's now has expired, and one made
/// for keygate's now is good — until keygate's clock passes its exp.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertions_are_judged_by_the_injected_clock() {
    use keygate::clock::{Clock as _, ManualClock, SystemClock};
    let clock = ManualClock::new(SystemClock.now_ms() + 3_600_000);
    let shared: keygate::clock::SharedClock = clock.clone();
    let h = Harness::start_clocked(None, "", &[LIFT_BUDGET], Some(shared)).await;
    let k = key(Algorithm::ES256, "k1");
    let (_, _, client_id) = key_client(&h, &k, &["orders:read"]).await;
    assert_invalid_client(
        "made for the system's now",
        token(&h, &assertion(&k, &client_id), "").await,
    );
    let at = |offset: i64| {
        let mut c = claims(&client_id);
        let keygate_now = clock.now_ms() / 1000;
        c["iat"] = json!(keygate_now);
        c["exp"] = json!(keygate_now + offset);
        sign(&k.signer, &header(&k), &c)
    };
    assert_eq!(token(&h, &at(60), "").await.0, StatusCode::OK);
    let later = at(60);
    clock.advance(120_000);
    assert_invalid_client("expired on keygate's clock", token(&h, &later, "").await);
}
