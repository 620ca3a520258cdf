//! `GET /v1/cluster`, and the admin routes that move the primary role:
//! `POST /v1/admin/promote` (on a standby), `POST /v1/admin/handover` (on
//! a primary, the first step of a planned switchover), `POST
//! /v1/admin/resume` (undoes a handover whose switchover did not go on), and
//! `GET /v1/admin/switchover-check` (whether this node could take its part
//! now, checked with the caller's credential, changing nothing).

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::{ClusterStatus, NodeError, Role};
use serde_json::{json, Value};

use super::caller::allowed;
use super::{json, AppState};
use crate::auth::Action;
use crate::request::RequestError;

/// How long a handover waits for the standby to acknowledge everything.
pub const HANDOVER_WAIT_MAX: Duration = Duration::from_secs(30);

/// Operator and admin credentials: it names peers and replication addresses.
#[utoipa::path(
    get,
    operation_id = "cluster_status",
    path = "/v1/cluster",
    tag = "cluster",
    summary = "This node's role, replication mode, log positions and peer",
    responses(
        (status = 200, description = "The cluster status as this node sees it", body = crate::wire::ClusterBody),
    ),
    security(("bearer" = []))
)]
pub async fn status(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::ReadOperations)?;
    let mut body = status_json(&state.node.cluster_status());
    body["events"] = events_json(state.events.as_deref());
    Ok(json(StatusCode::OK, &body))
}

/// The events publisher's progress (`null` when events are not published).
pub fn events_json(events: Option<&crate::events::EventsStatus>) -> Value {
    use std::sync::atomic::Ordering::Acquire;
    let Some(events) = events else {
        return Value::Null;
    };
    let published = events.published_lsn.load(Acquire);
    let publishable = events.publishable_lsn.load(Acquire);
    json!({
        "connected": events.connected.load(Acquire),
        "published_lsn": published,
        "lag_records": publishable.saturating_sub(published),
        "lag_ms": events.lag_ms.load(Acquire),
        "published": events.published.load(Acquire),
        "gaps": events.gaps.load(Acquire),
    })
}

/// The cluster status as `/v1/cluster` shows it.
pub fn status_json(status: &ClusterStatus) -> Value {
    let peer = match status.role {
        Role::Primary => status.standby.address.as_ref().map(|address| {
            json!({
                "address": address,
                "http": status.standby.node.as_ref().map(|node| node.http.clone()),
                "connected": status.standby.connected,
            })
        }),
        Role::Standby | Role::Fenced => status.upstream.address.as_ref().map(|address| {
            json!({
                "address": address,
                "connected": status.upstream.connected,
                "last_failure": status.upstream.last_failure,
                "failures": status.upstream.failures,
            })
        }),
    };
    json!({
        "role": status.role.as_str(),
        "epoch": status.epoch,
        "last_lsn": status.last_lsn,
        "durable_lsn": status.durable_lsn,
        "acked_lsn": status.acked_lsn,
        "mode": status.replication.as_str(),
        "standby_loss": status.standby_loss.as_str(),
        "degraded": status.degraded.is_some(),
        "degraded_reason": status.degraded,
        "accepting_orders": status.accepting_orders,
        "handing_over": status.handing_over,
        "peer": peer,
        "primary": status.primary.as_ref().map(|primary| json!({
            "http": primary.http,
            "quic": primary.quic,
        })),
        "lag_records": status.lag_records,
        "lag_ms": status.lag.as_millis() as u64,
        "replica_failure": status.replica_failure,
    })
}

#[utoipa::path(
    post,
    operation_id = "promote",
    path = "/v1/admin/promote",
    tag = "cluster",
    summary = "Make this standby the primary (a new epoch)",
    responses(
        (status = 200, description = "Promoted", body = crate::wire::PromoteBody),
        (status = 409, description = "`not_standby`: this node is not a standby", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn promote(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::MoveRole)?;
    let Some(replication) = state.replication.get() else {
        return Err(NodeError::NotStandby(state.node.cluster().role().as_str()).into());
    };
    let report = replication.promote().await?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "epoch": report.epoch,
            "last_lsn": report.last_lsn,
            "elapsed_ms": report.elapsed.as_millis() as u64,
        }),
    ))
}

#[utoipa::path(
    post,
    operation_id = "handover",
    path = "/v1/admin/handover",
    tag = "cluster",
    summary = "Prepare a switchover: stop writes and wait until the standby has every record",
    description = "Then promote the standby. Waits at most 30 s.",
    responses(
        (status = 200, description = "Handed over: promote the standby next", body = crate::wire::HandoverBody),
        (status = 409, description = "`handover_failed`: no standby follows, or it did not catch up in time (writes resume)", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`not_primary`, `storage_failed`, `shutting_down`, `overloaded` (with `Retry-After`)", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded`"))),
    ),
    security(("bearer" = []))
)]
pub async fn handover(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::MoveRole)?;
    let last_lsn = state.node.hand_over(HANDOVER_WAIT_MAX).await?;
    Ok(json(
        StatusCode::OK,
        &json!({ "epoch": state.node.epoch(), "last_lsn": last_lsn }),
    ))
}

#[utoipa::path(
    post,
    operation_id = "resume",
    path = "/v1/admin/resume",
    tag = "cluster",
    summary = "Undo a handover: this primary takes orders again",
    description = "For a switchover that stopped after its handover (the standby could not be promoted). \
        Check first that the standby is still a standby of this epoch: if it was promoted after all, its fencing stops this node again.",
    responses(
        (status = 200, description = "Taking orders again", body = crate::wire::ResumeBody),
        (status = 409, description = "`handover_failed`: this node is not a primary that handed over", content_type = "application/problem+json", body = crate::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn resume(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::MoveRole)?;
    state.node.resume_orders()?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "epoch": state.node.epoch(),
            "accepting_orders": state.node.cluster_status().accepting_orders,
        }),
    ))
}

#[utoipa::path(
    get,
    operation_id = "switchover_check",
    path = "/v1/admin/switchover-check",
    tag = "cluster",
    summary = "Whether this node could hand over (a primary) or be promoted (a standby) now",
    description = "Needs the credential the switchover itself needs (admin), so a switchover can check both nodes before it changes anything. Changes nothing.",
    responses(
        (status = 200, description = "What this node could do now, and why not", body = crate::wire::SwitchoverCheckBody),
    ),
    security(("bearer" = []))
)]
pub async fn switchover_check(
    request: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::MoveRole)?;
    let node = &state.node;
    let verdict = |result: Result<(), NodeError>| match result {
        Ok(()) => json!({ "possible": true, "reason": null }),
        Err(error) => json!({ "possible": false, "reason": error.to_string() }),
    };
    let promote = match state.replication.get() {
        Some(_) => node.check_promote(),
        None => Err(NodeError::NotStandby(node.cluster().role().as_str())),
    };
    Ok(json(
        StatusCode::OK,
        &json!({
            "role": node.cluster().role().as_str(),
            "epoch": node.epoch(),
            "hand_over": verdict(node.check_hand_over()),
            "promote": verdict(promote),
        }),
    ))
}
