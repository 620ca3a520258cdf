//! `GET /v1/alerts`: the node's active alerts and the recently resolved
//! ones (docs/ALERTS.md).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::caller::allowed;
use super::{json, AppState};
use crate::alerts::Alert;
use crate::auth::Action;
use crate::request::RequestError;

/// `GET /v1/alerts`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertsBody {
    /// Active alerts, newest first.
    pub active: Vec<Alert>,
    /// Resolved alerts, newest first (at most `alert_recent_max`; events
    /// such as `restocked` and `promoted` are resolved when raised).
    pub recent: Vec<Alert>,
    /// The id of the last alert event (raised or resolved) this node
    /// published in this run: a stream of the feed resumes after it.
    pub last_event_id: u64,
}

/// Operator and admin credentials.
#[utoipa::path(
    get,
    operation_id = "alerts",
    path = "/v1/alerts",
    tag = "operations",
    summary = "Active and recently resolved alerts",
    description = "The node evaluates its alert rules every `alert_evaluate_interval_ms`: stock (`low_stock`, `sold_out`, `restocked`), \
        buyers (`unpaid_expiry_spike`, `duplicate_orders`, `overload_shedding`), the cluster (`replication_lag`, `standby_lost`, \
        `replication_degraded`, `fenced`, `promoted`), the disk (`storage_failed`), the admin API (`admin_auth_failures`) and \
        webhooks (`webhook_disabled`). Alerts live in memory: a restart starts a new list.",
    responses(
        (status = 200, description = "The alerts", body = AlertsBody),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::ReadOperations)?;
    let last_event_id = state.alerts.feed.last_event_id();
    let (active, recent) = state.alerts.feed.list();
    Ok(json(
        StatusCode::OK,
        &AlertsBody {
            active,
            recent,
            last_event_id,
        },
    ))
}
