//! JWT access tokens (RFC 9068): signing-key material ([`signing`]) and the
//! ring of published keys ([`ring`]), other parties' public keys ([`jwk`]),
//! minting ([`mint`]), verifying a token's signature and claims
//! ([`verify`]), and the tokens keygate mints for upstreams ([`upstream`]). Owns no HTTP and no store access: the ring is
//! filled by `replicate`, the endpoints live in `oauth`, and what a verified
//! token's account may still do is `authn`'s question.

pub mod jwk;
pub mod mint;
pub mod ring;
pub mod signing;
pub mod upstream;
pub mod verify;

pub use mint::{AccessClaims, Actor, Grant, Minted, Minter};
pub use ring::{KeyRing, LoadedKey};
pub use verify::Verifier;

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
