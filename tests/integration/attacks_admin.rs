//! A second adversarial review, on the admin listener: owners lifting the
//! platform's rate limits, tokens outliving a regenerated secret,
//! organization names probed by renaming, a list echoing an unbounded query
//! into its `Link` header, and `/metrics` behind an optional token.

use http::StatusCode;
use serde_json::{json, Value};

use crate::oauth::basic;
use crate::support::{header, Harness};

const DEFAULT_LIMIT: &str = r#"
[rate_limit]
default = "100/s"
"#;

async fn owner(h: &Harness, org: &str, rate_limit: Option<&str>) -> (String, String) {
    h.create_account_with(json!({
        "organization_id": org,
        "name": h.unique_name(),
        "role": "owner",
        "scopes": ["orders:read"],
        "rate_limit": rate_limit,
    }))
    .await
}

/// 3. An owner sets a limit only at or below its own effective limit (its
/// own, else the default); raising one is for platform admins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cannot_lift_the_platform_rate_limits() {
    let h = Harness::start(DEFAULT_LIMIT).await;
    let org = h.create_org("limits").await;
    let (owner_id, owner_key) = owner(&h, &org, None).await;
    let own = format!("/v1/service-accounts/{owner_id}");
    let patch = |limit: Value| json!({ "rate_limit": limit });

    // Its own limit: not above the default it runs under.
    let (status, _, body) = h
        .admin_as(&owner_key, "PATCH", &own, Some(patch(json!("100000/s"))))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Members: not above it, at creation or later; at or below is fine.
    let member = |limit: &str| {
        json!({
            "organization_id": org, "name": h.unique_name(),
            "scopes": ["orders:read"], "rate_limit": limit,
        })
    };
    for limit in ["1000/s", "100/s burst 500", "7000/m"] {
        let (status, _, body) = h
            .admin_as(
                &owner_key,
                "POST",
                "/v1/service-accounts",
                Some(member(limit)),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{limit}: {body}");
    }
    let (status, _, created) = h
        .admin_as(
            &owner_key,
            "POST",
            "/v1/service-accounts",
            Some(member("10/s")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("/v1/service-accounts/{}", created["id"].as_str().unwrap());
    let (status, _, body) = h
        .admin_as(&owner_key, "PATCH", &path, Some(patch(json!("5000/s"))))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // An owner the admin held to 5/s cannot lower its members to the
    // default (100/s) by clearing their limit, nor lift its own.
    let (status, ..) = h.admin("PATCH", &own, Some(patch(json!("5/s")))).await;
    assert_eq!(status, StatusCode::OK);
    for (target, limit) in [(&path, Value::Null), (&own, json!("6/s"))] {
        let (status, _, body) = h
            .admin_as(&owner_key, "PATCH", target, Some(patch(limit.clone())))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{target} {limit}: {body}");
    }
    let (status, _, body) = h
        .admin_as(&owner_key, "PATCH", &path, Some(patch(json!("5/s"))))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The platform admin raises as it likes.
    let (status, _, body) = h
        .admin("PATCH", &path, Some(patch(json!("100000/s"))))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A JWT for the `orders` route, minted with the client credential.
async fn token(h: &Harness, id: &str, secret: &str) -> String {
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            "grant_type=client_credentials&audience=orders-api",
            &[("authorization", &basic(id, secret))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// 4. Regenerating a secret (natively or through Run:ai) ends the tokens
/// minted with the old one, across a restart too; new tokens work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_minted_with_a_regenerated_secret_stop_working() {
    let mut h = Harness::start("").await;
    let org = h.create_org("regenerate").await;
    // Run:ai answers in the caller's own organization: an owner of it.
    let (_, owner_key) = owner(&h, &org, None).await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let (status, _, cred) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/credentials"),
            Some(json!({ "name": "ci" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cred}");
    let client_id = cred["client_id"].as_str().unwrap().to_string();
    let cid = cred["id"].as_str().unwrap();
    let regenerations = [
        (
            h.admin_key.clone(),
            format!("/v1/service-accounts/{account}/credentials/{cid}/secret"),
        ),
        (
            owner_key,
            format!("/compat/runai/api/v1/service-accounts/{account}/secret"),
        ),
    ];
    let mut secret = cred["client_secret"].as_str().unwrap().to_string();
    for (key, path) in regenerations {
        let old = token(&h, &client_id, &secret).await;
        assert_eq!(h.key_status(StatusCode::OK, &old).await, StatusCode::OK);
        let (status, _, body) = h.admin_as(&key, "POST", &path, Some(json!({}))).await;
        assert!(status.is_success(), "{path}: {body}");
        secret = body["client_secret"]
            .as_str()
            .or(body["clientSecret"].as_str())
            .unwrap_or_else(|| panic!("{path}: no secret in {body}"))
            .to_string();
        assert_eq!(
            h.key_status(StatusCode::UNAUTHORIZED, &old).await,
            StatusCode::UNAUTHORIZED,
            "{path}: a token minted with the old secret still works"
        );
        let new = token(&h, &client_id, &secret).await;
        assert_eq!(h.key_status(StatusCode::OK, &new).await, StatusCode::OK);
        // The cut-off is stored: a restart does not revive the old token.
        h.restart().await;
        assert_eq!(
            h.key_status(StatusCode::UNAUTHORIZED, &old).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(h.key_status(StatusCode::OK, &new).await, StatusCode::OK);
    }
}

/// 8. A tenant learns nothing of other tenants' organization names: an
/// owner's rename is refused alike whether the name is taken or free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_an_organization_does_not_tell_which_names_are_taken() {
    let h = Harness::start("").await;
    let org = h.create_org("probe-home").await;
    h.create_org("victim-corp").await;
    let (_, owner_key) = owner(&h, &org, None).await;
    let path = format!("/v1/organizations/{org}");
    let mut answers = Vec::new();
    for name in ["victim-corp", "never-used-name"] {
        let (status, _, body) = h
            .admin_as(&owner_key, "PATCH", &path, Some(json!({ "name": name })))
            .await;
        answers.push((
            status,
            body["error"]["code"].clone(),
            body["error"]["message"].clone(),
        ));
    }
    assert_eq!(answers[0], answers[1], "{answers:?}");
    assert_eq!(answers[0].0, StatusCode::FORBIDDEN);
    // What is its own it may still change.
    let (status, _, body) = h
        .admin_as(
            &owner_key,
            "PATCH",
            &path,
            Some(json!({ "name": "probe-home", "abbreviation": "PH" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Platform admins rename, and are told of a collision.
    let (status, ..) = h
        .admin("PATCH", &path, Some(json!({ "name": "victim-corp" })))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

/// Waldur's `Link` repeats the query for first/prev/next/last: a huge
/// filter must not make a response head clients refuse (over 64 KiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waldur_list_bounds_what_it_echoes_back() {
    let h = Harness::start("").await;
    let email = "a".repeat(50 * 1024);
    let path = format!("/compat/waldur/api/marketplace-project-service-accounts/?email={email}");
    let auth = format!("Token {}", h.admin_key);
    let (status, headers, body) = h
        .admin_with("GET", &path, &[("authorization", &auth)], Vec::new())
        .await;
    assert!(
        status.is_success() || status.is_client_error(),
        "{status}: {body}"
    );
    let head: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    assert!(head < 16 * 1024, "a response head of {head} bytes");
    assert_eq!(header(&headers, "x-result-count"), "0");
}

/// `/metrics` answers without a credential by default (the admin listener
/// is private), and only with `admin.metrics_token` when one is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_require_a_token() {
    let open = Harness::start("").await;
    let (status, ..) = open
        .send_to(open.admin_addr(), "GET", "/metrics", &[])
        .await;
    assert_eq!(status, StatusCode::OK);

    let token = "metrics-token-0123456789abcdefghij";
    let h = Harness::start_with(None, "", &[("KEYGATE_ADMIN__METRICS_TOKEN", token)]).await;
    let good = format!("Bearer {token}");
    let wrong = format!("Bearer {}x", &token[..token.len() - 1]);
    let admin = format!("Bearer {}", h.admin_key);
    for (auth, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some(wrong.as_str()), StatusCode::UNAUTHORIZED),
        (Some(admin.as_str()), StatusCode::UNAUTHORIZED),
        (Some(good.as_str()), StatusCode::OK),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        let (status, res, body) = h.send_to(h.admin_addr(), "GET", "/metrics", &headers).await;
        assert_eq!(status, want, "{auth:?}: {body}");
        if want == StatusCode::UNAUTHORIZED {
            assert!(!header(&res, "www-authenticate").is_empty());
            assert!(!body.to_string().contains(token));
        }
    }
}
