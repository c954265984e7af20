//! `/openapi.json`: an OpenAPI 3.1 document that parses, whose references
//! resolve, that names every `/v1` operation — and every operation it names
//! is served by the running admin API.

use http::StatusCode;
use serde_json::Value;

use crate::support::Harness;

/// Every operation of the native API, as a client would call it.
const OPERATIONS: &[(&str, &str)] = &[
    ("get", "/v1/organizations"),
    ("post", "/v1/organizations"),
    ("get", "/v1/organizations/{id}"),
    ("patch", "/v1/organizations/{id}"),
    ("delete", "/v1/organizations/{id}"),
    ("get", "/v1/organizations/{id}/projects"),
    ("post", "/v1/organizations/{id}/projects"),
    ("get", "/v1/projects/{id}"),
    ("patch", "/v1/projects/{id}"),
    ("get", "/v1/service-accounts"),
    ("post", "/v1/service-accounts"),
    ("get", "/v1/service-accounts/{id}"),
    ("patch", "/v1/service-accounts/{id}"),
    ("delete", "/v1/service-accounts/{id}"),
    ("get", "/v1/service-accounts/{id}/api-keys"),
    ("post", "/v1/service-accounts/{id}/api-keys"),
    ("get", "/v1/service-accounts/{id}/api-keys/{key_id}"),
    ("patch", "/v1/service-accounts/{id}/api-keys/{key_id}"),
    ("delete", "/v1/service-accounts/{id}/api-keys/{key_id}"),
    ("get", "/v1/service-accounts/{id}/usage"),
    ("post", "/v1/service-accounts/{id}/rotate-api-key"),
    ("get", "/v1/service-accounts/{id}/credentials"),
    ("post", "/v1/service-accounts/{id}/credentials"),
    ("get", "/v1/service-accounts/{id}/credentials/{cid}"),
    ("patch", "/v1/service-accounts/{id}/credentials/{cid}"),
    ("delete", "/v1/service-accounts/{id}/credentials/{cid}"),
    ("post", "/v1/service-accounts/{id}/credentials/{cid}/secret"),
    ("get", "/v1/service-accounts/{id}/federated-identities"),
    ("post", "/v1/service-accounts/{id}/federated-identities"),
    (
        "get",
        "/v1/service-accounts/{id}/federated-identities/{binding_id}",
    ),
    (
        "delete",
        "/v1/service-accounts/{id}/federated-identities/{binding_id}",
    ),
    ("get", "/v1/signing-keys"),
    ("post", "/v1/signing-keys/rotate"),
    ("get", "/v1/audit-events"),
    ("get", "/v1/replicas"),
    ("get", "/v1/webhooks"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks/{id}"),
    ("patch", "/v1/webhooks/{id}"),
    ("delete", "/v1/webhooks/{id}"),
    ("get", "/v1/webhooks/{id}/deliveries"),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every `$ref` in `v`.
fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r);
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_json_describes_every_v1_operation_and_nothing_else() {
    let h = Harness::start("").await;
    // Served without a credential: clients are generated from it.
    let (status, headers, doc) = h.send_to(h.admin_addr(), "GET", "/openapi.json", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        crate::support::header(&headers, "content-type"),
        "application/json"
    );

    // It parses as OpenAPI 3.1.
    let spec = oas3::from_json(doc.to_string()).expect("an OpenAPI document");
    let version = spec
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));

    // Every reference resolves.
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }

    // Exactly the native operations, each with a unique operationId, its
    // path parameters declared, and the bearer scheme.
    let mut described = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !METHODS.contains(&method.as_str()) {
                continue;
            }
            described.push((method.clone(), path.clone()));
            assert!(
                ids.insert(op["operationId"].as_str().unwrap().to_string()),
                "{path}"
            );
            assert_eq!(
                op["security"][0]["bearer"],
                serde_json::json!([]),
                "{method} {path}"
            );
            for param in path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            {
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == param && p["in"] == "path"));
                assert!(declared, "{method} {path}: {{{param}}} is not declared");
            }
            assert!(op["responses"]["401"].is_object(), "{method} {path}");
        }
    }
    described.sort();
    let mut expected: Vec<(String, String)> = OPERATIONS
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(described, expected);

    // Every described operation is served: never the router's "no such
    // route" or 405, whatever the (unknown) ids.
    let id = "00000000-0000-4000-8000-000000000000";
    for (method, path) in OPERATIONS {
        let concrete = path
            .replace("{id}", id)
            .replace("{key_id}", id)
            .replace("{cid}", id);
        let (status, _, body) = h
            .admin_raw(
                Some(&h.admin_key),
                &method.to_uppercase(),
                &concrete,
                b"{}".to_vec(),
            )
            .await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert_ne!(
            body["error"]["message"], "route not found",
            "{method} {path}: {body}"
        );
    }
}
