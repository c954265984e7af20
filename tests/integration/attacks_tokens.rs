//! The adversarial review's token holes, tried against a running keygate:
//! tokens that revive after being cut off (across a restart too), and
//! revocation used as an amplifier.

use http::StatusCode;
use serde_json::{json, Value};

use crate::jwt::token_for;
use crate::oauth::{basic, client};
use crate::support::{header, Harness};

/// Exchanges `key` for a token for the `orders` route.
async fn exchanged(h: &Harness, key: &str) -> String {
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            &format!(
                "grant_type=urn:ietf:params:oauth:grant-type:token-exchange\
                 &subject_token_type=urn:keygate:params:oauth:token-type:api_key\
                 &subject_token={key}&audience=orders-api"
            ),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

async fn patch(h: &Harness, account: &str, body: Value) {
    let (status, _, res) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{res}");
}

/// 8. A token cut off — by disabling its account, narrowing its scopes,
/// revoking the key or deleting the credential it came from — stays dead
/// after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_off_tokens_stay_dead_across_a_restart() {
    let mut h = Harness::start("").await;
    // Disabled, then enabled again.
    let (account, id, secret) = client(&h, &["orders:read"]).await;
    let disabled = token_for(&h, &id, &secret, "").await;
    patch(&h, &account, json!({ "enabled": false })).await;
    patch(&h, &account, json!({ "enabled": true })).await;
    // Scopes narrowed (the token was minted with both).
    let (narrowed_account, nid, nsecret) = client(&h, &["orders:read", "orders:write"]).await;
    let narrowed = token_for(&h, &nid, &nsecret, "").await;
    patch(&h, &narrowed_account, json!({ "scopes": ["orders:read"] })).await;
    // Minted from an API key that is then revoked.
    let org = h.create_org("keys").await;
    let (key_account, key) = h.create_account(&org, &["orders:read"]).await;
    let from_key = exchanged(&h, &key).await;
    let (_, _, keys) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{key_account}/api-keys"),
            None,
        )
        .await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_string();
    // A second key keeps the account alive: only the first one dies.
    let (_, _, second) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{key_account}/api-keys"),
            Some(json!({})),
        )
        .await;
    let second = second["value"].as_str().unwrap().to_string();
    let status = h
        .admin(
            "DELETE",
            &format!("/v1/service-accounts/{key_account}/api-keys/{key_id}"),
            None,
        )
        .await
        .0;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Minted from a client credential that is then deleted.
    let (cred_account, cid, csecret) = client(&h, &["orders:read"]).await;
    let from_credential = token_for(&h, &cid, &csecret, "").await;
    let (_, _, creds) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{cred_account}/credentials"),
            None,
        )
        .await;
    let cred_row = creds["data"][0]["id"].as_str().unwrap().to_string();
    let status = h
        .admin(
            "DELETE",
            &format!("/v1/service-accounts/{cred_account}/credentials/{cred_row}"),
            None,
        )
        .await
        .0;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let dead = [&disabled, &narrowed, &from_key, &from_credential];
    for round in ["before", "after"] {
        for t in dead {
            let (status, _, body) = h.bearer("GET", "/orders/1", t).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{round} restart: {body}");
        }
        // What was not cut off still works.
        assert_eq!(
            h.bearer("GET", "/orders/1", &second).await.0,
            StatusCode::OK
        );
        let fresh = token_for(&h, &id, &secret, "").await;
        assert_eq!(h.bearer("GET", "/orders/1", &fresh).await.0, StatusCode::OK);
        if round == "before" {
            h.restart().await;
        }
    }
}

async fn revocations(h: &Harness) -> usize {
    let (_, _, events) = h.admin("GET", "/v1/audit-events?limit=100", None).await;
    events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "token.revoke")
        .count()
}

/// 9. Revoking a revoked token writes nothing, and revocations are limited
/// per client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_is_not_an_amplifier() {
    let h = Harness::start("").await;
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    let auth = basic(&id, &secret);
    let token = token_for(&h, &id, &secret, "").await;
    for _ in 0..3 {
        let (status, _, _) = h
            .form(
                "/oauth2/revoke",
                &format!("token={token}"),
                &[("authorization", &auth)],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(revocations(&h).await, 1, "one write for three revocations");

    let mut limited = false;
    for _ in 0..40 {
        let t = token_for(&h, &id, &secret, "").await;
        let (status, hdrs, _) = h
            .form(
                "/oauth2/revoke",
                &format!("token={t}"),
                &[("authorization", &auth)],
            )
            .await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(header(&hdrs, "retry-after").parse::<u64>().unwrap() >= 1);
            limited = true;
            break;
        }
        assert_eq!(status, StatusCode::OK);
    }
    assert!(limited, "revocations per client are limited");
}
