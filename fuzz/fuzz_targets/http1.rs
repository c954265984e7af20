//! The lean HTTP/1.1 path's readers: a client's request head, an
//! upstream's answer head and a chunked body, from arbitrary bytes. None
//! panics; a chunked body keygate frames reads back as what was framed;
//! a body the reader accepts is never longer than its bytes.
#![no_main]

use keygate::proxy::lean::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let _ = fuzzing::request_head(raw);
    let _ = fuzzing::response_head(raw, false);
    let _ = fuzzing::response_head(raw, true);
    if let Some(data) = fuzzing::chunked_body(raw) {
        assert!(data.len() <= raw.len());
    }
    let pieces: Vec<&[u8]> = raw.split(|&b| b == 0).collect();
    let framed = fuzzing::chunk(&pieces);
    assert_eq!(fuzzing::chunked_body(&framed).as_deref(), Some(&pieces.concat()[..]));
});
