//! `ClientError`: every way a call on either client can fail, the same over
//! QUIC and HTTP, so code written against `OrderGateway` handles one enum.

use std::time::Duration;

use flashgate_protocol::code;

/// Why a call failed. The variant says what the caller knows about the
/// request's outcome (`may_have_been_applied` sums it up):
/// - `Server`: the server answered and refused it; nothing was applied, except
///   for `standby_unavailable`, where it may or may not have been.
/// - `Transport`: no answer arrived. Unless it is `TransportError::Connect`
///   (nothing was sent), the request may or may not have been applied: retry
///   an order with the same idempotency key to be safe. This holds for the
///   whole call: when failover sent it to several nodes and one of them may
///   have applied it, the call returns that attempt's `Transport` error.
/// - `Protocol`: an answer arrived that this client cannot read.
/// - `Config`: the client was set up or called in a way that cannot work; no
///   request was sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server's refusal, with its machine-readable `code` (one of
    /// `flashgate_protocol::code`, the same string over QUIC and HTTP, e.g.
    /// `"sold_out"`) and a human-readable `detail`.
    ///
    /// The frame-level codes (`malformed_frame`, `truncated_frame`,
    /// `frame_too_large`, `unsupported_version`, `batch_too_large`) mean the
    /// server refused a frame on a QUIC stream and read no further: it answers
    /// the requests it read before, and every request it did not read (the
    /// refused one and any sent behind it) fails with that code, unapplied.
    /// The HTTP client gives `invalid_field` itself for a value HTTP cannot
    /// carry (a time after the year 9999, an idempotency key with control
    /// characters), as the server would.
    ///
    /// `not_primary` comes back only when failover found no node that takes
    /// the request within its wait (see `FailoverConfig`); nothing was done.
    /// `standby_unavailable` means a primary in sync replication could not
    /// reach its standby: the request may or may not have been applied; an
    /// order retried under the same idempotency key gets the order if it was
    /// made.
    #[error("the server refused the request ({code}): {detail}")]
    Server { code: String, detail: String },
    /// No answer: the connection failed or the request timed out. Unless the
    /// `TransportError` is `Connect` (nothing was sent), the request may or may
    /// not have been applied.
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The server's answer was not a valid answer to the request.
    #[error("the server's answer cannot be read: {0}")]
    Protocol(String),
    /// The client's configuration, or a call it does not allow (an admin call
    /// without an admin token). Nothing was sent.
    #[error("client configuration: {0}")]
    Config(String),
}

/// Why no answer arrived.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The request was not sent: no server address could be connected to
    /// (unreachable, refused, or its certificate is not the trusted one), no
    /// stream could be opened on the connection, or no in-flight slot or
    /// connection came within the request timeout.
    #[error("cannot connect to the server (the request was not sent): {0}")]
    Connect(String),
    /// The connection or stream failed while the request was in flight.
    #[error("the connection to the server was lost: {0}; {UNKNOWN_OUTCOME}")]
    ConnectionLost(String),
    /// No answer within the request timeout.
    #[error("no answer within {}; {UNKNOWN_OUTCOME}", humantime::format_duration(*after))]
    Timeout { after: Duration },
    /// The HTTP request failed below HTTP (reset, body read), or an
    /// intermediary answered in its place (a 408/502/503/504 without a problem
    /// body).
    #[error("HTTP request failed: {0}; {UNKNOWN_OUTCOME}")]
    Http(String),
}

const UNKNOWN_OUTCOME: &str =
    "the request may or may not have been applied: retry it (orders with the same idempotency key)";

impl ClientError {
    /// The server's error code, for `Server` errors only.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether sending the same request again later may succeed: transport
    /// failures (use the same idempotency key for orders), the server's
    /// load-shedding codes (`overloaded`, `too_many_in_flight`,
    /// `shutting_down`, `not_ready`) and the replication codes (`not_primary`:
    /// no primary was found in time; `standby_unavailable`: use the same
    /// idempotency key). Refusals about the request itself (`sold_out`,
    /// `invalid_field`, ...) are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport(_) => true,
            ClientError::Server { code, .. } => matches!(
                code.as_str(),
                code::OVERLOADED
                    | code::TOO_MANY_IN_FLIGHT
                    | code::SHUTTING_DOWN
                    | "not_ready"
                    | code::NOT_PRIMARY
                    | code::STANDBY_UNAVAILABLE
            ),
            ClientError::Protocol(_) | ClientError::Config(_) => false,
        }
    }

    /// Whether the server may have applied the request although the call
    /// failed: a `Transport` error other than `Connect` (sent, no answer), or
    /// the server's `standby_unavailable`. False means nothing was applied.
    pub fn may_have_been_applied(&self) -> bool {
        match self {
            ClientError::Transport(TransportError::Connect(_)) => false,
            ClientError::Transport(_) => true,
            ClientError::Server { code, .. } => code == code::STANDBY_UNAVAILABLE,
            ClientError::Protocol(_) | ClientError::Config(_) => false,
        }
    }

    pub(crate) fn server(code: impl Into<String>, detail: impl Into<String>) -> ClientError {
        ClientError::Server {
            code: code.into(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_means_transport_or_load_shedding() {
        assert!(ClientError::from(TransportError::Timeout {
            after: Duration::from_secs(10)
        })
        .is_retryable());
        assert!(ClientError::server(code::OVERLOADED, "shard 3 is busy").is_retryable());
        assert!(ClientError::server(code::TOO_MANY_IN_FLIGHT, "wait").is_retryable());
        assert!(!ClientError::server(code::SOLD_OUT, "gone").is_retryable());
        assert!(!ClientError::Protocol("bad".into()).is_retryable());
        assert!(!ClientError::Config("no token".into()).is_retryable());
    }

    #[test]
    fn replication_refusals_are_retryable() {
        assert!(ClientError::server(code::NOT_PRIMARY, "standby").is_retryable());
        assert!(ClientError::server(code::STANDBY_UNAVAILABLE, "gone").is_retryable());
    }

    #[test]
    fn only_sent_unanswered_requests_and_standby_unavailable_may_have_been_applied() {
        let sent = [
            ClientError::from(TransportError::ConnectionLost("reset".into())),
            ClientError::from(TransportError::Timeout {
                after: Duration::from_secs(1),
            }),
            ClientError::from(TransportError::Http("502".into())),
            ClientError::server(code::STANDBY_UNAVAILABLE, "no standby"),
        ];
        for error in sent {
            assert!(error.may_have_been_applied(), "{error}");
        }
        let unsent = [
            ClientError::from(TransportError::Connect("refused".into())),
            ClientError::server(code::NOT_PRIMARY, "standby"),
            ClientError::server(code::SOLD_OUT, "gone"),
            ClientError::Protocol("bad".into()),
            ClientError::Config("no token".into()),
        ];
        for error in unsent {
            assert!(!error.may_have_been_applied(), "{error}");
        }
    }

    #[test]
    fn code_is_the_servers_only() {
        assert_eq!(
            ClientError::server(code::SOLD_OUT, "gone").code(),
            Some("sold_out")
        );
        assert_eq!(ClientError::Protocol("bad".into()).code(), None);
    }

    #[test]
    fn transport_errors_tell_the_caller_to_retry() {
        let message = ClientError::from(TransportError::Timeout {
            after: Duration::from_millis(1500),
        })
        .to_string();
        assert!(message.contains("1s 500ms"), "{message}");
        assert!(message.contains("idempotency key"), "{message}");
    }
}
