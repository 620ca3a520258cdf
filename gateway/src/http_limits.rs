//! What one HTTP client may hold or send before any handler runs: open
//! connections per IP address, and the size of a request's target and headers.
//! Each refusal is a problem answer with a code and is counted by reason.
//!
//! actix-web has no per-address cap, so it is built from two parts: when a
//! connection opens (`HttpServer::on_connect`, `on_connect` here) its address
//! takes a slot in `AddressCounts`, kept in the connection's data and given back
//! when the connection closes (the data is dropped with it); a middleware
//! (`refuse_over_limits`) answers every request of a connection that took a
//! slot over the cap with 429 `too_many_connections` and closes it. Such a
//! connection lives only until its first request is answered, or until the
//! request-head timeout if it sends none.

use std::any::Any;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::ResponseError;

use crate::request::RequestError;

/// Open connections per client address, under a cap.
#[derive(Debug)]
pub struct AddressCounts {
    per_address_max: usize,
    /// Only addresses with an open connection: bounded by open connections.
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl AddressCounts {
    pub fn new(per_address_max: usize) -> Arc<AddressCounts> {
        Arc::new(AddressCounts {
            per_address_max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a connection from `address`; the slot gives it back when dropped.
    pub fn open(self: &Arc<Self>, address: IpAddr) -> AddressSlot {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_insert(0);
        *count += 1;
        AddressSlot {
            counts: Arc::clone(self),
            address,
            over: *count > self.per_address_max,
        }
    }

    /// Open connections from `address`.
    pub fn open_from(&self, address: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(&address).copied().unwrap_or(0)
    }

    fn close(&self, address: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&address);
            }
        }
    }
}

/// One open connection's place in `AddressCounts`.
#[derive(Debug)]
pub struct AddressSlot {
    counts: Arc<AddressCounts>,
    address: IpAddr,
    /// Whether the address had more open connections than the cap when this
    /// one opened: then this connection is refused.
    over: bool,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.counts.close(self.address);
    }
}

/// The `HttpServer::on_connect` callback: counts the connection by its peer's
/// IP address.
pub fn on_connect(
    counts: Arc<AddressCounts>,
) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |connection, data| {
        let peer = connection
            .downcast_ref::<actix_web::rt::net::TcpStream>()
            .and_then(|stream| stream.peer_addr().ok());
        if let Some(peer) = peer {
            data.insert(counts.open(peer.ip()));
        }
    }
}

/// The request-head limits, from `Config`.
#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub uri_bytes_max: usize,
    pub headers_bytes_max: usize,
}

/// Why a request is refused before it reaches a handler, if it is.
pub fn check_request(
    limits: HeadLimits,
    over_address_cap: bool,
    uri_bytes: usize,
    headers_bytes: usize,
) -> Option<RequestError> {
    if over_address_cap {
        Some(RequestError::TooManyConnections)
    } else if uri_bytes > limits.uri_bytes_max {
        Some(RequestError::UriTooLong(limits.uri_bytes_max))
    } else if headers_bytes > limits.headers_bytes_max {
        Some(RequestError::HeadersTooLarge(limits.headers_bytes_max))
    } else {
        None
    }
}

/// The middleware: refuses a request over the per-address cap or the head
/// limits with its problem answer, counted in
/// `flashgate_http_requests_refused_total{code}`.
pub async fn refuse_over_limits(
    limits: HeadLimits,
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let over_address_cap = request
        .conn_data::<AddressSlot>()
        .is_some_and(|slot| slot.over);
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    let headers_bytes = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    match check_request(limits, over_address_cap, uri_bytes, headers_bytes) {
        None => Ok(next.call(request).await?.map_into_left_body()),
        Some(refusal) => {
            let code = refusal.code();
            metrics::counter!("flashgate_http_requests_refused_total", "code" => code).increment(1);
            let mut response = refusal.error_response();
            // The rest of this connection is not read: a client over the cap
            // must go, and one that sent an oversized head may send more.
            response
                .head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
            Ok(request.into_response(response).map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeadLimits = HeadLimits {
        uri_bytes_max: 100,
        headers_bytes_max: 200,
    };

    #[test]
    fn an_address_gets_its_cap_and_its_slots_back() {
        let counts = AddressCounts::new(2);
        let one: IpAddr = [127, 0, 0, 1].into();
        let two: IpAddr = [127, 0, 0, 2].into();
        let first = counts.open(one);
        let second = counts.open(one);
        let third = counts.open(one);
        assert!(!first.over && !second.over && third.over);
        assert!(!counts.open(two).over, "another address has its own cap");
        drop(third);
        drop(first);
        assert_eq!(counts.open_from(one), 1);
        assert!(!counts.open(one).over);
        drop(second);
        assert_eq!(counts.open_from(one), 0);
        assert!(
            counts.open.lock().unwrap().is_empty(),
            "closed addresses are forgotten"
        );
    }

    #[test]
    fn requests_are_refused_by_the_first_limit_they_break() {
        assert!(check_request(LIMITS, false, 100, 200).is_none());
        let code = |refusal: Option<RequestError>| refusal.map(|error| error.code());
        assert_eq!(
            code(check_request(LIMITS, true, 1_000, 1_000)),
            Some("too_many_connections")
        );
        assert_eq!(
            code(check_request(LIMITS, false, 101, 1_000)),
            Some("uri_too_long")
        );
        assert_eq!(
            code(check_request(LIMITS, false, 100, 201)),
            Some("headers_too_large")
        );
    }
}
