//! Fuzzing the lean path's readers (property tests, run with the unit
//! tests): arbitrary bytes never panic them, a head is taken only when its
//! framing has one reading, and chunked bodies survive any split.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::chunked::{self, Decoder, Piece};
use super::head::{self, Parse};

/// Header lines a smuggler would try: framing fields in odd spellings,
/// duplicated, with odd values.
fn field() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("content-length"),
        Just("Content-Length"),
        Just("CONTENT-LENGTH"),
        Just("transfer-encoding"),
        Just("Transfer-Encoding"),
        Just("transfer_encoding"),
        Just("x-keygate-account"),
        Just("host"),
        Just("expect"),
        Just("connection"),
        Just("x-a"),
    ];
    let value = prop_oneof![
        Just("0"),
        Just("5"),
        Just("05"),
        Just("5, 5"),
        Just("+5"),
        Just("-1"),
        Just(" 5 "),
        Just("chunked"),
        Just("gzip, chunked"),
        Just("close"),
        Just("\t5"),
        Just("99999999999999999999"),
    ];
    let sep = prop_oneof![Just(": "), Just(":"), Just(" : "), Just(":\t")];
    (name, sep, value).prop_map(|(n, s, v)| format!("{n}{s}{v}"))
}

/// Bytes of a head's line ends and a little else, so that line ends
/// of every shape, split anywhere, are common.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b'\n'),
            Just(b'\r'),
            Just(b'a'),
            Just(b' '),
            any::<u8>()
        ],
        0..64,
    )
}

proptest! {
    #[test]
    fn a_head_may_end_exactly_where_an_empty_line_is(raw in line_bytes(), from in 0usize..70) {
        // What `may_end` must answer, by its definition: an `\n\n` or an
        // `\n\r\n` that ends after `from - 2`.
        let tail = &raw[from.saturating_sub(2).min(raw.len())..];
        let expected = tail.windows(2).any(|w| w == b"\n\n")
            || tail.windows(3).any(|w| w == b"\n\r\n");
        prop_assert_eq!(head::may_end(&raw, from), expected);
    }

    #[test]
    fn any_bytes_never_panic_the_head_reader(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Parse::Lean(l) = head::parse(&raw, &mut Vec::new()) {
            prop_assert!(l.len <= raw.len());
            let _ = l.build(&Bytes::copy_from_slice(&raw[..l.len]), http::HeaderMap::new());
        }
    }

    #[test]
    fn a_head_is_taken_only_when_its_framing_reads_one_way(
        fields in proptest::collection::vec(field(), 0..6),
        lf_only in any::<bool>(),
    ) {
        let eol = if lf_only { "\n" } else { "\r\n" };
        let mut raw = format!("POST /orders HTTP/1.1{eol}");
        for f in &fields {
            raw.push_str(f);
            raw.push_str(eol);
        }
        raw.push_str(eol);
        if let Parse::Lean(l) = head::parse(raw.as_bytes(), &mut Vec::new()) {
            let named = |n: &str| fields.iter().filter(|f| {
                f.split(':').next().is_some_and(|k| k.eq_ignore_ascii_case(n))
            }).count();
            prop_assert_eq!(named("transfer-encoding"), 0);
            prop_assert_eq!(named("expect"), 0);
            prop_assert!(named("content-length") <= 1);
            let declared = fields.iter().find_map(|f| {
                let (k, v) = f.split_once(':')?;
                k.eq_ignore_ascii_case("content-length").then(|| v.trim().parse::<u64>().ok())?
            });
            prop_assert_eq!(l.body, declared.unwrap_or(0));
            let built = l.build(
                &Bytes::copy_from_slice(&raw.as_bytes()[..l.len]),
                http::HeaderMap::new(),
            );
            prop_assert!(built.is_some());
        }
    }

    #[test]
    fn chunked_bodies_survive_any_split(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 0..8),
        ext in prop_oneof![Just(""), Just(";a=b"), Just(" ;q=\"x y\"")],
        step in 1usize..23,
    ) {
        let mut wire = Vec::new();
        for c in &chunks {
            wire.extend_from_slice(format!("{:X}{ext}\r\n", c.len()).as_bytes());
            wire.extend_from_slice(c);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\nx-t: 1\r\n\r\n");
        let mut d = Decoder::default();
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut again = Vec::new();
        for piece in wire.chunks(step) {
            buf.extend_from_slice(piece);
            while let Some(p) = d.next(&mut buf).unwrap() {
                match p {
                    Piece::Data(b) => {
                        data.extend_from_slice(&b);
                        chunked::chunk(&mut again, &b);
                    }
                    Piece::End(t) => {
                        prop_assert_eq!(t.as_slice(), &b"x-t: 1\r\n"[..]);
                        chunked::last(&mut again, &t);
                    }
                }
            }
        }
        prop_assert!(d.done());
        prop_assert_eq!(data, chunks.concat());
        // What keygate writes reads back as the same body.
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&again[..]);
        let mut reread = Vec::new();
        while let Some(p) = d.next(&mut buf).unwrap() {
            if let Piece::Data(b) = p {
                reread.extend_from_slice(&b);
            }
        }
        prop_assert!(d.done());
        prop_assert_eq!(reread, chunks.concat());
    }

    #[test]
    fn any_bytes_never_panic_the_chunked_reader(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut d = Decoder::default();
        let mut buf = BytesMut::from(&raw[..]);
        let mut out = 0;
        while let Ok(Some(p)) = d.next(&mut buf) {
            if let Piece::Data(b) = p {
                out += b.len();
            }
        }
        prop_assert!(out <= raw.len());
    }
}
