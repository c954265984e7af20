//! What a client credential narrows reaches the tokens minted from it;
//! organizations bound credential lifetimes; owners hand out quotas only
//! within their own.

use http::StatusCode;
use serde_json::{json, Value};

use crate::oauth::basic;
use crate::support::Harness;

/// A client credential on a new account holding `scopes`, made with
/// `extra` fields: (account, client id, secret).
async fn credential(h: &Harness, scopes: &[&str], extra: Value) -> (String, String, String) {
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, scopes).await;
    let (s, _, body) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/credentials"),
            Some(extra),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    (
        account,
        body["client_id"].as_str().unwrap().to_string(),
        body["client_secret"].as_str().unwrap().to_string(),
    )
}

async fn token(h: &Harness, id: &str, secret: &str, form: &str) -> (StatusCode, Value) {
    let (s, _, body) = h
        .form(
            "/oauth2/token",
            form,
            &[("authorization", &basic(id, secret))],
        )
        .await;
    (s, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrowed_credential_mints_narrowed_tokens_that_spend_its_quota() {
    let h = Harness::start("").await;
    let (_, id, secret) = credential(
        &h,
        &["orders:read", "orders:write"],
        json!({
            "name": "reader",
            "scopes": ["orders:read"],
            "allowed_cidrs": ["127.0.0.0/8"],
            "quota": {"limit": 2, "period": "day"},
        }),
    )
    .await;
    // Its tokens carry only its scopes; more is invalid_scope.
    let (s, body) = token(
        &h,
        &id,
        &secret,
        "grant_type=client_credentials&audience=orders-api",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "orders:read");
    let (s, err) = token(
        &h,
        &id,
        &secret,
        "grant_type=client_credentials&scope=orders:write",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"], "invalid_scope");

    let jwt = body["access_token"].as_str().unwrap();
    let claims = crate::oauth::verify(&h, jwt, "orders-api").await.1;
    assert_eq!(claims["allowed_cidrs"], json!(["127.0.0.0/8"]));
    // The token spends the credential's quota: two requests, then 429.
    assert_eq!(h.bearer("GET", "/orders/1", jwt).await.0, StatusCode::OK);
    // Introspection tells what is left.
    let admin = format!("Bearer {}", h.admin_key);
    let (_, _, intro) = h
        .form(
            "/oauth2/introspect",
            &format!("token={jwt}"),
            &[("authorization", &admin)],
        )
        .await;
    assert_eq!(intro["keygate_quota_remaining"], 1, "{intro}");
    assert_eq!(
        h.bearer("POST", "/orders/1", jwt).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(h.bearer("GET", "/orders/2", jwt).await.0, StatusCode::OK);
    let (s, _, body) = h.bearer("GET", "/orders/3", jwt).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exhausted");
    // A second token of the same credential spends the same quota.
    let (_, again) = token(
        &h,
        &id,
        &secret,
        "grant_type=client_credentials&audience=orders-api",
    )
    .await;
    let second = again["access_token"].as_str().unwrap();
    assert_eq!(
        h.bearer("GET", "/orders/4", second).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_bound_elsewhere_gets_no_token_and_its_tokens_work_nowhere_else() {
    let h = Harness::start("").await;
    let (account, id, secret) = credential(
        &h,
        &["orders:read"],
        json!({"name": "remote", "allowed_cidrs": ["10.0.0.0/8", "2001:db8::/32"]}),
    )
    .await;
    let (s, err) = token(&h, &id, &secret, "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{err}");
    assert_eq!(err["error"], "invalid_client");
    // An API key of the account bound elsewhere is no subject token here.
    let (s, _, key) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/api-keys"),
            Some(json!({"allowed_cidrs": ["10.0.0.0/8"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    let form = format!(
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token={}&subject_token_type=urn:keygate:params:oauth:token-type:api_key",
        key["value"].as_str().unwrap()
    );
    let (s, _, err) = h.form("/oauth2/token", &form, &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");

    // Widened to loopback by PATCH, it mints a token bound to loopback.
    let cid = credential_id(&h, &account, &id).await;
    let (s, _, body) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}/credentials/{cid}"),
            Some(json!({"allowed_cidrs": ["127.0.0.1/32"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["allowed_cidrs"], json!(["127.0.0.1/32"]));
    let (s, body) = token(&h, &id, &secret, "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

async fn credential_id(h: &Harness, account: &str, client_id: &str) -> String {
    let (_, _, list) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{account}/credentials"),
            None,
        )
        .await;
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["client_id"] == client_id)
        .and_then(|c| c["id"].as_str())
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_bounds_how_long_its_keys_and_credentials_live() {
    let h = Harness::start("").await;
    let (s, _, org) = h
        .admin(
            "POST",
            "/v1/organizations",
            Some(json!({"name": h.unique_name(), "max_credential_lifetime": "30d"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{org}");
    assert_eq!(org["max_credential_lifetime"], "30d");
    let org_id = org["id"].as_str().unwrap();
    // A key issued with an account (no expiry field there) lives the
    // longest allowed.
    let (s, _, first) = h
        .admin(
            "POST",
            "/v1/service-accounts",
            Some(json!({"organization_id": org_id, "name": "first"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert!(first["api_key"]["expires_at"].is_string(), "{first}");
    let (s, _, body) = h
        .admin(
            "POST",
            "/v1/service-accounts",
            Some(json!({"organization_id": org_id, "name": "a", "create_api_key": false})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let account = body["id"].as_str().unwrap();
    let at = |days: i64| {
        keygate::clock::rfc3339(
            keygate::clock::Clock::now_ms(&keygate::clock::SystemClock) + days * 86_400_000,
        )
    };
    for (path, name) in [("api-keys", None), ("credentials", Some("c"))] {
        let body = |extra: Value| {
            let mut b = extra;
            if let Some(n) = name {
                b["name"] = json!(n);
            }
            b
        };
        let url = format!("/v1/service-accounts/{account}/{path}");
        // Here the caller can give one, and must.
        let (s, _, err) = h.admin("POST", &url, Some(body(json!({})))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {err}");
        assert_eq!(err["error"]["param"], "expires_at", "{err}");
        let (s, _, err) = h
            .admin("POST", &url, Some(body(json!({"expires_at": at(60)}))))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains("30d"),
            "{err}"
        );
        let (s, _, ok) = h
            .admin("POST", &url, Some(body(json!({"expires_at": at(10)}))))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{path}: {ok}");
    }
    // Rotation takes no expiry: the new key gets the longest allowed.
    let (s, _, rotated) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/rotate-api-key"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    assert!(rotated["api_key"]["expires_at"].is_string(), "{rotated}");
    // A lifetime that does not parse names the field.
    let (s, _, err) = h
        .admin(
            "PATCH",
            &format!("/v1/organizations/{org_id}"),
            Some(json!({"max_credential_lifetime": "soon"})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["param"], "max_credential_lifetime");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_hands_out_quotas_only_within_its_own() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, owner_key) = h
        .create_account_with(json!({
            "organization_id": org,
            "name": "owner",
            "role": "owner",
            "scopes": ["orders:read"],
            "quota": {"limit": 100, "period": "day"},
        }))
        .await;
    let create = |quota: Value| {
        let (h, org, owner_key) = (&h, &org, &owner_key);
        async move {
            h.admin_as(
                owner_key,
                "POST",
                "/v1/service-accounts",
                Some(json!({
                    "organization_id": org,
                    "name": h.unique_name(),
                    "scopes": ["orders:read"],
                    "quota": quota,
                })),
            )
            .await
        }
    };
    let (s, _, body) = create(json!({"limit": 100, "period": "day"})).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    for over in [
        json!({"limit": 101, "period": "day"}),
        json!({"limit": 10, "period": "month"}),
        json!(null),
    ] {
        let (s, _, err) = create(over.clone()).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{over}: {err}");
    }
    // Nor can it reset its own window, nor raise its own quota.
    let (_, _, me) = h
        .admin_as(&owner_key, "GET", "/v1/service-accounts?limit=100", None)
        .await;
    let own = me["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "owner")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _, err) = h
        .admin_as(
            &owner_key,
            "PATCH",
            &format!("/v1/service-accounts/{own}"),
            Some(json!({"quota": {"limit": 1000, "period": "day"}})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{err}");
    let (s, _, err) = h
        .admin_as(
            &owner_key,
            "PATCH",
            &format!("/v1/service-accounts/{own}"),
            Some(json!({"reset_quota": true})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a reset is spending without bound: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_client_address_is_the_forwarded_one() {
    let h = Harness::start_with(
        None,
        "",
        &[("KEYGATE_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)],
    )
    .await;
    let org = h.create_org("acme").await;
    let (account, _) = h.create_account(&org, &[]).await;
    let (s, _, key) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/api-keys"),
            Some(json!({"allowed_cidrs": ["10.0.0.0/8"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{key}");
    let auth = format!("Bearer {}", key["value"].as_str().unwrap());
    let via = |xff: &'static str| {
        let (h, auth) = (&h, auth.clone());
        async move {
            h.proxy(
                "GET",
                "/pass/x",
                &[("authorization", &auth), ("x-forwarded-for", xff)],
            )
            .await
            .0
        }
    };
    // The trusted proxy (loopback) says who the client is.
    assert_eq!(via("10.1.2.3").await, StatusCode::OK);
    assert_eq!(via("192.0.2.7").await, StatusCode::FORBIDDEN);
    // A client cannot slip an address in front of the one the proxy saw.
    assert_eq!(via("10.1.2.3, 192.0.2.7").await, StatusCode::FORBIDDEN);
    // An IPv4 client seen as IPv4-mapped IPv6 is still in 10.0.0.0/8.
    assert_eq!(via("::ffff:10.9.9.9").await, StatusCode::OK);
}
