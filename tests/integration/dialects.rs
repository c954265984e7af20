//! The dialects over real HTTP, for what their official clients (run by
//! `tests/clients/`) do not reach: the client address their failures are
//! charged to, and paging past what one answer holds.

use http::StatusCode;
use serde_json::{json, Value};

use crate::support::Harness;

/// Run:ai's token endpoint charges a failed client authentication to the
/// client a trusted proxy names, as every admin endpoint does: one client
/// guessing secrets is throttled, another behind the same proxy is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialect_failures_are_charged_to_the_client_a_trusted_proxy_names() {
    let h = Harness::start_with(
        None,
        "[rate_limit]\nfailed_auth = \"3/h\"\n",
        &[("KEYGATE_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)],
    )
    .await;
    let guess = |n: u32| {
        serde_json::to_vec(&json!({
            "grantType": "client_credentials",
            "clientID": format!("kgc_nosuchclient{n:06}"),
            "clientSecret": "kgs_wrong",
        }))
        .unwrap()
    };
    let token = |xff: &'static str, n: u32| {
        let body = guess(n);
        let h = &h;
        async move {
            h.admin_with(
                "POST",
                "/compat/runai/api/v1/token",
                &[
                    ("content-type", "application/json"),
                    ("x-forwarded-for", xff),
                ],
                body,
            )
            .await
        }
    };
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.push(token("198.51.100.7", n).await.0);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED, "{statuses:?}");
    assert_eq!(
        *statuses.last().unwrap(),
        StatusCode::TOO_MANY_REQUESTS,
        "{statuses:?}"
    );
    // Another client behind the same proxy has a budget of its own.
    let (status, _, body) = token("203.0.113.9", 99).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], 401, "Run:ai's error shape: {body}");
}

/// Run:ai's list answers one array; `offset` and `limit` page through it,
/// and bad values are refused in Run:ai's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runai_lists_page_by_offset_and_limit() {
    let h = Harness::start("").await;
    let base = "/compat/runai/api/v1/service-accounts";
    for name in ["pager-a", "pager-b", "pager-c"] {
        let (status, _, body) = h.admin("POST", base, Some(json!({ "name": name }))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, _, all) = h.admin("GET", base, None).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let all = ids(&all);
    assert!(all.len() >= 4, "the admin and three accounts: {all:?}");
    let mut paged = Vec::new();
    let mut offset = 0;
    loop {
        let (status, _, page) = h
            .admin("GET", &format!("{base}?offset={offset}&limit=2"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = ids(&page);
        assert!(page.len() <= 2, "{page:?}");
        if page.is_empty() {
            break;
        }
        offset += page.len();
        paged.extend(page);
    }
    assert_eq!(paged, all, "pages in order, none lost or repeated");
    for bad in ["limit=0", "limit=1001", "limit=x", "offset=-1"] {
        let (status, _, body) = h.admin("GET", &format!("{base}?{bad}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["code"], 400, "{bad}: {body}");
    }
}

/// Every account a dialect's list reaches costs one page: the orgs list
/// pages forwards and back over an organization without reading it whole,
/// and a closed account is gone from every dialect's view of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orgs_pages_both_ways_and_closed_accounts_are_gone() {
    let h = Harness::start("").await;
    let org = h.create_org("pages").await;
    let mut made = Vec::new();
    for _ in 0..5 {
        made.push(h.create_account(&org, &[]).await.0);
    }
    let base = format!("/compat/orgs/organizations/{org}/service-accounts");
    let page = |q: String| {
        let h = &h;
        let base = base.clone();
        async move {
            let (status, _, body) = h.admin("GET", &format!("{base}?{q}"), None).await;
            assert_eq!(status, StatusCode::OK, "{q}: {body}");
            let ids: Vec<String> = body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_string())
                .collect();
            (ids, body["page_info"].clone())
        }
    };
    let (first, info) = page("limit=2".into()).await;
    assert_eq!(first, made[..2]);
    assert_eq!(info["has_prev_page"], false);
    assert_eq!(info["has_next_page"], true);
    let (last, info) = page(format!("limit=2&after={}", made[3])).await;
    assert_eq!(last, made[4..]);
    assert_eq!(info["has_next_page"], false);
    assert_eq!(info["has_prev_page"], true);
    let (back, info) = page(format!("limit=2&before={}", made[4])).await;
    assert_eq!(back, made[2..4]);
    assert_eq!(info["has_prev_page"], true);
    assert_eq!(info["has_next_page"], true);

    // Closed through the native API: gone from the orgs dialect, its
    // cursor refused, and not found by id.
    let (status, _, _) = h
        .admin("DELETE", &format!("/v1/service-accounts/{}", made[1]), None)
        .await;
    assert!(status.is_success(), "{status}");
    let (ids, _) = page("limit=10".into()).await;
    assert!(!ids.contains(&made[1]), "{ids:?}");
    let (status, _, body) = h
        .admin("GET", &format!("{base}?after={}", made[1]), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "after", "{body}");
    let (status, _, _) = h.admin("GET", &format!("{base}/{}", made[1]), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// orgs: `description: null` clears it (the API's field is optional), and
/// `expand[]=permissions` answers on create and update as on reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orgs_null_clears_a_description_and_permissions_expand_everywhere() {
    let h = Harness::start("").await;
    let org = h.create_org("expand").await;
    let base = format!("/compat/orgs/organizations/{org}/service-accounts");
    let (status, _, made) = h
        .admin(
            "POST",
            &format!("{base}?expand[]=permissions"),
            Some(json!({ "name": "exp", "description": "first" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["description"], "first");
    assert_eq!(
        made["permissions"]["service_accounts"]["update"], true,
        "{made}"
    );
    let item = format!("{base}/{}", made["id"].as_str().unwrap());
    let (status, _, kept) = h
        .admin("PATCH", &item, Some(json!({ "name": "exp2" })))
        .await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["description"], "first", "absent leaves it: {kept}");
    assert!(kept.get("permissions").is_none(), "{kept}");
    let (status, _, cleared) = h
        .admin(
            "PATCH",
            &format!("{item}?expand[]=permissions"),
            Some(json!({ "description": null })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cleared}");
    assert!(
        cleared["description"].is_null(),
        "null clears it: {cleared}"
    );
    assert_eq!(cleared["permissions"]["service_accounts"]["delete"], true);
    // A description of the wrong type is named.
    let (status, _, body) = h
        .admin("PATCH", &item, Some(json!({ "description": 7 })))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "description", "{body}");
}
