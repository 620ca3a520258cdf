//! `POST /v1/skus/{sku}/queue` (join a SKU's waiting room) and
//! `GET /v1/skus/{sku}/queue/{ticket}` (where a ticket stands). The rules
//! are `crate::waiting_room`'s; this file reads the request, asks the node
//! whether units remain, and writes the answer.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::{CustomerId, SkuId, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use super::caller::allowed;
use super::{json, AppState};
use crate::auth::Action;
use crate::request::RequestError;
use crate::waiting_room::ticket::TICKET_BYTES_MAX;
use crate::waiting_room::{Answer, TICKET_HEADER};
use crate::wire::read_object;

fn now_ms() -> u64 {
    Timestamp::from_system_time(std::time::SystemTime::now()).0
}

/// Whether `sku` has units left, as its shard last published it; a SKU
/// with nothing published yet counts as having some.
fn units_remain(state: &AppState, sku: &SkuId) -> bool {
    state.node.sold_out_published(sku) != Some(true)
}

/// `POST /v1/skus/{sku}/queue`: who joins.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinQueueRequest {
    /// The customer the ticket is for, as orders name it (1 to 64
    /// characters); a buyer token may only join for its own customer.
    pub customer_id: String,
}

/// A waiting-room ticket and where it stands.
#[derive(Serialize, ToSchema)]
#[schema(as = QueueTicket)]
pub struct QueueTicketBody {
    pub sku: String,
    /// The join ticket: poll with it (`GET /v1/skus/{sku}/queue/{ticket}`).
    /// Signed; bound to this customer and SKU.
    pub ticket: String,
    /// `waiting`, `admitted` (order with `admission_ticket` before
    /// `admitted_until`), `expired` (admitted but unused in time: the slot
    /// went to the next in line), `used`, or `sold_out` (not admitted and
    /// no units remain).
    #[schema(examples("waiting"))]
    pub status: &'static str,
    /// 0-based place in line; null before the sale opens (early joiners are
    /// drawn into a random order at opening).
    #[schema(required = true)]
    pub position: Option<u32>,
    /// Buyers in front not yet admitted.
    pub ahead: u32,
    pub queue_length: u32,
    /// Until the opening, or until admission at the room's rate.
    pub estimated_wait_secs: u64,
    /// Whether the SKU has units left.
    pub units_remain: bool,
    /// When the sale opens, while it has not.
    #[schema(format = DateTime, required = true)]
    pub opens_at: Option<String>,
    /// Poll again no sooner than this.
    pub poll_after_ms: u64,
    /// Once admitted: send it as the `Flashgate-Queue-Ticket` header of one
    /// order for this SKU and customer.
    #[schema(required = true)]
    pub admission_ticket: Option<String>,
    #[schema(format = DateTime, required = true)]
    pub admitted_until: Option<String>,
}

impl From<Answer> for QueueTicketBody {
    fn from(answer: Answer) -> QueueTicketBody {
        let (admission_ticket, admitted_until) = match answer.admission {
            Some((ticket, until)) => (Some(ticket), Some(Timestamp(until).to_string())),
            None => (None, None),
        };
        QueueTicketBody {
            sku: answer.sku,
            ticket: answer.ticket,
            status: answer.status.as_str(),
            position: answer.position,
            ahead: answer.ahead,
            queue_length: answer.queue_length,
            estimated_wait_secs: answer.estimated_wait_secs,
            units_remain: answer.units_remain,
            opens_at: answer.opens_at_ms.map(|at| Timestamp(at).to_string()),
            poll_after_ms: answer.poll_after_ms,
            admission_ticket,
            admitted_until,
        }
    }
}

/// The order's admission ticket, from its header: refused when it cannot
/// be a ticket (not printable ASCII, over `TICKET_BYTES_MAX`), whether or
/// not the SKU has a room, as the contract says.
pub fn ticket_header(request: &HttpRequest) -> Result<Option<&str>, RequestError> {
    let Some(value) = request.headers().get(TICKET_HEADER) else {
        return Ok(None);
    };
    let invalid =
        |why: String| RequestError::WaitingRoom(crate::waiting_room::Refusal::TicketInvalid(why));
    if value.len() > TICKET_BYTES_MAX {
        return Err(invalid(format!(
            "the Flashgate-Queue-Ticket header is over {TICKET_BYTES_MAX} bytes"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| invalid("the Flashgate-Queue-Ticket header is not printable ASCII".into()))
}

#[utoipa::path(
    post,
    operation_id = "join_queue",
    path = "/v1/skus/{sku}/queue",
    tag = "skus",
    summary = "Join a SKU's waiting room: a signed ticket and its place in line",
    description = "Before the sale opens, joiners are drawn into a random order at opening; later ones queue in order of arrival. \
        Poll the ticket, honouring `poll_after_ms`, until it is admitted; then order with its `admission_ticket`.",
    params(("sku" = String, Path, description = "1 to 64 characters of `A-Za-z0-9._-`", pattern = "^[A-Za-z0-9._-]{1,64}$", example = "tee-black-m")),
    request_body(content = JoinQueueRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Joined", body = QueueTicketBody),
        (status = 400, description = "`malformed_json`: the body is not JSON, or repeats a key", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 404, description = "`no_waiting_room`: the SKU has none; order it directly", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 408, description = "`body_timeout`: the body did not arrive in time after the head; the connection is closed", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 413, description = "`body_too_large`: the body is over the configured limit", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field`: the detail names the member and its rule", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`queue_full` (with `Retry-After`): the room holds its maximum of buyers", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before trying again"))),
    ),
    security(("bearer" = []))
)]
pub async fn join(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (_, scope) = allowed(&request, &state, Action::PlaceOrder)?;
    let sku = SkuId::parse(&path)?;
    let mut fields = read_object(&request, payload, state.body).await?;
    let customer = CustomerId::parse(&fields.string("customer_id")?)?;
    fields.finish()?;
    scope.admits(&customer)?;
    let answer = state
        .waiting_rooms
        .join(
            sku.as_str(),
            customer.as_str(),
            now_ms(),
            units_remain(&state, &sku),
        )
        .map_err(RequestError::WaitingRoom)?;
    Ok(json(StatusCode::CREATED, &QueueTicketBody::from(answer)))
}

#[utoipa::path(
    get,
    operation_id = "poll_queue",
    path = "/v1/skus/{sku}/queue/{ticket}",
    tag = "skus",
    summary = "Where a waiting-room ticket stands: position, estimated wait, admission",
    description = "Poll no sooner than the `poll_after_ms` of the last answer. Once `admitted`, the answer carries the \
        `admission_ticket` that orders the SKU once, until `admitted_until`; after a sell-out, waiting tickets read `sold_out`.",
    params(
        ("sku" = String, Path, description = "1 to 64 characters of `A-Za-z0-9._-`", pattern = "^[A-Za-z0-9._-]{1,64}$", example = "tee-black-m"),
        ("ticket" = String, Path, description = "The join ticket `POST /v1/skus/{sku}/queue` gave (at most 1,024 bytes)"),
    ),
    responses(
        (status = 200, description = "Where the ticket stands", body = QueueTicketBody),
        (status = 403, description = "`forbidden`: the credential's role may not order; `queue_ticket_invalid`: not a ticket this room issued for this SKU, or another customer's", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 404, description = "`no_waiting_room`: the SKU has none", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 410, description = "`queue_ticket_expired`: the ticket is from before the waiting room restarted; join again", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field`: not a valid SKU id", content_type = "application/problem+json", body = crate::problem::Problem),
    ),
    security(("bearer" = []))
)]
pub async fn poll(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (_, scope) = allowed(&request, &state, Action::PlaceOrder)?;
    let (sku, ticket) = path.into_inner();
    let sku = SkuId::parse(&sku)?;
    let answer = state
        .waiting_rooms
        .poll(
            sku.as_str(),
            &ticket,
            |customer| {
                CustomerId::parse(customer)
                    .ok()
                    .is_some_and(|customer| scope.admits(&customer).is_ok())
            },
            now_ms(),
            units_remain(&state, &sku),
        )
        .map_err(RequestError::WaitingRoom)?;
    Ok(json(StatusCode::OK, &QueueTicketBody::from(answer)))
}

/// `PUT /v1/skus/{sku}/waiting-room`: the room alone.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutWaitingRoomRequest {
    /// The room's settings; null removes it.
    #[schema(required = true)]
    pub waiting_room: Option<crate::waiting_room::WaitingRoomSettings>,
}

#[utoipa::path(
    put,
    operation_id = "put_waiting_room",
    path = "/v1/skus/{sku}/waiting-room",
    tag = "skus",
    summary = "Put a SKU's waiting room (or remove it with null)",
    description = "A write through the log, taken by the primary only: a room's settings are replicated state, so a \
        standby, a promoted standby, a restart and a restored backup keep the SKU behind its room. The queue itself \
        stays in the primary's memory. The same settings put again keep the queue. \
        `PUT /v1/skus/{sku}` with `waiting_room` does the same along with the SKU.",
    params(("sku" = String, Path, description = "1 to 64 characters of `A-Za-z0-9._-`", pattern = "^[A-Za-z0-9._-]{1,64}$", example = "tee-black-m")),
    request_body(content = PutWaitingRoomRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The SKU with its room", body = crate::wire::SkuBody),
        (status = 400, description = "`malformed_json`: the body is not JSON, or repeats a key", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 404, description = "`unknown_sku`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 408, description = "`body_timeout`: the body did not arrive in time after the head; the connection is closed", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 413, description = "`body_too_large`: the body is over the configured limit", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 415, description = "`unsupported_media_type`: send `Content-Type: application/json`", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 422, description = "`invalid_field`: the detail names the member and its rule", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` or `standby_unavailable` (both with `Retry-After`), `not_primary` (with `primary` and `primary_quic` when known), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded` and `standby_unavailable`"))),
    ),
    security(("bearer" = []))
)]
pub async fn put_room(
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    allowed(&request, &state, Action::WriteSku)?;
    let id = SkuId::parse(&path)?;
    let mut fields = read_object(&request, payload, state.body).await?;
    if !fields.contains("waiting_room") {
        return Err(flashgate_actors::domain::InvalidField::new(
            "waiting_room",
            "is required: the room's settings, or null to remove it",
        )
        .into());
    }
    let room = crate::waiting_room::parse_settings(
        fields.value("waiting_room"),
        state.waiting_rooms.queue_length_max(),
    )?;
    fields.finish()?;
    // A write through the log (primary only), so every node holds it.
    let sku = state
        .node
        .set_waiting_room(flashgate_actors::domain::SetWaitingRoom {
            sku: id,
            room: room.map(Into::into),
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &crate::wire::SkuBody::from(&sku).with_waiting_room(&state.waiting_rooms),
    ))
}
