//! Sign-in throttling: failed sign-ins are counted per client address and across all addresses, in windows of a
//! minute. Once an address has failed `per_address` times in its window, or the console `global` times in its
//! own, sign-ins are refused without looking at the token until the window ends, so a stranger cannot try
//! tokens faster than that. A successful sign-in counts nothing. IPv6 clients count by their /64 (one host
//! usually holds the whole prefix). The addresses remembered are bounded; past the bound only the global count
//! applies to new ones. Each kernel counts its own.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Client addresses remembered at once.
pub const MAX_ADDRESSES: usize = 10_000;

/// Why a sign-in is refused before its token is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address failed too often; retry after the duration.
    Address(Duration),
    /// The console as a whole saw too many failures; retry after the duration.
    Global(Duration),
}

impl Refusal {
    /// When to try again, in whole seconds (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        let (Refusal::Address(after) | Refusal::Global(after)) = self;
        after.as_secs() + u64::from(after.subsec_nanos() > 0)
    }

    /// The message the sign-in page shows.
    pub fn message(self) -> String {
        let secs = self.retry_after_secs();
        match self {
            Refusal::Address(_) => format!("Too many failed sign-ins from your address: try again in {secs} s."),
            Refusal::Global(_) => format!("Too many failed sign-ins on this console: try again in {secs} s."),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

impl Window {
    fn current(&mut self, now: Instant) -> &mut Self {
        if now.duration_since(self.started) >= WINDOW {
            *self = Window { started: now, failures: 0 };
        }
        self
    }

    fn refuses(&mut self, now: Instant, limit: u32) -> Option<Duration> {
        let window = self.current(now);
        (window.failures >= limit).then(|| WINDOW.saturating_sub(now.duration_since(window.started)))
    }
}

#[derive(Debug)]
struct State {
    by_address: HashMap<IpAddr, Window>,
    global: Window,
}

/// The failed sign-ins counted.
#[derive(Debug)]
pub struct SignInThrottle {
    per_address: u32,
    global: u32,
    state: Mutex<State>,
}

impl SignInThrottle {
    /// Allows `per_address` failures a minute per client address and `global` in all (0: no limit).
    pub fn new(per_address: u32, global: u32) -> Self {
        let state = State { by_address: HashMap::new(), global: Window { started: Instant::now(), failures: 0 } };
        SignInThrottle {
            per_address: if per_address == 0 { u32::MAX } else { per_address },
            global: if global == 0 { u32::MAX } else { global },
            state: Mutex::new(state),
        }
    }

    /// Whether a sign-in from `address` may be tried now.
    pub fn check(&self, address: IpAddr) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(window) = state.by_address.get_mut(&key(address))
            && let Some(after) = window.refuses(now, self.per_address)
        {
            return Err(Refusal::Address(after));
        }
        match state.global.refuses(now, self.global) {
            Some(after) => Err(Refusal::Global(after)),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in from `address`.
    pub fn failed(&self, address: IpAddr) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|poison| poison.into_inner());
        state.global.current(now).failures += 1;
        let key = key(address);
        if state.by_address.len() >= MAX_ADDRESSES && !state.by_address.contains_key(&key) {
            state.by_address.retain(|_, window| now.duration_since(window.started) < WINDOW);
            if state.by_address.len() >= MAX_ADDRESSES {
                return;
            }
        }
        state.by_address.entry(key).or_insert(Window { started: now, failures: 0 }).current(now).failures += 1;
    }
}

/// The address failures are counted under: an IPv4 address (also when mapped into IPv6), or an IPv6 /64.
fn key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address_then_globally() {
        let throttle = SignInThrottle::new(3, 5);
        let (a, b, c): (IpAddr, IpAddr, IpAddr) =
            ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(throttle.check(a), Ok(()));
            throttle.failed(a);
        }
        let refusal = throttle.check(a).unwrap_err();
        assert!(matches!(refusal, Refusal::Address(after) if after <= WINDOW));
        assert!((1..=60).contains(&refusal.retry_after_secs()));
        assert!(refusal.message().contains("from your address"), "{}", refusal.message());
        assert_eq!(throttle.check(b), Ok(()), "another address is not refused for the first one's failures");
        throttle.failed(b);
        throttle.failed(b);
        assert!(matches!(throttle.check(c), Err(Refusal::Global(_))), "five failures in all");
    }

    #[test]
    fn an_ipv6_client_counts_by_its_64() {
        let throttle = SignInThrottle::new(1, 0);
        throttle.failed("2001:db8:1:2::1".parse().unwrap());
        assert!(throttle.check("2001:db8:1:2::ffff".parse().unwrap()).is_err());
        assert!(throttle.check("2001:db8:1:3::1".parse().unwrap()).is_ok());
        throttle.failed("::ffff:192.0.2.1".parse().unwrap());
        assert!(throttle.check("192.0.2.1".parse().unwrap()).is_err(), "a mapped IPv4 address is the address");
    }
}
