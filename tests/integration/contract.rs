//! `/openapi.json` states what the admin API really accepts: each bound the
//! validation enforces is in the document, and the running API agrees with
//! the document on both sides of it. These are the disagreements
//! schemathesis found (`tests/contract/run.py` fuzzes the whole document);
//! each is pinned here with a real request.

use http::StatusCode;
use regex::Regex;
use serde_json::{json, Value};

use crate::support::Harness;

/// The schema of `field` in the request body of `method path`, references
/// followed.
fn body_field<'a>(doc: &'a Value, method: &str, path: &str, field: &str) -> &'a Value {
    let schema = body_schema(doc, method, path);
    &schema["properties"][field]
}

fn body_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let content = &doc["paths"][path][method]["requestBody"]["content"]["application/json"];
    let schema = &content["schema"];
    match schema["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => schema,
    }
}

fn query_param<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name && p["in"] == "query")
        .unwrap_or_else(|| panic!("{method} {path} has no query parameter {name}"))
}

async fn document(h: &Harness) -> Value {
    let (status, _, doc) = h.send_to(h.admin_addr(), "GET", "/openapi.json", &[]).await;
    assert_eq!(status, StatusCode::OK);
    doc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_size_bounds_are_documented_and_enforced() {
    let h = Harness::start("").await;
    let doc = document(&h).await;
    let org = h.create_org("paged").await;
    let lists = [
        "/v1/organizations".to_string(),
        format!("/v1/organizations/{org}/projects"),
        "/v1/service-accounts".to_string(),
        "/v1/audit-events".to_string(),
        "/v1/webhooks".to_string(),
    ];
    let documented = [
        "/v1/organizations",
        "/v1/organizations/{id}/projects",
        "/v1/service-accounts",
        "/v1/audit-events",
        "/v1/webhooks",
    ];
    for (path, template) in lists.iter().zip(documented) {
        let limit = &query_param(&doc, "get", template, "limit")["schema"];
        assert_eq!(limit["minimum"], 1, "{template}: {limit}");
        assert_eq!(limit["maximum"], 100, "{template}: {limit}");
        for (n, want) in [
            (0, StatusCode::BAD_REQUEST),
            (1, StatusCode::OK),
            (100, StatusCode::OK),
            (101, StatusCode::BAD_REQUEST),
        ] {
            let (status, _, body) = h.admin("GET", &format!("{path}?limit={n}"), None).await;
            assert_eq!(status, want, "{path}?limit={n}: {body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_documented_as_validation_reads_them() {
    let h = Harness::start("").await;
    let doc = document(&h).await;
    let org = h.create_org("named").await;
    let name = body_field(&doc, "post", "/v1/organizations/{id}/projects", "name");
    assert_eq!(name["minLength"], 1, "{name}");
    assert_eq!(name["maxLength"], 255, "{name}");
    let pattern = Regex::new(name["pattern"].as_str().expect("a pattern")).unwrap();
    // The same schema wherever a name is sent.
    for (method, path) in [
        ("post", "/v1/organizations"),
        ("patch", "/v1/organizations/{id}"),
        ("patch", "/v1/projects/{id}"),
        ("post", "/v1/service-accounts"),
        ("patch", "/v1/service-accounts/{id}"),
        ("post", "/v1/service-accounts/{id}/api-keys"),
        ("post", "/v1/service-accounts/{id}/credentials"),
        ("patch", "/v1/service-accounts/{id}/credentials/{cid}"),
    ] {
        let other = body_field(&doc, method, path, "name");
        assert_eq!(other["pattern"], name["pattern"], "{method} {path}");
        assert_eq!(other["maxLength"], 255, "{method} {path}");
    }
    let samples = [
        "a".to_string(),
        String::new(),
        " ".into(),
        "\u{3000}\u{a0}\t".into(),
        " padded ".into(),
        "tab\there".into(),
        "bell\u{7}".into(),
        "c1\u{85}".into(),
        "newline\n".into(),
        "\u{feff}".into(),
        "\u{200b}".into(),
        "x".repeat(255),
        "x".repeat(256),
        format!("{} ", "x".repeat(255)),
        "é日本".into(),
    ];
    for (i, sample) in samples.iter().enumerate() {
        let valid = pattern.is_match(sample) && sample.chars().count() <= 255;
        // Unique within the organization, so a 409 cannot hide the answer.
        let (status, _, body) = h
            .admin(
                "POST",
                &format!("/v1/organizations/{org}/projects"),
                Some(json!({ "name": sample })),
            )
            .await;
        let accepted = status == StatusCode::CREATED;
        assert!(
            accepted || status == StatusCode::BAD_REQUEST,
            "sample {i}: {status} {body}"
        );
        assert_eq!(
            accepted, valid,
            "sample {i} {sample:?}: document says {valid}, API answered {status} {body}"
        );
        if !accepted {
            assert_eq!(body["error"]["param"], "name", "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_without_required_fields_is_documented_as_optional() {
    let h = Harness::start("").await;
    let doc = document(&h).await;
    let mut optional = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(body) = op.get("requestBody") else {
                continue;
            };
            let required_fields = body_schema(&doc, method, path)["required"]
                .as_array()
                .map_or(0, Vec::len);
            let body_required = body["required"].as_bool().unwrap_or(false);
            assert_eq!(
                body_required,
                required_fields > 0,
                "{method} {path}: body required = {body_required}, {required_fields} required fields"
            );
            optional += usize::from(!body_required);
        }
    }
    assert!(optional >= 5, "only {optional} optional bodies");
    // And the API does what the document says, both ways.
    let (status, _, body) = h
        .admin_raw(
            Some(&h.admin_key),
            "POST",
            "/v1/signing-keys/rotate",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = h
        .admin_raw(Some(&h.admin_key), "POST", "/v1/organizations", vec![])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "name", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_counts_take_whole_numbers_up_to_the_documented_maximum() {
    let h = Harness::start("").await;
    let doc = document(&h).await;
    let org = h.create_org("seconds").await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let rotate = format!("/v1/service-accounts/{account}/rotate-api-key");
    let grace = body_field(
        &doc,
        "post",
        "/v1/service-accounts/{id}/rotate-api-key",
        "grace_period_seconds",
    );
    assert_eq!(grace["type"], "integer", "{grace}");
    assert_eq!(grace["maximum"], 2_592_000, "{grace}");
    let activation = body_field(
        &doc,
        "post",
        "/v1/signing-keys/rotate",
        "activate_after_seconds",
    );
    assert_eq!(activation["type"], "integer", "{activation}");
    assert_eq!(activation["maximum"], 604_800, "{activation}");

    // JSON Schema's integer: 30.0 is one, 30.5 and -1 are not.
    for (grace, want) in [
        (json!(30.0), StatusCode::OK),
        (json!(2_592_000), StatusCode::OK),
        (json!(2_592_001), StatusCode::BAD_REQUEST),
        (json!(30.5), StatusCode::BAD_REQUEST),
        (json!(-1), StatusCode::BAD_REQUEST),
        (json!(1e300), StatusCode::BAD_REQUEST),
        (json!("30"), StatusCode::BAD_REQUEST),
    ] {
        let (status, _, body) = h
            .admin(
                "POST",
                &rotate,
                Some(json!({ "grace_period_seconds": grace })),
            )
            .await;
        assert_eq!(status, want, "grace {grace}: {body}");
        if want == StatusCode::BAD_REQUEST {
            assert_eq!(body["error"]["param"], "grace_period_seconds", "{body}");
        }
    }
    for (after, want) in [
        (json!(60.0), StatusCode::CREATED),
        (json!(604_801), StatusCode::BAD_REQUEST),
        (json!(0.25), StatusCode::BAD_REQUEST),
    ] {
        let (status, _, body) = h
            .admin(
                "POST",
                "/v1/signing-keys/rotate",
                Some(json!({ "activate_after_seconds": after })),
            )
            .await;
        assert_eq!(status, want, "activate_after_seconds {after}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_filters_accept_only_what_the_document_lists() {
    let h = Harness::start("").await;
    let doc = document(&h).await;
    let state = &query_param(&doc, "get", "/v1/service-accounts", "state")["schema"];
    let states: Vec<&str> = state["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("state is an enum: {state}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(states, ["active", "disabled", "expired", "closed"]);
    let after = &query_param(&doc, "get", "/v1/service-accounts", "after")["schema"];
    assert_eq!(after["format"], "uuid", "{after}");
    for (query, want, param) in [
        ("state=active", StatusCode::OK, ""),
        ("state=", StatusCode::BAD_REQUEST, "state"),
        ("after=", StatusCode::BAD_REQUEST, "after"),
        (
            "organization_id=",
            StatusCode::BAD_REQUEST,
            "organization_id",
        ),
    ] {
        let (status, _, body) = h
            .admin("GET", &format!("/v1/service-accounts?{query}"), None)
            .await;
        assert_eq!(status, want, "{query}: {body}");
        if !param.is_empty() {
            assert_eq!(body["error"]["param"], param, "{body}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_scopes_are_documented_as_parsed() {
    let h = Harness::start("").await;
    let doc = document(&h).await;
    let org = h.create_org("rated").await;
    let rate = body_field(&doc, "post", "/v1/service-accounts", "rate_limit");
    let pattern = Regex::new(rate["pattern"].as_str().expect("a pattern")).unwrap();
    let scopes = body_field(&doc, "post", "/v1/service-accounts", "scopes");
    assert_eq!(scopes["maxItems"], 100, "{scopes}");
    let scope = Regex::new(scopes["items"]["pattern"].as_str().unwrap()).unwrap();
    for (i, sample) in [
        "10/s",
        "1/m burst 5",
        "999999999/h",
        "",
        "0/s",
        "10/d",
        "10/s burst 0",
    ]
    .iter()
    .enumerate()
    {
        let (status, _, body) = h
            .admin(
                "POST",
                "/v1/service-accounts",
                Some(json!({
                    "organization_id": org,
                    "name": format!("rate-{i}"),
                    "rate_limit": sample,
                })),
            )
            .await;
        assert_eq!(
            status == StatusCode::CREATED,
            pattern.is_match(sample),
            "{sample:?}: {status} {body}"
        );
    }
    for (i, sample) in ["orders:read", "", "with space", &"s".repeat(129), "é"]
        .iter()
        .enumerate()
    {
        let (status, _, body) = h
            .admin(
                "POST",
                "/v1/service-accounts",
                Some(json!({
                    "organization_id": org,
                    "name": format!("scoped-{i}"),
                    "scopes": [sample],
                })),
            )
            .await;
        assert_eq!(
            status == StatusCode::CREATED,
            scope.is_match(sample),
            "{sample:?}: {status} {body}"
        );
    }
}
