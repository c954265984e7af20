//! A client's request head, as the lean path reads it: parsed once by
//! `httparse`, told apart into what this path serves and what it hands to
//! hyper, then made into the `http` types the phases read without copying
//! a value (each is a slice of the bytes it arrived in).
//!
//! SECURITY: this path serves only requests whose framing has one reading:
//! HTTP/1.1, origin-form, no `Transfer-Encoding`, at most one
//! `Content-Length` of plain digits, no `Expect`, no `Upgrade`. Everything
//! else — malformed heads included — goes to hyper, which answers it (or
//! refuses it) as it does on the hyper path.

use std::ops::Range;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Uri};

/// Header fields one request may carry (hyper's limit too; past it hyper
/// answers 431).
pub(super) const MAX_HEADERS: usize = 100;

/// What the bytes read so far hold.
pub(super) enum Parse {
    /// Not yet a whole head.
    Partial,
    /// A head this path serves.
    Lean(Lean),
    /// A head this path does not serve, or one it cannot read: hyper's.
    Elsewhere,
}

/// Where the parts of a head this path serves lie in the buffer.
pub(super) struct Lean {
    pub(super) len: usize,
    method: Range<usize>,
    target: Range<usize>,
    fields: Vec<(Range<usize>, Range<usize>)>,
    /// The body's length (`Content-Length`), 0 when none.
    pub(super) body: u64,
    /// `Connection: close`.
    pub(super) close: bool,
    /// The client reads trailers (`TE: trailers`).
    pub(super) trailers: bool,
}

/// A request head this path serves, as the phases read it.
pub(super) struct Request {
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
}

/// Reads the head at the start of `buf`. `recycled`: the field list of a
/// head read before, whose allocation a head this path serves takes over.
pub(super) fn parse(buf: &[u8], recycled: &mut Vec<(Range<usize>, Range<usize>)>) -> Parse {
    let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut fields);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parse::Partial,
        Err(_) => return Parse::Elsewhere,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Parse::Elsewhere;
    };
    if !target.starts_with('/') || method == "CONNECT" {
        return Parse::Elsewhere;
    }
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - buf.as_ptr() as usize;
        start..start + s.len()
    };
    let mut lean = Lean {
        len,
        method: at(method.as_bytes()),
        target: at(target.as_bytes()),
        fields: std::mem::take(recycled),
        body: 0,
        close: false,
        trailers: false,
    };
    lean.fields.clear();
    let mut length_seen = false;
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        let value = f.value;
        if name.eq_ignore_ascii_case(b"content-length") {
            // One field, digits only: anything else (a list, a sign, a
            // second field) is hyper's to judge.
            if length_seen
                || value.is_empty()
                || value.len() > 18
                || !value.iter().all(u8::is_ascii_digit)
            {
                *recycled = lean.fields;
                return Parse::Elsewhere;
            }
            length_seen = true;
            lean.body = value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"content-type") && is_grpc(value)
        {
            *recycled = lean.fields;
            return Parse::Elsewhere;
        } else if name.eq_ignore_ascii_case(b"connection") {
            lean.close |= has_token(value, b"close");
        } else if name.eq_ignore_ascii_case(b"te") {
            lean.trailers |= has_token(value, b"trailers");
        }
        lean.fields.push((at(name), at(value)));
    }
    Parse::Lean(lean)
}

impl Lean {
    /// The field list, for the next head to reuse.
    pub(super) fn into_fields(self) -> Vec<(Range<usize>, Range<usize>)> {
        self.fields
    }

    /// The request's method, as sent.
    pub(super) fn method<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        &buf[self.method.clone()]
    }

    /// The request's path, for telling where it goes before it is taken.
    pub(super) fn path<'b>(&self, buf: &'b [u8]) -> &'b str {
        let target = &buf[self.target.clone()];
        let end = target
            .iter()
            .position(|&b| b == b'?')
            .unwrap_or(target.len());
        // httparse admits only visible ASCII in a target.
        std::str::from_utf8(&target[..end]).unwrap_or("")
    }

    /// The head as `http` types, its values slices of `head` (the bytes
    /// [`parse`] read), its fields in `headers` (an emptied map, reused).
    /// `None` when a part is not what `http` accepts.
    pub(super) fn build(&self, head: &Bytes, mut headers: HeaderMap) -> Option<Request> {
        let method = Method::from_bytes(&head[self.method.clone()]).ok()?;
        let uri = Uri::from_maybe_shared(head.slice(self.target.clone())).ok()?;
        headers.clear();
        headers.reserve(self.fields.len() + 8);
        for (name, value) in &self.fields {
            let name = HeaderName::from_bytes(&head[name.clone()]).ok()?;
            let value = HeaderValue::from_maybe_shared(head.slice(value.clone())).ok()?;
            headers.append(name, value);
        }
        Some(Request {
            method,
            uri,
            headers,
        })
    }
}

/// Whether `buf` may hold a whole head, looking only at what came after
/// `from` (and the few bytes before it a line end may span): a head ends
/// at an empty line, `\n\n` or `\n\r\n`. Only the line feeds are looked
/// at (found by `memchr`, many bytes a step): two passes of byte windows
/// over every head were ~3% of a proxied request's CPU with a 600-byte JWT.
pub(super) fn may_end(buf: &[u8], from: usize) -> bool {
    let tail = &buf[from.saturating_sub(2).min(buf.len())..];
    memchr::memchr_iter(b'\n', tail).any(|i| match tail.get(i + 1) {
        Some(b'\n') => true,
        Some(b'\r') => tail.get(i + 2) == Some(&b'\n'),
        _ => false,
    })
}

/// `application/grpc…`: gRPC's answers and refusals are hyper's.
fn is_grpc(v: &[u8]) -> bool {
    v.len() >= 16 && v[..16].eq_ignore_ascii_case(b"application/grpc")
}

/// Whether the comma-separated `value` lists `token`.
pub(super) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lean(raw: &str) -> Lean {
        match parse(raw.as_bytes(), &mut Vec::new()) {
            Parse::Lean(l) => l,
            Parse::Partial => panic!("partial: {raw:?}"),
            Parse::Elsewhere => panic!("elsewhere: {raw:?}"),
        }
    }

    fn elsewhere(raw: &str) -> bool {
        matches!(parse(raw.as_bytes(), &mut Vec::new()), Parse::Elsewhere)
    }

    #[test]
    fn a_plain_request_is_read_with_its_values_in_place() {
        let raw = "GET /orders/1?x=2 HTTP/1.1\r\nHost: a\r\nX-Api-Key: kg_1\r\nx-api-key: kg_2\r\n\r\nnext";
        let l = lean(raw);
        assert_eq!(l.len, raw.len() - 4);
        assert_eq!(l.path(raw.as_bytes()), "/orders/1");
        let head = Bytes::copy_from_slice(&raw.as_bytes()[..l.len]);
        let r = l.build(&head, HeaderMap::new()).unwrap();
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.uri.path(), "/orders/1");
        assert_eq!(r.uri.query(), Some("x=2"));
        let keys: Vec<_> = r.headers.get_all("x-api-key").iter().collect();
        assert_eq!(keys, ["kg_1", "kg_2"]);
        assert_eq!(l.body, 0);
        assert!(!l.close);
    }

    #[test]
    fn framing_with_more_than_one_reading_goes_to_hyper() {
        assert!(elsewhere(
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(elsewhere(
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n"
        ));
        assert!(elsewhere("POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n"));
        assert!(elsewhere("POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n"));
        assert!(elsewhere("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n"));
        assert!(elsewhere(
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"
        ));
        assert!(elsewhere("POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n"));
        assert!(elsewhere("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"));
        assert!(elsewhere("GET / HTTP/1.0\r\n\r\n"));
        assert!(elsewhere("GET http://a/ HTTP/1.1\r\n\r\n"));
        assert!(elsewhere("CONNECT a:443 HTTP/1.1\r\n\r\n"));
        assert!(elsewhere("OPTIONS * HTTP/1.1\r\n\r\n"));
        assert!(elsewhere("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n"));
        assert!(elsewhere("GET / HTTP/1.1\r\nX : a\r\n\r\n"));
        assert!(elsewhere(
            "POST / HTTP/1.1\r\ncontent-type: application/grpc+proto\r\n\r\n"
        ));
        assert_eq!(
            lean("POST / HTTP/1.1\r\nContent-Length: 0012\r\n\r\n").body,
            12
        );
    }

    #[test]
    fn too_many_fields_go_to_hyper() {
        let mut raw = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            raw.push_str(&format!("x-{i}: 1\r\n"));
        }
        raw.push_str("\r\n");
        assert!(elsewhere(&raw));
    }

    #[test]
    fn a_head_in_pieces_is_partial() {
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\n", &mut Vec::new()),
            Parse::Partial
        ));
        assert!(matches!(parse(b"GE", &mut Vec::new()), Parse::Partial));
    }

    #[test]
    fn a_head_is_looked_for_only_where_it_may_end() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        assert!(may_end(raw, 0));
        // Fed a byte at a time, it may end only with its last byte.
        let ends: Vec<usize> = (1..=raw.len())
            .filter(|&n| may_end(&raw[..n], n - 1))
            .collect();
        assert_eq!(ends, [raw.len()]);
        assert!(may_end(b"GET / HTTP/1.1\n\n", 14));
        assert!(!may_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
        assert!(!may_end(b"", 0));
    }

    #[test]
    fn connection_and_te_are_read_as_lists() {
        let l =
            lean("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\nTE: gzip, trailers\r\n\r\n");
        assert!(l.close);
        assert!(l.trailers);
        let l = lean("GET / HTTP/1.1\r\nConnection: closed\r\n\r\n");
        assert!(!l.close);
    }
}
