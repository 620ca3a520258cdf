//! `GET /v1/skus`, `GET /v1/skus/{sku}`, and the admin routes
//! `PUT /v1/skus/{sku}` and `POST /v1/skus/{sku}/restock`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::{CoreError, Sku, SkuId, Timestamp};
use flashgate_actors::NodeError;

use super::caller::allowed;
use super::{json, read_answer, AppState};
use crate::auth::{Action, Caller};
use crate::request::RequestError;
use crate::wire::{read_object, SkuBody};

fn now() -> Timestamp {
    Timestamp::from_system_time(std::time::SystemTime::now())
}

fn visible(caller: &Caller, sku: &Sku, now: Timestamp) -> bool {
    caller.sees_sku(sku.settings.sale_starts_at, now)
}

/// Every SKU the caller may see: sales not yet open only for service,
/// operator and admin credentials.
#[utoipa::path(
    get,
    operation_id = "list_skus",
    path = "/v1/skus",
    tag = "skus",
    summary = "List the SKUs the caller may see (sales not yet open: service, operator and admin credentials only)",
    responses(
        (status = 200, description = "Every SKU, by id", body = Vec<crate::wire::SkuBody>, headers(("Flashgate-Node-Role" = String, description = "The role of the node that answered: `primary`, `standby` or `fenced`; only a primary's reads carry the replication promise"))),
        (status = 503, description = "`overloaded` (with `Retry-After`), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded`"))),
    ),
    security((), ("bearer" = []))
)]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (caller, _) = allowed(&request, &state, Action::ReadSkus)?;
    let skus = state.node.skus().await?;
    let now = now();
    let bodies: Vec<SkuBody> = skus
        .iter()
        .filter(|sku| visible(&caller, sku, now))
        .map(|sku| SkuBody::from(sku).with_waiting_room(&state.waiting_rooms))
        .collect();
    Ok(read_answer(&state, &bodies))
}

/// A SKU whose sale has not opened is unknown to the public.
#[utoipa::path(
    get,
    operation_id = "get_sku",
    path = "/v1/skus/{sku}",
    tag = "skus",
    summary = "Read a SKU",
    params(("sku" = String, Path, description = "1 to 64 characters of `A-Za-z0-9._-`", pattern = "^[A-Za-z0-9._-]{1,64}$", example = "tee-black-m")),
    responses(
        (status = 200, description = "The SKU", body = crate::wire::SkuBody, headers(("Flashgate-Node-Role" = String, description = "The role of the node that answered: `primary`, `standby` or `fenced`; only a primary's reads carry the replication promise"))),
        (status = 404, description = "`unknown_sku`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field`: not a valid SKU id", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` (with `Retry-After`), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded`"))),
    ),
    security((), ("bearer" = []))
)]
pub async fn get(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (caller, _) = allowed(&request, &state, Action::ReadSkus)?;
    let id = SkuId::parse(&path)?;
    let sku = state.node.sku(id.clone()).await?;
    if !visible(&caller, &sku, now()) {
        return Err(NodeError::from(CoreError::UnknownSku(id)).into());
    }
    Ok(read_answer(
        &state,
        &SkuBody::from(&sku).with_waiting_room(&state.waiting_rooms),
    ))
}

#[utoipa::path(
    put,
    operation_id = "put_sku",
    path = "/v1/skus/{sku}",
    tag = "skus",
    summary = "Create a SKU, or change its settings",
    description = "Creating needs `stock`; on an existing SKU, `stock` may only repeat its total (add units with restock). \
        Absent settings take their defaults.",
    params(("sku" = String, Path, description = "1 to 64 characters of `A-Za-z0-9._-`", pattern = "^[A-Za-z0-9._-]{1,64}$", example = "tee-black-m")),
    request_body(content = crate::wire::PutSkuRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = crate::wire::SkuBody,
            links(
                ("GetSku" = (operation_id = "get_sku", parameters(("sku" = "$request.path.sku")))),
                ("RestockSku" = (operation_id = "restock_sku", parameters(("sku" = "$request.path.sku")))),
            )),
        (status = 200, description = "Updated (or unchanged)", body = crate::wire::SkuBody),
        (status = 400, description = "`malformed_json`: the body is not JSON, or repeats a key", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 408, description = "`body_timeout`: the body did not arrive in time after the head; the connection is closed", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 413, description = "`body_too_large`: the body is over the configured limit", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field`: the detail names the member and its rule", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` or `standby_unavailable` (both with `Retry-After`), `not_primary` (with `primary` and `primary_quic` when known), `storage_failed`, `shutting_down`, `capacity_reached`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded` and `standby_unavailable`"))),
    ),
    security(("bearer" = []))
)]
pub async fn put(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::WriteSku)?;
    let mut fields = read_object(&request, payload, state.body).await?;
    let waiting_room = crate::waiting_room::parse_settings(
        fields.value("waiting_room"),
        state.waiting_rooms.queue_length_max(),
    )?;
    let command = fields.into_put_sku(&path)?;
    let (sku, created) = state.node.put_sku(command).await?;
    // After the SKU, so a room is never kept for a SKU the node refused;
    // through the log like the SKU, so every node of the cluster holds it.
    let sku = state
        .node
        .set_waiting_room(flashgate_actors::domain::SetWaitingRoom {
            sku: sku.id.clone(),
            room: waiting_room.map(Into::into),
        })
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(json(
        status,
        &SkuBody::from(&sku).with_waiting_room(&state.waiting_rooms),
    ))
}

#[utoipa::path(
    post,
    operation_id = "restock_sku",
    path = "/v1/skus/{sku}/restock",
    tag = "skus",
    summary = "Add units to a SKU",
    params(("sku" = String, Path, description = "1 to 64 characters of `A-Za-z0-9._-`", pattern = "^[A-Za-z0-9._-]{1,64}$", example = "tee-black-m")),
    request_body(content = crate::wire::RestockRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The SKU with its new total", body = crate::wire::SkuBody),
        (status = 400, description = "`malformed_json`: the body is not JSON, or repeats a key", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 408, description = "`body_timeout`: the body did not arrive in time after the head; the connection is closed", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 413, description = "`body_too_large`: the body is over the configured limit", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 404, description = "`unknown_sku`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field`: the detail names the member and its rule", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` or `standby_unavailable` (both with `Retry-After`), `not_primary` (with `primary` and `primary_quic` when known), `storage_failed`, `shutting_down`, `capacity_reached`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded` and `standby_unavailable`"))),
    ),
    security(("bearer" = []))
)]
pub async fn restock(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::WriteSku)?;
    let command = read_object(&request, payload, state.body)
        .await?
        .into_restock(&path)?;
    let sku = state.node.restock(command).await?;
    Ok(json(
        StatusCode::OK,
        &SkuBody::from(&sku).with_waiting_room(&state.waiting_rooms),
    ))
}
