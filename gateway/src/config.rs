//! `Config`: every setting of `flashgate serve`, with its default. Layers, each
//! overriding the one before: built-in defaults, a TOML file (`--config`),
//! `FLASHGATE_*` environment variables, command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use flashgate_actors::domain::Retention;
use flashgate_actors::{ClusterConfig, NodeConfig, Replication, Role, StandbyLoss};
use flashgate_storage::{StorageConfig, WriterConfig};
use serde::{Deserialize, Serialize};

pub use crate::auth::BuyerAuth;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The role a node starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StartRole {
    Primary,
    Standby,
}

/// When a primary with a standby answers a buyer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    /// After the order is durable on both nodes.
    Sync,
    /// After it is durable here; the standby follows with a lag.
    Async,
}

/// What a sync primary does when its standby is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StandbyLossMode {
    /// Orders wait, then get 503 `standby_unavailable`.
    Block,
    /// After the timeout, go on alone (reported as degraded).
    Degrade,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the log, checkpoints and generated secrets live.
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    /// Shards for a new data dir (default: the number of cores).
    pub shards: Option<u32>,
    /// Bearer token for the admin API; generated into the data dir when absent.
    pub admin_token: Option<String>,
    /// Whether buyer and payment calls need a credential (`token`, the
    /// default) or not (`development`: anyone acts for any customer).
    pub buyer_auth: BuyerAuth,
    /// Allows `buyer_auth = development` on a replicated node (refused
    /// otherwise: a pair is a production setting).
    pub development_auth_with_replication: bool,
    /// File with the HMAC secret (at least 32 bytes) that signs buyer tokens
    /// (JWT, HS256/384/512; `sub` is the customer id).
    pub jwt_hmac_secret_file: Option<PathBuf>,
    /// File with a JWK set of public keys that sign buyer tokens (RS*, PS*,
    /// ES256/384, EdDSA; chosen by the token's `kid`).
    pub jwt_jwks_file: Option<PathBuf>,
    /// The `iss` buyer tokens must carry, when set.
    pub jwt_issuer: Option<String>,
    /// The `aud` buyer tokens must carry, when set.
    pub jwt_audience: Option<String>,
    /// Clock skew allowed on a buyer token's `exp` and `nbf`.
    pub jwt_leeway_secs: u64,
    /// File of service tokens (trusted upstreams: any customer's orders), one a line.
    pub service_tokens_file: Option<PathBuf>,
    /// File of payments tokens (confirm and cancel any order), one a line.
    pub payments_tokens_file: Option<PathBuf>,
    /// File of fulfilment tokens (read and ship any order), one a line.
    pub fulfilment_tokens_file: Option<PathBuf>,
    /// File of operator tokens (metrics, cluster status, every SKU; read only), one a line.
    pub operator_tokens_file: Option<PathBuf>,
    /// Failed credentials from one address within `auth_failure_window_secs`
    /// before its calls with a credential get 429 until the window ends.
    pub auth_failures_per_address_max: u32,
    pub auth_failure_window_secs: u64,
    /// Addresses whose failures are tracked at once (bounds the memory a
    /// spread-out guessing attack can take).
    pub auth_failure_addresses_max: usize,
    pub log_format: LogFormat,
    /// HTTP worker threads (default: the number of cores).
    pub http_workers: Option<usize>,
    /// Open HTTP connections per worker; more wait in the accept queue.
    pub http_connections_max: usize,
    /// Largest accepted request body.
    pub http_body_bytes_max: usize,
    /// Longest a request body may take to arrive once its head has: past it,
    /// 408 `body_timeout` and the connection is closed (a client sending one
    /// byte a second must not hold a connection).
    pub http_body_read_timeout_ms: u64,
    /// Seconds to let in-flight requests finish at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Longest one wait on the disk (a log write, an fsync) may last; past it the
    /// node fail-stops: 503 `storage_failed`, `/readyz` not ready. It also bounds
    /// the final checkpoint and the log's close at shutdown (`stop_bound`).
    pub disk_stall_timeout_ms: u64,
    /// Requests that may wait per shard before answers become 503 `overloaded`.
    pub mailbox_requests_max: usize,
    /// The Retry-After given with 503 `overloaded`.
    pub retry_after_secs: u32,
    /// Most live orders (reserved, or confirmed and not yet settled) per
    /// shard; past it new orders get 503 `capacity_reached`. Finished orders
    /// do not count: they leave memory after their retention.
    pub orders_per_shard_max: usize,
    /// Seconds a cancelled or expired order stays in memory after it
    /// finished; then it is answered from the data dir's archive (same body).
    pub finished_order_retention_secs: u64,
    /// Seconds a confirmed order stays in memory after its confirmation, and
    /// can still be cancelled; then it is settled: answered from the archive,
    /// its units sold for good (and still counted toward the customer's
    /// limit), a cancel answered 409 `invalid_transition`.
    pub confirmed_order_retention_secs: u64,
    /// Seconds after an order was placed during which a retry with its
    /// `Idempotency-Key` gets that order back, even once the order left
    /// memory. After it the key is forgotten: a request with it is a new order.
    pub idempotency_key_retention_secs: u64,
    /// Most orders, and most keys, one shard lets go of per pass (passes run
    /// every `expiry_interval_ms`).
    pub retire_batch_max: usize,
    /// Most bytes of the storage engine's page cache (sled's, whose default
    /// is 1 GiB): what was written (log, archived orders) stays cached up to
    /// it, so it bounds the memory the history takes.
    pub storage_cache_bytes_max: u64,
    pub expiry_interval_ms: u64,
    pub expiry_batch_max: usize,
    /// Seconds between checkpoints; 0 turns periodic checkpoints off (one is
    /// still written at shutdown).
    pub checkpoint_interval_secs: u64,
    /// Continuous archiving: every durable log record is copied to segment
    /// files here (docs/OPERATIONS.md); none when absent.
    pub archive_dir: Option<PathBuf>,
    /// Run on every closed archive segment (`%p` its path, `%f` its name),
    /// e.g. to copy it to another disk or an object store; exit 0 = copied.
    pub archive_command: Option<String>,
    /// An archive segment is closed once it holds this many bytes.
    pub archive_segment_bytes_max: u64,
    /// Log records checkpoints keep for an archive that is behind; past it the
    /// log is trimmed anyway and the archive gets a gap (reported).
    pub archive_retention_records_max: u64,
    /// Publish every committed domain event to this NATS server's JetStream
    /// (docs/EVENTS.md); none when absent.
    pub events_nats_url: Option<String>,
    /// The JetStream stream (created when missing).
    pub events_stream: String,
    /// Subjects are `<prefix>.orders.<sku>`, `<prefix>.skus.<sku>`,
    /// `<prefix>.gaps`.
    pub events_subject_prefix: String,
    /// A new stream keeps messages this long.
    pub events_stream_max_age_secs: u64,
    /// A new stream drops a re-sent event id within this window.
    pub events_duplicate_window_secs: u64,
    /// Log records checkpoints keep for a publisher that is behind; past it
    /// the log is trimmed anyway and a gap marker is published.
    pub events_retention_records_max: u64,
    /// Most records read and published per round.
    pub events_batch_records_max: usize,
    pub log_queue_records_max: usize,
    pub log_batch_records_max: usize,
    pub log_batch_bytes_max: usize,
    /// Whether to run the QUIC front end (`--no-quic` turns it off; HTTP runs
    /// either way).
    pub quic_enabled: bool,
    pub quic_addr: SocketAddr,
    /// PEM certificate chain for the HTTP API, with `http_tls_key`: the API is
    /// then served over TLS (1.2 and 1.3; HTTP/2 and HTTP/1.1 by ALPN) and
    /// the pair is read again on SIGHUP. Neither: plain HTTP (behind a
    /// proxy that terminates TLS).
    pub http_tls_cert: Option<PathBuf>,
    /// PEM private key for `http_tls_cert`.
    pub http_tls_key: Option<PathBuf>,
    /// PEM certificate chain for QUIC; with `quic_key`, or neither (then a
    /// self-signed certificate is generated into the data dir).
    pub quic_cert: Option<PathBuf>,
    /// PEM private key for `quic_cert`.
    pub quic_key: Option<PathBuf>,
    /// Largest request frame (length prefix included); a larger one is answered
    /// with `frame_too_large` and its stream ends.
    pub quic_frame_bytes_max: usize,
    /// Bidirectional streams a client may have open on one connection; it opens
    /// more once one ends.
    pub quic_streams_per_connection_max: u32,
    /// Established QUIC connections (a handshake in progress does not count);
    /// a connection that completes its handshake beyond it is closed at once
    /// with `CLOSE_CONNECTION_LIMIT` and a reason.
    pub quic_connections_max: usize,
    /// Longest a QUIC handshake may take, from the client's first packet;
    /// past it the attempt is dropped (without it a client that never
    /// finishes would hold its state until `quic_idle_timeout_ms`).
    pub quic_handshake_timeout_ms: u64,
    /// QUIC handshakes in progress at once; a new attempt beyond it is
    /// refused at once (CONNECTION_REFUSED), before any cryptography.
    pub quic_handshakes_max: usize,
    /// Handshakes in progress from addresses the server has not validated;
    /// from this many on, a new attempt from an unvalidated address gets a
    /// QUIC Retry: it must come back with the token from the address it
    /// claims (one more round trip), so spoofed addresses cannot hold
    /// handshakes. 0 sends a Retry to every unvalidated address.
    pub quic_handshakes_unvalidated_max: usize,
    /// Encoded answers one QUIC connection may have waiting to be written
    /// (all its streams together), in bytes. When a client does not read its
    /// answers, new answers wait for room, and the connection's requests
    /// stop being read (QUIC flow control then holds the client back). An
    /// answer larger than the whole budget waits until it is the only one.
    /// It is also the connection's QUIC send window (bytes written but not
    /// yet acknowledged), so the answers a connection pins are at most
    /// twice this.
    pub quic_answer_bytes_per_connection_max: usize,
    /// Requests (batched orders count one each) being processed per connection;
    /// beyond it a request is answered `too_many_in_flight`.
    pub quic_in_flight_per_connection_max: usize,
    /// Most orders in one `PlaceOrders` frame; more is `batch_too_large`.
    pub quic_batch_orders_max: usize,
    /// Most order ids in one batched read (`POST /v1/orders/read`, QUIC
    /// `GetOrders`); more is refused whole with `batch_too_large`, nothing
    /// read. At most `ORDERS_READ_MAX_LIMIT`.
    pub orders_read_max: usize,
    /// Most orders on one page of `GET /v1/customers/{customer_id}/orders`
    /// (a larger `limit` is refused with `invalid_field`). At most
    /// `CUSTOMER_ORDERS_PAGE_MAX_LIMIT`.
    pub customer_orders_page_max: usize,
    /// Most keys of the archive's customer index one page reads (keys of
    /// customers whose ids share a digest are read and skipped); a page that
    /// reaches it ends early with a cursor to go on from. At least
    /// `customer_orders_page_max`.
    pub customer_orders_scan_max: usize,
    /// A connection with no traffic for this long is closed.
    pub quic_idle_timeout_ms: u64,
    /// `primary` takes orders; `standby` follows `follow`.
    pub role: StartRole,
    /// The primary's replication address (`host:port`), for a standby.
    pub follow: Option<String>,
    /// Where this node listens (UDP) for a standby, and for a newer primary's
    /// fencing. Without it (and without `follow`) a node runs standalone.
    pub replication_addr: Option<SocketAddr>,
    pub replication: ReplicationMode,
    pub standby_loss: StandbyLossMode,
    /// How long answers wait for the standby before `standby_loss` applies.
    pub standby_timeout_ms: u64,
    /// A standby promotes itself after hearing nothing from its primary for
    /// this long. Only with sync replication and `standby_loss = block`.
    pub auto_promote_after_ms: Option<u64>,
    /// The secret every node of the cluster shares (at least 16 bytes).
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret (trailing whitespace ignored).
    pub cluster_secret_file: Option<PathBuf>,
    /// Most log bytes in one replication message.
    pub replication_message_bytes_max: usize,
    /// Log bytes a primary streams ahead of its standby's acknowledgements
    /// (the replication window): it keeps sending while earlier messages
    /// await their ack, and waits for one past this. One message may always
    /// go, so a window below `replication_message_bytes_max` still moves.
    pub replication_unacked_bytes_max: usize,
    /// How often a primary tells its standby where it stands; a standby that
    /// hears nothing for 10 of these reconnects.
    pub replication_heartbeat_ms: u64,
    /// Open HTTP connections from one client IP address; a connection over it
    /// is answered 429 `too_many_connections` (`Connection: close`) and
    /// counted in `flashgate_http_requests_refused_total`. Behind a proxy
    /// every client has the proxy's address: raise it there.
    pub http_connections_per_address_max: usize,
    /// Requests per second one client address may make to the order calls
    /// (placing, confirming, cancelling), after a burst of
    /// `rate_limit_orders_per_address_burst`; 0 = no limit. Over it: 429
    /// `rate_limited` with `Retry-After` and the `RateLimit` headers, counted
    /// in `flashgate_rate_limited_total{policy}`. Behind a proxy, list it in
    /// `trusted_proxies` or every client shares the proxy's address.
    pub rate_limit_orders_per_address: u32,
    pub rate_limit_orders_per_address_burst: u32,
    /// The same for every other read (orders, SKUs, the catalogue).
    pub rate_limit_reads_per_address: u32,
    pub rate_limit_reads_per_address_burst: u32,
    /// The same for the operator's calls (SKU changes, metrics, the cluster,
    /// `/v1/admin/*`). The health probes are never limited.
    pub rate_limit_admin_per_address: u32,
    pub rate_limit_admin_per_address_burst: u32,
    /// Orders per second one customer may place, over HTTP and QUIC together,
    /// after a burst; 0 = no limit.
    pub rate_limit_orders_per_customer: u32,
    pub rate_limit_orders_per_customer_burst: u32,
    /// Keys (addresses, customers) each limit tracks at most; past it, new
    /// keys share one quota until idle keys are forgotten (counted in
    /// `flashgate_rate_limit_overflow_total{policy}`).
    pub rate_limit_keys_max: usize,
    /// Proxies (addresses or networks such as `10.0.0.0/8`) whose `Forwarded`
    /// or `X-Forwarded-For` header names the client for the rate limits; from
    /// any other peer those headers are ignored.
    pub trusted_proxies: Vec<String>,
    /// File holding the secret (at least 32 bytes) that signs waiting-room
    /// tickets. Give every node of a cluster the same one, so admissions stay
    /// valid across a failover; without it each process draws its own, and
    /// its tickets end with it.
    pub waiting_room_secret_file: Option<PathBuf>,
    /// File of QUIC credentials (one a line; each also a service or the
    /// admin token) whose orders skip every waiting room: upstreams that run
    /// their own queue.
    pub waiting_room_bypass_tokens_file: Option<PathBuf>,
    /// Most buyers one SKU's waiting room holds (the default and the highest
    /// a room may set); a join past it is answered 503 `queue_full`.
    pub waiting_room_queue_length_max: u32,
    /// Used admissions kept (until they expire) so that each orders once;
    /// when full, orders with a new admission are answered 503 `overloaded`
    /// rather than forgetting one.
    pub waiting_room_spent_tickets_max: usize,
    /// Bounds of the `poll_after_ms` hint a poll answers: the polling load is
    /// at most the waiting buyers over the lower bound, per second.
    pub waiting_room_poll_after_min_ms: u64,
    pub waiting_room_poll_after_max_ms: u64,
    /// Longest request target (path and query) in bytes; a longer one is
    /// answered 414 `uri_too_long` (counted like the cap above).
    pub http_request_uri_bytes_max: usize,
    /// Most bytes of request header names and values together; more is
    /// answered 431 `headers_too_large`. With `http_request_uri_bytes_max`,
    /// at most `HTTP_HEAD_BYTES_LIMIT`.
    pub http_request_headers_bytes_max: usize,
    /// Replication connections that have not yet proven the cluster secret
    /// and sent their follow request; a new one beyond it is refused at once
    /// (QUIC CONNECTION_REFUSED) and counted in
    /// `flashgate_replication_sessions_refused_total`. At most
    /// `REPLICATION_UNAUTHENTICATED_SESSIONS_MAX_LIMIT`.
    pub replication_unauthenticated_sessions_max: usize,
    /// Longest a replication dialer may take from its first packet to a
    /// proven secret and its follow request; past it the connection is closed.
    pub replication_handshake_timeout_ms: u64,
    /// Log lines a client may cause (a malformed request, a failed replication
    /// handshake) logged at once, per kind of line, before the rate applies.
    pub client_log_lines_burst: u32,
    /// Client-caused log lines per minute and kind in the long run; the rest
    /// is counted and summarised as "N similar lines suppressed".
    pub client_log_lines_per_minute: u32,
    /// How often the alert rules run (docs/ALERTS.md), between 100 and 60,000.
    pub alert_evaluate_interval_ms: u64,
    /// Resolved alerts `GET /v1/alerts` keeps, newest first.
    pub alert_recent_max: usize,
    /// SKUs whose stock `/metrics` exports as `flashgate_sku_*_units{sku}`
    /// (the first ones by id): a label value per SKU, bounded. 0: none.
    pub metrics_skus_max: usize,
    /// Alert events (raised, resolved) kept for readers resuming from an
    /// event id; an older one is gone and the reader reloads the list.
    pub alert_feed_events_max: usize,
    /// Console streams (`GET /v1/console/stream`) open at once; one more is
    /// refused with 503 `too_many_streams`.
    pub console_streams_max: usize,
    /// How often the console's snapshot is taken (stock, rates, latency),
    /// between 100 and 60,000.
    pub console_sample_interval_ms: u64,
    /// SKUs whose order attempts the sales report counts per SKU; attempts
    /// for more are counted as `attempts_not_per_sku`.
    pub report_skus_max: usize,
    /// `unpaid_expiry_spike`: over this window, at least `min_ended`
    /// reservations ended and more than `percent` of them expired unpaid.
    pub alert_unpaid_expiry_window_secs: u64,
    pub alert_unpaid_expiry_min_ended: u64,
    pub alert_unpaid_expiry_percent: u64,
    /// `duplicate_orders`: over this window, idempotent replays, reused keys
    /// and refusals for a customer's limit are at least `min` and at least
    /// `percent` of the orders taken.
    pub alert_duplicate_orders_window_secs: u64,
    pub alert_duplicate_orders_min: u64,
    pub alert_duplicate_orders_percent: u64,
    /// `overload_shedding`: over this window, orders refused 503
    /// `overloaded` are at least `min` and at least `percent` of the orders.
    pub alert_overload_window_secs: u64,
    pub alert_overload_min: u64,
    pub alert_overload_percent: u64,
    /// `replication_lag`: the standby is this far behind the primary, or more.
    pub alert_replication_lag_ms: u64,
    /// `standby_lost`: a replicated primary has had no standby for this long.
    pub alert_standby_lost_after_ms: u64,
    /// `admin_auth_failures`: this many admin calls refused for their
    /// credential (401, 403, 429) within the window.
    pub alert_admin_auth_window_secs: u64,
    pub alert_admin_auth_failures_min: u64,
    /// Where every alert event is POSTed (`--webhook-url`, repeatable),
    /// signed as Standard Webhooks says.
    pub webhook_urls: Vec<String>,
    /// The signing secret, `whsec_<base64 of 24 to 64 bytes>`; with neither
    /// it nor `webhook_secret_file`, one is generated into the data dir
    /// (`webhook-secret`, mode 0600).
    pub webhook_secret: Option<String>,
    /// A file holding the signing secret.
    pub webhook_secret_file: Option<PathBuf>,
    /// Alert events waiting for delivery; past it new ones are dropped and
    /// counted (`flashgate_webhook_deliveries_total{outcome="dropped"}`).
    pub webhook_queue_max: usize,
    /// How long after its first attempt a delivery is retried.
    pub webhook_retry_for_secs: u64,
    /// How long one delivery attempt may take.
    pub webhook_attempt_timeout_ms: u64,
    /// The first retry's delay; it doubles per attempt up to the max, with jitter.
    pub webhook_backoff_initial_ms: u64,
    pub webhook_backoff_max_ms: u64,
    /// Delivery attempts in flight at once, all receivers together.
    pub webhook_in_flight_max: usize,
}

/// The bounds of `alert_evaluate_interval_ms`.
pub const ALERT_EVALUATE_INTERVAL_MS_MIN: u64 = 100;
pub const ALERT_EVALUATE_INTERVAL_MS_MAX: u64 = 60_000;
/// The longest alert window (one day).
pub const ALERT_WINDOW_SECS_MAX: u64 = 86_400;
/// The most webhook receivers.
pub const WEBHOOK_URLS_MAX: usize = 16;

/// The largest `jwt_leeway_secs`: clocks further apart are a fault to fix.
pub const JWT_LEEWAY_SECS_MAX: u64 = 300;

/// The largest `quic_batch_orders_max`. One answer in a `Response::Batch` (an
/// order, or an error with its detail) is at most about 300 bytes, so a batch's
/// answer stays near 2 MiB: inside the frame limit clients read answers with.
pub const QUIC_BATCH_ORDERS_MAX_LIMIT: usize = 8_192;
/// The largest `orders_read_max`. An order in a batched read's answer is at
/// most about 300 bytes, so an answer stays near 2.5 MiB: inside the frame
/// limit clients read answers with.
pub const ORDERS_READ_MAX_LIMIT: usize = 8_192;
/// The largest `customer_orders_page_max`: a page's answer stays near 300 KiB.
pub const CUSTOMER_ORDERS_PAGE_MAX_LIMIT: usize = 1_000;
/// The smallest `quic_frame_bytes_max`: room for any one request of valid ids.
pub const QUIC_FRAME_BYTES_MAX_MIN: usize = 1024;
/// The longest `quic_idle_timeout_ms` (one day).
pub const QUIC_IDLE_TIMEOUT_MS_LIMIT: u64 = 24 * 3600 * 1000;
/// The largest `replication_unauthenticated_sessions_max`: a node has one
/// standby, and each unproven session may hold about 150 KiB of buffers.
pub const REPLICATION_UNAUTHENTICATED_SESSIONS_MAX_LIMIT: usize = 4_096;
/// The largest request head the HTTP/1 parser (actix-http) holds: a head past
/// it is answered by the parser itself, a bare 431 and the connection closed.
/// `http_request_uri_bytes_max` and `http_request_headers_bytes_max` together
/// must fit under it, with room for the request line and header separators,
/// for their problem answers to be the ones clients see.
pub const HTTP_HEAD_BYTES_LIMIT: usize = 96 * 1024;
/// The longest `quic_handshake_timeout_ms` (one minute).
pub const QUIC_HANDSHAKE_TIMEOUT_MS_LIMIT: u64 = 60_000;
/// The largest `quic_handshakes_max`.
pub const QUIC_HANDSHAKES_MAX_LIMIT: usize = 65_536;
/// The smallest `quic_answer_bytes_per_connection_max`: room for a few answers.
pub const QUIC_ANSWER_BYTES_PER_CONNECTION_MAX_MIN: usize = 16 * 1024;
/// The largest `quic_answer_bytes_per_connection_max` (1 GiB).
pub const QUIC_ANSWER_BYTES_PER_CONNECTION_MAX_LIMIT: usize = 1 << 30;

impl Default for Config {
    fn default() -> Config {
        let node = NodeConfig::default();
        let rules = crate::alerts::AlertRules::default();
        Config {
            data_dir: PathBuf::from("./flashgate-data"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: None,
            admin_token: None,
            buyer_auth: BuyerAuth::Token,
            development_auth_with_replication: false,
            jwt_hmac_secret_file: None,
            jwt_jwks_file: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_secs: 30,
            service_tokens_file: None,
            payments_tokens_file: None,
            fulfilment_tokens_file: None,
            operator_tokens_file: None,
            auth_failures_per_address_max: 20,
            auth_failure_window_secs: 60,
            auth_failure_addresses_max: 100_000,
            log_format: LogFormat::Text,
            http_workers: None,
            http_connections_max: 25_000,
            http_body_bytes_max: 16 * 1024,
            http_body_read_timeout_ms: 5_000,
            shutdown_timeout_secs: 30,
            disk_stall_timeout_ms: node.disk_stall_timeout.as_millis() as u64,
            mailbox_requests_max: node.mailbox_requests_max,
            retry_after_secs: 1,
            orders_per_shard_max: node.orders_per_shard_max,
            finished_order_retention_secs: node.retention.finished_order_secs,
            confirmed_order_retention_secs: node.retention.confirmed_order_secs,
            idempotency_key_retention_secs: node.retention.idempotency_key_secs,
            retire_batch_max: node.retention.retire_batch_max,
            storage_cache_bytes_max: flashgate_storage::CACHE_BYTES_MAX_DEFAULT,
            expiry_interval_ms: node.expiry_interval.as_millis() as u64,
            expiry_batch_max: node.expiry_batch_max,
            checkpoint_interval_secs: 300,
            archive_dir: None,
            archive_command: None,
            archive_segment_bytes_max: 16 << 20,
            archive_retention_records_max: 10_000_000,
            events_nats_url: None,
            events_stream: crate::events::STREAM_DEFAULT.to_owned(),
            events_subject_prefix: crate::events::SUBJECT_PREFIX_DEFAULT.to_owned(),
            events_stream_max_age_secs: crate::events::STREAM_MAX_AGE_SECS_DEFAULT,
            events_duplicate_window_secs: crate::events::DUPLICATE_WINDOW_SECS_DEFAULT,
            events_retention_records_max: crate::events::RETENTION_RECORDS_MAX_DEFAULT,
            events_batch_records_max: crate::events::BATCH_RECORDS_MAX_DEFAULT,
            log_queue_records_max: node.writer.queue_records_max,
            log_batch_records_max: node.writer.batch_records_max,
            log_batch_bytes_max: node.writer.batch_bytes_max,
            quic_enabled: true,
            quic_addr: SocketAddr::from(([127, 0, 0, 1], 4433)),
            http_tls_cert: None,
            http_tls_key: None,
            quic_cert: None,
            quic_key: None,
            quic_frame_bytes_max: 64 * 1024,
            quic_streams_per_connection_max: 16,
            quic_connections_max: 1024,
            quic_handshake_timeout_ms: 5_000,
            quic_handshakes_max: 256,
            quic_handshakes_unvalidated_max: 64,
            quic_answer_bytes_per_connection_max: 1 << 20,
            quic_in_flight_per_connection_max: 4096,
            quic_batch_orders_max: 1024,
            orders_read_max: 1000,
            customer_orders_page_max: 100,
            customer_orders_scan_max: 1000,
            quic_idle_timeout_ms: 30_000,
            role: StartRole::Primary,
            follow: None,
            replication_addr: None,
            replication: ReplicationMode::Sync,
            standby_loss: StandbyLossMode::Block,
            standby_timeout_ms: 5_000,
            auto_promote_after_ms: None,
            cluster_secret: None,
            cluster_secret_file: None,
            replication_message_bytes_max: 4 << 20,
            replication_unacked_bytes_max: 16 << 20,
            replication_heartbeat_ms: 100,
            http_connections_per_address_max: 1024,
            rate_limit_orders_per_address: 0,
            rate_limit_orders_per_address_burst: 20,
            rate_limit_reads_per_address: 0,
            rate_limit_reads_per_address_burst: 100,
            rate_limit_admin_per_address: 0,
            rate_limit_admin_per_address_burst: 20,
            rate_limit_orders_per_customer: 0,
            rate_limit_orders_per_customer_burst: 5,
            rate_limit_keys_max: 100_000,
            trusted_proxies: Vec::new(),
            waiting_room_secret_file: None,
            waiting_room_bypass_tokens_file: None,
            waiting_room_queue_length_max: 100_000,
            waiting_room_spent_tickets_max: 100_000,
            waiting_room_poll_after_min_ms: 1_000,
            waiting_room_poll_after_max_ms: 30_000,
            http_request_uri_bytes_max: 8 * 1024,
            http_request_headers_bytes_max: 16 * 1024,
            replication_unauthenticated_sessions_max: 64,
            replication_handshake_timeout_ms: 5_000,
            client_log_lines_burst: 20,
            client_log_lines_per_minute: 60,
            alert_evaluate_interval_ms: 500,
            alert_recent_max: 200,
            metrics_skus_max: 1_000,
            alert_feed_events_max: 1024,
            console_streams_max: 32,
            console_sample_interval_ms: 1_000,
            report_skus_max: crate::console::REPORT_SKUS_MAX_DEFAULT,
            alert_unpaid_expiry_window_secs: rules.unpaid_expiry_window_ms / 1000,
            alert_unpaid_expiry_min_ended: rules.unpaid_expiry_min_ended,
            alert_unpaid_expiry_percent: rules.unpaid_expiry_percent,
            alert_duplicate_orders_window_secs: rules.duplicate_orders_window_ms / 1000,
            alert_duplicate_orders_min: rules.duplicate_orders_min,
            alert_duplicate_orders_percent: rules.duplicate_orders_percent,
            alert_overload_window_secs: rules.overload_window_ms / 1000,
            alert_overload_min: rules.overload_min,
            alert_overload_percent: rules.overload_percent,
            alert_replication_lag_ms: rules.replication_lag_ms,
            alert_standby_lost_after_ms: rules.standby_lost_after_ms,
            alert_admin_auth_window_secs: rules.admin_auth_window_ms / 1000,
            alert_admin_auth_failures_min: rules.admin_auth_failures_min,
            webhook_urls: Vec::new(),
            webhook_secret: None,
            webhook_secret_file: None,
            webhook_queue_max: 1024,
            webhook_retry_for_secs: 600,
            webhook_attempt_timeout_ms: 5_000,
            webhook_backoff_initial_ms: 500,
            webhook_backoff_max_ms: 60_000,
            webhook_in_flight_max: 16,
        }
    }
}

/// Settings given on the command line; `None` leaves the lower layers' value.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_auth: Option<BuyerAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_hmac_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_jwks_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tokens_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payments_tokens_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fulfilment_tokens_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator_tokens_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<StartRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_loss: Option<StandbyLossMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_promote_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_stall_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_nats_url: Option<String>,
    /// Replaces the lower layers' list when any is given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook_urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist; check the --config path")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}; fix or remove that value")]
    Invalid(String),
}

const ENV_KEYS: &[&str] = &[
    "data_dir",
    "http_addr",
    "shards",
    "admin_token",
    "buyer_auth",
    "development_auth_with_replication",
    "jwt_hmac_secret_file",
    "jwt_jwks_file",
    "jwt_issuer",
    "jwt_audience",
    "jwt_leeway_secs",
    "service_tokens_file",
    "payments_tokens_file",
    "fulfilment_tokens_file",
    "operator_tokens_file",
    "auth_failures_per_address_max",
    "auth_failure_window_secs",
    "auth_failure_addresses_max",
    "log_format",
    "http_workers",
    "http_connections_max",
    "http_body_bytes_max",
    "http_body_read_timeout_ms",
    "shutdown_timeout_secs",
    "disk_stall_timeout_ms",
    "mailbox_requests_max",
    "retry_after_secs",
    "orders_per_shard_max",
    "finished_order_retention_secs",
    "confirmed_order_retention_secs",
    "idempotency_key_retention_secs",
    "retire_batch_max",
    "storage_cache_bytes_max",
    "expiry_interval_ms",
    "expiry_batch_max",
    "checkpoint_interval_secs",
    "archive_dir",
    "archive_command",
    "archive_segment_bytes_max",
    "archive_retention_records_max",
    "events_nats_url",
    "events_stream",
    "events_subject_prefix",
    "events_stream_max_age_secs",
    "events_duplicate_window_secs",
    "events_retention_records_max",
    "events_batch_records_max",
    "log_queue_records_max",
    "log_batch_records_max",
    "log_batch_bytes_max",
    "quic_enabled",
    "quic_addr",
    "http_tls_cert",
    "http_tls_key",
    "quic_cert",
    "quic_key",
    "quic_frame_bytes_max",
    "quic_streams_per_connection_max",
    "quic_connections_max",
    "quic_handshake_timeout_ms",
    "quic_handshakes_max",
    "quic_handshakes_unvalidated_max",
    "quic_answer_bytes_per_connection_max",
    "quic_in_flight_per_connection_max",
    "quic_batch_orders_max",
    "orders_read_max",
    "customer_orders_page_max",
    "customer_orders_scan_max",
    "quic_idle_timeout_ms",
    "role",
    "follow",
    "replication_addr",
    "replication",
    "standby_loss",
    "standby_timeout_ms",
    "auto_promote_after_ms",
    "cluster_secret",
    "cluster_secret_file",
    "replication_message_bytes_max",
    "replication_unacked_bytes_max",
    "replication_heartbeat_ms",
    "http_connections_per_address_max",
    "rate_limit_orders_per_address",
    "rate_limit_orders_per_address_burst",
    "rate_limit_reads_per_address",
    "rate_limit_reads_per_address_burst",
    "rate_limit_admin_per_address",
    "rate_limit_admin_per_address_burst",
    "rate_limit_orders_per_customer",
    "rate_limit_orders_per_customer_burst",
    "rate_limit_keys_max",
    "trusted_proxies",
    "waiting_room_secret_file",
    "waiting_room_bypass_tokens_file",
    "waiting_room_queue_length_max",
    "waiting_room_spent_tickets_max",
    "waiting_room_poll_after_min_ms",
    "waiting_room_poll_after_max_ms",
    "http_request_uri_bytes_max",
    "http_request_headers_bytes_max",
    "replication_unauthenticated_sessions_max",
    "replication_handshake_timeout_ms",
    "client_log_lines_burst",
    "client_log_lines_per_minute",
    "alert_evaluate_interval_ms",
    "alert_recent_max",
    "metrics_skus_max",
    "alert_feed_events_max",
    "console_streams_max",
    "console_sample_interval_ms",
    "report_skus_max",
    "alert_unpaid_expiry_window_secs",
    "alert_unpaid_expiry_min_ended",
    "alert_unpaid_expiry_percent",
    "alert_duplicate_orders_window_secs",
    "alert_duplicate_orders_min",
    "alert_duplicate_orders_percent",
    "alert_overload_window_secs",
    "alert_overload_min",
    "alert_overload_percent",
    "alert_replication_lag_ms",
    "alert_standby_lost_after_ms",
    "alert_admin_auth_window_secs",
    "alert_admin_auth_failures_min",
    "webhook_urls",
    "webhook_secret",
    "webhook_secret_file",
    "webhook_queue_max",
    "webhook_retry_for_secs",
    "webhook_attempt_timeout_ms",
    "webhook_backoff_initial_ms",
    "webhook_backoff_max_ms",
    "webhook_in_flight_max",
];

impl Config {
    /// Loads the layers and checks every limit.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("FLASHGATE_").only(ENV_KEYS))
            .merge(Serialized::defaults(overrides));
        Config::extract(figment)
    }

    /// A config file's text over the defaults, checked as `load` checks it:
    /// the file layer alone, without the environment or flags.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::extract(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)),
        )
    }

    fn extract(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|error| ConfigError::Invalid(error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("http_connections_max", self.http_connections_max as u64),
            ("http_body_bytes_max", self.http_body_bytes_max as u64),
            ("http_body_read_timeout_ms", self.http_body_read_timeout_ms),
            ("mailbox_requests_max", self.mailbox_requests_max as u64),
            ("orders_per_shard_max", self.orders_per_shard_max as u64),
            ("retire_batch_max", self.retire_batch_max as u64),
            ("storage_cache_bytes_max", self.storage_cache_bytes_max),
            ("expiry_interval_ms", self.expiry_interval_ms),
            ("expiry_batch_max", self.expiry_batch_max as u64),
            ("log_queue_records_max", self.log_queue_records_max as u64),
            ("log_batch_records_max", self.log_batch_records_max as u64),
            ("log_batch_bytes_max", self.log_batch_bytes_max as u64),
            (
                "quic_streams_per_connection_max",
                u64::from(self.quic_streams_per_connection_max),
            ),
            ("quic_connections_max", self.quic_connections_max as u64),
            ("quic_handshake_timeout_ms", self.quic_handshake_timeout_ms),
            ("quic_handshakes_max", self.quic_handshakes_max as u64),
            (
                "quic_in_flight_per_connection_max",
                self.quic_in_flight_per_connection_max as u64,
            ),
            ("quic_batch_orders_max", self.quic_batch_orders_max as u64),
            ("orders_read_max", self.orders_read_max as u64),
            (
                "customer_orders_page_max",
                self.customer_orders_page_max as u64,
            ),
            (
                "customer_orders_scan_max",
                self.customer_orders_scan_max as u64,
            ),
            ("quic_idle_timeout_ms", self.quic_idle_timeout_ms),
            ("standby_timeout_ms", self.standby_timeout_ms),
            ("disk_stall_timeout_ms", self.disk_stall_timeout_ms),
            ("archive_segment_bytes_max", self.archive_segment_bytes_max),
            (
                "archive_retention_records_max",
                self.archive_retention_records_max,
            ),
            (
                "events_stream_max_age_secs",
                self.events_stream_max_age_secs,
            ),
            (
                "events_duplicate_window_secs",
                self.events_duplicate_window_secs,
            ),
            (
                "events_retention_records_max",
                self.events_retention_records_max,
            ),
            (
                "events_batch_records_max",
                self.events_batch_records_max as u64,
            ),
            (
                "replication_message_bytes_max",
                self.replication_message_bytes_max as u64,
            ),
            (
                "replication_unacked_bytes_max",
                self.replication_unacked_bytes_max as u64,
            ),
            ("replication_heartbeat_ms", self.replication_heartbeat_ms),
            (
                "auth_failures_per_address_max",
                u64::from(self.auth_failures_per_address_max),
            ),
            ("auth_failure_window_secs", self.auth_failure_window_secs),
            (
                "auth_failure_addresses_max",
                self.auth_failure_addresses_max as u64,
            ),
            (
                "http_connections_per_address_max",
                self.http_connections_per_address_max as u64,
            ),
            (
                "http_request_uri_bytes_max",
                self.http_request_uri_bytes_max as u64,
            ),
            (
                "http_request_headers_bytes_max",
                self.http_request_headers_bytes_max as u64,
            ),
            (
                "replication_unauthenticated_sessions_max",
                self.replication_unauthenticated_sessions_max as u64,
            ),
            (
                "replication_handshake_timeout_ms",
                self.replication_handshake_timeout_ms,
            ),
            (
                "client_log_lines_burst",
                u64::from(self.client_log_lines_burst),
            ),
            (
                "client_log_lines_per_minute",
                u64::from(self.client_log_lines_per_minute),
            ),
            (
                "rate_limit_orders_per_address_burst",
                u64::from(self.rate_limit_orders_per_address_burst),
            ),
            (
                "rate_limit_reads_per_address_burst",
                u64::from(self.rate_limit_reads_per_address_burst),
            ),
            (
                "rate_limit_admin_per_address_burst",
                u64::from(self.rate_limit_admin_per_address_burst),
            ),
            (
                "rate_limit_orders_per_customer_burst",
                u64::from(self.rate_limit_orders_per_customer_burst),
            ),
            ("rate_limit_keys_max", self.rate_limit_keys_max as u64),
            (
                "waiting_room_queue_length_max",
                u64::from(self.waiting_room_queue_length_max),
            ),
            (
                "waiting_room_spent_tickets_max",
                self.waiting_room_spent_tickets_max as u64,
            ),
            (
                "waiting_room_poll_after_min_ms",
                self.waiting_room_poll_after_min_ms,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if let Some(0) = self.http_workers {
            return Err(ConfigError::Invalid(
                "http_workers must be at least 1".into(),
            ));
        }
        if let Some(shards) = self.shards {
            if shards == 0 || shards > flashgate_actors::node::SHARDS_MAX {
                return Err(ConfigError::Invalid(format!(
                    "shards must be between 1 and {}, got {shards}",
                    flashgate_actors::node::SHARDS_MAX
                )));
            }
        }
        if let Some(token) = self.admin_token.as_deref() {
            crate::token::check_strength(token).map_err(ConfigError::Invalid)?;
        }
        if self.replication_unauthenticated_sessions_max
            > REPLICATION_UNAUTHENTICATED_SESSIONS_MAX_LIMIT
        {
            return Err(ConfigError::Invalid(format!(
                "replication_unauthenticated_sessions_max must be at most {REPLICATION_UNAUTHENTICATED_SESSIONS_MAX_LIMIT}, got {}",
                self.replication_unauthenticated_sessions_max
            )));
        }
        let head = self.http_request_uri_bytes_max + self.http_request_headers_bytes_max;
        if head > HTTP_HEAD_BYTES_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "http_request_uri_bytes_max + http_request_headers_bytes_max must be at most {HTTP_HEAD_BYTES_LIMIT} (past it the HTTP parser refuses the head itself, without a problem body), got {head}"
            )));
        }
        crate::rate_limit::parse_trusted_proxies(&self.trusted_proxies)
            .map_err(|error| ConfigError::Invalid(format!("trusted_proxies: {error}")))?;
        if self.waiting_room_poll_after_max_ms < self.waiting_room_poll_after_min_ms {
            return Err(ConfigError::Invalid(format!(
                "waiting_room_poll_after_max_ms ({}) must be at least waiting_room_poll_after_min_ms ({})",
                self.waiting_room_poll_after_max_ms, self.waiting_room_poll_after_min_ms
            )));
        }
        self.validate_quic()?;
        self.validate_auth()?;
        self.validate_alerts()?;
        self.validate_events()?;
        self.validate_replication()
    }

    /// The stream name and subject prefix are names NATS takes as they are.
    fn validate_events(&self) -> Result<(), ConfigError> {
        let plain = |text: &str, dots: bool| {
            !text.is_empty()
                && text.len() <= 64
                && text.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '_' || c == '-' || (dots && c == '.')
                })
                && !text.starts_with('.')
                && !text.ends_with('.')
                && !text.contains("..")
        };
        if !plain(&self.events_stream, false) {
            return Err(ConfigError::Invalid(format!(
                "events_stream must be 1-64 characters of A-Z a-z 0-9 _ -, got {:?}",
                self.events_stream
            )));
        }
        if !plain(&self.events_subject_prefix, true) {
            return Err(ConfigError::Invalid(format!(
                "events_subject_prefix must be 1-64 characters of A-Z a-z 0-9 _ - in dot-separated tokens (no wildcards), got {:?}",
                self.events_subject_prefix
            )));
        }
        if let Some(url) = &self.events_nats_url {
            if !(url.starts_with("nats://") || url.starts_with("tls://")) {
                return Err(ConfigError::Invalid(format!(
                    "events_nats_url must look like nats://HOST:PORT, got {url:?}"
                )));
            }
        }
        Ok(())
    }

    fn validate_alerts(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        let positive = [
            ("alert_recent_max", self.alert_recent_max as u64),
            ("alert_feed_events_max", self.alert_feed_events_max as u64),
            ("console_streams_max", self.console_streams_max as u64),
            ("report_skus_max", self.report_skus_max as u64),
            (
                "alert_unpaid_expiry_window_secs",
                self.alert_unpaid_expiry_window_secs,
            ),
            (
                "alert_unpaid_expiry_min_ended",
                self.alert_unpaid_expiry_min_ended,
            ),
            (
                "alert_duplicate_orders_window_secs",
                self.alert_duplicate_orders_window_secs,
            ),
            (
                "alert_duplicate_orders_min",
                self.alert_duplicate_orders_min,
            ),
            (
                "alert_overload_window_secs",
                self.alert_overload_window_secs,
            ),
            ("alert_overload_min", self.alert_overload_min),
            ("alert_replication_lag_ms", self.alert_replication_lag_ms),
            (
                "alert_admin_auth_window_secs",
                self.alert_admin_auth_window_secs,
            ),
            (
                "alert_admin_auth_failures_min",
                self.alert_admin_auth_failures_min,
            ),
            ("webhook_queue_max", self.webhook_queue_max as u64),
            ("webhook_retry_for_secs", self.webhook_retry_for_secs),
            (
                "webhook_attempt_timeout_ms",
                self.webhook_attempt_timeout_ms,
            ),
            (
                "webhook_backoff_initial_ms",
                self.webhook_backoff_initial_ms,
            ),
            ("webhook_in_flight_max", self.webhook_in_flight_max as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                return invalid(format!("{name} must be at least 1"));
            }
        }
        if !(ALERT_EVALUATE_INTERVAL_MS_MIN..=ALERT_EVALUATE_INTERVAL_MS_MAX)
            .contains(&self.alert_evaluate_interval_ms)
        {
            return invalid(format!(
                "alert_evaluate_interval_ms must be between {ALERT_EVALUATE_INTERVAL_MS_MIN} and {ALERT_EVALUATE_INTERVAL_MS_MAX}, got {}",
                self.alert_evaluate_interval_ms
            ));
        }
        if !(ALERT_EVALUATE_INTERVAL_MS_MIN..=ALERT_EVALUATE_INTERVAL_MS_MAX)
            .contains(&self.console_sample_interval_ms)
        {
            return invalid(format!(
                "console_sample_interval_ms must be between {ALERT_EVALUATE_INTERVAL_MS_MIN} and {ALERT_EVALUATE_INTERVAL_MS_MAX}, got {}",
                self.console_sample_interval_ms
            ));
        }
        for (name, value) in [
            (
                "alert_unpaid_expiry_window_secs",
                self.alert_unpaid_expiry_window_secs,
            ),
            (
                "alert_duplicate_orders_window_secs",
                self.alert_duplicate_orders_window_secs,
            ),
            (
                "alert_overload_window_secs",
                self.alert_overload_window_secs,
            ),
            (
                "alert_admin_auth_window_secs",
                self.alert_admin_auth_window_secs,
            ),
        ] {
            if value > ALERT_WINDOW_SECS_MAX {
                return invalid(format!(
                    "{name} must be at most {ALERT_WINDOW_SECS_MAX} (one day), got {value}"
                ));
            }
        }
        for (name, value) in [
            (
                "alert_unpaid_expiry_percent",
                self.alert_unpaid_expiry_percent,
            ),
            (
                "alert_duplicate_orders_percent",
                self.alert_duplicate_orders_percent,
            ),
            ("alert_overload_percent", self.alert_overload_percent),
        ] {
            if !(1..=100).contains(&value) {
                return invalid(format!("{name} must be between 1 and 100, got {value}"));
            }
        }
        if self.webhook_backoff_max_ms < self.webhook_backoff_initial_ms {
            return invalid(format!(
                "webhook_backoff_max_ms ({}) must be at least webhook_backoff_initial_ms ({})",
                self.webhook_backoff_max_ms, self.webhook_backoff_initial_ms
            ));
        }
        if self.webhook_urls.len() > WEBHOOK_URLS_MAX {
            return invalid(format!(
                "at most {WEBHOOK_URLS_MAX} webhook urls, got {}",
                self.webhook_urls.len()
            ));
        }
        for url in &self.webhook_urls {
            crate::alerts::webhook::check_url(url).map_err(ConfigError::Invalid)?;
        }
        if self.webhook_secret.is_some() && self.webhook_secret_file.is_some() {
            return invalid(
                "give the webhook secret once: webhook_secret or webhook_secret_file, not both"
                    .into(),
            );
        }
        if let Some(secret) = &self.webhook_secret {
            crate::alerts::webhook::secret_key(secret).map_err(ConfigError::Invalid)?;
        }
        Ok(())
    }

    /// The alert rules' thresholds and windows.
    pub fn alert_rules(&self) -> crate::alerts::AlertRules {
        crate::alerts::AlertRules {
            unpaid_expiry_window_ms: self.alert_unpaid_expiry_window_secs * 1000,
            unpaid_expiry_min_ended: self.alert_unpaid_expiry_min_ended,
            unpaid_expiry_percent: self.alert_unpaid_expiry_percent,
            duplicate_orders_window_ms: self.alert_duplicate_orders_window_secs * 1000,
            duplicate_orders_min: self.alert_duplicate_orders_min,
            duplicate_orders_percent: self.alert_duplicate_orders_percent,
            overload_window_ms: self.alert_overload_window_secs * 1000,
            overload_min: self.alert_overload_min,
            overload_percent: self.alert_overload_percent,
            replication_lag_ms: self.alert_replication_lag_ms,
            standby_lost_after_ms: self.alert_standby_lost_after_ms,
            admin_auth_window_ms: self.alert_admin_auth_window_secs * 1000,
            admin_auth_failures_min: self.alert_admin_auth_failures_min,
        }
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        if self.buyer_auth == BuyerAuth::Development
            && self.replicated()
            && !self.development_auth_with_replication
        {
            return Err(ConfigError::Invalid("buyer_auth = development (no buyer credentials) is for trying flashgate out, and replication is a production setting: give buyers credentials (--jwt-hmac-secret-file, --service-tokens-file), or set development_auth_with_replication = true to allow it anyway".into()));
        }
        if self.jwt_leeway_secs > JWT_LEEWAY_SECS_MAX {
            return Err(ConfigError::Invalid(format!(
                "jwt_leeway_secs must be at most {JWT_LEEWAY_SECS_MAX}, got {}",
                self.jwt_leeway_secs
            )));
        }
        Ok(())
    }

    /// The per-address throttle of failed credentials.
    pub fn auth_throttle(&self) -> crate::auth::ThrottleConfig {
        crate::auth::ThrottleConfig {
            failures_max: self.auth_failures_per_address_max,
            window_ms: self.auth_failure_window_secs.saturating_mul(1000),
            addresses_max: self.auth_failure_addresses_max,
        }
    }

    /// How many client-caused log lines are written.
    pub fn client_log_limits(&self) -> crate::log_limit::LineLimits {
        crate::log_limit::LineLimits {
            burst_lines: self.client_log_lines_burst,
            lines_per_minute: self.client_log_lines_per_minute,
        }
    }

    /// Whether this node takes part in replication at all.
    pub fn replicated(&self) -> bool {
        self.replication_addr.is_some() || self.follow.is_some()
    }

    fn validate_replication(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        match (self.role, &self.follow) {
            (StartRole::Standby, None) => {
                return invalid(
                    "role = standby needs the primary's replication address: --follow HOST:PORT"
                        .into(),
                )
            }
            (StartRole::Primary, Some(_)) => {
                return invalid(
                    "follow is for a standby: add --role standby, or drop --follow".into(),
                )
            }
            _ => {}
        }
        if let Some(after) = self.auto_promote_after_ms {
            if self.role != StartRole::Standby {
                return invalid("auto_promote_after is for a standby (--role standby)".into());
            }
            if self.replication != ReplicationMode::Sync {
                return invalid("auto_promote_after needs --replication sync: with async replication the primary acknowledges orders the standby may not have, and promoting would lose them".into());
            }
            if self.standby_loss != StandbyLossMode::Block {
                return invalid("auto_promote_after needs --standby-loss block: with degrade, a primary that lost sight of its standby goes on alone, and an automatic promotion would let two primaries acknowledge orders".into());
            }
            if after < 2 * self.replication_heartbeat_ms {
                return invalid(format!(
                    "auto_promote_after must be at least two heartbeats ({} ms)",
                    2 * self.replication_heartbeat_ms
                ));
            }
        }
        if self.cluster_secret.is_some() && self.cluster_secret_file.is_some() {
            return invalid(
                "give the cluster secret once: cluster_secret or cluster_secret_file, not both"
                    .into(),
            );
        }
        if self.replicated() && self.cluster_secret.is_none() && self.cluster_secret_file.is_none()
        {
            return invalid("replication needs the cluster secret: --cluster-secret-file FILE or FLASHGATE_CLUSTER_SECRET".into());
        }
        if let Some(secret) = &self.cluster_secret {
            check_secret(secret.as_bytes())?;
        }
        Ok(())
    }

    /// The cluster secret, read from the file when given there.
    pub fn load_cluster_secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if let Some(secret) = &self.cluster_secret {
            return Ok(Some(secret.as_bytes().to_vec()));
        }
        let Some(path) = &self.cluster_secret_file else {
            return Ok(None);
        };
        let mut bytes = std::fs::read(path).map_err(|error| {
            ConfigError::Invalid(format!(
                "cannot read the cluster secret file {}: {error}",
                path.display()
            ))
        })?;
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        check_secret(&bytes)?;
        Ok(Some(bytes))
    }

    /// The cluster settings of the node.
    pub fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig {
            role: match self.role {
                StartRole::Primary => Role::Primary,
                StartRole::Standby => Role::Standby,
            },
            replication: match (self.replicated(), self.replication) {
                (false, _) => Replication::Standalone,
                (true, ReplicationMode::Sync) => Replication::Sync,
                (true, ReplicationMode::Async) => Replication::Async,
            },
            standby_loss: match self.standby_loss {
                StandbyLossMode::Block => StandbyLoss::Block,
                StandbyLossMode::Degrade => StandbyLoss::Degrade,
            },
            standby_timeout: Duration::from_millis(self.standby_timeout_ms),
        }
    }

    fn validate_quic(&self) -> Result<(), ConfigError> {
        let frame_limit = flashgate_protocol::FRAME_BYTES_MAX_LIMIT;
        if !(QUIC_FRAME_BYTES_MAX_MIN..=frame_limit).contains(&self.quic_frame_bytes_max) {
            return Err(ConfigError::Invalid(format!(
                "quic_frame_bytes_max must be between {QUIC_FRAME_BYTES_MAX_MIN} and {frame_limit}, got {}",
                self.quic_frame_bytes_max
            )));
        }
        if self.quic_batch_orders_max > QUIC_BATCH_ORDERS_MAX_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "quic_batch_orders_max must be at most {QUIC_BATCH_ORDERS_MAX_LIMIT}, got {}",
                self.quic_batch_orders_max
            )));
        }
        if self.orders_read_max > ORDERS_READ_MAX_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "orders_read_max must be at most {ORDERS_READ_MAX_LIMIT}, got {}",
                self.orders_read_max
            )));
        }
        if self.customer_orders_page_max > CUSTOMER_ORDERS_PAGE_MAX_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "customer_orders_page_max must be at most {CUSTOMER_ORDERS_PAGE_MAX_LIMIT}, got {}",
                self.customer_orders_page_max
            )));
        }
        if self.customer_orders_scan_max < self.customer_orders_page_max {
            return Err(ConfigError::Invalid(format!(
                "customer_orders_scan_max ({}) must be at least customer_orders_page_max ({}): \
                 a page must be able to read as many archived orders as it may show",
                self.customer_orders_scan_max, self.customer_orders_page_max
            )));
        }
        // A batch takes one in-flight slot per order: a larger batch could never run.
        if self.quic_batch_orders_max > self.quic_in_flight_per_connection_max {
            return Err(ConfigError::Invalid(format!(
                "quic_batch_orders_max ({}) must be at most quic_in_flight_per_connection_max ({})",
                self.quic_batch_orders_max, self.quic_in_flight_per_connection_max
            )));
        }
        if self.quic_idle_timeout_ms > QUIC_IDLE_TIMEOUT_MS_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "quic_idle_timeout_ms must be at most {QUIC_IDLE_TIMEOUT_MS_LIMIT}, got {}",
                self.quic_idle_timeout_ms
            )));
        }
        if self.quic_handshake_timeout_ms > QUIC_HANDSHAKE_TIMEOUT_MS_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "quic_handshake_timeout_ms must be at most {QUIC_HANDSHAKE_TIMEOUT_MS_LIMIT}, got {}",
                self.quic_handshake_timeout_ms
            )));
        }
        if self.quic_handshakes_max > QUIC_HANDSHAKES_MAX_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "quic_handshakes_max must be at most {QUIC_HANDSHAKES_MAX_LIMIT}, got {}",
                self.quic_handshakes_max
            )));
        }
        if self.quic_handshakes_unvalidated_max > self.quic_handshakes_max {
            return Err(ConfigError::Invalid(format!(
                "quic_handshakes_unvalidated_max ({}) must be at most quic_handshakes_max ({})",
                self.quic_handshakes_unvalidated_max, self.quic_handshakes_max
            )));
        }
        let answer_bytes =
            QUIC_ANSWER_BYTES_PER_CONNECTION_MAX_MIN..=QUIC_ANSWER_BYTES_PER_CONNECTION_MAX_LIMIT;
        if !answer_bytes.contains(&self.quic_answer_bytes_per_connection_max) {
            return Err(ConfigError::Invalid(format!(
                "quic_answer_bytes_per_connection_max must be between {} and {}, got {}",
                answer_bytes.start(),
                answer_bytes.end(),
                self.quic_answer_bytes_per_connection_max
            )));
        }
        if self.http_tls_cert.is_some() != self.http_tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "http_tls_cert and http_tls_key go together: give both (--http-tls-cert and --http-tls-key) or neither".into(),
            ));
        }
        if self.quic_cert.is_some() != self.quic_key.is_some() {
            return Err(ConfigError::Invalid(
                "quic_cert and quic_key go together: give both (--quic-cert and --quic-key) or neither".into(),
            ));
        }
        Ok(())
    }

    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// The storage layer's limits.
    pub fn storage_config(&self) -> StorageConfig {
        StorageConfig {
            cache_bytes_max: self.storage_cache_bytes_max,
            ..StorageConfig::default()
        }
    }

    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            shards: self
                .shards
                .unwrap_or(Config::cores() as u32)
                .min(flashgate_actors::node::SHARDS_MAX),
            shards_explicit: self.shards.is_some(),
            mailbox_requests_max: self.mailbox_requests_max,
            orders_per_shard_max: self.orders_per_shard_max,
            retention: Retention {
                finished_order_secs: self.finished_order_retention_secs,
                confirmed_order_secs: self.confirmed_order_retention_secs,
                idempotency_key_secs: self.idempotency_key_retention_secs,
                retire_batch_max: self.retire_batch_max,
            },
            expiry_interval: Duration::from_millis(self.expiry_interval_ms),
            expiry_batch_max: self.expiry_batch_max,
            writer: WriterConfig {
                queue_records_max: self.log_queue_records_max,
                batch_records_max: self.log_batch_records_max,
                batch_bytes_max: self.log_batch_bytes_max,
            },
            cluster: self.cluster_config(),
            disk_stall_timeout: Duration::from_millis(self.disk_stall_timeout_ms),
        }
    }

    /// How large a request head may be.
    pub fn head_limits(&self) -> crate::http_limits::HeadLimits {
        crate::http_limits::HeadLimits {
            uri_bytes_max: self.http_request_uri_bytes_max,
            headers_bytes_max: self.http_request_headers_bytes_max,
        }
    }

    /// What one HTTP request body may cost.
    /// The rate limits. Call only on a validated config.
    pub fn rate_limits(&self) -> crate::rate_limit::RateLimitConfig {
        use crate::rate_limit::Rate;
        let rate = |per_sec: u32, burst: u32| (per_sec > 0).then_some(Rate { per_sec, burst });
        crate::rate_limit::RateLimitConfig {
            orders_per_address: rate(
                self.rate_limit_orders_per_address,
                self.rate_limit_orders_per_address_burst,
            ),
            reads_per_address: rate(
                self.rate_limit_reads_per_address,
                self.rate_limit_reads_per_address_burst,
            ),
            admin_per_address: rate(
                self.rate_limit_admin_per_address,
                self.rate_limit_admin_per_address_burst,
            ),
            orders_per_customer: rate(
                self.rate_limit_orders_per_customer,
                self.rate_limit_orders_per_customer_burst,
            ),
            keys_max: self.rate_limit_keys_max,
            trusted_proxies: crate::rate_limit::parse_trusted_proxies(&self.trusted_proxies)
                .expect("validated"),
        }
    }

    /// The waiting rooms' limits and keys: the secret and the bypass tokens
    /// read from their files, the settings kept in the data dir.
    pub fn waiting_rooms(&self) -> Result<crate::waiting_room::WaitingRoomConfig, ConfigError> {
        use crate::waiting_room::SECRET_BYTES_MIN;
        let secret = match &self.waiting_room_secret_file {
            None => None,
            Some(path) => {
                let mut bytes = std::fs::read(path).map_err(|error| {
                    ConfigError::Invalid(format!(
                        "cannot read waiting_room_secret_file {}: {error}",
                        path.display()
                    ))
                })?;
                while bytes.last().is_some_and(u8::is_ascii_whitespace) {
                    bytes.pop();
                }
                if bytes.len() < SECRET_BYTES_MIN {
                    return Err(ConfigError::Invalid(format!(
                        "waiting_room_secret_file {} holds {} bytes; give at least {SECRET_BYTES_MIN} random bytes (e.g. `openssl rand -hex 32`)",
                        path.display(),
                        bytes.len()
                    )));
                }
                Some(bytes)
            }
        };
        let bypass_token_digests = match &self.waiting_room_bypass_tokens_file {
            None => Vec::new(),
            Some(path) => crate::auth::credentials::read_tokens(path)?
                .iter()
                .map(|token| {
                    let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
                    let mut bytes = [0u8; 32];
                    bytes.copy_from_slice(digest.as_ref());
                    bytes
                })
                .collect(),
        };
        Ok(crate::waiting_room::WaitingRoomConfig {
            secret,
            bypass_token_digests,
            queue_length_max: self.waiting_room_queue_length_max,
            spent_tickets_max: self.waiting_room_spent_tickets_max,
            poll_after_min_ms: self.waiting_room_poll_after_min_ms,
            poll_after_max_ms: self.waiting_room_poll_after_max_ms,
            settings_path: Some(self.data_dir.join(crate::waiting_room::SETTINGS_FILE)),
        })
    }

    pub fn body_limits(&self) -> crate::wire::BodyLimits {
        crate::wire::BodyLimits {
            bytes_max: self.http_body_bytes_max,
            read_timeout: Duration::from_millis(self.http_body_read_timeout_ms),
        }
    }

    /// The longest a graceful stop takes: the front ends drain within
    /// `shutdown_timeout_secs`, then the final checkpoint and the log's close get
    /// `disk_stall_timeout_ms` each. Past it the process exits anyway (a stuck
    /// disk must not keep a stopping node alive); the log holds every
    /// acknowledged order, so a skipped checkpoint loses nothing.
    pub fn stop_bound(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
            + 2 * Duration::from_millis(self.disk_stall_timeout_ms)
    }
}

/// The shortest cluster secret accepted.
pub const CLUSTER_SECRET_BYTES_MIN: usize = 16;

fn check_secret(secret: &[u8]) -> Result<(), ConfigError> {
    if secret.len() < CLUSTER_SECRET_BYTES_MIN {
        return Err(ConfigError::Invalid(format!(
            "the cluster secret must be at least {CLUSTER_SECRET_BYTES_MIN} bytes, got {}",
            secret.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flashgate.toml");
        std::fs::write(&file, "http_addr = \"127.0.0.1:9000\"\nshards = 3\n").unwrap();
        let config = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(config.http_addr.port(), 9000);
        assert_eq!(config.shards, Some(3));
        let overrides = Overrides {
            shards: Some(5),
            ..Overrides::default()
        };
        assert_eq!(
            Config::load(Some(&file), &overrides).unwrap().shards,
            Some(5)
        );

        std::fs::write(&file, "shards = \"many\"\n").unwrap();
        let message = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("shards"), "{message}");
        std::fs::write(&file, "shardz = 2\n").unwrap();
        let message = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("shardz"), "{message}");
        let missing = dir.path().join("absent.toml");
        assert!(matches!(
            Config::load(Some(&missing), &Overrides::default()),
            Err(ConfigError::MissingFile(_))
        ));
    }

    #[test]
    fn quic_limits_are_checked_and_cert_and_key_go_together() {
        Config::default().validate().unwrap();
        let invalid = |config: Config| config.validate().unwrap_err().to_string();
        let message = invalid(Config {
            quic_cert: Some("cert.pem".into()),
            ..Config::default()
        });
        assert!(message.contains("quic_key"), "{message}");
        let message = invalid(Config {
            quic_frame_bytes_max: flashgate_protocol::FRAME_BYTES_MAX_LIMIT + 1,
            ..Config::default()
        });
        assert!(message.contains("quic_frame_bytes_max"), "{message}");
        let message = invalid(Config {
            quic_batch_orders_max: 100,
            quic_in_flight_per_connection_max: 10,
            ..Config::default()
        });
        assert!(
            message.contains("quic_in_flight_per_connection_max"),
            "{message}"
        );
        let message = invalid(Config {
            quic_handshakes_unvalidated_max: 300,
            quic_handshakes_max: 200,
            ..Config::default()
        });
        assert!(
            message.contains("quic_handshakes_unvalidated_max"),
            "{message}"
        );
        let message = invalid(Config {
            quic_handshake_timeout_ms: 0,
            ..Config::default()
        });
        assert!(message.contains("quic_handshake_timeout_ms"), "{message}");
        let message = invalid(Config {
            quic_answer_bytes_per_connection_max: 100,
            ..Config::default()
        });
        assert!(
            message.contains("quic_answer_bytes_per_connection_max"),
            "{message}"
        );
        let message = invalid(Config {
            quic_streams_per_connection_max: 0,
            ..Config::default()
        });
        assert!(
            message.contains("quic_streams_per_connection_max"),
            "{message}"
        );
    }

    #[test]
    fn hostile_client_limits_are_checked() {
        let invalid = |config: Config| config.validate().unwrap_err().to_string();
        let message = invalid(Config {
            http_connections_per_address_max: 0,
            ..Config::default()
        });
        assert!(
            message.contains("http_connections_per_address_max"),
            "{message}"
        );
        let message = invalid(Config {
            http_request_uri_bytes_max: HTTP_HEAD_BYTES_LIMIT + 1,
            ..Config::default()
        });
        assert!(message.contains("http_request_uri_bytes_max"), "{message}");
        let message = invalid(Config {
            replication_unauthenticated_sessions_max: 0,
            ..Config::default()
        });
        assert!(
            message.contains("replication_unauthenticated_sessions_max"),
            "{message}"
        );
        let message = invalid(Config {
            client_log_lines_per_minute: 0,
            ..Config::default()
        });
        assert!(message.contains("client_log_lines_per_minute"), "{message}");
    }

    /// Alert and webhook settings are checked, each error naming its setting;
    /// the defaults are the engine's.
    #[test]
    fn alert_and_webhook_settings_are_checked() {
        assert_eq!(
            Config::default().alert_rules(),
            crate::alerts::AlertRules::default()
        );
        let invalid = |config: Config| config.validate().unwrap_err().to_string();
        for (config, name) in [
            (
                Config {
                    alert_evaluate_interval_ms: 99,
                    ..Config::default()
                },
                "alert_evaluate_interval_ms",
            ),
            (
                Config {
                    alert_overload_percent: 101,
                    ..Config::default()
                },
                "alert_overload_percent",
            ),
            (
                Config {
                    alert_unpaid_expiry_percent: 0,
                    ..Config::default()
                },
                "alert_unpaid_expiry_percent",
            ),
            (
                Config {
                    alert_duplicate_orders_window_secs: 86_401,
                    ..Config::default()
                },
                "alert_duplicate_orders_window_secs",
            ),
            (
                Config {
                    webhook_queue_max: 0,
                    ..Config::default()
                },
                "webhook_queue_max",
            ),
            (
                Config {
                    webhook_backoff_max_ms: 1,
                    ..Config::default()
                },
                "webhook_backoff_max_ms",
            ),
            (
                Config {
                    webhook_urls: vec!["ftp://example.com/".into()],
                    ..Config::default()
                },
                "http://",
            ),
            (
                Config {
                    webhook_secret: Some("plain".into()),
                    ..Config::default()
                },
                "whsec_",
            ),
            (
                Config {
                    webhook_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
                    webhook_secret_file: Some("s".into()),
                    ..Config::default()
                },
                "webhook_secret_file",
            ),
        ] {
            let message = invalid(config);
            assert!(message.contains(name), "{name}: {message}");
        }
        Config {
            webhook_urls: vec!["http://127.0.0.1:9000/hook".into()],
            webhook_secret: Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
            ..Config::default()
        }
        .validate()
        .unwrap();
    }

    /// deploy/flashgate.toml, the example an operator starts from, names every
    /// setting (set, or commented out where there is no default) at its
    /// default, and nothing else: it cannot drift from the code unnoticed.
    #[test]
    fn the_example_config_file_names_every_setting_at_its_default() {
        let text = include_str!("../../deploy/flashgate.toml");
        let loaded = Config::from_toml_str(text).expect("the example loads");
        let as_json = |config: &Config| serde_json::to_value(config).expect("serialise");
        assert_eq!(as_json(&loaded), as_json(&Config::default()));
        let serde_json::Value::Object(defaults) = as_json(&Config::default()) else {
            panic!("a config serialises as an object");
        };
        let named: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# ").or(Some(line)))
            .filter_map(|line| line.split_once(" = ").map(|(key, _)| key))
            .filter(|key| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        for key in defaults.keys() {
            assert_eq!(
                named.iter().filter(|named| *named == key).count(),
                1,
                "deploy/flashgate.toml names `{key}` once"
            );
        }
        for key in &named {
            assert!(defaults.contains_key(*key), "`{key}` is not a setting");
        }
        for key in ENV_KEYS {
            assert!(
                defaults.contains_key(*key),
                "FLASHGATE_{key} is not a setting"
            );
        }
    }

    /// A page larger than the limit, or a scan that could not read a whole
    /// page of archived orders, is refused at start, naming the setting.
    #[test]
    fn customer_listing_limits_are_checked() {
        let invalid = |config: Config| config.validate().unwrap_err().to_string();
        let error = invalid(Config {
            customer_orders_page_max: CUSTOMER_ORDERS_PAGE_MAX_LIMIT + 1,
            customer_orders_scan_max: CUSTOMER_ORDERS_PAGE_MAX_LIMIT + 1,
            ..Config::default()
        });
        assert!(error.contains("customer_orders_page_max"), "{error}");
        let error = invalid(Config {
            customer_orders_page_max: 50,
            customer_orders_scan_max: 49,
            ..Config::default()
        });
        assert!(error.contains("customer_orders_scan_max"), "{error}");
        assert!(Config::default().validate().is_ok());
    }
}
