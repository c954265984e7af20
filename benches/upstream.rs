//! A minimal upstream: answers every request with 200 and a JSON echo of the
//! method, path and headers it received, so you can see what keygate
//! forwards. Used by the README walkthrough and the load harness.
//!
//! `cargo bench --bench upstream -- --listen 127.0.0.1:9000`
//! `--fixed`: answer a fixed 3-byte body instead (the load harness's floor).
//! `--grpc`: serve the standard gRPC health service instead (h2c).
//! HTTP/1.1 and h2c (prior knowledge) are both spoken on the one port.
//! Without `--listen` it exits at once, so a plain `cargo bench` is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

async fn echo(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into(),
            )
        })
        .collect();
    let body = serde_json::json!({
        "method": req.method().as_str(),
        "path": req.uri().path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
    });
    let mut res = Response::new(Full::new(Bytes::from(
        [
            serde_json::to_vec_pretty(&body).unwrap_or_default(),
            b"\n".to_vec(),
        ]
        .concat(),
    )));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

async fn ok(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(b"ok\n"))))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(addr) = args
        .iter()
        .position(|a| a == "--listen")
        .and_then(|i| args.get(i + 1))
    else {
        println!("upstream: idle (pass --listen ADDR to serve)");
        return;
    };
    let fixed = args.iter().any(|a| a == "--fixed");
    let listener = TcpListener::bind(addr.as_str()).await.expect("bind");
    eprintln!(
        "echo upstream listening on http://{}",
        listener.local_addr().expect("addr")
    );
    if args.iter().any(|a| a == "--grpc") {
        let (reporter, service) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("", tonic_health::ServingStatus::Serving)
            .await;
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .expect("gRPC server");
        return;
    }
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let io = TokioIo::new(stream);
            let _ = if fixed {
                builder.serve_connection(io, service_fn(ok)).await
            } else {
                builder.serve_connection(io, service_fn(echo)).await
            };
        });
    }
}
