//! The admin listener: authentication, authorization by role, validation and listings.
//!
//! Slightly over the ~400-line guideline: one scenario per test, sharing
//! the error-shape helpers at the top.

use std::collections::HashSet;

use http::StatusCode;
use serde_json::{json, Value};

use crate::support::{account_and_key, header, Harness};

/// Asserts the `{"error":{type,code,message,param}}` shape and returns the inner object.
fn error_of(body: &Value) -> &Value {
    let error = &body["error"];
    assert!(error.is_object(), "error body: {body}");
    assert!(error["type"].is_string(), "error.type: {body}");
    assert!(error["message"].is_string(), "error.message: {body}");
    error
}

/// Creates an account in `org` with `role` as the admin; returns (id, key).
async fn account_with_role(h: &Harness, org: &str, role: &str) -> (String, String) {
    h.create_account_with(json!({
        "organization_id": org,
        "name": h.unique_name(),
        "role": role,
        "scopes": ["orders:read"],
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_need_a_credential() {
    let h = Harness::start("").await;
    for path in ["/v1/organizations", "/v1/service-accounts"] {
        let (status, _, body) = h.admin_raw(None, "GET", path, Vec::new()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        error_of(&body);
        let (status, _, body) = h.admin_as("kg_nope", "GET", path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        error_of(&body);
    }
    let (status, _, body) = h
        .admin_raw(
            None,
            "POST",
            "/v1/organizations",
            br#"{"name":"x"}"#.to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, body) = h.admin("GET", "/v1/organizations", None).await;
    assert_eq!(status, StatusCode::OK, "the admin key works: {body}");
    assert!(body["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o["name"] != "x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_need_no_credential() {
    let h = Harness::start("").await;
    for path in ["/healthz", "/readyz"] {
        let (status, _, body) = h.admin_raw(None, "GET", path, Vec::new()).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_is_not_served_on_public_listener() {
    let h = Harness::start("").await;
    for path in ["/v1/organizations", "/healthz", "/metrics"] {
        let (status, _, body) = h.bearer("GET", path, &h.admin_key).await;
        assert!(
            !status.is_success(),
            "{path} answered {status} on the public listener: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_owner_cannot_see_other_org() {
    let h = Harness::start("").await;
    let org_a = h.create_org("org-a").await;
    let org_b = h.create_org("org-b").await;
    let (_, owner_key) = account_with_role(&h, &org_a, "owner").await;
    let (b_account, _) = h.create_account(&org_b, &["orders:read"]).await;
    let b_path = format!("/v1/service-accounts/{b_account}");

    let (status, _, body) = h.admin_as(&owner_key, "GET", &b_path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        !body.to_string().contains(&org_b),
        "no data from org B: {body}"
    );
    let patch = json!({"description": "owned"});
    let (status, _, body) = h.admin_as(&owner_key, "PATCH", &b_path, Some(patch)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = h.admin_as(&owner_key, "DELETE", &b_path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _, body) = h
        .admin_as(
            &owner_key,
            "GET",
            &format!("/v1/organizations/{org_b}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // Nothing happened to B's account.
    let (status, _, body) = h.admin("GET", &b_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "active", "{body}");
    assert_ne!(body["description"], "owned", "{body}");

    // The owner's listing holds only its own organization.
    let (status, _, body) = h
        .admin_as(&owner_key, "GET", "/v1/service-accounts?limit=100", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed = body["data"].as_array().unwrap();
    assert!(!listed.is_empty(), "the owner itself is listed: {body}");
    for item in listed {
        assert_eq!(item["organization_id"], org_a.as_str(), "{item}");
    }

    // It can manage its own organization, and the account it makes works.
    let create =
        json!({"organization_id": org_a, "name": "made-by-owner", "scopes": ["orders:read"]});
    let (status, _, body) = h
        .admin_as(&owner_key, "POST", "/v1/service-accounts", Some(create))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (made, made_key) = account_and_key(&body);
    assert_eq!(body["organization_id"], org_a.as_str());
    assert!(h.account_ids(&org_a).await.contains(&made));
    assert_eq!(
        h.key_status(StatusCode::OK, &made_key).await,
        StatusCode::OK
    );

    // ...but not create in another one.
    let create = json!({"organization_id": org_b, "name": "intruder", "scopes": []});
    let (status, _, body) = h
        .admin_as(&owner_key, "POST", "/v1/service-accounts", Some(create))
        .await;
    assert!(matches!(status.as_u16(), 403 | 404), "{status}: {body}");
    assert_eq!(h.account_ids(&org_b).await, vec![b_account]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_gets_403() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (member, member_key) = account_with_role(&h, &org, "member").await;
    let before = h.account_ids(&org).await;

    let (status, _, body) = h
        .admin_as(&member_key, "GET", "/v1/service-accounts", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    error_of(&body);
    let create = json!({"organization_id": org, "name": "by-member", "scopes": []});
    let (status, _, body) = h
        .admin_as(&member_key, "POST", "/v1/service-accounts", Some(create))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let path = format!("/v1/service-accounts/{member}");
    let (status, _, body) = h
        .admin_as(
            &member_key,
            "PATCH",
            &path,
            Some(json!({"scopes": ["keygate:admin"]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(h.account_ids(&org).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_owner_cannot_grant_admin_scope() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, owner_key) = account_with_role(&h, &org, "owner").await;
    let (member, _) = h.create_account(&org, &["orders:read"]).await;
    let before = h.account_ids(&org).await;

    let create = json!({"organization_id": org, "name": "escalate", "scopes": ["keygate:admin"]});
    let (status, _, body) = h
        .admin_as(&owner_key, "POST", "/v1/service-accounts", Some(create))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(h.account_ids(&org).await, before, "nothing written");

    let path = format!("/v1/service-accounts/{member}");
    let patch = json!({"scopes": ["keygate:admin"]});
    let (status, _, body) = h.admin_as(&owner_key, "PATCH", &path, Some(patch)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (_, _, body) = h.admin("GET", &path, None).await;
    assert_eq!(body["scopes"], json!(["orders:read"]), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_400() {
    let h = Harness::start("").await;
    let (status, _, body) = h
        .admin_raw(
            Some(h.admin_key.as_str()),
            "POST",
            "/v1/organizations",
            br#"{"name": "#.to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    error_of(&body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_field_is_400_naming_it() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let body =
        json!({"organization_id": org, "name": "x", "scopes": [], "favourite_colour": "blue"});
    let (status, _, body) = h.admin("POST", "/v1/service-accounts", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_of(&body)["message"].as_str().unwrap();
    assert!(message.contains("favourite_colour"), "{message}");
    assert!(h.account_ids(&org).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_name_is_400() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let body = json!({"organization_id": org, "name": "", "scopes": []});
    let (status, _, body) = h.admin("POST", "/v1/service-accounts", Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body)["param"], "name", "{body}");

    let (status, _, body) = h
        .admin("POST", "/v1/organizations", Some(json!({"name": ""})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body)["param"], "name", "{body}");
    assert!(h.account_ids(&org).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_name_is_409_and_nothing_written() {
    let h = Harness::start("").await;
    let org_a = h.create_org("org-a").await;
    let org_b = h.create_org("org-b").await;
    let dup = |org: &str| json!({"organization_id": org, "name": "dup", "scopes": []});
    h.create_account_with(dup(org_a.as_str())).await;
    let before = h.account_ids(&org_a).await;

    let (status, _, body) = h
        .admin("POST", "/v1/service-accounts", Some(dup(org_a.as_str())))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_of(&body)["code"], "duplicate_name", "{body}");
    assert_eq!(h.account_ids(&org_a).await, before, "nothing written");

    // Names are unique per organization only.
    let (status, _, body) = h
        .admin("POST", "/v1/service-accounts", Some(dup(org_b.as_str())))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let body = json!({
        "organization_id": org,
        "name": "big",
        "description": "x".repeat(70 * 1024),
        "scopes": [],
    });
    let (status, _, body) = h.admin("POST", "/v1/service-accounts", Some(body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(h.account_ids(&org).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_all_pages() {
    let h = Harness::start("").await;
    let org = h.create_org("paged").await;
    let other = h.create_org("other").await;
    h.create_account(&other, &[]).await;
    let mut created = HashSet::new();
    for _ in 0..5 {
        created.insert(h.create_account(&org, &[]).await.0);
    }

    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = format!("/v1/service-accounts?organization_id={org}&limit=2");
        if let Some(cursor) = &after {
            path.push_str(&format!("&after={cursor}"));
        }
        let (status, _, body) = h.admin("GET", &path, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let data = body["data"].as_array().unwrap();
        assert!(data.len() <= 2, "page over limit: {body}");
        seen.extend(data.iter().map(|a| a["id"].as_str().unwrap().to_string()));
        pages += 1;
        assert!(pages <= 5, "pagination does not terminate");
        if body["has_more"] == json!(true) {
            after = Some(body["next_cursor"].as_str().unwrap().to_string());
        } else {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5, "each account exactly once: {seen:?}");
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), created);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_id_is_404() {
    let h = Harness::start("").await;
    let missing = uuid::Uuid::new_v4();
    for path in [
        format!("/v1/service-accounts/{missing}"),
        format!("/v1/organizations/{missing}"),
        format!("/v1/projects/{missing}"),
    ] {
        let (status, _, body) = h.admin("GET", &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        error_of(&body);
    }
    let (status, _, body) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{missing}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_revision_header() {
    let h = Harness::start("").await;
    let revision = |headers: &http::HeaderMap| -> u64 {
        let raw = header(headers, "x-keygate-revision");
        raw.parse()
            .unwrap_or_else(|_| panic!("X-Keygate-Revision {raw:?}"))
    };

    let (status, headers, org) = h
        .admin("POST", "/v1/organizations", Some(json!({"name": "acme"})))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let r1 = revision(&headers);
    let create = json!({"organization_id": org["id"], "name": "rev", "scopes": []});
    let (status, headers, account) = h.admin("POST", "/v1/service-accounts", Some(create)).await;
    assert_eq!(status, StatusCode::CREATED);
    let r2 = revision(&headers);
    let path = format!("/v1/service-accounts/{}", account["id"].as_str().unwrap());
    let (status, headers, _) = h
        .admin("PATCH", &path, Some(json!({"enabled": false})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let r3 = revision(&headers);
    let (status, headers, _) = h.admin("DELETE", &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let r4 = revision(&headers);
    assert!(
        r1 < r2 && r2 < r3 && r3 < r4,
        "revisions {r1} {r2} {r3} {r4}"
    );
}

/// `GET /v1/audit-events?service_account_id=`: what the account did, what
/// was done to it, and to its keys and credentials — no other account's;
/// another organization's account answers 404 to an owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_events_filter_by_account() {
    let h = Harness::start("").await;
    let org = h.create_org("audited").await;
    let (owner, owner_key) = h
        .create_account_with(json!({
            "organization_id": org, "name": "boss", "role": "owner", "scopes": ["orders:read"],
        }))
        .await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let (other, _) = h.create_account(&org, &["orders:read"]).await;
    let (status, _, key) = h
        .admin_as(
            &owner_key,
            "POST",
            &format!("/v1/service-accounts/{account}/api-keys"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let key_id = key["id"].as_str().unwrap();
    h.admin(
        "DELETE",
        &format!("/v1/service-accounts/{account}/api-keys/{key_id}"),
        None,
    )
    .await;
    h.admin(
        "POST",
        &format!("/v1/service-accounts/{other}/credentials"),
        Some(json!({"name": "ci"})),
    )
    .await;
    let actions = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, _, body) = h
        .admin(
            "GET",
            &format!("/v1/audit-events?service_account_id={account}&limit=100"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        actions(&body),
        ["service_account.create", "api_key.create", "api_key.revoke"],
        "{body}"
    );
    // The owner's own: its creation, and the key it issued to another.
    let (_, _, body) = h
        .admin_as(
            &owner_key,
            "GET",
            &format!("/v1/audit-events?service_account_id={owner}"),
            None,
        )
        .await;
    assert_eq!(actions(&body), ["service_account.create", "api_key.create"]);
    // Another organization's account: not found for the owner.
    let elsewhere = h.create_org("elsewhere").await;
    let (stranger, _) = h.create_account(&elsewhere, &[]).await;
    let (status, _, _) = h
        .admin_as(
            &owner_key,
            "GET",
            &format!("/v1/audit-events?service_account_id={stranger}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = h
        .admin("GET", "/v1/audit-events?service_account_id=nope", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "service_account_id");
}
