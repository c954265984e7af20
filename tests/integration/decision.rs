//! The decision listener, asked as the proxies teams already run ask it:
//! Traefik's ForwardAuth and nginx's `auth_request` shapes over HTTP,
//! Envoy's `http_service` path shape, and Envoy's `ext_authz` gRPC `Check`
//! from a client built from Envoy's own protos. Refusals must equal the
//! proxy's for the same request: one set of phases decides both.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{address, Address, SocketAddress};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{
    HttpRequest, Peer, Request as AttrRequest,
};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};

use crate::observability::scrape;
use crate::support::{header, send, Harness};

/// Routes beside the harness's own: one only decisions answer, one with a
/// tight limit, one that hands the upstream a JWT.
const ROUTES: &str = r#"
[[routes]]
name = "only"
prefix = "/only"
scopes = { GET = ["only:read"] }

[[routes]]
name = "limited"
prefix = "/limited"
upstream = "http://{UPSTREAM}"
rate_limit = "2/m"

[[routes]]
name = "jwtr"
prefix = "/j"
upstream = "http://{UPSTREAM}"
forward_auth = "jwt"
audience = "j-api"
"#;

async fn harness() -> Harness {
    Harness::start_with(None, ROUTES, &[("KEYGATE_DECISION__LISTEN", "127.0.0.1:0")]).await
}

/// A decision over HTTP with exactly `headers`.
async fn authz(
    h: &Harness,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    send(
        &h.client,
        h.decision_addr(),
        "GET",
        path,
        headers,
        Vec::new(),
    )
    .await
}

/// Traefik's ForwardAuth shape for `method path`, with extra headers.
async fn traefik(
    h: &Harness,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Value) {
    let mut headers = vec![
        ("x-forwarded-method", method),
        ("x-forwarded-uri", path),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example"),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    headers.extend_from_slice(extra);
    authz(h, "/authz", &headers).await
}

/// The proxy's answer and the decision's for the same request match.
async fn same_refusal(h: &Harness, method: &str, path: &str, auth: &[(&str, &str)]) -> StatusCode {
    let (proxy_status, proxy_headers, proxy_body) =
        send(&h.client, h.public_addr(), method, path, auth, Vec::new()).await;
    let (status, headers, body) = traefik(h, method, path, auth).await;
    assert_eq!(
        status, proxy_status,
        "{method} {path}: {body} vs {proxy_body}"
    );
    assert_eq!(body, proxy_body, "{method} {path}");
    for name in ["www-authenticate", "retry-after", "content-type"] {
        assert_eq!(
            header(&headers, name),
            header(&proxy_headers, name),
            "{name}"
        );
    }
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_decisions_allow_with_identity_and_refuse_like_the_proxy() {
    let h = harness().await;
    let org = h.create_org("decide").await;
    let (account, key) = h.create_account(&org, &["orders:read", "only:read"]).await;
    let bearer = format!("Bearer {key}");
    let auth = [("authorization", bearer.as_str())];

    // Traefik: allowed, the identity for authResponseHeaders.
    let spoof = [
        ("authorization", bearer.as_str()),
        ("x-keygate-account", "00000000-0000-0000-0000-000000000000"),
    ];
    let (status, headers, _) = traefik(&h, "GET", "/orders/1?x=1", &spoof).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-keygate-account"), account);
    assert_eq!(header(&headers, "x-keygate-org"), org);
    assert!(header(&headers, "x-keygate-scopes").contains("orders:read"));

    // nginx's conventional fields, and Envoy's http_service path.
    let (status, headers, _) = authz(
        &h,
        "/authz",
        &[
            ("x-original-uri", "/orders/2"),
            ("x-original-method", "GET"),
            ("authorization", &bearer),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-keygate-account"), account);
    let (status, _, _) = authz(&h, "/authz/orders/3?y=2", &auth).await;
    assert_eq!(status, StatusCode::OK);

    // Refusals are the proxy's: no credential, a bad one, a missing scope,
    // a method the route does not mention, a climbing path, no route.
    assert_eq!(same_refusal(&h, "GET", "/orders/1", &[]).await, 401);
    assert_eq!(
        same_refusal(
            &h,
            "GET",
            "/orders/1",
            &[("authorization", "Bearer kg_nope")]
        )
        .await,
        401
    );
    assert_eq!(same_refusal(&h, "POST", "/orders/1", &auth).await, 403);
    assert_eq!(same_refusal(&h, "DELETE", "/orders/1", &auth).await, 403);
    assert_eq!(
        same_refusal(&h, "GET", "/orders/%2e%2e/admin", &auth).await,
        400
    );
    assert_eq!(same_refusal(&h, "GET", "/nowhere", &auth).await, 404);

    // A request that names no original request is a 400, never an allow.
    let (status, _, _) = authz(&h, "/authz", &auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = traefik(&h, "GET", "orders/1", &auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = traefik(&h, "G ET", "/orders/1", &auth).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A client's second naming of the original request, beside Traefik's.
    let (status, _, _) = traefik(
        &h,
        "GET",
        "/orders/1",
        &[("authorization", &bearer), ("x-original-uri", "/open/x")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Two Host fields, as on the proxy.
    let (status, _, _) = traefik(
        &h,
        "GET",
        "/orders/1",
        &[("authorization", &bearer), ("host", "a"), ("host", "b")],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A decision-only route: decided here, unknown to the proxy.
    let (status, headers, _) = traefik(&h, "GET", "/only/x", &auth).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-keygate-account"), account);
    let (status, _, _) = h.bearer("GET", "/only/x", &key).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Limits count decisions and answer their fields.
    let (status, headers, _) = traefik(&h, "GET", "/limited/a", &auth).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "ratelimit-remaining"), "1");
    traefik(&h, "GET", "/limited/a", &auth).await;
    let (status, headers, _) = traefik(&h, "GET", "/limited/a", &auth).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&headers, "retry-after").parse::<u64>().unwrap() >= 1);

    // Counted apart from proxied requests.
    let m = scrape(&h).await;
    let decided = [
        ("listener", "decision"),
        ("route", "orders"),
        ("status", "2xx"),
        ("auth", "ok"),
    ];
    assert!(m.get("keygate_requests_total", &decided) >= 3.0, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_or_disabled_account_is_refused_at_the_next_decision() {
    let h = harness().await;
    let org = h.create_org("revoke").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let bearer = format!("Bearer {key}");
    let ok = traefik(&h, "GET", "/orders/1", &[("authorization", &bearer)]).await;
    assert_eq!(ok.0, StatusCode::OK);
    let (status, _, body) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(json!({ "enabled": false })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // No wait: the write reached this replica's cache before it answered.
    let (status, _, _) = traefik(&h, "GET", "/orders/1", &[("authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

fn check(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    address: Some(address::Address::SocketAddress(SocketAddress {
                        address: "203.0.113.9".into(),
                        ..SocketAddress::default()
                    })),
                }),
                ..Peer::default()
            }),
            request: Some(AttrRequest {
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    host: "api.example".into(),
                    headers,
                    ..HttpRequest::default()
                }),
                ..AttrRequest::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// `(name, value)` pairs of ext_authz header options.
fn pairs(
    options: &[envoy_types::pb::envoy::config::core::v3::HeaderValueOption],
) -> HashMap<String, String> {
    options
        .iter()
        .filter_map(|o| o.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

fn denied(r: &CheckResponse) -> (i32, u16, HashMap<String, String>, String) {
    let code = r.status.as_ref().map_or(-1, |s| s.code);
    match &r.http_response {
        Some(HttpResponse::DeniedResponse(d)) => (
            code,
            d.status.as_ref().map_or(0, |s| s.code as u16),
            pairs(&d.headers),
            d.body.clone(),
        ),
        other => panic!("not denied: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_checks_answer_as_envoys_ext_authz_expects() {
    let h = harness().await;
    let org = h.create_org("envoy").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let bearer = format!("Bearer {key}");
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", h.decision_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut envoy = AuthorizationClient::new(channel);

    // Allowed: identity set, credential and spoofed identity removed.
    let ok = envoy
        .check(check(
            "GET",
            "/orders/1?x=1",
            &[
                ("authorization", &bearer),
                ("x-keygate-account", "spoofed"),
                ("x_keygate_org", "spoofed"),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.status.as_ref().unwrap().code, 0);
    let Some(HttpResponse::OkResponse(allowed)) = &ok.http_response else {
        panic!("{ok:?}");
    };
    let set = pairs(&allowed.headers);
    assert_eq!(set["x-keygate-account"], account);
    assert_eq!(set["x-keygate-org"], org);
    for gone in ["authorization", "x-keygate-account", "x_keygate_org"] {
        assert!(
            allowed.headers_to_remove.iter().any(|n| n == gone),
            "{gone}: {:?}",
            allowed.headers_to_remove
        );
    }

    // Refused with the proxy's status, challenge and body, and gRPC's code.
    let r = envoy
        .check(check("GET", "/orders/1", &[]))
        .await
        .unwrap()
        .into_inner();
    let (code, status, headers, body) = denied(&r);
    assert_eq!((code, status), (16, 401));
    assert!(
        headers["www-authenticate"].starts_with("Bearer"),
        "{headers:?}"
    );
    let (_, _, proxy_body) = h.proxy("GET", "/orders/1", &[]).await;
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), proxy_body);
    let r = envoy
        .check(check("POST", "/orders/1", &[("authorization", &bearer)]))
        .await
        .unwrap()
        .into_inner();
    let (code, status, headers, _) = denied(&r);
    assert_eq!((code, status), (7, 403));
    assert!(headers["www-authenticate"].contains("insufficient_scope"));
    for _ in 0..2 {
        envoy
            .check(check("GET", "/limited/a", &[("authorization", &bearer)]))
            .await
            .unwrap();
    }
    let r = envoy
        .check(check("GET", "/limited/a", &[("authorization", &bearer)]))
        .await
        .unwrap()
        .into_inner();
    let (code, status, headers, _) = denied(&r);
    assert_eq!((code, status), (8, 429));
    assert!(headers.contains_key("retry-after"), "{headers:?}");

    // Bad paths are the proxy's 400, never an allow.
    for path in ["/orders/../admin", "/orders/%2e%2e/x", "orders", ""] {
        let r = envoy
            .check(check("GET", path, &[("authorization", &bearer)]))
            .await
            .unwrap()
            .into_inner();
        let denial = matches!(r.http_response, Some(HttpResponse::DeniedResponse(_)));
        assert!(denial, "{path:?}: {r:?}");
        let (code, status, _, _) = denied(&r);
        assert_eq!((code, status), (3, 400), "{path:?}");
    }
    // A CheckRequest without what it must carry is INVALID_ARGUMENT.
    let empty = envoy.check(CheckRequest::default()).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    let no_method = envoy.check(check("", "/orders/1", &[])).await.unwrap_err();
    assert_eq!(no_method.code(), tonic::Code::InvalidArgument);
    // Headers past the listener's limit: 431.
    let big = "x".repeat(130 * 1024);
    let r = envoy
        .check(check(
            "GET",
            "/orders/1",
            &[("authorization", &bearer), ("x-big", &big)],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(denied(&r).1, 431);

    // A JWT route: the upstream's token takes Authorization's place.
    let (_, jwt_key) = h.create_account(&org, &[]).await;
    let ok = envoy
        .check(check(
            "GET",
            "/j/1",
            &[("authorization", &format!("Bearer {jwt_key}"))],
        ))
        .await
        .unwrap()
        .into_inner();
    let Some(HttpResponse::OkResponse(allowed)) = &ok.http_response else {
        panic!("{ok:?}");
    };
    let set = pairs(&allowed.headers);
    assert!(set["authorization"].starts_with("Bearer ey"), "{set:?}");
    assert_ne!(set["authorization"], format!("Bearer {jwt_key}"));
    assert!(!allowed
        .headers_to_remove
        .iter()
        .any(|n| n == "authorization"));
}
