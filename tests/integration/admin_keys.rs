//! The admin API's keys: values shown once and never listed, names and
//! expiries, and keygate JWTs on the admin listener.

use http::StatusCode;
use serde_json::json;

use crate::support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_listing_never_shows_value() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, first) = h.create_account(&org, &["orders:read"]).await;
    let keys_path = format!("/v1/service-accounts/{account}/api-keys");
    let (status, _, body) = h.admin("POST", &keys_path, Some(json!({}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let second = body["value"].as_str().unwrap().to_string();
    assert_ne!(first, second);

    let (status, _, listing) = h.admin("GET", &keys_path, None).await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    let keys = listing["data"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{listing}");
    for key in keys {
        assert!(key.get("value").is_none(), "value listed: {key}");
        assert!(key["id"].is_string(), "{key}");
        let redacted = key["redacted_value"].as_str().unwrap();
        assert!(
            redacted.starts_with("kg") && redacted.len() < first.len(),
            "{redacted}"
        );
        let (first_tail, second_tail) = (&first[first.len() - 4..], &second[second.len() - 4..]);
        assert!(
            redacted.ends_with(first_tail) || redacted.ends_with(second_tail),
            "{redacted}"
        );
    }
    let (_, _, account_body) = h
        .admin("GET", &format!("/v1/service-accounts/{account}"), None)
        .await;
    for text in [listing.to_string(), account_body.to_string()] {
        assert!(
            !text.contains(&first) && !text.contains(&second),
            "secret leaked: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_carry_a_name_and_an_expiry_and_listings_redact_them() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let path = format!("/v1/service-accounts/{account}/api-keys");
    let soon = keygate::clock::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            + 3_600_000,
    );
    let (status, _, made) = h
        .admin(
            "POST",
            &path,
            Some(json!({ "name": "deploy", "expires_at": soon })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["name"], "deploy");
    let value = made["value"].as_str().unwrap();
    assert_eq!(h.key_status(StatusCode::OK, value).await, StatusCode::OK);
    let (_, _, listed) = h.admin("GET", &path, None).await;
    let row = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == made["id"])
        .unwrap()
        .clone();
    assert_eq!(row["name"], "deploy");
    assert!(
        row["expires_at"].is_string()
            && row["last_used_at"].is_null() | row["last_used_at"].is_string()
    );
    let redacted = row["redacted_value"].as_str().unwrap();
    assert!(redacted.starts_with("kg_") && redacted.ends_with(&value[value.len() - 4..]));
    assert!(row.get("value").is_none());
    // A past expiry, or a name that is no name, is refused naming the field.
    for (body, param) in [
        (
            json!({ "expires_at": "2001-01-01T00:00:00Z" }),
            "expires_at",
        ),
        (json!({ "name": "   " }), "name"),
    ] {
        let (status, _, err) = h.admin("POST", &path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
        assert_eq!(err["error"]["param"], param);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keygate_jwt_works_on_the_admin_listener_under_its_accounts_rules() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (owner, _) = h
        .create_account_with(json!({
            "organization_id": org, "name": "owner", "role": "owner", "scopes": ["orders:read"],
        }))
        .await;
    let (status, _, cred) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{owner}/credentials"),
            Some(json!({ "name": "ops" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!(
                "{}:{}",
                cred["client_id"].as_str().unwrap(),
                cred["client_secret"].as_str().unwrap()
            )
        )
    );
    // A token for keygate itself (aud = issuer) …
    let (status, _, tok) = h
        .form(
            "/oauth2/token",
            "grant_type=client_credentials",
            &[("authorization", &basic)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tok}");
    let jwt = tok["access_token"].as_str().unwrap();
    // … manages what its owner account may, and nothing else.
    let (status, _, made) = h
        .admin_as(
            jwt,
            "POST",
            "/v1/service-accounts",
            Some(
                json!({ "organization_id": org, "name": "made-by-jwt", "scopes": ["orders:read"] }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, _, _) = h
        .admin_as(
            jwt,
            "POST",
            "/v1/organizations",
            Some(json!({ "name": "nope" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A token for another audience is not one for keygate.
    let (_, _, other) = h
        .form(
            "/oauth2/token",
            "grant_type=client_credentials&audience=orders-api",
            &[("authorization", &basic)],
        )
        .await;
    let (status, _, _) = h
        .admin_as(
            other["access_token"].as_str().unwrap(),
            "GET",
            "/v1/organizations",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
