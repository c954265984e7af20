//! The public listener: credential forms, header hygiene, refusals and upstream faults.

use http::StatusCode;
use serde_json::{json, Value};

use crate::support::{account_and_key, header, refused_port, Harness};

/// Value of header `name` as the upstream received it (from the echo body).
fn seen<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name].as_str()
}

fn sorted_scopes(value: Option<&str>) -> Vec<String> {
    let mut scopes: Vec<String> = value
        .unwrap_or("")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    scopes.sort();
    scopes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_key_forwards_identity_headers_without_credential() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (status, _, created) = h
        .admin(
            "POST",
            "/v1/service-accounts",
            Some(json!({
                "organization_id": org,
                "name": "orders-bot",
                "scopes": ["orders:read", "orders:write"],
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (account, key) = account_and_key(&created);
    let key_id = created["api_key"]["id"].as_str().unwrap();
    assert!(key.starts_with("kg_"), "key format: {key}");

    let bearer = format!("Bearer {key}");
    let token = format!("Token {key}");
    let forms = [
        [("authorization", bearer.as_str())],
        [("authorization", token.as_str())],
        [("x-api-key", key.as_str())],
    ];
    for headers in forms {
        let (status, _, echo) = h.proxy("GET", "/orders/42?expand=items", &headers).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}: {echo}");
        assert_eq!(echo["method"], "GET");
        assert_eq!(echo["path"], "/orders/42?expand=items");
        assert_eq!(
            seen(&echo, "x-keygate-account"),
            Some(account.as_str()),
            "{echo}"
        );
        assert_eq!(seen(&echo, "x-keygate-org"), Some(org.as_str()));
        assert_eq!(
            seen(&echo, "x-keygate-project"),
            None,
            "org-level account has no project"
        );
        assert_eq!(
            sorted_scopes(seen(&echo, "x-keygate-scopes")),
            ["orders:read", "orders:write"]
        );
        assert_eq!(seen(&echo, "x-keygate-credential"), Some(key_id));
        // SECURITY: the credential itself never reaches the upstream.
        assert_eq!(seen(&echo, "authorization"), None);
        assert_eq!(seen(&echo, "x-api-key"), None);
        assert!(
            seen(&echo, "x-forwarded-for")
                .unwrap_or("")
                .contains("127.0.0.1"),
            "{echo}"
        );
        assert_eq!(seen(&echo, "x-forwarded-proto"), Some("http"));
        assert_eq!(
            seen(&echo, "x-forwarded-host"),
            Some(h.public_addr().to_string().as_str())
        );
        assert!(!seen(&echo, "x-request-id").unwrap_or("").is_empty());
    }
    assert_eq!(h.upstream_hits(), 3);

    // A project-scoped account also names its project.
    let (status, _, project) = h
        .admin(
            "POST",
            &format!("/v1/organizations/{org}/projects"),
            Some(json!({"name": "shop"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    let project_id = project["id"].as_str().unwrap();
    let (_, scoped_key) = h
        .create_account_with(json!({
            "organization_id": org,
            "project_id": project_id,
            "name": "shop-bot",
            "scopes": ["orders:read"],
        }))
        .await;
    let (status, _, echo) = h.bearer("GET", "/orders/1", &scoped_key).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(seen(&echo, "x-keygate-project"), Some(project_id));
    assert_eq!(seen(&echo, "x-keygate-org"), Some(org.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_keygate_headers_never_reach_upstream() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let auth = format!("Bearer {key}");
    let spoofed = [
        ("x-keygate-account", "00000000-0000-0000-0000-000000000000"),
        ("x-keygate-org", "evil-org"),
        ("x-keygate-project", "evil-project"),
        ("x-keygate-scopes", "keygate:admin"),
        ("x-keygate-impersonate", "root"),
    ];

    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(spoofed);
    let (status, _, echo) = h.proxy("GET", "/orders/1", &headers).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(
        seen(&echo, "x-keygate-account"),
        Some(account.as_str()),
        "{echo}"
    );
    assert_eq!(seen(&echo, "x-keygate-org"), Some(org.as_str()));
    assert_eq!(seen(&echo, "x-keygate-project"), None);
    assert_eq!(seen(&echo, "x-keygate-scopes"), Some("orders:read"));
    assert_eq!(seen(&echo, "x-keygate-impersonate"), None);

    // A public route has no identity to add, so nothing X-Keygate-* may arrive at all.
    let (status, _, echo) = h.proxy("GET", "/open/x", &spoofed).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    let names: Vec<&String> = echo["headers"].as_object().unwrap().keys().collect();
    assert!(
        names.iter().all(|n| !n.starts_with("x-keygate-")),
        "leaked: {names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_key_is_401_with_www_authenticate() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;

    let (status, headers, body) = h.proxy("GET", "/orders/1", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let challenge = header(&headers, "www-authenticate");
    assert!(
        challenge.starts_with(r#"Bearer realm="keygate""#),
        "{challenge}"
    );
    assert!(
        !challenge.contains("error="),
        "no credential, no error code: {challenge}"
    );
    assert!(body.is_object(), "error body is JSON: {body}");

    // Keys are never taken from the query string.
    let (status, _, _) = h
        .proxy("GET", &format!("/orders/1?api_key={key}"), &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checksum_is_401_invalid_token() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;

    let mut tampered = key.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [tampered.as_str(), "kg_nope", "not-a-key-at-all"] {
        let (status, headers, body) = h.bearer("GET", "/orders/1", bad).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bad}: {body}");
        let challenge = header(&headers, "www-authenticate");
        assert!(challenge.contains(r#"realm="keygate""#), "{challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(body.is_object(), "{body}");
    }
    assert_eq!(h.upstream_hits(), 0);

    let (status, _, _) = h.bearer("GET", "/orders/1", &key).await;
    assert_eq!(status, StatusCode::OK, "the untampered key works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_scope_is_403_insufficient_scope() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let (status, _, _) = h.bearer("GET", "/orders/1", &key).await;
    assert_eq!(status, StatusCode::OK);
    let (status, headers, body) = h.bearer("POST", "/orders", &key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let challenge = header(&headers, "www-authenticate");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.contains("orders:write"),
        "names the missing scope: {challenge}"
    );
    assert!(body.is_object(), "{body}");
    assert_eq!(
        h.upstream_hits(),
        1,
        "the refused POST never reached the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_route_needs_no_key() {
    let h = Harness::start("").await;
    let (status, _, echo) = h.proxy("GET", "/open/hello?x=1", &[]).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["path"], "/open/hello?x=1");
    assert_eq!(h.upstream_hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traversal_paths_are_400() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    // A valid key, so the only thing wrong with these requests is the path.
    for path in [
        "/orders/../admin",
        "/orders/%2e%2e/x",
        "/orders/%2E%2E/x",
        "/open/../orders/1",
    ] {
        let (status, _, body) = h.bearer("GET", path, &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body.is_object(), "{path}: {body}");
    }
    assert_eq!(h.upstream_hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502() {
    let (_held, port) = refused_port();
    let extra = format!(
        "[[routes]]\nname = \"down\"\nprefix = \"/down\"\nupstream = \"http://127.0.0.1:{port}\"\npublic = true\n"
    );
    let h = Harness::start(&extra).await;
    let (status, _, body) = h.proxy("GET", "/down/x", &[]).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body.is_object(), "error body is JSON: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_forwards_credential() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;

    let bearer = format!("Bearer {key}");
    let (status, _, echo) = h
        .proxy("GET", "/pass/x", &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(seen(&echo, "authorization"), Some(bearer.as_str()));

    let (status, _, echo) = h
        .proxy("GET", "/pass/x", &[("x-api-key", key.as_str())])
        .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(seen(&echo, "x-api-key"), Some(key.as_str()));

    // Passthrough still authenticates.
    let (status, _, _) = h.proxy("GET", "/pass/x", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(h.upstream_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_propagated_or_created() {
    let h = Harness::start("").await;
    let (status, _, echo) = h
        .proxy("GET", "/open/a", &[("x-request-id", "req-test-123")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seen(&echo, "x-request-id"), Some("req-test-123"));

    let (_, _, first) = h.proxy("GET", "/open/a", &[]).await;
    let (_, _, second) = h.proxy("GET", "/open/a", &[]).await;
    let first = seen(&first, "x-request-id").unwrap_or("");
    let second = seen(&second, "x-request-id").unwrap_or("");
    assert!(
        !first.is_empty() && !second.is_empty(),
        "a request id is created"
    );
    assert_ne!(first, second, "each request gets its own id");
}
