//! The admin guard: `Authorization: Bearer <token>`.

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::problem::ApiError;
use crate::token::token_matches;

/// Passes when the request carries the admin token (compared by `token_matches`,
/// in constant time).
pub fn require_admin(request: &HttpRequest, token: &str) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized);
    };
    let value = value.to_str().map_err(|_| ApiError::Forbidden)?;
    // The scheme is case-insensitive (RFC 9110): `BEARER` is `Bearer`.
    let Some(given) = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given)
    else {
        return Err(ApiError::Unauthorized);
    };
    if token_matches(given.trim(), token) {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn missing_is_401_wrong_is_403_right_passes() {
        let token = "0123456789abcdef";
        let none = TestRequest::default().to_http_request();
        assert!(matches!(
            require_admin(&none, token),
            Err(ApiError::Unauthorized)
        ));
        let wrong = TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Bearer 0123456789abcdeX"))
            .to_http_request();
        assert!(matches!(
            require_admin(&wrong, token),
            Err(ApiError::Forbidden)
        ));
        let right = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {token}")))
            .to_http_request();
        assert!(require_admin(&right, token).is_ok());
        // The scheme is case-insensitive; another scheme is no credential.
        let shouted = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("BEARER {token}")))
            .to_http_request();
        assert!(require_admin(&shouted, token).is_ok());
        let basic = TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Basic {token}")))
            .to_http_request();
        assert!(matches!(
            require_admin(&basic, token),
            Err(ApiError::Unauthorized)
        ));
    }
}
