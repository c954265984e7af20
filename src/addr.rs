//! Which client addresses count as one client, for every budget charged to
//! an address: the failed-authentication budget (`authn`) and per-address
//! rate limits (`ratelimit`). A foundation both layers share, so neither
//! imports the other for it.

use std::net::IpAddr;

/// The addresses that count as one client: an IPv4 address, or an IPv6
/// /64. SECURITY: one IPv6 host usually holds a whole /64 and can rotate
/// through it at will; counting per address would give it 2^64 budgets.
/// An IPv4-mapped IPv6 address is its IPv4 address.
pub fn address_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
    }
}

/// `ip` as its own family: an IPv4-mapped IPv6 address is its IPv4
/// address, so `10.0.0.0/8` holds `::ffff:10.0.0.1` (a dual-stack
/// listener's view of an IPv4 client).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_slash_64_is_one_client() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_bucket(a), address_bucket(b));
        assert_ne!(address_bucket(a), address_bucket(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            address_bucket(mapped),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
