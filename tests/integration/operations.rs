//! Operating keygate: upstream timeouts, usage tracking across restarts, and
//! the CLI verbs against a running admin API.

use std::process::Command;
use std::time::Instant;

use http::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_upstream_is_504_after_request_timeout() {
    // Accepts connections and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let h = Harness::start(&format!(
        "[[routes]]\nname = \"silent\"\nprefix = \"/silent\"\nupstream = \"http://127.0.0.1:{port}\"\npublic = true\n"
    ))
    .await;
    let started = Instant::now();
    let (status, _, body) = h.proxy("GET", "/silent/x", &[]).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], "upstream_timeout");
    // request_timeout is 2s in the harness: not answered early, not hung.
    let waited = started.elapsed().as_secs_f64();
    assert!((1.9..10.0).contains(&waited), "waited {waited}s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_at_is_recorded_in_batches_and_survives_restart() {
    let mut h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let path = format!("/v1/service-accounts/{account}");
    let (_, _, before) = h.admin("GET", &path, None).await;
    assert_eq!(before["last_used_at"], Value::Null);

    assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);
    // Batched, never on the request path; shutdown flushes what is pending.
    h.restart().await;
    let (_, _, after) = h.admin("GET", &path, None).await;
    assert!(after["last_used_at"].is_string(), "{after}");
    let (_, _, keys) = h.admin("GET", &format!("{path}/api-keys"), None).await;
    assert!(keys["data"][0]["last_used_at"].is_string(), "{keys}");
}

/// Runs the keygate binary with `args` against the harness's admin API.
pub(crate) async fn cli(h: &Harness, args: &[&str]) -> (bool, Value, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
    cmd.arg("--admin-url")
        .arg(format!("http://{}", h.admin_addr()))
        .args(args)
        .env("KEYGATE_ADMIN_KEY", &h.admin_key);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or(Value::String(stdout));
    (
        out.status.success(),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verbs_manage_accounts_and_print_the_key_once() {
    let h = Harness::start("").await;
    let (ok, org, err) = cli(&h, &["org", "create", "--name", "cli-org"]).await;
    assert!(ok, "{err}");
    let org = org["id"].as_str().unwrap().to_string();

    let (ok, account, err) = cli(
        &h,
        &[
            "account",
            "create",
            "--org",
            &org,
            "--name",
            "cli-bot",
            "--scope",
            "orders:read",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let id = account["id"].as_str().unwrap().to_string();
    let key = account["api_key"]["value"].as_str().unwrap().to_string();
    let key_id = account["api_key"]["id"].as_str().unwrap().to_string();
    assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);

    let (ok, listed, _) = cli(&h, &["key", "list", &id]).await;
    assert!(ok);
    assert!(
        !listed.to_string().contains(&key),
        "a listing must never show the key"
    );

    let (ok, _, err) = cli(&h, &["key", "revoke", &id, &key_id]).await;
    assert!(ok, "{err}");
    assert_eq!(
        h.bearer("GET", "/orders/1", &key).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Errors go to stderr with the API's message and a failing exit status.
    let (ok, _, err) = cli(
        &h,
        &["account", "get", "00000000-0000-0000-0000-000000000000"],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("404") && err.contains("not found"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_verbs_issue_narrowed_keys_and_manage_quotas() {
    let h = Harness::start("").await;
    let org = h.create_org("cli-quotas").await;
    let (account, _) = h
        .create_account(&org, &["orders:read", "orders:write"])
        .await;
    let (ok, key, err) = cli(
        &h,
        &[
            "key",
            "issue",
            &account,
            "--scope",
            "orders:read",
            "--allowed-cidr",
            "127.0.0.0/8",
            "--quota",
            "2/day",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(key["scopes"], serde_json::json!(["orders:read"]));
    assert_eq!(key["quota"]["limit"], 2);
    let value = key["value"].as_str().unwrap().to_string();
    let key_id = key["id"].as_str().unwrap().to_string();
    assert_eq!(
        h.bearer("POST", "/orders/1", &value).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(h.bearer("GET", "/orders/1", &value).await.0, StatusCode::OK);
    assert_eq!(h.bearer("GET", "/orders/2", &value).await.0, StatusCode::OK);
    assert_eq!(
        h.bearer("GET", "/orders/3", &value).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );

    let (ok, _, err) = cli(&h, &["quota", "reset", &account, "--key", &key_id]).await;
    assert!(ok, "{err}");
    assert_eq!(h.bearer("GET", "/orders/4", &value).await.0, StatusCode::OK);
    let (ok, body, err) = cli(&h, &["quota", "set", &account, "10/month"]).await;
    assert!(ok, "{err}");
    assert_eq!(body["quota"]["period"], "month");
    let (ok, usage, err) = cli(&h, &["quota", "usage", &account]).await;
    assert!(ok, "{err}");
    assert_eq!(usage["service_account_id"], account.as_str());
    // A quota that does not parse is refused before any request, naming why.
    let (ok, _, err) = cli(&h, &["quota", "set", &account, "10/week"]).await;
    assert!(!ok);
    assert!(err.contains("week"), "{err}");
}
