//! What binds a keygate JWT beyond its signature: its account's rate
//! limit, the route's scopes when forwarded, a route audience required at
//! start, and the token endpoint's own limits.

use http::StatusCode;
use serde_json::{json, Value};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::jwt::{at_proxy, token_for};
use crate::oauth::{basic, client};
use crate::support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_rate_limit_binds_its_tokens_too() {
    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read"]).await;
    h.admin(
        "PATCH",
        &format!("/v1/service-accounts/{account}"),
        Some(json!({ "rate_limit": "1/h" })),
    )
    .await;
    let token = token_for(&h, &id, &secret, "").await;
    assert_eq!(at_proxy(&h, &token).await.0, StatusCode::OK);
    assert_eq!(at_proxy(&h, &token).await.0, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_tokens_carry_only_the_routes_scopes_and_follow_changes() {
    let h = Harness::start(
        r#"
[[routes]]
name = "minted"
prefix = "/minted"
upstream = "http://{UPSTREAM}"
audience = "minted-api"
forward_auth = "jwt"
scopes = { GET = ["orders:read"] }
"#,
    )
    .await;
    let org = h.create_org("acme").await;
    let (account, key) = h
        .create_account(&org, &["orders:read", "billing:write"])
        .await;
    let claims = |echo: &Value| {
        let jwt = echo["headers"]["authorization"]
            .as_str()
            .unwrap()
            .strip_prefix("Bearer ")
            .unwrap()
            .to_string();
        let payload = jwt.split('.').nth(1).unwrap().to_string();
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    };
    let (_, _, echo) = h.bearer("GET", "/minted/a", &key).await;
    assert_eq!(claims(&echo)["scope"], "orders:read", "not billing:write");
    // Scopes narrowed: the next request gets a freshly minted token.
    h.admin(
        "PATCH",
        &format!("/v1/service-accounts/{account}"),
        Some(json!({ "scopes": ["orders:read"] })),
    )
    .await;
    let (_, _, again) = h.bearer("GET", "/minted/b", &key).await;
    assert_ne!(claims(&again)["jti"], claims(&echo)["jti"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_jwt_without_audience_is_refused_at_start() {
    let toml = "[[routes]]\nname = \"m\"\nprefix = \"/m\"\nupstream = \"http://127.0.0.1:1\"\nforward_auth = \"jwt\"\n";
    let err = keygate::config::Config::from_toml(toml, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("routes[0].audience"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_forms_and_recent_closures_are_refused() {
    let h = Harness::start("").await;
    let (account, id, secret) = client(&h, &["orders:read"]).await;
    let many: String = (0..100).map(|i| format!("&p{i}=x")).collect();
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            &format!("grant_type=client_credentials{many}"),
            &[("authorization", &basic(&id, &secret))],
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // An organization whose account was just closed keeps existing until
    // that account's tokens have expired.
    let (_, _, acct) = h
        .admin("GET", &format!("/v1/service-accounts/{account}"), None)
        .await;
    let org = acct["organization_id"].as_str().unwrap().to_string();
    h.admin("DELETE", &format!("/v1/service-accounts/{account}"), None)
        .await;
    let (status, _, body) = h
        .admin("DELETE", &format!("/v1/organizations/{org}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "organization_not_empty");
}
