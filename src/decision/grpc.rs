//! Envoy's `ext_authz` over gRPC: `envoy.service.auth.v3.Authorization/Check`
//! as Envoy's filter (and Istio's `CUSTOM` action) calls it, with the types
//! of Envoy's data-plane-api protos (the `envoy-types` crate).
//!
//! The original request is `attributes.request.http` (method, path with
//! query, headers); the client is `attributes.source.address`. Allowed:
//! `OkHttpResponse` with the identity in `headers` (overwriting what the
//! client sent), the credential and any client-sent `X-Keygate-*` in
//! `headers_to_remove`, the rate-limit fields in `response_headers_to_add`.
//! Refused: `DeniedHttpResponse` with the proxy's status, headers and body,
//! and the matching gRPC code (16, 7, 8, …). A `CheckRequest` without the
//! HTTP attributes or a method is `INVALID_ARGUMENT`, never a decision.

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Address, Authorization, AuthorizationServer, CheckRequest, CheckResponse, DeniedHttpResponse,
    HeaderAppendAction, HeaderValue as PbHeaderValue, HeaderValueOption, HttpResponse, HttpStatus,
    OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use tower::ServiceExt as _;

use super::{Decider, Original, Verdict};
use crate::listener::ConnInfo;

/// The gRPC service, ready to be called per request.
pub type Server = AuthorizationServer<Check>;

/// The asking proxy's own address, for a `CheckRequest` that names no
/// client.
#[derive(Clone, Copy)]
struct AskedBy(IpAddr);

/// `Authorization/Check`, answered by the [`Decider`].
pub struct Check {
    decider: Arc<Decider>,
}

pub fn server(decider: Arc<Decider>) -> Server {
    AuthorizationServer::new(Check { decider })
}

/// One gRPC request on the decision listener.
pub async fn serve(
    server: &Server,
    mut req: Request<Incoming>,
    conn: &ConnInfo,
) -> Response<tonic::body::Body> {
    req.extensions_mut().insert(AskedBy(conn.peer.ip()));
    match server.clone().oneshot(req).await {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let peer = request.extensions().get::<AskedBy>().map(|a| a.0);
        let original = original(request.get_ref(), peer)?;
        let verdict = self.decider.judge(original).await;
        Ok(tonic::Response::new(answer(verdict)))
    }
}

/// The original request a `CheckRequest` describes.
fn original(check: &CheckRequest, peer: Option<IpAddr>) -> Result<Original, tonic::Status> {
    let attributes = check
        .attributes
        .as_ref()
        .ok_or_else(|| tonic::Status::invalid_argument("attributes are required"))?;
    let http = attributes
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .ok_or_else(|| tonic::Status::invalid_argument("attributes.request.http is required"))?;
    if http.method.is_empty() {
        return Err(tonic::Status::invalid_argument(
            "attributes.request.http.method is required",
        ));
    }
    let method = Method::from_bytes(http.method.as_bytes()).map_err(|_| {
        tonic::Status::invalid_argument("attributes.request.http.method is not a method")
    })?;
    let mut headers = HeaderMap::new();
    for (name, value) in &http.headers {
        // Pseudo-headers (`:path`, `:authority`) are in the other fields.
        if name.starts_with(':') {
            continue;
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            return Err(tonic::Status::invalid_argument(
                "attributes.request.http.headers holds a malformed field",
            ));
        };
        headers.append(name, value);
    }
    if !http.host.is_empty() && !headers.contains_key(http::header::HOST) {
        if let Ok(host) = HeaderValue::from_str(&http.host) {
            headers.insert(http::header::HOST, host);
        }
    }
    // A path that is no origin-form target is the proxy's 400, never an
    // allow.
    let uri = super::http::origin_form(&http.path).ok();
    let client = attributes
        .source
        .as_ref()
        .and_then(|s| s.address.as_ref())
        .and_then(|a| a.address.as_ref())
        .and_then(|a| match a {
            Address::SocketAddress(s) => s.address.parse().ok(),
            _ => None,
        })
        .or(peer)
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    Ok(Original {
        method,
        uri,
        headers,
        client,
    })
}

fn option(name: &HeaderName, value: &HeaderValue) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(PbHeaderValue {
            key: name.as_str().to_owned(),
            value: String::from_utf8_lossy(value.as_bytes()).into_owned(),
            raw_value: Vec::new(),
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..HeaderValueOption::default()
    }
}

fn options(headers: &HeaderMap) -> Vec<HeaderValueOption> {
    headers.iter().map(|(n, v)| option(n, v)).collect()
}

fn answer(verdict: Verdict) -> CheckResponse {
    match verdict {
        Verdict::Allow {
            identity,
            remove,
            response,
        } => CheckResponse {
            status: Some(rpc::Status {
                code: 0,
                ..rpc::Status::default()
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers: options(&identity),
                headers_to_remove: remove.iter().map(|n| n.as_str().to_owned()).collect(),
                response_headers_to_add: options(&response),
                ..OkHttpResponse::default()
            })),
            ..CheckResponse::default()
        },
        Verdict::Deny {
            status,
            headers,
            body,
            grpc_code,
        } => CheckResponse {
            status: Some(rpc::Status {
                code: grpc_code,
                ..rpc::Status::default()
            }),
            http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
                status: Some(HttpStatus {
                    code: i32::from(status.as_u16()),
                }),
                headers: options(&headers),
                body: String::from_utf8_lossy(&body).into_owned(),
            })),
            ..CheckResponse::default()
        },
    }
}
