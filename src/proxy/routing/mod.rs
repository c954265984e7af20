//! Route matching and path normalisation for the public listener.
//!
//! Paths are normalised before matching (empty and `.` segments dropped) and
//! refused when they try to climb (`..`, in any encoding). Servers behind
//! keygate read paths in ways of their own — an encoded or back-slash as
//! `/`, `;parameters` stripped from segments, letters in any case — so a
//! request is refused when any such reading would reach another route than
//! keygate's. The common, already-clean path is borrowed, not copied.

use std::borrow::Cow;

use crate::config::{ForwardAuth, RouteConfig, UpstreamProtocol};

/// Why a path cannot be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path climbs with a dot-dot segment")]
    Traversal,
    #[error("path hides a slash that would change the route")]
    EncodedSlash,
    #[error("path has segment parameters that would change the route")]
    SegmentParams,
    #[error("path reaches another route when read case-insensitively")]
    Case,
    #[error("path is not absolute")]
    NotAbsolute,
    /// A `%` not followed by two hex digits. SECURITY: decoding around one
    /// could assemble a new escape (`%2%65` → `%2e`), which the upstream
    /// would decode once more: a dot-dot segment keygate never saw.
    #[error("path has a malformed percent-encoding")]
    BadEscape,
}

/// A configured route, prepared for matching.
#[derive(Debug)]
pub struct Route {
    /// Position in the config; identifies the route in per-route caches.
    pub index: usize,
    pub name: String,
    pub prefix: String,
    /// Where the proxy forwards; `None` for a decision-only route.
    pub upstream: Option<Target>,
    pub strip_prefix: bool,
    pub audience: Option<String>,
    /// Method → required scopes; `*` for the rest. Sorted by method.
    scopes: Vec<(String, Vec<String>)>,
    /// Every scope the route names, for any method.
    scope_names: Vec<String>,
    pub forward_auth: ForwardAuth,
    pub public: bool,
    pub upstream_protocol: UpstreamProtocol,
    /// `Upgrade: websocket` is tunnelled.
    pub websocket: bool,
    /// A verified client certificate is required.
    pub client_cert: bool,
    /// Quota each admitted request spends.
    pub cost: u64,
    /// Trusted issuers whose JWTs authenticate here too.
    pub issuers: crate::authn::IssuerSet,
}

/// A route's upstream, split for building request URIs.
#[derive(Debug)]
pub struct Target {
    pub scheme: http::uri::Scheme,
    pub authority: http::uri::Authority,
    /// Path of the upstream URL without a trailing `/` (often empty).
    pub base: String,
}

impl Target {
    fn new(uri: &http::Uri) -> Option<Self> {
        let parts = uri.clone().into_parts();
        Some(Self {
            scheme: parts.scheme?,
            authority: parts.authority?,
            base: uri.path().trim_end_matches('/').to_string(),
        })
    }
}

impl Route {
    fn new(index: usize, c: &RouteConfig) -> Option<Self> {
        let upstream = match &c.upstream {
            Some(uri) => Some(Target::new(uri)?),
            None => None,
        };
        let mut scope_names: Vec<String> = Vec::new();
        for s in c.scopes.values().flatten() {
            if !scope_names.contains(s) {
                scope_names.push(s.clone());
            }
        }
        Some(Self {
            index,
            name: c.name.clone(),
            prefix: c.prefix.clone(),
            upstream,
            strip_prefix: c.strip_prefix,
            audience: c.audience.clone(),
            scopes: c
                .scopes
                .iter()
                .map(|(m, s)| (m.clone(), s.clone()))
                .collect(),
            scope_names,
            forward_auth: c.forward_auth,
            public: c.public,
            upstream_protocol: c.upstream_protocol,
            websocket: c.websocket,
            client_cert: c.client_cert,
            cost: c.cost,
            issuers: c
                .accept_issuer_indexes
                .iter()
                .fold(crate::authn::IssuerSet::EMPTY, |s, i| s.with(*i)),
        })
    }

    /// Every scope required for `method`: empty when the route lists no
    /// scopes at all (any authenticated account). `None` when the route lists
    /// scopes but none for this method and no `"*"`: SECURITY: a method the
    /// operator did not mention is refused, not opened to every key. `HEAD`
    /// falls back to `GET`'s scopes.
    pub fn required_scopes(&self, method: &str) -> Option<&[String]> {
        if self.scopes.is_empty() {
            return Some(&[]);
        }
        let find = |m: &str| {
            self.scopes
                .iter()
                .find(|(k, _)| k == m)
                .map(|(_, s)| s.as_slice())
        };
        find(method)
            .or_else(|| if method == "HEAD" { find("GET") } else { None })
            .or_else(|| find("*"))
    }

    /// Every scope the route names, for any method.
    pub fn scope_names(&self) -> &[String] {
        &self.scope_names
    }

    fn matches(&self, path: &str, fold_case: bool) -> bool {
        let (p, prefix) = (path.as_bytes(), self.prefix.as_bytes());
        let starts = p.len() >= prefix.len()
            && if fold_case {
                p[..prefix.len()].eq_ignore_ascii_case(prefix)
            } else {
                &p[..prefix.len()] == prefix
            };
        self.prefix == "/" || (starts && matches!(p.get(prefix.len()), None | Some(b'/')))
    }
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Longest prefix first, so the first match wins.
    routes: Vec<Route>,
    /// Some prefix has upper-case letters: a lower-case path may fold onto it.
    has_folded_prefixes: bool,
}

impl RouteTable {
    pub fn new(config: &[RouteConfig]) -> Self {
        let mut routes: Vec<Route> = config
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Route::new(i, c))
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let has_folded_prefixes = routes
            .iter()
            .any(|r| r.prefix.bytes().any(|b| b.is_ascii_uppercase()));
        Self {
            routes,
            has_folded_prefixes,
        }
    }

    /// The route for a normalised path (longest prefix on a segment boundary).
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(path, false))
    }

    /// As [`RouteTable::find`], comparing prefixes case-insensitively.
    fn find_folded(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(path, true))
    }

    /// Normalises `raw` and finds its route. SECURITY: every other reading a
    /// server might make of the path must pick the same route: an encoded
    /// or back-slash read as `/`, segment parameters (`;…`) stripped as
    /// Java and many other servers do, and letters in any case.
    pub fn resolve<'p>(&self, raw: &'p str) -> Result<(Cow<'p, str>, Option<&Route>), PathError> {
        let path = normalise(raw)?;
        let route = self.find(&path);
        let same = |other: Option<&Route>| other.map(|r| r.index) == route.map(|r| r.index);
        let mut reading: Cow<'_, str> = Cow::Borrowed(&path);
        if has_encoded_slash(&reading) {
            reading = Cow::Owned(normalise(&decode_slashes(&reading))?.into_owned());
            if !same(self.find(&reading)) {
                return Err(PathError::EncodedSlash);
            }
        }
        if has_params(&reading) {
            reading = Cow::Owned(normalise(&strip_params(&reading))?.into_owned());
            if !same(self.find(&reading)) {
                return Err(PathError::SegmentParams);
            }
        }
        let may_fold = self.has_folded_prefixes || reading.bytes().any(|b| b.is_ascii_uppercase());
        if may_fold && !same(self.find_folded(&reading)) {
            return Err(PathError::Case);
        }
        Ok((path, route))
    }
}

fn has_params(path: &str) -> bool {
    let b = path.as_bytes();
    b.contains(&b';')
        || b.windows(3)
            .any(|w| w[0] == b'%' && w[1] == b'3' && (w[2] | 0x20) == b'b')
}

/// The path with every segment's parameters (`;…`, also `%3B…`) removed.
fn strip_params(path: &str) -> String {
    let decoded = path.replace("%3b", ";").replace("%3B", ";");
    decoded
        .split('/')
        .map(|seg| seg.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/")
}

fn has_encoded_slash(path: &str) -> bool {
    let b = path.as_bytes();
    b.contains(&b'\\')
        || b.windows(3).any(|w| {
            w[0] == b'%'
                && (w[1] == b'2' && (w[2] | 0x20) == b'f' || w[1] == b'5' && (w[2] | 0x20) == b'c')
        })
}

fn decode_slashes(path: &str) -> String {
    path.replace("%2f", "/")
        .replace("%2F", "/")
        .replace("%5c", "/")
        .replace("%5C", "/")
        .replace('\\', "/")
}

/// A segment that decodes to `.` or `..` (any mix of `.` and `%2e`).
fn dots(segment: &str) -> usize {
    let mut n = 0;
    let mut rest = segment.as_bytes();
    while !rest.is_empty() {
        if rest[0] == b'.' {
            rest = &rest[1..];
        } else if rest.len() >= 3 && rest[0] == b'%' && rest[1] == b'2' && (rest[2] | 0x20) == b'e'
        {
            rest = &rest[3..];
        } else {
            return 0;
        }
        n += 1;
    }
    n
}

/// Every `%` starts `%XX` with two hex digits (RFC 3986 §2.1).
fn escapes_well_formed(raw: &str) -> bool {
    let b = raw.as_bytes();
    let mut i = 0;
    while let Some(at) = b[i..].iter().position(|&c| c == b'%') {
        let at = i + at;
        match b.get(at + 1..at + 3) {
            Some([h, l]) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i = at + 3,
            _ => return false,
        }
    }
    true
}

/// Decodes percent-encoded unreserved characters (RFC 3986 §6.2.2.2), so
/// `/orders/%69tems` routes — and reaches the upstream — as `/orders/items`.
/// Other escapes are kept as they are.
fn decode_unreserved(raw: &str) -> Cow<'_, str> {
    if !raw.contains('%') {
        return Cow::Borrowed(raw);
    }
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let c = (h * 16 + l) as u8;
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                    out.push(char::from(c));
                    i += 3;
                    continue;
                }
            }
        }
        // Copy one whole UTF-8 character.
        let ch_len = raw[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&raw[i..i + ch_len]);
        i += ch_len;
    }
    Cow::Owned(out)
}

/// Drops empty and `.` segments; refuses `..` (in any encoding, and with
/// `;` parameters, which some servers strip: `..;`). Borrows when nothing
/// changes.
pub fn normalise(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let clean = !raw.contains("//") && !raw.contains("/.") && !raw.contains('%');
    if clean {
        return Ok(Cow::Borrowed(raw));
    }
    if !escapes_well_formed(raw) {
        return Err(PathError::BadEscape);
    }
    let decoded = decode_unreserved(raw);
    let mut out = String::with_capacity(decoded.len());
    let trailing = decoded.len() > 1 && decoded.ends_with('/');
    for segment in decoded.split('/') {
        let bare = segment.split(';').next().unwrap_or("");
        match (segment.is_empty(), dots(bare)) {
            (true, _) => continue,
            (_, 1 | 2) if bare.len() != segment.len() => return Err(PathError::Traversal),
            (_, 1) => continue,
            (_, 2) => return Err(PathError::Traversal),
            _ => {
                out.push('/');
                out.push_str(segment);
            }
        }
    }
    if out.is_empty() || trailing {
        out.push('/');
    }
    if out == raw {
        Ok(Cow::Borrowed(raw))
    } else {
        Ok(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests;
