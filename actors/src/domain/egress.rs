//! Safe egress: destinations in the ranges that IANA's special-purpose address registries say are not globally
//! reachable (private, loopback, link-local, unique-local, shared, benchmarking, documentation, discard-only,
//! protocol assignments, SRv6 SIDs, ...), plus multicast, reserved, deprecated site-local and cloud-metadata
//! addresses, are refused unless an allowed CIDR covers them. The check runs on the addresses a name resolves to,
//! at connect time, inside the connector's resolver, so a DNS answer that changes between checks (rebinding)
//! cannot get past it.
//!
//! IPv6 addresses that carry an IPv4 address (IPv4-mapped, IPv4-compatible, SIIT, NAT64 with either prefix,
//! 6to4, Teredo) are checked as the IPv4 addresses they carry as well, so `[::ffff:0:7f00:1]` or
//! `[2002:7f00:1::1]` cannot reach 127.0.0.1 round the IPv4 rules.

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Ranges refused by default: every entry of the IANA IPv4 and IPv6 Special-Purpose Address Registries that is
/// not globally reachable, plus multicast, the reserved and deprecated ranges. Listed in the README and in
/// docs/security.md; keep the three in step.
pub const BLOCKED_RANGES: &[&str] = &[
    // IPv4 (IANA IPv4 Special-Purpose Address Registry, then multicast and reserved).
    "0.0.0.0/8",       // "this network" (RFC 791)
    "10.0.0.0/8",      // private use (RFC 1918)
    "100.64.0.0/10",   // shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",     // loopback (RFC 1122)
    "169.254.0.0/16",  // link-local, cloud metadata (RFC 3927)
    "172.16.0.0/12",   // private use (RFC 1918)
    "192.0.0.0/24",    // IETF protocol assignments, DS-Lite, NAT64 discovery (RFC 6890)
    "192.0.2.0/24",    // documentation TEST-NET-1 (RFC 5737)
    "192.88.99.0/24",  // deprecated 6to4 relay anycast (RFC 7526)
    "192.168.0.0/16",  // private use (RFC 1918)
    "198.18.0.0/15",   // benchmarking (RFC 2544)
    "198.51.100.0/24", // documentation TEST-NET-2 (RFC 5737)
    "203.0.113.0/24",  // documentation TEST-NET-3 (RFC 5737)
    "224.0.0.0/4",     // multicast (RFC 5771)
    "240.0.0.0/4",     // reserved, limited broadcast 255.255.255.255 (RFC 1112, RFC 919)
    // IPv6 (IANA IPv6 Special-Purpose Address Registry, then deprecated, multicast).
    "::/128",         // unspecified (RFC 4291)
    "::1/128",        // loopback (RFC 4291)
    "64:ff9b:1::/48", // local-use IPv4/IPv6 translation (RFC 8215)
    "100::/64",       // discard-only (RFC 6666)
    "100:0:0:1::/64", // dummy IPv6 prefix (IANA special-purpose registry)
    "2001::/23",      // IETF protocol assignments: Teredo, benchmarking, ORCHID, ... (RFC 2928)
    "2001:db8::/32",  // documentation (RFC 3849)
    "3fff::/20",      // documentation (RFC 9637)
    "5f00::/16",      // segment routing (SRv6) SIDs (RFC 9602)
    "fc00::/7",       // unique-local (RFC 4193)
    "fe80::/10",      // link-local unicast (RFC 4291)
    "fec0::/10",      // site-local, deprecated (RFC 3879)
    "ff00::/8",       // multicast (RFC 4291)
];

/// Which destination addresses may be connected to.
#[derive(Debug, Clone)]
pub struct EgressPolicy {
    blocked: Vec<IpNet>,
    allowed: Vec<IpNet>,
}

impl Default for EgressPolicy {
    fn default() -> Self {
        EgressPolicy::new(Vec::new())
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address} is in the blocked range {range} (allow it with --allow-destination)")]
pub struct Blocked {
    /// The refused address.
    pub address: IpAddr,
    /// The range it is in.
    pub range: IpNet,
}

impl EgressPolicy {
    /// The default blocked ranges, less what `allowed` covers.
    pub fn new(allowed: Vec<IpNet>) -> Self {
        let blocked = BLOCKED_RANGES.iter().filter_map(|range| range.parse().ok()).collect();
        EgressPolicy { blocked, allowed }
    }

    /// Refuses an address in a blocked range that no allowed range covers. An IPv4-mapped address is checked as
    /// the IPv4 address it is; an IPv6 address that carries IPv4 addresses ([`embedded_ipv4`]) is checked itself
    /// and as each IPv4 address it carries, so allowing an IPv6 range (`2002::/16`, say) does not open the IPv4
    /// ranges its addresses carry, and allowing an IPv4 range opens it through every such form.
    pub fn check(&self, address: IpAddr) -> Result<(), Blocked> {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        self.check_one(address)?;
        if let IpAddr::V6(v6) = address {
            for carried in embedded_ipv4(v6) {
                self.check_one(IpAddr::V4(carried))?;
            }
        }
        Ok(())
    }

    fn check_one(&self, address: IpAddr) -> Result<(), Blocked> {
        if self.allowed.iter().any(|range| range.contains(&address)) {
            return Ok(());
        }
        match self.blocked.iter().find(|range| range.contains(&address)) {
            Some(range) => Err(Blocked { address, range: *range }),
            None => Ok(()),
        }
    }
}

/// The IPv4 addresses an IPv6 address carries, by the forms that embed one: IPv4-compatible (`::a.b.c.d`,
/// deprecated), SIIT IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 with the well-known prefix
/// (`64:ff9b::a.b.c.d`) and the local-use prefix (`64:ff9b:1::/48`, the IPv4 in the last 32 bits), 6to4
/// (`2002:AABB:CCDD::/48`) and Teredo (`2001:0:SSSS:SSSS:...:CCCC:CCCC`: the server's IPv4 in bits 32-63, the
/// client's XOR-ed with all ones in the last 32 bits; both are returned). IPv4-mapped addresses are not listed:
/// they are the IPv4 address and are checked as such.
pub fn embedded_ipv4(address: Ipv6Addr) -> Vec<Ipv4Addr> {
    let segments = address.segments();
    let octets = address.octets();
    let last_32 = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    let ipv4_at = |start: usize| Ipv4Addr::new(octets[start], octets[start + 1], octets[start + 2], octets[start + 3]);
    match segments {
        // IPv4-compatible ::a.b.c.d; :: and ::1 are the unspecified and loopback addresses, checked as themselves.
        [0, 0, 0, 0, 0, 0, high, low] if high != 0 || low > 1 => vec![last_32],
        // SIIT IPv4-translated ::ffff:0:a.b.c.d.
        [0, 0, 0, 0, 0xffff, 0, _, _] => vec![last_32],
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => vec![last_32],
        // NAT64 local-use prefix 64:ff9b:1::/48.
        [0x64, 0xff9b, 1, ..] => vec![last_32],
        // 6to4 2002:AABB:CCDD::/48.
        [0x2002, ..] => vec![ipv4_at(2)],
        // Teredo 2001:0::/32: server in bits 32-63, client (obfuscated) in the last 32 bits.
        [0x2001, 0, ..] => vec![ipv4_at(4), Ipv4Addr::from(!u32::from(last_32))],
        _ => Vec::new(),
    }
}

/// A DNS failure, kept distinct so it classifies as `DNS`.
#[derive(Debug, thiserror::Error)]
#[error("could not resolve {host}: {reason}")]
pub struct DnsFailure {
    /// The name.
    pub host: String,
    /// Why.
    pub reason: String,
}

/// The connector's resolver: resolves, then drops refused addresses; fails with [`Blocked`] when none is left.
#[derive(Debug, Clone)]
pub struct EgressResolver {
    policy: Arc<EgressPolicy>,
}

impl EgressResolver {
    /// A resolver applying `policy`.
    pub fn new(policy: Arc<EgressPolicy>) -> Self {
        EgressResolver { policy }
    }
}

impl tower_service::Service<Name> for EgressResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|error| DnsFailure { host: host.clone(), reason: error.to_string() })?
                .collect();
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| match policy.check(address.ip()) {
                    Ok(()) => true,
                    Err(blocked) => {
                        first_refusal.get_or_insert(blocked);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), first_refusal) {
                (true, Some(blocked)) => Err(Box::new(blocked) as Self::Error),
                (true, None) => Err(Box::new(DnsFailure { host, reason: "no addresses".into() }) as Self::Error),
                (false, _) => Ok(allowed.into_iter()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_metadata_addresses_are_refused_unless_allowed() {
        let policy = EgressPolicy::default();
        for address in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.20.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(policy.check(address.parse().unwrap()).is_err(), "{address} must be refused");
        }
        assert!(policy.check("93.184.216.34".parse().unwrap()).is_ok());
        assert!(policy.check("2606:2800:220:1::1".parse().unwrap()).is_ok());
        let allowed = EgressPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(allowed.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(allowed.check("10.0.0.1".parse().unwrap()).is_err());
    }

    /// The addresses of issue 13, each of which reached a loopback receiver before.
    const ISSUE_ADDRESSES: &[&str] = &[
        "::7f00:1",
        "::ffff:0:7f00:1",
        "64:ff9b:1::7f00:1",
        "2002:7f00:1::1",
        "2001::1",
        "fec0::1",
        "3fff::1",
        "5f00::1",
    ];

    #[test]
    fn every_address_of_the_issue_is_refused_by_default() {
        let policy = EgressPolicy::default();
        for address in ISSUE_ADDRESSES {
            assert!(policy.check(address.parse().unwrap()).is_err(), "{address} must be refused");
        }
    }

    #[test]
    fn addresses_that_carry_a_loopback_or_private_ipv4_are_refused_as_that_ipv4_even_when_allowed_as_ipv6() {
        let carrying_loopback = [
            "::127.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::127.0.0.1",
            "2002:7f00:1::1",
            // Teredo: server 127.0.0.1, client 8.8.8.8 (XOR-ed: f7f7:f7f7).
            "2001:0:7f00:1::f7f7:f7f7",
            // Teredo: server 8.8.8.8, client 10.0.0.1 (XOR-ed: f5ff:fffe).
            "2001:0:808:808::f5ff:fffe",
        ];
        let everything_v6_allowed = EgressPolicy::new(vec!["::/0".parse().unwrap()]);
        for address in carrying_loopback {
            let refused = everything_v6_allowed.check(address.parse().unwrap()).expect_err(address);
            assert!(refused.address.is_ipv4(), "{address} is refused as the IPv4 it carries: {refused}");
        }
    }

    #[test]
    fn the_carried_ipv4_addresses_are_extracted_for_each_form() {
        let cases: &[(&str, &[&str])] = &[
            ("::7f00:1", &["127.0.0.1"]),
            ("::ffff:0:7f00:1", &["127.0.0.1"]),
            ("64:ff9b::808:808", &["8.8.8.8"]),
            ("64:ff9b:1::7f00:1", &["127.0.0.1"]),
            ("2002:7f00:1::1", &["127.0.0.1"]),
            ("2002:c000:0204::1", &["192.0.2.4"]),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", &["65.54.227.120", "192.0.2.45"]),
            ("2001::1", &["0.0.0.0", "255.255.255.254"]),
            ("2606:4700::1111", &[]),
            ("::ffff:127.0.0.1", &[]),
        ];
        for (address, carried) in cases {
            let expected: Vec<Ipv4Addr> = carried.iter().map(|text| text.parse().unwrap()).collect();
            assert_eq!(embedded_ipv4(address.parse().unwrap()), expected, "{address}");
        }
    }

    #[test]
    fn the_default_list_covers_the_special_purpose_registries_and_leaves_global_addresses_alone() {
        let policy = EgressPolicy::default();
        for address in [
            "0.1.2.3",
            "100.64.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "100::1",
            "100:0:0:1::1",
            "2001:2::1",
            "2001:db8::1",
            "fc00::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(policy.check(address.parse().unwrap()).is_err(), "{address} must be refused");
        }
        for address in [
            "8.8.8.8",
            "1.1.1.1",
            "192.31.196.1",
            "2606:4700::1111",
            "2a00:1450:4001:80b::200e",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(policy.check(address.parse().unwrap()).is_ok(), "{address} must be allowed");
        }
    }

    #[test]
    fn an_allowed_range_opens_its_addresses_in_every_form_that_carries_them() {
        let policy = EgressPolicy::new(vec!["127.0.0.0/8".parse().unwrap(), "fec0::/10".parse().unwrap()]);
        for address in ["127.0.0.1", "::ffff:127.0.0.1", "::7f00:1", "2002:7f00:1::1", "fec0::1"] {
            assert!(policy.check(address.parse().unwrap()).is_ok(), "{address} is allowed");
        }
        assert!(policy.check("::ffff:0:a00:1".parse().unwrap()).is_err(), "10.0.0.1 is still refused");
        assert!(policy.check("::1".parse().unwrap()).is_err(), "::1 is not covered by 127.0.0.0/8");
        let loopback_v6 = EgressPolicy::new(vec!["::1/128".parse().unwrap()]);
        assert!(loopback_v6.check("::1".parse().unwrap()).is_ok(), "::1 can be allowed");
    }

    #[test]
    fn every_default_range_reads() {
        assert_eq!(EgressPolicy::default().blocked.len(), BLOCKED_RANGES.len());
    }
}
