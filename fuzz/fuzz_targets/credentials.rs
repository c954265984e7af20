//! Credential extraction from `Authorization` and `X-API-Key` headers, and
//! `Authorization: Basic` decoding: whatever the headers hold, the answer
//! is one credential taken from them, or a refusal — never a panic.
#![no_main]

use arbitrary::Arbitrary;
use keygate::authn::presented;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Headers<'a> {
    authorization: Vec<&'a [u8]>,
    api_key: Vec<&'a [u8]>,
}

fuzz_target!(|h: Headers<'_>| {
    let found = presented::extract(h.authorization.iter().copied(), h.api_key.iter().copied());
    if let Ok(credential) = found {
        assert!(!credential.is_empty());
        // It is a piece of what was sent, not something made up.
        let inside = |v: &&[u8]| {
            v.windows(credential.len())
                .any(|w| w == credential.as_bytes())
        };
        assert!(h.authorization.iter().any(inside) || h.api_key.iter().any(inside));
        // Exactly one header carried it.
        assert!(h.authorization.len() + h.api_key.len() >= 1);
        assert!(h.authorization.len() <= 1 && h.api_key.len() <= 1);
    }
    for value in &h.authorization {
        let _ = presented::is_keygate_authorization(value);
    }
    if let Some(Ok((id, secret))) = presented::basic(h.authorization.first().copied()) {
        let _ = (id.len(), secret.len());
    }
});
