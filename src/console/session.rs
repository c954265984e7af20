//! Console sessions: an admin or owner API key, once accepted at sign-in,
//! becomes a random session id in an `HttpOnly; SameSite=Strict` cookie.
//! The server keeps, per session, only the key's SHA-256 (to ask the
//! authenticator on every request whether the key still lives), the CSRF
//! token every form carries, and when the session ends. Never the key.
//!
//! Owns the session table, the cookie, and the extractor that turns a
//! request into a [`Signed`] caller or a way back to sign-in. Knows nothing
//! of pages.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dashmap::DashMap;
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{layout, ConsoleState};
use crate::authn::{Principal, Refusal};
use crate::secret::KeyHash;

/// The cookie's name.
pub(super) const COOKIE: &str = "keygate_console";

/// At most this many live sessions per replica; sign-in refuses beyond.
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone)]
struct Session {
    key: KeyHash,
    csrf: Arc<str>,
    /// The signed-in account's name, for the page header.
    name: Arc<str>,
    /// Unix ms.
    expires_at: i64,
}

/// This replica's console sessions. A session lives on the replica that
/// made it (a console behind a load balancer needs sticky sessions).
pub struct Sessions {
    /// SHA-256 of the session id → session. SECURITY: the map is keyed by
    /// the id's hash, so neither a lookup's timing nor a memory dump gives
    /// away an id that could be replayed.
    map: DashMap<[u8; 32], Session>,
    /// Session → (account, the secret to show once on that account's page).
    once: DashMap<[u8; 32], (Uuid, Once)>,
    ttl_ms: i64,
    /// Whether the admin listener speaks TLS (the cookie is then `Secure`).
    secure: bool,
}

/// A secret a write just made, kept for the one page that shows it (the
/// page after the write's redirect), then dropped and zeroed.
pub(super) enum Once {
    Key(Zeroizing<String>),
    Secret {
        client_id: String,
        secret: Zeroizing<String>,
    },
}

/// A caller with a live session: who it is, and its CSRF token.
pub(super) struct Signed {
    pub(super) actor: Arc<Principal>,
    pub(super) csrf: Arc<str>,
    pub(super) name: Arc<str>,
    /// The session's id, hashed (for sign-out).
    id: [u8; 32],
}

/// Why no session could be opened.
pub(super) enum OpenError {
    /// As many sessions as a replica keeps are open.
    Full,
    /// The cookie could not be written (never, for the ids made here).
    Cookie,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hashed(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: std::time::Duration, secure: bool) -> Self {
        Self {
            map: DashMap::new(),
            once: DashMap::new(),
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4),
            secure,
        }
    }

    /// A new session for `key` (which the authenticator has just accepted
    /// as `actor`); answers the `Set-Cookie` value. It ends at the sooner
    /// of the session lifetime and the key's own expiry.
    pub(super) fn open(
        &self,
        key: KeyHash,
        actor: &Principal,
        name: &str,
        now: i64,
    ) -> Result<HeaderValue, OpenError> {
        // Every sign-in sweeps ended sessions (and a secret no page took),
        // so neither outlives its session for long.
        self.map.retain(|_, s| s.expires_at > now);
        self.once.retain(|id, _| self.map.contains_key(id));
        if self.map.len() >= MAX_SESSIONS {
            return Err(OpenError::Full);
        }
        let id = random_token();
        let expires_at = (now.saturating_add(self.ttl_ms)).min(actor.expires_at);
        let max_age = (expires_at - now).max(0) / 1000;
        let cookie = self.cookie(&id, max_age).map_err(|_| OpenError::Cookie)?;
        self.map.insert(
            hashed(&id),
            Session {
                key,
                csrf: random_token().into(),
                name: name.into(),
                expires_at,
            },
        );
        Ok(cookie)
    }

    /// Ends the session (sign-out); answers the `Set-Cookie` that clears it.
    pub(super) fn end(&self, signed: &Signed) -> Option<HeaderValue> {
        self.forget(&signed.id);
        self.clearing()
    }

    /// Keeps `secret` for the next view of `account`'s page in this session.
    pub(super) fn show_once(&self, signed: &Signed, account: Uuid, secret: Once) {
        self.keep(signed.id, account, secret);
    }

    /// The secret kept for `account`'s page, if any; it is shown once.
    pub(super) fn take_once(&self, signed: &Signed, account: Uuid) -> Option<Once> {
        self.take(&signed.id, account)
    }

    fn keep(&self, id: [u8; 32], account: Uuid, secret: Once) {
        self.once.insert(id, (account, secret));
    }

    fn take(&self, id: &[u8; 32], account: Uuid) -> Option<Once> {
        self.once
            .remove_if(id, |_, (a, _)| *a == account)
            .map(|(_, (_, secret))| secret)
    }

    /// The `Set-Cookie` that makes the browser forget its session.
    pub(super) fn clearing(&self) -> Option<HeaderValue> {
        self.cookie("", 0).ok()
    }

    fn cookie(&self, value: &str, max_age: i64) -> Result<HeaderValue, header::InvalidHeaderValue> {
        // SECURITY: HttpOnly (no script reads it), SameSite=Strict (no
        // other site's page sends it), scoped to the console, Secure on TLS.
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={value}; Path=/console/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
        ))
    }

    /// The live session named by the request's cookie, if any. An
    /// expired one is forgotten.
    fn find(&self, headers: &HeaderMap, now: i64) -> Found {
        let mut named = false;
        for value in cookie_values(headers) {
            named = true;
            let id = hashed(value);
            let Some(session) = self.map.get(&id).map(|s| s.clone()) else {
                continue;
            };
            if session.expires_at <= now {
                self.forget(&id);
                return Found::Ended;
            }
            return Found::Live(id, session);
        }
        if named {
            Found::Ended
        } else {
            Found::None
        }
    }

    fn forget(&self, id: &[u8; 32]) {
        self.map.remove(id);
        self.once.remove(id);
    }

    /// Live sessions (for tests and the sign-in sweep).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

enum Found {
    None,
    Ended,
    Live([u8; 32], Session),
}

/// Every value the request's `Cookie` headers give [`COOKIE`].
fn cookie_values(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

impl Signed {
    /// Whether `presented` is this session's CSRF token. SECURITY: compared
    /// in constant time.
    pub(super) fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

impl FromRequestParts<ConsoleState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &ConsoleState) -> Result<Self, Response> {
        let now = s.clock.now_ms();
        let (id, session) = match s.sessions.find(&parts.headers, now) {
            Found::Live(id, session) => (id, session),
            Found::Ended => return Err(layout::to_sign_in(true, s.sessions.clearing())),
            Found::None => return Err(layout::to_sign_in(false, None)),
        };
        // SECURITY: the key behind the session is asked about on every
        // request: revoked, its account disabled or closed → signed out.
        match s.authn.session(&session.key) {
            Ok(actor) => Ok(Signed {
                actor,
                csrf: session.csrf,
                name: session.name,
                id,
            }),
            Err(Refusal::Stale) => Err(layout::unavailable()),
            Err(_) => {
                s.sessions.forget(&id);
                Err(layout::to_sign_in(true, s.sessions.clearing()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(cookie: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(cookie).unwrap());
        h
    }

    #[test]
    fn cookie_values_are_found_among_others() {
        let h = headers("a=1; keygate_console=abc; b=2");
        assert_eq!(cookie_values(&h).collect::<Vec<_>>(), vec!["abc"]);
        assert_eq!(cookie_values(&headers("keygate_consolex=1")).count(), 0);
        assert_eq!(cookie_values(&headers("keygate_console=")).count(), 0);
    }

    #[test]
    fn an_unknown_or_expired_session_is_ended_not_found() {
        let sessions = Sessions::new(std::time::Duration::from_secs(60), false);
        assert!(matches!(
            sessions.find(&headers("keygate_console=nope"), 0),
            Found::Ended
        ));
        assert!(matches!(sessions.find(&HeaderMap::new(), 0), Found::None));
        sessions.map.insert(
            hashed("live"),
            Session {
                key: KeyHash([0; 32]),
                csrf: "t".into(),
                name: "n".into(),
                expires_at: 1_000,
            },
        );
        assert!(matches!(
            sessions.find(&headers("keygate_console=live"), 999),
            Found::Live(..)
        ));
        assert!(matches!(
            sessions.find(&headers("keygate_console=live"), 1_000),
            Found::Ended
        ));
        assert_eq!(sessions.len(), 0, "an expired session is forgotten");
    }

    #[test]
    fn a_secret_is_shown_once_and_only_on_its_accounts_page() {
        let sessions = Sessions::new(std::time::Duration::from_secs(60), false);
        let id = hashed("s");
        let (mine, other) = (Uuid::now_v7(), Uuid::now_v7());
        sessions.keep(id, mine, Once::Key(Zeroizing::new("kg_x".into())));
        assert!(sessions.take(&id, other).is_none(), "not another page's");
        assert!(matches!(sessions.take(&id, mine), Some(Once::Key(k)) if *k == "kg_x"));
        assert!(sessions.take(&id, mine).is_none(), "shown once");
        sessions.keep(id, mine, Once::Key(Zeroizing::new("kg_y".into())));
        sessions.forget(&id);
        assert!(sessions.take(&id, mine).is_none(), "gone with the session");
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_on_tls() {
        let plain = Sessions::new(std::time::Duration::from_secs(60), false);
        let c = plain.cookie("x", 60).unwrap();
        let c = c.to_str().unwrap();
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(c.contains("Path=/console/") && !c.contains("Secure"));
        let tls = Sessions::new(std::time::Duration::from_secs(60), true);
        assert!(tls
            .cookie("x", 60)
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
    }
}
