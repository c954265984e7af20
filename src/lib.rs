//! keygate: machine identity for APIs.
//!
//! One binary that authenticates service accounts by API key, forwards their
//! requests to upstreams with the caller's identity attached, and manages the
//! accounts through an admin API. The hot path (credential check → forward)
//! reads only the in-memory [`cache`]; the [`store`] is the source of truth and
//! feeds the cache through its change feed.
//!
//! Layout: [`config`] (typed config, loading, validation), [`credential`] (key
//! format and header parsing), [`store`] (persistence), [`cache`] (what
//! authentication needs, kept current), [`manage`] (account management rules,
//! free of HTTP), [`admin`] (the admin HTTP API), [`proxy`] (the public
//! listener), [`app`] (wiring and lifecycle), [`cli`] (the admin client verbs).

pub mod admin;
pub mod app;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credential;
pub mod manage;
pub mod oauth;
pub mod proxy;
pub mod ratelimit;
pub mod store;
pub mod telemetry;
pub mod token;
