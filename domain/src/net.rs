//! Network addresses as values: lists of IP ranges from configuration (trusted proxies,
//! fetch allowlists) and the classification of addresses a server must not be tricked
//! into calling (SSRF).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A list of IP addresses and CIDR ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRanges(Vec<(IpAddr, u8)>);

impl IpRanges {
    /// Parses `10.0.0.1, 10.1.0.0/16, ::1` (empty: no ranges).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ranges = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (ip, bits) = match item.split_once('/') {
                Some((ip, bits)) => (ip, Some(bits)),
                None => (item, None),
            };
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| format!("{item:?} is not an IP address or CIDR range"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                Some(bits) => bits
                    .parse::<u8>()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{item:?}: bad prefix length"))?,
                None => max,
            };
            // An IPv4-mapped IPv6 range is the IPv4 range it maps.
            let (ip, bits) = match ip {
                IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                    if bits < 96 {
                        return Err(format!("{item:?}: write IPv4 ranges as IPv4"));
                    }
                    (canonical(ip), bits - 96)
                }
                _ => (ip, bits),
            };
            ranges.push((ip, bits));
        }
        Ok(Self(ranges))
    }

    /// Is `ip` in one of the ranges?
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0
            .iter()
            .any(|(net, bits)| match (canonical(*net), ip) {
                (IpAddr::V4(net), IpAddr::V4(ip)) => {
                    same_prefix(u32::from(net).into(), u32::from(ip).into(), 32, *bits)
                }
                (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(net.into(), ip.into(), 128, *bits),
                _ => false,
            })
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Do the first `bits` of two `width`-bit addresses agree?
fn same_prefix(net: u128, ip: u128, width: u32, bits: u8) -> bool {
    let bits = u32::from(bits);
    bits == 0 || (net >> (width - bits)) == (ip >> (width - bits))
}

/// Why an address is not a public one, or `None` if it is: loopback, private,
/// link-local (including the cloud metadata address 169.254.169.254), carrier-grade NAT,
/// unique-local, multicast, unspecified, documentation and other reserved ranges.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_private() {
        Some("private")
    } else if ip.is_link_local() {
        Some("link-local (cloud metadata)")
    } else if a == 100 && (64..128).contains(&b) {
        Some("carrier-grade NAT")
    } else if ip.is_unspecified() || a == 0 {
        Some("unspecified")
    } else if ip.is_multicast() || a >= 240 || ip.is_broadcast() {
        Some("multicast or reserved")
    } else if (a, b, c) == (192, 0, 2) || (a, b, c) == (198, 51, 100) || (a, b, c) == (203, 0, 113)
    {
        Some("documentation")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("benchmarking")
    } else if (a, b, c) == (192, 0, 0) {
        Some("IETF protocol assignments")
    } else {
        None
    }
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let first = segments[0];
    // Addresses that carry an IPv4 address: judged by it.
    if first == 0x2002 {
        // 6to4: 2002:AABB:CCDD::/48 embeds AA.BB.CC.DD.
        let [a, b] = segments[1].to_be_bytes();
        let [c, d] = segments[2].to_be_bytes();
        return non_public_v4(Ipv4Addr::new(a, b, c, d)).map(|_| "6to4 of a non-public IPv4");
    }
    if segments[..6] == [0, 0, 0, 0, 0, 0] && !ip.is_loopback() && !ip.is_unspecified() {
        return Some("IPv4-compatible (deprecated)");
    }
    if first == 0x2001 && segments[1] == 0 {
        return Some("Teredo");
    }
    if first & 0xffc0 == 0xfec0 {
        return Some("site-local");
    }
    if first & 0xe000 != 0x2000
        && !ip.is_loopback()
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && first & 0xfe00 != 0xfc00
        && first & 0xffc0 != 0xfe80
        && !(first == 0x0064 && segments[1] == 0xff9b)
    {
        return Some("not global unicast");
    }
    if ip.is_loopback() {
        Some("loopback")
    } else if ip.is_unspecified() {
        Some("unspecified")
    } else if first & 0xfe00 == 0xfc00 {
        Some("unique-local (private)")
    } else if first & 0xffc0 == 0xfe80 {
        Some("link-local")
    } else if ip.is_multicast() {
        Some("multicast")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("documentation")
    } else if first == 0x0064 && ip.segments()[1] == 0xff9b {
        // NAT64 can reach any IPv4 address, private ones included.
        Some("NAT64")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_a_server_must_not_be_sent_to_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
            "::10.0.0.1",
            "2001:0:4136:e378::1",
            "fec0::1",
        ] {
            assert!(non_public(ip.parse().unwrap()).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "2002:5db8:d822::1",
        ] {
            assert_eq!(non_public(ip.parse().unwrap()), None, "{ip}");
        }
    }

    #[test]
    fn ranges_match_by_prefix_and_mapped_addresses_as_ipv4() {
        let ranges = IpRanges::parse("10.0.0.0/8, ::1, 192.168.1.7").unwrap();
        assert!(ranges.contains("10.200.0.1".parse().unwrap()));
        assert!(ranges.contains("::ffff:10.0.0.1".parse().unwrap()));
        assert!(ranges.contains("::1".parse().unwrap()));
        assert!(!ranges.contains("11.0.0.1".parse().unwrap()));
        assert!(IpRanges::parse("10.0.0.0/33").is_err());
        assert!(IpRanges::parse("nonsense").is_err());
    }
}
