//! Input validation shared by every management operation: each problem
//! is an [`Error::Invalid`] naming its field.

use super::{Actor, Error, Result};
use crate::clock::parse_rfc3339;
use crate::config::RateSpec;
use crate::store::Metadata;

/// Names: at most 255 characters, no control characters, not empty once
/// trimmed. The admin API's document states the same rule
/// (`admin::openapi::name`), so length and characters are judged on what the
/// client sent (a trailing newline is refused, not trimmed away).
pub(super) fn valid_name(param: &'static str, name: &str) -> Result<String> {
    if name.chars().count() > 255 {
        return Err(Error::invalid(param, "must be at most 255 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid(param, "must not contain control characters"));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(Error::invalid(param, "must not be empty"));
    }
    Ok(name.to_string())
}

const MAX_SCOPES: usize = 100;

pub(super) fn valid_scopes(actor: &Actor, scopes: Vec<String>) -> Result<Vec<String>> {
    if scopes.len() > MAX_SCOPES {
        return Err(Error::invalid(
            "scopes",
            format!("at most {MAX_SCOPES} scopes"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if s.is_empty() || s.len() > 128 || !s.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::invalid(
                "scopes",
                format!("{s:?} is not a scope: 1-128 visible ASCII characters, no spaces"),
            ));
        }
        // SECURITY: keygate's own scopes confer control over keygate; only a
        // platform admin may hand them out.
        if s.starts_with("keygate:") && !actor.admin {
            return Err(Error::Forbidden(
                "only platform admins may grant keygate: scopes",
            ));
        }
        // SECURITY: scopes are global strings that upstreams trust; an owner
        // delegates from what it holds and can never mint more.
        if !actor.admin && !actor.scopes.contains(&s) {
            return Err(Error::Forbidden(
                "an owner may grant only scopes it holds itself",
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

pub(super) fn valid_description(d: Option<String>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > 1000 => Err(Error::invalid(
            "description",
            "must be at most 1000 characters",
        )),
        other => Ok(other),
    }
}

pub(super) fn valid_expiry(s: Option<String>) -> Result<Option<i64>> {
    s.map(|s| {
        parse_rfc3339(&s)
            .ok_or_else(|| Error::invalid("expires_at", format!("{s:?} is not an RFC 3339 time")))
    })
    .transpose()
}

pub(super) fn valid_rate(s: Option<String>) -> Result<Option<String>> {
    s.map(|s| {
        RateSpec::parse(&s)
            .map(|r| r.to_string())
            .map_err(|e| Error::invalid("rate_limit", e))
    })
    .transpose()
}

/// Metadata: a JSON object of at most 32 keys, 16 KiB as text.
pub(super) fn valid_metadata(m: Metadata) -> Result<Metadata> {
    if m.len() > 32 {
        return Err(Error::invalid("metadata", "at most 32 keys"));
    }
    if serde_json::Value::Object(m.clone()).to_string().len() > 16 * 1024 {
        return Err(Error::invalid("metadata", "at most 16 KiB"));
    }
    Ok(m)
}
