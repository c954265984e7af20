//! The classifier and the log budget.

use std::sync::Arc;

use rustls::pki_types::UnixTime;
use rustls::{OtherError, PeerIncompatible};

use super::*;

fn io(e: rustls::Error) -> io::Error {
    // As tokio-rustls hands it over.
    io::Error::new(io::ErrorKind::InvalidData, e)
}

fn cert(e: CertificateError) -> HandshakeFailure {
    HandshakeFailure::of(&io(rustls::Error::InvalidCertificate(e)))
}

#[test]
fn client_certificate_errors_get_their_own_reason() {
    let t = UnixTime::since_unix_epoch(std::time::Duration::from_secs(10));
    assert_eq!(cert(CertificateError::Expired), HandshakeFailure::Expired);
    assert_eq!(
        cert(CertificateError::ExpiredContext {
            time: t,
            not_after: t
        }),
        HandshakeFailure::Expired
    );
    assert_eq!(
        cert(CertificateError::NotValidYetContext {
            time: t,
            not_before: t
        })
        .class(),
        Class::NotYetValid
    );
    assert_eq!(
        cert(CertificateError::UnknownIssuer).class(),
        Class::UnknownIssuer
    );
    assert_eq!(
        cert(CertificateError::InvalidPurpose).class(),
        Class::BadCertificate
    );
    assert_eq!(
        HandshakeFailure::of(&io(rustls::Error::NoCertificatesPresented)).class(),
        Class::NoCertificate
    );
    // Its message would quote the certificate's names: none logged.
    let named = cert(CertificateError::NotValidForName);
    assert_eq!(named, HandshakeFailure::UnacceptableCertificate);
    assert!(!named.needs_detail());
}

#[test]
fn webpki_errors_rustls_passes_as_other_are_told_apart() {
    let other = |e: webpki::Error| cert(CertificateError::Other(OtherError(Arc::new(e))));
    assert_eq!(
        other(webpki::Error::UnsupportedCertVersion),
        HandshakeFailure::UnsupportedVersion
    );
    assert!(HandshakeFailure::UnsupportedVersion
        .reason()
        .contains("X.509 v1"));
    assert_eq!(
        other(webpki::Error::CaUsedAsEndEntity),
        HandshakeFailure::CaCertificate
    );
    assert_eq!(
        other(webpki::Error::PathLenConstraintViolated),
        HandshakeFailure::OtherCertificate
    );
    assert_eq!(
        other(webpki::Error::PathLenConstraintViolated).class(),
        Class::BadCertificate
    );
}

#[test]
fn transport_and_protocol_failures_are_classified() {
    let kind = |k: io::ErrorKind| HandshakeFailure::of(&io::Error::new(k, "x"));
    assert_eq!(kind(io::ErrorKind::UnexpectedEof), HandshakeFailure::Closed);
    assert_eq!(
        kind(io::ErrorKind::ConnectionReset),
        HandshakeFailure::Closed
    );
    assert_eq!(
        kind(io::ErrorKind::PermissionDenied),
        HandshakeFailure::Other
    );
    let tls = |e: rustls::Error| HandshakeFailure::of(&io(e));
    assert_eq!(
        tls(rustls::Error::InvalidMessage(
            InvalidMessage::InvalidContentType
        )),
        HandshakeFailure::NotTls
    );
    assert_eq!(
        tls(rustls::Error::PeerIncompatible(
            PeerIncompatible::NoCipherSuitesInCommon
        ))
        .class(),
        Class::Protocol
    );
    assert_eq!(
        tls(rustls::Error::AlertReceived(AlertDescription::UnknownCA)).class(),
        Class::ClientRejected
    );
    assert_eq!(
        tls(rustls::Error::AlertReceived(AlertDescription::CloseNotify)),
        HandshakeFailure::PeerAlert
    );
}

#[test]
fn every_class_has_a_distinct_label_and_a_slot() {
    for (i, c) in Class::ALL.iter().enumerate() {
        assert_eq!(*c as usize, i, "{c:?} is out of place in Class::ALL");
        let label = c.label();
        assert!(label.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'));
        assert_eq!(
            Class::ALL.iter().filter(|o| o.label() == label).count(),
            1,
            "{label}"
        );
    }
}

#[test]
fn the_log_budget_allows_a_few_lines_a_second_and_reports_the_rest() {
    let b = LogBudget::new(3);
    for _ in 0..3 {
        assert_eq!(b.take(1), Some(0));
    }
    assert_eq!(b.take(1), None);
    assert_eq!(b.take(1), None);
    // The next second: the first line says two were left out.
    assert_eq!(b.take(2), Some(2));
    assert_eq!(b.take(2), Some(0));
    // A caller still on the old second counts in the new one.
    assert_eq!(b.take(1), Some(0));
    assert_eq!(b.take(2), None);
    assert_eq!(b.take(9), Some(1));
}

#[test]
fn refusals_are_counted_even_when_no_line_is_written() {
    let m = Metrics::new();
    let f = FailedHandshakes::new("public", &m);
    let peer: SocketAddr = "192.0.2.1:4000".parse().unwrap();
    let expired = io(rustls::Error::InvalidCertificate(CertificateError::Expired));
    for _ in 0..(LINES_PER_SECOND * 3) {
        f.failed(peer, &expired);
    }
    f.timed_out(peer);
    let text = m.render().unwrap();
    let want = format!(
        r#"keygate_tls_handshake_failures_total{{listener="public",reason="expired"}} {}"#,
        LINES_PER_SECOND * 3
    );
    assert!(text.contains(&want), "{text}");
    assert!(
        text.contains(
            r#"keygate_tls_handshake_failures_total{listener="public",reason="timeout"} 1"#
        ),
        "{text}"
    );
}
