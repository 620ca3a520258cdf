//! The HTTP face of `RequestError`: its status, and its body as RFC 9457
//! problem details (`application/problem+json`) with the `code` both front
//! ends answer. One variant, one status, one code.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use flashgate_actors::domain::CoreError;
use flashgate_actors::NodeError;
use flashgate_protocol::code;
use serde::Serialize;

use crate::request::RequestError;

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
    code::RATE_LIMITED,
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
    "backup_in_progress",
    "not_acceptable",
    "too_many_streams",
    code::QUEUE_TICKET_REQUIRED,
    code::QUEUE_TICKET_INVALID,
    code::NOT_ADMITTED_YET,
    code::QUEUE_TICKET_EXPIRED,
    code::QUEUE_TICKET_USED,
    code::QUEUE_FULL,
    code::NO_WAITING_ROOM,
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

/// The HTTP status of a refusal. Its code is `RequestError::code`, which the
/// QUIC front end answers too.
pub fn status(error: &RequestError) -> StatusCode {
    use StatusCode as S;
    match error {
        RequestError::Node(error) => node_error_status(error),
        RequestError::MalformedJson(_) => S::BAD_REQUEST,
        RequestError::InvalidField(_) | RequestError::UnknownMember(_) => S::UNPROCESSABLE_ENTITY,
        RequestError::BodyTooLarge(_) => S::PAYLOAD_TOO_LARGE,
        RequestError::BodyTimeout(_) => S::REQUEST_TIMEOUT,
        RequestError::UnsupportedMediaType => S::UNSUPPORTED_MEDIA_TYPE,
        RequestError::Unauthorized(_) => S::UNAUTHORIZED,
        RequestError::Forbidden(_) | RequestError::CustomerMismatch(_) => S::FORBIDDEN,
        RequestError::TooManyAuthFailures(_) => S::TOO_MANY_REQUESTS,
        RequestError::UnknownOrderId(_) | RequestError::NotFound(_) => S::NOT_FOUND,
        RequestError::MethodNotAllowed { .. } => S::METHOD_NOT_ALLOWED,
        RequestError::NotReady(_) => S::SERVICE_UNAVAILABLE,
        RequestError::TooManyConnections => S::TOO_MANY_REQUESTS,
        RequestError::RateLimited(_) => S::TOO_MANY_REQUESTS,
        RequestError::UriTooLong(_) => S::URI_TOO_LONG,
        RequestError::HeadersTooLarge(_) => S::REQUEST_HEADER_FIELDS_TOO_LARGE,
        RequestError::ReadTooLarge { .. } => S::UNPROCESSABLE_ENTITY,
        // QUIC's limit; HTTP bounds connections and heads instead.
        RequestError::TooManyInFlight(_) => S::TOO_MANY_REQUESTS,
        RequestError::BackupInProgress(_) => S::CONFLICT,
        RequestError::NotAcceptable(_) => S::NOT_ACCEPTABLE,
        RequestError::TooManyStreams(_) => S::SERVICE_UNAVAILABLE,
        RequestError::WaitingRoom(refusal) => waiting_room_status(refusal),
    }
}

/// The HTTP status of a waiting room's refusal.
fn waiting_room_status(refusal: &crate::waiting_room::Refusal) -> StatusCode {
    use crate::waiting_room::Refusal as R;
    use StatusCode as S;
    match refusal {
        R::TicketRequired(_) | R::TicketInvalid(_) => S::FORBIDDEN,
        R::NotAdmittedYet(_) | R::TicketUsed => S::CONFLICT,
        R::TicketExpired(_) => S::GONE,
        R::NoWaitingRoom(_) => S::NOT_FOUND,
        R::QueueFull { .. } | R::SpentFull | R::NotSaved(_) => S::SERVICE_UNAVAILABLE,
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
            | CoreError::InvalidTransition { .. }
            | CoreError::TooManyChanges { .. }
            | CoreError::ChangeAcrossShards { .. }
            | CoreError::OrderBusy(_) => S::CONFLICT,
            CoreError::UnknownSku(_) | CoreError::UnknownOrder(_) | CoreError::Moved { .. } => {
                S::NOT_FOUND
            }
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

impl ResponseError for RequestError {
    fn status_code(&self) -> StatusCode {
        status(self)
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code) = (status(self), self.code());
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
        if let RequestError::Node(NodeError::NotPrimary {
            primary: Some(primary),
        }) = self
        {
            problem.primary = Some(primary.http.as_str());
            problem.primary_quic = primary.quic.as_deref();
        }
        let mut response = HttpResponse::build(status);
        response.content_type("application/problem+json");
        match self {
            RequestError::Node(NodeError::Overloaded { .. } | NodeError::StandbyUnavailable) => {
                let secs = RETRY_AFTER_SECS.load(std::sync::atomic::Ordering::Relaxed);
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            RequestError::Unauthorized(_) => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            RequestError::TooManyStreams(_) => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            RequestError::WaitingRoom(
                crate::waiting_room::Refusal::QueueFull { .. }
                | crate::waiting_room::Refusal::SpentFull,
            ) => {
                let secs = RETRY_AFTER_SECS.load(std::sync::atomic::Ordering::Relaxed);
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            RequestError::TooManyAuthFailures(secs) => {
                response.insert_header((header::RETRY_AFTER, secs.to_string()));
            }
            RequestError::RateLimited(limited) => {
                response.insert_header((header::RETRY_AFTER, limited.retry_after_secs.to_string()));
                for (name, value) in limited.headers() {
                    response.insert_header((name, value));
                }
            }
            RequestError::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, *allow));
            }
            RequestError::BodyTimeout(_) => {
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

    /// Every code an HTTP answer can carry is published in the contract's
    /// `ProblemCode` enum (`too_many_in_flight` is QUIC's alone).
    #[test]
    fn every_code_is_published() {
        for error in crate::request::one_of_each() {
            if matches!(error, RequestError::TooManyInFlight(_)) {
                continue;
            }
            assert!(
                PROBLEM_CODES.contains(&error.code()),
                "{} is missing from PROBLEM_CODES",
                error.code()
            );
        }
        for error in [NodeError::ShuttingDown, NodeError::StandbyUnavailable] {
            assert!(PROBLEM_CODES.contains(&RequestError::from(error).code()));
        }
    }
}
