//! JWTs: signing keys and their ring ([`ring`]), minting RFC 9068 access
//! tokens ([`mint`]). Owns no HTTP and no store access: the ring is filled
//! from the store by [`crate::cache::sync`], endpoints live in `oauth`.

pub mod keys;
pub mod mint;
pub mod ring;
pub mod verify;

pub use mint::{AccessClaims, Minted, Minter};
pub use ring::{KeyRing, LoadedKey};
pub use verify::TokenVerifier;

/// The JWT `typ` of access tokens (RFC 9068 §2.1).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";
