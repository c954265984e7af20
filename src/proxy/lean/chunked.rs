//! Chunked framing of an upstream's response body (RFC 9112 §7.1), read
//! strictly and written again: the client receives chunks keygate framed,
//! never the upstream's bytes as framing, so the two cannot disagree on
//! where the response ends. Extensions are dropped (hyper drops them too);
//! trailers pass when the client asked for them.

use bytes::{Buf as _, Bytes, BytesMut};

/// A size line or trailer section longer than this is refused.
const MAX_LINE: usize = 4096;
const MAX_TRAILERS: usize = 16 * 1024;

/// One piece of a chunked body, in order.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Piece {
    Data(Bytes),
    /// The last chunk; the trailer fields, each `name: value\r\n`.
    End(Vec<u8>),
}

/// The framing is not chunked as RFC 9112 writes it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Malformed;

/// A chunked body being read.
#[derive(Default)]
pub(super) struct Decoder {
    state: State,
}

#[derive(Default)]
enum State {
    #[default]
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
    Done,
}

impl Decoder {
    /// The next piece `buf` holds whole, taken from it; `None` when more
    /// bytes are needed.
    pub(super) fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Piece>, Malformed> {
        loop {
            match self.state {
                State::Size => {
                    let Some(line) = line(buf, MAX_LINE)? else {
                        return Ok(None);
                    };
                    let size = size(&line)?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let data = buf.split_to(n).freeze();
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(Piece::Data(data)));
                }
                State::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(None);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(Malformed);
                    }
                    buf.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    if buf.len() >= 2 && &buf[..2] == b"\r\n" {
                        buf.advance(2);
                        self.state = State::Done;
                        return Ok(Some(Piece::End(Vec::new())));
                    }
                    let Some(end) = find(buf, b"\r\n\r\n") else {
                        if buf.len() > MAX_TRAILERS {
                            return Err(Malformed);
                        }
                        return Ok(None);
                    };
                    let section = buf.split_to(end + 4);
                    self.state = State::Done;
                    return Ok(Some(Piece::End(trailers(&section)?)));
                }
                State::Done => return Ok(None),
            }
        }
    }

    /// The last chunk and its trailers have been read.
    pub(super) fn done(&self) -> bool {
        matches!(self.state, State::Done)
    }
}

/// Frames `data` as one chunk, into `out`.
pub(super) fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    let digits = hex_digits(data.len() as u64, &mut hex);
    out.extend_from_slice(digits);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The last chunk, with `trailers` (each `name: value\r\n`).
pub(super) fn last(out: &mut Vec<u8>, trailers: &[u8]) {
    out.extend_from_slice(b"0\r\n");
    out.extend_from_slice(trailers);
    out.extend_from_slice(b"\r\n");
}

fn hex_digits(mut n: u64, buf: &mut [u8; 16]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// A CRLF-ended line at the start of `buf`, taken with its CRLF. A bare
/// LF, or a line longer than `max`, is malformed.
fn line(buf: &mut BytesMut, max: usize) -> Result<Option<BytesMut>, Malformed> {
    let Some(lf) = buf.iter().take(max + 2).position(|&b| b == b'\n') else {
        return if buf.len() > max {
            Err(Malformed)
        } else {
            Ok(None)
        };
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(Malformed);
    }
    let mut line = buf.split_to(lf + 1);
    line.truncate(lf - 1);
    Ok(Some(line))
}

/// `chunk-size [ chunk-ext ]`: hex digits (at most 15, so the size fits
/// well in a u64), then nothing, or extensions after `;` with no control
/// byte.
fn size(line: &[u8]) -> Result<u64, Malformed> {
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 || digits > 15 {
        return Err(Malformed);
    }
    let rest = &line[digits..];
    let ext = rest.trim_ascii_start();
    if !rest.is_empty() && !ext.starts_with(b";") {
        return Err(Malformed);
    }
    if ext.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(Malformed);
    }
    let hex = std::str::from_utf8(&line[..digits]).map_err(|_| Malformed)?;
    u64::from_str_radix(hex, 16).map_err(|_| Malformed)
}

/// The trailer section (ending in its empty line) as fields written
/// again, each `name: value\r\n`.
fn trailers(section: &[u8]) -> Result<Vec<u8>, Malformed> {
    let mut fields = [httparse::EMPTY_HEADER; super::head::MAX_HEADERS];
    match httparse::parse_headers(section, &mut fields) {
        Ok(httparse::Status::Complete((_, fields))) => {
            let mut out = Vec::new();
            for f in fields {
                out.extend_from_slice(f.name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(f.value);
                out.extend_from_slice(b"\r\n");
            }
            Ok(out)
        }
        _ => Err(Malformed),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every piece of `raw`, fed `step` bytes at a time.
    fn decode(raw: &[u8], step: usize) -> Result<(Vec<u8>, Vec<u8>, usize), Malformed> {
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut trailers = Vec::new();
        for piece in raw.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(p) = d.next(&mut buf)? {
                match p {
                    Piece::Data(b) => data.extend_from_slice(&b),
                    Piece::End(t) => trailers = t,
                }
            }
            if d.done() {
                break;
            }
        }
        assert!(d.done(), "not done: {:?}", String::from_utf8_lossy(raw));
        Ok((data, trailers, buf.len()))
    }

    #[test]
    fn chunks_in_any_split_read_the_same() {
        let raw = b"5;name=v\r\nhello\r\nB\r\n world, and\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        for step in 1..raw.len() {
            let (data, trailers, left) = decode(raw, step).unwrap();
            assert_eq!(data, b"hello world, and");
            assert_eq!(trailers, b"X-Sum: 1\r\n");
            // What follows the body stays unread.
            assert!(left <= 4);
        }
    }

    #[test]
    fn written_chunks_read_back() {
        let mut out = Vec::new();
        chunk(&mut out, b"hello");
        chunk(&mut out, &[b'x'; 300]);
        chunk(&mut out, b"");
        last(&mut out, b"");
        assert!(out.starts_with(b"5\r\nhello\r\n12c\r\n"));
        let (data, trailers, _) = decode(&out, 7).unwrap();
        assert_eq!(data.len(), 305);
        assert!(trailers.is_empty());
    }

    #[test]
    fn framing_that_reads_two_ways_is_malformed() {
        for raw in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5 5\r\nhello\r\n0\r\n\r\n",
            b"1000000000000000\r\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"\r\n",
        ] {
            let mut d = Decoder::default();
            let mut buf = BytesMut::from(raw);
            let out = loop {
                match d.next(&mut buf) {
                    Ok(Some(_)) => {}
                    end => break end,
                }
            };
            assert_eq!(out, Err(Malformed), "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn an_endless_size_line_is_malformed_not_buffered() {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&[b'0'; MAX_LINE + 10][..]);
        assert_eq!(d.next(&mut buf), Err(Malformed));
    }
}
