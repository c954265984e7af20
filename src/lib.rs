//! keygate: machine identity for APIs.
//!
//! One binary that authenticates service accounts by API key, OAuth client
//! credential or JWT, forwards their requests to upstreams with the caller's
//! identity attached, and manages the accounts through an admin API. The hot
//! path (credential check → forward) reads only memory; the [`store`] is the
//! source of truth and [`replicate`] keeps every replica's view current.
//!
//! Layers, each importing only those below it (docs/ARCHITECTURE.md):
//! - foundations: [`addr`] (which addresses are one client), [`clock`],
//!   [`config`], [`secret`] (key format), [`scope`];
//! - [`store`]: persistence, one SQL implementation over SQLite or PostgreSQL;
//! - [`jwt`]: signing keys, minting and verifying tokens;
//! - [`authn`]: who is calling — principals, the credential cache, the one
//!   authenticator every listener calls;
//! - [`ratelimit`]: which limit applies, and its backend;
//! - [`manage`]: the management rules, free of HTTP; [`replicate`]: the
//!   store's changes into the cache and key ring; [`events`]: the change
//!   feed out to webhooks, expiry warnings, leaked secrets revoked;
//! - edges: [`listener`] (transport), [`proxy`], [`oauth`], [`admin`],
//!   [`secret_scanning`] (GitHub's partner endpoint);
//! - [`app`] wires them; [`cli`] is the admin client.

pub mod addr;
pub mod admin;
pub mod app;
pub mod authn;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod decision;
pub mod events;
pub mod jwt;
pub mod listener;
pub mod manage;
pub mod oauth;
pub mod proxy;
pub mod quota;
pub mod ratelimit;
pub mod replicate;
pub mod scope;
pub mod secret;
pub mod secret_scanning;
pub mod store;
pub mod telemetry;
