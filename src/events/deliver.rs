//! One delivery attempt over HTTP: resolve the target's name, check every
//! address ([`super::target`]), connect to a checked address (TLS for
//! `https`), `POST` the signed body, and read the response head within the
//! timeout. Redirects are answers, never followed; the response body is
//! never read. One connection per attempt: no pool to hold a slow receiver's
//! sockets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

use super::target::{Policy, Refused, Target};

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered with this status.
    Answered(u16),
    /// The target is not allowed (now): nothing was sent.
    Refused(Refused),
    /// No answer: connection, TLS or timeout; a static description.
    Failed(&'static str),
}

/// The headers of one attempt (Standard Webhooks).
pub struct Signed<'a> {
    pub id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
}

pub struct Sender {
    policy: Policy,
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl Sender {
    pub fn new(policy: Policy, timeout: Duration) -> Result<Self, rustls::Error> {
        let roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            policy,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            timeout,
        })
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// One attempt to `url`, within the timeout.
    pub async fn send(&self, url: &str, signed: &Signed<'_>, body: Bytes) -> Outcome {
        let target = match self.policy.parse(url) {
            Ok(t) => t,
            Err(r) => return Outcome::Refused(r),
        };
        match tokio::time::timeout(self.timeout, self.attempt(&target, signed, body)).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Failed("timed out"),
        }
    }

    async fn attempt(&self, target: &Target, signed: &Signed<'_>, body: Bytes) -> Outcome {
        // SECURITY: resolved and checked now, at delivery; the connection
        // goes to one of exactly these addresses.
        let addrs = match self.policy.resolve(target).await {
            Ok(a) => a,
            Err(r) => return Outcome::Refused(r),
        };
        let Some(tcp) = connect(&addrs).await else {
            return Outcome::Failed("connection refused or unreachable");
        };
        let request = match request(target, signed, body) {
            Some(r) => r,
            None => return Outcome::Failed("request could not be built"),
        };
        if target.https {
            let Ok(name) = ServerName::try_from(target.host.clone()) else {
                return Outcome::Failed("not a TLS server name");
            };
            match self.tls.connect(name, tcp).await {
                Ok(tls) => exchange(TokioIo::new(tls), request).await,
                Err(_) => Outcome::Failed("TLS handshake failed"),
            }
        } else {
            exchange(TokioIo::new(tcp), request).await
        }
    }
}

async fn connect(addrs: &[SocketAddr]) -> Option<TcpStream> {
    for a in addrs {
        if let Ok(s) = TcpStream::connect(a).await {
            let _ = s.set_nodelay(true);
            return Some(s);
        }
    }
    None
}

fn request(target: &Target, signed: &Signed<'_>, body: Bytes) -> Option<Request<Full<Bytes>>> {
    let path = target
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let host = target.uri.authority()?.as_str().to_string();
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(HOST, host)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(USER_AGENT, HeaderValue::from_static("keygate-webhooks"))
        .header("webhook-id", signed.id)
        .header("webhook-timestamp", signed.timestamp)
        .header("webhook-signature", signed.signature)
        .body(Full::new(body))
        .ok()
}

async fn exchange<IO>(io: IO, request: Request<Full<Bytes>>) -> Outcome
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(io).await else {
        return Outcome::Failed("HTTP handshake failed");
    };
    let driver = tokio::spawn(conn);
    let outcome = match sender.send_request(request).await {
        // The body is never read: only the status matters.
        Ok(response) => Outcome::Answered(response.status().as_u16()),
        Err(_) => Outcome::Failed("no HTTP response"),
    };
    driver.abort();
    outcome
}
