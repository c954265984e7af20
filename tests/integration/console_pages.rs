//! The console's pages over real HTTP: a refused value names its field,
//! typed markup is shown as text, a token opens no session, the signing
//! key that signs is named as the key ring picks it, the cookie is
//! `Secure` on TLS, and an expired session writes nothing.

use http::StatusCode;
use serde_json::json;

use crate::console::{post, sign_in, sign_in_status, text};
use crate::support::{header, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_form_with_a_bad_value_names_the_field_and_writes_nothing() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let s = sign_in(&h, &h.admin_key).await;
    let form = [
        ("csrf", s.csrf.as_str()),
        ("form", "account"),
        ("organization_id", org.as_str()),
        ("name", "fast-one"),
        ("scopes", "orders:read"),
        ("rate_limit", "very fast"),
    ];
    let (status, _, body) = post(
        &h,
        Some(&s.cookie),
        "/console/service-accounts",
        &form,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Rate limit:"), "the field is named: {body}");
    assert!(
        body.contains(r#"name="rate_limit" value="very fast" aria-invalid="true""#),
        "the field is marked and refilled: {body}"
    );
    assert!(
        body.contains(r#"value="fast-one""#),
        "the other fields refilled"
    );
    assert!(h.account_ids(&org).await.is_empty(), "nothing written");
    // An id that is not one: not found, not a 500.
    let (status, _, _) = h
        .admin_with(
            "GET",
            "/console/service-accounts/not-an-id",
            &[("cookie", &s.cookie)],
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Attacks on what the console shows and takes: a name holding markup is
/// shown as text (an injected script would not run anyway: the CSP allows
/// no inline script), and a keygate JWT — valid on /v1 — does not open a
/// console session (a session re-checks a key, which a token is not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_escapes_what_users_typed_and_takes_keys_not_tokens() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let (account, owner_key) = h
        .create_account_with(json!({
            "organization_id": org, "name": "boss", "role": "owner",
            "description": evil, "scopes": ["orders:read"],
        }))
        .await;
    let s = sign_in(&h, &h.admin_key).await;
    let (status, _, body) = h
        .admin_with(
            "GET",
            &format!("/console/service-accounts/{account}"),
            &[("cookie", &s.cookie)],
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let page = text(&body);
    assert!(
        !page.contains("<script>alert") && !page.contains("<img src=x"),
        "{page}"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );

    let form = format!(
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token={owner_key}\
         &subject_token_type=urn:keygate:params:oauth:token-type:api_key"
    );
    let (status, _, token) = h.form("/oauth2/token", &form, &[]).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let jwt = token["access_token"].as_str().unwrap();
    assert_eq!(
        h.admin_as(jwt, "GET", "/v1/organizations", None).await.0,
        StatusCode::OK,
        "the token is good on /v1"
    );
    let (status, headers, body) = sign_in_status(&h, jwt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("Sign in with an API key, not a token."));
    assert!(header(&headers, "set-cookie").is_empty());
}

/// After a rotation, the old key still signs until the new one activates:
/// the page names the signer as the key ring picks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_names_the_signing_key_that_signs() {
    let h = Harness::start("").await;
    let s = sign_in(&h, &h.admin_key).await;
    let (status, _, _) = h
        .admin(
            "POST",
            "/v1/signing-keys/rotate",
            Some(json!({"activate_after_seconds": 600})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _, body) = h
        .admin_with(
            "GET",
            "/console/signing-keys",
            &[("cookie", &s.cookie)],
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let page = text(&body);
    assert_eq!(page.matches("<td>signing</td>").count(), 1, "{page}");
    assert_eq!(
        page.matches("<td>published, not signing yet</td>").count(),
        1
    );
}

/// On an admin listener with TLS, the session cookie is `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_cookie_is_secure_on_tls() {
    use http_body_util::{BodyExt as _, Full};
    use hyper_util::rt::TokioIo;

    let dir = tempfile::tempdir().unwrap();
    let pki = crate::pki::Pki::new(dir.path(), "keygate");
    let (cert, key, _) = pki.server("admin", "keygate-admin");
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let h = Harness::start_with(
        None,
        "",
        &[
            ("KEYGATE_ADMIN__TLS_CERT", cert.as_str()),
            ("KEYGATE_ADMIN__TLS_KEY", key.as_str()),
        ],
    )
    .await;
    let stream = crate::pki::connect(h.admin_addr(), pki.client_config(None, &[b"http/1.1"]))
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let form = serde_urlencoded::to_string([("key", h.admin_key.as_str())]).unwrap();
    let req = http::Request::post("https://localhost/console/sign-in")
        .header("host", "localhost")
        .header("origin", "https://localhost")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(bytes::Bytes::from(form)))
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    let status = res.status();
    let set = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(set.ends_with("; Secure"), "{set}");
}

/// A session past `admin.console_session_ttl` goes back to sign-in, and a
/// write posted with it is not carried out (keygate on a clock the test
/// moves).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_console_session_writes_nothing() {
    use std::collections::HashMap;

    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use keygate::clock::ManualClock;

    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_grace = \"1s\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\nconsole_session_ttl = \"5m\"\n\
         [store]\nurl = \"sqlite://{}\"\npoll_interval = \"100ms\"\n",
        dir.path().join("keygate.db").display()
    );
    let key = "console-clock-admin-key-0123456789-abcdef";
    let env = HashMap::from([("KEYGATE_ADMIN_KEY".to_string(), key.to_string())]);
    let config = keygate::config::Config::from_toml(&toml, &env).unwrap();
    let clock = ManualClock::new(1_800_000_000_000);
    let running = keygate::app::start_with_clock(config, clock.clone())
        .await
        .unwrap();
    let admin = running.admin_addr();
    let client = Client::builder(TokioExecutor::new()).build_http();
    let call =
        |method: &'static str, path: String, headers: Vec<(&'static str, String)>, body: String| {
            let client = client.clone();
            async move {
                let headers: Vec<(&str, &str)> =
                    headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
                crate::support::send(&client, admin, method, &path, &headers, body.into_bytes())
                    .await
            }
        };
    let form = "application/x-www-form-urlencoded".to_string();
    let (status, hdrs, _) = call(
        "POST",
        "/console/sign-in".into(),
        vec![("content-type", form.clone())],
        serde_urlencoded::to_string([("key", key)]).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = header(&hdrs, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _, body) = call(
        "GET",
        "/console/organizations".into(),
        vec![("cookie", cookie.clone())],
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let csrf = text(&body)
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap()
        .to_string();

    clock.advance(5 * 60 * 1000 + 1);
    let create =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("name", "too-late")]).unwrap();
    let (status, hdrs, _) = call(
        "POST",
        "/console/organizations".into(),
        vec![("cookie", cookie.clone()), ("content-type", form)],
        create,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(header(&hdrs, "location"), "/console/sign-in?ended=1");
    assert!(
        header(&hdrs, "set-cookie").contains("Max-Age=0"),
        "the browser forgets it"
    );
    let (_, _, orgs) = call(
        "GET",
        "/v1/organizations".into(),
        vec![("authorization", format!("Bearer {key}"))],
        String::new(),
    )
    .await;
    let names: Vec<&str> = orgs["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"too-late"), "{names:?}");
    let (status, hdrs, _) = call(
        "GET",
        "/console/organizations".into(),
        vec![("cookie", cookie)],
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "the session stays ended");
    assert_eq!(header(&hdrs, "location"), "/console/sign-in?ended=1");
    running.shutdown().await;
}
