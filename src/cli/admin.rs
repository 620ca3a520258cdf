//! `AdminClient`: the blocking HTTP calls the operator commands and the demo
//! make to a node, and `CallError`, which says which request failed and what to
//! do about it. `decode` turns an answer into a value or a `CallError`; it is
//! pure, so every way an answer can be wrong is unit-tested.

use std::io::Read;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::cli::cluster::{ClusterStatus, HandedOver, Promoted, Resumed, SwitchoverCheck};
use crate::cli::hint;
use crate::cli::node_url::NodeUrl;

/// The longest a TCP connect to a node may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one request may take unless the caller gives less. A handover
/// waits on the node for its standby to catch up, so this is generous.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Answers longer than this are cut: every answer these calls read is small.
pub const RESPONSE_BYTES_MAX: u64 = 1 << 20;
/// How much of an unexpected body an error message quotes.
const QUOTED_BODY_CHARS_MAX: usize = 200;

/// An HTTP answer of any status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The members of an `application/problem+json` answer the commands use.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Problem {
    pub code: String,
    #[serde(default)]
    pub detail: String,
}

/// Why a call did not give the expected answer. `request` reads like
/// `POST http://10.0.0.2:8080/v1/admin/promote`.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{request}: no answer ({reason}); check that the node runs and that its HTTP address is right")]
    Unreachable { request: String, reason: String },
    #[error("{request}: refused with {status} {}: {}{}", problem.code, problem.detail, hint_suffix(&problem.code))]
    Refused {
        request: String,
        status: u16,
        problem: Problem,
    },
    #[error("{request}: answered {status} with {reason}; is it a flashgate node of this version?")]
    Unexpected {
        request: String,
        status: u16,
        reason: String,
    },
}

fn hint_suffix(code: &str) -> String {
    hint(code).map_or_else(String::new, |hint| format!(" (hint: {hint})"))
}

/// Reads a 2xx answer as `T`, and any other as the server's problem.
pub fn decode<T: DeserializeOwned>(request: &str, answer: &Answer) -> Result<T, CallError> {
    let unexpected = |reason: String| CallError::Unexpected {
        request: request.to_owned(),
        status: answer.status,
        reason,
    };
    if answer.is_success() {
        return serde_json::from_str(&answer.body).map_err(|error| {
            unexpected(format!(
                "a body that is not the documented answer ({error}): {}",
                quote(&answer.body)
            ))
        });
    }
    match serde_json::from_str::<Problem>(&answer.body) {
        Ok(problem) => Err(CallError::Refused {
            request: request.to_owned(),
            status: answer.status,
            problem,
        }),
        Err(_) => Err(unexpected(format!(
            "a body that is not a problem document: {}",
            quote(&answer.body)
        ))),
    }
}

fn quote(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return "(empty)".to_owned();
    }
    let mut quoted: String = body.chars().take(QUOTED_BODY_CHARS_MAX).collect();
    if quoted.len() < body.len() {
        quoted.push('…');
    }
    format!("{quoted:?}")
}

/// Blocking HTTP calls to nodes, with the admin token when one is given.
pub struct AdminClient {
    agent: ureq::Agent,
    token: Option<String>,
}

/// What a request sends.
pub enum Body<'a> {
    Empty,
    Json(&'a serde_json::Value),
}

impl AdminClient {
    /// A client; `token` is sent as `Authorization: Bearer` with admin calls.
    pub fn new(token: Option<String>) -> AdminClient {
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .try_proxy_from_env(false)
            .build();
        AdminClient { agent, token }
    }

    /// `GET /v1/cluster`.
    pub fn cluster(&self, node: &NodeUrl, timeout: Duration) -> Result<ClusterStatus, CallError> {
        self.call("GET", node, "/v1/cluster", Body::Empty, true, timeout)
    }

    /// `POST /v1/admin/promote`: returns once the node answered that it is the
    /// primary at the new epoch.
    pub fn promote(&self, node: &NodeUrl, timeout: Duration) -> Result<Promoted, CallError> {
        let empty = serde_json::json!({});
        self.call(
            "POST",
            node,
            "/v1/admin/promote",
            Body::Json(&empty),
            true,
            timeout,
        )
    }

    /// `POST /v1/admin/handover`: returns once the primary stopped taking
    /// orders and its standby acknowledged everything it logged.
    pub fn handover(&self, node: &NodeUrl, timeout: Duration) -> Result<HandedOver, CallError> {
        let empty = serde_json::json!({});
        self.call(
            "POST",
            node,
            "/v1/admin/handover",
            Body::Json(&empty),
            true,
            timeout,
        )
    }

    /// `POST /v1/admin/resume`: undoes a handover; the primary takes orders.
    pub fn resume(&self, node: &NodeUrl, timeout: Duration) -> Result<Resumed, CallError> {
        let empty = serde_json::json!({});
        self.call(
            "POST",
            node,
            "/v1/admin/resume",
            Body::Json(&empty),
            true,
            timeout,
        )
    }

    /// `GET /v1/admin/switchover-check`: whether the node could hand over or
    /// be promoted now, checked with this client's token; changes nothing.
    pub fn switchover_check(
        &self,
        node: &NodeUrl,
        timeout: Duration,
    ) -> Result<SwitchoverCheck, CallError> {
        self.call(
            "GET",
            node,
            "/v1/admin/switchover-check",
            Body::Empty,
            true,
            timeout,
        )
    }

    /// Sends a request and decodes a 2xx answer as `T`.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        node: &NodeUrl,
        path: &str,
        body: Body<'_>,
        admin: bool,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let answer = self.send(method, node, path, body, &[], admin, timeout)?;
        decode(&request_name(method, node, path), &answer)
    }

    /// Sends a request and returns the answer of any status; `Err` only when
    /// no answer came back.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &self,
        method: &str,
        node: &NodeUrl,
        path: &str,
        body: Body<'_>,
        headers: &[(&str, &str)],
        admin: bool,
        timeout: Duration,
    ) -> Result<Answer, CallError> {
        let url = node.join(path);
        let unreachable = |reason: String| CallError::Unreachable {
            request: request_name(method, node, path),
            reason,
        };
        let mut request = self
            .agent
            .request(method, &url)
            .timeout(timeout)
            .set("Accept", "application/json, application/problem+json");
        for (name, value) in headers {
            request = request.set(name, value);
        }
        if admin {
            if let Some(token) = &self.token {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
        }
        let result = match body {
            Body::Empty => request.call(),
            Body::Json(value) => request
                .set("Content-Type", "application/json")
                .send_string(&value.to_string()),
        };
        let response = match result {
            Ok(response) | Err(ureq::Error::Status(_, response)) => response,
            Err(ureq::Error::Transport(transport)) => {
                // ureq's message starts with the URL, which `request` already names.
                let reason = transport.to_string();
                let reason = reason
                    .strip_prefix(&format!("{url}: "))
                    .unwrap_or(&reason)
                    .to_owned();
                return Err(unreachable(reason));
            }
        };
        let status = response.status();
        let mut body = String::new();
        response
            .into_reader()
            .take(RESPONSE_BYTES_MAX)
            .read_to_string(&mut body)
            .map_err(|error| unreachable(format!("reading the answer: {error}")))?;
        Ok(Answer { status, body })
    }
}

/// `METHOD URL`, for messages.
pub fn request_name(method: &str, node: &NodeUrl, path: &str) -> String {
    format!("{method} {}", node.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUEST: &str = "POST http://127.0.0.1:8081/v1/admin/promote";

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_owned(),
        }
    }

    #[test]
    fn a_success_is_read_as_the_documented_answer() {
        let promoted: Promoted = decode(
            REQUEST,
            &answer(200, r#"{"epoch":2,"last_lsn":9,"elapsed_ms":4}"#),
        )
        .unwrap();
        assert_eq!(promoted.epoch, 2);
    }

    #[test]
    fn a_refusal_carries_the_code_the_detail_and_a_hint() {
        let body = r#"{"type":"about:blank","title":"Conflict","status":409,
            "code":"not_standby","detail":"this node is the primary"}"#;
        let error = decode::<Promoted>(REQUEST, &answer(409, body)).unwrap_err();
        assert!(
            matches!(&error, CallError::Refused { status: 409, problem, .. } if problem.code == "not_standby"),
            "{error}"
        );
        let message = error.to_string();
        assert!(message.starts_with(REQUEST), "{message}");
        assert!(
            message.contains("409 not_standby: this node is the primary"),
            "{message}"
        );
        assert!(message.contains("hint: GET /v1/cluster"), "{message}");
    }

    #[test]
    fn a_body_flashgate_would_not_send_is_quoted_not_trusted() {
        let error =
            decode::<Promoted>(REQUEST, &answer(502, "<html>Bad Gateway</html>")).unwrap_err();
        assert!(matches!(error, CallError::Unexpected { status: 502, .. }));
        assert!(error.to_string().contains("Bad Gateway"), "{error}");

        let error = decode::<Promoted>(REQUEST, &answer(200, r#"{"epoch":"two"}"#)).unwrap_err();
        assert!(matches!(error, CallError::Unexpected { status: 200, .. }));

        let long = "x".repeat(10_000);
        let error = decode::<Promoted>(REQUEST, &answer(500, &long)).unwrap_err();
        assert!(error.to_string().len() < 600, "the quote is bounded");

        let error = decode::<Promoted>(REQUEST, &answer(404, "")).unwrap_err();
        assert!(error.to_string().contains("(empty)"), "{error}");
    }
}
