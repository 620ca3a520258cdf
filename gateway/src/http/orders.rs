//! `POST /v1/orders`, `GET /v1/orders/{id}`, `POST /v1/orders/{id}/confirm|cancel`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::{IdempotencyKey, InvalidField, Order, SkuId};

use super::caller::allowed;
use super::{json, read_answer, AppState};
use crate::auth::Action;
use crate::request::{order_id, RequestError};
use crate::wire::{read_object, read_order, OrderBody};

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

#[utoipa::path(
    post,
    operation_id = "place_order",
    path = "/v1/orders",
    tag = "orders",
    summary = "Reserve units of a SKU for a customer",
    description = "The units are held until `reserved_until`; confirm the order once paid, or cancel it. \
        With an `Idempotency-Key`, a retry answers the order the key already placed (200) instead of placing another.",
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "Makes retries safe: 1 to 64 bytes of printable characters, scoped to the customer", min_length = 1, max_length = 64),
        ("Flashgate-Queue-Ticket" = Option<String>, Header, nullable = false, description = "For a SKU behind a waiting room: the admission ticket its queue gave this customer; it orders once (a retry under the same Idempotency-Key passes)", max_length = 1024),
    ),
    request_body(content = crate::wire::PlaceOrderRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Reserved", body = crate::wire::OrderBody,
        links(
            ("GetOrder" = (operation_id = "get_order", parameters(("order_id" = "$response.body#/order_id")))),
            ("ConfirmOrder" = (operation_id = "confirm_order", parameters(("order_id" = "$response.body#/order_id")))),
            ("CancelOrder" = (operation_id = "cancel_order", parameters(("order_id" = "$response.body#/order_id")))),
        )),
        (status = 200, description = "Replayed: the order this `Idempotency-Key` already placed for this customer", body = crate::wire::OrderBody),
        (status = 400, description = "`malformed_json`: the body is not JSON, or repeats a key", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 408, description = "`body_timeout`: the body did not arrive in time after the head; the connection is closed", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 413, description = "`body_too_large`: the body is over the configured limit", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 403, description = "`forbidden`: the credential's role may not do this; `customer_mismatch`: a buyer token ordering for another customer. For a SKU behind a waiting room: `queue_ticket_required` (no `Flashgate-Queue-Ticket`), `queue_ticket_invalid` (forged, changed, another customer's or another SKU's)", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 404, description = "`unknown_sku`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 409, description = "`sold_out`, `insufficient_stock`, `limit_exceeded` (the customer's limit), `sale_not_open`; for a SKU behind a waiting room, `not_admitted_yet` (a join ticket) or `queue_ticket_used` (the admission ordered already)", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 410, description = "`queue_ticket_expired`: the admission was not used in time; join the queue again", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field` (the detail names the member and its rule), `idempotency_key_reused` (the key placed a different order)", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` or `standby_unavailable` (both with `Retry-After`), `not_primary` (with `primary` and `primary_quic` when known), `storage_failed`, `shutting_down`, `capacity_reached`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded` and `standby_unavailable`"))),
    ),
    security(("bearer" = []))
)]
pub async fn place(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let mut sku = None;
    let result = place_inner(&request, payload, &state, &mut sku).await;
    state
        .requests
        .order_outcome(sku.as_ref().map(SkuId::as_str), &result);
    let (order, created) = result?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &OrderBody::from(&order)))
}

async fn place_inner(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    sku: &mut Option<SkuId>,
) -> Result<(Order, bool), RequestError> {
    let (_, scope) = allowed(request, state, Action::PlaceOrder)?;
    let idempotency_key = match request.headers().get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| InvalidField::new("Idempotency-Key", "must be printable ASCII"))?;
            Some(IdempotencyKey::parse(text)?)
        }
    };
    let command = read_order(request, payload, state.body, idempotency_key).await?;
    // Shared text: the clone is a reference count.
    *sku = Some(command.sku.clone());
    scope.admits(&command.customer)?;
    state
        .rate_limits
        .check_customer(&command.customer)
        .map_err(RequestError::RateLimited)?;
    state
        .waiting_rooms
        .check_order(
            command.sku.as_str(),
            command.customer.as_str(),
            super::queue::ticket_header(request)?,
            command.idempotency_key.as_ref().map(IdempotencyKey::as_str),
            flashgate_actors::domain::Timestamp::from_system_time(std::time::SystemTime::now()).0,
        )
        .map_err(RequestError::WaitingRoom)?;
    Ok(state.node.place_order(command).await?)
}

/// A buyer reads only its own orders: another's is `unknown_order`.
#[utoipa::path(
    get,
    operation_id = "get_order",
    path = "/v1/orders/{order_id}",
    tag = "orders",
    summary = "Read an order",
    params(("order_id" = String, Path, description = "`<epoch>-<shard>-<number>`, e.g. `1-3-1042`", example = "1-3-1042")),
    responses(
        (status = 200, description = "The order", body = crate::wire::OrderBody, headers(("Flashgate-Node-Role" = String, description = "The role of the node that answered: `primary`, `standby` or `fenced`; only a primary's reads carry the replication promise"))),
        (status = 404, description = "`unknown_order`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` (with `Retry-After`), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded`"))),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (_, scope) = allowed(&request, &state, Action::ReadOrder)?;
    let (order, changes) = state
        .node
        .order_history(order_id(&path)?, scope.customer())
        .await?;
    Ok(read_answer(
        &state,
        &OrderBody::with_changes(&order, &changes),
    ))
}

/// Payment succeeded: payments (or admin) credentials only.
#[utoipa::path(
    post,
    operation_id = "confirm_order",
    path = "/v1/orders/{order_id}/confirm",
    tag = "orders",
    summary = "Confirm a reserved order: payment succeeded",
    params(("order_id" = String, Path, description = "`<epoch>-<shard>-<number>`, e.g. `1-3-1042`", example = "1-3-1042")),
    responses(
        (status = 200, description = "Confirmed (also when it already was)", body = crate::wire::OrderBody),
        (status = 404, description = "`unknown_order`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 409, description = "`invalid_transition`: the order's status does not allow it", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` or `standby_unavailable` (both with `Retry-After`), `not_primary` (with `primary` and `primary_quic` when known), `storage_failed`, `shutting_down`, `capacity_reached`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded` and `standby_unavailable`"))),
    ),
    security(("bearer" = []))
)]
pub async fn confirm(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (_, scope) = allowed(&request, &state, Action::ConfirmOrder)?;
    let order = state
        .node
        .confirm(order_id(&path)?, scope.into_customer())
        .await?;
    Ok(json(StatusCode::OK, &OrderBody::from(&order)))
}

/// A fulfilment call (fulfilment or admin credentials): the order was
/// handed to the carrier.
#[utoipa::path(
    post,
    operation_id = "ship_order",
    path = "/v1/orders/{order_id}/ship",
    tag = "orders",
    summary = "Ship a confirmed order: final, it can no longer be cancelled or changed",
    params(("order_id" = String, Path, description = "`<epoch>-<shard>-<number>`, e.g. `1-3-1042`", example = "1-3-1042")),
    responses(
        (status = 200, description = "Shipped (also when it already was)", body = crate::wire::OrderBody),
        (status = 404, description = "`unknown_order`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 409, description = "`invalid_transition`: only a confirmed order ships (a reserved one is unpaid; a settled one left memory)", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` or `standby_unavailable` (both with `Retry-After`), `not_primary` (with `primary` and `primary_quic` when known), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded` and `standby_unavailable`"))),
    ),
    security(("bearer" = []))
)]
pub async fn ship(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::ShipOrder)?;
    let order = state.node.ship(order_id(&path)?).await?;
    Ok(json(StatusCode::OK, &OrderBody::from(&order)))
}

/// A buyer changes only its own orders: another's is `unknown_order`.
#[utoipa::path(
    patch,
    operation_id = "change_order",
    path = "/v1/orders/{order_id}",
    tag = "orders",
    summary = "Change a reserved or confirmed order's quantity and/or SKU, all or nothing",
    description = "More units are taken only if stock and the per-customer limit allow; fewer go back to stock at once. \
        A refusal leaves the order as it was. The order keeps its id, status and times; the change joins its `changes`. \
        A SKU kept by another shard moves the order there (its units are taken there before they are released here); an order that moved once changes only within its new shard (else `change_across_shards`). \
        Under an `Idempotency-Key` (required): a retry with the same key and body answers the order as it is, with another body `idempotency_key_reused`.",
    params(
        ("order_id" = String, Path, description = "`<epoch>-<shard>-<number>`, e.g. `1-3-1042`", example = "1-3-1042"),
        ("Idempotency-Key" = String, Header, description = "Makes retries safe: 1 to 64 bytes of printable characters, scoped to the order", min_length = 1, max_length = 64),
    ),
    request_body(content = crate::wire::ChangeOrderRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Changed (or unchanged: the same request again, or nothing to change), with its history", body = crate::wire::OrderBody),
        (status = 400, description = "`malformed_json`: the body is not JSON, or repeats a key", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 404, description = "`unknown_order`, `unknown_sku`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 408, description = "`body_timeout`: the body did not arrive in time after the head; the connection is closed", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 409, description = "`invalid_transition` (the order is not reserved or confirmed), `sold_out`, `insufficient_stock`, `limit_exceeded`, `sale_not_open`, `too_many_changes`, `change_across_shards`, `order_busy` (in the middle of a move: retry)", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 413, description = "`body_too_large`: the body is over the configured limit", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field` (the detail names the member or header and its rule; `Idempotency-Key` is required), `idempotency_key_reused`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` or `standby_unavailable` (both with `Retry-After`), `not_primary` (with `primary` and `primary_quic` when known), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded` and `standby_unavailable`"))),
    ),
    security(("bearer" = []))
)]
pub async fn change(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (_, scope) = allowed(&request, &state, Action::ChangeOrder)?;
    let id = order_id(&path)?;
    let key = match request.headers().get(IDEMPOTENCY_KEY) {
        None => {
            return Err(InvalidField::new(
                "Idempotency-Key",
                "is required: a change is retried safely under it",
            )
            .into())
        }
        Some(value) => IdempotencyKey::parse(
            value
                .to_str()
                .map_err(|_| InvalidField::new("Idempotency-Key", "must be printable ASCII"))?,
        )?,
    };
    let customer = scope.into_customer();
    let command = read_object(&request, payload, state.body)
        .await?
        .into_change_order(id, customer.clone(), key)?;
    state.node.change_order(command).await?;
    let (order, changes) = state.node.order_history(id, customer.as_ref()).await?;
    Ok(json(
        StatusCode::OK,
        &OrderBody::with_changes(&order, &changes),
    ))
}

/// A buyer cancels only its own orders: another's is `unknown_order`.
#[utoipa::path(
    post,
    operation_id = "cancel_order",
    path = "/v1/orders/{order_id}/cancel",
    tag = "orders",
    summary = "Cancel an order: its units return to stock",
    params(("order_id" = String, Path, description = "`<epoch>-<shard>-<number>`, e.g. `1-3-1042`", example = "1-3-1042")),
    responses(
        (status = 200, description = "Cancelled (also when it already was)", body = crate::wire::OrderBody),
        (status = 404, description = "`unknown_order`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 409, description = "`invalid_transition`: the order's status does not allow it", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` or `standby_unavailable` (both with `Retry-After`), `not_primary` (with `primary` and `primary_quic` when known), `storage_failed`, `shutting_down`, `capacity_reached`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded` and `standby_unavailable`"))),
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (_, scope) = allowed(&request, &state, Action::CancelOrder)?;
    let order = state
        .node
        .cancel(order_id(&path)?, scope.into_customer())
        .await?;
    Ok(json(StatusCode::OK, &OrderBody::from(&order)))
}
