//! Integration tests: one binary, real sockets on `127.0.0.1:0`, a real upstream.
//!
//! Every test starts its own keygate (own temp SQLite file, own ports) through
//! `keygate::app::start`, so tests run in parallel without sharing state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "integration/issuer.rs"]
mod issuer;
#[path = "integration/pki.rs"]
mod pki;
#[path = "integration/receiver.rs"]
mod receiver;
#[path = "integration/servers.rs"]
mod servers;
#[path = "integration/support.rs"]
mod support;
#[path = "integration/unread.rs"]
mod unread;
#[path = "integration/wire.rs"]
mod wire;

#[path = "integration/admin.rs"]
mod admin;
#[path = "integration/admin_keys.rs"]
mod admin_keys;
#[path = "integration/attacks.rs"]
mod attacks;
#[path = "integration/attacks_admin.rs"]
mod attacks_admin;
#[path = "integration/attacks_second.rs"]
mod attacks_second;
#[path = "integration/attacks_tokens.rs"]
mod attacks_tokens;
#[path = "integration/console.rs"]
mod console;
#[path = "integration/console_pages.rs"]
mod console_pages;
#[path = "integration/contract.rs"]
mod contract;
#[path = "integration/crash.rs"]
mod crash;
#[path = "integration/decision.rs"]
mod decision;
#[path = "integration/decision_nginx.rs"]
mod decision_nginx;
#[path = "integration/decision_tls.rs"]
mod decision_tls;
#[path = "integration/dialects.rs"]
mod dialects;
#[path = "integration/disk_full.rs"]
mod disk_full;
#[path = "integration/events.rs"]
mod events;
#[path = "integration/events_figures.rs"]
mod events_figures;
#[path = "integration/events_fleet.rs"]
mod events_fleet;
#[path = "integration/federation.rs"]
mod federation;
#[path = "integration/fleet.rs"]
mod fleet;
#[path = "integration/hardening.rs"]
mod hardening;
#[path = "integration/jwt.rs"]
mod jwt;
#[path = "integration/jwt_limits.rs"]
mod jwt_limits;
#[path = "integration/kept.rs"]
mod kept;
#[path = "integration/leaks.rs"]
mod leaks;
#[path = "integration/lean.rs"]
mod lean;
#[path = "integration/lifecycle.rs"]
mod lifecycle;
#[path = "integration/limits.rs"]
mod limits;
#[path = "integration/narrowing.rs"]
mod narrowing;
#[path = "integration/oauth.rs"]
mod oauth;
#[path = "integration/oauth_clients.rs"]
mod oauth_clients;
#[path = "integration/observability.rs"]
mod observability;
#[path = "integration/openapi.rs"]
mod openapi;
#[path = "integration/operations.rs"]
mod operations;
#[path = "integration/outage.rs"]
mod outage;
#[path = "integration/private_key_jwt.rs"]
mod private_key_jwt;
#[path = "integration/protocols.rs"]
mod protocols;
#[path = "integration/proxy.rs"]
mod proxy;
#[path = "integration/quotas.rs"]
mod quotas;
#[path = "integration/quotas_fleet.rs"]
mod quotas_fleet;
#[path = "integration/ratelimit.rs"]
mod ratelimit;
#[path = "integration/replicas.rs"]
mod replicas;
#[path = "integration/startup.rs"]
mod startup;
#[path = "integration/store.rs"]
mod store;
#[path = "integration/tls.rs"]
mod tls;
#[path = "integration/tls_refusals.rs"]
mod tls_refusals;
