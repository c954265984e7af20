//! Rate limits on the public listener: per route, per account, per failing
//! address, and the headers that describe them.

use http::StatusCode;
use serde_json::json;

use crate::support::{header, Harness};

const LIMITED_ROUTE: &str = r#"
[[routes]]
name = "limited"
prefix = "/limited"
upstream = "http://{UPSTREAM}"
rate_limit = "2/m"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_limit_refuses_with_retry_after_and_describes_itself() {
    let h = Harness::start(LIMITED_ROUTE).await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &[]).await;

    let (s1, h1, _) = h.bearer("GET", "/limited/a", &key).await;
    assert_eq!(s1, StatusCode::OK);
    assert_eq!(header(&h1, "ratelimit-limit"), "2");
    assert_eq!(header(&h1, "ratelimit-remaining"), "1");
    assert_eq!(header(&h1, "ratelimit-policy"), r#""limited";q=2;w=60"#);
    assert!(
        header(&h1, "ratelimit").starts_with(r#""limited";r=1;t="#),
        "{h1:?}"
    );
    let (s2, h2, _) = h.bearer("GET", "/limited/b", &key).await;
    assert_eq!(s2, StatusCode::OK);
    assert_eq!(header(&h2, "ratelimit-remaining"), "0");

    let hits = h.upstream_hits();
    let (s3, h3, body) = h.bearer("GET", "/limited/c", &key).await;
    assert_eq!(s3, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let retry: u64 = header(&h3, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        h.upstream_hits(),
        hits,
        "a refused request must not reach the upstream"
    );

    // Buckets are per principal: another account is unaffected.
    let (_, other) = h.create_account(&org, &[]).await;
    let (s, _, _) = h.bearer("GET", "/limited/a", &other).await;
    assert_eq!(s, StatusCode::OK);
    // Routes without a limit carry no rate-limit headers.
    let (s, hdrs, _) = h.bearer("GET", "/pass/x", &key).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&hdrs, "ratelimit-limit"), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_rate_limit_applies_where_the_route_sets_none() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let (status, _, body) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(json!({ "rate_limit": "1/h" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rate_limit"], "1/h");

    assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);
    let (s, hdrs, _) = h.bearer("GET", "/orders/2", &key).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&hdrs, "ratelimit-policy"), r#""account";q=1;w=3600"#);

    // A bad spec is refused, naming the field.
    let (status, _, body) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(json!({ "rate_limit": "lots" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["param"], "rate_limit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limit_is_per_principal_across_routes() {
    let h = Harness::start("[rate_limit]\ndefault = \"3/h\"\n").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);
    assert_eq!(h.bearer("GET", "/pass/1", &key).await.0, StatusCode::OK);
    assert_eq!(h.bearer("GET", "/orders/2", &key).await.0, StatusCode::OK);
    assert_eq!(
        h.bearer("GET", "/pass/2", &key).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_block_the_address_not_the_key() {
    let h = Harness::start("[rate_limit]\nfailed_auth = \"3/h\"\n").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    // The failures name this very key (a typo of it): it must not be charged.
    let mut typo = key.clone().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();

    for _ in 0..3 {
        assert_eq!(
            h.bearer("GET", "/orders/1", &typo).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    let (s, hdrs, body) = h.bearer("GET", "/orders/1", &typo).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(header(&hdrs, "retry-after").parse::<u64>().unwrap() >= 1);
    assert_eq!(body["error"]["code"], "too_many_failed_attempts");
    // Over its budget, the address is refused for credentials that fail;
    // the valid key (the very one the typo named) still passes.
    assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);
    assert_eq!(
        h.bearer("GET", "/orders/1", &typo).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Requests without a credential are not failures: a public route still answers.
    assert_eq!(h.proxy("GET", "/open/x", &[]).await.0, StatusCode::OK);
}
