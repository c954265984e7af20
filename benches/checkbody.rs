//! Not a measurement: writes the body of one gRPC `Authorization/Check`
//! (the 5-byte gRPC frame header and the encoded `CheckRequest`) asking
//! about `GET /orders/x` with `Authorization: Bearer <key>`, for h2load in
//! benches/decision.sh.
//!
//! `cargo bench --bench checkbody -- --key kg_… --out check.bin`
//! Without `--out` it exits at once, so a plain `cargo bench` is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use prost::Message as _;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(out) = arg(&args, "--out") else {
        println!("checkbody: idle (pass --key KEY --out FILE)");
        return;
    };
    let key = arg(&args, "--key").expect("--key");
    let path = arg(&args, "--path").unwrap_or_else(|| "/orders/x".into());
    let headers: HashMap<String, String> = [
        ("authorization".to_string(), format!("Bearer {key}")),
        (":authority".to_string(), "api.example".to_string()),
        ("user-agent".to_string(), "bench".to_string()),
    ]
    .into();
    let check = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: "GET".into(),
                    path,
                    host: "api.example".into(),
                    headers,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    };
    let message = check.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    framed.extend_from_slice(&message);
    std::fs::write(&out, framed).expect("write");
}
