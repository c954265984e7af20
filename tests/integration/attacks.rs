//! The holes an adversarial review found, each tried as an attacker would,
//! against a running keygate: owner escalation through credentials, `;`
//! and case spellings that dodge a nested route, spoofed identity and
//! forwarding headers, duplicate `Host`, lockout of valid users by a
//! failing neighbour, admin-key guessing, tokens that revive, revocation as
//! amplification, and a second credential header.

use std::time::Duration;

use http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::oauth::{basic, client};
use crate::support::{header, Harness};

/// Two routes on one upstream, the deeper one asking for more.
const NESTED: &str = r#"
[[routes]]
name = "shop"
prefix = "/shop"
upstream = "http://{UPSTREAM}"
scopes = { GET = ["shop:read"] }

[[routes]]
name = "shop-items"
prefix = "/shop/items"
upstream = "http://{UPSTREAM}"
scopes = { GET = ["items:write"] }

[[routes]]
name = "limited-open"
prefix = "/limited"
upstream = "http://{UPSTREAM}"
public = true
rate_limit = "1/m"
"#;

/// One raw HTTP/1.1 exchange: what a client that writes its own bytes sees.
async fn raw(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&out[..n]).into_owned()
}

async fn owner(h: &Harness, org: &str, scopes: &[&str]) -> String {
    h.create_account_with(json!({
        "organization_id": org,
        "name": h.unique_name(),
        "role": "owner",
        "scopes": scopes,
    }))
    .await
    .1
}

/// 1. An owner may act on an account's credentials only when that
/// account's scopes are a subset of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_cannot_mint_credentials_for_an_account_holding_more_scopes() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let owner_key = owner(&h, &org, &["orders:read"]).await;
    let (richer, _) = h
        .create_account(&org, &["orders:read", "orders:write"])
        .await;
    let (status, _, cred) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{richer}/credentials"),
            Some(json!({ "name": "existing" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{cred}");
    let cid = cred["id"].as_str().unwrap();
    let base = format!("/v1/service-accounts/{richer}");
    let attempts = [
        ("POST", format!("{base}/api-keys"), json!({})),
        ("POST", format!("{base}/rotate-api-key"), json!({})),
        (
            "POST",
            format!("{base}/credentials"),
            json!({ "name": "mine" }),
        ),
        (
            "POST",
            format!("{base}/credentials/{cid}/secret"),
            json!({}),
        ),
        ("PATCH", base.clone(), json!({ "description": "pwned" })),
    ];
    for (method, path, body) in attempts {
        let (status, _, res) = h.admin_as(&owner_key, method, &path, Some(body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {res}");
        let text = res.to_string();
        assert!(!text.contains("kg_") && !text.contains("kgs_"), "{text}");
    }
    // The old secret still works: nothing was regenerated.
    let id = cred["client_id"].as_str().unwrap();
    let secret = cred["client_secret"].as_str().unwrap();
    let (status, _, _) = h
        .form(
            "/oauth2/token",
            "grant_type=client_credentials",
            &[("authorization", &basic(id, secret))],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // An account within the owner's scopes is still the owner's to manage.
    let (lesser, _) = h.create_account(&org, &["orders:read"]).await;
    let (status, _, body) = h
        .admin_as(
            &owner_key,
            "POST",
            &format!("/v1/service-accounts/{lesser}/api-keys"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// 2. `;` parameters (and other spellings) cannot move a request off the
/// stricter, nested route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_parameters_and_case_cannot_dodge_a_nested_route() {
    let h = Harness::start(NESTED).await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["shop:read"]).await;
    let hits = h.upstream_hits();
    for path in [
        "/shop/items;/1",
        "/shop/items;x=1/1",
        "/shop/items%3bx/1",
        "/shop/ITEMS/1",
        "/Shop/items/1",
    ] {
        let (status, _, body) = h.bearer("GET", path, &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_path", "{path}");
    }
    assert_eq!(h.upstream_hits(), hits, "nothing reached the upstream");
    // The route itself is still refused for want of its scope, and a
    // parameter that changes nothing passes.
    assert_eq!(
        h.bearer("GET", "/shop/items/1", &key).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _, echo) = h.bearer("GET", "/shop/1;v=2", &key).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["path"], "/shop/1;v=2");
}

/// Found by fuzzing: an escape assembled by decoding around a stray `%`
/// (`%2%65` → `%2e`) would have left keygate as a dot-dot segment for the
/// upstream to decode. Malformed escapes are refused before any decoding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escapes_assembled_by_decoding_cannot_climb_out_of_a_route() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let hits = h.upstream_hits();
    for path in [
        "/orders/%2%65%2%65/admin",
        "/orders/%2%45%2%45/admin",
        "/orders/.%2%65/admin",
        "/orders/%%32%65%%32%65/admin",
        "/orders/x%",
    ] {
        let (status, _, body) = h.bearer("GET", path, &key).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_path", "{path}");
    }
    assert_eq!(h.upstream_hits(), hits, "nothing reached the upstream");
    // A well-formed escape of `%` itself is still just data.
    let (status, _, echo) = h.bearer("GET", "/orders/100%25", &key).await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    assert_eq!(echo["path"], "/orders/100%25");
}

/// 3. and 10. Identity, forwarding and credential headers in other
/// spellings never reach the upstream, and no keygate credential does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_headers_in_any_spelling_never_reach_the_upstream() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let auth = format!("Bearer {key}");
    let (status, _, echo) = h
        .proxy(
            "GET",
            "/orders/1",
            &[
                ("authorization", &auth),
                ("X_Keygate_Account", "00000000-0000-0000-0000-000000000000"),
                ("x_keygate_scopes", "orders:admin"),
                ("X_Forwarded_For", "6.6.6.6"),
                ("x_real_ip", "6.6.6.6"),
                ("X_Api_Key", &key),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    let headers = echo["headers"].as_object().unwrap();
    for name in headers.keys() {
        assert!(!name.contains('_'), "{name} reached the upstream");
    }
    assert!(!echo.to_string().contains(&key), "the key leaked: {echo}");
    // On a public route too: a key sent there is not forwarded either.
    let (_, _, echo) = h
        .proxy(
            "GET",
            "/open/x",
            &[("authorization", &auth), ("x_api_key", &key)],
        )
        .await;
    assert!(!echo.to_string().contains(&key), "the key leaked: {echo}");
}

/// 10. Several credential headers are ambiguous: 400, nothing forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_credential_header_is_refused() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let bearer = format!("Bearer {key}");
    let hits = h.upstream_hits();
    let cases: [&[(&str, &str)]; 3] = [
        &[
            ("authorization", "Basic dXNlcjpwdw=="),
            ("authorization", &bearer),
            ("x-api-key", &key),
        ],
        &[("authorization", &bearer), ("x-api-key", &key)],
        &[("x-api-key", &key), ("x-api-key", &key)],
    ];
    for headers in cases {
        let (status, _, body) = h.proxy("GET", "/orders/1", headers).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{headers:?}: {body}");
        assert_eq!(body["error"]["code"], "ambiguous_credentials");
    }
    assert_eq!(h.upstream_hits(), hits);
    // The admin listener reads credentials the same way.
    let admin = format!("Bearer {}", h.admin_key);
    let (status, _, _) = h
        .send_to(
            h.admin_addr(),
            "GET",
            "/v1/organizations",
            &[("authorization", &admin), ("x-api-key", &h.admin_key)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// 4. A client's forwarding chain is believed only from trusted proxies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_keygates_unless_the_peer_is_a_trusted_proxy() {
    let spoof = [
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
        ("x-real-ip", "6.6.6.6"),
        ("x-forwarded-host", "evil.example"),
    ];
    let h = Harness::start(NESTED).await;
    let (_, _, echo) = h.proxy("GET", "/open/x", &spoof).await;
    let got = &echo["headers"];
    assert_eq!(got["x-forwarded-for"], "127.0.0.1", "{echo}");
    assert_eq!(got["x-real-ip"], "127.0.0.1");
    assert_eq!(got["forwarded"], "for=127.0.0.1;proto=http");
    assert_ne!(got["x-forwarded-host"], "evil.example");
    // A new X-Forwarded-For does not make a new client for the limiter.
    let first = h
        .proxy("GET", "/limited/x", &[("x-forwarded-for", "1.1.1.1")])
        .await;
    assert_eq!(first.0, StatusCode::OK);
    let second = h
        .proxy("GET", "/limited/x", &[("x-forwarded-for", "2.2.2.2")])
        .await;
    assert_eq!(second.0, StatusCode::TOO_MANY_REQUESTS);

    // Behind a trusted proxy (here: the test itself), the chain is kept
    // and extended, and names the client for the limiter.
    let h = Harness::start_with(
        None,
        NESTED,
        &[("KEYGATE_SERVER__TRUSTED_PROXIES", r#"["127.0.0.1/32"]"#)],
    )
    .await;
    let (_, _, echo) = h.proxy("GET", "/open/x", &spoof).await;
    let got = &echo["headers"];
    assert_eq!(got["x-forwarded-for"], "6.6.6.6, 127.0.0.1", "{echo}");
    assert_eq!(got["x-real-ip"], "6.6.6.6");
    assert_eq!(got["forwarded"], "for=6.6.6.6, for=127.0.0.1;proto=http");
    assert_eq!(got["x-forwarded-host"], "evil.example");
    for (xff, want) in [
        ("1.1.1.1", StatusCode::OK),
        ("1.1.1.1", StatusCode::TOO_MANY_REQUESTS),
        ("2.2.2.2", StatusCode::OK),
    ] {
        let (status, _, _) = h
            .proxy("GET", "/limited/x", &[("x-forwarded-for", xff)])
            .await;
        assert_eq!(status, want, "{xff}");
    }
}

/// 5. RFC 9112: two `Host` fields are a 400, and so is a method override;
/// a length beside chunking cannot smuggle a second request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_requests_are_refused_before_routing() {
    let h = Harness::start("").await;
    let hits = h.upstream_hits();
    let two_hosts = raw(
        h.public_addr(),
        "GET /open/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
    )
    .await;
    assert!(two_hosts.starts_with("HTTP/1.1 400"), "{two_hosts}");
    // Content-Length beside Transfer-Encoding: the length is dropped, the
    // body read as chunked (RFC 9112 §6.1), and the connection closed after
    // the answer, so no request can hide in the body. The upstream sees no
    // Content-Length to disagree about.
    let smuggle = raw(
        h.public_addr(),
        "POST /open/x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await;
    assert!(
        smuggle.to_ascii_lowercase().contains("connection: close"),
        "{smuggle}"
    );
    assert!(!smuggle.contains("content-length\":"), "{smuggle}");
    let (status, _, body) = h
        .proxy("GET", "/open/x", &[("x-http-method-override", "DELETE")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        h.upstream_hits(),
        hits + 1,
        "only the chunked POST reached it"
    );
}

/// 6. The failed-auth budget throttles failing attempts only: valid
/// credentials from the same address still pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_neighbour_does_not_lock_out_valid_callers() {
    let h = Harness::start("[rate_limit]\nfailed_auth = \"3/h\"\n").await;
    let org = h.create_org("acme").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let (_, id, secret) = client(&h, &["orders:read"]).await;
    // Change the last character to one it is not, so the key is always wrong.
    let mut wrong = key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'x' { 'y' } else { 'x' });
    let mut throttled = false;
    for _ in 0..6 {
        let (status, hdrs, _) = h.bearer("GET", "/orders/1", &wrong).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(header(&hdrs, "retry-after").parse::<u64>().unwrap() >= 1);
            throttled = true;
        }
    }
    assert!(throttled, "the failing caller is throttled");
    // Same address, valid credentials: served.
    assert_eq!(h.bearer("GET", "/orders/1", &key).await.0, StatusCode::OK);
    let (status, _, body) = h
        .form(
            "/oauth2/token",
            "grant_type=client_credentials",
            &[("authorization", &basic(&id, &secret))],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = h.admin("GET", "/v1/organizations", None).await;
    assert_eq!(status, StatusCode::OK);
    // And the failing one is still refused with 429.
    assert_eq!(
        h.bearer("GET", "/orders/1", &wrong).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// 7. Guessing keys on the admin listener spends the same budget, and a
/// client that never finishes its request head is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_key_guessing_is_throttled_and_slow_heads_are_dropped() {
    let h = Harness::start_with(
        None,
        "[rate_limit]\nfailed_auth = \"5/h\"\n",
        &[("KEYGATE_SERVER__HEADER_READ_TIMEOUT", "1s")],
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..20 {
        let guess = format!("a-custom-admin-key-guess-number-{i:04}-xxxxxxxx");
        statuses.push(h.admin_as(&guess, "GET", "/v1/organizations", None).await.0);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(
        h.admin("GET", "/v1/organizations", None).await.0,
        StatusCode::OK
    );
    // Half a request head, then silence: the connection is closed.
    let mut s = tokio::net::TcpStream::connect(h.admin_addr())
        .await
        .unwrap();
    s.write_all(b"GET /v1/organizations HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue, // a 408 before the close is fine
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the admin listener kept a silent connection"
    );
}
