//! Identities keygate did not issue: a real OIDC issuer served by the test
//! (discovery, JWKS, rotation, going down), GitHub-shaped tokens with claim
//! conditions, the grants that exchange them, routes that accept them, and
//! every bad token refused with the RFC's error — never a 500, never a
//! fetch the config did not name.

use http::StatusCode;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::issuer::{now, Mode, TestIssuer};
use crate::observability::scrape;
use crate::support::{test_store, Harness};

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

/// keygate trusting `issuer` as "ci" (through its discovery document), with
/// a route that accepts its tokens.
pub(crate) fn trusting(issuer: &TestIssuer) -> String {
    format!(
        r#"
[[trusted_issuers]]
name = "ci"
issuer = "{url}"
audiences = ["keygate"]
algorithms = ["ES256", "RS256"]

[[routes]]
name = "fed"
prefix = "/fed"
upstream = "http://{{UPSTREAM}}"
accept_issuers = ["ci"]
scopes = {{ GET = ["orders:read"] }}
"#,
        url = issuer.url
    )
}

/// An account holding `scopes` with `subject` (and `claims`) of "ci" bound
/// to it: (account id, binding id).
pub(crate) async fn bound(
    h: &Harness,
    scopes: &[&str],
    subject: &str,
    claims: Value,
) -> (String, String) {
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, scopes).await;
    let binding = bind(
        h,
        &account,
        json!({"issuer": "ci", "subject": subject, "claims": claims}),
    )
    .await;
    (account, binding)
}

async fn bind(h: &Harness, account: &str, body: Value) -> String {
    let (s, _, b) = h
        .admin(
            "POST",
            &format!("/v1/service-accounts/{account}/federated-identities"),
            Some(body),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_string()
}

/// `POST /oauth2/token` with the form pairs given (URL-encoded here).
pub(crate) async fn token_form(h: &Harness, pairs: &[(&str, &str)]) -> (StatusCode, Value) {
    let form = serde_urlencoded::to_string(pairs).unwrap();
    let (s, _, body) = h.form("/oauth2/token", &form, &[]).await;
    (s, body)
}

pub(crate) fn claims_of(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

const GITHUB_SUB: &str = "repo:acme/app:environment:prod";

fn github(issuer: &TestIssuer, environment: &str) -> String {
    issuer.token(
        GITHUB_SUB,
        json!({"repository": "acme/app", "environment": environment, "ref": "refs/heads/main",
               "repository_owner": "acme", "job_workflow_ref": "acme/app/.github/workflows/deploy.yml@refs/heads/main"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_workload_exchanges_its_token_and_calls_routes_with_it() {
    let issuer = TestIssuer::start().await;
    let h = Harness::start(&trusting(&issuer)).await;
    let (account, binding) = bound(
        &h,
        &["orders:read"],
        GITHUB_SUB,
        json!({"repository": "acme/app", "environment": "prod"}),
    )
    .await;
    let t = github(&issuer, "prod");

    // Directly, on a route that accepts the issuer: the account's identity.
    let (s, _, body) = h.bearer("GET", "/fed/x", &t).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["headers"]["x-keygate-account"], account.as_str());
    assert_eq!(body["headers"]["x-keygate-credential"], binding.as_str());
    assert!(body["headers"].get("authorization").is_none());
    // Not on a route that does not accept it.
    let (s, _, _) = h.bearer("GET", "/orders/x", &t).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // RFC 7523 jwt-bearer: a keygate JWT for the account, naming the
    // federated identity in `act`.
    let (s, body) = token_form(
        &h,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &t),
            ("audience", "orders-api"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "orders:read");
    let minted = body["access_token"].as_str().unwrap().to_string();
    let c = claims_of(&minted);
    assert_eq!(c["sub"], account.as_str());
    assert_eq!(c["client_id"], binding.as_str());
    assert_eq!(c["act"], json!({"iss": issuer.url, "sub": GITHUB_SUB}));
    let (s, _, body) = h.bearer("GET", "/orders/x", &minted).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["headers"]["x-keygate-account"], account.as_str());

    // RFC 8693 with the token as subject token.
    let (s, body) = token_form(
        &h,
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", &t),
            ("subject_token_type", TYPE_JWT),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    // More scope than the account holds: invalid_scope.
    let (s, body) = token_form(
        &h,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &t),
            ("scope", "orders:write"),
        ],
    )
    .await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );

    // A claim condition that does not hold: no binding matches.
    let staging = github(&issuer, "staging");
    let (s, _, _) = h.bearer("GET", "/fed/x", &staging).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = token_form(&h, &[("grant_type", JWT_BEARER), ("assertion", &staging)]).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    // Discovery lists the grant.
    let (_, _, meta) = h
        .proxy("GET", "/.well-known/openid-configuration", &[])
        .await;
    assert!(meta["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!(JWT_BEARER)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbound_identity_or_disabled_account_stops_the_next_exchange_and_request() {
    let issuer = TestIssuer::start().await;
    let h = Harness::start(&trusting(&issuer)).await;
    let (account, binding) = bound(&h, &["orders:read"], "svc-a", json!({})).await;
    let t = issuer.token("svc-a", json!({}));
    assert_eq!(h.bearer("GET", "/fed/x", &t).await.0, StatusCode::OK);
    let (s, body) = token_form(
        &h,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &t),
            ("audience", "orders-api"),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let minted = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        h.bearer("GET", "/orders/x", &minted).await.0,
        StatusCode::OK
    );

    // Unbinding: the very next request with the (verified, kept) external
    // token fails, so does the token minted through the binding, and so
    // does the next exchange.
    let (s, _, _) = h
        .admin(
            "DELETE",
            &format!("/v1/service-accounts/{account}/federated-identities/{binding}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(
        h.bearer("GET", "/fed/x", &t).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        h.bearer("GET", "/orders/x", &minted).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (s, body) = token_form(&h, &[("grant_type", JWT_BEARER), ("assertion", &t)]).await;
    assert_eq!(body["error"], "invalid_grant", "{s} {body}");

    // Bound again, then the account disabled: refused at once too.
    bind(&h, &account, json!({"issuer": "ci", "subject": "svc-a"})).await;
    assert_eq!(h.bearer("GET", "/fed/x", &t).await.0, StatusCode::OK);
    let (s, _, _) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.bearer("GET", "/fed/x", &t).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, body) = token_form(&h, &[("grant_type", JWT_BEARER), ("assertion", &t)]).await;
    assert_eq!(body["error"], "invalid_grant");

    // A second replica, started after all this, knows the binding is live
    // and the account disabled (the initial load reads bindings).
    let (s, _, _) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let replica = h.boot_replica().await;
    let auth = format!("Bearer {t}");
    let (s, _, body) = crate::support::send(
        &h.client,
        replica.public_addr(),
        "GET",
        "/fed/x",
        &[("authorization", auth.as_str())],
        Vec::new(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    replica.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_the_rfcs_errors_never_a_500_and_never_a_fetch() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    let issuer = TestIssuer::start().await;
    // Another issuer, not trusted: its keys sign "stranger" tokens, and its
    // URL stands in `jku`/`x5u` headers keygate must never follow.
    let stranger = TestIssuer::start().await;
    // Every bad token is a failed attempt: a budget they cannot exhaust.
    let h = Harness::start_with(
        test_store().await,
        &trusting(&issuer),
        &[("KEYGATE_RATE_LIMIT__FAILED_AUTH", "100000/s")],
    )
    .await;
    bound(&h, &["orders:read"], "svc", json!({})).await;
    let good = issuer.claims("svc", json!({}));
    let with = |changes: Value| {
        let mut c = good.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let jwk = issuer.jwks()["keys"][0].clone();
    // HS256 "signed" with the issuer's public key, as a confused verifier
    // would check it.
    let hs256 = {
        let input = format!(
            "{}.{}",
            b64(&json!({"alg": "HS256", "kid": "k1", "typ": "JWT"})),
            b64(&good)
        );
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, jwk.to_string().as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    };
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&good)
    );
    let jku = issuer.sign_raw(
        "k1",
        &json!({"alg": "ES256", "kid": "attacker", "typ": "JWT",
                "jku": format!("{}/jwks", stranger.url), "x5u": format!("{}/x5u", stranger.url),
                "jwk": stranger.jwks()["keys"][0]}),
        &good,
    );
    // The stranger's key signs a token naming our issuer and our key id.
    let forged = stranger.sign("k1", &good);
    let cases: Vec<(&str, String)> = vec![
        ("alg none", none),
        ("HS256 with the public key", hs256),
        ("a stranger's signature under a known kid", forged),
        ("jku/x5u/jwk headers", jku),
        (
            "untrusted iss",
            issuer.sign("k1", &with(json!({"iss": stranger.url}))),
        ),
        (
            "wrong aud",
            issuer.sign("k1", &with(json!({"aud": "someone-else"}))),
        ),
        (
            "expired",
            issuer.sign("k1", &with(json!({"exp": now() - 120}))),
        ),
        (
            "nbf in the future",
            issuer.sign("k1", &with(json!({"nbf": now() + 600}))),
        ),
        (
            "exp a string",
            issuer.sign("k1", &with(json!({"exp": "tomorrow"}))),
        ),
        ("sub a number", issuer.sign("k1", &with(json!({"sub": 42})))),
        ("aud a number", issuer.sign("k1", &with(json!({"aud": 7})))),
        (
            "no exp",
            issuer.sign("k1", &{
                let mut c = good.clone();
                c.as_object_mut().unwrap().remove("exp");
                c
            }),
        ),
        ("not a JWT", "eyJhbGciOiJFUzI1NiJ9.garbage.garbage".into()),
        (
            "too large",
            issuer.sign("k1", &with(json!({"pad": "x".repeat(9000)}))),
        ),
    ];
    let fetched_before = issuer.jwks_fetches();
    for (what, t) in &cases {
        let (s, body) = token_form(&h, &[("grant_type", JWT_BEARER), ("assertion", t)]).await;
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant")),
            "{what}: {body}"
        );
        let (s, body) = token_form(
            &h,
            &[
                ("grant_type", EXCHANGE),
                ("subject_token", t),
                ("subject_token_type", TYPE_JWT),
            ],
        )
        .await;
        assert_eq!(
            (s, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{what}: {body}"
        );
        let (s, _, _) = h.bearer("GET", "/fed/x", t).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{what}");
    }
    // Named reasons for the ones a caller can fix.
    let (_, body) = token_form(
        &h,
        &[("grant_type", JWT_BEARER), ("assertion", &cases[5].1)],
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("audience"),
        "{body}"
    );
    let (_, body) = token_form(
        &h,
        &[("grant_type", JWT_BEARER), ("assertion", &cases[8].1)],
    )
    .await;
    assert_eq!(body["error_description"], "exp is not a number of seconds");
    // Nothing a token said was fetched: not the stranger's URLs, and of the
    // trusted issuer's JWKS at most the one refetch an unknown kid allows.
    assert_eq!(stranger.jwks_fetches(), 0);
    assert!(issuer.jwks_fetches() <= fetched_before + 1);
    // The good token still works after all that.
    let (s, _, body) = h
        .bearer("GET", "/fed/x", &issuer.token("svc", json!({})))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // A missing assertion is a plain invalid_request.
    let (s, body) = token_form(&h, &[("grant_type", JWT_BEARER)]).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_fetched_once_and_a_flood_of_made_up_kids_fetches_nothing() {
    let issuer = TestIssuer::start().await;
    let h = Harness::start_with(
        test_store().await,
        &trusting(&issuer),
        &[("KEYGATE_RATE_LIMIT__FAILED_AUTH", "100000/s")],
    )
    .await;
    bound(&h, &["orders:read"], "svc", json!({})).await;
    // keygate fetched the keys at start: a k1 token works.
    let first = issuer.token("svc", json!({}));
    let (s, _, _) = h.bearer("GET", "/fed/x", &first).await;
    assert_eq!(s, StatusCode::OK);
    // The issuer rotates to k2: the first k2 token refetches and passes.
    issuer.add_key(Algorithm::RS256, "k2", true);
    issuer.publish_only("k2");
    let before = issuer.jwks_fetches();
    // Ten workloads with fresh tokens at once: the one allowed refetch
    // serves them all (those that come while it runs wait for it).
    let calls = (0..10).map(|i| {
        let t = issuer.sign("k2", &issuer.claims("svc", json!({"w": i})));
        let h = &h;
        async move { h.bearer("GET", "/fed/x", &t).await.0 }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(issuer.jwks_fetches(), before + 1);
    // Tokens with made-up kids (each signed, each new): refused, and within
    // 30 s of that refetch none of them causes another.
    for i in 0..25 {
        let header = json!({"alg": "RS256", "kid": format!("made-up-{i}"), "typ": "JWT"});
        let t = issuer.sign_raw("k2", &header, &issuer.claims("svc", json!({"n": i})));
        let (s, _, _) = h.bearer("GET", "/fed/x", &t).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let (_, body) = token_form(&h, &[("grant_type", JWT_BEARER), ("assertion", &t)]).await;
        assert_eq!(body["error"], "invalid_grant");
    }
    assert_eq!(issuer.jwks_fetches(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_good_keys_serve_while_the_issuer_is_down_and_metrics_say_how_old() {
    let issuer = TestIssuer::start().await;
    let h = Harness::start(&trusting(&issuer)).await;
    bound(&h, &["orders:read"], "svc", json!({})).await;
    assert_eq!(
        h.bearer("GET", "/fed/x", &issuer.token("svc", json!({})))
            .await
            .0,
        StatusCode::OK
    );
    let m = scrape(&h).await;
    let age = m.get(
        "keygate_trusted_issuer_keys_age_seconds",
        &[("issuer", "ci")],
    );
    assert!(m.has(
        "keygate_trusted_issuer_keys_age_seconds",
        &[("issuer", "ci")]
    ));
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(
        m.get("keygate_trusted_issuer_keys", &[("issuer", "ci")]),
        1.0
    );

    // Down (500): an unknown kid makes the one refetch, which fails; the
    // keys held still verify new tokens.
    issuer.set_mode(Mode::Fail);
    issuer.add_key(Algorithm::ES256, "k9", true);
    let t9 = issuer.sign("k9", &issuer.claims("svc", json!({})));
    assert_eq!(
        h.bearer("GET", "/fed/x", &t9).await.0,
        StatusCode::UNAUTHORIZED
    );
    let fresh = issuer.token("svc", json!({"n": 1}));
    let (s, _, body) = h.bearer("GET", "/fed/x", &fresh).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let m = scrape(&h).await;
    assert_eq!(
        m.get(
            "keygate_trusted_issuer_fetches_total",
            &[("issuer", "ci"), ("outcome", "failed")]
        ),
        1.0
    );
    assert!(
        m.get(
            "keygate_trusted_issuer_fetches_total",
            &[("issuer", "ci"), ("outcome", "ok")]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_huge_and_hanging_key_sets_never_replace_the_good_one() {
    let issuer = TestIssuer::start().await;
    let clock = keygate::clock::ManualClock::new(now() * 1000);
    let h = Harness::start_clocked(
        test_store().await,
        &trusting(&issuer),
        &[],
        Some(clock.clone() as keygate::clock::SharedClock),
    )
    .await;
    bound(&h, &["orders:read"], "svc", json!({})).await;
    issuer.add_key(Algorithm::ES256, "k9", true);
    for mode in [Mode::Garbage, Mode::TooLarge, Mode::Hang] {
        issuer.set_mode(mode.clone());
        // Each unknown kid may refetch once per 30 s of keygate's clock.
        clock.advance(31_000);
        let before = issuer.jwks_fetches();
        let t9 = issuer.sign(
            "k9",
            &issuer.claims("svc", json!({"mode": format!("{mode:?}")})),
        );
        let (s, _, _) = h.bearer("GET", "/fed/x", &t9).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{mode:?}");
        assert_eq!(issuer.jwks_fetches(), before + 1, "{mode:?}");
        // The good set is still held.
        let (s, _, body) = h
            .bearer(
                "GET",
                "/fed/x",
                &issuer.token("svc", json!({"m": format!("{mode:?}")})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{mode:?}: {body}");
    }
    // Back up: the next unknown kid (30 s on) brings k9 in.
    issuer.set_mode(Mode::Serve);
    clock.advance(31_000);
    let t9 = issuer.sign("k9", &issuer.claims("svc", json!({"back": true})));
    let (s, _, body) = h.bearer("GET", "/fed/x", &t9).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_token_from_a_jwks_file_issuer_and_a_bad_file_stops_the_start() {
    let cluster = TestIssuer::start().await;
    cluster.add_key(Algorithm::RS256, "sa-key", true);
    cluster.publish_only("sa-key");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jwks.json");
    std::fs::write(&file, cluster.jwks().to_string()).unwrap();
    const K8S: &str = "https://kubernetes.default.svc.cluster.local";
    let toml = format!(
        r#"
[[trusted_issuers]]
name = "k8s"
issuer = "{K8S}"
jwks_file = "{file}"
audiences = ["keygate"]
algorithms = ["RS256"]

[[routes]]
name = "k8s"
prefix = "/k8s"
upstream = "http://{{UPSTREAM}}"
accept_issuers = ["k8s"]
"#,
        file = file.display()
    );
    let h = Harness::start(&toml).await;
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let sub = "system:serviceaccount:payments:api";
    bind(&h, &account, json!({"issuer": "k8s", "subject": sub})).await;
    // A projected service-account token, as the kubelet writes it.
    let t = cluster.sign(
        "sa-key",
        &json!({
            "iss": K8S, "sub": sub, "aud": ["keygate"], "iat": now(), "nbf": now(), "exp": now() + 3600,
            "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api", "uid": "1b6e"},
                              "pod": {"name": "api-7d9", "uid": "9f1c"}},
        }),
    );
    let (s, _, body) = h.bearer("GET", "/k8s/x", &t).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["headers"]["x-keygate-account"], account.as_str());
    let (s, body) = token_form(
        &h,
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", &t),
            ("subject_token_type", TYPE_JWT),
        ],
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    // The file is all keygate reads: the cluster's own URL never is.
    assert_eq!(cluster.jwks_fetches(), 0);

    // A file that is not a key set stops keygate at start, naming it.
    std::fs::write(
        &file,
        "{\"keys\": [{\"kty\": \"oct\", \"k\": \"c2VjcmV0\"}]}",
    )
    .unwrap();
    let config = keygate::config::Config::from_toml(
        &format!(
            "[store]\nurl = \"sqlite://{}\"\n[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
            dir.path().join("bad.db").display(),
            toml.replace("{UPSTREAM}", "127.0.0.1:9")
        ),
        &Default::default(),
    )
    .unwrap();
    let err = keygate::app::start(config)
        .await
        .err()
        .expect("must not start");
    let msg = err.to_string();
    assert!(
        msg.contains("jwks_file") && msg.contains("no key usable"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_of_several_accounts_must_be_chosen_between() {
    let issuer = TestIssuer::start().await;
    let h = Harness::start(&trusting(&issuer)).await;
    let (a, _) = bound(&h, &["orders:read"], "shared", json!({})).await;
    let (b, _) = bound(&h, &["orders:read"], "shared", json!({})).await;
    let t = issuer.token("shared", json!({}));
    let (s, body) = token_form(&h, &[("grant_type", JWT_BEARER), ("assertion", &t)]).await;
    assert_eq!(
        (s, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("service_account_id"));
    for account in [&a, &b] {
        let (s, body) = token_form(
            &h,
            &[
                ("grant_type", JWT_BEARER),
                ("assertion", &t),
                ("service_account_id", account),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(
            claims_of(body["access_token"].as_str().unwrap())["sub"],
            account.as_str()
        );
    }
    // An account it is not bound to is no choice.
    let org = h.create_org(&h.unique_name()).await;
    let (other, _) = h.create_account(&org, &["orders:read"]).await;
    let (_, body) = token_form(
        &h,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &t),
            ("service_account_id", &other),
        ],
    )
    .await;
    assert_eq!(body["error"], "invalid_grant");
    // The proxy has no way to choose: refused.
    assert_eq!(
        h.bearer("GET", "/fed/x", &t).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bindings_api_validates_audits_and_keeps_owners_to_their_accounts() {
    let issuer = TestIssuer::start().await;
    let h = Harness::start(&trusting(&issuer)).await;
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let path = format!("/v1/service-accounts/{account}/federated-identities");
    for (body, param) in [
        (json!({"issuer": "nope", "subject": "s"}), "issuer"),
        (json!({"issuer": "ci", "subject": ""}), "subject"),
        (json!({"issuer": "x509", "subject": "CN=x"}), "subject"),
        (
            json!({"issuer": "ci", "subject": "s", "claims": {"aud": "x"}}),
            "claims",
        ),
        (
            json!({"issuer": "ci", "subject": "s", "claims": {"n": 1}}),
            "claims",
        ),
    ] {
        let (s, _, b) = h.admin("POST", &path, Some(body.clone())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} → {b}");
        assert!(b.to_string().contains(param), "{body} → {b}");
    }
    let id = bind(
        &h,
        &account,
        json!({"issuer": "ci", "subject": "s", "claims": {"repository": "a/b"}}),
    )
    .await;
    let (s, _, b) = h
        .admin(
            "POST",
            &path,
            Some(json!({"issuer": "ci", "subject": "s", "claims": {"repository": "a/b"}})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let spiffe = bind(
        &h,
        &account,
        json!({"issuer": "x509", "subject": "spiffe://example.org/ns/payments/sa/api"}),
    )
    .await;
    let (s, _, list) = h.admin("GET", &path, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    let (s, _, one) = h.admin("GET", &format!("{path}/{id}"), None).await;
    assert_eq!(
        (s, one["claims"]["repository"].as_str()),
        (StatusCode::OK, Some("a/b"))
    );
    let (s, _, _) = h.admin("DELETE", &format!("{path}/{spiffe}"), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = h.admin("GET", &format!("{path}/{spiffe}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Audited.
    let (_, _, audit) = h
        .admin(
            "GET",
            &format!("/v1/audit-events?service_account_id={account}&limit=100"),
            None,
        )
        .await;
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"federated_identity.create"),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"federated_identity.delete"),
        "{actions:?}"
    );
    // An owner of another organization sees none of it; a member may not bind.
    let other = h.create_org(&h.unique_name()).await;
    let (_, owner_key) = h
        .create_account_with(
            json!({"organization_id": other, "name": "own", "role": "owner", "scopes": []}),
        )
        .await;
    let (s, _, _) = h.admin_as(&owner_key, "GET", &path, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = h
        .admin_as(
            &owner_key,
            "POST",
            &path,
            Some(json!({"issuer": "ci", "subject": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, member_key) = h.create_account(&org, &["orders:read"]).await;
    let (s, _, _) = h
        .admin_as(
            &member_key,
            "POST",
            &path,
            Some(json!({"issuer": "ci", "subject": "x"})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Its own organization's owner may.
    let (_, org_owner) = h
        .create_account_with(json!({"organization_id": org, "name": "boss", "role": "owner", "scopes": ["orders:read"]}))
        .await;
    let (s, _, b) = h
        .admin_as(
            &org_owner,
            "POST",
            &path,
            Some(json!({"issuer": "ci", "subject": "y"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
}

/// A verified certificate's SPIFFE id reaches the upstream (never one a
/// client wrote), and bound as `x509` it is a credential on a
/// `client_cert` route; a certificate with two SPIFFE ids is none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_spiffe_certificate_is_a_credential_on_client_cert_routes() {
    use crate::pki::{self, Pki};
    use crate::tls::{get, tls_harness};

    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path(), "keygate");
    let h = tls_harness(
        &pki,
        Some("optional"),
        r#"
[[routes]]
name = "mesh"
prefix = "/mesh"
upstream = "http://{UPSTREAM}"
client_cert = true
scopes = { GET = ["orders:read"] }
"#,
    )
    .await;
    const ID: &str = "spiffe://example.org/ns/payments/sa/api";
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let call = |identity, path: &'static str| {
        let config = pki.client_config(identity, &[b"http/1.1"]);
        let addr = h.public_addr();
        async move {
            let stream = pki::connect(addr, config).await.unwrap();
            get(
                stream,
                path,
                &[
                    ("x-keygate-spiffe-id", "spiffe://evil/admin"),
                    ("x_keygate_spiffe_id", "spiffe://evil"),
                ],
            )
            .await
            .unwrap()
        }
    };
    // Not bound yet: the certificate alone is no credential.
    let (s, _, _) = call(Some(pki.spiffe_client("api", &[ID])), "/mesh/x").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The id is forwarded on any route, the client's own headers dropped.
    let (s, _, body) = call(Some(pki.spiffe_client("api", &[ID])), "/open/x").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["headers"]["x-keygate-spiffe-id"], ID);
    assert!(body["headers"].get("x_keygate_spiffe_id").is_none());

    bind(&h, &account, json!({"issuer": "x509", "subject": ID})).await;
    let (s, _, body) = call(Some(pki.spiffe_client("api", &[ID])), "/mesh/x").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["headers"]["x-keygate-account"], account.as_str());
    assert_eq!(body["headers"]["x-keygate-spiffe-id"], ID);
    // Another workload's id, two ids at once, or no certificate: refused.
    let (s, _, _) = call(
        Some(pki.spiffe_client("api", &["spiffe://example.org/ns/other/sa/x"])),
        "/mesh/x",
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, body) = call(
        Some(pki.spiffe_client("api", &[ID, "spiffe://example.org/ns/other/sa/x"])),
        "/open/x",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body["headers"].get("x-keygate-spiffe-id").is_none(),
        "{body}"
    );
    let (s, _, _) = call(None, "/mesh/x").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Disabled: the certificate stops at once.
    let (s, _, _) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = call(Some(pki.spiffe_client("api", &[ID])), "/mesh/x").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// The CLI binds, lists and unbinds, and a binding it made lets the
/// workload in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_binds_lists_and_unbinds_identities() {
    use crate::operations::cli;

    let issuer = TestIssuer::start().await;
    let h = Harness::start(&trusting(&issuer)).await;
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let (ok, bound, err) = cli(
        &h,
        &[
            "federated-identity",
            "bind",
            &account,
            "--issuer",
            "ci",
            "--subject",
            GITHUB_SUB,
            "--claim",
            "repository=acme/app",
            "--claim",
            "environment=prod",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(bound["claims"]["environment"], "prod");
    let binding = bound["id"].as_str().unwrap().to_string();
    assert_eq!(
        h.bearer("GET", "/fed/x", &github(&issuer, "prod")).await.0,
        StatusCode::OK
    );
    let (ok, list, err) = cli(&h, &["identity", "list", &account]).await;
    assert!(ok, "{err}");
    assert_eq!(list["data"][0]["id"], binding.as_str());
    // A claim that is not NAME=VALUE is refused before any request.
    let (ok, _, err) = cli(
        &h,
        &[
            "federated-identity",
            "bind",
            &account,
            "--issuer",
            "ci",
            "--subject",
            "s",
            "--claim",
            "oops",
        ],
    )
    .await;
    assert!(!ok);
    assert!(err.contains("NAME=VALUE"), "{err}");
    let (ok, _, err) = cli(&h, &["federated-identity", "unbind", &account, &binding]).await;
    assert!(ok, "{err}");
    assert_eq!(
        h.bearer("GET", "/fed/x", &github(&issuer, "prod")).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// The console's account page lists bindings, binds (a bad claim line is
/// refused naming the field, nothing written) and unbinds after a
/// confirmation; a bound token works, then stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_binds_and_unbinds_identities() {
    use crate::console::{post, sign_in, text};

    let issuer = TestIssuer::start().await;
    let h = Harness::start(&trusting(&issuer)).await;
    let org = h.create_org(&h.unique_name()).await;
    let (account, _) = h.create_account(&org, &["orders:read"]).await;
    let s = sign_in(&h, &h.admin_key).await;
    let page = format!("/console/service-accounts/{account}");
    let bind = |claims: &'static str| {
        [
            ("csrf", s.csrf.as_str()),
            ("form", "binding"),
            ("issuer", "ci"),
            ("subject", GITHUB_SUB),
            ("claims", claims),
        ]
    };
    let (status, _, body) = post(
        &h,
        Some(&s.cookie),
        &format!("{page}/federated-identities"),
        &bind("repository"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains(r#"name="claims" value="repository" aria-invalid="true""#),
        "{body}"
    );
    let (_, _, list) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{account}/federated-identities"),
            None,
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "nothing written");

    let (status, headers, body) = post(
        &h,
        Some(&s.cookie),
        &format!("{page}/federated-identities"),
        &bind("repository=acme/app, environment=prod"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(crate::support::header(&headers, "location").ends_with("?done=bound"));
    let (_, _, shown) = h
        .admin_with("GET", &page, &[("cookie", &s.cookie)], vec![])
        .await;
    let shown = text(&shown);
    assert!(
        shown.contains(GITHUB_SUB) && shown.contains("environment=prod"),
        "{shown}"
    );
    let t = github(&issuer, "prod");
    assert_eq!(h.bearer("GET", "/fed/x", &t).await.0, StatusCode::OK);

    let (_, _, list) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{account}/federated-identities"),
            None,
        )
        .await;
    let binding = list["data"][0]["id"].as_str().unwrap().to_string();
    let unbind = format!("{page}/federated-identities/{binding}/delete");
    // First the confirmation page; nothing changes yet.
    let (status, _, body) = post(&h, Some(&s.cookie), &unbind, &[("csrf", &s.csrf)], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("Unbind this identity?"), "{body}");
    assert_eq!(h.bearer("GET", "/fed/x", &t).await.0, StatusCode::OK);
    let (status, _, _) = post(
        &h,
        Some(&s.cookie),
        &unbind,
        &[("csrf", &s.csrf), ("confirm", "yes")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        h.bearer("GET", "/fed/x", &t).await.0,
        StatusCode::UNAUTHORIZED
    );
}
