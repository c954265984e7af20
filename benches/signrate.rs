//! The bare ES256 signing rate on one core: one P-256 signature over a
//! token-sized message, with the key parsed once (aws-lc-rs
//! `EcdsaKeyPair::sign`, the least any ES256 token can cost), in a loop.
//! `benches/compare.sh` runs it pinned where keygate runs, in every round, so
//! the token endpoint reads as a share of what signing alone allows.
//!
//! It also times `jsonwebtoken::crypto::sign` with the same key, which parses
//! the PKCS#8 key again on every call (what keygate's minting did before it
//! kept a parsed key), to show what that parse costs.
//!
//! `cargo bench --bench signrate -- --seconds 5` prints `SIGN <signatures/s>`
//! and `SIGN_REPARSE <signatures/s>`, each measured for the given seconds.
//! Without `--seconds` it exits at once, so a plain `cargo bench` is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::{crypto, Algorithm, EncodingKey};
use keygate::jwt::signing::{self, Signer};

/// Calls of `f` per second, over `seconds`.
fn rate(seconds: f64, mut f: impl FnMut()) -> f64 {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut n = 0u64;
    while Instant::now() < until {
        for _ in 0..64 {
            f();
        }
        n += 64;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(seconds) = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse::<f64>().expect("--seconds takes a number"))
    else {
        println!("signrate: idle (pass --seconds N)");
        return;
    };
    let (der, _) = signing::generate(Algorithm::ES256, "bench").unwrap();
    // About the size of a keygate access token's header and claims.
    let message = [b'x'; 320];
    let signer = Signer::from_pkcs8(Algorithm::ES256, &der).unwrap();
    let bare = rate(seconds, || {
        black_box(signer.sign(black_box(&message)).unwrap());
    });
    let key = EncodingKey::from_ec_der(&der);
    let reparse = rate(seconds, || {
        black_box(crypto::sign(black_box(&message), &key, Algorithm::ES256).unwrap());
    });
    println!("SIGN {bare:.1}");
    println!("SIGN_REPARSE {reparse:.1}");
}
