//! A stand-in workload issuer for `benches/federation.sh`: writes a JWKS
//! with one fresh key to a file and prints one token it signed, as a
//! Kubernetes cluster's keys and a pod's projected token would be.
//!
//! `cargo bench --bench issuer -- --jwks <file> --iss <issuer> --sub <sub> [--alg ES256|RS256]`
//! Without `--jwks` it exits at once, so a plain `cargo bench` is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use keygate::jwt::signing::{self, Signer};
use serde_json::json;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let Some(jwks) = arg("--jwks") else { return };
    let iss = arg("--iss").expect("--iss");
    let sub = arg("--sub").expect("--sub");
    let alg = match arg("--alg").as_deref() {
        Some("RS256") => jsonwebtoken::Algorithm::RS256,
        _ => jsonwebtoken::Algorithm::ES256,
    };
    let (der, jwk) = signing::generate(alg, "bench-1").unwrap();
    std::fs::write(&jwks, json!({ "keys": [jwk] }).to_string()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!(
        "{}.{}",
        b64(json!({ "alg": signing::algorithm_name(alg), "kid": "bench-1", "typ": "JWT" })),
        b64(json!({ "iss": iss, "sub": sub, "aud": ["keygate"], "iat": now, "exp": now + 3600 })),
    );
    let sig = Signer::from_pkcs8(alg, &der)
        .unwrap()
        .sign(input.as_bytes())
        .unwrap();
    println!("{input}.{}", URL_SAFE_NO_PAD.encode(sig));
}
