//! Prometheus metrics, rendered in the text exposition format on the admin
//! listener's `/metrics`.
//!
//! One recorder per keygate (never the process-global one), so several
//! instances can share a process. Every series is registered once, when the
//! component that moves it is built, and kept as a handle: recording is an
//! atomic add, never a lookup by name, an allocation or a lock. Counters
//! and gauges live in `metrics-exporter-prometheus`'s recorder; latency
//! histograms are keygate's own [`Histogram`] (fixed buckets of relaxed
//! atomic counts), because the exporter's keeps every sample until the next
//! drain — three per request — which cost the proxy 5–8% of its throughput
//! (benches/README.md). With `admin.metrics = false` every handle is a
//! no-op and the proxy skips its clock reads.
//!
//! Series (all prefixed `keygate_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `requests_total` | counter | `listener` (`public`, `decision`), `route`, `status` (class: `2xx`…), `auth` |
//! | `request_duration_seconds` | histogram | `listener`, `route` |
//! | `upstream_duration_seconds` | histogram | `listener`, `route` (to the response head) |
//! | `auth_duration_seconds` | histogram | — (the authentication decision) |
//! | `rate_limited_total` | counter | `listener`, `route` |
//! | `failed_auth_refusals_total` | counter | — (addresses over their failed-attempt budget) |
//! | `tokens_minted_total` | counter | `grant` |
//! | `store_errors_total` | counter | — |
//! | `cache_entries`, `cache_revision`, `cache_staleness_seconds` | gauge | — |
//! | `rate_limit_fallback_checks_total` | counter | — (shared limiter unreachable) |
//! | `websocket_tunnels` | gauge | — (open) |
//! | `lean_requests_total`, `lean_handoffs_total` | counter | — (requests the lean HTTP/1.1 path answered; connections it handed to hyper) |
//! | `tls_handshake_failures_total` | counter | `listener` (`public`, `admin`), `reason` (`listener/handshake.rs`) |
//! | `build_info` | gauge | `version` |
//! | `trusted_issuer_fetches_total` | counter | `issuer`, `outcome` (`ok`, `failed`) |
//! | `trusted_issuer_keys_age_seconds`, `trusted_issuer_keys` | gauge | `issuer` |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

static META: Metadata<'static> = Metadata::new("keygate", Level::INFO, None);

/// Bucket upper bounds, in seconds as Prometheus shows them and in
/// nanoseconds as they are compared: from 10 µs (a cache hit) to 30 s (the
/// default request timeout).
const BUCKETS: [(&str, u64); 19] = [
    ("0.00001", 10_000),
    ("0.000025", 25_000),
    ("0.00005", 50_000),
    ("0.0001", 100_000),
    ("0.00025", 250_000),
    ("0.0005", 500_000),
    ("0.001", 1_000_000),
    ("0.0025", 2_500_000),
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("10", 10_000_000_000),
    ("30", 30_000_000_000),
];

pub const REQUESTS: &str = "keygate_requests_total";
pub const REQUEST_DURATION: &str = "keygate_request_duration_seconds";
pub const UPSTREAM_DURATION: &str = "keygate_upstream_duration_seconds";
pub const AUTH_DURATION: &str = "keygate_auth_duration_seconds";
pub const RATE_LIMITED: &str = "keygate_rate_limited_total";
pub const QUOTA_EXHAUSTED: &str = "keygate_quota_exhausted_total";
pub const FAILED_AUTH_REFUSALS: &str = "keygate_failed_auth_refusals_total";
pub const TOKENS_MINTED: &str = "keygate_tokens_minted_total";
pub const STORE_ERRORS: &str = "keygate_store_errors_total";
pub const CACHE_ENTRIES: &str = "keygate_cache_entries";
pub const CACHE_REVISION: &str = "keygate_cache_revision";
pub const CACHE_STALENESS: &str = "keygate_cache_staleness_seconds";
pub const RATE_LIMIT_FALLBACK: &str = "keygate_rate_limit_fallback_checks_total";
pub const WEBSOCKET_TUNNELS: &str = "keygate_websocket_tunnels";
pub const LEAN_REQUESTS: &str = "keygate_lean_requests_total";
pub const LEAN_HANDOFFS: &str = "keygate_lean_handoffs_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "keygate_tls_handshake_failures_total";
pub const BUILD_INFO: &str = "keygate_build_info";
pub const WEBHOOK_ATTEMPTS: &str = "keygate_webhook_attempts_total";
pub const LEAK_REPORTS: &str = "keygate_leaked_tokens_total";
pub const ISSUER_FETCHES: &str = "keygate_trusted_issuer_fetches_total";
pub const ISSUER_KEYS_AGE: &str = "keygate_trusted_issuer_keys_age_seconds";
pub const ISSUER_KEYS: &str = "keygate_trusted_issuer_keys";

enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every series: name, type, unit, help.
const DESCRIPTIONS: &[(&str, Kind, Unit, &str)] = &[
    (
        ISSUER_FETCHES,
        Kind::Counter,
        Unit::Count,
        "Fetches of a trusted issuer's key set, by issuer and outcome (ok, failed: the last good set is kept).",
    ),
    (
        ISSUER_KEYS_AGE,
        Kind::Gauge,
        Unit::Seconds,
        "Age of the key set keygate holds for a trusted issuer (-1: none fetched yet).",
    ),
    (
        ISSUER_KEYS,
        Kind::Gauge,
        Unit::Count,
        "Keys keygate holds for a trusted issuer.",
    ),
    (
        WEBHOOK_ATTEMPTS,
        Kind::Counter,
        Unit::Count,
        "Webhook delivery attempts by this replica, by outcome: delivered, retried, refused (target not allowed at delivery; retried), failed (given up after the retry window).",
    ),
    (
        LEAK_REPORTS,
        Kind::Counter,
        Unit::Count,
        "Tokens reported by a secret-scanning partner, by label (true_positive, false_positive).",
    ),
    (
        REQUESTS,
        Kind::Counter,
        Unit::Count,
        "Requests (listener public) and decisions (decision), by route, status class and auth.",
    ),
    (
        REQUEST_DURATION,
        Kind::Histogram,
        Unit::Seconds,
        "Time from a request's head to its response head, by listener and route.",
    ),
    (
        UPSTREAM_DURATION,
        Kind::Histogram,
        Unit::Seconds,
        "Time the upstream took to answer with a response head, by route.",
    ),
    (
        AUTH_DURATION,
        Kind::Histogram,
        Unit::Seconds,
        "Time to decide who is calling (credential check) on proxied routes.",
    ),
    (
        RATE_LIMITED,
        Kind::Counter,
        Unit::Count,
        "Requests refused with 429 by a rate limit, by listener and route.",
    ),
    (
        QUOTA_EXHAUSTED,
        Kind::Counter,
        Unit::Count,
        "Requests refused with 429 because a quota was spent, by listener and route.",
    ),
    (
        FAILED_AUTH_REFUSALS,
        Kind::Counter,
        Unit::Count,
        "Failed authentications refused because their address is over its failed-attempt budget.",
    ),
    (
        TOKENS_MINTED,
        Kind::Counter,
        Unit::Count,
        "JWTs minted, by grant.",
    ),
    (
        STORE_ERRORS,
        Kind::Counter,
        Unit::Count,
        "Store operations that failed (unreachable, timed out, corrupt).",
    ),
    (
        CACHE_ENTRIES,
        Kind::Gauge,
        Unit::Count,
        "Credentials in the in-memory cache.",
    ),
    (
        CACHE_REVISION,
        Kind::Gauge,
        Unit::Count,
        "The store revision the cache has applied.",
    ),
    (
        CACHE_STALENESS,
        Kind::Gauge,
        Unit::Seconds,
        "Seconds since the cache last synced with the store.",
    ),
    (
        RATE_LIMIT_FALLBACK,
        Kind::Counter,
        Unit::Count,
        "Rate-limit checks made locally because the shared limiter was unreachable.",
    ),
    (
        WEBSOCKET_TUNNELS,
        Kind::Gauge,
        Unit::Count,
        "Open WebSocket tunnels.",
    ),
    (
        LEAN_REQUESTS,
        Kind::Counter,
        Unit::Count,
        "Requests the lean HTTP/1.1 path answered (server.http1_engine = \"lean\").",
    ),
    (
        LEAN_HANDOFFS,
        Kind::Counter,
        Unit::Count,
        "Connections the lean HTTP/1.1 path handed to hyper, at a request it does not serve.",
    ),
    (
        TLS_HANDSHAKE_FAILURES,
        Kind::Counter,
        Unit::Count,
        "TLS handshakes that failed, by listener and reason (expired, unknown_issuer, no_certificate, ...).",
    ),
    (
        BUILD_INFO,
        Kind::Gauge,
        Unit::Count,
        "Always 1; the version label names the running build.",
    ),
];

/// A keygate's metrics: the recorder its handles come from, and the
/// renderer `/metrics` calls. Cheap to share (`Arc`).
pub struct Metrics {
    inner: Option<Registry>,
}

struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Every histogram, rendered after the exporter's series. Locked only
    /// to register (at start-up) and to render (a scrape).
    histograms: Mutex<Vec<Series>>,
}

/// A histogram series: its name, its labels, its buckets.
type Series = (&'static str, Vec<(&'static str, String)>, Arc<Buckets>);

/// A latency histogram: a count per bucket, the sum and the count, each a
/// relaxed atomic. Recording allocates nothing and takes no lock.
#[derive(Clone, Default)]
pub struct Histogram(Option<Arc<Buckets>>);

pub struct Buckets {
    /// Per bucket (not cumulative), then `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_ns: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// A histogram that records nothing.
    pub const fn noop() -> Self {
        Self(None)
    }

    pub fn record(&self, took: Duration) {
        let Some(b) = &self.0 else { return };
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BUCKETS.partition_point(|&(_, bound)| bound < ns);
        b.counts[i].fetch_add(1, Ordering::Relaxed);
        b.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl Buckets {
    fn render(&self, out: &mut String, name: &str, labels: &[(&'static str, String)]) {
        let mut prefix = String::new();
        for (k, v) in labels {
            let _ = write!(prefix, "{k}=\"{}\",", escape(v));
        }
        let mut cumulative = 0u64;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = BUCKETS.get(i).map_or("+Inf", |(le, _)| le);
            let _ = writeln!(out, "{name}_bucket{{{prefix}le=\"{le}\"}} {cumulative}");
        }
        let labels = prefix.trim_end_matches(',');
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{} {sum}", braces(labels));
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }
}

/// A label value as the text format wants it (`\`, `"`, newline escaped).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Metrics {
    /// Metrics that record and render.
    pub fn new() -> Arc<Self> {
        let recorder = PrometheusBuilder::new().build_recorder();
        for (name, kind, unit, help) in DESCRIPTIONS {
            let (name, unit, help) = ((*name).into(), Some(*unit), (*help).into());
            match kind {
                Kind::Counter => recorder.describe_counter(name, unit, help),
                Kind::Gauge => recorder.describe_gauge(name, unit, help),
                // Rendered by keygate itself, see `render`.
                Kind::Histogram => {}
            }
        }
        let handle = recorder.handle();
        let this = Self {
            inner: Some(Registry {
                recorder,
                handle,
                histograms: Mutex::new(Vec::new()),
            }),
        };
        this.gauge(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))])
            .set(1.0);
        Arc::new(this)
    }

    /// Metrics that do nothing (`admin.metrics = false`, tools, tests).
    pub fn disabled() -> Arc<Self> {
        Arc::new(Self { inner: None })
    }

    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        match &self.inner {
            Some(r) => r.recorder.register_counter(&key(name, labels), &META),
            None => Counter::noop(),
        }
    }

    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        match &self.inner {
            Some(r) => r.recorder.register_gauge(&key(name, labels), &META),
            None => Gauge::noop(),
        }
    }

    /// A latency histogram; its series are registered by name and labels
    /// (asking twice for the same one gives the same histogram).
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        let Some(r) = &self.inner else {
            return Histogram::noop();
        };
        let labels: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let mut all = r.histograms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, _, b)) = all.iter().find(|(n, l, _)| *n == name && *l == labels) {
            return Histogram(Some(Arc::clone(b)));
        }
        let buckets = Arc::new(Buckets::default());
        all.push((name, labels, Arc::clone(&buckets)));
        Histogram(Some(buckets))
    }

    /// The text exposition format; `None` when disabled.
    pub fn render(&self) -> Option<String> {
        let r = self.inner.as_ref()?;
        let mut out = r.handle.render();
        let all = r.histograms.lock().unwrap_or_else(|e| e.into_inner());
        for (name, kind, _, help) in DESCRIPTIONS {
            if !matches!(kind, Kind::Histogram) {
                continue;
            }
            let mut series = all.iter().filter(|(n, _, _)| n == name).peekable();
            if series.peek().is_none() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (_, labels, buckets) in series {
                buckets.render(&mut out, name, labels);
            }
            out.push('\n');
        }
        Some(out)
    }

    /// Lets the exporter forget what it no longer needs; call every few
    /// seconds.
    pub fn upkeep(&self) {
        if let Some(r) = &self.inner {
            r.handle.run_upkeep();
        }
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect();
    Key::from_parts(name, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_record_into_the_rendered_text() {
        let m = Metrics::new();
        m.counter(
            REQUESTS,
            &[("route", "orders"), ("status", "2xx"), ("auth", "ok")],
        )
        .increment(3);
        m.histogram(AUTH_DURATION, &[])
            .record(Duration::from_micros(200));
        let h = m.histogram(REQUEST_DURATION, &[("route", "a\"b")]);
        h.record(Duration::from_micros(5));
        h.record(Duration::from_secs(60));
        let text = m.render().unwrap();
        assert!(
            text.contains(r#"keygate_requests_total{route="orders",status="2xx",auth="ok"} 3"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keygate_auth_duration_seconds_bucket{le="0.0001"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keygate_auth_duration_seconds_bucket{le="0.00025"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("keygate_auth_duration_seconds_sum 0.0002\n"),
            "{text}"
        );
        assert!(
            text.contains("keygate_auth_duration_seconds_count 1\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE keygate_auth_duration_seconds histogram"),
            "{text}"
        );
        // Cumulative, +Inf holds the 60 s one, labels escaped.
        assert!(
            text.contains(
                r#"keygate_request_duration_seconds_bucket{route="a\"b",le="0.00001"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"keygate_request_duration_seconds_bucket{route="a\"b",le="+Inf"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"keygate_request_duration_seconds_count{route="a\"b"} 2"#),
            "{text}"
        );
        assert!(text.contains("# HELP keygate_requests_total"), "{text}");
        assert!(text.contains(r#"keygate_build_info{version=""#), "{text}");
    }

    #[test]
    fn two_instances_keep_their_own_counts() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.counter(STORE_ERRORS, &[]).increment(1);
        assert!(a.render().unwrap().contains("keygate_store_errors_total 1"));
        assert!(!b.render().unwrap().contains("keygate_store_errors_total 1"));
    }

    #[test]
    fn disabled_metrics_render_nothing() {
        let m = Metrics::disabled();
        m.counter(REQUESTS, &[]).increment(1);
        assert!(m.render().is_none() && !m.enabled());
    }
}
