//! One bidirectional stream: a sequence of request frames in, their answers out.
//!
//! The reader cuts frames out of the stream and starts each request as its own
//! task, so requests on one stream run concurrently; the writer sends each
//! answer as soon as it completes, out of order, under its request id. A
//! `PlaceOrders` batch goes to `Node::place_orders` and is answered by one
//! `Response::Batch`, in the batch's order.
//!
//! Bounds: at most `in_flight_per_connection_max` requests of one connection
//! run at once (beyond it a request is answered `too_many_in_flight` at once),
//! and the encoded answers waiting for the writers of one connection's streams
//! take at most `answer_bytes_per_connection_max` bytes (`AnswerBudget`). Every
//! answer, refusals and frame errors included, takes room in that budget
//! before it is queued, and gives it back once written. A request holds its
//! in-flight slot until its answer has room, and the reader waits for room
//! for a `too_many_in_flight` refusal, so when a client does not read its
//! answers the server stops reading its requests and QUIC flow control holds
//! the client back, instead of the server's memory growing. What one
//! connection can pin is thus at most: the budget, the same again in QUIC's
//! send buffer (its send window), and the answers of requests in flight that
//! wait for room.
//!
//! A frame that cannot be read is answered with a `Response::FrameError`; the
//! server then stops reading the stream (STOP_SENDING `STREAM_STOP_FRAME_ERROR`),
//! still answers the requests it already took, and finishes its side. Other
//! streams and connections never notice.

use std::sync::Arc;
use std::time::Instant;

use flashgate_actors::domain::{
    CoreError, Order, PlaceOrder as PlaceOrderCommand, SkuId, Timestamp,
};
use flashgate_actors::NodeError;
use flashgate_protocol::{
    code, encode_frame, FrameError, FrameReader, PlaceOrder, Request, Response,
};
use quinn::{ReadError, ReadExactError, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::connection::ConnectionCaller;
use super::convert;
use super::{
    Shared, STREAM_STOP_ANSWERS_STOPPED, STREAM_STOP_FRAME_ERROR, STREAM_STOP_SHUTTING_DOWN,
};
use crate::auth::{authorize, Action, Caller, Scope};
use crate::request::{order_id, RequestError, RequestMetrics};

/// Answers that are ready together are written in one go, up to this size.
const WRITE_COALESCE_BYTES_MAX: usize = 64 * 1024;
/// After a frame larger than this, the read buffers are freed rather than kept
/// for the next frame, so one large frame does not pin its memory for the life
/// of the stream.
const READ_BUFFER_KEPT_BYTES_MAX: usize = 16 * 1024;
/// Bytes of a frame read at a time: its buffer grows by at most this much
/// before the bytes are there.
const READ_CHUNK_BYTES: usize = 4 * 1024;

/// Serves one stream until the client finishes it, a frame error, the shutdown,
/// or the connection's end; returns once every request it took is answered and
/// the answers are acknowledged by the client (or cannot be delivered).
pub(super) async fn serve_stream(
    shared: Arc<Shared>,
    caller: Arc<ConnectionCaller>,
    in_flight: Arc<Semaphore>,
    budget: AnswerBudget,
    send: SendStream,
    recv: RecvStream,
    shutdown: watch::Receiver<bool>,
) {
    // Unbounded in count: the byte budget bounds it.
    let (sender, queue) = mpsc::unbounded_channel();
    let responses = Answers { sender, budget };
    let reader = read_requests(shared, caller, in_flight, recv, responses, shutdown);
    tokio::join!(reader, write_responses(send, queue));
}

/// The bytes of encoded answers one connection may have queued, shared by its
/// streams.
#[derive(Clone)]
pub(super) struct AnswerBudget {
    room: Arc<Semaphore>,
    bytes_max: usize,
}

impl AnswerBudget {
    pub(super) fn new(bytes_max: usize) -> AnswerBudget {
        AnswerBudget {
            room: Arc::new(Semaphore::new(bytes_max)),
            bytes_max,
        }
    }
}

/// An encoded answer and the room it takes in its connection's budget,
/// given back when it is dropped (once written, or undeliverable).
struct Queued {
    bytes: Vec<u8>,
    room: OwnedSemaphorePermit,
}

/// Where a stream's answers go: each waits for room in the connection's
/// budget, then joins the writer's queue.
#[derive(Clone)]
struct Answers {
    sender: mpsc::UnboundedSender<Queued>,
    budget: AnswerBudget,
}

impl Answers {
    /// Queues one answer once the budget has room for it (an answer larger
    /// than the whole budget waits for all of it). Returns at once, dropping
    /// the answer, when the writer is gone.
    async fn send(&self, response: &Response) {
        if let Some(queued) = self.room_for(response).await {
            self.push(queued);
        }
    }

    /// Encodes an answer and waits until the budget has room for it; `None`
    /// when the writer is gone.
    async fn room_for(&self, response: &Response) -> Option<Queued> {
        let bytes = encode(response);
        // The budget is at most 1 GiB (configuration), so this fits.
        let need = u32::try_from(bytes.len().min(self.budget.bytes_max)).unwrap_or(u32::MAX);
        let room = match Arc::clone(&self.budget.room).try_acquire_many_owned(need) {
            Ok(room) => room,
            Err(_) => {
                metrics::counter!("flashgate_quic_answer_budget_waits_total").increment(1);
                let acquire = Arc::clone(&self.budget.room).acquire_many_owned(need);
                tokio::select! {
                    // The semaphore is never closed.
                    room = acquire => room.ok()?,
                    _ = self.sender.closed() => return None,
                }
            }
        };
        Some(Queued { bytes, room })
    }

    /// Hands an answer that has its room to the writer.
    fn push(&self, queued: Queued) {
        let _ = self.sender.send(queued);
    }

    fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Why the server stops reading a stream after answering with a `FrameError`.
#[derive(Debug, thiserror::Error)]
enum FrameRefusal {
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Answered as a frame error, not as a `Batch` of errors: the batch has no
    /// request id of its own, and an answer with one error per order would be
    /// as large as the batch the limit exists to refuse. A client that meets
    /// this has a limit set wrongly; the detail tells it the server's limit.
    #[error("the batch holds {orders} orders, over the limit of {max}; send at most {max} per PlaceOrders frame")]
    BatchTooLarge { orders: usize, max: usize },
}

impl FrameRefusal {
    fn code(&self) -> &'static str {
        match self {
            FrameRefusal::Frame(error) => error.code(),
            FrameRefusal::BatchTooLarge { .. } => code::BATCH_TOO_LARGE,
        }
    }
}

/// What stopped a read: the bytes (answered) or the stream itself (not).
enum ReadFailure {
    Frame(FrameError),
    Stream(ReadError),
}

impl From<FrameError> for ReadFailure {
    fn from(error: FrameError) -> ReadFailure {
        ReadFailure::Frame(error)
    }
}

async fn read_requests(
    shared: Arc<Shared>,
    caller: Arc<ConnectionCaller>,
    in_flight: Arc<Semaphore>,
    mut recv: RecvStream,
    responses: Answers,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut frames = Frames::new(shared.limits.frame_bytes_max);
    loop {
        if responses.is_closed() {
            // The writer gave up (the client stopped our side, or the connection
            // is gone): requests read now could not be answered.
            let _ = recv.stop(VarInt::from_u32(STREAM_STOP_ANSWERS_STOPPED));
            return;
        }
        let read = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stopping| *stopping) => {
                let _ = recv.stop(VarInt::from_u32(STREAM_STOP_SHUTTING_DOWN));
                return;
            }
            read = frames.next_request(&mut recv) => read,
        };
        let refusal = match read {
            Ok(Some(request)) => {
                match dispatch(&shared, &caller, &in_flight, request, &responses).await {
                    Ok(()) => continue,
                    Err(refusal) => refusal,
                }
            }
            // The client finished its side between two frames.
            Ok(None) => return,
            Err(ReadFailure::Frame(error)) => FrameRefusal::Frame(error),
            Err(ReadFailure::Stream(error)) => {
                tracing::debug!(%error, "QUIC stream ended without finishing");
                return;
            }
        };
        let code = refusal.code();
        metrics::counter!("flashgate_quic_frame_errors_total", "code" => code).increment(1);
        tracing::debug!(code, detail = %refusal, "QUIC frame refused; the stream ends");
        let _ = recv.stop(VarInt::from_u32(STREAM_STOP_FRAME_ERROR));
        let answer = Response::FrameError {
            code: code.to_owned(),
            detail: refusal.to_string(),
        };
        responses.send(&answer).await;
        return;
    }
}

/// Starts one request as a task of its own, or answers it at once when the
/// connection has its maximum in flight. Returns a refusal that ends the stream.
async fn dispatch(
    shared: &Arc<Shared>,
    caller: &ConnectionCaller,
    in_flight: &Arc<Semaphore>,
    request: Request,
    responses: &Answers,
) -> Result<(), FrameRefusal> {
    // In the reader, before the next frame is read: requests after it on this
    // stream act as its caller.
    if let Request::Authenticate {
        request_id,
        credential,
    } = &request
    {
        let answer = match caller.authenticate(shared, credential) {
            Ok(caller) => {
                shared.requests.quic_request(Ok(()));
                Response::Authenticated {
                    request_id: *request_id,
                    role: caller.role().to_owned(),
                    customer_id: match caller.as_ref() {
                        Caller::Buyer(customer) => Some(customer.as_str().to_owned()),
                        _ => None,
                    },
                }
            }
            Err(refused) => single(&shared.requests, *request_id, Err(refused.into())),
        };
        responses.send(&answer).await;
        return Ok(());
    }
    let limits = &shared.limits;
    // A batch takes one slot per order, so batching does not lift the limit.
    let slots = match &request {
        Request::PlaceOrders { orders } if orders.len() > limits.batch_orders_max => {
            return Err(FrameRefusal::BatchTooLarge {
                orders: orders.len(),
                max: limits.batch_orders_max,
            });
        }
        Request::PlaceOrders { orders } => orders.len().max(1),
        _ => 1,
    };
    // `slots` is at most `batch_orders_max`, which the configuration bounds far
    // below `u32::MAX`.
    let slots = u32::try_from(slots).unwrap_or(u32::MAX);
    match Arc::clone(in_flight).try_acquire_many_owned(slots) {
        Ok(permit) => {
            let shared = Arc::clone(shared);
            let responses = responses.clone();
            let bypass = caller.bypasses_waiting_rooms();
            let caller = caller.get();
            // Its own task: the request runs to its end even if the client goes
            // away, so nothing is left half done.
            // The slot is held until the answer has room in the budget, and
            // freed before the answer can reach the client: a client that
            // sends its next request once an answer arrived finds the slot.
            tokio::spawn(async move {
                let answer = answer(&shared, &caller, bypass, request).await;
                let queued = responses.room_for(&answer).await;
                drop(permit);
                if let Some(queued) = queued {
                    responses.push(queued);
                }
            });
        }
        Err(_) => {
            // Takes room in the budget like any answer: while there is none,
            // this stream reads no further request.
            let answer = too_many_in_flight(
                &shared.requests,
                request,
                limits.in_flight_per_connection_max,
            );
            responses.send(&answer).await;
        }
    }
    Ok(())
}

/// Writes answers as they come until every sender is gone (the reader stopped and
/// every request it started is answered), then finishes the stream and waits
/// until the client has acknowledged everything, so that a connection closed
/// right after (at shutdown) does not cut answers off.
async fn write_responses(mut send: SendStream, mut queue: mpsc::UnboundedReceiver<Queued>) {
    while let Some(first) = queue.recv().await {
        let mut bytes = first.bytes;
        // Their room in the budget is given back once they are written.
        let mut written = vec![first.room];
        while bytes.len() < WRITE_COALESCE_BYTES_MAX {
            match queue.try_recv() {
                Ok(more) => {
                    bytes.extend_from_slice(&more.bytes);
                    written.push(more.room);
                }
                Err(_) => break,
            }
        }
        let result = send.write_all(&bytes).await;
        drop(written);
        if let Err(error) = result {
            // Dropping the queue tells the reader and the running requests that
            // their answers cannot be delivered; the requests still finish.
            tracing::debug!(%error, "QUIC answers cannot be written");
            return;
        }
    }
    let _ = send.finish();
    let _ = send.stopped().await;
}

fn encode(response: &Response) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_frame(response, &mut bytes);
    bytes
}

/// Cuts request frames out of a stream with `FrameReader`, which does every
/// check. It reads each frame's length prefix and then exactly the rest of the
/// frame, so an oversized frame is refused before any of its body is read and
/// the reader never holds more than one frame.
struct Frames {
    reader: FrameReader,
    frame_bytes_max: usize,
    /// Where a frame's bytes land on their way into `reader`.
    chunk: Box<[u8; READ_CHUNK_BYTES]>,
}

impl Frames {
    fn new(frame_bytes_max: usize) -> Frames {
        Frames {
            reader: FrameReader::new(frame_bytes_max),
            frame_bytes_max,
            chunk: Box::new([0; READ_CHUNK_BYTES]),
        }
    }

    /// The next request; `Ok(None)` when the stream finished between frames.
    async fn next_request(
        &mut self,
        recv: &mut RecvStream,
    ) -> Result<Option<Request>, ReadFailure> {
        let mut prefix = [0u8; 4];
        let read = read_up_to(recv, &mut prefix).await?;
        if read == 0 {
            return Ok(None);
        }
        self.reader.extend(&prefix[..read]);
        if read < prefix.len() {
            return Err(self.truncated());
        }
        // With the prefix alone the reader refuses an oversized or empty frame.
        if let Some(request) = self.reader.next_frame()? {
            return Ok(Some(request));
        }
        // Within the frame limit, which the reader just checked. The length
        // is only a claim: the frame's buffer grows as its bytes arrive, a
        // chunk at a time, so a claim with nothing behind it costs nothing.
        let length = u32::from_be_bytes(prefix) as usize;
        let mut remaining = length;
        while remaining > 0 {
            let want = remaining.min(self.chunk.len());
            let read = read_up_to(recv, &mut self.chunk[..want]).await?;
            self.reader.extend(&self.chunk[..read]);
            if read < want {
                return Err(self.truncated());
            }
            remaining -= read;
        }
        let request = match self.reader.next_frame()? {
            Some(request) => request,
            None => return Err(self.truncated()),
        };
        if length > READ_BUFFER_KEPT_BYTES_MAX {
            self.reader = FrameReader::new(self.frame_bytes_max);
        }
        Ok(Some(request))
    }

    /// The error for a stream that ended inside a frame.
    fn truncated(&self) -> ReadFailure {
        match self.reader.finish() {
            Err(error) => ReadFailure::Frame(error),
            // Unreachable: the reader holds the partial frame. Answer it anyway.
            Ok(()) => ReadFailure::Frame(FrameError::Truncated { missing: 1 }),
        }
    }
}

/// Fills `buffer` from the stream; fewer bytes only if the stream ends first.
async fn read_up_to(recv: &mut RecvStream, buffer: &mut [u8]) -> Result<usize, ReadFailure> {
    match recv.read_exact(buffer).await {
        Ok(()) => Ok(buffer.len()),
        Err(ReadExactError::FinishedEarly(read)) => Ok(read),
        Err(ReadExactError::ReadError(error)) => Err(ReadFailure::Stream(error)),
    }
}

/// Answers a request about one order: checks that `caller` may do `action`,
/// parses the id, runs `call` with the scope, and answers with the order or
/// the refusal.
async fn on_order<F, Fut>(
    metrics: &RequestMetrics,
    caller: &Caller,
    action: Action,
    request_id: u64,
    raw_id: &str,
    call: F,
) -> Response
where
    F: FnOnce(flashgate_actors::domain::OrderId, Scope) -> Fut,
    Fut: std::future::Future<Output = Result<Order, flashgate_actors::NodeError>>,
{
    let result = async {
        let scope = authorize(caller, action)?;
        let id = order_id(raw_id)?;
        Ok::<_, RequestError>(call(id, scope).await?)
    }
    .await;
    single(
        metrics,
        request_id,
        result.map(|order| order_response(request_id, &order, false)),
    )
}

/// Counts an admin call refused for the admin token it sent (the
/// `admin_auth_failures` alert watches both front ends); one that sent none
/// is not a guess.
fn count_admin_refusal<T>(metrics: &RequestMetrics, result: &Result<T, RequestError>) {
    if let Err(RequestError::Forbidden(_) | RequestError::TooManyAuthFailures(_)) = result {
        metrics.admin_auth_refused();
    }
}

/// A wire order as a command that `scope` admits, within its customer's
/// rate limit, for a SKU without a waiting room unless `bypass` (a trusted
/// upstream's connection): the binary protocol carries no queue ticket.
fn admitted_order(
    shared: &Shared,
    scope: &Scope,
    order: &PlaceOrder,
    bypass: bool,
) -> Result<PlaceOrderCommand, RequestError> {
    let command = convert::place_order(order)?;
    scope.admits(&command.customer)?;
    shared
        .rate_limits
        .check_customer(&command.customer)
        .map_err(RequestError::RateLimited)?;
    if !bypass {
        let now = Timestamp::from_system_time(std::time::SystemTime::now());
        shared
            .waiting_rooms
            .check_order(
                command.sku.as_str(),
                command.customer.as_str(),
                None,
                None,
                now.0,
            )
            .map_err(RequestError::WaitingRoom)?;
    }
    Ok(command)
}

/// Runs one request against the node as `caller` and returns its answer;
/// counts its outcome.
async fn answer(shared: &Shared, caller: &Caller, bypass: bool, request: Request) -> Response {
    let started = Instant::now();
    let kind = kind_of(&request);
    let node = &shared.node;
    let metrics = &*shared.requests;
    let response = match request {
        // `dispatch` answers these in the reader; never started as a task.
        Request::Authenticate { request_id, .. } => single(
            metrics,
            request_id,
            Err(RequestError::Forbidden(
                "Authenticate is answered by the stream's reader".into(),
            )),
        ),
        Request::PlaceOrders { orders } => answer_batch(shared, caller, bypass, orders).await,
        Request::GetOrders {
            request_id,
            order_ids,
        } => {
            let result = read_orders(shared, caller, order_ids).await;
            single(
                metrics,
                request_id,
                result.map(|(orders, unknown)| Response::Orders {
                    request_id,
                    orders,
                    unknown,
                }),
            )
        }
        Request::PlaceOrder(order) => {
            let result = async {
                let scope = authorize(caller, Action::PlaceOrder)?;
                let command = admitted_order(shared, &scope, &order, bypass)?;
                Ok::<_, RequestError>(node.place_order(command).await?)
            }
            .await;
            metrics.order_outcome(Some(&order.sku), &result);
            single(
                metrics,
                order.request_id,
                result.map(|(placed, created)| order_response(order.request_id, &placed, created)),
            )
        }
        Request::GetOrder {
            request_id,
            order_id,
        } => {
            on_order(
                metrics,
                caller,
                Action::ReadOrder,
                request_id,
                &order_id,
                |id, scope| async move { node.order(id, scope.customer()).await },
            )
            .await
        }
        Request::Confirm {
            request_id,
            order_id,
        } => {
            on_order(
                metrics,
                caller,
                Action::ConfirmOrder,
                request_id,
                &order_id,
                |id, scope| node.confirm(id, scope.into_customer()),
            )
            .await
        }
        Request::Cancel {
            request_id,
            order_id,
        } => {
            on_order(
                metrics,
                caller,
                Action::CancelOrder,
                request_id,
                &order_id,
                |id, scope| node.cancel(id, scope.into_customer()),
            )
            .await
        }
        Request::Ship {
            request_id,
            order_id,
        } => {
            on_order(
                metrics,
                caller,
                Action::ShipOrder,
                request_id,
                &order_id,
                |id, _| node.ship(id),
            )
            .await
        }
        Request::ChangeOrder {
            request_id,
            order_id: raw_id,
            sku,
            quantity,
            idempotency_key,
        } => {
            // The HTTP `PATCH`'s checks in its order: who may, which order,
            // the key, then the change itself.
            let result = async {
                let scope = authorize(caller, Action::ChangeOrder)?;
                let id = order_id(&raw_id)?;
                let command = convert::change_order(
                    id,
                    scope.into_customer(),
                    sku.as_deref(),
                    quantity,
                    &idempotency_key,
                )?;
                Ok::<_, RequestError>(node.change_order(command).await?)
            }
            .await;
            single(
                metrics,
                request_id,
                result.map(|order| order_response(request_id, &order, false)),
            )
        }
        Request::GetSku { request_id, sku } => {
            let result: Result<_, RequestError> = async {
                authorize(caller, Action::ReadSkus)?;
                let id = SkuId::parse(&sku)?;
                let sku = node.sku(id.clone()).await?;
                let now = Timestamp::from_system_time(std::time::SystemTime::now());
                if !caller.sees_sku(sku.settings.sale_starts_at, now) {
                    return Err(NodeError::from(CoreError::UnknownSku(id)).into());
                }
                Ok(sku)
            }
            .await;
            single(
                metrics,
                request_id,
                result.map(|sku| Response::Sku {
                    request_id,
                    created: false,
                    sku: convert::sku_to_wire(&sku),
                }),
            )
        }
        Request::PutSku {
            request_id,
            admin_token,
            sku,
            settings,
        } => {
            let result: Result<_, RequestError> = async {
                if *caller != Caller::Admin {
                    convert::check_admin(&admin_token, &shared.admin_token)?;
                }
                Ok(node.put_sku(convert::put_sku(&sku, &settings)?).await?)
            }
            .await;
            count_admin_refusal(metrics, &result);
            single(
                metrics,
                request_id,
                result.map(|(sku, created)| Response::Sku {
                    request_id,
                    created,
                    sku: convert::sku_to_wire(&sku),
                }),
            )
        }
        Request::Restock {
            request_id,
            admin_token,
            sku,
            quantity,
        } => {
            let result: Result<_, RequestError> = async {
                if *caller != Caller::Admin {
                    convert::check_admin(&admin_token, &shared.admin_token)?;
                }
                Ok(node.restock(convert::restock(&sku, quantity)?).await?)
            }
            .await;
            count_admin_refusal(metrics, &result);
            single(
                metrics,
                request_id,
                result.map(|sku| Response::Sku {
                    request_id,
                    created: false,
                    sku: convert::sku_to_wire(&sku),
                }),
            )
        }
    };
    metrics.quic_duration(kind, started.elapsed());
    response
}

/// A batch: each order checked on its own (a bad one, or one the caller may
/// not place, is an `Error` in its place), the good ones placed together, the
/// answers in the batch's order.
async fn answer_batch(
    shared: &Shared,
    caller: &Caller,
    bypass: bool,
    orders: Vec<PlaceOrder>,
) -> Response {
    let mut refusals = Vec::with_capacity(orders.len());
    let mut commands = Vec::with_capacity(orders.len());
    let scope = authorize(caller, Action::PlaceOrder);
    for order in &orders {
        let command = match &scope {
            Ok(scope) => admitted_order(shared, scope, order, bypass),
            Err(refusal) => Err(refusal.clone().into()),
        };
        match command {
            Ok(command) => {
                commands.push(command);
                refusals.push(None);
            }
            Err(error) => refusals.push(Some(error)),
        }
    }
    let command_count = commands.len();
    let placed = shared.node.place_orders(commands).await;
    assert_eq!(placed.len(), command_count, "one answer per order");
    let mut placed = placed.into_iter();
    let results = orders
        .iter()
        .zip(refusals)
        .map(|(order, refusal)| {
            let result = match refusal {
                Some(error) => Err(error),
                None => placed
                    .next()
                    .expect("one answer per placed order, as asserted")
                    .map_err(RequestError::from),
            };
            shared.requests.order_outcome(Some(&order.sku), &result);
            let result =
                result.map(|(placed, created)| order_response(order.request_id, &placed, created));
            single(&shared.requests, order.request_id, result)
        })
        .collect();
    Response::Batch { results }
}

/// A batched read: the orders `caller` may see, and the ids it cannot (not an
/// order id, no such order, another buyer's), as given. More ids than
/// `orders_read_max` are refused whole, as the HTTP read refuses them.
async fn read_orders(
    shared: &Shared,
    caller: &Caller,
    order_ids: Vec<String>,
) -> Result<(Vec<flashgate_protocol::Order>, Vec<String>), RequestError> {
    let scope = authorize(caller, Action::ReadOrder)?;
    let max = shared.limits.orders_read_max;
    if order_ids.len() > max {
        return Err(RequestError::ReadTooLarge {
            ids: order_ids.len(),
            max,
        });
    }
    let mut ids = Vec::with_capacity(order_ids.len());
    let mut unknown = Vec::new();
    let mut asked = Vec::with_capacity(order_ids.len());
    for raw in order_ids {
        match order_id(&raw) {
            Ok(id) => {
                ids.push(id);
                asked.push(raw);
            }
            Err(_) => unknown.push(raw),
        }
    }
    let found = shared.node.orders(&ids, scope.customer()).await?;
    let mut orders = Vec::with_capacity(found.len());
    for (raw, order) in asked.into_iter().zip(found) {
        match order {
            Some(order) => orders.push(convert::order_to_wire(&order)),
            None => unknown.push(raw),
        }
    }
    Ok((orders, unknown))
}

/// The answer to one request (or one order of a batch); counts its outcome.
fn single(
    metrics: &RequestMetrics,
    request_id: u64,
    result: Result<Response, RequestError>,
) -> Response {
    metrics.quic_request(result.as_ref().map(|_| ()));
    result.unwrap_or_else(|error| Response::Error {
        request_id,
        code: error.code().to_owned(),
        detail: error.to_string(),
    })
}

fn order_response(request_id: u64, order: &Order, created: bool) -> Response {
    Response::Order {
        request_id,
        created,
        order: convert::order_to_wire(order),
    }
}

/// The immediate answer to a request over the in-flight limit: an error under
/// its id, or for a batch an error under each order's id.
fn too_many_in_flight(metrics: &RequestMetrics, request: Request, limit: usize) -> Response {
    let refuse = |request_id| {
        single(
            metrics,
            request_id,
            Err(RequestError::TooManyInFlight(limit)),
        )
    };
    match request {
        Request::PlaceOrders { orders } => Response::Batch {
            results: orders
                .iter()
                .map(|order| refuse(order.request_id))
                .collect(),
        },
        other => refuse(other.request_id().unwrap_or_default()),
    }
}

/// A bounded label for the latency histogram.
fn kind_of(request: &Request) -> &'static str {
    match request {
        Request::PlaceOrder(_) => "place_order",
        Request::GetOrder { .. } => "get_order",
        Request::Confirm { .. } => "confirm",
        Request::Cancel { .. } => "cancel",
        Request::GetSku { .. } => "get_sku",
        Request::PlaceOrders { .. } => "place_orders",
        Request::PutSku { .. } => "put_sku",
        Request::Restock { .. } => "restock",
        Request::Authenticate { .. } => "authenticate",
        Request::GetOrders { .. } => "get_orders",
        Request::Ship { .. } => "ship",
        Request::ChangeOrder { .. } => "change_order",
    }
}
