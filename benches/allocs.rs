//! Heap allocations per request, counted by an instrumented global
//! allocator, through a real keygate (in process, real sockets) to a real
//! upstream. The public route pays for hyper, the client and forwarding;
//! every authenticated route is compared against it, so the difference is
//! what authentication adds per request.
//!
//! Run: `cargo bench --bench allocs`. Figures go to benches/README.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const REQUESTS: usize = 2_000;
const ADMIN_KEY: &str = "alloc-bench-admin-key-0123456789-abcdefgh";

async fn ok(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = upstream.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = upstream.accept().await {
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(s), service_fn(ok)));
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[store]
url = "sqlite://{}/a.db"
poll_interval = "1h"
max_staleness = "10h"
[[routes]]
name = "open"
prefix = "/open"
upstream = "http://{up}"
public = true
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://{up}"
audience = "orders-api"
scopes = {{ GET = ["orders:read"] }}
"#,
        dir.path().display()
    );
    let env: HashMap<String, String> =
        [("KEYGATE_ADMIN_KEY".to_string(), ADMIN_KEY.to_string())].into();
    let config = keygate::config::Config::from_toml(&toml, &env).unwrap();
    let running = keygate::app::start(config).await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let admin = format!("http://{}", running.admin_addr());
    let public = format!("http://{}", running.public_addr());

    let call = |method: &'static str,
                url: String,
                auth: Option<String>,
                body: Option<String>,
                form: bool| {
        let client = client.clone();
        async move {
            let mut req = Request::builder().method(method).uri(url);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            req = req.header(
                "content-type",
                if form {
                    "application/x-www-form-urlencoded"
                } else {
                    "application/json"
                },
            );
            let res = client
                .request(
                    req.body(Full::new(Bytes::from(body.unwrap_or_default())))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = res.status();
            let bytes = res.into_body().collect().await.unwrap().to_bytes();
            (status, bytes)
        }
    };
    let field = |b: &Bytes, k: &str| -> String {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        v.pointer(k).and_then(|x| x.as_str()).unwrap().to_string()
    };
    let bearer = format!("Bearer {ADMIN_KEY}");
    let (_, org) = call(
        "POST",
        format!("{admin}/v1/organizations"),
        Some(bearer.clone()),
        Some(r#"{"name":"a"}"#.into()),
        false,
    )
    .await;
    let org = field(&org, "/id");
    let (_, acct) = call(
        "POST",
        format!("{admin}/v1/service-accounts"),
        Some(bearer.clone()),
        Some(format!(
            r#"{{"organization_id":"{org}","name":"b","scopes":["orders:read"]}}"#
        )),
        false,
    )
    .await;
    let key = field(&acct, "/api_key/value");
    let form = format!(
        "grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token={key}\
         &subject_token_type=urn:keygate:params:oauth:token-type:api_key&audience=orders-api"
    );
    let (_, tok) = call(
        "POST",
        format!("{public}/oauth2/token"),
        None,
        Some(form),
        true,
    )
    .await;
    let jwt = field(&tok, "/access_token");

    println!(
        "allocations per request, {REQUESTS} sequential requests on one keep-alive connection"
    );
    let mut baseline = 0.0;
    for (name, path, auth) in [
        ("public route (hyper + forwarding)", "/open/x", None),
        (
            "API key, headers forwarding",
            "/orders/x",
            Some(format!("Bearer {key}")),
        ),
        (
            "JWT (cached), headers forwarding",
            "/orders/x",
            Some(format!("Bearer {jwt}")),
        ),
    ] {
        // Warm up: pooled connections, verified-token cache, lazy identity.
        for _ in 0..50 {
            assert!(
                call("GET", format!("{public}{path}"), auth.clone(), None, false)
                    .await
                    .0
                    .is_success()
            );
        }
        let region = Region::new(GLOBAL);
        for _ in 0..REQUESTS {
            call("GET", format!("{public}{path}"), auth.clone(), None, false).await;
        }
        let stats = region.change();
        let per = stats.allocations as f64 / REQUESTS as f64;
        if baseline == 0.0 {
            baseline = per;
        }
        println!(
            "{name:<40} {per:>7.1} allocations ({:+.1} vs public route), {:>8.0} bytes",
            per - baseline,
            stats.bytes_allocated as f64 / REQUESTS as f64
        );
    }
    running.shutdown().await;
}
