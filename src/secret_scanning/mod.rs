//! `POST /secret-scanning/github` on the public listener: GitHub's secret
//! scanning partner protocol. GitHub posts `[{token, type, url, source}]`
//! signed with ECDSA P-256 / SHA-256 over the raw body (headers
//! `Github-Public-Key-Identifier`, `Github-Public-Key-Signature`: base64 of
//! the DER signature), verified against GitHub's public-keys document
//! (`[secret_scanning] public_keys_file`); the answer labels each token
//! `[{token_raw, token_type, label}]`. What a reported token comes to is
//! [`crate::events::leaks`]'; this edge owns the wire, the signature, the
//! per-address rate limit and the size limit.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::addr::address_bucket;
use crate::config::{ScanningKey, SecretScanningConfig};
use crate::events::leaks::{Label, Leaks, Report};
use crate::listener::ClientAddr;
use crate::telemetry::metrics::{self, Metrics};

pub const PATH: &str = "/secret-scanning/github";
/// Most tokens one report may carry (GitHub sends batches).
const MAX_TOKENS: usize = 1000;
/// Most addresses remembered before the limiter forgets refilled ones.
const MAX_TRACKED: usize = 10_000;

type Keyed = RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>;

pub struct Scanning {
    keys: Vec<ScanningKey>,
    leaks: Leaks,
    limiter: Keyed,
    max_body_bytes: usize,
    true_positive: ::metrics::Counter,
    false_positive: ::metrics::Counter,
}

impl Scanning {
    pub fn new(config: &SecretScanningConfig, leaks: Leaks, metrics: &Metrics) -> Self {
        let spec = config.rate_limit;
        let period = spec.per / spec.count.max(1);
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(spec.burst).unwrap_or(NonZeroU32::MIN));
        let label = |l: Label| metrics.counter(metrics::LEAK_REPORTS, &[("label", l.as_str())]);
        Self {
            keys: config.keys.clone(),
            leaks,
            limiter: RateLimiter::keyed(quota),
            max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
            true_positive: label(Label::TruePositive),
            false_positive: label(Label::FalsePositive),
        }
    }

    /// Whether the body was signed by the key GitHub names.
    fn verified(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(id), Some(signature)) = (
            text("github-public-key-identifier"),
            text("github-public-key-signature"),
        ) else {
            return false;
        };
        let Some(key) = self.keys.iter().find(|k| k.key_identifier == id) else {
            return false;
        };
        let Ok(signature) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key.point)
            .verify(body, &signature)
            .is_ok()
    }
}

/// The route, with its own body limit (over it: 413).
pub fn router(state: Arc<Scanning>) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route(PATH, post(github))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

#[derive(Deserialize)]
struct Reported {
    token: String,
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Serialize)]
struct Labelled {
    token_raw: String,
    token_type: String,
    label: &'static str,
}

async fn github(
    State(s): State<Arc<Scanning>>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if s.limiter.len() > MAX_TRACKED {
        s.limiter.retain_recent();
    }
    if let Err(not_until) = s.limiter.check_key(&address_bucket(peer)) {
        let wait = not_until
            .wait_time_from(DefaultClock::default().now())
            .as_secs()
            .max(1);
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many reports from this address",
        );
        r.headers_mut().insert(header::RETRY_AFTER, wait.into());
        return r;
    }
    // SECURITY: nothing in the body is read, let alone acted on, before the
    // signature over exactly these bytes is verified.
    if !s.verified(&headers, &body) {
        tracing::debug!(%peer, "secret-scanning report with a bad or unknown signature");
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_signature",
            "the report's signature does not verify against a known GitHub key",
        );
    }
    let reported: Vec<Reported> = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be a JSON array of {token, type, url, source}",
            )
        }
    };
    if reported.len() > MAX_TOKENS {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_tokens",
            "a report may carry at most 1000 tokens",
        );
    }
    let mut answer = Vec::with_capacity(reported.len());
    for r in reported {
        let report = Report {
            token: &r.token,
            url: r.url.as_deref(),
            source: r.source.as_deref(),
        };
        let label = match s.leaks.report(&report).await {
            Ok(label) => label,
            Err(e) => {
                // GitHub retries a report that fails: nothing is lost.
                tracing::warn!(error = %e, "leak report could not be processed");
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the report could not be processed; retry",
                );
            }
        };
        match label {
            Label::TruePositive => s.true_positive.increment(1),
            Label::FalsePositive => s.false_positive.increment(1),
        }
        answer.push(Labelled {
            token_raw: r.token,
            token_type: r.kind,
            label: label.as_str(),
        });
    }
    (StatusCode::OK, Json(answer)).into_response()
}

/// An error answer in the admin API's shape.
fn refuse(status: StatusCode, code: &'static str, message: &'static str) -> Response {
    (
        status,
        Json(json!({ "error": { "type": code, "code": code, "message": message } })),
    )
        .into_response()
}
