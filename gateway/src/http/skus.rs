//! `GET /v1/skus`, `GET /v1/skus/{sku}`, and the admin routes
//! `PUT /v1/skus/{sku}` and `POST /v1/skus/{sku}/restock`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::{PutSku, Restock, SkuId, SkuSettings};

use super::admin::require_admin;
use super::{json, read_answer, AppState};
use crate::problem::ApiError;
use crate::wire::{read_object, SkuBody};

fn sku_id(raw: &str) -> Result<SkuId, ApiError> {
    Ok(SkuId::parse(raw)?)
}

pub async fn list(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let skus = state.node.skus().await?;
    let bodies: Vec<SkuBody> = skus.iter().map(SkuBody::from).collect();
    Ok(read_answer(&state, &bodies))
}

pub async fn get(
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let sku = state.node.sku(sku_id(&path)?).await?;
    Ok(read_answer(&state, &SkuBody::from(&sku)))
}

pub async fn put(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&request, &state.admin_token)?;
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
    require_admin(&request, &state.admin_token)?;
    let sku = sku_id(&path)?;
    let mut fields = read_object(&request, payload, state.body).await?;
    let quantity = fields.unsigned("quantity")?;
    fields.finish()?;
    let sku = state.node.restock(Restock { sku, quantity }).await?;
    Ok(json(StatusCode::OK, &SkuBody::from(&sku)))
}
