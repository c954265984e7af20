//! Tokens from other issuers: real signatures over hostile headers and
//! claims. A trusted issuer ("https://issuer.example", audience "keygate",
//! ES256 and RS256) holds an ES256 key, `k1`, read from a key file as
//! keygate reads one. Three kinds of input: raw token text; a good token
//! with header and claim fields replaced by arbitrary JSON values of any
//! type (`alg: none`, `exp` as a string, `aud` a number, `jku`/`x5u`/`jwk`
//! headers…), signed with the issuer's real key; and arbitrary bytes as
//! a key-set document. Whatever verifies must be the issuer's, for
//! keygate, in its time window, signed by an allowed algorithm; nothing
//! may panic.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use base64::Engine as _;
use jsonwebtoken::Algorithm;
use keygate::authn::federation::fetch::parse_jwks;
use keygate::authn::{Federation, IssuerSet};
use keygate::config::Config;
use keygate::jwt::signing::{self, Signer};
use keygate::telemetry::metrics::Metrics;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.example";
const NOW: i64 = 1_700_000_000;

fn setup() -> &'static (Federation, Signer) {
    static S: OnceLock<(Federation, Signer)> = OnceLock::new();
    S.get_or_init(|| {
        let (der, jwk) = signing::generate(Algorithm::ES256, "k1").unwrap();
        let dir = std::env::temp_dir().join(format!("keygate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jwks.json");
        std::fs::write(&file, json!({ "keys": [jwk] }).to_string()).unwrap();
        let config = Config::from_toml(
            &format!(
                "[[trusted_issuers]]\nname = \"ext\"\nissuer = \"{ISSUER}\"\njwks_file = \"{}\"\n\
                 audiences = [\"keygate\"]\nalgorithms = [\"ES256\", \"RS256\"]\n",
                file.display()
            ),
            &Default::default(),
        )
        .unwrap();
        let federation = Federation::new(&config.trusted_issuers, &Metrics::disabled()).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(federation.load_files(NOW * 1000))
            .unwrap();
        let signer = Signer::from_pkcs8(Algorithm::ES256, &der).unwrap();
        (federation, signer)
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
    Repository,
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
            Field::Repository => "repository",
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
    Known(u8),
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
            // Values that mean something here, so the fuzzer meets them.
            J::Known(i) => json!(
                ["none", "HS256", "RS256", "ES256", "EdDSA", "k1", ISSUER, "keygate", "JWT"]
                    [usize::from(*i) % 9]
            ),
            J::NumStr(i) => json!(i.to_string()),
            J::List(l) => json!(l),
            J::Obj => json!({ "a": 1 }),
        })
    }
}

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Raw(&'a str),
    Edited {
        header: Vec<(Field, J<'a>)>,
        claims: Vec<(Field, J<'a>)>,
    },
    KeySet(&'a [u8]),
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

fuzz_target!(|input: Input<'_>| {
    let (federation, key) = setup();
    let token = match input {
        Input::Raw(t) => t.to_string(),
        Input::Edited { header, claims } => {
            let h = edited(json!({ "alg": "ES256", "typ": "JWT", "kid": "k1" }), &header);
            let c = edited(
                json!({
                    "iss": ISSUER, "sub": "repo:acme/app:environment:prod", "aud": ["keygate"],
                    "exp": NOW + 300, "iat": NOW, "nbf": NOW, "repository": "acme/app",
                }),
                &claims,
            );
            let input = format!("{}.{}", b64(&h), b64(&c));
            let Ok(sig) = key.sign(input.as_bytes()) else {
                return;
            };
            format!("{input}.{}", b64(&sig))
        }
        Input::KeySet(doc) => {
            // Never a panic; whatever is kept verifies with an allowed algorithm.
            if let Ok(keys) = parse_jwks(doc, &[Algorithm::RS256, Algorithm::ES256]) {
                assert!(keys
                    .iter()
                    .all(|k| k.verifies(Algorithm::RS256) || k.verifies(Algorithm::ES256)));
            }
            return;
        }
    };
    if let Ok(v) = federation.verify_uncached(&token, IssuerSet::ALL, NOW * 1000) {
        let c = &v.claims;
        assert_eq!(c.iss, ISSUER, "{token}");
        assert!(c.aud.iter().any(|a| a == "keygate"), "{token}");
        // 30 s leeway, never more.
        assert!(c.exp > NOW - 30, "expired token accepted: {token}");
        assert!(
            c.nbf.is_none_or(|n| n <= NOW + 30),
            "not-yet-valid token accepted: {token}"
        );
        assert!(!c.sub.is_empty(), "{token}");
        let header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header["alg"], "ES256", "{token}");
    }
});
