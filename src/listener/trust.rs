//! Which peers may speak for a client: `server.trusted_proxies`. A client's
//! own `X-Forwarded-For` / `Forwarded` chain is believed only when the
//! connection comes from one of them; then the client address is the
//! rightmost address in the chain that is not itself a trusted proxy. The
//! same address feeds rate limits and the failed-auth budget.

use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName};
use ipnet::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// The configured trusted proxies (CIDRs); empty by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = unmap(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client behind a trusted `peer`: walk the forwarding chain from
    /// the right, past trusted proxies, to the first address that is not
    /// one. A hop that does not parse as an address ends the walk at the
    /// last trusted one: what a proxy we trust says is believed, never what
    /// the client wrote before it.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        let walk = |client: &mut IpAddr, hops: &mut dyn Iterator<Item = Option<IpAddr>>| {
            for hop in hops {
                match hop {
                    Some(ip) => {
                        *client = ip;
                        if !self.contains(ip) {
                            return;
                        }
                    }
                    None => return,
                }
            }
        };
        if headers.contains_key(&X_FORWARDED_FOR) {
            // Several X-Forwarded-For fields read as one list (RFC 9110 §5.3).
            let values: Vec<&str> = headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let mut hops = values
                .iter()
                .rev()
                .flat_map(|v| v.rsplit(','))
                .map(|h| parse_hop(h.trim()));
            walk(&mut client, &mut hops);
        } else if headers.contains_key(&FORWARDED) {
            let values: Vec<&str> = headers
                .get_all(&FORWARDED)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let mut hops = values
                .iter()
                .rev()
                .flat_map(|v| v.rsplit(','))
                .map(forwarded_for);
            walk(&mut client, &mut hops);
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses compare as the IPv4 address they carry.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` hop: an address, possibly `[v6]:port` or `v4:port`.
fn parse_hop(h: &str) -> Option<IpAddr> {
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(unmap(ip));
    }
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok().map(unmap);
    }
    let (host, port) = h.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok().map(unmap)
}

/// The `for=` of one RFC 7239 `Forwarded` element.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_hop(v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn proxies(cidrs: &[&str]) -> TrustedProxies {
        TrustedProxies::new(cidrs.iter().map(|c| c.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.0.0.7"),
        );
        // The client wrote 6.6.6.6 itself; the first proxy saw 1.2.3.4.
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("1.2.3.4"));
    }

    #[test]
    fn garbage_stops_the_walk_at_the_last_trusted_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("evil, 10.0.0.7"),
        );
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("10.0.0.7"));
    }

    #[test]
    fn forwarded_is_read_when_there_is_no_x_forwarded_for() {
        let p = proxies(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "forwarded",
            HeaderValue::from_static(r#"for="[2001:db8::1]:4711";proto=https, for=10.0.0.9"#),
        );
        assert_eq!(p.client(ip("10.0.0.1"), &h), ip("2001:db8::1"));
    }

    #[test]
    fn mapped_addresses_match_ipv4_nets() {
        let p = proxies(&["10.0.0.0/8"]);
        assert!(p.contains(ip("::ffff:10.1.2.3")));
        assert!(!p.contains(ip("11.0.0.1")));
    }
}
