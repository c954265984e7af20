//! The browser console over real HTTP: the headers every response carries,
//! sign-in (and the failed-auth budget it spends), sessions that end with
//! their key, and writes refused without a session, a CSRF token or from
//! another origin (the pages themselves: `console_pages.rs`). The browser
//! flows are in `tests/console/` (Chromium).

use http::StatusCode;
use serde_json::json;

use crate::support::{header, Harness};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A signed-in console session: its cookie and its CSRF token.
pub(crate) struct Session {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) fn text(body: &serde_json::Value) -> &str {
    body.as_str().unwrap_or("")
}

pub(crate) async fn sign_in_status(
    h: &Harness,
    key: &str,
) -> (StatusCode, http::HeaderMap, String) {
    let form = serde_urlencoded::to_string([("key", key)]).unwrap();
    let (status, headers, body) = h
        .admin_with(
            "POST",
            "/console/sign-in",
            &[("content-type", "application/x-www-form-urlencoded")],
            form.into_bytes(),
        )
        .await;
    (status, headers, text(&body).to_string())
}

pub(crate) async fn sign_in(h: &Harness, key: &str) -> Session {
    let (status, headers, body) = sign_in_status(h, key).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "sign-in: {body}");
    let set = header(&headers, "set-cookie");
    let cookie = set.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("keygate_console="), "{set}");
    // Any page's forms carry the session's token.
    let (status, _, body) = h
        .admin_with(
            "GET",
            "/console/organizations",
            &[("cookie", &cookie)],
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let page = text(&body);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_string();
    Session { cookie, csrf }
}

pub(crate) async fn post(
    h: &Harness,
    cookie: Option<&str>,
    path: &str,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    let body = serde_urlencoded::to_string(form).unwrap();
    let (status, headers, body) = h
        .admin_with("POST", path, &headers, body.into_bytes())
        .await;
    (status, headers, text(&body).to_string())
}

async fn enabled(h: &Harness, account: &str) -> bool {
    let (_, _, body) = h
        .admin("GET", &format!("/v1/service-accounts/{account}"), None)
        .await;
    body["enabled"].as_bool().unwrap()
}

fn assert_hardened(headers: &http::HeaderMap, what: &str) {
    assert_eq!(header(headers, "content-security-policy"), CSP, "{what}");
    assert_eq!(header(headers, "cache-control"), "no-store", "{what}");
    assert_eq!(
        header(headers, "x-content-type-options"),
        "nosniff",
        "{what}"
    );
    assert_eq!(header(headers, "referrer-policy"), "same-origin", "{what}");
    assert_eq!(header(headers, "x-frame-options"), "DENY", "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_responses_carry_a_strict_csp_and_no_store() {
    let h = Harness::start("").await;
    let s = sign_in(&h, &h.admin_key).await;
    for path in [
        "/console/sign-in",
        "/console/static/console.css",
        "/console/static/console.js",
        "/console/no-such-page",
        "/console/organizations",
        "/console/service-accounts",
        "/console/audit",
        "/console/replicas",
        "/console/signing-keys",
    ] {
        for cookie in [None, Some(s.cookie.as_str())] {
            let headers: Vec<(&str, &str)> = cookie.map(|c| ("cookie", c)).into_iter().collect();
            let (status, hdrs, body) = h.admin_with("GET", path, &headers, vec![]).await;
            assert_hardened(&hdrs, &format!("GET {path} ({status})"));
            // No inline script anywhere: the CSP would block it, so none is written.
            assert!(!text(&body).contains("<script>"), "{path}");
        }
    }
    // A redirect and a refused write carry them too.
    let (status, hdrs, _) = post(&h, None, "/console/sign-out", &[], None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_hardened(&hdrs, "POST without a session");
    let (status, hdrs, _) = post(&h, Some(&s.cookie), "/console/sign-out", &[], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token");
    assert_hardened(&hdrs, "POST without a token");
    // The session cookie: HttpOnly, SameSite=Strict, the console's path only.
    let (_, hdrs, _) = sign_in_status(&h, &h.admin_key).await;
    let set = header(&hdrs, "set-cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/console/"] {
        assert!(set.contains(part), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: no Secure flag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sign_in_spends_the_failed_auth_budget() {
    let h = Harness::start("[rate_limit]\nfailed_auth = \"3/h\"\n").await;
    let (status, _, body) = sign_in_status(&h, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("Admin key: enter a key."), "{body}");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, headers, body) =
            sign_in_status(&h, "not-the-key-0123456789-abcdefghijklmn").await;
        assert!(header(&headers, "set-cookie").is_empty(), "no session");
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(body.contains("Too many failed sign-ins"), "{body}");
        } else {
            assert!(body.contains("That key is not valid"), "{body}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // The /v1 API from the same address is throttled for failures alike...
    let (status, _, _) = h
        .admin_as(
            "not-the-key-0123456789-abcdefghijklmn",
            "GET",
            "/v1/organizations",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // ...and a valid key still signs in.
    sign_in(&h, &h.admin_key).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_writes_need_a_session_its_token_and_its_origin() {
    let h = Harness::start("").await;
    let org = h.create_org("acme").await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let s = sign_in(&h, &h.admin_key).await;
    let path = format!("/console/service-accounts/{account}/state");
    let disable = [("enabled", "false"), ("confirm", "yes")];
    let with = |csrf: &'static str| [("enabled", "false"), ("confirm", "yes"), ("csrf", csrf)];

    // No session (or a made-up one): back to sign-in, nothing written.
    let (status, hdrs, _) = post(&h, None, &path, &disable, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(header(&hdrs, "location"), "/console/sign-in");
    let forged = "keygate_console=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (status, hdrs, _) = post(&h, Some(forged), &path, &with("x"), None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(header(&hdrs, "location"), "/console/sign-in?ended=1");
    // A session but no token, or a wrong one: refused.
    let (status, _, body) = post(&h, Some(&s.cookie), &path, &disable, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("Nothing was changed"), "{body}");
    let (status, _, _) = post(&h, Some(&s.cookie), &path, &with("wrong"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another session's token is not this one's.
    let other = sign_in(&h, &h.admin_key).await;
    let mut theirs = disable.to_vec();
    theirs.push(("csrf", &other.csrf));
    let (status, _, _) = post(&h, Some(&s.cookie), &path, &theirs, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The right token from another site's page: refused by its Origin.
    let mut right = disable.to_vec();
    right.push(("csrf", &s.csrf));
    let (status, _, _) = post(
        &h,
        Some(&s.cookie),
        &path,
        &right,
        Some("http://evil.example"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(enabled(&h, &account).await, "nothing was written");

    // Without `confirm`, a destructive write only asks.
    let ask = [("enabled", "false"), ("csrf", s.csrf.as_str())];
    let (status, _, body) = post(&h, Some(&s.cookie), &path, &ask, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("Disable this account?"), "{body}");
    assert!(enabled(&h, &account).await, "asking writes nothing");

    // The real thing, from the console's own origin.
    let origin = format!("http://{}", h.admin_addr());
    let (status, hdrs, body) = post(&h, Some(&s.cookie), &path, &right, Some(&origin)).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(header(&hdrs, "location").ends_with("?done=disabled"));
    assert!(!enabled(&h, &account).await);

    // Signed out: the session's cookie and token are worth nothing.
    let out = [("csrf", s.csrf.as_str())];
    let (status, _, _) = post(&h, Some(&s.cookie), "/console/sign-out", &out, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let enable = [("enabled", "true"), ("csrf", s.csrf.as_str())];
    let (status, hdrs, _) = post(&h, Some(&s.cookie), &path, &enable, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(header(&hdrs, "location"), "/console/sign-in?ended=1");
    assert!(!enabled(&h, &account).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_session_ends_when_its_key_is_revoked_and_owners_see_their_org_only() {
    let h = Harness::start("").await;
    let mine = h.create_org("mine").await;
    let theirs = h.create_org("theirs").await;
    let (owner, owner_key) = h
        .create_account_with(json!({
            "organization_id": mine, "name": "boss", "role": "owner", "scopes": ["orders:read"],
        }))
        .await;
    let (member, member_key) = h.create_account(&mine, &["orders:read"]).await;
    let (hidden, _) = h
        .create_account_with(json!({
            "organization_id": theirs, "name": "secret-project-x", "scopes": [],
        }))
        .await;

    // A member's key is refused: it manages nothing.
    let (status, _, body) = sign_in_status(&h, &member_key).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let s = sign_in(&h, &owner_key).await;
    let get = |path: String| {
        let cookie = s.cookie.clone();
        let h = &h;
        async move {
            let (status, hdrs, body) = h
                .admin_with("GET", &path, &[("cookie", &cookie)], vec![])
                .await;
            (status, hdrs, text(&body).to_string())
        }
    };
    let (status, _, body) = get("/console/organizations".into()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("mine") && !body.contains("theirs"), "{body}");
    assert!(!body.contains("Signing keys") && !body.contains("Replicas"));
    // Another organization's things answer not found, never their data.
    for path in [
        format!("/console/service-accounts/{hidden}"),
        format!("/console/organizations/{theirs}"),
        format!("/console/audit?account={hidden}"),
        format!("/console/service-accounts?organization_id={theirs}"),
    ] {
        let (status, _, body) = get(path.clone()).await;
        assert!(!body.contains("secret-project-x"), "{path}: {body}");
        assert!(!body.contains("theirs"), "{path}: {body}");
        assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}");
    }
    assert_eq!(
        get(format!("/console/service-accounts/{hidden}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(format!("/console/service-accounts/{member}")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get("/console/replicas".into()).await.0,
        StatusCode::FORBIDDEN
    );

    // The owner's key is revoked (through /v1): its session ends at once.
    let (_, _, keys) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{owner}/api-keys"),
            None,
        )
        .await;
    let key_id = keys["data"][0]["id"].as_str().unwrap();
    let (status, _, _) = h
        .admin(
            "DELETE",
            &format!("/v1/service-accounts/{owner}/api-keys/{key_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, hdrs, _) = get("/console/organizations".into()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(header(&hdrs, "location"), "/console/sign-in?ended=1");
    assert!(header(&hdrs, "set-cookie").contains("Max-Age=0"));
    // And the revoked key cannot sign in again.
    assert_eq!(
        sign_in_status(&h, &owner_key).await.0,
        StatusCode::UNAUTHORIZED
    );
}
