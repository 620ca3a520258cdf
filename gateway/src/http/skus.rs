//! `GET /v1/skus`, `GET /v1/skus/{sku}`, and the admin routes
//! `PUT /v1/skus/{sku}` and `POST /v1/skus/{sku}/restock`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::{CoreError, PutSku, Restock, Sku, SkuId, SkuSettings, Timestamp};
use flashgate_actors::NodeError;

use super::caller::allowed;
use super::{json, read_answer, AppState};
use crate::auth::{Action, Caller};
use crate::problem::ApiError;
use crate::wire::{read_object, SkuBody};

fn sku_id(raw: &str) -> Result<SkuId, ApiError> {
    Ok(SkuId::parse(raw)?)
}

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

fn visible(caller: &Caller, sku: &Sku, now: Timestamp) -> bool {
    caller.sees_sku(sku.settings.sale_starts_at, now)
}

/// Every SKU the caller may see: sales not yet open only for service,
/// operator and admin credentials.
pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (caller, _) = allowed(&request, &state, Action::ReadSkus)?;
    let skus = state.node.skus().await?;
    let now = now();
    let bodies: Vec<SkuBody> = skus
        .iter()
        .filter(|sku| visible(&caller, sku, now))
        .map(SkuBody::from)
        .collect();
    Ok(read_answer(&state, &bodies))
}

/// A SKU whose sale has not opened is unknown to the public.
pub async fn get(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (caller, _) = allowed(&request, &state, Action::ReadSkus)?;
    let id = sku_id(&path)?;
    let sku = state.node.sku(id.clone()).await?;
    if !visible(&caller, &sku, now()) {
        return Err(NodeError::from(CoreError::UnknownSku(id)).into());
    }
    Ok(read_answer(&state, &SkuBody::from(&sku)))
}

pub async fn put(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    allowed(&request, &state, Action::WriteSku)?;
    let sku = sku_id(&path)?;
    let mut fields = read_object(&request, payload, state.body).await?;
    let defaults = SkuSettings::default();
    let stock = fields.optional_unsigned("stock")?;
    let settings = SkuSettings {
        per_customer_limit: fields.optional_unsigned("per_customer_limit")?,
        max_quantity_per_order: fields
            .optional_u32("max_quantity_per_order")?
            .unwrap_or(defaults.max_quantity_per_order),
        sale_starts_at: fields.optional_timestamp("sale_starts_at")?,
        reservation_ttl_secs: fields
            .optional_u32("reservation_ttl_secs")?
            .unwrap_or(defaults.reservation_ttl_secs),
        low_stock_threshold: fields
            .optional_unsigned("low_stock_threshold")?
            .unwrap_or(defaults.low_stock_threshold),
    };
    fields.finish()?;
    let (sku, created) = state
        .node
        .put_sku(PutSku {
            sku,
            stock,
            settings,
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(status, &SkuBody::from(&sku)))
}

pub async fn restock(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    allowed(&request, &state, Action::WriteSku)?;
    let sku = sku_id(&path)?;
    let mut fields = read_object(&request, payload, state.body).await?;
    let quantity = fields.unsigned("quantity")?;
    fields.finish()?;
    let sku = state.node.restock(Restock { sku, quantity }).await?;
    Ok(json(StatusCode::OK, &SkuBody::from(&sku)))
}
