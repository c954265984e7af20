//! Reading a token from another issuer, before and after its signature is
//! checked: which trusted issuer it claims to be from (read without
//! verification, only to pick the keys), and then its registered claims,
//! each of the JSON type RFC 7519 gives it or the token is refused. Pure:
//! no keys, no clock, no I/O, so the fuzz target drives it as is.

use serde_json::{Map, Value};

use super::Error;

/// The `iss` a token says it is from. SECURITY: unverified; used only to
/// choose whose keys verify it, and checked again after verification.
pub(crate) fn peek_issuer(token: &str) -> Result<String, Error> {
    let bytes = crate::jwt::verify::unverified_payload(token).ok_or(Error::Malformed)?;
    #[derive(serde::Deserialize)]
    struct Peek {
        iss: Option<Value>,
    }
    let peek: Peek = serde_json::from_slice(&bytes).map_err(|_| Error::Malformed)?;
    match peek.iss {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(Error::Claims("iss is not a string")),
        None => Err(Error::Claims("iss is missing")),
    }
}

/// What a verified token says, in the types RFC 7519 gives them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Vec<String>,
    /// Unix seconds.
    pub exp: i64,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub jti: Option<String>,
    /// Every claim, for bindings' conditions (only string values match).
    pub all: Map<String, Value>,
}

/// A NumericDate (RFC 7519 §2): a JSON number of seconds, maybe fractional.
fn numeric_date(v: &Value, name: &'static str) -> Result<i64, Error> {
    let n = v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e15)
            .map(|f| f.floor() as i64)
    });
    n.ok_or(Error::Claims(match name {
        "exp" => "exp is not a number of seconds",
        "nbf" => "nbf is not a number of seconds",
        _ => "iat is not a number of seconds",
    }))
}

impl ExternalClaims {
    /// The claims of a token whose signature verified, each checked for
    /// its type: `iss`, `sub` strings; `aud` a string or array of strings;
    /// `exp` required; `nbf`, `iat` numbers when present.
    pub fn parse(all: Map<String, Value>) -> Result<Self, Error> {
        let string = |name: &str, missing: &'static str, wrong: &'static str| match all.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(Error::Claims(wrong)),
            None => Err(Error::Claims(missing)),
        };
        let iss = string("iss", "iss is missing", "iss is not a string")?;
        let sub = string("sub", "sub is missing", "sub is not a string")?;
        if sub.is_empty() {
            return Err(Error::Claims("sub is empty"));
        }
        let aud = match all.get("aud") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(Error::Claims("aud holds something other than strings"))?,
            Some(_) => return Err(Error::Claims("aud is not a string or array of strings")),
            None => return Err(Error::Claims("aud is missing")),
        };
        let exp = match all.get("exp") {
            Some(v) => numeric_date(v, "exp")?,
            None => return Err(Error::Claims("exp is missing")),
        };
        let nbf = all.get("nbf").map(|v| numeric_date(v, "nbf")).transpose()?;
        let iat = all.get("iat").map(|v| numeric_date(v, "iat")).transpose()?;
        let jti = match all.get("jti") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(Error::Claims("jti is not a string")),
        };
        Ok(Self {
            iss,
            sub,
            aud,
            exp,
            nbf,
            iat,
            jti,
            all,
        })
    }

    /// Whether the claim `name` is the string `value`.
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.all.get(name).and_then(Value::as_str) == Some(value)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Result<ExternalClaims, Error> {
        ExternalClaims::parse(v.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn registered_claims_must_have_their_types() {
        let good = json!({"iss": "i", "sub": "s", "aud": ["a", "b"], "exp": 10, "nbf": 1.5});
        let c = claims(good).unwrap();
        assert_eq!(c.aud, vec!["a", "b"]);
        assert_eq!(c.nbf, Some(1));
        for (bad, why) in [
            (
                json!({"iss": 1, "sub": "s", "aud": "a", "exp": 1}),
                "iss is not a string",
            ),
            (
                json!({"iss": "i", "sub": ["s"], "aud": "a", "exp": 1}),
                "sub is not a string",
            ),
            (
                json!({"iss": "i", "sub": "", "aud": "a", "exp": 1}),
                "sub is empty",
            ),
            (
                json!({"iss": "i", "sub": "s", "aud": 7, "exp": 1}),
                "aud is not a string or array of strings",
            ),
            (
                json!({"iss": "i", "sub": "s", "aud": ["a", 7], "exp": 1}),
                "aud holds something other than strings",
            ),
            (
                json!({"iss": "i", "sub": "s", "aud": "a", "exp": "1"}),
                "exp is not a number of seconds",
            ),
            (
                json!({"iss": "i", "sub": "s", "aud": "a"}),
                "exp is missing",
            ),
            (
                json!({"iss": "i", "sub": "s", "aud": "a", "exp": 1, "nbf": true}),
                "nbf is not a number of seconds",
            ),
            (
                json!({"iss": "i", "sub": "s", "aud": "a", "exp": 1e300}),
                "exp is not a number of seconds",
            ),
        ] {
            assert_eq!(claims(bad).unwrap_err(), Error::Claims(why));
        }
    }

    #[test]
    fn the_issuer_is_peeked_from_the_payload_only() {
        let b64 = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let t = format!(
            "{}.{}.sig",
            b64(json!({"alg": "RS256"})),
            b64(json!({"iss": "https://x"}))
        );
        assert_eq!(peek_issuer(&t).unwrap(), "https://x");
        assert_eq!(peek_issuer("a.b").unwrap_err(), Error::Malformed);
        assert_eq!(peek_issuer("a.b.c.d").unwrap_err(), Error::Malformed);
        let t = format!("h.{}.s", b64(json!({"iss": 5})));
        assert_eq!(
            peek_issuer(&t).unwrap_err(),
            Error::Claims("iss is not a string")
        );
    }
}
