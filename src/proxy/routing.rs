//! Route matching and path normalisation for the public listener.
//!
//! Paths are normalised before matching (empty and `.` segments dropped) and
//! refused when they try to climb (`..`, in any encoding) or hide a `/` that
//! would change which route matches. The common, already-clean path is
//! borrowed, not copied.

use std::borrow::Cow;

use std::sync::Arc;

use crate::config::{ForwardAuth, RouteConfig};
use crate::ratelimit::{KeyedLimit, Limits};

/// Why a path cannot be routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path climbs with a dot-dot segment")]
    Traversal,
    #[error("path hides a slash that would change the route")]
    EncodedSlash,
    #[error("path is not absolute")]
    NotAbsolute,
}

/// A configured route, prepared for matching.
#[derive(Debug)]
pub struct Route {
    /// Position in the config; identifies the route in per-route caches.
    pub index: usize,
    pub name: String,
    pub prefix: String,
    pub upstream_scheme: http::uri::Scheme,
    pub upstream_authority: http::uri::Authority,
    /// Path of the upstream URL without a trailing `/` (often empty).
    pub upstream_base: String,
    pub strip_prefix: bool,
    pub audience: Option<String>,
    /// Method → required scopes; `*` for the rest. Sorted by method.
    scopes: Vec<(String, Vec<String>)>,
    pub forward_auth: ForwardAuth,
    /// The route's own limit (one bucket per principal on this route).
    pub limit: Option<Arc<KeyedLimit>>,
    pub public: bool,
}

impl Route {
    fn new(index: usize, c: &RouteConfig, limits: &mut Limits) -> Option<Self> {
        let parts = c.upstream.clone().into_parts();
        let base = c.upstream.path().trim_end_matches('/').to_string();
        Some(Self {
            index,
            name: c.name.clone(),
            prefix: c.prefix.clone(),
            upstream_scheme: parts.scheme?,
            upstream_authority: parts.authority?,
            upstream_base: base,
            strip_prefix: c.strip_prefix,
            audience: c.audience.clone(),
            scopes: c
                .scopes
                .iter()
                .map(|(m, s)| (m.clone(), s.clone()))
                .collect(),
            forward_auth: c.forward_auth,
            limit: c.rate_limit.map(|spec| limits.route_limit(spec, &c.name)),
            public: c.public,
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
    pub fn scope_names(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for s in self.scopes.iter().flat_map(|(_, s)| s.iter()) {
            if !out.contains(&s.as_str()) {
                out.push(s);
            }
        }
        out
    }

    fn matches(&self, path: &str) -> bool {
        self.prefix == "/"
            || (path.starts_with(&self.prefix)
                && matches!(path.as_bytes().get(self.prefix.len()), None | Some(b'/')))
    }
}

#[derive(Debug, Default)]
pub struct RouteTable {
    /// Longest prefix first, so the first match wins.
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn new(config: &[RouteConfig], limits: &mut Limits) -> Self {
        let mut routes: Vec<Route> = config
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Route::new(i, c, limits))
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Self { routes }
    }

    /// The route for a normalised path (longest prefix on a segment boundary).
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(path))
    }

    /// Normalises `raw` and finds its route. An encoded slash is allowed only
    /// when reading it as a real `/` would pick the same route.
    pub fn resolve<'p>(&self, raw: &'p str) -> Result<(Cow<'p, str>, Option<&Route>), PathError> {
        let path = normalise(raw)?;
        let route = self.find(&path);
        if has_encoded_slash(&path) {
            let decoded = decode_slashes(&path);
            let alt = normalise(&decoded)?;
            let alt_route = self.find(&alt);
            if alt_route.map(|r| &r.name) != route.map(|r| &r.name) {
                return Err(PathError::EncodedSlash);
            }
        }
        Ok((path, route))
    }
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
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn test_limits() -> Limits {
        Limits::new(None, crate::config::RateSpec::parse("10/s").unwrap())
    }

    fn table() -> RouteTable {
        let c = crate::config::Config::from_toml(
            r#"
[[routes]]
name = "orders"
prefix = "/orders"
upstream = "http://127.0.0.1:1"
[[routes]]
name = "order-items"
prefix = "/orders/items"
upstream = "http://127.0.0.1:2"
[[routes]]
name = "admin"
prefix = "/admin"
upstream = "http://127.0.0.1:3"
"#,
            &HashMap::new(),
        )
        .unwrap();
        RouteTable::new(&c.routes, &mut test_limits())
    }

    #[test]
    fn longest_prefix_on_segment_boundary_wins() {
        let t = table();
        assert_eq!(t.find("/orders/items/1").unwrap().name, "order-items");
        assert_eq!(t.find("/orders/1").unwrap().name, "orders");
        assert_eq!(t.find("/orders").unwrap().name, "orders");
        assert!(t.find("/ordersx").is_none());
        assert!(t.find("/").is_none());
    }

    #[test]
    fn traversal_in_any_encoding_is_refused() {
        for p in [
            "/orders/../admin",
            "/orders/%2e%2e/admin",
            "/orders/%2E./x",
            "/orders/.%2e",
        ] {
            assert_eq!(normalise(p).unwrap_err(), PathError::Traversal, "{p}");
        }
    }

    #[test]
    fn clean_paths_are_borrowed_and_dirty_ones_cleaned() {
        assert!(matches!(
            normalise("/orders/1?x").unwrap(),
            Cow::Borrowed(_)
        ));
        assert_eq!(normalise("//orders/./1").unwrap(), "/orders/1");
        assert_eq!(normalise("/orders/%2e/1/").unwrap(), "/orders/1/");
        assert_eq!(normalise("/a%20b").unwrap(), "/a%20b");
    }

    #[test]
    fn encoded_slash_that_changes_route_is_refused() {
        let t = table();
        assert_eq!(
            t.resolve("/orders%2fitems/1").unwrap_err(),
            PathError::EncodedSlash
        );
        // Same route either way: allowed (ids with encoded slashes).
        assert_eq!(
            t.resolve("/orders/a%2Fb").unwrap().1.unwrap().name,
            "orders"
        );
    }

    #[test]
    fn scopes_fall_back_to_star() {
        let c = crate::config::Config::from_toml(
            "[[routes]]\nname = \"a\"\nprefix = \"/a\"\nupstream = \"http://127.0.0.1:1\"\nscopes = { GET = [\"r\"], \"*\" = [\"w\"] }\n",
            &HashMap::new(),
        )
        .unwrap();
        let t = RouteTable::new(&c.routes, &mut test_limits());
        let r = t.find("/a").unwrap();
        assert_eq!(r.required_scopes("GET"), Some(&["r".to_string()][..]));
        assert_eq!(r.required_scopes("DELETE"), Some(&["w".to_string()][..]));
    }

    #[test]
    fn unlisted_methods_are_refused_and_head_follows_get() {
        let c = crate::config::Config::from_toml(
            "[[routes]]\nname = \"a\"\nprefix = \"/a\"\nupstream = \"http://127.0.0.1:1\"\nscopes = { GET = [\"r\"] }\n[[routes]]\nname = \"b\"\nprefix = \"/b\"\nupstream = \"http://127.0.0.1:1\"\n",
            &HashMap::new(),
        )
        .unwrap();
        let t = RouteTable::new(&c.routes, &mut test_limits());
        let a = t.find("/a").unwrap();
        assert_eq!(a.required_scopes("DELETE"), None);
        assert_eq!(a.required_scopes("HEAD"), Some(&["r".to_string()][..]));
        // No scopes at all: any authenticated account, any method.
        assert_eq!(
            t.find("/b").unwrap().required_scopes("DELETE"),
            Some(&[][..])
        );
    }

    #[test]
    fn encoded_unreserved_characters_route_as_themselves() {
        let t = table();
        let (path, route) = t.resolve("/orders/%69tems/1").unwrap();
        assert_eq!(path, "/orders/items/1");
        assert_eq!(route.unwrap().name, "order-items");
        assert_eq!(t.resolve("/%61dmin/x").unwrap().1.unwrap().name, "admin");
        // Reserved escapes stay encoded.
        assert_eq!(normalise("/a%20b%3F").unwrap(), "/a%20b%3F");
        assert_eq!(normalise("/caf%C3%A9/%7e").unwrap(), "/caf%C3%A9/~");
    }

    proptest! {
        #[test]
        fn normalised_paths_never_contain_dot_segments(p in "(/[a-z.%2e]{0,4}){0,6}") {
            if let Ok(n) = normalise(&p) {
                prop_assert!(n.starts_with('/'));
                prop_assert!(!n.split('/').any(|s| matches!(dots(s), 1 | 2)));
                prop_assert!(!n.contains("//"));
            }
        }
    }
}
