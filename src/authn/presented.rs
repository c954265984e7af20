//! Credentials as they arrive on the wire: which header carries one, and what
//! shape it has. Parses borrowed header bytes; does not know whether a
//! credential is valid (that is the [`super::Authenticator`]'s job).

use base64::Engine as _;

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
    #[error("more than one credential presented")]
    Ambiguous,
}

/// Extracts the one credential a request presents, given every value of its
/// `Authorization` and `X-API-Key` headers. Never reads the query string:
/// credentials in URLs leak into logs.
///
/// SECURITY: several `Authorization` headers, several `X-API-Key` headers,
/// or a keygate credential in both, are ambiguous — which one a server
/// behind keygate reads is anyone's guess — so they are refused, never
/// resolved by picking one.
///
/// Takes the raw header bytes so the hot path borrows rather than allocates.
pub fn extract<'a>(
    authorization: impl IntoIterator<Item = &'a [u8]>,
    api_key: impl IntoIterator<Item = &'a [u8]>,
) -> Result<&'a str, Error> {
    let authorization = single(authorization)?;
    let api_key = single(api_key)?;
    // Another scheme (Basic, …) is meant for the upstream, not keygate.
    match (authorization.and_then(keygate_scheme), api_key) {
        (Some(_), Some(_)) => Err(Error::Ambiguous),
        (Some(rest), None) => as_credential(rest),
        (None, Some(value)) => as_credential(trim(value)),
        (None, None) => Err(Error::Missing),
    }
}

/// The one value of a header, if any; several are ambiguous.
fn single<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<&'a [u8]>, Error> {
    let mut it = values.into_iter();
    let first = it.next();
    if it.next().is_some() {
        return Err(Error::Ambiguous);
    }
    Ok(first)
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
    // Every byte is looked at (no early exit), so the compiler checks many
    // at a time: a JWT has ~500 of them.
    if bytes
        .iter()
        .fold(false, |bad, b| bad | !b.is_ascii_graphic())
    {
        return Err(Error::Malformed);
    }
    std::str::from_utf8(bytes).map_err(|_| Error::Malformed)
}

/// OAuth client authentication by `Authorization: Basic` (RFC 6749 §2.3.1:
/// client id and secret each form-urlencoded, joined by `:`, then base64).
/// `None` when the header is not Basic; `Some(Err)` when it is but does not
/// decode.
pub fn basic(authorization: Option<&[u8]>) -> Option<Result<(String, String), Error>> {
    let value = trim(authorization?);
    // RFC 9110 §11.1: the scheme name is case-insensitive.
    let b64 = strip_scheme(value, b"basic ")?;
    Some(decode_basic(b64))
}

fn decode_basic(b64: &[u8]) -> Result<(String, String), Error> {
    if b64.len() > 2 * MAX_CREDENTIAL_LEN {
        return Err(Error::Malformed);
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| Error::Malformed)?;
    let raw = String::from_utf8(raw).map_err(|_| Error::Malformed)?;
    let (id, secret) = raw.split_once(':').ok_or(Error::Malformed)?;
    let decode = |s: &str| {
        let spaced = if s.contains('+') {
            std::borrow::Cow::Owned(s.replace('+', " "))
        } else {
            std::borrow::Cow::Borrowed(s)
        };
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| Error::Malformed)
    };
    Ok((decode(id)?, decode(secret)?))
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

    fn one(v: &[u8]) -> Option<&[u8]> {
        Some(v)
    }

    #[test]
    fn bearer_token_and_api_key_headers_are_accepted() {
        assert_eq!(extract(one(b"Bearer abc"), None), Ok("abc"));
        assert_eq!(extract(one(b"token  abc "), None), Ok("abc"));
        assert_eq!(extract(None, one(b"abc")), Ok("abc"));
    }

    #[test]
    fn several_credentials_are_ambiguous() {
        let two: [&[u8]; 2] = [b"Basic dXNlcjpwdw==", b"Bearer kg_x"];
        assert_eq!(extract(two, None), Err(Error::Ambiguous));
        let keys: [&[u8]; 2] = [b"kg_x", b"kg_y"];
        assert_eq!(extract(None, keys), Err(Error::Ambiguous));
        assert_eq!(
            extract(one(b"Bearer kg_x"), one(b"kg_x")),
            Err(Error::Ambiguous)
        );
    }

    #[test]
    fn another_scheme_does_not_hide_the_api_key_header() {
        assert_eq!(
            extract(one(b"Basic dXNlcjpwdw=="), one(b"kg_x")),
            Ok("kg_x")
        );
        assert!(is_keygate_authorization(b"bearer x"));
        assert!(!is_keygate_authorization(b"Basic x"));
    }

    #[test]
    fn basic_client_authentication_decodes_form_encoded_parts() {
        // "my%20id:s%3Acret" → ("my id", "s:cret")
        let v = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20id:s%3Acret")
        );
        assert_eq!(
            basic(Some(v.as_bytes())),
            Some(Ok(("my id".to_string(), "s:cret".to_string())))
        );
        assert_eq!(basic(Some(b"Bearer x")), None);
        assert_eq!(basic(None), None);
        assert_eq!(basic(Some(b"basic !!!")), Some(Err(Error::Malformed)));
    }

    #[test]
    fn missing_and_malformed_are_told_apart() {
        assert_eq!(extract(None, None), Err(Error::Missing));
        assert_eq!(extract(one(b"Basic abc"), None), Err(Error::Missing));
        assert_eq!(extract(one(b"Bearer "), None), Err(Error::Malformed));
        assert_eq!(extract(one(b"Bearer a b"), None), Err(Error::Malformed));
        let long = vec![b'a'; MAX_CREDENTIAL_LEN + 1];
        assert_eq!(extract(None, one(&long)), Err(Error::Malformed));
        // A JWT-sized credential of visible ASCII passes; one byte that is
        // not (control, DEL, non-ASCII), wherever it stands, is refused.
        let jwt: Vec<u8> = (0..517u32).map(|i| b'!' + (i % 94) as u8).collect();
        assert_eq!(extract(None, one(&jwt)).map(str::len), Ok(517));
        for bad in [0x00, 0x09, 0x1f, 0x7f, 0x80, 0xc3, 0xff] {
            for at in [0, 1, 31, 32, 33, 255, 500, 516] {
                if bad == 0x09 && (at == 0 || at == 516) {
                    continue; // whitespace around a header value is trimmed
                }
                let mut v = jwt.clone();
                v[at] = bad;
                assert_eq!(
                    extract(None, one(&v)),
                    Err(Error::Malformed),
                    "{bad:#x} at {at}"
                );
            }
        }
    }
}
