//! Who is calling: the bearer credential read from `Authorization`, turned into
//! a `Caller` by the shared `Gatekeeper`, and checked against the shared rule
//! table (`crate::auth`).

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::HttpRequest;

use super::AppState;
use crate::auth::{authorize, Action, Caller, Scope};
use crate::request::RequestError;

/// The bearer credential of `request`, if it sends one. The scheme is
/// case-insensitive (RFC 9110); another scheme is refused, saying which one
/// to use.
pub fn bearer(request: &HttpRequest) -> Result<Option<&str>, RequestError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let refuse = || {
        RequestError::Unauthorized(
            "the Authorization header must be `Bearer <token>` (printable ASCII)".into(),
        )
    };
    let value = value.to_str().map_err(|_| refuse())?;
    let (scheme, given) = value.split_once(' ').ok_or_else(refuse)?;
    let given = given.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || given.is_empty() {
        return Err(refuse());
    }
    Ok(Some(given))
}

/// The caller of `request` (rule 7: a credential that is sent must be valid).
pub fn caller(request: &HttpRequest, state: &AppState) -> Result<Caller, RequestError> {
    let address = request
        .peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |peer| peer.ip());
    Ok(state
        .gatekeeper
        .identify(address, bearer(request)?, "http")?)
}

/// The caller of `request` and whose orders it may touch, when it may do
/// `action`.
pub fn allowed(
    request: &HttpRequest,
    state: &AppState,
    action: Action,
) -> Result<(Caller, Scope), RequestError> {
    let allowed = caller(request, state)
        .and_then(|caller| Ok((authorize(&caller, action)?, caller)))
        .map(|(scope, caller)| (caller, scope));
    // A call without a credential is not a guess (a scraper not set up yet):
    // only a credential that was sent and refused counts.
    if allowed.is_err()
        && action.is_admin_api()
        && request.headers().contains_key(header::AUTHORIZATION)
    {
        state.requests.admin_auth_refused();
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn the_bearer_scheme_in_any_case_and_nothing_else() {
        let none = TestRequest::default().to_http_request();
        assert!(matches!(bearer(&none), Ok(None)));
        for header_value in [
            "Bearer s3cret-token",
            "BEARER s3cret-token",
            "bearer  s3cret-token ",
        ] {
            let request = TestRequest::default()
                .insert_header((header::AUTHORIZATION, header_value))
                .to_http_request();
            assert_eq!(bearer(&request).ok().flatten(), Some("s3cret-token"));
        }
        for header_value in ["Basic s3cret-token", "Bearer", "Bearer  ", "s3cret-token"] {
            let request = TestRequest::default()
                .insert_header((header::AUTHORIZATION, header_value))
                .to_http_request();
            let error = bearer(&request).unwrap_err();
            assert!(
                matches!(error, RequestError::Unauthorized(_)),
                "{header_value}"
            );
            assert!(error.to_string().contains("Bearer <token>"));
        }
    }
}
