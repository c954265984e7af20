//! Header hygiene for request trailers: the fields a client may not send
//! as headers it may not send as trailers either (chunked trailers in
//! HTTP/1.1, a trailing HEADERS frame in HTTP/2). Several frameworks merge
//! trailers into the headers an application reads, so a spoofed
//! `X-Keygate-Account` trailer would otherwise be believed (the class of
//! Apache's CVE-2013-5704). Owns the scrub of the trailer frame as the body
//! streams by (nothing is buffered) and of the `Trailer` field that
//! announces them; which names are keygate's is [`super::headers`]'s word.
//! Response trailers (gRPC's status) are the upstream's and pass as they are.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body::Frame;
use http_body_util::combinators::MapFrame;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;

use super::headers;

/// A request body on its way upstream: limited in size, trailers scrubbed.
pub(super) type Outbound = MapFrame<Limited<Incoming>, fn(Frame<Bytes>) -> Frame<Bytes>>;

/// Wraps `body` so its trailers are scrubbed as they pass.
pub(super) fn scrubbed(body: Limited<Incoming>) -> Outbound {
    body.map_frame(scrub_frame as fn(Frame<Bytes>) -> Frame<Bytes>)
}

/// Data frames pass untouched (a move, no copy); a trailers frame loses
/// every field [`forbidden`] names.
fn scrub_frame(frame: Frame<Bytes>) -> Frame<Bytes> {
    match frame.into_trailers() {
        Ok(mut trailers) => {
            scrub(&mut trailers);
            Frame::trailers(trailers)
        }
        Err(data) => data,
    }
}

/// SECURITY: removes from `trailers` every field keygate sets or reads
/// (identity, forwarding, request id, credentials, in any spelling), and
/// those RFC 9110 §6.5.1 keeps out of trailers (framing, routing,
/// authentication, connection management).
pub(super) fn scrub(trailers: &mut HeaderMap) {
    if !trailers.keys().any(forbidden) {
        return;
    }
    let names: Vec<HeaderName> = trailers.keys().filter(|n| forbidden(n)).cloned().collect();
    for name in names {
        trailers.remove(name);
    }
}

/// Drops from the request's `Trailer` field the names [`scrub`] removes,
/// so the upstream is not told to expect them (HTTP/1.1 clients, hyper's
/// among them, send only the trailers `Trailer` announces). Allocates only
/// when there is something to drop.
pub(super) fn announce(h: &mut HeaderMap) {
    let names = || {
        h.get_all(header::TRAILER)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|n| !n.is_empty())
    };
    let dropped = |n: &[u8]| HeaderName::from_bytes(n).map_or(true, |n| forbidden(&n));
    if !names().any(dropped) {
        return;
    }
    let kept: Vec<&[u8]> = names().filter(|n| !dropped(n)).collect();
    let value = HeaderValue::from_bytes(&kept.join(&b", "[..])).ok();
    h.remove(header::TRAILER);
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        h.insert(header::TRAILER, v);
    }
}

/// Whether a trailer field named `name` is kept from the upstream.
fn forbidden(name: &HeaderName) -> bool {
    headers::is_keygates(name.as_str().as_bytes())
        || headers::is_hop_by_hop(name)
        || [
            &header::AUTHORIZATION,
            &header::COOKIE,
            &header::HOST,
            &header::CONTENT_LENGTH,
            &header::TRAILER,
            &header::TE,
        ]
        .contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spoofed_fields_leave_the_trailers_and_grpc_fields_stay() {
        let mut t = HeaderMap::new();
        t.insert("x-keygate-account", HeaderValue::from_static("evil"));
        t.insert("X_Keygate_Org", HeaderValue::from_static("evil"));
        t.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        t.insert("x_real_ip", HeaderValue::from_static("6.6.6.6"));
        t.insert("x-request-id", HeaderValue::from_static("forged"));
        t.insert("authorization", HeaderValue::from_static("Bearer x"));
        t.insert("x-api-key", HeaderValue::from_static("kg_x"));
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.insert("x-checksum", HeaderValue::from_static("abc"));
        let frame = scrub_frame(Frame::trailers(t));
        let t = frame.into_trailers().unwrap();
        let mut left: Vec<&str> = t.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["grpc-status", "x-checksum"]);
    }

    #[test]
    fn data_frames_pass_untouched() {
        let frame = scrub_frame(Frame::data(Bytes::from_static(b"x-keygate-account: 1")));
        assert_eq!(frame.into_data().unwrap(), "x-keygate-account: 1");
    }

    #[test]
    fn the_trailer_field_stops_announcing_what_is_scrubbed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::TRAILER,
            HeaderValue::from_static("x-keygate-account, X-Forwarded-For,x-checksum"),
        );
        announce(&mut h);
        assert_eq!(h[header::TRAILER], "x-checksum");
        let mut h = HeaderMap::new();
        h.insert(
            header::TRAILER,
            HeaderValue::from_static("x-keygate-account"),
        );
        announce(&mut h);
        assert!(h.get(header::TRAILER).is_none());
        let mut h = HeaderMap::new();
        h.insert(header::TRAILER, HeaderValue::from_static("grpc-status"));
        announce(&mut h);
        assert_eq!(h[header::TRAILER], "grpc-status");
    }
}
