//! What both front ends share about one request once its bytes are read:
//! `RequestError`, every way a request is refused, with the one `code()` both
//! answer (HTTP maps it to a status and a problem body in `problem`, QUIC to a
//! `Response::Error` in `quic::stream`); and `RequestMetrics`, the outcome
//! counters both record into, their handles kept instead of looked up by
//! name and label per request. The fields' rules live beside the domain
//! commands (`PlaceOrder::parse`, `PutSku::parse`, `Restock::parse`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use flashgate_actors::domain::{InvalidField, Order, OrderId};
use flashgate_actors::NodeError;
use flashgate_protocol::code;
use metrics::{Counter, Histogram};

use crate::error_code::node_error_code;

/// Longest piece of a client's value quoted back in an error's detail.
const QUOTED_BYTES_MAX: usize = 64;

/// Every way a request is refused, by either front end. One variant, one
/// code; the HTTP status of each is in `problem`. The variants from
/// `MalformedJson` to `HeadersTooLarge` concern HTTP's framing and occur only
/// there; `TooManyInFlight` occurs only over QUIC.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Node(#[from] NodeError),
    /// A field that breaks its rule; the detail names the field and the rule.
    #[error("{0}")]
    InvalidField(#[from] InvalidField),
    /// A member of a JSON body that the request does not have.
    #[error("{0}: is not a member of this request")]
    UnknownMember(String),
    /// A string that cannot be an order id: no such order.
    #[error("no order {0}: order ids look like 1-0-42")]
    UnknownOrderId(String),
    /// No valid credential where one is needed.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A buyer ordering for another customer.
    #[error("{0}")]
    CustomerMismatch(String),
    /// Too many refused credentials from this address.
    #[error("too many refused credentials from this address: wait {0} s (every call with a credential is refused until then)")]
    TooManyAuthFailures(u64),
    /// A batched read over `orders_read_max` ids; nothing was read.
    #[error("order_ids: {ids} ids, over the limit of {max}; send at most {max} per request")]
    ReadTooLarge { ids: usize, max: usize },
    #[error("{0}")]
    MalformedJson(String),
    #[error("the request body is over the limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body did not arrive within {} of its head; send the body with the request", humantime::format_duration(*.0))]
    BodyTimeout(std::time::Duration),
    #[error("the request body must be JSON: send Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("no such resource: {0}")]
    NotFound(String),
    #[error("{detail}; allowed: {allow}")]
    MethodNotAllowed { detail: String, allow: &'static str },
    /// Set by the server once it stops taking requests.
    #[error("{0}")]
    NotReady(String),
    #[error("too many open connections from this address; close idle connections and retry")]
    TooManyConnections,
    #[error("the request target is over the limit of {0} bytes; shorten the path and query")]
    UriTooLong(usize),
    #[error("the request headers are over the limit of {0} bytes (names and values together); send fewer or shorter headers")]
    HeadersTooLarge(usize),
    /// A QUIC connection with its maximum of requests in flight.
    #[error("this connection has {0} requests in flight, its limit; send more as answers arrive")]
    TooManyInFlight(usize),
    /// Over a rate limit (`rate_limit`): which policy, and when to retry.
    #[error("over the rate limit {}: {} requests, then {} per second; retry in {} s", .0.policy, .0.burst, .0.per_sec, .0.retry_after_secs)]
    RateLimited(crate::rate_limit::Limited),
    /// A waiting room's refusal (`crate::waiting_room`).
    #[error("{0}")]
    WaitingRoom(crate::waiting_room::Refusal),
    /// A backup was asked of a node that is sending one already.
    #[error("this node is sending a backup already ({0} at a time); wait for it to finish")]
    BackupInProgress(usize),
    /// The `Accept` header names no type this resource answers in.
    #[error("{0}")]
    NotAcceptable(String),
    /// The console's live streams are at their cap (`console_streams_max`).
    #[error("this node has {0} console streams open, its limit (console_streams_max); close a console page or retry later")]
    TooManyStreams(usize),
}

impl RequestError {
    /// The machine-readable code of this refusal, the same over both front
    /// ends.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Node(error) => node_error_code(error),
            RequestError::InvalidField(_) | RequestError::UnknownMember(_) => code::INVALID_FIELD,
            RequestError::UnknownOrderId(_) => code::UNKNOWN_ORDER,
            RequestError::Unauthorized(_) => code::UNAUTHORIZED,
            RequestError::Forbidden(_) => code::FORBIDDEN,
            RequestError::CustomerMismatch(_) => code::CUSTOMER_MISMATCH,
            RequestError::TooManyAuthFailures(_) => code::TOO_MANY_AUTH_FAILURES,
            RequestError::ReadTooLarge { .. } => code::BATCH_TOO_LARGE,
            RequestError::MalformedJson(_) => "malformed_json",
            RequestError::BodyTooLarge(_) => "body_too_large",
            RequestError::BodyTimeout(_) => "body_timeout",
            RequestError::UnsupportedMediaType => "unsupported_media_type",
            RequestError::NotFound(_) => "not_found",
            RequestError::MethodNotAllowed { .. } => "method_not_allowed",
            RequestError::NotReady(_) => "not_ready",
            RequestError::TooManyConnections => "too_many_connections",
            RequestError::UriTooLong(_) => "uri_too_long",
            RequestError::HeadersTooLarge(_) => "headers_too_large",
            RequestError::TooManyInFlight(_) => code::TOO_MANY_IN_FLIGHT,
            RequestError::RateLimited(_) => code::RATE_LIMITED,
            RequestError::BackupInProgress(_) => "backup_in_progress",
            RequestError::NotAcceptable(_) => "not_acceptable",
            RequestError::TooManyStreams(_) => "too_many_streams",
            RequestError::WaitingRoom(refusal) => refusal.code(),
        }
    }

    /// The refusal for `raw`, which is not an order id; a long value is cut
    /// short in the detail, so a large request is not echoed back whole.
    pub fn unknown_order_id(raw: &str) -> RequestError {
        RequestError::UnknownOrderId(quoted(raw))
    }
}

/// An order id as a client wrote it; one that cannot be an id is an unknown
/// order (`unknown_order`), over either front end.
pub fn order_id(raw: &str) -> Result<OrderId, RequestError> {
    OrderId::parse(raw).ok_or_else(|| RequestError::unknown_order_id(raw))
}

impl From<crate::auth::Refusal> for RequestError {
    fn from(refusal: crate::auth::Refusal) -> RequestError {
        use crate::auth::Refusal as R;
        match refusal {
            R::Unauthenticated(detail) => RequestError::Unauthorized(detail),
            R::Forbidden(detail) => RequestError::Forbidden(detail),
            R::CustomerMismatch { .. } => RequestError::CustomerMismatch(refusal.to_string()),
        }
    }
}

impl From<crate::auth::Refused> for RequestError {
    fn from(refused: crate::auth::Refused) -> RequestError {
        match refused {
            crate::auth::Refused::Invalid(failure) => RequestError::Unauthorized(failure.0),
            crate::auth::Refused::Throttled { retry_after_secs } => {
                RequestError::TooManyAuthFailures(retry_after_secs)
            }
        }
    }
}

/// A client's value for an error's detail, cut short at `QUOTED_BYTES_MAX`.
fn quoted(raw: &str) -> String {
    if raw.len() <= QUOTED_BYTES_MAX {
        return raw.to_owned();
    }
    let mut end = QUOTED_BYTES_MAX;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &raw[..end], raw.len())
}

/// Every label an outcome counter can carry: the two of an order placed, the
/// one of any other request answered, then every code of `RequestError`
/// (the HTTP API's, and QUIC's own `too_many_in_flight`).
fn outcomes() -> Box<[&'static str]> {
    ["created", "replayed", "ok"]
        .into_iter()
        .chain(crate::problem::PROBLEM_CODES.iter().copied())
        .chain([code::TOO_MANY_IN_FLIGHT])
        .collect()
}

/// The kinds of QUIC request, the label of `flashgate_quic_request_duration_seconds`.
pub const QUIC_REQUEST_KINDS: &[&str] = &[
    "place_order",
    "get_order",
    "confirm",
    "cancel",
    "get_sku",
    "place_orders",
    "put_sku",
    "restock",
    "authenticate",
    "get_orders",
    "ship",
    "change_order",
];

/// The handles of one metric family with one label whose values are known
/// in advance. Each value's handle is registered the first time it is used
/// (so a series appears only once it has happened) and kept: recording is
/// then an atomic operation on the handle, not a look-up by name and label.
struct KeptHandles<T> {
    name: &'static str,
    label: &'static str,
    values: Box<[&'static str]>,
    handles: Box<[OnceLock<T>]>,
    /// How often each listed value was recorded, readable in process (the
    /// alert monitor's view; a `metrics` handle cannot be read back).
    counts: Box<[AtomicU64]>,
    register: fn(&'static str, &'static str, &'static str) -> T,
}

impl<T> KeptHandles<T> {
    fn new(
        name: &'static str,
        label: &'static str,
        values: Box<[&'static str]>,
        register: fn(&'static str, &'static str, &'static str) -> T,
    ) -> KeptHandles<T> {
        KeptHandles {
            name,
            label,
            handles: values.iter().map(|_| OnceLock::new()).collect(),
            counts: values.iter().map(|_| AtomicU64::new(0)).collect(),
            values,
            register,
        }
    }

    /// Runs `record` on the handle of `value`; a value not listed is
    /// registered on the spot, never lost.
    fn record(&self, value: &'static str, record: impl FnOnce(&T)) {
        match self.values.iter().position(|listed| *listed == value) {
            Some(index) => {
                self.counts[index].fetch_add(1, Ordering::Relaxed);
                record(
                    self.handles[index]
                        .get_or_init(|| (self.register)(self.name, self.label, value)),
                )
            }
            None => record(&(self.register)(self.name, self.label, value)),
        }
    }
}

impl<T> KeptHandles<T> {
    /// How often `value` was recorded since start (0 for a value not listed).
    fn count(&self, value: &str) -> u64 {
        self.values
            .iter()
            .position(|listed| *listed == value)
            .map_or(0, |index| self.counts[index].load(Ordering::Relaxed))
    }

    /// The sum of every listed value's count.
    fn total(&self) -> u64 {
        self.counts
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }
}

fn counter(name: &'static str, label: &'static str, value: &'static str) -> Counter {
    metrics::counter!(name, label => value)
}

fn histogram(name: &'static str, label: &'static str, value: &'static str) -> Histogram {
    metrics::histogram!(name, label => value)
}

/// The request metrics both front ends record into; one per server, made
/// after the metrics recorder is installed (a handle taken before it would
/// count nowhere).
pub struct RequestMetrics {
    /// `flashgate_orders_total{outcome}`: every order either front end took,
    /// `created`, `replayed`, or the code it was refused with (whether the
    /// node or the front end refused it).
    orders: KeptHandles<Counter>,
    /// `flashgate_quic_requests_total{outcome}`: every QUIC request (each
    /// order of a batch counts as one), `ok` or the code it was refused with.
    quic_requests: KeptHandles<Counter>,
    /// `flashgate_quic_request_duration_seconds{request}`.
    quic_durations: KeptHandles<Histogram>,
    /// Calls to the admin API (either front end) that sent a credential
    /// and were refused for it (401, 403, 429):
    /// `flashgate_admin_auth_refused_total`, and the `admin_auth_failures`
    /// alert.
    admin_auth_refused: AtomicU64,
    /// Each SKU's order attempts by outcome (the sales report).
    pub ledger: crate::console::OrderLedger,
}

impl Default for RequestMetrics {
    fn default() -> RequestMetrics {
        RequestMetrics::new(crate::console::REPORT_SKUS_MAX_DEFAULT)
    }
}

impl RequestMetrics {
    /// Metrics whose order ledger keeps at most `report_skus_max` SKUs.
    pub fn new(report_skus_max: usize) -> RequestMetrics {
        RequestMetrics {
            ledger: crate::console::OrderLedger::new(report_skus_max, outcomes()),
            orders: KeptHandles::new("flashgate_orders_total", "outcome", outcomes(), counter),
            quic_requests: KeptHandles::new(
                "flashgate_quic_requests_total",
                "outcome",
                outcomes(),
                counter,
            ),
            quic_durations: KeptHandles::new(
                "flashgate_quic_request_duration_seconds",
                "request",
                QUIC_REQUEST_KINDS.into(),
                histogram,
            ),
            admin_auth_refused: AtomicU64::new(0),
        }
    }
}

impl RequestMetrics {
    /// Counts the outcome of one order, whichever front end took it: the one
    /// place an order's outcome is counted.
    /// `sku` is the SKU the order named, when it could be read; the
    /// attempt is also counted for it in `ledger`.
    pub fn order_outcome(&self, sku: Option<&str>, result: &Result<(Order, bool), RequestError>) {
        let outcome = match result {
            Ok((_, true)) => "created",
            Ok((_, false)) => "replayed",
            Err(error) => error.code(),
        };
        self.orders.record(outcome, |counter| counter.increment(1));
        let sku = match result {
            Ok((order, _)) => Some(order.sku.as_str()),
            Err(_) => sku,
        };
        if let Some(sku) = sku {
            self.ledger.record(sku, outcome, crate::console::now_ms);
        }
    }

    /// Orders taken since start with `outcome` (`created`, `replayed`, or a
    /// refusal's code), from either front end.
    pub fn orders_with_outcome(&self, outcome: &str) -> u64 {
        self.orders.count(outcome)
    }

    /// Every outcome orders were taken with since start, and how many.
    pub fn order_outcomes(&self) -> Vec<(&'static str, u64)> {
        self.orders
            .values
            .iter()
            .zip(self.orders.counts.iter())
            .map(|(outcome, count)| (*outcome, count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }

    /// Orders taken since start, whatever their outcome.
    pub fn orders_taken(&self) -> u64 {
        self.orders.total()
    }

    /// Counts a call to the admin API refused for its credential.
    pub fn admin_auth_refused(&self) {
        self.admin_auth_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Admin calls refused for their credential since start.
    pub fn admin_auth_refusals(&self) -> u64 {
        self.admin_auth_refused.load(Ordering::Relaxed)
    }

    /// Counts one QUIC request's answer: `ok`, or the code of its refusal.
    pub fn quic_request(&self, outcome: Result<(), &RequestError>) {
        let outcome = match outcome {
            Ok(()) => "ok",
            Err(error) => error.code(),
        };
        self.quic_requests
            .record(outcome, |counter| counter.increment(1));
    }

    /// Records how long a QUIC request of `kind` (one of
    /// `QUIC_REQUEST_KINDS`) took, from its frame to its answer.
    pub fn quic_duration(&self, kind: &'static str, elapsed: std::time::Duration) {
        self.quic_durations
            .record(kind, |histogram| histogram.record(elapsed.as_secs_f64()));
    }
}

#[cfg(test)]
pub(crate) fn one_of_each() -> Vec<RequestError> {
    let mut refusals = vec![
        RequestError::Node(NodeError::ShuttingDown),
        RequestError::InvalidField(InvalidField::new("quantity", "must be 1")),
        RequestError::UnknownMember("colour".into()),
        RequestError::UnknownOrderId(String::new()),
        RequestError::Unauthorized(String::new()),
        RequestError::Forbidden(String::new()),
        RequestError::CustomerMismatch(String::new()),
        RequestError::TooManyAuthFailures(1),
        RequestError::ReadTooLarge { ids: 2, max: 1 },
        RequestError::MalformedJson(String::new()),
        RequestError::BodyTooLarge(1),
        RequestError::BodyTimeout(std::time::Duration::from_secs(1)),
        RequestError::UnsupportedMediaType,
        RequestError::NotFound(String::new()),
        RequestError::MethodNotAllowed {
            detail: String::new(),
            allow: "GET",
        },
        RequestError::NotReady(String::new()),
        RequestError::TooManyConnections,
        RequestError::UriTooLong(1),
        RequestError::HeadersTooLarge(1),
        RequestError::TooManyInFlight(1),
        RequestError::RateLimited(crate::rate_limit::Limited {
            policy: "orders-per-address",
            burst: 1,
            per_sec: 1,
            retry_after_secs: 1,
        }),
        RequestError::BackupInProgress(1),
        RequestError::NotAcceptable(String::new()),
        RequestError::TooManyStreams(1),
    ];
    refusals.extend(
        crate::waiting_room::Refusal::one_of_each()
            .into_iter()
            .map(RequestError::WaitingRoom),
    );
    for refusal in &refusals {
        match refusal {
            RequestError::Node(_)
            | RequestError::InvalidField(_)
            | RequestError::UnknownMember(_)
            | RequestError::UnknownOrderId(_)
            | RequestError::Unauthorized(_)
            | RequestError::Forbidden(_)
            | RequestError::CustomerMismatch(_)
            | RequestError::TooManyAuthFailures(_)
            | RequestError::ReadTooLarge { .. }
            | RequestError::MalformedJson(_)
            | RequestError::BodyTooLarge(_)
            | RequestError::BodyTimeout(_)
            | RequestError::UnsupportedMediaType
            | RequestError::NotFound(_)
            | RequestError::MethodNotAllowed { .. }
            | RequestError::NotReady(_)
            | RequestError::TooManyConnections
            | RequestError::UriTooLong(_)
            | RequestError::HeadersTooLarge(_)
            | RequestError::TooManyInFlight(_)
            | RequestError::RateLimited(_)
            | RequestError::BackupInProgress(_)
            | RequestError::NotAcceptable(_)
            | RequestError::TooManyStreams(_)
            | RequestError::WaitingRoom(_) => {}
        }
    }
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate_actors::domain::{CoreError, SkuId};

    /// Every code a refusal can carry has its kept counter: a code missing
    /// from `outcomes()` would be looked up per request again.
    #[test]
    fn every_code_has_a_kept_counter() {
        let outcomes = outcomes();
        for refusal in &one_of_each() {
            assert!(outcomes.contains(&refusal.code()), "{}", refusal.code());
        }
        for node_error in [
            NodeError::Rejected(CoreError::SoldOut(SkuId::parse("A").unwrap())),
            NodeError::Overloaded { shard: 0, depth: 1 },
            NodeError::StandbyUnavailable,
            NodeError::NotPrimary { primary: None },
        ] {
            let code = RequestError::from(node_error).code();
            assert!(outcomes.contains(&code), "{code}");
        }
    }

    /// A field's refusal keeps the domain's words: the field, then the rule.
    #[test]
    fn an_invalid_field_names_its_field_and_rule() {
        let refusal = RequestError::from(InvalidField::new("quantity", "must be between 1 and 5"));
        assert_eq!(refusal.code(), code::INVALID_FIELD);
        assert_eq!(refusal.to_string(), "quantity: must be between 1 and 5");
        let unknown = RequestError::UnknownMember("colour".into());
        assert_eq!(unknown.code(), code::INVALID_FIELD);
        assert_eq!(
            unknown.to_string(),
            "colour: is not a member of this request"
        );
    }

    /// A value that is no order id is quoted back cut short.
    #[test]
    fn an_unknown_order_id_is_quoted_short() {
        assert!(order_id("1-0-42").is_ok());
        let refusal = order_id(&"9".repeat(1000)).unwrap_err();
        assert_eq!(refusal.code(), code::UNKNOWN_ORDER);
        assert!(refusal.to_string().len() < 200, "{refusal}");
        assert_eq!(
            RequestError::unknown_order_id("x").to_string(),
            "no order x: order ids look like 1-0-42"
        );
    }
}
