//! Every protocol an API speaks, through keygate with real clients: HTTP/2
//! with prior knowledge (h2c), gRPC with tonic (unary and streaming,
//! refusals as gRPC status codes, trailers), and WebSocket with
//! tokio-tungstenite (echo, refusals, revocation and idle limits reaching
//! open connections).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::servers::{spawn_grpc, spawn_ws_echo};
use crate::support::Harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_runs_the_same_phases() {
    let h = Harness::start("").await;
    let org = h.create_org("h2c").await;
    let (_, key) = h.create_account(&org, &["orders:read"]).await;
    let tcp = tokio::net::TcpStream::connect(h.public_addr())
        .await
        .unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let request = |key: Option<&str>, extra: (&str, &str)| {
        let mut r =
            Request::get(format!("http://{}/orders/1", h.public_addr())).header(extra.0, extra.1);
        if let Some(k) = key {
            r = r.header("authorization", format!("Bearer {k}"));
        }
        r.body(Empty::<Bytes>::new()).unwrap()
    };
    // Several streams on the one connection: allowed, refused, spoofing.
    let res = send
        .send_request(request(Some(&key), ("x-keygate-account", "spoofed")))
        .await
        .unwrap();
    assert_eq!(
        (res.status(), res.version()),
        (StatusCode::OK, Version::HTTP_2)
    );
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_ne!(body["headers"]["x-keygate-account"], "spoofed", "{body}");
    assert!(body["headers"].get("authorization").is_none());
    // The upstream speaks HTTP/1.1 (the route's default) whatever the client spoke.
    assert_eq!(body["version"], "HTTP/1.1");
    let res = send
        .send_request(request(None, ("x-a", "b")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().contains_key("www-authenticate"));
    let res = send
        .send_request(request(Some("kg_not_a_real_key"), ("x-a", "b")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

/// Routes to a gRPC server: the service needs `health:read`; `Watch`, a
/// longer prefix, needs `health:watch` too and is rate-limited.
fn grpc_routes(upstream: SocketAddr) -> String {
    format!(
        r#"
[[routes]]
name = "health"
prefix = "/grpc.health.v1.Health"
upstream = "http://{upstream}"
upstream_protocol = "h2c"
scopes = {{ POST = ["health:read"] }}

[[routes]]
name = "health-watch"
prefix = "/grpc.health.v1.Health/Watch"
upstream = "http://{upstream}"
upstream_protocol = "h2c"
scopes = {{ POST = ["health:read", "health:watch"] }}
rate_limit = "2/m burst 2"
"#
    )
}

async fn grpc_client(
    addr: SocketAddr,
    key: Option<String>,
) -> HealthClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone,
    >,
> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    HealthClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        if let Some(k) = &key {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {k}").parse().unwrap());
        }
        Ok(req)
    })
}

fn check(service: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: service.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_unary_and_streaming_calls_pass_and_refusals_are_grpc_statuses() {
    let (upstream, reporter) = spawn_grpc().await;
    let h = Harness::start(&grpc_routes(upstream)).await;
    let org = h.create_org("grpc").await;
    let (_, reader) = h.create_account(&org, &["health:read"]).await;
    let (_, watcher) = h
        .create_account(&org, &["health:read", "health:watch"])
        .await;
    let (_, other) = h.create_account(&org, &["orders:read"]).await;

    // Unary, allowed.
    let mut client = grpc_client(h.public_addr(), Some(reader.clone())).await;
    let res = client.check(check("orders")).await.unwrap();
    assert_eq!(res.into_inner().status, ServingStatus::Serving as i32);
    // The upstream's own error status arrives: trailers are forwarded.
    let err = client.check(check("nope")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // No credential, a wrong one: UNAUTHENTICATED.
    let mut anonymous = grpc_client(h.public_addr(), None).await;
    let err = anonymous.check(check("orders")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("credential"), "{err:?}");
    let mut forged = grpc_client(h.public_addr(), Some("kg_forged".into())).await;
    let err = forged.check(check("orders")).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    // A key without the method's scope: PERMISSION_DENIED, for the
    // service, and for the method named by its own longer prefix.
    let mut outsider = grpc_client(h.public_addr(), Some(other)).await;
    let err = outsider.check(check("orders")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // keygate's own words (a gRPC answer), not a mapped HTTP 403.
    assert!(err.message().contains("scope"), "{err:?}");
    let err = client.watch(check("orders")).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // Server streaming: updates flow through while the call is open.
    let mut client = grpc_client(h.public_addr(), Some(watcher.clone())).await;
    let mut stream = client.watch(check("orders")).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);
    reporter
        .set_service_status("orders", tonic_health::ServingStatus::NotServing)
        .await;
    let next = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("the update never came through")
        .unwrap()
        .unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    drop(stream);

    // The Watch route allows 2 a minute: the third is RESOURCE_EXHAUSTED.
    let _second = client.watch(check("orders")).await.unwrap();
    let err = client.watch(check("orders")).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.metadata().get("retry-after").is_some(), "{err:?}");
    // The service's own limit is separate: unary calls still pass.
    assert!(client.check(check("orders")).await.is_ok());
}

/// A WebSocket route to an echo server.
fn ws_routes(upstream: SocketAddr) -> String {
    format!(
        r#"
[[routes]]
name = "ws"
prefix = "/ws"
upstream = "http://{upstream}"
websocket = true
scopes = {{ GET = ["chat:read"] }}

[[routes]]
name = "ws-off"
prefix = "/ws-off"
upstream = "http://{upstream}"
"#
    )
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut req = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(k) = key {
        req.headers_mut()
            .insert("authorization", format!("Bearer {k}").parse().unwrap());
    }
    req.headers_mut()
        .insert("x-keygate-account", "spoofed".parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .map(|(ws, _)| ws)
}

/// Waits until the server side ends `ws`; how long that took.
async fn closed_within(ws: &mut Ws, limit: Duration) -> Duration {
    let started = Instant::now();
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), ws.next()).await {
            Err(_) => panic!("still open after {limit:?}"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return started.elapsed(),
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes_through_and_revocation_closes_it() {
    let upstream = spawn_ws_echo().await;
    let h = Harness::start(&ws_routes(upstream)).await;
    let org = h.create_org("ws").await;
    let (account, key) = h.create_account(&org, &["chat:read"]).await;
    let (_, other) = h.create_account(&org, &["orders:read"]).await;

    let mut ws = ws_connect(h.public_addr(), "/ws/chat", Some(&key))
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::binary(vec![0u8, 1, 2, 255])
    );
    // The handshake went through header hygiene like any request.
    ws.send(Message::text("headers")).await.unwrap();
    let seen: Value = match ws.next().await.unwrap().unwrap() {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(seen["x-keygate-account"], account, "{seen}");
    assert!(seen.get("authorization").is_none(), "{seen}");

    // Refused handshakes get HTTP answers, never a tunnel.
    for (path, key, want) in [
        ("/ws/chat", None, StatusCode::UNAUTHORIZED),
        ("/ws/chat", Some(other.as_str()), StatusCode::FORBIDDEN),
    ] {
        match ws_connect(h.public_addr(), path, key).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), want),
            other => panic!("{path} {key:?}: {other:?}"),
        }
    }
    // A route without `websocket = true` never upgrades.
    assert!(ws_connect(h.public_addr(), "/ws-off/chat", Some(&key))
        .await
        .is_err());

    // Revoke the key: the open connection is closed within seconds.
    let (_, _, keys) = h
        .admin(
            "GET",
            &format!("/v1/service-accounts/{account}/api-keys"),
            None,
        )
        .await;
    let key_id = keys["data"][0]["id"].as_str().unwrap().to_string();
    let (status, _, _) = h
        .admin(
            "DELETE",
            &format!("/v1/service-accounts/{account}/api-keys/{key_id}"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status}");
    let took = closed_within(&mut ws, Duration::from_secs(5)).await;
    eprintln!("revoked key's WebSocket closed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_account_closes_its_websockets_and_idle_ones_close_too() {
    let upstream = spawn_ws_echo().await;
    let h = Harness::start_with(
        None,
        &ws_routes(upstream),
        &[("KEYGATE_SERVER__WEBSOCKET_IDLE_TIMEOUT", "2s")],
    )
    .await;
    let org = h.create_org("ws").await;
    let (account, key) = h.create_account(&org, &["chat:read"]).await;
    let (_, idle_key) = h.create_account(&org, &["chat:read"]).await;

    let mut busy = ws_connect(h.public_addr(), "/ws/a", Some(&key))
        .await
        .unwrap();
    let mut idle = ws_connect(h.public_addr(), "/ws/b", Some(&idle_key))
        .await
        .unwrap();
    // Traffic keeps a tunnel alive past the idle limit.
    for i in 0..6 {
        busy.send(Message::text(format!("{i}"))).await.unwrap();
        assert_eq!(
            busy.next().await.unwrap().unwrap(),
            Message::text(format!("{i}"))
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // The silent one is closed: idle limit 2 s, checked every second, and
    // three seconds have passed (allow a loaded machine two more).
    closed_within(&mut idle, Duration::from_secs(2)).await;

    let (status, _, body) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(serde_json::json!({ "enabled": false })),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    closed_within(&mut busy, Duration::from_secs(5)).await;
}
