//! Per-client rate limits, for both front ends: requests per client address
//! by class of route (orders, reads, admin; HTTP), and orders per customer
//! (HTTP and QUIC). Each limit is a GCRA (governor) with a burst and a
//! steady rate, over a table of keys bounded by `rate_limit_keys_max`
//! (`store.rs`); idle keys are forgotten by `housekeeping`. Over a limit: 429
//! `rate_limited` with `Retry-After` and the `RateLimit` / `RateLimit-Policy`
//! headers (draft-ietf-httpapi-ratelimit-headers), or the same code over QUIC.
//! `address.rs` finds the client's address behind trusted proxies.

mod address;
pub mod store;

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::Method;
use flashgate_actors::domain::CustomerId;
use governor::clock::{Clock, MonotonicClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

pub use address::{client_address, parse_trusted_proxies, TrustedProxies};
use store::BoundedStore;

/// How often idle keys are forgotten and the key counts published.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(5);

/// A steady rate with a burst: `burst` requests at once, then `per_sec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub per_sec: u32,
    pub burst: u32,
}

/// The class of a route, which picks the per-address limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    /// Placing, confirming and cancelling orders.
    Orders,
    /// Every other read a buyer makes.
    Reads,
    /// SKU changes, metrics, the cluster's state and the admin calls.
    Admin,
}

impl RouteClass {
    /// The class of a request; `None` for the health probes, which an
    /// orchestrator must always reach.
    pub fn of(method: &Method, path: &str) -> Option<RouteClass> {
        if path == "/healthz" || path == "/readyz" {
            return None;
        }
        // Joining a waiting room is a buyer's call, counted with the orders.
        let joins_queue =
            *method == Method::POST && path.starts_with("/v1/skus/") && path.ends_with("/queue");
        let admin = path.starts_with("/v1/admin")
            || path == "/metrics"
            || path == "/v1/cluster"
            || (path.starts_with("/v1/skus/") && *method != Method::GET && !joins_queue);
        if admin {
            return Some(RouteClass::Admin);
        }
        let orders = joins_queue
            || (*method == Method::POST
                && (path == "/v1/orders"
                    || (path.starts_with("/v1/orders/")
                        && (path.ends_with("/confirm") || path.ends_with("/cancel")))));
        Some(if orders {
            RouteClass::Orders
        } else {
            RouteClass::Reads
        })
    }
}

/// A request over its limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limited {
    pub policy: &'static str,
    pub burst: u32,
    pub per_sec: u32,
    pub retry_after_secs: u64,
}

/// A request within its limit, and what is left of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Passed {
    pub policy: &'static str,
    pub burst: u32,
    pub per_sec: u32,
    pub remaining: u32,
    /// The policy's `RateLimit-Policy` value, made once per policy.
    policy_header: HeaderValue,
}

/// `RateLimit-Policy: "<name>";q=<burst>;w=<seconds to refill it>`.
fn policy_header_value(policy: &str, burst: u32, per_sec: u32) -> HeaderValue {
    let window = burst.div_ceil(per_sec.max(1)).max(1);
    let value = format!("\"{policy}\";q={burst};w={window}");
    HeaderValue::from_str(&value).expect("a policy name is a token")
}

fn policy_header(policy: &str, burst: u32, per_sec: u32) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static("ratelimit-policy"),
        policy_header_value(policy, burst, per_sec),
    )
}

/// `RateLimit: "<name>";r=<remaining>;t=<seconds until the quota is whole>`.
fn limit_header(policy: &str, remaining: u32, reset_secs: u64) -> (HeaderName, HeaderValue) {
    let value = format!("\"{policy}\";r={remaining};t={reset_secs}");
    (
        HeaderName::from_static("ratelimit"),
        HeaderValue::from_str(&value).expect("a policy name is a token"),
    )
}

impl Limited {
    /// The `RateLimit-Policy` and `RateLimit` headers of the refusal.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        [
            policy_header(self.policy, self.burst, self.per_sec),
            limit_header(self.policy, 0, self.retry_after_secs),
        ]
    }
}

impl Passed {
    /// The `RateLimit-Policy` and `RateLimit` headers of an answer.
    pub fn headers(&self) -> [(HeaderName, HeaderValue); 2] {
        let used = self.burst.saturating_sub(self.remaining);
        let reset = u64::from(used.div_ceil(self.per_sec.max(1)));
        [
            (
                HeaderName::from_static("ratelimit-policy"),
                self.policy_header.clone(),
            ),
            limit_header(self.policy, self.remaining, reset),
        ]
    }
}

type Limiter<K> = RateLimiter<K, BoundedStore<K>, MonotonicClock, StateInformationMiddleware>;

/// One limit: its name, rate, GCRA and key table, and its counters.
struct Policy<K: std::hash::Hash + Eq + Clone> {
    name: &'static str,
    rate: Rate,
    limiter: Limiter<K>,
    store: BoundedStore<K>,
    refused: metrics::Counter,
    policy_header: HeaderValue,
}

impl<K: std::hash::Hash + Eq + Clone> Policy<K> {
    /// `None` when the rate is 0 (no limit).
    fn new(name: &'static str, rate: Rate, keys_max: usize) -> Option<Policy<K>> {
        let per_sec = NonZeroU32::new(rate.per_sec)?;
        let burst = NonZeroU32::new(rate.burst.max(1)).expect("at least 1");
        let quota = Quota::per_second(per_sec).allow_burst(burst);
        let store = BoundedStore::new(keys_max);
        let limiter = RateLimiter::<K, BoundedStore<K>, MonotonicClock>::new(
            quota,
            store.clone(),
            MonotonicClock,
        )
        .with_middleware::<StateInformationMiddleware>();
        Some(Policy {
            name,
            rate,
            limiter,
            store,
            refused: metrics::counter!("flashgate_rate_limited_total", "policy" => name),
            policy_header: policy_header_value(name, rate.burst, rate.per_sec),
        })
    }

    fn check(&self, key: &K) -> Result<Passed, Limited> {
        match self.limiter.check_key(key) {
            Ok(snapshot) => Ok(Passed {
                policy: self.name,
                burst: self.rate.burst,
                per_sec: self.rate.per_sec,
                remaining: snapshot.remaining_burst_capacity(),
                policy_header: self.policy_header.clone(),
            }),
            Err(not_until) => {
                self.refused.increment(1);
                let wait = not_until.wait_time_from(MonotonicClock.now());
                Err(Limited {
                    policy: self.name,
                    burst: self.rate.burst,
                    per_sec: self.rate.per_sec,
                    retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
                })
            }
        }
    }

    fn housekeeping(&self, now: Instant) {
        self.store.forget_idle(now);
        metrics::gauge!("flashgate_rate_limit_keys", "policy" => self.name)
            .set(self.store.tracked() as f64);
        metrics::counter!("flashgate_rate_limit_overflow_total", "policy" => self.name)
            .absolute(self.store.overflowed());
    }
}

/// What `RateLimits` is made of (from `Config`).
#[derive(Clone, Debug, Default)]
pub struct RateLimitConfig {
    pub orders_per_address: Option<Rate>,
    pub reads_per_address: Option<Rate>,
    pub admin_per_address: Option<Rate>,
    pub orders_per_customer: Option<Rate>,
    /// Keys each limit tracks at most.
    pub keys_max: usize,
    pub trusted_proxies: TrustedProxies,
}

/// Every configured limit, shared by the HTTP workers and the QUIC front end.
pub struct RateLimits {
    orders_per_address: Option<Policy<IpAddr>>,
    reads_per_address: Option<Policy<IpAddr>>,
    admin_per_address: Option<Policy<IpAddr>>,
    orders_per_customer: Option<Policy<CustomerId>>,
    trusted_proxies: TrustedProxies,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> RateLimits {
        let address = |name, rate: Option<Rate>| {
            rate.and_then(|rate| Policy::new(name, rate, config.keys_max))
        };
        RateLimits {
            orders_per_address: address("orders-per-address", config.orders_per_address),
            reads_per_address: address("reads-per-address", config.reads_per_address),
            admin_per_address: address("admin-per-address", config.admin_per_address),
            orders_per_customer: config
                .orders_per_customer
                .and_then(|rate| Policy::new("orders-per-customer", rate, config.keys_max)),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }

    pub fn trusted_proxies(&self) -> &TrustedProxies {
        &self.trusted_proxies
    }

    /// Counts a request of `class` from `address`; `Ok(None)` when that class
    /// has no limit.
    pub fn check_address(
        &self,
        class: RouteClass,
        address: IpAddr,
    ) -> Result<Option<Passed>, Limited> {
        let policy = match class {
            RouteClass::Orders => &self.orders_per_address,
            RouteClass::Reads => &self.reads_per_address,
            RouteClass::Admin => &self.admin_per_address,
        };
        policy
            .as_ref()
            .map(|policy| policy.check(&address))
            .transpose()
    }

    /// Counts an order of `customer`; `Ok(None)` when orders per customer
    /// have no limit.
    pub fn check_customer(&self, customer: &CustomerId) -> Result<Option<Passed>, Limited> {
        self.orders_per_customer
            .as_ref()
            .map(|policy| policy.check(customer))
            .transpose()
    }

    /// Forgets idle keys and publishes each limit's key count and overflow.
    pub fn housekeeping(&self) {
        let now = Instant::now();
        for policy in [
            &self.orders_per_address,
            &self.reads_per_address,
            &self.admin_per_address,
        ]
        .into_iter()
        .flatten()
        {
            policy.housekeeping(now);
        }
        if let Some(policy) = &self.orders_per_customer {
            policy.housekeeping(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_fall_in_their_class_and_health_probes_in_none() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(
            RouteClass::of(&post, "/v1/orders"),
            Some(RouteClass::Orders)
        );
        assert_eq!(
            RouteClass::of(&post, "/v1/orders/1-0-1/cancel"),
            Some(RouteClass::Orders)
        );
        assert_eq!(
            RouteClass::of(&post, "/v1/orders/read"),
            Some(RouteClass::Reads)
        );
        assert_eq!(
            RouteClass::of(&get, "/v1/orders/1-0-1"),
            Some(RouteClass::Reads)
        );
        assert_eq!(RouteClass::of(&get, "/v1/skus/A"), Some(RouteClass::Reads));
        assert_eq!(
            RouteClass::of(&Method::PUT, "/v1/skus/A"),
            Some(RouteClass::Admin)
        );
        assert_eq!(
            RouteClass::of(&post, "/v1/skus/A/restock"),
            Some(RouteClass::Admin)
        );
        assert_eq!(RouteClass::of(&get, "/metrics"), Some(RouteClass::Admin));
        assert_eq!(
            RouteClass::of(&post, "/v1/admin/promote"),
            Some(RouteClass::Admin)
        );
        assert_eq!(RouteClass::of(&get, "/healthz"), None);
        assert_eq!(RouteClass::of(&get, "/readyz"), None);
    }

    #[test]
    fn a_burst_passes_then_the_next_request_is_limited_with_its_wait() {
        let limits = RateLimits::new(&RateLimitConfig {
            orders_per_customer: Some(Rate {
                per_sec: 1,
                burst: 3,
            }),
            keys_max: 10,
            ..RateLimitConfig::default()
        });
        let customer = CustomerId::parse("c-1").unwrap();
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check_customer(&customer).unwrap().unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let limited = limits.check_customer(&customer).unwrap_err();
        assert_eq!(limited.policy, "orders-per-customer");
        assert_eq!(limited.retry_after_secs, 1);
        let [(policy, policy_value), (limit, limit_value)] = limited.headers();
        assert_eq!(policy.as_str(), "ratelimit-policy");
        assert_eq!(policy_value, "\"orders-per-customer\";q=3;w=3");
        assert_eq!(limit.as_str(), "ratelimit");
        assert_eq!(limit_value, "\"orders-per-customer\";r=0;t=1");
        // Another customer is not affected; an unlimited class passes.
        let other = CustomerId::parse("c-2").unwrap();
        assert!(limits.check_customer(&other).is_ok());
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(limits.check_address(RouteClass::Orders, address), Ok(None));
    }
}
