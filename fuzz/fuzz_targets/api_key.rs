//! API-key parsing and checksum: shape and CRC32 are checked without a
//! lookup; no input panics, and the checks agree with the key generator.
#![no_main]

use std::sync::OnceLock;

use keygate::secret::{redact, ApiKeyFormat, KeyHash};
use libfuzzer_sys::fuzz_target;

fn format() -> &'static (ApiKeyFormat, String) {
    static F: OnceLock<(ApiKeyFormat, String)> = OnceLock::new();
    F.get_or_init(|| {
        let f = ApiKeyFormat::new("kg");
        let key = f.generate_key().value.to_string();
        (f, key)
    })
}

fuzz_target!(|data: &[u8]| {
    let (format, real) = format();
    assert!(format.is_well_formed(real));
    if let Ok(candidate) = std::str::from_utf8(data) {
        if format.is_well_formed(candidate) {
            assert!(candidate.starts_with("kg_") && candidate.len() == real.len());
            assert!(candidate
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
        let _ = KeyHash::of(candidate);
        let shown = redact(candidate, 3);
        assert!(shown.chars().count() <= 3 + 4 + 1 + 4 || candidate.chars().count() <= 11);
    }
    // A real key with one byte changed is refused unless the change is a
    // no-op: the checksum catches every single-character typo.
    if let (Some(&at), Some(&to)) = (data.first(), data.get(1)) {
        let mut typo = real.clone().into_bytes();
        let i = 3 + usize::from(at) % (typo.len() - 3);
        if typo[i] != to && to.is_ascii_alphanumeric() && i != 3 + 32 {
            typo[i] = to;
            let typo = String::from_utf8(typo).unwrap();
            assert!(!format.is_well_formed(&typo), "{typo} passed for {real}");
        }
    }
});
