//! What the proxy records about each request, at its one exit: the
//! Prometheus series (see `telemetry::metrics`) and the access log line.
//!
//! Every series handle is registered when the proxy is built, or on first
//! use of a (route, status class, auth outcome) combination; recording is
//! an atomic add. With metrics off and the access log off, nothing here
//! reads the clock.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::{HeaderValue, Method, StatusCode};
use metrics::Counter;
use uuid::Uuid;

use super::Route;
use crate::authn;
use crate::telemetry::access::{self, Access, Escaped};
use crate::telemetry::metrics::{
    Histogram, Metrics, AUTH_DURATION, QUOTA_EXHAUSTED, RATE_LIMITED, REQUESTS, REQUEST_DURATION,
    UPSTREAM_DURATION, WEBSOCKET_TUNNELS,
};

/// How authentication ended: the `auth` label and log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthOutcome {
    /// Refused before authentication (bad path, no route, admission), or
    /// served by the OAuth endpoints, which count their own.
    None,
    /// A public route: nothing to authenticate.
    Public,
    Ok,
    Missing,
    Invalid,
    Ambiguous,
    /// Refused: the address is over its failed-attempt budget.
    Throttled,
    /// Refused: the cache is stale (fail closed).
    Stale,
    /// Refused: the route requires a client certificate.
    NoClientCert,
}

impl AuthOutcome {
    const ALL: [AuthOutcome; 9] = [
        AuthOutcome::None,
        AuthOutcome::Public,
        AuthOutcome::Ok,
        AuthOutcome::Missing,
        AuthOutcome::Invalid,
        AuthOutcome::Ambiguous,
        AuthOutcome::Throttled,
        AuthOutcome::Stale,
        AuthOutcome::NoClientCert,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::None => "none",
            AuthOutcome::Public => "public",
            AuthOutcome::Ok => "ok",
            AuthOutcome::Missing => "missing",
            AuthOutcome::Invalid => "invalid",
            AuthOutcome::Ambiguous => "ambiguous",
            AuthOutcome::Throttled => "throttled",
            AuthOutcome::Stale => "stale",
            AuthOutcome::NoClientCert => "no_client_cert",
        }
    }

    pub(crate) fn of(r: authn::Refusal) -> Self {
        match r {
            authn::Refusal::Missing => AuthOutcome::Missing,
            authn::Refusal::Invalid => AuthOutcome::Invalid,
            authn::Refusal::Ambiguous => AuthOutcome::Ambiguous,
            authn::Refusal::Throttled(_) => AuthOutcome::Throttled,
            authn::Refusal::Stale => AuthOutcome::Stale,
        }
    }
}

/// What the phases learned about a request, for its exit.
pub(crate) struct Trace<'a> {
    pub route: Option<&'a Route>,
    pub auth: AuthOutcome,
    pub account: Option<Uuid>,
    /// The request was refused by a rate limit.
    pub rate_limited: bool,
    pub quota_exhausted: bool,
}

impl Trace<'_> {
    pub(crate) fn new() -> Self {
        Self {
            route: None,
            auth: AuthOutcome::None,
            account: None,
            rate_limited: false,
            quota_exhausted: false,
        }
    }
}

const CLASSES: usize = 5;

/// One route's series.
struct RouteSeries {
    name: Arc<str>,
    listener: &'static str,
    /// By status class (1xx…5xx) and [`AuthOutcome`], registered on first use.
    requests: [[OnceLock<Counter>; AuthOutcome::ALL.len()]; CLASSES],
    duration: Histogram,
    upstream: Histogram,
    rate_limited: Counter,
    quota_exhausted: Counter,
}

impl RouteSeries {
    fn new(metrics: &Metrics, listener: &'static str, name: &str) -> Self {
        let labels = [("listener", listener), ("route", name)];
        Self {
            name: name.into(),
            listener,
            requests: Default::default(),
            duration: metrics.histogram(REQUEST_DURATION, &labels),
            upstream: metrics.histogram(UPSTREAM_DURATION, &labels),
            rate_limited: metrics.counter(RATE_LIMITED, &labels),
            quota_exhausted: metrics.counter(QUOTA_EXHAUSTED, &labels),
        }
    }
}

/// The route label of requests served by the OAuth endpoints, and of
/// requests that matched no route.
/// The series of requests served beside the routes: the listener serves
/// the OAuth endpoints there, and operators know them by this label.
const BESIDE: &str = "(oauth)";
const UNROUTED: &str = "(none)";

pub(crate) struct Recorder {
    metrics: Arc<Metrics>,
    /// Each route's series, then the OAuth endpoints', then unrouted.
    routes: Vec<RouteSeries>,
    auth: Histogram,
    /// The access log line's `message`: what this listener serves.
    message: &'static str,
    pub(super) websocket_tunnels: metrics::Gauge,
    access_log: bool,
}

impl Recorder {
    /// The recorder of one listener (`public` or `decision`: the
    /// `listener` label of its series).
    pub(crate) fn new<'a>(
        metrics: Arc<Metrics>,
        listener: &'static str,
        routes: impl Iterator<Item = &'a str>,
        access_log: bool,
    ) -> Self {
        let mut series: Vec<RouteSeries> = routes
            .map(|n| RouteSeries::new(&metrics, listener, n))
            .collect();
        series.push(RouteSeries::new(&metrics, listener, BESIDE));
        series.push(RouteSeries::new(&metrics, listener, UNROUTED));
        Self {
            auth: metrics.histogram(AUTH_DURATION, &[]),
            message: if listener == "decision" {
                "decision"
            } else {
                "request"
            },
            websocket_tunnels: metrics.gauge(WEBSOCKET_TUNNELS, &[]),
            metrics,
            routes: series,
            access_log,
        }
    }

    /// Whether anything is measured: else the clock is never read.
    pub(crate) fn measuring(&self) -> bool {
        self.metrics.enabled()
    }

    /// Whether each request gets an access-log line.
    pub(crate) fn logging(&self) -> bool {
        self.access_log
    }

    /// The start of a request, when anything will need it.
    pub(crate) fn start(&self) -> Option<Instant> {
        (self.measuring() || self.access_log).then(Instant::now)
    }

    /// The start of a timed phase, when metrics are on.
    pub(crate) fn phase(&self) -> Option<Instant> {
        self.measuring().then(Instant::now)
    }

    pub(crate) fn auth_took(&self, since: Option<Instant>) {
        if let Some(t) = since {
            self.auth.record(t.elapsed());
        }
    }

    pub(crate) fn upstream_took(&self, route: &Route, since: Option<Instant>) {
        if let Some(t) = since {
            self.routes[route.index].upstream.record(t.elapsed());
        }
    }

    fn series(&self, route: Option<&Route>, beside: bool) -> &RouteSeries {
        let n = self.routes.len();
        match route {
            Some(r) => &self.routes[r.index],
            None if beside => &self.routes[n - 2],
            None => &self.routes[n - 1],
        }
    }

    /// The exit: counts the request and writes its access log line.
    pub(crate) fn finish(&self, done: Done<'_>) {
        let series = self.series(done.trace.route, done.beside);
        let elapsed = done.started.map(|t| t.elapsed());
        if self.measuring() {
            let class = usize::from(done.status.as_u16() / 100).clamp(1, CLASSES) - 1;
            let auth = done.trace.auth;
            series.requests[class][auth as usize]
                .get_or_init(|| {
                    let status = ["1xx", "2xx", "3xx", "4xx", "5xx"][class];
                    self.metrics.counter(
                        REQUESTS,
                        &[
                            ("listener", series.listener),
                            ("route", &series.name),
                            ("status", status),
                            ("auth", auth.as_str()),
                        ],
                    )
                })
                .increment(1);
            if let Some(e) = elapsed {
                series.duration.record(e);
            }
            if done.trace.quota_exhausted {
                series.quota_exhausted.increment(1);
            }
            if done.trace.rate_limited {
                series.rate_limited.increment(1);
            }
        }
        if let Some((method, path)) = done.seen {
            access::log(&Access {
                message: self.message,
                route: &series.name,
                method: Escaped(method.as_str()),
                path: Escaped(path),
                status: done.status.as_u16(),
                auth: done.trace.auth.as_str(),
                account: done.trace.account,
                latency_ms: elapsed.map(|e| e.as_secs_f64() * 1000.0),
                client: done.client,
                request_id: Escaped(done.request_id.to_str().unwrap_or("-")),
            });
        }
    }
}

/// A finished request, as [`Recorder::finish`] records it.
pub(crate) struct Done<'a> {
    pub trace: &'a Trace<'a>,
    pub beside: bool,
    pub status: StatusCode,
    pub started: Option<Instant>,
    /// Method and path, when the access log is on.
    pub seen: Option<(&'a Method, &'a str)>,
    pub client: IpAddr,
    pub request_id: &'a HeaderValue,
}
