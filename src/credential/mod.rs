//! Credentials as they arrive on the wire: which header carries one, and what
//! shape it has. Owns the API key format ([`key`]); does not know whether a key
//! is valid (that is the [`crate::cache`]'s job).

pub mod key;

pub use key::{ApiKeyFormat, KeyHash};

/// The longest credential keygate will look at. Anything longer is refused
/// before hashing. SECURITY: bounds the work an unauthenticated caller can cause.
pub const MAX_CREDENTIAL_LEN: usize = 4096;

/// Why no usable credential could be taken from a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no credential presented")]
    Missing,
    #[error("credential is malformed")]
    Malformed,
}

/// Extracts the credential from the `Authorization` and `X-API-Key` header values.
/// Never reads the query string (DESIGN: credentials in URLs leak into logs).
///
/// Takes the raw header bytes so the hot path borrows rather than allocates.
pub fn extract<'a>(
    authorization: Option<&'a [u8]>,
    api_key: Option<&'a [u8]>,
) -> Result<&'a str, Error> {
    if let Some(rest) = authorization.and_then(keygate_scheme) {
        return as_credential(rest);
    }
    // Another scheme (Basic, …) is meant for the upstream, not keygate.
    if let Some(value) = api_key {
        return as_credential(trim(value));
    }
    Err(Error::Missing)
}

/// Whether an `Authorization` value carries a keygate credential (`Bearer`
/// or `Token` scheme); only then is it stripped before forwarding.
pub fn is_keygate_authorization(value: &[u8]) -> bool {
    keygate_scheme(value).is_some()
}

fn keygate_scheme(value: &[u8]) -> Option<&[u8]> {
    let value = trim(value);
    // A bare "Bearer" is a presented, empty credential: malformed, not missing.
    if value.eq_ignore_ascii_case(b"bearer") || value.eq_ignore_ascii_case(b"token") {
        return Some(&[]);
    }
    strip_scheme(value, b"bearer ").or_else(|| strip_scheme(value, b"token "))
}

/// Case-insensitive scheme match (RFC 9110 §11.1: auth schemes are case-insensitive).
fn strip_scheme<'a>(value: &'a [u8], scheme: &[u8]) -> Option<&'a [u8]> {
    if value.len() >= scheme.len() && value[..scheme.len()].eq_ignore_ascii_case(scheme) {
        Some(trim(&value[scheme.len()..]))
    } else {
        None
    }
}

fn as_credential(bytes: &[u8]) -> Result<&str, Error> {
    if bytes.is_empty() || bytes.len() > MAX_CREDENTIAL_LEN {
        return Err(Error::Malformed);
    }
    // SECURITY: only visible ASCII; rules out header smuggling through odd bytes.
    if !bytes.iter().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Malformed);
    }
    std::str::from_utf8(bytes).map_err(|_| Error::Malformed)
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if first.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = b {
        if last.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token_and_api_key_headers_are_accepted() {
        assert_eq!(extract(Some(b"Bearer abc"), None), Ok("abc"));
        assert_eq!(extract(Some(b"token  abc "), None), Ok("abc"));
        assert_eq!(extract(None, Some(b"abc")), Ok("abc"));
    }

    #[test]
    fn another_scheme_does_not_hide_the_api_key_header() {
        assert_eq!(
            extract(Some(b"Basic dXNlcjpwdw=="), Some(b"kg_x")),
            Ok("kg_x")
        );
        assert!(is_keygate_authorization(b"bearer x"));
        assert!(!is_keygate_authorization(b"Basic x"));
    }

    #[test]
    fn missing_and_malformed_are_told_apart() {
        assert_eq!(extract(None, None), Err(Error::Missing));
        assert_eq!(extract(Some(b"Basic abc"), None), Err(Error::Missing));
        assert_eq!(extract(Some(b"Bearer "), None), Err(Error::Malformed));
        assert_eq!(extract(Some(b"Bearer a b"), None), Err(Error::Malformed));
        let long = vec![b'a'; MAX_CREDENTIAL_LEN + 1];
        assert_eq!(extract(None, Some(&long)), Err(Error::Malformed));
    }
}
