//! `QuicClient`: the binary protocol over QUIC, pipelined.
//!
//! Requests are spread round-robin over a small pool of bidirectional streams
//! on one connection. Each stream has a writer task, which writes frames in the
//! order they were queued and coalesces the frames already waiting into one
//! write, and a reader task, which cuts answers out of the stream and hands each
//! to the request waiting under its request id (`Pending`); answers arrive in
//! any order. A stream the server refuses a frame on (`FrameError`) takes no
//! new requests: its reader collects the answers the server still sends, fails
//! the requests left unanswered when the server ends the stream, and the next
//! request that picks its slot opens a new stream. A lost connection fails every
//! waiting request, and the next call reconnects.
//!
//! With several server addresses (the nodes of one cluster) the client keeps
//! at most one connection per node and sends each call to the node its route
//! points to (`Cluster`): a `not_primary` answer or a node that cannot be
//! reached moves the call, and the client, to the next node.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use flashgate_protocol::{
    code, encode_frame, FrameReader, Order, Request, Response, Sku, SkuSettings,
    FRAME_BYTES_MAX_LIMIT, FRAME_HEADER_BYTES,
};
use quinn::crypto::rustls::QuicClientConfig;
use tokio::sync::{mpsc, oneshot, Semaphore, SemaphorePermit};

use crate::api::{
    missing_admin_token, ChangeOrder, Changed, OrderGateway, OrdersRead, PlaceOrder, Placed,
};
use crate::cluster::{Attempted, Cluster};
use crate::error::{ClientError, TransportError};
use crate::failover::{FailoverConfig, Failure, NodeSwitch, Resend};
use crate::pending::{Pending, Routed};
use crate::trust::{client_tls_config, Trust};

/// Most server addresses a config may list.
pub const SERVER_ADDRS_MAX: usize = 16;
/// Most streams a connection's pool may hold.
pub const STREAMS_MAX: usize = 64;
/// The highest `requests_in_flight_max` a config may set.
pub const REQUESTS_IN_FLIGHT_MAX_LIMIT: usize = 65_536;
/// The highest `connect_attempts_max` a config may set.
pub const CONNECT_ATTEMPTS_MAX_LIMIT: u32 = 100;
/// The longest wait between two connect rounds of `QuicClient::connect`,
/// however often the backoff doubles.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// The writer coalesces waiting frames into one write up to this many bytes.
const WRITE_BATCH_BYTES_MAX: usize = 64 * 1024;
/// The reader's buffer for one read from the stream.
const READ_CHUNK_BYTES: usize = 64 * 1024;
/// Times a call looks for a usable stream before sending (a stream may fail
/// between being picked and being used; nothing was sent on it yet).
const STREAM_ATTEMPTS_MAX: usize = 3;

/// How to reach and trust the server, and the client's limits. Build it with
/// `QuicConfig::new` and change the fields you need.
#[derive(Clone, Debug)]
pub struct QuicConfig {
    /// The server, or the nodes of one cluster (a primary and its standby,
    /// in any order), 1 to `SERVER_ADDRS_MAX`. `QuicClient::connect` uses the
    /// first that completes a handshake; calls then follow the primary among
    /// them (see `failover`).
    pub server_addrs: Vec<SocketAddr>,
    /// The name the certificate is checked against (with `Trust::Certificate`
    /// chains) and sent as SNI. Default `localhost`.
    pub server_name: String,
    /// How every node's certificate is checked.
    pub trust: Trust,
    /// Sent with the admin calls (`put_sku`, `restock`); without it they fail
    /// with `ClientError::Config` and send nothing.
    pub admin_token: Option<String>,
    /// Who every connection acts as (a service, payments, operator or admin
    /// token, or a buyer token): sent in an `Authenticate` request right after
    /// each handshake, before any call. A refusal fails the connect with
    /// `ClientError::Server` (`unauthorized`, `too_many_auth_failures`).
    /// Without it the connection is anonymous: on a node that needs
    /// credentials only the catalogue answers.
    pub credential: Option<String>,
    /// Streams requests are spread over, 1 to `STREAMS_MAX`. Default 4.
    pub stream_count: usize,
    /// The longest one attempt at one node waits for its answer, from its
    /// start; the first attempt's clock starts with the call, so waiting for
    /// an in-flight slot counts. Failover may make further attempts, each
    /// with this timeout. Default 10 s.
    pub request_timeout: Duration,
    /// Requests (a batch counts each order) in flight at once on this client;
    /// more wait for a slot. 1 to `REQUESTS_IN_FLIGHT_MAX_LIMIT`. Default 256.
    pub requests_in_flight_max: usize,
    /// The longest one handshake with one address may take. A node that is
    /// down is noticed after this (QUIC runs over UDP: nothing refuses the
    /// connection), so keep it short for a cluster. Default 5 s.
    pub connect_timeout: Duration,
    /// Rounds over `server_addrs` that `QuicClient::connect` makes before it
    /// gives up, 1 to `CONNECT_ATTEMPTS_MAX_LIMIT`. Later connects are made by
    /// the calls, under `failover`. Default 3.
    pub connect_attempts_max: u32,
    /// `QuicClient::connect`'s wait before its second round, doubled for each
    /// further round up to `RECONNECT_BACKOFF_MAX`. Default 100 ms.
    pub reconnect_backoff: Duration,
    /// The largest answer frame accepted; a larger one fails its stream with
    /// `ClientError::Protocol`. Up to `FRAME_BYTES_MAX_LIMIT`. Default 4 MiB.
    pub response_frame_bytes_max: usize,
    /// Pings on an idle connection so it stays open. Default 2 s.
    pub keep_alive_interval: Duration,
    /// The connection counts as lost after this long without hearing from the
    /// server (the server's own idle timeout may make it shorter). This is how
    /// a server that vanished without closing the connection is noticed: calls
    /// until then time out, the first call after it reconnects. Default 10 s.
    pub idle_timeout: Duration,
    /// How calls move between nodes, and for how long. Default
    /// `FailoverConfig::default()` (10 s).
    pub failover: FailoverConfig,
}

impl QuicConfig {
    /// Defaults for everything but where the server is and how to trust it.
    pub fn new(server_addrs: Vec<SocketAddr>, trust: Trust) -> QuicConfig {
        QuicConfig {
            server_addrs,
            server_name: "localhost".into(),
            trust,
            admin_token: None,
            credential: None,
            stream_count: 4,
            request_timeout: Duration::from_secs(10),
            requests_in_flight_max: 256,
            connect_timeout: Duration::from_secs(5),
            connect_attempts_max: 3,
            reconnect_backoff: Duration::from_millis(100),
            response_frame_bytes_max: 4 << 20,
            keep_alive_interval: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(10),
            failover: FailoverConfig::default(),
        }
    }

    fn validate(&self) -> Result<(), ClientError> {
        let bad = |message: String| Err(ClientError::Config(message));
        if self.server_addrs.is_empty() || self.server_addrs.len() > SERVER_ADDRS_MAX {
            return bad(format!(
                "server_addrs: give 1 to {SERVER_ADDRS_MAX} addresses, not {}",
                self.server_addrs.len()
            ));
        }
        if rustls_pki_types::ServerName::try_from(self.server_name.as_str()).is_err() {
            return bad(format!(
                "server_name: {:?} is not a DNS name or IP address",
                self.server_name
            ));
        }
        if !(1..=STREAMS_MAX).contains(&self.stream_count) {
            return bad(format!("stream_count: must be 1 to {STREAMS_MAX}"));
        }
        if !(1..=REQUESTS_IN_FLIGHT_MAX_LIMIT).contains(&self.requests_in_flight_max) {
            return bad(format!(
                "requests_in_flight_max: must be 1 to {REQUESTS_IN_FLIGHT_MAX_LIMIT}"
            ));
        }
        if !(1..=CONNECT_ATTEMPTS_MAX_LIMIT).contains(&self.connect_attempts_max) {
            return bad(format!(
                "connect_attempts_max: must be 1 to {CONNECT_ATTEMPTS_MAX_LIMIT}"
            ));
        }
        if !(FRAME_HEADER_BYTES + 1..=FRAME_BYTES_MAX_LIMIT)
            .contains(&self.response_frame_bytes_max)
        {
            return bad(format!(
                "response_frame_bytes_max: must be {} to {FRAME_BYTES_MAX_LIMIT}",
                FRAME_HEADER_BYTES + 1
            ));
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("request_timeout and connect_timeout: must be more than 0".into());
        }
        if self.keep_alive_interval.is_zero() || self.keep_alive_interval >= self.idle_timeout {
            return bad(
                "keep_alive_interval: must be more than 0 and less than idle_timeout".into(),
            );
        }
        self.failover.validate()
    }

    fn quinn_config(&self) -> Result<quinn::ClientConfig, ClientError> {
        let tls = client_tls_config(&self.trust)?;
        let crypto = QuicClientConfig::try_from(tls)
            .map_err(|error| ClientError::Config(format!("TLS for QUIC: {error}")))?;
        let mut transport = quinn::TransportConfig::default();
        let idle_timeout = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| ClientError::Config("idle_timeout: too long for QUIC".into()))?;
        transport
            .max_idle_timeout(Some(idle_timeout))
            .keep_alive_interval(Some(self.keep_alive_interval))
            // The server never opens streams towards the client.
            .max_concurrent_bidi_streams(0u32.into())
            .max_concurrent_uni_streams(0u32.into());
        let mut config = quinn::ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

/// A client of the binary protocol. Cheap to clone: clones share the
/// connections, their streams, the in-flight limit and the route among the
/// nodes. Dropping the last clone closes the connections.
#[derive(Clone)]
pub struct QuicClient {
    inner: Arc<Inner>,
}

struct Inner {
    config: QuicConfig,
    quinn_config: quinn::ClientConfig,
    /// One UDP endpoint per address family among `server_addrs`.
    endpoints: Vec<quinn::Endpoint>,
    next_request_id: AtomicU64,
    next_stream: AtomicUsize,
    in_flight: Semaphore,
    /// Which node calls go to, and which answered last.
    cluster: Cluster,
    /// One per server address, in the config's order.
    nodes: Vec<Node>,
}

/// One node of the cluster and the client's connection to it.
struct Node {
    addr: SocketAddr,
    /// The connection in use; `None` or closed means the next call to this
    /// node reconnects.
    current: Mutex<Option<Arc<Connection>>>,
    /// Held while reconnecting, so concurrent calls share one reconnect.
    reconnecting: tokio::sync::Mutex<()>,
    /// When the last reconnect failed, and why: calls that waited for it fail
    /// with its error instead of trying again at once.
    last_connect_failure: Mutex<Option<(Instant, ClientError)>>,
}

impl Node {
    fn live_connection(&self) -> Option<Arc<Connection>> {
        lock(&self.current)
            .as_ref()
            .filter(|connection| connection.is_live())
            .cloned()
    }

    fn close(&self, reason: &[u8]) {
        if let Some(connection) = lock(&self.current).take() {
            connection.quic.close(0u32.into(), reason);
        }
    }
}

/// One QUIC connection and its pool of streams.
struct Connection {
    quic: quinn::Connection,
    /// Opened on first use and reopened after a failure.
    streams: Vec<tokio::sync::Mutex<Option<Arc<Stream>>>>,
}

type Waiter = oneshot::Sender<Result<Response, ClientError>>;

/// One bidirectional stream: a queue of frames to its writer task, and the
/// requests its reader task answers.
struct Stream {
    frames: mpsc::Sender<Vec<u8>>,
    pending: Arc<Mutex<Pending<Waiter>>>,
}

/// Locks a std mutex, ignoring poisoning: every critical section here leaves
/// its data consistent before anything that could panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn connection_lost(reason: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(TransportError::ConnectionLost(reason.to_string()))
}

/// A failure before the request was sent.
fn not_sent(reason: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(TransportError::Connect(reason.to_string()))
}

/// Sorts one attempt's outcome for failover: `not_primary` and transport
/// failures may move the call on; everything else is the node's answer.
fn sort_attempt(result: Result<Response, ClientError>) -> Attempted<Response> {
    match result {
        Ok(Response::Error { code, detail, .. }) if code == code::NOT_PRIMARY => Attempted::Failed(
            Failure::NotPrimary { primary: None },
            ClientError::Server { code, detail },
        ),
        Ok(answer) => Attempted::Answered(Ok(answer)),
        Err(error @ ClientError::Transport(TransportError::Connect(_))) => {
            Attempted::Failed(Failure::NotSent, error)
        }
        Err(error @ ClientError::Transport(_)) => Attempted::Failed(Failure::Unanswered, error),
        Err(error) => Attempted::Answered(Err(error)),
    }
}

impl QuicClient {
    /// Checks the config and connects to the first of `server_addrs` that
    /// completes a handshake (trying them all up to `connect_attempts_max`
    /// rounds); calls start at that node. Returns `Config` for a config that
    /// cannot work and `Transport` if no server answered.
    pub async fn connect(config: QuicConfig) -> Result<QuicClient, ClientError> {
        config.validate()?;
        let quinn_config = config.quinn_config()?;
        let mut endpoints = Vec::new();
        for ipv6 in [false, true] {
            if !config
                .server_addrs
                .iter()
                .any(|addr| addr.is_ipv6() == ipv6)
            {
                continue;
            }
            let bind: SocketAddr = if ipv6 {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            };
            let endpoint = quinn::Endpoint::client(bind).map_err(|error| {
                ClientError::Transport(TransportError::Connect(format!(
                    "cannot open a UDP socket on {bind}: {error}"
                )))
            })?;
            endpoints.push(endpoint);
        }
        let nodes = config
            .server_addrs
            .iter()
            .map(|&addr| Node {
                addr,
                current: Mutex::new(None),
                reconnecting: tokio::sync::Mutex::new(()),
                last_connect_failure: Mutex::new(None),
            })
            .collect();
        let names = config
            .server_addrs
            .iter()
            .map(ToString::to_string)
            .collect();
        let inner = Arc::new(Inner {
            in_flight: Semaphore::new(config.requests_in_flight_max),
            cluster: Cluster::new(config.failover, names),
            config,
            quinn_config,
            endpoints,
            next_request_id: AtomicU64::new(1),
            next_stream: AtomicUsize::new(0),
            nodes,
        });
        inner.connect_first().await?;
        Ok(QuicClient { inner })
    }

    /// The address of the node calls go to, if connected to it.
    pub fn server_addr(&self) -> Option<SocketAddr> {
        let node = &self.inner.nodes[self.inner.cluster.next_attempt().node];
        node.live_connection()
            .map(|connection| connection.quic.remote_address())
    }

    /// Closes the connections (failing requests still in flight with
    /// `Transport`) and waits until the servers have been told. Later calls
    /// reconnect.
    pub async fn close(&self) {
        for node in &self.inner.nodes {
            node.close(b"client closed");
        }
        for endpoint in &self.inner.endpoints {
            endpoint.wait_idle().await;
        }
    }

    fn admin_token(&self) -> Result<String, ClientError> {
        self.inner
            .config
            .admin_token
            .clone()
            .ok_or_else(missing_admin_token)
    }

    /// Sends a request, following the primary: `build` makes it under a fresh
    /// request id for each attempt. Returns its answer (an `Error` answer
    /// becomes `ClientError::Server`).
    async fn request(
        &self,
        resend: Resend,
        build: impl Fn(u64) -> Request,
    ) -> Result<Response, ClientError> {
        let inner = &self.inner;
        let (_slots, first_deadline) = inner.slots(1).await?;
        let mut first_deadline = Some(first_deadline);
        let answer = inner
            .cluster
            .call(resend, |node| {
                let deadline = first_deadline
                    .take()
                    .unwrap_or_else(|| Instant::now() + inner.config.request_timeout);
                let request_id = inner.next_request_id.fetch_add(1, Ordering::Relaxed);
                let mut frame = Vec::new();
                encode_frame(&build(request_id), &mut frame);
                async move { sort_attempt(inner.attempt(node, request_id, frame, deadline).await) }
            })
            .await?;
        match answer {
            Response::Error { code, detail, .. } => Err(ClientError::Server { code, detail }),
            answer => Ok(answer),
        }
    }

    async fn order_request(
        &self,
        resend: Resend,
        build: impl Fn(u64) -> Request,
    ) -> Result<(Order, bool), ClientError> {
        match self.request(resend, build).await? {
            Response::Order { order, created, .. } => Ok((order, created)),
            other => Err(unexpected("an Order", &other)),
        }
    }

    async fn sku_request(
        &self,
        resend: Resend,
        build: impl Fn(u64) -> Request,
    ) -> Result<(Sku, bool), ClientError> {
        match self.request(resend, build).await? {
            Response::Sku { sku, created, .. } => Ok((sku, created)),
            other => Err(unexpected("a Sku", &other)),
        }
    }

    /// Sends the orders still without a result as one `PlaceOrders` frame per
    /// attempt, following the primary. Orders a node refused as `not_primary`
    /// go again to the next node; after a frame that got no answer, all of
    /// them go again only if every one carries an idempotency key.
    async fn place_batch_following(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
        let inner = &self.inner;
        let count = orders.len();
        let permits = count.min(inner.config.requests_in_flight_max) as u32;
        let (_slots, first_deadline) = inner.slots(permits).await?;
        let mut deadline = first_deadline;
        let mut results: Vec<Option<Result<Placed, ClientError>>> = vec![None; count];
        let mut attempts = inner.cluster.attempts();
        loop {
            let waiting: Vec<usize> = (0..count).filter(|&i| results[i].is_none()).collect();
            let resend = Resend::orders(
                waiting
                    .iter()
                    .map(|&i| orders[i].idempotency_key.as_deref()),
            );
            let first_request_id = inner
                .next_request_id
                .fetch_add(waiting.len() as u64, Ordering::Relaxed);
            let frame_orders = (first_request_id..)
                .zip(&waiting)
                .map(|(request_id, &i)| protocol_order(request_id, orders[i].clone()))
                .collect();
            let mut frame = Vec::new();
            encode_frame(
                &Request::PlaceOrders {
                    orders: frame_orders,
                },
                &mut frame,
            );
            let at = inner.cluster.next_attempt();
            let outcome = inner
                .attempt(at.node, first_request_id, frame, deadline)
                .await;
            let (failure, error) = match sort_attempt(outcome) {
                Attempted::Answered(answer) => {
                    match answer
                        .and_then(|answer| batch_answer(answer, first_request_id, waiting.len()))
                    {
                        Ok(answers) => {
                            let (served, refused) = file_answers(&waiting, answers, &mut results);
                            if served {
                                inner.cluster.answered(at);
                            }
                            match refused {
                                None => break,
                                Some(error) => (Failure::NotPrimary { primary: None }, error),
                            }
                        }
                        Err(error) => {
                            inner.cluster.answered(at);
                            return finish_batch(results, error);
                        }
                    }
                }
                Attempted::Failed(failure, error) => (failure, error),
            };
            if let Err(error) = inner
                .cluster
                .failed(&mut attempts, at, failure, error, resend)
                .await
            {
                return finish_batch(results, error);
            }
            deadline = Instant::now() + inner.config.request_timeout;
        }
        Ok(results.into_iter().flatten().collect())
    }
}

/// Files one batch attempt's answers under the orders they answer (`waiting`
/// holds those orders' places in the batch). Orders refused as `not_primary`
/// stay without a result, to go again. Returns whether the node answered some
/// order for real, and a `not_primary` refusal if it gave one.
fn file_answers(
    waiting: &[usize],
    answers: Vec<Result<Placed, ClientError>>,
    results: &mut [Option<Result<Placed, ClientError>>],
) -> (bool, Option<ClientError>) {
    let mut served = false;
    let mut refused = None;
    for (&i, answer) in waiting.iter().zip(answers) {
        match answer {
            Err(error) if error.code() == Some(code::NOT_PRIMARY) => refused = Some(error),
            answer => {
                results[i] = Some(answer);
                served = true;
            }
        }
    }
    (served, refused)
}

/// A batch's results when the call stops early: the orders without a result
/// get `error`; when none has one, the whole call fails with it.
fn finish_batch(
    results: Vec<Option<Result<Placed, ClientError>>>,
    error: ClientError,
) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
    if results.iter().all(Option::is_none) {
        return Err(error);
    }
    Ok(results
        .into_iter()
        .map(|result| result.unwrap_or_else(|| Err(error.clone())))
        .collect())
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The streams' reader tasks keep a connection open until it closes.
        for node in &self.nodes {
            node.close(b"client dropped");
        }
    }
}

fn protocol_order(request_id: u64, order: PlaceOrder) -> flashgate_protocol::PlaceOrder {
    flashgate_protocol::PlaceOrder {
        request_id,
        sku: order.sku,
        quantity: order.quantity,
        customer_id: order.customer_id,
        idempotency_key: order.idempotency_key,
    }
}

fn kind(response: &Response) -> &'static str {
    match response {
        Response::Order { .. } => "Order",
        Response::Sku { .. } => "Sku",
        Response::Error { .. } => "Error",
        Response::Batch { .. } => "Batch",
        Response::FrameError { .. } => "FrameError",
        Response::Authenticated { .. } => "Authenticated",
        Response::Orders { .. } => "Orders",
    }
}

fn unexpected(expected: &str, got: &Response) -> ClientError {
    ClientError::Protocol(format!(
        "expected {expected} answer, got a {} answer",
        kind(got)
    ))
}

/// Reads a `PlaceOrders` answer: one result per order, in order, each an
/// `Order` or an `Error` under that order's request id. A whole-batch `Error`
/// is the batch's refusal.
fn batch_answer(
    answer: Response,
    first_request_id: u64,
    count: usize,
) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
    let results = match answer {
        Response::Batch { results } => results,
        Response::Error { code, detail, .. } => return Err(ClientError::Server { code, detail }),
        other => return Err(unexpected("a Batch", &other)),
    };
    if results.len() != count {
        return Err(ClientError::Protocol(format!(
            "a batch of {count} orders got {} results",
            results.len()
        )));
    }
    let mut placed = Vec::with_capacity(count);
    for (request_id, result) in (first_request_id..).zip(results) {
        if result.request_id() != Some(request_id) {
            return Err(ClientError::Protocol(format!(
                "a batch result answers request {:?} where {request_id} was expected",
                result.request_id()
            )));
        }
        placed.push(match result {
            Response::Order { order, created, .. } => Ok(Placed { order, created }),
            Response::Error { code, detail, .. } => Err(ClientError::Server { code, detail }),
            other => return Err(unexpected("an Order or Error batch result", &other)),
        });
    }
    Ok(placed)
}

/// A request handed to a stream's writer, and where its answer will come.
struct Sent {
    answer: oneshot::Receiver<Result<Response, ClientError>>,
    /// Stops waiting (removes the waiter) however the attempt ends.
    _registration: Registration,
}

impl Inner {
    /// Takes `permits` in-flight slots, waiting at most the request timeout.
    /// Returns them and the first attempt's deadline (the call's start plus
    /// the request timeout).
    async fn slots(&self, permits: u32) -> Result<(SemaphorePermit<'_>, Instant), ClientError> {
        let deadline = Instant::now() + self.config.request_timeout;
        match tokio::time::timeout_at(deadline.into(), self.in_flight.acquire_many(permits)).await {
            Ok(Ok(slots)) => Ok((slots, deadline)),
            Ok(Err(_)) => Err(not_sent("the client is shutting down")),
            Err(_) => Err(not_sent(format!(
                "all {} in-flight slots stayed busy for the request timeout ({})",
                self.config.requests_in_flight_max,
                humantime::format_duration(self.config.request_timeout)
            ))),
        }
    }

    /// One attempt at node `node`: sends the frame, answered under
    /// `request_id`, and waits for the answer until `deadline`. A failure
    /// before the frame was handed to a stream is `TransportError::Connect`.
    async fn attempt(
        &self,
        node: usize,
        request_id: u64,
        frame: Vec<u8>,
        deadline: Instant,
    ) -> Result<Response, ClientError> {
        let sent = match tokio::time::timeout_at(
            deadline.into(),
            self.send(node, request_id, frame),
        )
        .await
        {
            Ok(sent) => sent?,
            Err(_) => {
                return Err(not_sent(format!(
                    "no connection to {} within the request timeout",
                    self.nodes[node].addr
                )))
            }
        };
        match tokio::time::timeout_at(deadline.into(), sent.answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(connection_lost("the stream closed without an answer")),
            Err(_) => Err(TransportError::Timeout {
                after: self.config.request_timeout,
            }
            .into()),
        }
    }

    /// Hands the frame to a stream of node `node`'s connection, connecting
    /// first if needed.
    async fn send(
        &self,
        node: usize,
        request_id: u64,
        mut frame: Vec<u8>,
    ) -> Result<Sent, ClientError> {
        let mut last_error = not_sent("no stream could be opened");
        for _ in 0..STREAM_ATTEMPTS_MAX {
            let connection = self.connection(node).await?;
            let index = self.next_stream.fetch_add(1, Ordering::Relaxed) % connection.streams.len();
            let stream = match connection.stream(index, &self.config).await {
                Ok(stream) => stream,
                Err(error) => {
                    last_error = error;
                    continue;
                }
            };
            match stream.send_frame(request_id, frame).await {
                Ok(sent) => return Ok(sent),
                Err(unsent) => {
                    frame = unsent;
                    last_error = not_sent("the stream closed before the request was sent");
                }
            }
        }
        Err(last_error)
    }

    /// The first connection, for `QuicClient::connect`: rounds over the
    /// nodes until one completes a handshake; calls start at that node.
    async fn connect_first(&self) -> Result<(), ClientError> {
        let mut backoff = self.config.reconnect_backoff;
        let mut failures = Vec::new();
        for round in 1..=self.config.connect_attempts_max {
            failures.clear();
            for (index, node) in self.nodes.iter().enumerate() {
                match self.connect_once(node.addr).await {
                    Ok(connection) => {
                        tracing::info!(addr = %node.addr, "connected to flashgate over QUIC");
                        *lock(&node.current) = Some(connection);
                        self.cluster.start_at(index);
                        return Ok(());
                    }
                    Err(failure) => {
                        tracing::warn!(addr = %node.addr, round, %failure, "QUIC connect failed");
                        failures.push(format!("{}: {failure}", node.addr));
                    }
                }
            }
            if round < self.config.connect_attempts_max {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
            }
        }
        Err(TransportError::Connect(format!(
            "no address answered in {} round(s) of attempts; last round: {}",
            self.config.connect_attempts_max,
            failures.join("; ")
        ))
        .into())
    }

    /// The live connection to node `node`, reconnecting first if there is
    /// none. One handshake per call: moving on to another node is failover's.
    async fn connection(&self, node: usize) -> Result<Arc<Connection>, ClientError> {
        let node = &self.nodes[node];
        if let Some(connection) = node.live_connection() {
            return Ok(connection);
        }
        let waiting_since = Instant::now();
        let _reconnecting = node.reconnecting.lock().await;
        if let Some(connection) = node.live_connection() {
            return Ok(connection);
        }
        if let Some((failed_at, error)) = lock(&node.last_connect_failure).as_ref() {
            if *failed_at >= waiting_since {
                return Err(error.clone());
            }
        }
        match self.connect_once(node.addr).await {
            Ok(connection) => {
                tracing::info!(addr = %node.addr, "connected to flashgate over QUIC");
                *lock(&node.current) = Some(connection.clone());
                Ok(connection)
            }
            Err(failure) => {
                tracing::warn!(addr = %node.addr, %failure, "QUIC connect failed");
                let error = not_sent(format!("cannot connect to {}: {failure}", node.addr));
                *lock(&node.last_connect_failure) = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// A handshake, then `Authenticate` when the config has a credential.
    async fn connect_once(&self, addr: SocketAddr) -> Result<Arc<Connection>, String> {
        let connection = Connection::new(self.handshake(addr).await?, &self.config);
        if let Some(credential) = &self.config.credential {
            let request_id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
            let authenticated = tokio::time::timeout(
                self.config.connect_timeout,
                connection.authenticate(request_id, credential, &self.config),
            )
            .await
            .unwrap_or_else(|_| Err("no answer to Authenticate within the connect timeout".into()));
            if let Err(failure) = authenticated {
                connection
                    .quic
                    .close(0u32.into(), b"authentication refused");
                return Err(failure);
            }
        }
        Ok(connection)
    }

    async fn handshake(&self, addr: SocketAddr) -> Result<quinn::Connection, String> {
        let endpoint = self
            .endpoints
            .iter()
            .find(|endpoint| {
                endpoint
                    .local_addr()
                    .is_ok_and(|local| local.is_ipv6() == addr.is_ipv6())
            })
            .ok_or("no UDP socket for this address family")?;
        let connecting = endpoint
            .connect_with(self.quinn_config.clone(), addr, &self.config.server_name)
            .map_err(|error| error.to_string())?;
        match tokio::time::timeout(self.config.connect_timeout, connecting).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!(
                "no handshake within {}",
                humantime::format_duration(self.config.connect_timeout)
            )),
        }
    }
}

impl Connection {
    fn new(quic: quinn::Connection, config: &QuicConfig) -> Arc<Connection> {
        let streams = (0..config.stream_count)
            .map(|_| tokio::sync::Mutex::new(None))
            .collect();
        Arc::new(Connection { quic, streams })
    }

    fn is_live(&self) -> bool {
        self.quic.close_reason().is_none()
    }

    /// Sends `Authenticate` with `credential` as the first frame of the
    /// pool's first stream and waits for `Authenticated`: the server answers
    /// it before reading further, and the connection acts as that caller on
    /// every stream. No stream is opened for it alone: the server gives a
    /// finished stream's place back only once an eighth of its stream limit
    /// has finished (quinn batches `MAX_STREAMS`), so a stream used once and
    /// finished would keep a pool as large as that limit from opening its
    /// last stream.
    async fn authenticate(
        &self,
        request_id: u64,
        credential: &str,
        config: &QuicConfig,
    ) -> Result<(), String> {
        let stream = self
            .stream(0, config)
            .await
            .map_err(|error| format!("cannot open a stream to authenticate: {error}"))?;
        let mut frame = Vec::new();
        flashgate_protocol::encode_frame(
            &Request::Authenticate {
                request_id,
                credential: credential.to_owned(),
            },
            &mut frame,
        );
        let sent = stream
            .send_frame(request_id, frame)
            .await
            .map_err(|_| "the stream closed before Authenticate was sent".to_owned())?;
        match sent.answer.await {
            Ok(Ok(Response::Authenticated { .. })) => Ok(()),
            Ok(Ok(Response::Error { code, detail, .. })) => Err(format!(
                "the server refused the credential: {code}: {detail}"
            )),
            Ok(Ok(other)) => Err(format!(
                "expected an Authenticated answer, got a {} answer",
                kind(&other)
            )),
            Ok(Err(error)) => Err(format!("no answer to Authenticate: {error}")),
            Err(_) => Err("the stream ended without an answer to Authenticate".into()),
        }
    }

    /// Stream `index` of the pool, opened (again) if it is not open.
    async fn stream(&self, index: usize, config: &QuicConfig) -> Result<Arc<Stream>, ClientError> {
        let mut slot = self.streams[index].lock().await;
        if let Some(stream) = slot.as_ref().filter(|stream| stream.is_accepting()) {
            return Ok(stream.clone());
        }
        let (send, recv) = self
            .quic
            .open_bi()
            .await
            .map_err(|error| not_sent(format!("cannot open a stream: {error}")))?;
        let stream = Stream::start(send, recv, config);
        *slot = Some(stream.clone());
        Ok(stream)
    }
}

impl Stream {
    fn start(send: quinn::SendStream, recv: quinn::RecvStream, config: &QuicConfig) -> Arc<Stream> {
        let pending = Arc::new(Mutex::new(Pending::default()));
        // Bounded by the in-flight limit: a queued frame holds a slot.
        let (frames, queue) = mpsc::channel(config.requests_in_flight_max);
        tokio::spawn(write_frames(send, queue, pending.clone()));
        tokio::spawn(read_answers(
            recv,
            pending.clone(),
            config.response_frame_bytes_max,
        ));
        Arc::new(Stream { frames, pending })
    }

    /// Whether new requests may go on this stream.
    fn is_accepting(&self) -> bool {
        lock(&self.pending).is_accepting()
    }

    /// Registers a waiter for `request_id` and hands `frame` to the writer.
    /// Gives the frame back when the stream takes no new requests: nothing
    /// was sent.
    async fn send_frame(&self, request_id: u64, frame: Vec<u8>) -> Result<Sent, Vec<u8>> {
        let (waiter, answer) = oneshot::channel();
        if lock(&self.pending).register(request_id, waiter).is_err() {
            return Err(frame);
        }
        let registration = Registration {
            pending: self.pending.clone(),
            request_id,
        };
        self.frames.send(frame).await.map_err(|unsent| unsent.0)?;
        Ok(Sent {
            answer,
            _registration: registration,
        })
    }
}

/// Removes its request's waiter when dropped: on an answer (already removed),
/// a timeout, or the caller dropping the call.
struct Registration {
    pending: Arc<Mutex<Pending<Waiter>>>,
    request_id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.pending).remove(self.request_id);
    }
}

/// Fails waiters whose answers will not come.
fn fail_waiters(waiters: Vec<Waiter>, error: ClientError) {
    if !waiters.is_empty() {
        tracing::debug!(waiters = waiters.len(), %error, "QUIC stream ended with requests unanswered");
    }
    for waiter in waiters {
        // The caller may have stopped waiting; that is fine.
        let _ = waiter.send(Err(error.clone()));
    }
}

/// The writer task: writes queued frames in order, coalescing the frames
/// already queued into one write. Ends when the stream is dropped (finishing
/// it, so the server ends its side once it has answered) or a write fails (the
/// stream then takes no new requests; the reader still collects the answers to
/// those the server read).
async fn write_frames(
    mut send: quinn::SendStream,
    mut queue: mpsc::Receiver<Vec<u8>>,
    pending: Arc<Mutex<Pending<Waiter>>>,
) {
    while let Some(mut bytes) = queue.recv().await {
        while bytes.len() < WRITE_BATCH_BYTES_MAX {
            match queue.try_recv() {
                Ok(frame) => bytes.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        if let Err(error) = send.write_all(&bytes).await {
            tracing::debug!(%error, "QUIC stream cannot be written; it takes no new requests");
            lock(&pending).stop_accepting();
            return;
        }
    }
    // Every handle on the stream is gone: tell the server no more requests come.
    let _ = send.finish();
}

/// How a stream's read side ended.
enum ReadEnd {
    /// The server finished its side: it answered everything it read.
    Finished,
    Failed(ClientError),
}

/// The reader task: hands every answer to its waiter until the stream ends or
/// fails, then fails whoever still waits.
async fn read_answers(
    mut recv: quinn::RecvStream,
    pending: Arc<Mutex<Pending<Waiter>>>,
    frame_bytes_max: usize,
) {
    let mut reader = FrameReader::new(frame_bytes_max);
    let mut buffer = vec![0; READ_CHUNK_BYTES];
    let end = 'stream: loop {
        match recv.read(&mut buffer).await {
            Ok(Some(read)) => reader.extend(&buffer[..read]),
            Ok(None) => {
                break match reader.finish() {
                    Ok(()) => ReadEnd::Finished,
                    Err(error) => ReadEnd::Failed(ClientError::Protocol(error.to_string())),
                };
            }
            Err(error) => break ReadEnd::Failed(connection_lost(error)),
        }
        loop {
            let answer = match reader.next_frame::<Response>() {
                Ok(Some(answer)) => answer,
                Ok(None) => break,
                Err(error) => {
                    break 'stream ReadEnd::Failed(ClientError::Protocol(error.to_string()))
                }
            };
            let routed = lock(&pending).route(answer);
            match routed {
                Routed::Deliver(waiter, answer) => {
                    let _ = waiter.send(Ok(answer));
                }
                Routed::Unmatched(answer) => {
                    tracing::debug!(
                        request_id = ?answer.request_id(),
                        kind = kind(&answer),
                        "QUIC answer for a request nobody waits for (timed out?)"
                    );
                }
                Routed::Refused => {
                    tracing::debug!("the server refused a frame; the stream takes no new requests");
                }
            }
        }
    };
    let (waiters, error) = match end {
        ReadEnd::Finished => lock(&pending).finish(connection_lost("the server ended the stream")),
        ReadEnd::Failed(error) => (lock(&pending).close(), error),
    };
    fail_waiters(waiters, error);
}

impl OrderGateway for QuicClient {
    async fn place(&self, order: PlaceOrder) -> Result<Placed, ClientError> {
        let resend = Resend::orders(std::iter::once(order.idempotency_key.as_deref()));
        let (order, created) = self
            .order_request(resend, |request_id| {
                Request::PlaceOrder(protocol_order(request_id, order.clone()))
            })
            .await?;
        Ok(Placed { order, created })
    }

    async fn place_batch(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
        if orders.is_empty() {
            return Ok(Vec::new());
        }
        self.place_batch_following(orders).await
    }

    async fn order(&self, order_id: &str) -> Result<Order, ClientError> {
        let (order, _) = self
            .order_request(Resend::Safe, |request_id| Request::GetOrder {
                request_id,
                order_id: order_id.to_owned(),
            })
            .await?;
        Ok(order)
    }

    async fn read_orders(&self, order_ids: &[String]) -> Result<OrdersRead, ClientError> {
        let answer = self
            .request(Resend::Safe, |request_id| Request::GetOrders {
                request_id,
                order_ids: order_ids.to_vec(),
            })
            .await?;
        match answer {
            Response::Orders {
                orders, unknown, ..
            } => Ok(OrdersRead { orders, unknown }),
            other => Err(unexpected("an Orders", &other)),
        }
    }

    async fn confirm(&self, order_id: &str) -> Result<Order, ClientError> {
        // The server answers a confirmed order unchanged: safe to send again.
        let (order, _) = self
            .order_request(Resend::Safe, |request_id| Request::Confirm {
                request_id,
                order_id: order_id.to_owned(),
            })
            .await?;
        Ok(order)
    }

    async fn ship(&self, order_id: &str) -> Result<Order, ClientError> {
        // The server answers a shipped order unchanged: safe to send again.
        let (order, _) = self
            .order_request(Resend::Safe, |request_id| Request::Ship {
                request_id,
                order_id: order_id.to_owned(),
            })
            .await?;
        Ok(order)
    }

    async fn change(
        &self,
        order_id: &str,
        change: ChangeOrder,
        idempotency_key: &str,
    ) -> Result<Changed, ClientError> {
        // The server answers the same change under the same key with the
        // order as it is: safe to send again.
        let (order, _) = self
            .order_request(Resend::Safe, |request_id| Request::ChangeOrder {
                request_id,
                order_id: order_id.to_owned(),
                sku: change.sku.clone(),
                quantity: change.quantity,
                idempotency_key: idempotency_key.to_owned(),
            })
            .await?;
        Ok(Changed {
            order,
            changes: None,
        })
    }

    async fn cancel(&self, order_id: &str) -> Result<Order, ClientError> {
        // The server answers a cancelled order unchanged: safe to send again.
        let (order, _) = self
            .order_request(Resend::Safe, |request_id| Request::Cancel {
                request_id,
                order_id: order_id.to_owned(),
            })
            .await?;
        Ok(order)
    }

    async fn sku(&self, sku: &str) -> Result<Sku, ClientError> {
        let (sku, _) = self
            .sku_request(Resend::Safe, |request_id| Request::GetSku {
                request_id,
                sku: sku.to_owned(),
            })
            .await?;
        Ok(sku)
    }

    async fn put_sku(&self, sku: &str, settings: SkuSettings) -> Result<(Sku, bool), ClientError> {
        let admin_token = self.admin_token()?;
        // The same settings put twice make the same SKU.
        self.sku_request(Resend::Safe, |request_id| Request::PutSku {
            request_id,
            admin_token: admin_token.clone(),
            sku: sku.to_owned(),
            settings: settings.clone(),
        })
        .await
    }

    async fn restock(&self, sku: &str, quantity: u64) -> Result<Sku, ClientError> {
        let admin_token = self.admin_token()?;
        // Sent twice, a restock adds twice.
        let (sku, _) = self
            .sku_request(Resend::Unsafe, |request_id| Request::Restock {
                request_id,
                admin_token: admin_token.clone(),
                sku: sku.to_owned(),
                quantity,
            })
            .await?;
        Ok(sku)
    }

    fn current_node(&self) -> Option<String> {
        Some(self.inner.cluster.current_node())
    }

    fn node_switches(&self) -> Vec<NodeSwitch> {
        self.inner.cluster.node_switches()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate_protocol::{code, OrderStatus};

    fn order(request_id: u64) -> Response {
        Response::Order {
            request_id,
            created: true,
            order: Order {
                order_id: format!("1-0-{request_id}"),
                sku: "A".into(),
                quantity: 1,
                customer_id: "c".into(),
                status: OrderStatus::Reserved,
                created_at_ms: 1,
                reserved_until_ms: 2,
                updated_at_ms: 1,
            },
        }
    }

    fn refused(request_id: u64) -> Response {
        Response::Error {
            request_id,
            code: code::SOLD_OUT.into(),
            detail: "gone".into(),
        }
    }

    #[test]
    fn a_batch_answer_gives_one_result_per_order_in_order() {
        let answer = Response::Batch {
            results: vec![order(5), refused(6), order(7)],
        };
        let results = batch_answer(answer, 5, 3).unwrap();
        assert_eq!(results[0].as_ref().unwrap().order.order_id, "1-0-5");
        assert_eq!(results[1].as_ref().unwrap_err().code(), Some("sold_out"));
        assert!(results[2].as_ref().unwrap().created);
    }

    #[test]
    fn only_orders_refused_as_not_primary_stay_waiting() {
        let placed = |id: u64| match order(id) {
            Response::Order { order, created, .. } => Ok(Placed { order, created }),
            _ => unreachable!(),
        };
        let not_primary = || Err(ClientError::server(code::NOT_PRIMARY, "standby"));
        let mut results = vec![None, Some(placed(1)), None, None];
        let (served, refused) = file_answers(
            &[0, 2, 3],
            vec![
                placed(5),
                not_primary(),
                Err(ClientError::server(code::SOLD_OUT, "gone")),
            ],
            &mut results,
        );
        assert!(served);
        assert_eq!(refused.unwrap().code(), Some(code::NOT_PRIMARY));
        let waiting: Vec<usize> = (0..4).filter(|&i| results[i].is_none()).collect();
        assert_eq!(waiting, [2]);
        assert_eq!(
            results[3].as_ref().unwrap().as_ref().unwrap_err().code(),
            Some(code::SOLD_OUT)
        );

        let mut results = vec![None];
        let (served, refused) = file_answers(&[0], vec![not_primary()], &mut results);
        assert!(!served);
        assert!(refused.is_some());
        assert!(results[0].is_none());
    }

    #[test]
    fn a_malformed_batch_answer_is_a_protocol_error() {
        let short = Response::Batch {
            results: vec![order(5)],
        };
        assert!(matches!(
            batch_answer(short, 5, 2),
            Err(ClientError::Protocol(_))
        ));
        let shuffled = Response::Batch {
            results: vec![order(6), order(5)],
        };
        assert!(matches!(
            batch_answer(shuffled, 5, 2),
            Err(ClientError::Protocol(_))
        ));
        let wrong_kind = Response::Batch {
            results: vec![Response::Batch { results: vec![] }],
        };
        assert!(matches!(
            batch_answer(wrong_kind, 5, 1),
            Err(ClientError::Protocol(_))
        ));
    }

    #[test]
    fn a_whole_batch_refusal_is_a_server_error() {
        let refusal = Response::Error {
            request_id: 5,
            code: code::BATCH_TOO_LARGE.into(),
            detail: "at most 100 orders".into(),
        };
        assert_eq!(
            batch_answer(refusal, 5, 200).unwrap_err().code(),
            Some(code::BATCH_TOO_LARGE)
        );
    }

    #[test]
    fn configs_outside_the_limits_are_refused() {
        let good = QuicConfig::new(
            vec!["127.0.0.1:4433".parse().unwrap()],
            Trust::InsecureAcceptAnyCertificate,
        );
        good.validate().unwrap();
        let cases: Vec<fn(&mut QuicConfig)> = vec![
            |config| config.server_addrs.clear(),
            |config| config.stream_count = 0,
            |config| config.stream_count = STREAMS_MAX + 1,
            |config| config.requests_in_flight_max = 0,
            |config| config.connect_attempts_max = 0,
            |config| config.response_frame_bytes_max = FRAME_BYTES_MAX_LIMIT + 1,
            |config| config.request_timeout = Duration::ZERO,
            |config| config.keep_alive_interval = config.idle_timeout,
            |config| config.server_name = "not a name!".into(),
        ];
        for (index, change) in cases.into_iter().enumerate() {
            let mut config = good.clone();
            change(&mut config);
            assert!(
                matches!(config.validate(), Err(ClientError::Config(_))),
                "case {index}"
            );
        }
    }
}
