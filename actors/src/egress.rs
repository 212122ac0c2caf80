//! Safe egress: destinations in private, loopback, link-local, unique-local, multicast, reserved and
//! cloud-metadata ranges are refused unless an allowed CIDR covers them. The check runs on the addresses a name
//! resolves to, at connect time, inside the connector's resolver, so a DNS answer that changes between checks
//! (rebinding) cannot get past it.

use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Ranges refused by default.
const BLOCKED_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "64:ff9b::/96",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
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

    /// Refuses an address in a blocked range that no allowed range covers. IPv4-mapped IPv6 addresses are
    /// checked as the IPv4 address they carry.
    pub fn check(&self, address: IpAddr) -> Result<(), Blocked> {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        if self.allowed.iter().any(|range| range.contains(&address)) {
            return Ok(());
        }
        match self.blocked.iter().find(|range| range.contains(&address)) {
            Some(range) => Err(Blocked { address, range: *range }),
            None => Ok(()),
        }
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
}
