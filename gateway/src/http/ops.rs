//! `GET /healthz`, `GET /readyz`, `GET /metrics`.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// Whether the node takes orders: false until recovery is done and from the
/// moment shutdown begins.
#[derive(Debug, Default)]
pub struct Readiness {
    ready: AtomicBool,
}

impl Readiness {
    pub fn set(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

#[utoipa::path(
    get,
    operation_id = "healthz",
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process answers",
    description = "Needs no credential.",
    responses((status = 200, description = "Up", body = crate::wire::HealthBody))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "up" }))
}

#[utoipa::path(
    get,
    operation_id = "readyz",
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: this node would take an order now",
    description = "Needs no credential. For a load balancer in front of buyers: 200 only on a primary that takes orders at this moment. \
        A standby, a fenced node, a primary handing over, and a sync primary whose standby is gone (`standby_loss = block`) answer 503 with the code an order would get. \
        `/healthz` says whether the process answers at all (a standby answers reads).",
    responses(
        (status = 200, description = "Ready: would take an order", body = crate::wire::ReadyBody),
        (status = 503, description = "Not ready: starting, shutting down, the order log failed, or orders would be refused (`code`: `not_primary`, `standby_unavailable`, …)", body = crate::wire::NotReadyBody),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if let Some(reason) = state.node.storage_failure() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "detail": format!("the order log failed; this node takes no more writes: {reason}"),
        }));
    }
    if !state.readiness.is_ready() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "detail": "the node is starting or shutting down",
        }));
    }
    let cluster = state.node.cluster_status();
    if let Err(refusal) = state.node.cluster().check_writable() {
        return HttpResponse::ServiceUnavailable().json(json!({
            "status": "not_ready",
            "code": crate::error_code::node_error_code(&refusal),
            "detail": format!("this node would refuse an order now: {refusal}"),
            "role": cluster.role.as_str(),
            "epoch": cluster.epoch,
            "accepting_orders": false,
            "degraded": cluster.degraded,
        }));
    }
    HttpResponse::Ok().json(json!({
        "status": "ready",
        "epoch": cluster.epoch,
        "shards": state.node.shard_count(),
        "durable_lsn": state.node.progress().durable_lsn(),
        "role": cluster.role.as_str(),
        "accepting_orders": cluster.accepting_orders,
        "degraded": cluster.degraded,
    }))
}

/// Operator and admin credentials.
#[utoipa::path(
    get,
    operation_id = "metrics",
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    responses((status = 200, description = "The metrics", body = String, content_type = "text/plain")),
    security(("bearer" = []))
)]
pub async fn metrics(
    request: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, crate::request::RequestError> {
    super::caller::allowed(&request, &state, crate::auth::Action::ReadOperations)?;
    for (shard, depth) in state.node.queue_depths().into_iter().enumerate() {
        metrics::gauge!("flashgate_shard_queue_depth", "shard" => shard.to_string())
            .set(depth as f64);
    }
    for (shard, (messages, requests)) in state.node.shard_traffic().into_iter().enumerate() {
        metrics::counter!("flashgate_shard_messages_total", "shard" => shard.to_string())
            .absolute(messages);
        metrics::counter!("flashgate_shard_requests_total", "shard" => shard.to_string())
            .absolute(requests);
    }
    let (confirmed, cancelled, _) = state.node.reservations_ended();
    metrics::counter!("flashgate_orders_confirmed_total").absolute(confirmed);
    metrics::counter!("flashgate_orders_cancelled_total").absolute(cancelled);
    metrics::counter!("flashgate_admin_auth_refused_total")
        .absolute(state.requests.admin_auth_refusals());
    if let Some(webhooks) = &state.alerts.webhooks {
        webhooks.stats().export();
    }
    let progress = state.node.progress();
    metrics::gauge!("flashgate_log_durable_lsn").set(progress.durable_lsn() as f64);
    metrics::gauge!("flashgate_storage_failed").set(if progress.failure().is_some() {
        1.0
    } else {
        0.0
    });
    Ok(HttpResponse::build(StatusCode::OK)
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render()))
}
