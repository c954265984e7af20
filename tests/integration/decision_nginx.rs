//! nginx in front of an upstream, asking keygate's decision listener
//! through `auth_request`, with the configuration README shows: allowed
//! requests reach the upstream with keygate's identity (and without the
//! client's credential or spoofed identity), refused ones get keygate's
//! 401 and 403. Needs Debian's `nginx-light`; `.ci/run` installs it and
//! sets `KEYGATE_TEST_NGINX=1`, which makes its absence a failure.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::servers::spawn_upstream;
use crate::support::{header, send, Harness};

/// The nginx site README shows, for this test's addresses.
fn site(dir: &std::path::Path, port: u16, upstream: &str, decision: &str) -> String {
    let d = dir.display();
    format!(
        r#"
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      auth_request /_keygate;
      auth_request_set $kg_account $upstream_http_x_keygate_account;
      auth_request_set $kg_org $upstream_http_x_keygate_org;
      auth_request_set $kg_project $upstream_http_x_keygate_project;
      auth_request_set $kg_scopes $upstream_http_x_keygate_scopes;
      auth_request_set $kg_credential $upstream_http_x_keygate_credential;
      proxy_set_header X-Keygate-Account $kg_account;
      proxy_set_header X-Keygate-Org $kg_org;
      proxy_set_header X-Keygate-Project $kg_project;
      proxy_set_header X-Keygate-Scopes $kg_scopes;
      proxy_set_header X-Keygate-Credential $kg_credential;
      proxy_set_header Authorization "";
      proxy_set_header X-API-Key "";
      proxy_pass http://{upstream};
    }}
    location = /_keygate {{
      internal;
      proxy_pass http://{decision}/authz;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Forwarded-Uri "";
      proxy_set_header X-Forwarded-Method "";
      proxy_set_header X-Forwarded-For $remote_addr;
    }}
  }}
}}
"#
    )
}

/// nginx, stopped when dropped.
struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nginx_binary() -> Option<&'static str> {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_asks_keygate_and_forwards_its_identity() {
    let Some(nginx) = nginx_binary() else {
        assert!(
            std::env::var("KEYGATE_TEST_NGINX").is_err(),
            "KEYGATE_TEST_NGINX is set but nginx is not installed"
        );
        eprintln!("skipped: nginx is not installed (apt-get install nginx-light)");
        return;
    };
    let h = Harness::start_with(None, "", &[("KEYGATE_DECISION__LISTEN", "127.0.0.1:0")]).await;
    let org = h.create_org("behind-nginx").await;
    let (account, key) = h.create_account(&org, &["orders:read"]).await;
    let (upstream, _) = spawn_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let (socket, port) = crate::support::refused_port();
    drop(socket);
    let conf = dir.path().join("nginx.conf");
    std::fs::write(
        &conf,
        site(
            dir.path(),
            port,
            &upstream.to_string(),
            &h.decision_addr().to_string(),
        ),
    )
    .unwrap();
    let _nginx = Nginx(
        Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(front).await.is_err() {
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "nginx did not start: {log}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Allowed: the upstream sees keygate's identity, not the credential
    // nor what the client claimed.
    let bearer = format!("Bearer {key}");
    let (status, _, echo) = send(
        &h.client,
        front,
        "GET",
        "/orders/1",
        &[("authorization", &bearer), ("x-keygate-account", "spoofed")],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{echo}");
    let seen = &echo["headers"];
    assert_eq!(seen["x-keygate-account"], account.as_str(), "{echo}");
    assert_eq!(seen["x-keygate-org"], org.as_str(), "{echo}");
    assert!(seen.get("authorization").is_none(), "{echo}");

    // A client naming another original request (a public route) is judged
    // on the one it sent: nginx clears the Traefik convention's fields.
    let (status, _, _) = send(
        &h.client,
        front,
        "GET",
        "/orders/1",
        &[
            ("x-forwarded-uri", "/open/x"),
            ("x-forwarded-method", "GET"),
        ],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Refused: keygate's 401 (with its challenge) and 403.
    let (status, headers, _) = send(&h.client, front, "GET", "/orders/1", &[], Vec::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        header(&headers, "www-authenticate").starts_with("Bearer"),
        "{headers:?}"
    );
    let (status, _, _) = send(
        &h.client,
        front,
        "POST",
        "/orders/1",
        &[("authorization", &bearer)],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A path keygate will not route: refused before the upstream.
    let (status, _, _) = send(
        &h.client,
        front,
        "GET",
        "/orders/%2e%2e/admin",
        &[("authorization", &bearer)],
        Vec::new(),
    )
    .await;
    assert_ne!(status, StatusCode::OK);

    // Revoked: the next request through nginx is refused.
    let (status, _, _) = h
        .admin(
            "PATCH",
            &format!("/v1/service-accounts/{account}"),
            Some(serde_json::json!({ "enabled": false })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = send(
        &h.client,
        front,
        "GET",
        "/orders/1",
        &[("authorization", &bearer)],
        Vec::new(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
