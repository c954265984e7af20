//! Quotas: how much an account, key or credential may spend per UTC day,
//! month or in all; route costs; resets; what survives a restart; and the
//! usage report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use keygate::clock::{Clock as _, ManualClock};
use serde_json::{json, Value};

use crate::support::{header, Harness};

const METERED: &str = r#"
[[routes]]
name = "metered"
prefix = "/metered"
upstream = "http://{UPSTREAM}"
cost = 5
"#;

/// Issues a key on `account` with the given extra fields; its value.
pub(crate) async fn key_with(h: &Harness, account: &str, extra: Value) -> (String, String) {
    let (status, _, body) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/api-keys"),
            Some(extra),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    (
        body["id"].as_str().unwrap().to_string(),
        body["value"].as_str().unwrap().to_string(),
    )
}

/// The status of a request with `key`, retried until it is not a 503 (a
/// cache the manual clock made stale answers 503 until its next poll).
async fn status_of(h: &Harness, path: &str, key: &str) -> (StatusCode, http::HeaderMap, Value) {
    let started = Instant::now();
    loop {
        let r = h.bearer("GET", path, key).await;
        if r.0 != StatusCode::SERVICE_UNAVAILABLE || started.elapsed() > Duration::from_secs(10) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_quota_counts_down_refuses_then_turns_with_the_utc_day() {
    let clock = ManualClock::new(keygate::clock::SystemClock.now_ms());
    let h = Harness::start_clocked(None, "", &[], Some(Arc::clone(&clock) as _)).await;
    let org = h.create_org("acme").await;
    let (account, _) = h.create_account(&org, &[]).await;
    let (_, key) = key_with(
        &h,
        &account,
        json!({"quota": {"limit": 3, "period": "day"}}),
    )
    .await;

    for left in [2, 1, 0] {
        let (s, hdrs, body) = h.bearer("GET", "/pass/x", &key).await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(header(&hdrs, "ratelimit-policy"), r#""quota";q=3;w=86400"#);
        assert!(
            header(&hdrs, "ratelimit").starts_with(&format!(r#""quota";r={left};t="#)),
            "{hdrs:?}"
        );
    }
    let hits = h.upstream_hits();
    let (s, hdrs, body) = h.bearer("GET", "/pass/x", &key).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exhausted");
    let retry: u64 = header(&hdrs, "retry-after").parse().unwrap();
    assert!((1..=86_400).contains(&retry), "retry-after {retry}");
    assert_eq!(
        h.upstream_hits(),
        hits,
        "a refused request never reaches the upstream"
    );

    // The next UTC day is a new window.
    clock.advance(i64::try_from(retry).unwrap() * 1000);
    let (s, _, body) = status_of(&h, "/pass/x", &key).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_cost_and_an_account_quota_shared_by_its_keys() {
    let h = Harness::start(METERED).await;
    let org = h.create_org("acme").await;
    let (account, first) = h
        .create_account_with(json!({
            "organization_id": org,
            "name": "metered",
            "quota": {"limit": 12, "period": "none"},
        }))
        .await;
    let (_, second) = key_with(&h, &account, json!({})).await;

    assert_eq!(
        h.bearer("GET", "/metered/a", &first).await.0,
        StatusCode::OK
    );
    assert_eq!(
        h.bearer("GET", "/metered/b", &second).await.0,
        StatusCode::OK
    );
    // 10 spent: another 5 does not fit, from either key…
    let (s, _, body) = h.bearer("GET", "/metered/c", &first).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exhausted");
    // …but a cost-1 route still does, twice.
    assert_eq!(h.bearer("GET", "/pass/a", &second).await.0, StatusCode::OK);
    let (s, hdrs, _) = h.bearer("GET", "/pass/b", &first).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&hdrs, "ratelimit-policy"), r#""quota";q=12"#);
    assert_eq!(header(&hdrs, "retry-after"), "");
    let (s, hdrs, _) = h.bearer("GET", "/pass/c", &first).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        header(&hdrs, "retry-after"),
        "",
        "a fixed number of uses never turns"
    );

    // Raising it admits more at once; lowering it below what was spent
    // refuses from then on, and is no error.
    let patch = |body: Value| {
        let h = &h;
        let path = format!("/v1/service-accounts/{account}");
        async move { h.admin("PATCH", &path, Some(body)).await }
    };
    let (s, _, body) = patch(json!({"quota": {"limit": 13, "period": "none"}})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["quota"]["limit"], 13);
    assert_eq!(h.bearer("GET", "/pass/d", &first).await.0, StatusCode::OK);
    let (s, _, body) = patch(json!({"quota": {"limit": 2, "period": "none"}})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        h.bearer("GET", "/pass/e", &first).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A reset starts the window afresh; removing the quota lifts it.
    let (s, _, body) = patch(json!({"reset_quota": true})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert!(body["quota"]["reset_at"].is_string(), "{body}");
    assert_eq!(h.bearer("GET", "/pass/f", &first).await.0, StatusCode::OK);
    assert_eq!(h.bearer("GET", "/pass/g", &first).await.0, StatusCode::OK);
    assert_eq!(
        h.bearer("GET", "/pass/h", &first).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    let (s, _, _) = patch(json!({"quota": null})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.bearer("GET", "/pass/i", &first).await.0, StatusCode::OK);

    // The usage report: per day and route, admitted and refused by reason.
    let (s, _, usage) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{account}/usage"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{usage}");
    // Counted in memory and flushed in batches: wait for the flush.
    let started = Instant::now();
    let mut usage = usage;
    while row_of(&usage, "metered").is_none_or(|r| r["admitted"] != 2) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never flushed: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        usage = h
            .admin(
                "GET",
                &format!("/v1/service-accounts/{account}/usage"),
                None,
            )
            .await
            .2;
    }
    let metered = row_of(&usage, "metered").unwrap();
    assert_eq!(metered["quota_spent"], 10, "{usage}");
    assert_eq!(metered["refused"]["quota_exhausted"], 1, "{usage}");
    let pass = row_of(&usage, "pass").unwrap();
    assert_eq!(pass["admitted"], 6, "{usage}");
    assert_eq!(pass["refused"]["quota_exhausted"], 3, "{usage}");

    // Bad input names the field.
    for (body, param) in [
        (
            json!({"quota": {"limit": 0, "period": "day"}}),
            "quota.limit",
        ),
        (
            json!({"quota": {"limit": -1, "period": "day"}}),
            "quota.limit",
        ),
        (
            json!({"quota": {"limit": 1.5, "period": "day"}}),
            "quota.limit",
        ),
        (
            json!({"quota": {"limit": "10", "period": "day"}}),
            "quota.limit",
        ),
        (
            json!({"quota": {"limit": 10, "period": "week"}}),
            "quota.period",
        ),
        (json!({"quota": {"limit": 10}}), "quota"),
    ] {
        let (s, _, err) = patch(body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {err}");
        let said = err["error"]["param"]
            .as_str()
            .unwrap_or_default()
            .to_string()
            + err["error"]["message"].as_str().unwrap_or_default();
        assert!(said.contains(param), "{body}: {err}");
    }
    for q in [
        "from=yesterday",
        "from=2026-12-05&to=2026-12-01",
        "from=2020-01-01&to=2026-01-01",
    ] {
        let (s, _, err) = h
            .admin(
                "GET",
                &format!("/v1/service-accounts/{account}/usage?{q}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {err}");
    }
}

fn row_of(usage: &Value, route: &str) -> Option<Value> {
    usage["days"]
        .as_array()?
        .iter()
        .find(|d| d["route"] == route)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_spent_survives_a_restart_and_reaches_another_replica() {
    let mut h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, _) = h.create_account(&org, &[]).await;
    let (_, key) = key_with(
        &h,
        &account,
        json!({"quota": {"limit": 3, "period": "month"}}),
    )
    .await;
    for n in 1..=3 {
        assert_eq!(
            h.bearer("GET", &format!("/pass/{n}"), &key).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        h.bearer("GET", "/pass/4", &key).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Spending is flushed to the store in batches: another replica reads
    // it there (at start, and after each of its own flushes) and refuses too.
    let b = h.boot_replica().await;
    let auth = format!("Bearer {key}");
    let started = Instant::now();
    loop {
        let (s, _, _) = h
            .send_to(
                b.public_addr(),
                "GET",
                "/pass/b",
                &[("authorization", &auth)],
            )
            .await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the replica never saw the spending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.shutdown().await;

    h.restart().await;
    let (s, _, body) = h.bearer("GET", "/pass/3", &key).await;
    assert_eq!(
        s,
        StatusCode::TOO_MANY_REQUESTS,
        "restart reset the quota: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_can_do_less_than_its_account_and_only_from_its_addresses() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, _) = h
        .create_account(&org, &["orders:read", "orders:write"])
        .await;
    let (key_id, reader) = key_with(&h, &account, json!({"scopes": ["orders:read"]})).await;
    assert_eq!(
        h.bearer("GET", "/orders/1", &reader).await.0,
        StatusCode::OK
    );
    let (s, _, body) = h.bearer("POST", "/orders/1", &reader).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_scope");

    // Bound to another network: refused from loopback, whatever it claims.
    let (_, elsewhere) = key_with(&h, &account, json!({"allowed_cidrs": ["10.0.0.0/8"]})).await;
    let auth = format!("Bearer {elsewhere}");
    for spoof in [
        vec![("authorization", auth.as_str())],
        vec![
            ("authorization", auth.as_str()),
            ("x-forwarded-for", "10.1.2.3"),
        ],
        vec![("authorization", auth.as_str()), ("x-real-ip", "10.1.2.3")],
        vec![
            ("authorization", auth.as_str()),
            ("forwarded", "for=10.1.2.3"),
        ],
    ] {
        let (s, _, body) = h.proxy("GET", "/orders/1", &spoof).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{spoof:?}: {body}");
        assert_eq!(body["error"]["code"], "address_not_allowed");
    }
    let (_, here) = key_with(&h, &account, json!({"allowed_cidrs": ["127.0.0.1"]})).await;
    assert_eq!(h.bearer("GET", "/orders/1", &here).await.0, StatusCode::OK);

    // The key's own view shows what it narrows; PATCH widens it back.
    let path = format!("/v1/service-accounts/{account}/api-keys/{key_id}");
    let (s, _, body) = h.admin("GET", &path, None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["scopes"], json!(["orders:read"]));
    let (s, _, body) = h.admin("PATCH", &path, Some(json!({"scopes": null}))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        h.bearer("POST", "/orders/1", &reader).await.0,
        StatusCode::OK
    );

    // An account narrowed later narrows its keys too.
    let (s, _, _) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(json!({"scopes": ["orders:write"]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, writer) = key_with(&h, &account, json!({"scopes": ["orders:write"]})).await;
    assert_eq!(
        h.bearer("GET", "/orders/1", &writer).await.0,
        StatusCode::FORBIDDEN
    );

    // Bad input names the field; nothing is written.
    for (body, param) in [
        (json!({"scopes": ["orders:read"]}), "scopes"),
        (json!({"scopes": ["keygate:admin"]}), "scopes"),
        (json!({"allowed_cidrs": ["10.0.0.0/33"]}), "allowed_cidrs"),
        (json!({"allowed_cidrs": ["example.com"]}), "allowed_cidrs"),
        (json!({"allowed_cidrs": []}), "allowed_cidrs"),
        (
            json!({"quota": {"limit": 0, "period": "day"}}),
            "quota.limit",
        ),
    ] {
        let (s, _, err) = h
            .admin(
                "POST",
                &format!("/v1/service-accounts/{account}/api-keys"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {err}");
        let said = format!("{} {}", err["error"]["param"], err["error"]["message"]);
        assert!(said.contains(param), "{body}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_for_other_proxies_spend_quotas_and_judge_the_original_client() {
    let h = Harness::start_with(None, "", &[("KEYGATE_DECISION__LISTEN", "127.0.0.1:0")]).await;
    let org = h.create_org("acme").await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let (_, key) = key_with(
        &h,
        &account,
        json!({"allowed_cidrs": ["203.0.113.0/24"], "quota": {"limit": 2, "period": "day"}}),
    )
    .await;
    let auth = format!("Bearer {key}");
    let ask = |client: &'static str| {
        let (h, auth) = (&h, auth.clone());
        async move {
            let headers = [
                ("authorization", auth.as_str()),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/orders/1"),
                ("x-forwarded-for", client),
            ];
            crate::support::send(
                &h.client,
                h.decision_addr(),
                "GET",
                "/authz",
                &headers,
                Vec::new(),
            )
            .await
        }
    };
    // The asking proxy names the original client: that is who is judged.
    let (s, _, body) = ask("198.51.100.9").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "address_not_allowed");
    assert_eq!(ask("203.0.113.7").await.0, StatusCode::OK);
    let (s, hdrs, _) = ask("203.0.113.8").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        header(&hdrs, "ratelimit").contains(r#""quota";r=0"#),
        "{hdrs:?}"
    );
    let (s, _, body) = ask("203.0.113.7").await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "quota_exhausted");
    // What was decided is spent: the proxy refuses the same key too (from
    // loopback it is refused for its address first).
    assert_eq!(
        h.bearer("GET", "/orders/1", &key).await.0,
        StatusCode::FORBIDDEN
    );
}
