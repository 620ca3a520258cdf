//! `Gatekeeper`: the thin shell both front ends call with a client's address
//! and bearer credential. It reads the clock for the throttle, counts and
//! logs failures (a line per address per window, at WARN: a guesser decides
//! how often it fails, not how much the log says), and returns the `Caller`.

use std::net::IpAddr;
use std::time::Instant;

use super::throttle::Failed;
use super::{AuthFailure, Caller, Credentials, FailureThrottle, ThrottleConfig};

/// Why a credential was not taken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The credential is not valid (401); the detail says why.
    Invalid(AuthFailure),
    /// Too many failures from this address (429): wait this many seconds.
    Throttled { retry_after_secs: u64 },
}

pub struct Gatekeeper {
    credentials: Credentials,
    throttle: FailureThrottle,
    started: Instant,
}

impl Gatekeeper {
    pub fn new(credentials: Credentials, throttle: ThrottleConfig) -> Gatekeeper {
        Gatekeeper {
            credentials,
            throttle: FailureThrottle::new(throttle),
            started: Instant::now(),
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The caller of a call from `address` carrying `bearer` (if any), over
    /// `front_end` ("http" or "quic", for the metric and the log).
    pub fn identify(
        &self,
        address: IpAddr,
        bearer: Option<&str>,
        front_end: &'static str,
    ) -> Result<Caller, Refused> {
        if bearer.is_none() {
            return self.credentials.identify(None).map_err(Refused::Invalid);
        }
        let now_ms = self.started.elapsed().as_millis() as u64;
        if let Err(retry_after_secs) = self.throttle.check(address, now_ms) {
            metrics::counter!("flashgate_auth_failures_total", "front_end" => front_end, "outcome" => "throttled").increment(1);
            return Err(Refused::Throttled { retry_after_secs });
        }
        self.credentials.identify(bearer).map_err(|failure| {
            metrics::counter!("flashgate_auth_failures_total", "front_end" => front_end, "outcome" => "invalid").increment(1);
            match self.throttle.failed(address, now_ms) {
                Failed::First => tracing::warn!(%address, front_end, reason = %failure, "a credential was refused (further failures from this address in this window are counted, not logged)"),
                Failed::NowThrottled => tracing::warn!(%address, front_end, "too many refused credentials from this address: its credentials get 429 until its window ends"),
                Failed::Counted => {}
            }
            Refused::Invalid(failure)
        })
    }
}
