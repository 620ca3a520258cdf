//! `FailureThrottle`: slows credential guessing per client address. Callers
//! pass `now`; no clock is read here.
//!
//! Rules:
//! 1. Each address has a window of `window_ms` that opens with its first
//!    failure; failures inside it are counted.
//! 2. Once an address has `failures_max` failures in its window, every call
//!    from it that carries a credential is refused (429, `Retry-After` = the
//!    rest of the window) without checking the credential, so a guess costs
//!    nothing to refuse and proves nothing.
//! 3. When the window ends, the address starts afresh.
//! 4. At most `addresses_max` addresses are tracked: a new address past it
//!    first drops the addresses whose windows ended, then the one whose window
//!    opened first, so memory stays bounded under a spread-out attack.
//! 5. A success does not clear failures: it would let a guesser interleave a
//!    known credential to reset the count.

use std::net::IpAddr;

use dashmap::DashMap;

/// The throttle's limits; see `Config`'s `auth_failure*` fields.
#[derive(Clone, Copy, Debug)]
pub struct ThrottleConfig {
    pub failures_max: u32,
    pub window_ms: u64,
    pub addresses_max: usize,
}

#[derive(Clone, Copy, Debug)]
struct Window {
    opened_at_ms: u64,
    failures: u32,
}

/// Per-address failure counts (rules in the module doc). Shared by every
/// worker: a `DashMap`, so addresses in different shards never contend, and
/// an address with no failures costs one lookup.
pub struct FailureThrottle {
    config: ThrottleConfig,
    windows: DashMap<IpAddr, Window>,
}

/// What a failure did to its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failed {
    /// The first failure of a new window: worth a log line.
    First,
    /// The failure that used up the window: worth a log line.
    NowThrottled,
    /// Any other: counted, not logged.
    Counted,
}

impl FailureThrottle {
    pub fn new(config: ThrottleConfig) -> FailureThrottle {
        assert!(config.failures_max > 0 && config.window_ms > 0 && config.addresses_max > 0);
        FailureThrottle {
            config,
            windows: DashMap::new(),
        }
    }

    /// Rule 2: `Err(seconds to wait)` when `address` used up its window.
    pub fn check(&self, address: IpAddr, now_ms: u64) -> Result<(), u64> {
        let Some(window) = self.windows.get(&address).map(|entry| *entry) else {
            return Ok(());
        };
        let ends_at = window.opened_at_ms.saturating_add(self.config.window_ms);
        if now_ms >= ends_at || window.failures < self.config.failures_max {
            return Ok(());
        }
        Err((ends_at - now_ms).div_ceil(1000).max(1))
    }

    /// Rules 1, 3 and 4: counts a failure from `address`.
    pub fn failed(&self, address: IpAddr, now_ms: u64) -> Failed {
        if !self.windows.contains_key(&address) && self.windows.len() >= self.config.addresses_max {
            self.make_room(now_ms);
        }
        let mut entry = self.windows.entry(address).or_insert(Window {
            opened_at_ms: now_ms,
            failures: 0,
        });
        let window = entry.value_mut();
        if now_ms >= window.opened_at_ms.saturating_add(self.config.window_ms) {
            *window = Window {
                opened_at_ms: now_ms,
                failures: 0,
            };
        }
        window.failures = window.failures.saturating_add(1);
        match window.failures {
            1 => Failed::First,
            n if n == self.config.failures_max => Failed::NowThrottled,
            _ => Failed::Counted,
        }
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }

    fn make_room(&self, now_ms: u64) {
        let window_ms = self.config.window_ms;
        self.windows
            .retain(|_, window| now_ms < window.opened_at_ms.saturating_add(window_ms));
        if self.windows.len() < self.config.addresses_max {
            return;
        }
        let oldest = self
            .windows
            .iter()
            .min_by_key(|entry| entry.value().opened_at_ms)
            .map(|entry| *entry.key());
        if let Some(oldest) = oldest {
            self.windows.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle(addresses_max: usize) -> FailureThrottle {
        FailureThrottle::new(ThrottleConfig {
            failures_max: 3,
            window_ms: 10_000,
            addresses_max,
        })
    }

    fn address(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_window_ends() {
        let throttle = throttle(16);
        let guesser = address(1);
        assert_eq!(throttle.failed(guesser, 1_000), Failed::First);
        assert_eq!(throttle.failed(guesser, 2_000), Failed::Counted);
        assert_eq!(throttle.check(guesser, 2_000), Ok(()));
        assert_eq!(throttle.failed(guesser, 3_000), Failed::NowThrottled);
        // The window opened at 1 s and lasts 10 s: 7.5 s to go, told as 8.
        assert_eq!(throttle.check(guesser, 3_500), Err(8));
        assert_eq!(throttle.check(address(2), 3_500), Ok(()));
        assert_eq!(throttle.check(guesser, 10_999), Err(1));
        assert_eq!(throttle.check(guesser, 11_000), Ok(()));
        assert_eq!(throttle.failed(guesser, 11_000), Failed::First);
    }

    #[test]
    fn memory_stays_bounded_and_ended_windows_go_first() {
        let throttle = throttle(4);
        for n in 0..4 {
            throttle.failed(address(n), u64::from(n));
        }
        // Address 0 is still in its window, so it is the oldest that goes.
        throttle.failed(address(9), 100);
        assert_eq!(throttle.tracked(), 4);
        assert!(throttle.check(address(0), 100).is_ok());
        for _ in 0..3 {
            throttle.failed(address(1), 200);
        }
        assert!(throttle.check(address(1), 200).is_err());
        // Once windows have ended, a newcomer drops them all, not the throttled one's peers.
        for n in 20..200 {
            throttle.failed(address(n), 1_000_000 + u64::from(n));
        }
        assert_eq!(throttle.tracked(), 4);
    }
}
