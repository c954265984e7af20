//! The secrets keygate issues: API keys and client secrets,
//! `<prefix>_<32 base62 random>_<6 base62 CRC32>`, and public client ids.
//! Generation, the shape and checksum check, SHA-256 hashing and redaction.
//!
//! 32 base62 characters carry 190.5 bits of randomness, so a fast hash
//! (SHA-256) is the right one to store: a slow password hash would add latency
//! and no security. The CRC32 checksum lets keygate refuse typos and garbage
//! without a lookup, and lets secret scanners recognise leaked keys. Knows
//! nothing of requests or of which secrets are valid.

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
pub const RANDOM_LEN: usize = 32;
pub const CHECKSUM_LEN: usize = 6;

/// SHA-256 of a whole key string; the only form in which keys are stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

/// A SHA-256 output is already uniformly distributed, so hashing it again for
/// a map is wasted work: feed its first 8 bytes to the hasher as one `u64`
/// (see the cache's identity hasher).
impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut first = [0u8; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

impl KeyHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        s
    }

    /// The hash from its 64 lowercase hex digits, as stored; `None` for
    /// anything else. Branch-free per digit: the initial load decodes a
    /// million of these.
    pub fn from_hex(s: &str) -> Option<Self> {
        let digits: &[u8; 64] = s.as_bytes().try_into().ok()?;
        let mut out = [0u8; 32];
        // Every valid digit is below 16; any other byte maps to 0xff.
        let mut seen = 0u8;
        for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = (UNHEX[usize::from(pair[0])], UNHEX[usize::from(pair[1])]);
            seen |= hi | lo;
            *o = (hi << 4) | lo;
        }
        (seen < 16).then_some(Self(out))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A lowercase hex digit's value, 0xff for every other byte.
const UNHEX: [u8; 256] = {
    let mut t = [0xff; 256];
    let mut i = 0;
    while i < 16 {
        t[HEX[i] as usize] = i as u8;
        i += 1;
    }
    t
};

// SECURITY: a hash is a lookup handle for a secret; keep it out of logs.
impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(***)")
    }
}

/// The configured key format (its prefix).
#[derive(Debug, Clone)]
pub struct ApiKeyFormat {
    /// e.g. `kg` → keys `kg_…`, secrets `kgs_…`, client ids `kgc_…`.
    prefix: String,
}

/// A freshly generated secret: the value (shown once) and what is stored.
pub struct Generated {
    pub value: Zeroizing<String>,
    pub hash: KeyHash,
    pub redacted: String,
}

impl fmt::Debug for Generated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generated")
            .field("redacted", &self.redacted)
            .finish_non_exhaustive()
    }
}

impl ApiKeyFormat {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Generates a new API key `<prefix>_…`.
    pub fn generate_key(&self) -> Generated {
        generate(&self.prefix)
    }

    /// Generates a client secret `<prefix>s_…` (the key format, checksum included).
    pub fn generate_secret(&self) -> Generated {
        generate(&format!("{}s", self.prefix))
    }

    /// Generates a public client id `<prefix>c_<22 base62>`.
    pub fn generate_client_id(&self) -> String {
        let mut rng = rand::thread_rng();
        let mut id = format!("{}c_", self.prefix);
        id.extend((0..22).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])));
        id
    }

    /// Checks shape and checksum of a presented key without any lookup.
    /// Returns false for anything that cannot be a key of this format.
    pub fn is_well_formed(&self, candidate: &str) -> bool {
        let bytes = candidate.as_bytes();
        let p = self.prefix.as_bytes();
        let expected = p.len() + 1 + RANDOM_LEN + 1 + CHECKSUM_LEN;
        if bytes.len() != expected || !bytes.starts_with(p) || bytes[p.len()] != b'_' {
            return false;
        }
        let random = &bytes[p.len() + 1..p.len() + 1 + RANDOM_LEN];
        let sep = bytes[p.len() + 1 + RANDOM_LEN];
        let checksum = &bytes[p.len() + 2 + RANDOM_LEN..];
        sep == b'_'
            && random.iter().all(u8::is_ascii_alphanumeric)
            && checksum_matches(random, checksum)
    }
}

/// The regular expression of keys and client secrets with `prefix`
/// (`kg_…` and `kgs_…`), for secret scanners: the prefix, 32 base62
/// characters, and the 6-character checksum that lets the issuer refuse a
/// false match offline. Works in RE2, PCRE, Go and Hyperscan syntax.
pub fn scanner_pattern(prefix: &str) -> String {
    format!(r"\b{prefix}s?_[0-9A-Za-z]{{{RANDOM_LEN}}}_[0-9A-Za-z]{{{CHECKSUM_LEN}}}\b")
}

fn generate(prefix: &str) -> Generated {
    let mut rng = rand::thread_rng();
    let mut random = [0u8; RANDOM_LEN];
    for c in &mut random {
        *c = ALPHABET[rng.gen_range(0..ALPHABET.len())];
    }
    let mut value = Zeroizing::new(String::with_capacity(
        prefix.len() + 2 + RANDOM_LEN + CHECKSUM_LEN,
    ));
    value.push_str(prefix);
    value.push('_');
    value.extend(random.iter().map(|&b| char::from(b)));
    value.push('_');
    value.extend(
        encode_checksum(crc32fast::hash(&random))
            .iter()
            .map(|&b| char::from(b)),
    );
    random.fill(0);
    let hash = KeyHash::of(&value);
    let redacted = redact(&value, prefix.len() + 1);
    Generated {
        value,
        hash,
        redacted,
    }
}

/// `prefix_` + first 4 + `…` + last 4: enough to tell keys apart, never to use one.
pub fn redact(value: &str, prefix_len: usize) -> String {
    let body = value.get(prefix_len..).unwrap_or("");
    let first: String = body.chars().take(4).collect();
    let last: String = {
        let n = value.chars().count();
        value.chars().skip(n.saturating_sub(4)).collect()
    };
    format!("{}{first}…{last}", value.get(..prefix_len).unwrap_or(""))
}

fn encode_checksum(mut n: u32) -> [u8; CHECKSUM_LEN] {
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    out
}

fn checksum_matches(random: &[u8], checksum: &[u8]) -> bool {
    encode_checksum(crc32fast::hash(random)) == checksum
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_keys_are_well_formed_and_distinct() {
        let f = ApiKeyFormat::new("kg");
        let a = f.generate_key();
        let b = f.generate_key();
        assert!(a.value.starts_with("kg_"));
        assert_eq!(a.value.len(), 3 + 32 + 1 + 6);
        assert!(f.is_well_formed(&a.value));
        assert_ne!(*a.value, *b.value);
        assert_eq!(a.hash, KeyHash::of(&a.value));
        assert!(a.redacted.starts_with("kg_") && a.redacted.contains('…'));
        assert!(!a.redacted.contains(&a.value[3..20]));
    }

    #[test]
    fn a_flipped_character_fails_the_checksum() {
        let f = ApiKeyFormat::new("kg");
        let key = f.generate_key();
        let mut bytes = key.value.as_bytes().to_vec();
        bytes[5] = if bytes[5] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(bytes).unwrap_or_default();
        assert!(!f.is_well_formed(&typo));
    }

    #[test]
    fn other_prefixes_and_shapes_are_refused() {
        let f = ApiKeyFormat::new("kg");
        let key = ApiKeyFormat::new("xx").generate_key();
        assert!(!f.is_well_formed(&key.value));
        assert!(!f.is_well_formed(""));
        assert!(!f.is_well_formed("kg_"));
    }

    #[test]
    fn hex_round_trips() {
        let h = KeyHash::of("x");
        assert_eq!(KeyHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(KeyHash::from_hex("zz"), None);
        assert_eq!(KeyHash::from_hex(&"0".repeat(64)), Some(KeyHash([0; 32])));
        assert_eq!(
            KeyHash::from_hex(&"f".repeat(64)),
            Some(KeyHash([0xff; 32]))
        );
    }

    #[test]
    fn hex_with_any_digit_out_of_place_is_refused() {
        let hex = KeyHash::of("x").to_hex();
        assert_eq!(KeyHash::from_hex(&hex[1..]), None);
        assert_eq!(KeyHash::from_hex(&format!("{hex}0")), None);
        // The bytes next to each digit range, uppercase, and a two-byte
        // character that keeps the length at 64 bytes.
        for bad in ["/", ":", "`", "g", "A", "F", " ", "\0"] {
            for at in [0, 1, 31, 62, 63] {
                let mut s = hex.clone();
                s.replace_range(at..=at, bad);
                assert_eq!(KeyHash::from_hex(&s), None, "{bad:?} at {at}");
            }
        }
        let mut s = hex.clone();
        s.replace_range(10..12, "é");
        assert_eq!(KeyHash::from_hex(&s), None);
    }

    #[test]
    fn the_scanner_pattern_reads_as_the_format() {
        assert_eq!(
            scanner_pattern("kg"),
            r"\bkgs?_[0-9A-Za-z]{32}_[0-9A-Za-z]{6}\b"
        );
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic_and_rarely_pass(s in ".{0,64}") {
            let f = ApiKeyFormat::new("kg");
            // Random text must not look like a key; the checksum makes this near-certain.
            prop_assert!(!f.is_well_formed(&s) || s.starts_with("kg_"));
        }

        #[test]
        fn every_generated_key_validates(_seed in 0u8..32) {
            let f = ApiKeyFormat::new("kg");
            let k = f.generate_key();
            prop_assert!(f.is_well_formed(&k.value));
        }
    }
}
