//! A webhook receiver for the tests: records every delivery it is sent
//! (headers, body, when), and answers as told — fail the first N, redirect,
//! or hold the first request open.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// One delivery as received.
#[derive(Debug, Clone)]
pub(crate) struct Got {
    pub(crate) id: String,
    pub(crate) timestamp: String,
    pub(crate) signature: String,
    pub(crate) body: Bytes,
    pub(crate) at: Instant,
}

impl Got {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub(crate) fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap_or_default().to_string()
    }

    /// Whether the Standard Webhooks signature verifies with `secret`.
    pub(crate) fn verifies(&self, secret: &str) -> bool {
        let ts: i64 = self.timestamp.parse().unwrap();
        let want = keygate::events::sign::signature(secret, &self.id, ts, &self.body).unwrap();
        self.signature.split(' ').any(|s| s == want)
    }
}

#[derive(Clone, Copy)]
pub(crate) enum Answer {
    /// Fail this many first requests with 500, then 200.
    FailFirst(usize),
    /// Always this status (with a `Location` on redirects).
    Always(u16),
    /// Hold the first request open until the connection goes; then 200.
    HoldFirst,
}

struct State {
    got: Mutex<Vec<Got>>,
    arrived: Notify,
    answer: Answer,
    location: String,
}

pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
}

impl Receiver {
    pub(crate) async fn start(answer: Answer) -> Receiver {
        Self::start_redirecting(answer, "").await
    }

    /// Answers as `answer`, sending `Location: location` on redirects.
    pub(crate) async fn start_redirecting(answer: Answer, location: &str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            got: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            answer,
            location: location.to_string(),
        });
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(answer_one(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, state }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub(crate) fn got(&self) -> Vec<Got> {
        self.state.got.lock().unwrap().clone()
    }

    /// Waits until `n` deliveries have arrived (at most `within`).
    pub(crate) async fn wait_for(&self, n: usize, within: Duration) -> Vec<Got> {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{} of {n} deliveries arrived within {within:?}: {:?}",
                got.len(),
                got.iter().map(Got::kind).collect::<Vec<_>>()
            );
            let _ = tokio::time::timeout(left, arrived).await;
        }
    }

    /// Waits until a delivery of type `kind` has arrived; returns it.
    pub(crate) async fn wait_for_type(&self, kind: &str, within: Duration) -> Got {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            if let Some(g) = self.got().into_iter().find(|g| g.kind() == kind) {
                return g;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {kind} delivery within {within:?}");
            let _ = tokio::time::timeout(left, arrived).await;
        }
    }
}

async fn answer_one(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, timestamp, signature) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let body = req.into_body().collect().await.unwrap().to_bytes();
    let n = {
        let mut got = state.got.lock().unwrap();
        got.push(Got {
            id,
            timestamp,
            signature,
            body,
            at: Instant::now(),
        });
        got.len()
    };
    state.arrived.notify_waiters();
    let status = match state.answer {
        Answer::FailFirst(f) if n <= f => 500,
        Answer::FailFirst(_) => 200,
        Answer::Always(s) => s,
        Answer::HoldFirst if n == 1 => {
            std::future::pending::<()>().await;
            200
        }
        Answer::HoldFirst => 200,
    };
    let mut res = Response::new(Full::new(Bytes::from_static(b"ok")));
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    if (300..400).contains(&status) {
        res.headers_mut()
            .insert("location", state.location.parse().unwrap());
    }
    res
}
