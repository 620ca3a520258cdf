//! The per-address rate limits of the HTTP API (`crate::rate_limit`), as a
//! middleware before every handler: the request's class by its route, its
//! client's address (through trusted proxies), and either 429
//! `rate_limited` or the handler's answer with the `RateLimit` headers.
//! The per-customer limit on orders is checked in the order handler, once the
//! body names the customer.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, ResponseError};

use super::AppState;
use crate::rate_limit::{client_address, RouteClass};
use crate::request::RequestError;

pub async fn limit_by_address(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = request.app_data::<web::Data<AppState>>().and_then(|state| {
        let class = RouteClass::of(request.method(), request.path())?;
        let peer = request.peer_addr()?.ip();
        let limits = &state.rate_limits;
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let address = if limits.trusted_proxies().is_empty() {
            peer
        } else {
            client_address(
                peer,
                header(header::FORWARDED),
                header(header::HeaderName::from_static("x-forwarded-for")),
                limits.trusted_proxies(),
            )
        };
        Some(limits.check_address(class, address))
    });
    match verdict {
        None | Some(Ok(None)) => Ok(next.call(request).await?.map_into_left_body()),
        Some(Ok(Some(passed))) => {
            let mut response = next.call(request).await?;
            let headers = response.headers_mut();
            for (name, value) in passed.headers() {
                // The per-customer limit, when it refused, already said more.
                if !headers.contains_key(&name) {
                    headers.insert(name, value);
                }
            }
            Ok(response.map_into_left_body())
        }
        Some(Err(limited)) => {
            let response = RequestError::RateLimited(limited).error_response();
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}
