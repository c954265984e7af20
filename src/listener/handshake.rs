//! Refused TLS handshakes: why each one failed, in plain words
//! ([`HandshakeFailure`]), one log line per refusal and a count in
//! `keygate_tls_handshake_failures_total{listener, reason}`
//! ([`FailedHandshakes`]). Owns the reading of rustls's errors and the
//! per-listener log budget. The handshake itself belongs to the accept
//! path (`listener/mod.rs`), the TLS configuration to `listener/tls.rs`.
//!
//! Levels: a refused client certificate, and a client refusing keygate's
//! own certificate, are `warn` — someone has a certificate to fix. A client
//! that speaks no TLS, shares no version or cipher suite with keygate,
//! breaks the protocol or stalls is `info`: mostly scanners and misdirected
//! clients, worth seeing, rarely worth acting on. A client that hangs up
//! mid-handshake is `debug`: load balancers' TCP health checks do that every
//! few seconds.
//!
//! SECURITY: a line carries the listener, the peer and a static reason,
//! never what the certificate says (subject, names, dates): those are
//! claims nobody vouched for, and they would let a client write into the
//! log. Lines are limited to [`LINES_PER_SECOND`] per listener so a scanner
//! cannot flood the log; every refusal is counted, written or not, and the
//! next line written says how many were left out.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use metrics::Counter;
use rustls::{AlertDescription, CertificateError, InvalidMessage};

use crate::telemetry::metrics::{Metrics, TLS_HANDSHAKE_FAILURES};

/// Log lines one listener writes per second about refused handshakes.
pub(crate) const LINES_PER_SECOND: u32 = 5;

/// Why a handshake failed, as an operator would say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandshakeFailure {
    NoCertificate,
    Expired,
    NotValidYet,
    UnknownIssuer,
    /// X.509 v1 (or v2): webpki accepts only v3. `openssl x509 -req`
    /// without `-extfile` makes v1.
    UnsupportedVersion,
    WrongPurpose,
    CaCertificate,
    BadSignature,
    BadEncoding,
    Revoked,
    UnhandledCriticalExtension,
    UnsupportedAlgorithm,
    /// A verifier error rustls passes on as `Other`; its name is logged.
    OtherCertificate,
    /// Any other refusal of the certificate; rustls's message for these may
    /// quote the certificate (its names), so nothing more is logged.
    UnacceptableCertificate,
    /// The client sent a certificate alert: it refused keygate's.
    CertificateRefusedByClient,
    PeerAlert,
    NotTls,
    NoSharedParameters,
    NoApplicationProtocol,
    Protocol,
    TimedOut,
    Closed,
    Other,
}

/// The `reason` label: a small fixed set, so the series stay few.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Expired,
    NotYetValid,
    UnknownIssuer,
    UnsupportedVersion,
    NoCertificate,
    BadCertificate,
    ClientRejected,
    NotTls,
    Protocol,
    Timeout,
    Closed,
    Other,
}

impl Class {
    pub(crate) const ALL: [Class; 12] = [
        Class::Expired,
        Class::NotYetValid,
        Class::UnknownIssuer,
        Class::UnsupportedVersion,
        Class::NoCertificate,
        Class::BadCertificate,
        Class::ClientRejected,
        Class::NotTls,
        Class::Protocol,
        Class::Timeout,
        Class::Closed,
        Class::Other,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Class::Expired => "expired",
            Class::NotYetValid => "not_yet_valid",
            Class::UnknownIssuer => "unknown_issuer",
            Class::UnsupportedVersion => "unsupported_version",
            Class::NoCertificate => "no_certificate",
            Class::BadCertificate => "bad_certificate",
            Class::ClientRejected => "client_rejected",
            Class::NotTls => "not_tls",
            Class::Protocol => "protocol",
            Class::Timeout => "timeout",
            Class::Closed => "closed",
            Class::Other => "other",
        }
    }
}

/// How loudly a failure is logged (see the module header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loudness {
    Warn,
    Info,
    Debug,
}

impl HandshakeFailure {
    /// What `accept` failed with: a rustls error inside the `io::Error`
    /// (tokio-rustls wraps it), or the socket's own.
    pub(crate) fn of(e: &io::Error) -> Self {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Self::of_tls(tls);
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::Closed,
            io::ErrorKind::TimedOut => Self::TimedOut,
            _ => Self::Other,
        }
    }

    pub(crate) fn of_tls(e: &rustls::Error) -> Self {
        use rustls::Error as E;
        match e {
            E::NoCertificatesPresented => Self::NoCertificate,
            E::InvalidCertificate(c) => Self::of_certificate(c),
            E::AlertReceived(alert) => match alert {
                AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA => Self::CertificateRefusedByClient,
                _ => Self::PeerAlert,
            },
            // The first bytes are not a TLS record header: "GET " and the
            // like are not a content type rustls knows.
            E::InvalidMessage(InvalidMessage::InvalidContentType)
            | E::InvalidMessage(InvalidMessage::UnknownProtocolVersion) => Self::NotTls,
            E::PeerIncompatible(_) => Self::NoSharedParameters,
            E::NoApplicationProtocol => Self::NoApplicationProtocol,
            E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::InvalidMessage(_)
            | E::PeerMisbehaved(_)
            | E::DecryptError
            | E::PeerSentOversizedRecord
            | E::InvalidEncryptedClientHello(_) => Self::Protocol,
            _ => Self::Other,
        }
    }

    fn of_certificate(c: &CertificateError) -> Self {
        use CertificateError as C;
        #[allow(deprecated)]
        match c {
            C::Expired | C::ExpiredContext { .. } => Self::Expired,
            C::NotValidYet | C::NotValidYetContext { .. } => Self::NotValidYet,
            C::UnknownIssuer => Self::UnknownIssuer,
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => Self::WrongPurpose,
            C::BadSignature => Self::BadSignature,
            C::BadEncoding => Self::BadEncoding,
            C::Revoked => Self::Revoked,
            C::UnhandledCriticalExtension => Self::UnhandledCriticalExtension,
            C::UnsupportedSignatureAlgorithm
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                Self::UnsupportedAlgorithm
            }
            // rustls passes on the webpki errors it has no variant for as
            // `Other`; the version check is one. The downcast holds while
            // rustls and keygate name the same rustls-webpki (Cargo.toml).
            C::Other(other) => match other.0.downcast_ref::<webpki::Error>() {
                Some(webpki::Error::UnsupportedCertVersion) => Self::UnsupportedVersion,
                Some(webpki::Error::CaUsedAsEndEntity) => Self::CaCertificate,
                Some(webpki::Error::UnsupportedCriticalExtension) => {
                    Self::UnhandledCriticalExtension
                }
                _ => Self::OtherCertificate,
            },
            _ => Self::UnacceptableCertificate,
        }
    }

    /// The reason, in plain words, for the log line.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::NoCertificate => "no client certificate presented",
            Self::Expired => "client certificate is expired",
            Self::NotValidYet => {
                "client certificate is not valid yet (its notBefore is in the future; check clocks)"
            }
            Self::UnknownIssuer => "client certificate was not issued by client_ca",
            Self::UnsupportedVersion => {
                "client certificate is X.509 v1; rustls requires v3 (sign it with -extfile giving basicConstraints/keyUsage/extendedKeyUsage)"
            }
            Self::WrongPurpose => {
                "client certificate is not for client authentication (its extendedKeyUsage lacks clientAuth)"
            }
            Self::CaCertificate => {
                "client certificate is a CA certificate (basicConstraints CA:TRUE); present a leaf certificate"
            }
            Self::BadSignature => "client certificate's signature does not verify",
            Self::BadEncoding => "client certificate is not well-formed DER",
            Self::Revoked => "client certificate is revoked",
            Self::UnhandledCriticalExtension => {
                "client certificate has a critical extension rustls does not handle"
            }
            Self::UnsupportedAlgorithm => {
                "client certificate is signed with an algorithm rustls does not support"
            }
            Self::OtherCertificate => "client certificate was refused by the verifier (see error)",
            Self::UnacceptableCertificate => "client certificate was refused by the verifier",
            Self::CertificateRefusedByClient => {
                "client refused keygate's certificate (it does not trust the issuer, or the name or dates do not fit)"
            }
            Self::PeerAlert => "client aborted the handshake with an alert",
            Self::NotTls => "client did not speak TLS (plain HTTP to a TLS port?)",
            Self::NoSharedParameters => {
                "client shares no TLS version, cipher suite or key exchange group with keygate"
            }
            Self::NoApplicationProtocol => {
                "client offered no application protocol keygate speaks (h2, http/1.1)"
            }
            Self::Protocol => "client broke the TLS protocol",
            Self::TimedOut => "handshake timed out (header_read_timeout)",
            Self::Closed => "client closed the connection during the handshake",
            Self::Other => "handshake failed",
        }
    }

    pub(crate) fn class(self) -> Class {
        match self {
            Self::NoCertificate => Class::NoCertificate,
            Self::Expired => Class::Expired,
            Self::NotValidYet => Class::NotYetValid,
            Self::UnknownIssuer => Class::UnknownIssuer,
            Self::UnsupportedVersion => Class::UnsupportedVersion,
            Self::WrongPurpose
            | Self::CaCertificate
            | Self::BadSignature
            | Self::BadEncoding
            | Self::Revoked
            | Self::UnhandledCriticalExtension
            | Self::UnsupportedAlgorithm
            | Self::OtherCertificate
            | Self::UnacceptableCertificate => Class::BadCertificate,
            Self::CertificateRefusedByClient => Class::ClientRejected,
            Self::NotTls => Class::NotTls,
            Self::PeerAlert
            | Self::NoSharedParameters
            | Self::NoApplicationProtocol
            | Self::Protocol => Class::Protocol,
            Self::TimedOut => Class::Timeout,
            Self::Closed => Class::Closed,
            Self::Other => Class::Other,
        }
    }

    fn loudness(self) -> Loudness {
        match self.class() {
            Class::Expired
            | Class::NotYetValid
            | Class::UnknownIssuer
            | Class::UnsupportedVersion
            | Class::NoCertificate
            | Class::BadCertificate
            | Class::ClientRejected => Loudness::Warn,
            Class::NotTls | Class::Protocol | Class::Timeout | Class::Other => Loudness::Info,
            Class::Closed => Loudness::Debug,
        }
    }

    /// Whether the log line should carry the error itself: only where the
    /// reason says too little to act on. SECURITY: rustls's messages for
    /// these name no certificate contents (webpki's error names; transport
    /// errors) — the variants that quote a certificate are classified above
    /// or end as `UnacceptableCertificate`, which carries none.
    fn needs_detail(self) -> bool {
        matches!(self, Self::OtherCertificate | Self::Other)
    }
}

/// One listener's refused handshakes: a counter per [`Class`] and the log
/// budget. Recording is a relaxed atomic add and, for a line, a
/// compare-and-swap; no lock.
pub struct FailedHandshakes {
    listener: &'static str,
    counts: [Counter; Class::ALL.len()],
    budget: LogBudget,
    started: Instant,
}

impl FailedHandshakes {
    /// Registers the listener's series (`listener` is `public` or `admin`).
    pub fn new(listener: &'static str, metrics: &Metrics) -> Self {
        Self {
            listener,
            counts: Class::ALL.map(|c| {
                metrics.counter(
                    TLS_HANDSHAKE_FAILURES,
                    &[("listener", listener), ("reason", c.label())],
                )
            }),
            budget: LogBudget::new(LINES_PER_SECOND),
            started: Instant::now(),
        }
    }

    /// A handshake with `peer` failed with `error` (from `accept`).
    pub(crate) fn failed(&self, peer: SocketAddr, error: &io::Error) {
        self.record(peer, HandshakeFailure::of(error), Some(error));
    }

    /// A handshake with `peer` did not finish within its time.
    pub(crate) fn timed_out(&self, peer: SocketAddr) {
        self.record(peer, HandshakeFailure::TimedOut, None);
    }

    fn record(&self, peer: SocketAddr, failure: HandshakeFailure, error: Option<&io::Error>) {
        let class = failure.class();
        if let Some(c) = self.counts.get(class as usize) {
            c.increment(1);
        }
        let loudness = failure.loudness();
        // A line the subscriber would drop must not spend the budget that
        // a warning needs.
        let enabled = match loudness {
            Loudness::Warn => tracing::enabled!(tracing::Level::WARN),
            Loudness::Info => tracing::enabled!(tracing::Level::INFO),
            Loudness::Debug => tracing::enabled!(tracing::Level::DEBUG),
        };
        if !enabled {
            return;
        }
        let second = u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX);
        let Some(suppressed) = self.budget.take(second) else {
            return;
        };
        let listener = self.listener;
        let reason = failure.reason();
        let suppressed = (suppressed > 0).then_some(suppressed);
        let error = error
            .filter(|_| failure.needs_detail())
            .map(tracing::field::display);
        match loudness {
            Loudness::Warn => tracing::warn!(
                listener,
                %peer,
                reason,
                suppressed,
                error,
                "TLS handshake refused"
            ),
            Loudness::Info => tracing::info!(
                listener,
                %peer,
                reason,
                suppressed,
                error,
                "TLS handshake failed"
            ),
            Loudness::Debug => tracing::debug!(
                listener,
                %peer,
                reason,
                suppressed,
                error,
                "TLS handshake failed"
            ),
        }
    }
}

/// At most `per_second` lines in any one second; the ones left out are
/// summed for the next line written.
struct LogBudget {
    per_second: u32,
    /// The current second in the upper 32 bits, lines written in it in the
    /// lower: one word, so one compare-and-swap moves both.
    window: AtomicU64,
    suppressed: AtomicU64,
}

impl LogBudget {
    fn new(per_second: u32) -> Self {
        Self {
            per_second,
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// At `second`: `Some(n)` when a line may be written, `n` having been
    /// left out since the last one; `None` when this one is left out.
    fn take(&self, second: u32) -> Option<u64> {
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (window, used) = ((current >> 32) as u32, current as u32);
            // A caller that read the clock a moment before another moved
            // the window on counts in the newer second.
            let next = if second > window {
                (u64::from(second) << 32) | 1
            } else if used < self.per_second {
                current + 1
            } else {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests;
