//! Attacks and edge cases found in review: privilege escalation through the
//! admin API, route bypasses through path encodings, methods a route does
//! not mention, and credential headers meant for the upstream.

use http::StatusCode;
use serde_json::json;

use crate::support::{header, Harness};

async fn owner(h: &Harness, org: &str, scopes: &[&str]) -> String {
    let (_, key) = h
        .create_account_with(json!({
            "organization_id": org,
            "name": h.unique_name(),
            "role": "owner",
            "scopes": scopes,
        }))
        .await;
    key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_owner_cannot_take_over_an_admin_account_in_its_org() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let owner_key = owner(&h, &org, &["orders:read"]).await;
    // A platform admin account that happens to live in the owner's org.
    let (admin_account, admin_key) = h
        .create_account_with(json!({
            "organization_id": org,
            "name": "ops-admin",
            "scopes": ["keygate:admin"],
        }))
        .await;
    let base = format!("/v1/service-accounts/{admin_account}");
    let attempts = [
        ("POST", format!("{base}/api-keys"), Some(json!({}))),
        ("POST", format!("{base}/rotate-api-key"), Some(json!({}))),
        ("PATCH", base.clone(), Some(json!({ "scopes": [] }))),
        ("PATCH", base.clone(), Some(json!({ "enabled": false }))),
        ("DELETE", base.clone(), None),
    ];
    for (method, path, body) in attempts {
        let (status, _, res) = h.admin_as(&owner_key, method, &path, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {res}");
        assert!(res.get("api_key").is_none(), "no key may leak: {res}");
    }
    // The admin account is untouched and its key still works.
    let (status, _, _) = h.admin_as(&admin_key, "GET", &base, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_may_grant_only_scopes_it_holds() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let owner_key = owner(&h, &org, &["orders:read"]).await;
    let create = |scopes: Vec<&str>, name: &str| json!({ "organization_id": org, "name": name, "scopes": scopes });
    let (status, _, body) = h
        .admin_as(
            &owner_key,
            "POST",
            "/v1/service-accounts",
            Some(create(vec!["orders:write"], "w")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _, body) = h
        .admin_as(
            &owner_key,
            "POST",
            "/v1/service-accounts",
            Some(create(vec!["orders:read"], "r")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap();
    // Nor by PATCH afterwards.
    let (status, _, body) = h
        .admin_as(
            &owner_key,
            "PATCH",
            &format!("/v1/service-accounts/{id}"),
            Some(json!({ "scopes": ["orders:read", "billing:admin"] })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encodings_cannot_reach_a_stricter_route() {
    let h = Harness::start(
        r#"
[[routes]]
name = "order-items"
prefix = "/orders/items"
upstream = "http://{UPSTREAM}"
scopes = { "*" = ["items:write"] }
"#,
    )
    .await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    // %69 is 'i': this is /orders/items, whose scope the key lacks.
    let (status, _, body) = h.bearer("GET", "/orders/%69tems/1", &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Path parameters on a dot-dot segment are traversal too.
    let (status, _, _) = h.bearer("GET", "/orders/..;/items/1", &key).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // And the upstream receives the decoded, normalised path.
    let (status, _, echo) = h.bearer("GET", "/orders/%41b%2Dc/./d", &key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(echo["path"], "/orders/Ab-c/d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_the_route_does_not_mention_are_refused() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h
        .create_account(&org, &["orders:read", "orders:write"])
        .await;
    // /orders lists GET and POST only.
    for method in ["DELETE", "PUT", "PATCH"] {
        let (status, hdrs, body) = h
            .proxy(
                method,
                "/orders/1",
                &[("authorization", &format!("Bearer {key}"))],
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}: {body}");
        assert_eq!(body["error"]["code"], "method_not_permitted");
        assert!(header(&hdrs, "www-authenticate").contains("insufficient_scope"));
    }
    // HEAD follows GET.
    let (status, _, _) = h
        .proxy(
            "HEAD",
            "/orders/1",
            &[("authorization", &format!("Bearer {key}"))],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_authorization_for_the_upstream_passes_beside_an_api_key() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let (status, _, echo) = h
        .proxy(
            "GET",
            "/orders/1",
            &[("authorization", "Basic dXNlcjpwdw=="), ("x-api-key", &key)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["headers"]["authorization"], "Basic dXNlcjpwdw==");
    assert!(echo["headers"].get("x-api-key").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_typed_field_is_named_and_405_is_json() {
    let h = Harness::start("").await;
    let (status, _, body) = h
        .admin(
            "POST",
            "/v1/service-accounts",
            Some(json!({ "organization_id": "not-a-uuid", "name": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "organization_id");
    let (status, _, body) = h.admin("PUT", "/v1/organizations", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
}
