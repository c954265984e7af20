//! Message heads as the lean path writes them: one buffer per message,
//! written in one call.

use std::cell::RefCell;
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Uri};

/// `METHOD origin-form HTTP/1.1`, the fields, the empty line.
pub(super) fn request_head(out: &mut Vec<u8>, method: &Method, uri: &Uri, h: &HeaderMap) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    match uri.path_and_query() {
        Some(pq) => out.extend_from_slice(pq.as_str().as_bytes()),
        None => out.push(b'/'),
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    fields(out, h);
}

/// The status line, the fields but any `Content-Length`, then
/// `content-length: <len>` and the empty line: an answer whose body is whole.
pub(super) fn response_head(out: &mut Vec<u8>, status: StatusCode, h: &HeaderMap, len: usize) {
    status_line(out, status);
    if !h.contains_key(header::DATE) {
        date_field(out);
    }
    for (name, value) in h {
        if name != header::CONTENT_LENGTH {
            field(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"content-length: ");
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{len}");
    out.extend_from_slice(b"\r\n\r\n");
}

/// `HTTP/1.1 <code> <reason>` (the canonical reason, as hyper writes it).
pub(super) fn status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// One field line.
pub(super) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `date: <now>`, as hyper adds it to an answer that has none.
pub(super) fn date_field(out: &mut Vec<u8>) {
    out.extend_from_slice(b"date: ");
    date(out);
    out.extend_from_slice(b"\r\n");
}

fn fields(out: &mut Vec<u8>, h: &HeaderMap) {
    for (name, value) in h {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

thread_local! {
    /// The current second and its IMF-fixdate, formatted once a second.
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((0, [b' '; 29])) };
}

/// Now as an IMF-fixdate (RFC 9110 §5.6.7), as hyper writes it.
fn date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs {
            let s = httpdate::fmt_http_date(now);
            if s.len() == 29 {
                d.1.copy_from_slice(s.as_bytes());
                d.0 = secs;
            }
        }
        out.extend_from_slice(&d.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn heads_are_written_as_http_1_1() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("up:8080"));
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        request_head(&mut out, &Method::POST, &"/a?b=c".parse().unwrap(), &h);
        assert_eq!(
            out,
            b"POST /a?b=c HTTP/1.1\r\nhost: up:8080\r\nx-a: 1\r\nx-a: 2\r\n\r\n"
        );
        let mut out = Vec::new();
        let mut h = HeaderMap::new();
        h.insert(header::DATE, HeaderValue::from_static("then"));
        response_head(&mut out, StatusCode::NOT_FOUND, &h, 0);
        assert_eq!(
            out,
            b"HTTP/1.1 404 Not Found\r\ndate: then\r\ncontent-length: 0\r\n\r\n"
        );
        let mut out = Vec::new();
        let mut h = HeaderMap::new();
        h.insert(header::DATE, HeaderValue::from_static("then"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("999"));
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        response_head(&mut out, StatusCode::UNAUTHORIZED, &h, 12);
        assert_eq!(
            out,
            b"HTTP/1.1 401 Unauthorized\r\ndate: then\r\nconnection: close\r\ncontent-length: 12\r\n\r\n"
        );
        let mut out = Vec::new();
        response_head(&mut out, StatusCode::OK, &HeaderMap::new(), 5);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ndate: "), "{text}");
        assert!(
            text.ends_with(" GMT\r\ncontent-length: 5\r\n\r\n"),
            "{text}"
        );
    }
}
