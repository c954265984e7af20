//! An upstream's answer head on the lean path: read once by `httparse`,
//! its framing decided one way (RFC 9112 §6.3), and written to the client
//! as the bytes it arrived in, minus the fields that stay behind (hop by
//! hop, those its `Connection` names, framing keygate writes itself, and
//! any keygate sets), plus keygate's own.

use std::io;
use std::ops::Range;

use bytes::{Buf as _, Bytes, BytesMut};
use http::header::HeaderMap;
use http::StatusCode;

use super::head::{has_token, MAX_HEADERS};
use super::wire;

/// An upstream response head longer than this is a bad gateway.
const MAX_HEAD: usize = 64 * 1024;

/// How the upstream's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the upstream closes.
    Eof,
}

/// The upstream's answer, its head read.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) framing: Framing,
    /// The upstream connection carries another request after this body.
    pub(super) reuse: bool,
    head: Bytes,
    /// Where each field's name and value lie in `head`.
    fields: Vec<(Range<usize>, Range<usize>)>,
}

/// RFC 9110 §7.6.1's connection-specific fields (`TE` included: it means
/// nothing on a response).
const HOP_BY_HOP: [&[u8]; 8] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"transfer-encoding",
    b"upgrade",
    b"te",
];

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// The answer's head at the start of `buf`, taken from it, when it is
/// whole; interim (1xx) answers before it are dropped, as hyper drops
/// them. A head that cannot be read one way is an error.
/// `recycled`: the field list of an answer read before, whose allocation
/// this one takes over.
pub(super) fn read(
    buf: &mut BytesMut,
    head_only: bool,
    recycled: &mut Vec<(Range<usize>, Range<usize>)>,
) -> io::Result<Option<Answer>> {
    loop {
        let mut parsed = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut parsed);
        let len = match res.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err(bad("upstream response head too large"))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(bad(&format!("upstream response head: {e}"))),
        };
        let code = res.code.unwrap_or(0);
        if (100..200).contains(&code) && code != 101 {
            buf.advance(len);
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| bad("upstream status"))?;
        let mut length: Option<u64> = None;
        let mut chunked_last: Option<bool> = None;
        let mut close = res.version == Some(0);
        let base = buf.as_ptr() as usize;
        let mut fields = std::mem::take(recycled);
        fields.clear();
        for f in res.headers.iter() {
            let name = f.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(f.value)
                    .ok()
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| bad("upstream content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad("upstream content-lengths disagree"));
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                // Only the final coding frames the body.
                let last = f.value.rsplit(|&b| b == b',').next().unwrap_or_default();
                chunked_last = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if name.eq_ignore_ascii_case(b"connection") {
                if has_token(f.value, b"close") {
                    close = true;
                } else if has_token(f.value, b"keep-alive") && res.version == Some(0) {
                    close = false;
                }
            }
            let n = f.name.as_ptr() as usize - base;
            let v = f.value.as_ptr() as usize - base;
            fields.push((n..n + f.name.len(), v..v + f.value.len()));
        }
        // RFC 9112 §6.3: `Transfer-Encoding` overrides `Content-Length`;
        // a body not ending in `chunked` runs to the connection's close.
        let framing = match (chunked_last, length) {
            _ if head_only || code == 204 || code == 304 => Framing::None,
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::Eof,
            (None, Some(n)) => Framing::Length(n),
        };
        return Ok(Some(Answer {
            status,
            framing,
            reuse: !close && framing != Framing::Eof,
            head: buf.split_to(len).freeze(),
            fields,
        }));
    }
}

impl Answer {
    /// The field list, for the next answer to reuse.
    pub(super) fn into_fields(self) -> Vec<(Range<usize>, Range<usize>)> {
        self.fields
    }

    fn field(&self, i: usize) -> (&[u8], &[u8]) {
        let (n, v) = &self.fields[i];
        (&self.head[n.clone()], &self.head[v.clone()])
    }

    /// The values of the fields named `name`, for keygate's fields that
    /// extend the upstream's (the quota's `RateLimit` entries).
    pub(super) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        (0..self.fields.len())
            .map(|i| self.field(i))
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Writes the head to the client: the upstream's fields as they
    /// arrived but those that stay behind, then keygate's (`ours`, which
    /// replace any of the same name), then the framing keygate writes
    /// (`framing`: [`Framing::None`] for a HEAD request), and
    /// `Connection: close` when `close`.
    pub(super) fn write_head(
        &self,
        out: &mut Vec<u8>,
        ours: &HeaderMap,
        framing: Framing,
        close: bool,
    ) {
        wire::status_line(out, self.status);
        let named = |name: &[u8]| {
            (0..self.fields.len())
                .map(|i| self.field(i))
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"connection"))
                .any(|(_, v)| has_token(v, name))
        };
        let mut dated = false;
        for i in 0..self.fields.len() {
            let (name, value) = self.field(i);
            let framing_field =
                name.eq_ignore_ascii_case(b"content-length") && framing != Framing::None;
            if framing_field
                || HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
                || ours
                    .keys()
                    .any(|k| name.eq_ignore_ascii_case(k.as_str().as_bytes()))
                || named(name)
            {
                continue;
            }
            dated |= name.eq_ignore_ascii_case(b"date");
            wire::field(out, name, value);
        }
        if !dated {
            wire::date_field(out);
        }
        for (name, value) in ours {
            wire::field(out, name.as_str().as_bytes(), value.as_bytes());
        }
        match framing {
            Framing::Length(n) => {
                let mut digits = [0u8; 20];
                wire::field(out, b"content-length", decimal(n, &mut digits));
            }
            Framing::Chunked | Framing::Eof => {
                wire::field(out, b"transfer-encoding", b"chunked");
            }
            Framing::None => {}
        }
        if close {
            wire::field(out, b"connection", b"close");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// `n` in decimal, in `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    fn head(raw: &str, head_only: bool) -> io::Result<Option<Answer>> {
        read(
            &mut BytesMut::from(raw.as_bytes()),
            head_only,
            &mut Vec::new(),
        )
    }

    fn written(a: &Answer, ours: &HeaderMap, close: bool) -> String {
        let mut out = Vec::new();
        a.write_head(&mut out, ours, a.framing, close);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn an_answer_is_framed_one_way() {
        let a = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)
            .unwrap()
            .unwrap();
        assert_eq!(a.framing, Framing::Length(5));
        assert!(a.reuse);
        let a = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.framing, Framing::Chunked);
        let w = written(&a, &HeaderMap::new(), false);
        assert!(!w.to_ascii_lowercase().contains("content-length"), "{w}");
        let a = head(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.framing, Framing::Eof);
        assert!(!a.reuse);
        let a = head("HTTP/1.1 200 OK\r\n\r\n", false).unwrap().unwrap();
        assert_eq!(a.framing, Framing::Eof);
        let a = head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .unwrap()
            .unwrap();
        assert_eq!(a.framing, Framing::None);
        assert!(written(&a, &HeaderMap::new(), false).contains("Content-Length: 5\r\n"));
        let a = head("HTTP/1.1 204 No Content\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert_eq!(a.framing, Framing::None);
        let a = head("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false)
            .unwrap()
            .unwrap();
        assert!(!a.reuse);
        let a = head(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(!a.reuse);
    }

    #[test]
    fn interim_answers_are_dropped_and_a_partial_head_waits() {
        let a = head(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        assert_eq!(a.status, StatusCode::CREATED);
        assert_eq!(a.values("link").count(), 0);
        assert!(head("HTTP/1.1 200 OK\r\nContent-Le", false)
            .unwrap()
            .is_none());
    }

    #[test]
    fn lengths_that_disagree_or_are_not_numbers_are_a_bad_gateway() {
        for raw in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nbad header\r\n\r\n",
            "HTTP/1.1 999999 Big\r\n\r\n",
        ] {
            assert!(head(raw, false).is_err(), "{raw:?}");
        }
        // The same length twice is one length, written once.
        let a = head(
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        let w = written(&a, &HeaderMap::new(), false);
        assert_eq!(w.matches("content-length: 5\r\n").count(), 1, "{w}");
        assert!(!w.contains("Content-Length"), "{w}");
    }

    #[test]
    fn lengths_are_written_in_decimal() {
        let mut buf = [0u8; 20];
        for n in [0, 7, 10, 1_000_000, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn what_stays_behind_stays_and_keygates_fields_replace_the_upstreams() {
        let a = head(
            "HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nUpgrade: h2c\r\nTE: trailers\r\nX-Request-Id: forged\r\nX-Kept: yes\r\nDate: then\r\nContent-Length: 2\r\n\r\n",
            false,
        )
        .unwrap()
        .unwrap();
        let mut ours = HeaderMap::new();
        ours.insert("x-request-id", HeaderValue::from_static("ours-1"));
        let w = written(&a, &ours, true);
        assert_eq!(
            w,
            "HTTP/1.1 200 OK\r\nX-Kept: yes\r\nDate: then\r\nx-request-id: ours-1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n"
        );
    }
}
