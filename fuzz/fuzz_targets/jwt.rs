//! JWT header and claims parsing. Three kinds of input: raw token text;
//! arbitrary header and claims bytes signed with the ring's real key (so
//! parsing past the signature is reached); and a valid keygate token with
//! fields overridden by arbitrary JSON values of any type (`exp` as a
//! string, `alg: none`, `jku`, `crit`, a list `aud`…). Whatever passes must
//! be keygate's own kind of token, for keygate, in its time window.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use keygate::jwt::signing::{self, Signer};
use keygate::jwt::{KeyRing, Verifier};
use keygate::store::SigningKeyRecord;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const ISSUER: &str = "https://keygate.example";
const NOW: i64 = 1_700_000_000;

fn setup() -> &'static (Verifier, Signer) {
    static S: OnceLock<(Verifier, Signer)> = OnceLock::new();
    S.get_or_init(|| {
        let (der, jwk) = signing::generate(Algorithm::ES256, "fuzz").unwrap();
        let ring = Arc::new(KeyRing::new());
        ring.replace(&[SigningKeyRecord {
            kid: "fuzz".into(),
            algorithm: "ES256".into(),
            private_der: der.clone(),
            public_jwk: jwk,
            created_at: 0,
            activates_at: 0,
            retires_at: None,
        }]);
        let key = Signer::from_pkcs8(Algorithm::ES256, &der).unwrap();
        (Verifier::new(ring, ISSUER.into()), key)
    })
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Field {
    Alg,
    Typ,
    Kid,
    Jku,
    X5u,
    Jwk,
    Crit,
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Jti,
    ClientId,
    Scope,
    OrgId,
    ProjectId,
    Roles,
}

impl Field {
    fn name(self) -> &'static str {
        match self {
            Field::Alg => "alg",
            Field::Typ => "typ",
            Field::Kid => "kid",
            Field::Jku => "jku",
            Field::X5u => "x5u",
            Field::Jwk => "jwk",
            Field::Crit => "crit",
            Field::Iss => "iss",
            Field::Sub => "sub",
            Field::Aud => "aud",
            Field::Exp => "exp",
            Field::Nbf => "nbf",
            Field::Iat => "iat",
            Field::Jti => "jti",
            Field::ClientId => "client_id",
            Field::Scope => "scope",
            Field::OrgId => "org_id",
            Field::ProjectId => "project_id",
            Field::Roles => "roles",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum J<'a> {
    Remove,
    Null,
    Bool(bool),
    Int(i64),
    Near(i16),
    Float(f64),
    Str(&'a str),
    NumStr(i64),
    List(Vec<&'a str>),
    Obj,
}

impl J<'_> {
    fn value(&self) -> Option<Value> {
        Some(match self {
            J::Remove => return None,
            J::Null => Value::Null,
            J::Bool(b) => json!(b),
            J::Int(i) => json!(i),
            // Around now: the time checks' edges.
            J::Near(d) => json!(NOW + i64::from(*d)),
            J::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            J::Str(s) => json!(s),
            J::NumStr(i) => json!(i.to_string()),
            J::List(l) => json!(l),
            J::Obj => json!({ "a": 1 }),
        })
    }
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw(&'a str),
    Signed {
        header: &'a [u8],
        claims: &'a [u8],
    },
    Edited {
        header: Vec<(Field, J<'a>)>,
        claims: Vec<(Field, J<'a>)>,
    },
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn edited(base: Value, edits: &[(Field, J<'_>)]) -> Vec<u8> {
    let Value::Object(mut m) = base else {
        unreachable!()
    };
    for (field, value) in edits {
        match value.value() {
            Some(v) => m.insert(field.name().into(), v),
            None => m.remove(field.name()),
        };
    }
    serde_json::to_vec(&Value::Object(m)).unwrap()
}

fn sign(header: &[u8], claims: &[u8], key: &Signer) -> Option<String> {
    let input = format!("{}.{}", b64(header), b64(claims));
    let sig = key.sign(input.as_bytes()).ok()?;
    Some(format!("{input}.{}", b64(&sig)))
}

fuzz_target!(|input: Input<'_>| {
    let (verifier, key) = setup();
    let token = match input {
        Input::Raw(t) => t.to_string(),
        Input::Signed { header, claims } => match sign(header, claims, key) {
            Some(t) => t,
            None => return,
        },
        Input::Edited { header, claims } => {
            let h = edited(
                json!({ "alg": "ES256", "typ": "at+jwt", "kid": "fuzz" }),
                &header,
            );
            let c = edited(
                json!({
                    "iss": ISSUER, "sub": "0196a0a0-0000-7000-8000-000000000001", "aud": ISSUER,
                    "exp": NOW + 300, "iat": NOW, "nbf": NOW,
                    "jti": "0196a0a0-0000-7000-8000-000000000002", "client_id": "kgc_x",
                    "scope": "orders:read", "org_id": "0196a0a0-0000-7000-8000-000000000003",
                }),
                &claims,
            );
            match sign(&h, &c, key) {
                Some(t) => t,
                None => return,
            }
        }
    };
    if let Ok(claims) = verifier.verify(&token, NOW * 1000) {
        assert_eq!(claims.iss, ISSUER);
        // 30 s leeway, never more.
        assert!(claims.exp >= NOW - 30, "expired token accepted: {token}");
        assert!(
            claims.nbf <= NOW + 30,
            "not-yet-valid token accepted: {token}"
        );
        let header = token.split('.').next().unwrap();
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "ES256", "{token}");
        assert_eq!(header["kid"], "fuzz", "{token}");
    }
});
