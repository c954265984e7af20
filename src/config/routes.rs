//! Validation of one `[[routes]]` entry: prefix, upstream, scopes per
//! method, forwarding mode and limit, each problem naming its key.

use std::collections::BTreeMap;

/// The most quota one request can spend.
const MAX_COST: u64 = 1_000_000;

use super::problems::Problems;
use super::raw::RawRoute;
use super::{ForwardAuth, RouteConfig, UpstreamProtocol};

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "*",
];

pub(super) fn route(p: &mut Problems, i: usize, r: RawRoute) -> Option<RouteConfig> {
    let key = |k: &str| format!("routes[{i}].{k}");
    let before = p.0.len();
    if r.name.trim().is_empty() {
        p.push(&key("name"), "must not be empty");
    }
    let mut prefix = r.prefix.clone();
    if !prefix.starts_with('/') {
        p.push(&key("prefix"), format_args!("{prefix:?} must start with /"));
    }
    if prefix.split('/').any(|seg| seg == ".." || seg == ".")
        || prefix.contains("//")
        || prefix.contains('%')
    {
        p.push(
            &key("prefix"),
            format_args!("{prefix:?} must be a plain normalised path"),
        );
    }
    while prefix.len() > 1 && prefix.ends_with('/') {
        prefix.pop();
    }
    // No upstream: a decision-only route, answered by the decision listener.
    let upstream = match r.upstream.as_deref().map(str::parse::<http::Uri>) {
        None => None,
        Some(Ok(u)) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
            if u.query().is_some() {
                p.push(&key("upstream"), "must not carry a query string");
            }
            Some(u)
        }
        Some(_) => {
            p.push(
                &key("upstream"),
                format_args!(
                    "{:?} is not an http:// or https:// URL",
                    r.upstream.as_deref().unwrap_or_default()
                ),
            );
            None
        }
    };
    if upstream.is_none() && (r.websocket || r.upstream_protocol.is_some()) {
        p.push(
            &key("upstream"),
            "is required for websocket and upstream_protocol (a route without one only answers decisions)",
        );
    }
    let https = upstream
        .as_ref()
        .is_some_and(|u| u.scheme_str() == Some("https"));
    let upstream_protocol = match r.upstream_protocol.as_deref() {
        None | Some("http1") => UpstreamProtocol::Http1,
        Some("h2c") if !https => UpstreamProtocol::H2c,
        Some("h2") if https => UpstreamProtocol::H2,
        Some("h2c") => {
            p.push(
                &key("upstream_protocol"),
                "h2c is HTTP/2 without TLS: the upstream must be http://",
            );
            UpstreamProtocol::H2c
        }
        Some("h2") => {
            p.push(
                &key("upstream_protocol"),
                "h2 is negotiated over TLS: the upstream must be https:// (h2c for http://)",
            );
            UpstreamProtocol::H2
        }
        Some(other) => {
            p.push(
                &key("upstream_protocol"),
                format_args!("{other:?} is not one of http1, h2c, h2"),
            );
            UpstreamProtocol::Http1
        }
    };
    if r.websocket && upstream_protocol != UpstreamProtocol::Http1 {
        p.push(
            &key("websocket"),
            "WebSocket upgrades are HTTP/1.1: the route's upstream_protocol must be http1",
        );
    }
    if r.upstream_ca.is_some() && !https {
        p.push(&key("upstream_ca"), "applies to https:// upstreams only");
    }
    let forward_auth = match r.forward_auth.as_str() {
        "headers" => ForwardAuth::Headers,
        "passthrough" => ForwardAuth::Passthrough,
        "jwt" => ForwardAuth::Jwt,
        other => {
            p.push(
                &key("forward_auth"),
                format_args!("{other:?} is not one of headers, jwt, passthrough"),
            );
            ForwardAuth::Headers
        }
    };
    let mut scopes = BTreeMap::new();
    for (method, list) in r.scopes {
        let upper = method.to_ascii_uppercase();
        if !METHODS.contains(&upper.as_str()) {
            p.push(
                &key("scopes"),
                format_args!("{method:?} is not an HTTP method or \"*\""),
            );
        }
        if list
            .iter()
            .any(|s| s.is_empty() || s.contains(char::is_whitespace))
        {
            p.push(
                &key("scopes"),
                format_args!("scopes for {method} must be non-empty words without spaces"),
            );
        }
        scopes.insert(upper, list);
    }
    if forward_auth == ForwardAuth::Jwt && r.audience.is_none() {
        // A forwarded token without its own audience would be accepted
        // wherever keygate's tokens are: the upstream could replay it.
        p.push(
            &key("audience"),
            "forward_auth = \"jwt\" needs an audience for the tokens the upstream receives",
        );
    }
    if r.public && !scopes.is_empty() {
        p.push(&key("public"), "a public route cannot require scopes");
    }
    let rate_limit = r
        .rate_limit
        .as_deref()
        .and_then(|s| p.rate(&key("rate_limit"), s));
    let cost = match r.cost {
        None => 1,
        Some(n) if r.public => {
            p.push(&key("cost"), "a public route has no quota to spend from");
            u64::try_from(n).unwrap_or(0)
        }
        Some(n) => match u64::try_from(n) {
            Ok(n) if n <= MAX_COST => n,
            _ => {
                p.push(
                    &key("cost"),
                    format_args!("{n} is not a cost between 0 and {MAX_COST}"),
                );
                1
            }
        },
    };
    if p.0.len() != before {
        return None;
    }
    Some(RouteConfig {
        cost,
        name: r.name,
        prefix,
        upstream,
        strip_prefix: r.strip_prefix,
        audience: r.audience,
        scopes,
        forward_auth,
        rate_limit,
        public: r.public,
        upstream_protocol,
        upstream_ca: r.upstream_ca,
        websocket: r.websocket,
        client_cert: r.client_cert,
        accept_issuers: r.accept_issuers,
        accept_issuer_indexes: Vec::new(),
    })
}
