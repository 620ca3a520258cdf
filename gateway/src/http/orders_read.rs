//! `POST /v1/orders/read`: many orders read in one request (an audit's
//! read-back), by one node call that sends one message per shard.

use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::OrderId;
use serde::Serialize;
use utoipa::ToSchema;

use super::caller::allowed;
use super::{read_answer, AppState};
use crate::auth::Action;
use crate::request::RequestError;
use crate::wire::{read_object, BodyLimits, OrderBody};

/// Bytes one id may take in the body (an order id is at most 41 characters,
/// plus quotes, a comma and spaces), so a read of `orders_read_max` ids fits
/// even where `http_body_bytes_max` is smaller.
const ORDER_ID_BODY_BYTES_MAX: usize = 64;

/// The answer: every id asked for is in exactly one of the two lists.
#[derive(Serialize, ToSchema)]
#[schema(as = OrdersRead)]
pub struct OrdersReadBody<'a> {
    /// The orders found, in the order asked.
    pub orders: Vec<OrderBody<'a>>,
    /// The ids the caller cannot see, as given: no such order, not an order
    /// id, or (for a buyer) another customer's.
    pub unknown: Vec<String>,
}

/// A buyer reads only its own orders: another's is reported unknown, as
/// `GET /v1/orders/{order_id}` answers it `unknown_order`.
#[utoipa::path(
    post,
    operation_id = "read_orders",
    path = "/v1/orders/read",
    tag = "orders",
    summary = "Read many orders at once",
    description = "One request for up to `orders_read_max` orders (1,000 unless configured), e.g. to audit what was acknowledged. \
        The same authorization as reading one order; ids that are unknown to the caller are listed in `unknown`, not refused.",
    request_body(content = crate::wire::ReadOrdersRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The orders found and the ids not found", body = OrdersReadBody, headers(("Flashgate-Node-Role" = String, description = "The role of the node that answered: `primary`, `standby` or `fenced`; only a primary's reads carry the replication promise"))),
        (status = 400, description = "`malformed_json`: the body is not JSON, or repeats a key", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 408, description = "`body_timeout`: the body did not arrive in time after the head; the connection is closed", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 413, description = "`body_too_large`: the body is over the limit (the larger of `http_body_bytes_max` and 64 bytes per id allowed)", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field` (the detail names the member and its rule), `batch_too_large` (more ids than `orders_read_max`; nothing was read)", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` (with `Retry-After`), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded`"))),
    ),
    security(("bearer" = []))
)]
pub async fn read(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (_, scope) = allowed(&request, &state, Action::ReadOrder)?;
    let limits = BodyLimits {
        bytes_max: state
            .body
            .bytes_max
            .max(state.orders_read_max * ORDER_ID_BODY_BYTES_MAX),
        ..state.body
    };
    let mut fields = read_object(&request, payload, limits).await?;
    let order_ids = fields.strings("order_ids")?;
    fields.finish()?;
    if order_ids.len() > state.orders_read_max {
        return Err(RequestError::ReadTooLarge {
            ids: order_ids.len(),
            max: state.orders_read_max,
        });
    }
    let mut ids = Vec::with_capacity(order_ids.len());
    let mut asked = Vec::with_capacity(order_ids.len());
    let mut unknown = Vec::new();
    for raw in order_ids {
        match OrderId::parse(&raw) {
            Some(id) => {
                ids.push(id);
                asked.push(raw);
            }
            None => unknown.push(raw),
        }
    }
    let found = state.node.orders(&ids, scope.customer()).await?;
    let mut kept = Vec::with_capacity(found.len());
    for (raw, order) in asked.into_iter().zip(found) {
        match order {
            Some(order) => kept.push(order),
            None => unknown.push(raw),
        }
    }
    let body = OrdersReadBody {
        orders: kept.iter().map(OrderBody::from).collect(),
        unknown,
    };
    Ok(read_answer(&state, &body))
}
