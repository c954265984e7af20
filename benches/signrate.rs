//! The bare ES256 signing rate on one core: `jsonwebtoken::crypto::sign`
//! over a token-sized message, in a loop, with a key made the way keygate
//! makes its own. `benches/compare.sh` runs it pinned where keygate runs, in
//! every round, so the token endpoint reads as a share of what signing
//! alone allows.
//!
//! `cargo bench --bench signrate -- --seconds 5` prints `SIGN <signatures/s>`.
//! Without `--seconds` it exits at once, so a plain `cargo bench` is unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use jsonwebtoken::{crypto, Algorithm, EncodingKey};
use keygate::jwt::signing;

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
    let key = EncodingKey::from_ec_der(&der);
    // About the size of a keygate access token's header and claims.
    let message = [b'x'; 320];
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut n = 0u64;
    while Instant::now() < until {
        for _ in 0..64 {
            black_box(crypto::sign(black_box(&message), &key, Algorithm::ES256).unwrap());
        }
        n += 64;
    }
    println!("SIGN {:.1}", n as f64 / started.elapsed().as_secs_f64());
}
