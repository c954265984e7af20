//! Where a webhook may send: the URL and address policy (SSRF). A target
//! is `https` to a public address; `allow_insecure_targets` also permits
//! `http` and private, loopback or link-local addresses. The policy is held
//! at registration and again at every delivery, on the addresses the name
//! resolves to then — and the delivery connects to an address checked here,
//! never resolving twice (no DNS rebinding between check and connect).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::uri::{Scheme, Uri};

/// Why a URL is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("is not an absolute http(s) URL")]
    Malformed,
    #[error("must use https")]
    NotHttps,
    #[error("must not carry credentials (user:password@)")]
    Userinfo,
    #[error("must not carry a fragment")]
    Fragment,
    #[error("resolves to a private, loopback, link-local or otherwise non-public address")]
    NotPublic,
    #[error("does not resolve")]
    Unresolved,
}

/// A URL that passed the policy's syntactic checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub uri: Uri,
    pub https: bool,
    /// As written, without brackets for IPv6.
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub allow_insecure: bool,
}

impl Policy {
    /// Checks what can be checked without DNS.
    pub fn parse(&self, url: &str) -> Result<Target, Refused> {
        if url.contains('#') {
            return Err(Refused::Fragment);
        }
        let uri: Uri = url.parse().map_err(|_| Refused::Malformed)?;
        let https = match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => true,
            Some(s) if *s == Scheme::HTTP => false,
            _ => return Err(Refused::Malformed),
        };
        if !https && !self.allow_insecure {
            return Err(Refused::NotHttps);
        }
        let authority = uri.authority().ok_or(Refused::Malformed)?;
        // SECURITY: `https://public.example@10.0.0.1/` reads as one host to
        // a person and another to a client: refused outright.
        if authority.as_str().contains('@') {
            return Err(Refused::Userinfo);
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err(Refused::Malformed);
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let target = Target {
            uri,
            https,
            host,
            port,
        };
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            self.check(ip)?;
        }
        Ok(target)
    }

    /// Every address `target`'s host resolves to, each checked: one
    /// non-public address refuses them all (a name that mixes them is
    /// refused, not trimmed).
    pub async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, Refused> {
        let addrs: Vec<SocketAddr> = match target.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, target.port)],
            Err(_) => tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|_| Refused::Unresolved)?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(Refused::Unresolved);
        }
        for a in &addrs {
            self.check(a.ip())?;
        }
        Ok(addrs)
    }

    fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.allow_insecure || is_public(ip) {
            Ok(())
        } else {
            Err(Refused::NotPublic)
        }
    }
}

/// Whether `ip` is a public unicast address. IPv4-mapped and -compatible,
/// NAT64 and 6to4 IPv6 addresses are judged by the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT), RFC 6598
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, RFC 2544
        || a >= 240) // reserved
}

fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible, deprecated)
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(tail),
        [0, 0, 0, 0, 0, 0, hi, _] if hi != 0 => Some(tail),
        // 64:ff9b::a.b.c.d (NAT64, RFC 6052)
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(tail),
        // 2002:AABB:CCDD::/48 (6to4)
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        _ => None,
    }
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || first == 0x2001 && ip.segments()[1] == 0x0db8 // documentation
        || first == 0x0100 && ip.segments()[1..4] == [0, 0, 0]) // discard-only 100::/64
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: Policy = Policy {
        allow_insecure: false,
    };
    const LAX: Policy = Policy {
        allow_insecure: true,
    };

    #[test]
    fn only_https_to_public_addresses_by_default() {
        assert!(STRICT.parse("https://hooks.example.com/k").is_ok());
        assert!(STRICT.parse("https://93.184.215.14:8443/k").is_ok());
        assert_eq!(
            STRICT.parse("http://hooks.example.com/"),
            Err(Refused::NotHttps)
        );
        assert_eq!(STRICT.parse("ftp://x/"), Err(Refused::Malformed));
        assert_eq!(STRICT.parse("/relative"), Err(Refused::Malformed));
        assert_eq!(STRICT.parse("hooks.example.com"), Err(Refused::Malformed));
        assert_eq!(STRICT.parse("https://127.0.0.1/"), Err(Refused::NotPublic));
        assert_eq!(STRICT.parse("https://[::1]/"), Err(Refused::NotPublic));
        assert_eq!(
            STRICT.parse("https://a.example@10.0.0.1/"),
            Err(Refused::Userinfo)
        );
        assert_eq!(STRICT.parse("https://x.example/#f"), Err(Refused::Fragment));
    }

    #[test]
    fn every_non_public_range_is_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "192.0.0.8",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_public(ip), "{ip} must not be public");
        }
        for ip in [
            "93.184.215.14",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_public(ip), "{ip} is public");
        }
    }

    #[test]
    fn insecure_targets_when_allowed() {
        assert!(LAX.parse("http://127.0.0.1:9/").is_ok());
        assert_eq!(LAX.parse("https://a@127.0.0.1/"), Err(Refused::Userinfo));
    }

    #[tokio::test]
    async fn names_are_judged_by_what_they_resolve_to() {
        let t = STRICT.parse("https://localhost:1/").unwrap();
        assert_eq!(STRICT.resolve(&t).await, Err(Refused::NotPublic));
        let t = LAX.parse("http://localhost:1/").unwrap();
        assert!(LAX.resolve(&t).await.is_ok());
        let t = STRICT.parse("https://no-such-name.invalid/").unwrap();
        assert_eq!(STRICT.resolve(&t).await, Err(Refused::Unresolved));
    }
}
