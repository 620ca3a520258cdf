//! `POST /v1/orders`, `GET /v1/orders/{id}`, `POST /v1/orders/{id}/confirm|cancel`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::{
    CustomerId, IdempotencyKey, OrderId, PlaceOrder, SkuId, QUANTITY_PER_ORDER_MAX,
};

use super::caller::allowed;
use super::{json, read_answer, AppState};
use crate::auth::Action;
use crate::problem::ApiError;
use crate::wire::{read_object, OrderBody};

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

pub async fn place(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = place_inner(&request, payload, &state).await;
    let outcome = match &result {
        Ok((_, true)) => "created",
        Ok((_, false)) => "replayed",
        Err(error) => error.code(),
    };
    metrics::counter!("flashgate_orders_total", "outcome" => outcome).increment(1);
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
) -> Result<(flashgate_actors::domain::Order, bool), ApiError> {
    let (_, scope) = allowed(request, state, Action::PlaceOrder)?;
    let idempotency_key = match request.headers().get(IDEMPOTENCY_KEY) {
        None => None,
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::InvalidField("Idempotency-Key: must be printable ASCII".into())
            })?;
            Some(IdempotencyKey::parse(text)?)
        }
    };
    let mut fields = read_object(request, payload, state.body).await?;
    let sku = SkuId::parse(&fields.string("sku")?)?;
    let quantity = fields.unsigned("quantity")?;
    let customer = CustomerId::parse(&fields.string("customer_id")?)?;
    fields.finish()?;
    scope.admits(&customer)?;
    let quantity = u32::try_from(quantity)
        .ok()
        .filter(|quantity| (1..=QUANTITY_PER_ORDER_MAX).contains(quantity))
        .ok_or_else(|| {
            ApiError::InvalidField(format!(
                "quantity: must be between 1 and {QUANTITY_PER_ORDER_MAX}"
            ))
        })?;
    let command = PlaceOrder {
        sku,
        quantity,
        customer,
        idempotency_key,
    };
    Ok(state.node.place_order(command).await?)
}

fn order_id(raw: &str) -> Result<OrderId, ApiError> {
    OrderId::parse(raw).ok_or_else(|| ApiError::UnknownOrderId(raw.to_owned()))
}

/// A buyer reads only its own orders: another's is `unknown_order`.
pub async fn get(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, scope) = allowed(&request, &state, Action::ReadOrder)?;
    let order = state.node.order(order_id(&path)?, scope.customer()).await?;
    Ok(read_answer(&state, &OrderBody::from(&order)))
}

/// Payment succeeded: payments (or admin) credentials only.
pub async fn confirm(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, scope) = allowed(&request, &state, Action::ConfirmOrder)?;
    let order = state
        .node
        .confirm(order_id(&path)?, scope.into_customer())
        .await?;
    Ok(json(StatusCode::OK, &OrderBody::from(&order)))
}

/// A buyer cancels only its own orders: another's is `unknown_order`.
pub async fn cancel(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (_, scope) = allowed(&request, &state, Action::CancelOrder)?;
    let order = state
        .node
        .cancel(order_id(&path)?, scope.into_customer())
        .await?;
    Ok(json(StatusCode::OK, &OrderBody::from(&order)))
}
