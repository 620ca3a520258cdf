//! `ApiError`: every error the HTTP API answers, as RFC 9457 problem details
//! (`application/problem+json`) with a `code` member. One variant, one status,
//! one code.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use flashgate_actors::domain::CoreError;
use flashgate_actors::NodeError;
use flashgate_protocol::code;
use serde::Serialize;

use crate::error_code::node_error_code;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Node(#[from] NodeError),
    #[error("{0}")]
    MalformedJson(String),
    #[error("{0}")]
    InvalidField(String),
    #[error("the request body is over the limit of {0} bytes")]
    BodyTooLarge(usize),
    #[error("the request body did not arrive within {} of its head; send the body with the request", humantime::format_duration(*.0))]
    BodyTimeout(std::time::Duration),
    #[error("the request body must be JSON: send Content-Type: application/json")]
    UnsupportedMediaType,
    /// No valid credential where one is needed (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// A buyer ordering for another customer (403).
    #[error("{0}")]
    CustomerMismatch(String),
    /// Too many refused credentials from this address (429).
    #[error("too many refused credentials from this address: wait {0} s (every call with a credential is refused until then)")]
    TooManyAuthFailures(u64),
    #[error("no order {0}: order ids look like 1-0-42")]
    UnknownOrderId(String),
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
    /// A batched read over `orders_read_max` ids (422); nothing was read.
    #[error("order_ids: {ids} ids, over the limit of {max}; send at most {max} per request")]
    ReadTooLarge { ids: usize, max: usize },
}

/// An error answer (RFC 9457 problem details, `application/problem+json`):
/// `code` says what went wrong for programs, `detail` for people.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem<'a> {
    /// `urn:flashgate:problem:<code>`.
    #[serde(rename = "type")]
    #[schema(examples("urn:flashgate:problem:sold_out"))]
    kind: String,
    /// The status's reason phrase.
    title: &'a str,
    /// The HTTP status, repeated.
    #[schema(minimum = 400, maximum = 599)]
    status: u16,
    /// What was wrong and what to do, in words.
    detail: String,
    #[schema(value_type = ProblemCode)]
    code: &'a str,
    /// With `not_primary`: the current primary's HTTP base URL, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    primary: Option<&'a str>,
    /// With `not_primary`: the current primary's QUIC address, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    primary_quic: Option<&'a str>,
}

impl From<crate::auth::Refusal> for ApiError {
    fn from(refusal: crate::auth::Refusal) -> ApiError {
        use crate::auth::Refusal as R;
        match refusal {
            R::Unauthenticated(detail) => ApiError::Unauthorized(detail),
            R::Forbidden(detail) => ApiError::Forbidden(detail),
            R::CustomerMismatch { .. } => ApiError::CustomerMismatch(refusal.to_string()),
        }
    }
}

impl From<crate::auth::Refused> for ApiError {
    fn from(refused: crate::auth::Refused) -> ApiError {
        match refused {
            crate::auth::Refused::Invalid(failure) => ApiError::Unauthorized(failure.0),
            crate::auth::Refused::Throttled { retry_after_secs } => {
                ApiError::TooManyAuthFailures(retry_after_secs)
            }
        }
    }
}

/// Every `code` a problem answer of the HTTP API can carry.
pub const PROBLEM_CODES: &[&str] = &[
    code::SOLD_OUT,
    code::INSUFFICIENT_STOCK,
    code::LIMIT_EXCEEDED,
    code::SALE_NOT_OPEN,
    code::UNKNOWN_SKU,
    code::UNKNOWN_ORDER,
    code::INVALID_TRANSITION,
    code::INVALID_FIELD,
    code::IDEMPOTENCY_KEY_REUSED,
    code::CAPACITY_REACHED,
    code::OVERLOADED,
    code::STORAGE_FAILED,
    code::SHUTTING_DOWN,
    code::NOT_PRIMARY,
    code::STANDBY_UNAVAILABLE,
    crate::error_code::NOT_STANDBY,
    crate::error_code::HANDOVER_FAILED,
    code::UNAUTHORIZED,
    code::FORBIDDEN,
    code::CUSTOMER_MISMATCH,
    code::TOO_MANY_AUTH_FAILURES,
    "too_many_connections",
    "uri_too_long",
    "headers_too_large",
    "malformed_json",
    "body_too_large",
    "body_timeout",
    "unsupported_media_type",
    "not_found",
    "method_not_allowed",
    "not_ready",
    code::BATCH_TOO_LARGE,
];

/// The schema of a problem's `code`: one of `PROBLEM_CODES`.
pub struct ProblemCode;

impl utoipa::PartialSchema for ProblemCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .enum_values(Some(PROBLEM_CODES.iter().copied()))
            .description(Some(
                "What went wrong, for programs; the same codes as the QUIC front end's errors",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ProblemCode {}

impl ApiError {
    /// The status and machine-readable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::Node(error) => (node_error_status(error), node_error_code(error)),
            ApiError::MalformedJson(_) => (S::BAD_REQUEST, "malformed_json"),
            ApiError::InvalidField(_) => (S::UNPROCESSABLE_ENTITY, code::INVALID_FIELD),
            ApiError::BodyTooLarge(_) => (S::PAYLOAD_TOO_LARGE, "body_too_large"),
            ApiError::BodyTimeout(_) => (S::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::UnsupportedMediaType => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            ApiError::Unauthorized(_) => (S::UNAUTHORIZED, code::UNAUTHORIZED),
            ApiError::Forbidden(_) => (S::FORBIDDEN, code::FORBIDDEN),
            ApiError::CustomerMismatch(_) => (S::FORBIDDEN, code::CUSTOMER_MISMATCH),
            ApiError::TooManyAuthFailures(_) => {
                (S::TOO_MANY_REQUESTS, code::TOO_MANY_AUTH_FAILURES)
            }
            ApiError::UnknownOrderId(_) => (S::NOT_FOUND, code::UNKNOWN_ORDER),
            ApiError::NotFound(_) => (S::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::NotReady(_) => (S::SERVICE_UNAVAILABLE, "not_ready"),
            ApiError::TooManyConnections => (S::TOO_MANY_REQUESTS, "too_many_connections"),
            ApiError::UriTooLong(_) => (S::URI_TOO_LONG, "uri_too_long"),
            ApiError::HeadersTooLarge(_) => {
                (S::REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large")
            }
            ApiError::ReadTooLarge { .. } => (S::UNPROCESSABLE_ENTITY, code::BATCH_TOO_LARGE),
        }
    }

    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

/// The HTTP status of a node error. Its code comes from `node_error_code`, which
/// the QUIC front end shares.
fn node_error_status(error: &NodeError) -> StatusCode {
    use StatusCode as S;
    match error {
        NodeError::Rejected(rejected) => match rejected {
            CoreError::SoldOut(_)
            | CoreError::InsufficientStock { .. }
            | CoreError::LimitExceeded { .. }
            | CoreError::SaleNotOpen { .. }
            | CoreError::InvalidTransition { .. } => S::CONFLICT,
            CoreError::UnknownSku(_) | CoreError::UnknownOrder(_) => S::NOT_FOUND,
            CoreError::InvalidField(_) | CoreError::IdempotencyKeyReused => S::UNPROCESSABLE_ENTITY,
            CoreError::OrderCapacityReached(_) => S::SERVICE_UNAVAILABLE,
        },
        NodeError::Overloaded { .. }
        | NodeError::StorageFailed(_)
        | NodeError::ShuttingDown
        | NodeError::NotPrimary { .. }
        | NodeError::StandbyUnavailable => S::SERVICE_UNAVAILABLE,
        NodeError::NotStandby(_) | NodeError::Handover(_) => S::CONFLICT,
    }
}

/// Seconds a client should wait before retrying an overloaded shard.
pub static RETRY_AFTER_SECS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = self.status_and_code();
        let problem = Problem {
            kind: format!("urn:flashgate:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: self.to_string(),
            code,
            primary: None,
            primary_quic: None,
        };
        let mut problem = problem;
        if let ApiError::Node(NodeError::NotPrimary {
            primary: Some(primary),
        }) = self
        {
            problem.primary = Some(primary.http.as_str());
            problem.primary_quic = primary.quic.as_deref();
        }
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            ApiError::Node(NodeError::Overloaded { .. } | NodeError::StandbyUnavailable) => {
                let secs = RETRY_AFTER_SECS.load(std::sync::atomic::Ordering::Relaxed);
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            ApiError::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            ApiError::TooManyAuthFailures(secs) => {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, *allow));
            }
            ApiError::BodyTimeout(_) => {
                // The rest of the body may still trickle in: this connection
                // is not read again.
                response.force_close();
            }
            _ => {}
        }
        response.body(serde_json::to_string(&problem).expect("problems serialise"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code an `ApiError` outside the node's own refusals can carry is
    /// published in the contract's `ProblemCode` enum. The match has no
    /// wildcard: a new variant does not compile until it is listed here.
    #[test]
    fn every_code_is_published() {
        let errors = [
            ApiError::MalformedJson(String::new()),
            ApiError::InvalidField(String::new()),
            ApiError::BodyTooLarge(1),
            ApiError::BodyTimeout(std::time::Duration::from_secs(1)),
            ApiError::UnsupportedMediaType,
            ApiError::Unauthorized(String::new()),
            ApiError::Forbidden(String::new()),
            ApiError::CustomerMismatch(String::new()),
            ApiError::TooManyAuthFailures(1),
            ApiError::TooManyConnections,
            ApiError::UriTooLong(1),
            ApiError::HeadersTooLarge(1),
            ApiError::UnknownOrderId(String::new()),
            ApiError::NotFound(String::new()),
            ApiError::MethodNotAllowed {
                detail: String::new(),
                allow: "GET",
            },
            ApiError::NotReady(String::new()),
            ApiError::ReadTooLarge { ids: 2, max: 1 },
            ApiError::Node(NodeError::ShuttingDown),
            ApiError::Node(NodeError::StandbyUnavailable),
        ];
        for error in &errors {
            match error {
                ApiError::Node(_)
                | ApiError::MalformedJson(_)
                | ApiError::InvalidField(_)
                | ApiError::BodyTooLarge(_)
                | ApiError::BodyTimeout(_)
                | ApiError::UnsupportedMediaType
                | ApiError::Unauthorized(_)
                | ApiError::Forbidden(_)
                | ApiError::CustomerMismatch(_)
                | ApiError::TooManyAuthFailures(_)
                | ApiError::TooManyConnections
                | ApiError::UriTooLong(_)
                | ApiError::HeadersTooLarge(_)
                | ApiError::UnknownOrderId(_)
                | ApiError::NotFound(_)
                | ApiError::MethodNotAllowed { .. }
                | ApiError::NotReady(_)
                | ApiError::ReadTooLarge { .. } => {}
            }
            assert!(
                PROBLEM_CODES.contains(&error.code()),
                "{} is missing from PROBLEM_CODES",
                error.code()
            );
        }
    }
}
