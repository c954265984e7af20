//! The access log: one line per proxied request, in the same shape as the
//! rest of the log (JSON by default, or text), on stderr.
//!
//! Lines are formatted here rather than by `tracing`'s JSON formatter,
//! which cost the proxy about a quarter of its throughput (it re-validates
//! UTF-8 and formats through `fmt` machinery for every field), and are
//! appended to a buffer that a thread of their own writes every 20 ms: no
//! allocation, wake-up or system call per request. In a process where
//! [`super::init`] did not run (tests, embedders), lines go through
//! `tracing` instead.

use std::cell::RefCell;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::Serialize;
use uuid::Uuid;

use super::LogFormat;

/// What one line says about a request. SECURITY: no header and no query
/// string: either may carry a secret. What a client controls (method,
/// path, request id) is written [`Escaped`].
#[derive(Serialize)]
pub struct Access<'a> {
    pub message: &'static str,
    pub route: &'a str,
    pub method: Escaped<'a>,
    pub path: Escaped<'a>,
    pub status: u16,
    pub auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    pub client: IpAddr,
    pub request_id: Escaped<'a>,
}

/// A client's text as a log line may show it. SECURITY: control characters
/// (which forge lines in text logs) and bidirectional overrides (U+202E and
/// kin, which make a terminal or viewer show the text in another order,
/// CVE-2021-42574's class) are written as `\u{…}`, and `\` as `\\`, so
/// what a reader sees is what the client sent. Text without them is
/// written as it is, with no allocation.
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

/// Whether `c` must not reach a log raw.
fn unsafe_in_logs(c: char) -> bool {
    c.is_control()
        || matches!(c, '\\' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(unsafe_in_logs) {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            if c == '\\' {
                f.write_str("\\\\")?;
            } else {
                write!(f, "\\u{{{:04x}}}", u32::from(c))?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

impl Serialize for Escaped<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Lines waiting for the writer thread, and whether it should stop.
struct Sink {
    format: LogFormat,
    pending: Mutex<Vec<u8>>,
    /// Lines dropped because the writer fell behind by [`MAX_PENDING`].
    dropped: AtomicU64,
    stop: AtomicBool,
}

/// How often the writer thread writes what has accumulated: one `write`
/// per interval, however many requests.
const INTERVAL: Duration = Duration::from_millis(20);
/// Past this many bytes waiting, lines are dropped (and counted) rather
/// than memory grown or requests slowed.
const MAX_PENDING: usize = 8 << 20;

static SINK: OnceLock<Sink> = OnceLock::new();

/// Writes the access log's last lines when dropped (at exit).
pub struct Guard(Option<std::thread::JoinHandle<()>>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let (Some(sink), Some(writer)) = (SINK.get(), self.0.take()) {
            sink.stop.store(true, Ordering::Release);
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

/// Sends access lines to stderr through a writer thread of their own
/// (called by `init`).
pub(super) fn install(format: LogFormat) -> Guard {
    let sink = Sink {
        format,
        pending: Mutex::new(Vec::with_capacity(64 << 10)),
        dropped: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    };
    if SINK.set(sink).is_err() {
        return Guard(None);
    }
    let writer = std::thread::Builder::new()
        .name("keygate-access-log".into())
        .spawn(|| {
            let Some(sink) = SINK.get() else { return };
            let mut out = Vec::with_capacity(64 << 10);
            loop {
                std::thread::park_timeout(INTERVAL);
                let stopping = sink.stop.load(Ordering::Acquire);
                std::mem::swap(&mut out, &mut *lock(&sink.pending));
                if !out.is_empty() {
                    let _ = std::io::stderr().lock().write_all(&out);
                    out.clear();
                }
                let dropped = sink.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    tracing::warn!(dropped, "access log fell behind; lines dropped");
                }
                if stopping {
                    return;
                }
            }
        })
        .ok();
    Guard(writer)
}

fn lock(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn log(a: &Access<'_>) {
    let Some(sink) = SINK.get() else {
        tracing::info!(
            target: "keygate::access",
            route = a.route,
            method = %a.method,
            path = %a.path,
            status = a.status,
            auth = a.auth,
            account = a.account.map(tracing::field::display),
            latency_ms = a.latency_ms,
            client = %a.client,
            request_id = %a.request_id,
            "{}", a.message
        );
        return;
    };
    thread_local! {
        // The line being formatted.
        static LINE: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
    }
    LINE.with_borrow_mut(|buf| {
        buf.clear();
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        // The envelope `tracing`'s JSON formatter writes, around the fields.
        let written = match sink.format {
            LogFormat::Json => write!(buf, r#"{{"timestamp":"{now}","level":"INFO","fields":"#)
                .and_then(|()| serde_json::to_writer(&mut *buf, a).map_err(Into::into))
                .and_then(|()| buf.write_all(br#","target":"keygate::access"}"#)),
            LogFormat::Text => text(buf, now, a),
        };
        if written.is_ok() {
            buf.push(b'\n');
            let mut pending = lock(&sink.pending);
            if pending.len() + buf.len() > MAX_PENDING {
                sink.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                pending.extend_from_slice(buf);
            }
        }
    });
}

fn text(buf: &mut Vec<u8>, now: impl std::fmt::Display, a: &Access<'_>) -> std::io::Result<()> {
    write!(
        buf,
        "{now}  INFO keygate::access: {} route={} method={} path={} status={} auth={}",
        a.message, a.route, a.method, a.path, a.status, a.auth
    )?;
    if let Some(account) = a.account {
        write!(buf, " account={account}")?;
    }
    if let Some(ms) = a.latency_ms {
        write!(buf, " latency_ms={ms:.3}")?;
    }
    write!(buf, " client={} request_id={}", a.client, a.request_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_carry_every_field() {
        let a = Access {
            message: "request",
            route: "orders",
            method: Escaped("GET"),
            path: Escaped("/orders/1"),
            status: 200,
            auth: "ok",
            account: Some(Uuid::nil()),
            latency_ms: Some(0.5),
            client: IpAddr::from([10, 0, 0, 7]),
            request_id: Escaped("r-1"),
        };
        let mut buf = Vec::new();
        text(&mut buf, "2026-01-01T00:00:00.000000Z", &a).unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "2026-01-01T00:00:00.000000Z  INFO keygate::access: request route=orders method=GET \
             path=/orders/1 status=200 auth=ok account=00000000-0000-0000-0000-000000000000 \
             latency_ms=0.500 client=10.0.0.7 request_id=r-1"
        );
    }

    #[test]
    fn control_and_bidi_characters_a_client_sent_are_escaped() {
        let a = Access {
            message: "request",
            route: "orders",
            method: Escaped("GET"),
            path: Escaped("/orders/\u{202e}gpj.exe\nstatus=200 \\x"),
            status: 404,
            auth: "ok",
            account: None,
            latency_ms: None,
            client: IpAddr::from([10, 0, 0, 7]),
            request_id: Escaped("r\u{2066}1"),
        };
        let mut buf = Vec::new();
        text(&mut buf, "t", &a).unwrap();
        let line = String::from_utf8(buf).unwrap();
        assert!(
            line.contains(r"path=/orders/\u{202e}gpj.exe\u{000a}status=200 \\x "),
            "{line}"
        );
        assert!(line.contains(r"request_id=r\u{2066}1"), "{line}");
        let json = serde_json::to_string(&a).unwrap();
        assert!(
            !json.contains('\u{202e}') && !json.contains('\u{2066}'),
            "{json}"
        );
        assert!(
            json.contains(r#""path":"/orders/\\u{202e}gpj.exe"#),
            "{json}"
        );
    }
}
