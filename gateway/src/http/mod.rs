//! The HTTP API. Each file holds one group of routes; `configure` mounts them.
//! `openapi` publishes them as an OpenAPI 3.1 document at `/openapi.json`.

mod alerts;
mod backup;
mod caller;
mod cluster;
mod console;
mod customer_orders;
pub mod openapi;
mod ops;
mod orders;
mod orders_read;
pub mod queue;
pub mod rate_limit;
mod skus;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::Node;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;

use crate::request::RequestError;

pub use cluster::status_json;
pub use customer_orders::Limits as CustomerOrderLimits;
pub use ops::Readiness;

/// What every handler can reach.
pub struct AppState {
    pub node: Arc<Node>,
    /// Identifies callers (credentials, the failure throttle); shared with QUIC.
    pub gatekeeper: Arc<crate::auth::Gatekeeper>,
    pub body: crate::wire::BodyLimits,
    pub metrics: PrometheusHandle,
    pub readiness: Arc<Readiness>,
    /// The replication channel, once started (absent on a standalone node).
    pub replication: Arc<std::sync::OnceLock<crate::replication::Replication>>,
    /// Most ids in one `POST /v1/orders/read` (`Config::orders_read_max`).
    pub orders_read_max: usize,
    /// Limits of `GET /v1/customers/{customer_id}/orders`
    /// (`Config::customer_orders_page_max`, `customer_orders_scan_max`).
    pub customer_orders: customer_orders::Limits,
    /// The outcome counters, shared with QUIC.
    pub requests: Arc<crate::request::RequestMetrics>,
    /// Per-client rate limits, shared with QUIC.
    pub rate_limits: Arc<crate::rate_limit::RateLimits>,
    /// The SKUs' waiting rooms, shared with QUIC.
    pub waiting_rooms: Arc<crate::waiting_room::WaitingRooms>,
    /// The alert feed, the refused admin calls, the webhooks.
    pub alerts: Arc<crate::alerts::Alerts>,
    /// The events publisher's progress, when events are published.
    pub events: Option<Arc<crate::events::EventsStatus>>,
    /// The console's sampler, stream cap and start time.
    pub console: Arc<crate::console::Console>,
}

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(
            web::resource("/v1/orders")
                .route(web::post().to(orders::place))
                .default_service(allow("POST")),
        )
        // Before `/v1/orders/{order_id}`, which would take `read` as an id.
        .service(
            web::resource("/v1/orders/read")
                .route(web::post().to(orders_read::read))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/orders/{order_id}")
                .route(web::get().to(orders::get))
                .route(web::patch().to(orders::change))
                .default_service(allow("GET, PATCH")),
        )
        .service(
            web::resource("/v1/orders/{order_id}/confirm")
                .route(web::post().to(orders::confirm))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/orders/{order_id}/ship")
                .route(web::post().to(orders::ship))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/orders/{order_id}/cancel")
                .route(web::post().to(orders::cancel))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/customers/{customer_id}/orders")
                .route(web::get().to(customer_orders::list))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/v1/skus")
                .route(web::get().to(skus::list))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/v1/skus/{sku}")
                .route(web::get().to(skus::get))
                .route(web::put().to(skus::put))
                .default_service(allow("GET, PUT")),
        )
        .service(
            web::resource("/v1/skus/{sku}/restock")
                .route(web::post().to(skus::restock))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/skus/{sku}/queue")
                .route(web::post().to(queue::join))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/skus/{sku}/waiting-room")
                .route(web::put().to(queue::put_room))
                .default_service(allow("PUT")),
        )
        .service(
            web::resource("/v1/skus/{sku}/queue/{ticket}")
                .route(web::get().to(queue::poll))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/v1/cluster")
                .route(web::get().to(cluster::status))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/v1/alerts")
                .route(web::get().to(alerts::list))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/v1/console/stream")
                .route(web::get().to(console::stream))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/v1/admin/report")
                .route(web::get().to(console::sales_report))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/console")
                .route(web::get().to(console::page))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/console/{asset}")
                .route(web::get().to(console::asset))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/v1/admin/promote")
                .route(web::post().to(cluster::promote))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/admin/handover")
                .route(web::post().to(cluster::handover))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/admin/resume")
                .route(web::post().to(cluster::resume))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/v1/admin/switchover-check")
                .route(web::get().to(cluster::switchover_check))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/v1/admin/backup")
                .route(web::post().to(backup::backup))
                .default_service(allow("POST")),
        )
        .service(
            web::resource("/healthz")
                .route(web::get().to(ops::healthz))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(ops::readyz))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/metrics")
                .route(web::get().to(ops::metrics))
                .default_service(allow("GET")),
        )
        .service(
            web::resource("/openapi.json")
                .route(web::get().to(openapi::document))
                .default_service(allow("GET")),
        )
        .default_service(web::to(not_found));
}

async fn not_found(request: HttpRequest) -> Result<HttpResponse, RequestError> {
    Err(RequestError::NotFound(format!(
        "{} {}",
        request.method(),
        request.path()
    )))
}

/// The answer for a method a resource does not take: 405 with `Allow`.
fn allow(methods: &'static str) -> actix_web::Route {
    web::to(move |request: HttpRequest| async move {
        Err::<HttpResponse, _>(RequestError::MethodNotAllowed {
            detail: format!("{} is not allowed on {}", request.method(), request.path()),
            allow: methods,
        })
    })
}

/// Room reserved for a JSON answer before it is written: an order's answer
/// fits, so it is written in one allocation, never grown.
const ANSWER_BYTES_RESERVED: usize = 384;

/// `body` as JSON bytes, written straight into one buffer.
fn json_bytes<T: Serialize>(body: &T) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(ANSWER_BYTES_RESERVED);
    // Answers are structs of strings and numbers: writing them cannot fail.
    serde_json::to_writer(&mut bytes, body).expect("answers serialise");
    bytes
}

fn json<T: Serialize>(status: actix_web::http::StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(actix_web::http::header::ContentType::json())
        .body(json_bytes(body))
}

/// The header on every read's answer naming the role of the node that
/// answered: only a primary's reads carry the replication promise (in sync
/// mode, nothing shown that the standby lacks); a standby's or a fenced
/// node's come from its own log, stale by the lag or beyond what the cluster
/// acknowledged.
pub const NODE_ROLE_HEADER: &str = "Flashgate-Node-Role";

/// A read's 200 answer, saying which role of node answered it.
fn read_answer<T: Serialize>(state: &AppState, body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((NODE_ROLE_HEADER, state.node.cluster().role().as_str()))
        .insert_header(actix_web::http::header::ContentType::json())
        .body(json_bytes(body))
}
