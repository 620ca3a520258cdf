//! `serve`: start a node and its front ends (HTTP, and QUIC unless turned off),
//! run until SIGINT or SIGTERM, then stop accepting, finish in-flight requests,
//! checkpoint, and return. A stop ends within `Config::stop_bound` even when the
//! disk is stuck: past it the process exits with `EXIT_STOP_ABANDONED`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{middleware, web, App, HttpServer};
use flashgate_actors::{Node, PeerAddress, StartError};
use flashgate_storage::{Storage, StorageError};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::Config;
use crate::http::{configure, AppState, Readiness};
use crate::http_limits::{on_connect, refuse_over_limits, AddressCounts};
use crate::problem::RETRY_AFTER_SECS;
use crate::quic::{server_certificate, CertificateSource, QuicError, QuicLimits, QuicServer};
use crate::replication::{Replication, ReplicationSettings, TransportError};
use crate::token::{admin_token, TokenError, TokenSource};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Quic(#[from] QuicError),
    #[error("HTTP TLS: {0}")]
    HttpTls(#[from] crate::quic::tls::TlsError),
    #[error("cannot listen for HTTP on {addr}: {source}; pick a free address with --http-addr")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(String),
    #[error("HTTP server failed: {0}")]
    Http(std::io::Error),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Replication(#[from] TransportError),
    #[error("webhooks: {0}")]
    Webhook(String),
    #[error("stopped after a storage failure: {0}; every acknowledged order is in the log: fix the disk, then restart this node (or promote its standby)")]
    StorageFailed(String),
    #[error(transparent)]
    Archive(#[from] flashgate_actors::archiver::ArchiveError),
    #[error("cannot start the events publisher: {0}")]
    Events(std::io::Error),
}

/// The exit code when a graceful stop did not finish within
/// `Config::stop_bound` (a wait on the disk never returned) and the process
/// exited without it. Safe: the log holds every acknowledged order.
pub const EXIT_STOP_ABANDONED: i32 = 3;

/// The exit code after a graceful stop of a node whose storage had failed
/// (`ServeError::StorageFailed`): the final checkpoint was skipped; the log
/// holds every acknowledged order.
pub const EXIT_STORAGE_FAILED: u8 = 4;

/// Latency buckets in seconds, from 50 µs to 10 s.
const LATENCY_BUCKETS_SECS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 8192.0,
];

fn install_metrics() -> Result<PrometheusHandle, ServeError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(
                Matcher::Full("flashgate_log_batch_records".into()),
                BATCH_BUCKETS,
            )
        })
        .map_err(|error| ServeError::Metrics(error.to_string()))?
        .install_recorder()
        .map_err(|error| ServeError::Metrics(error.to_string()))
}

/// Runs the node until a shutdown signal. Must run inside an actix system.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let metrics = install_metrics()?;
    RETRY_AFTER_SECS.store(
        config.retry_after_secs,
        std::sync::atomic::Ordering::Relaxed,
    );
    let storage = Storage::open(&config.data_dir, config.storage_config())?;
    let (token, token_source) = admin_token(&config.data_dir, config.admin_token.as_deref())?;
    match &token_source {
        TokenSource::Configured => tracing::info!("admin token: configured"),
        TokenSource::Stored(path) => println!("flashgate: admin token is in {}", path.display()),
        TokenSource::Generated(path) => {
            println!(
                "flashgate: generated an admin token, stored in {} (mode 0600)",
                path.display()
            )
        }
    }

    let credentials = crate::auth::Credentials::load(&config, &token)?;
    if config.buyer_auth == crate::auth::BuyerAuth::Development {
        tracing::warn!("buyer_auth = development: buyer and payment calls need no credential and may act for any customer; never use this with real buyers");
    } else if !credentials.takes_buyers() {
        tracing::warn!("no buyer credentials are configured (--jwt-hmac-secret-file, --jwt-jwks-file, --service-tokens-file): only the admin token can place orders");
    }
    let gatekeeper = Arc::new(crate::auth::Gatekeeper::new(
        credentials,
        config.auth_throttle(),
    ));
    let secret = config.load_cluster_secret()?;
    let (node, runtime, report) = Node::start(storage, config.node_config())?;
    tracing::info!(
        shards = report.shards,
        epoch = report.epoch,
        skus = report.skus,
        orders = report.orders,
        replayed_records = report.replayed_records,
        last_lsn = report.last_lsn,
        checkpoint_ms = report.checkpoint_elapsed.as_millis() as u64,
        replay_ms = report.replay_elapsed.as_millis() as u64,
        verify_ms = report.verify_elapsed.as_millis() as u64,
        recovery_ms = report.elapsed.as_millis() as u64,
        "recovered data dir {}",
        config.data_dir.display()
    );
    let archiver = match &config.archive_dir {
        Some(dir) => Some(flashgate_actors::archiver::Archiver::start(
            &node,
            flashgate_actors::archiver::ArchiveConfig {
                dir: dir.clone(),
                command: config.archive_command.clone(),
                segment_bytes_max: config.archive_segment_bytes_max,
                retention_records_max: config.archive_retention_records_max,
            },
        )?),
        None => None,
    };
    // Moves of orders between shards that a crash left half done.
    if node.cluster().takes_writes() {
        actix_web::rt::spawn(Arc::clone(&node).resolve_moves_logged());
    }
    let events = match &config.events_nats_url {
        Some(url) => Some(
            crate::events::EventsPublisher::start(
                Arc::clone(&node),
                crate::events::EventsConfig {
                    nats_url: url.clone(),
                    stream: config.events_stream.clone(),
                    subject_prefix: config.events_subject_prefix.clone(),
                    stream_max_age_secs: config.events_stream_max_age_secs,
                    duplicate_window_secs: config.events_duplicate_window_secs,
                    retention_records_max: config.events_retention_records_max,
                    batch_records_max: config.events_batch_records_max,
                },
            )
            .map_err(ServeError::Events)?,
        ),
        None => None,
    };
    let readiness = Arc::new(Readiness::default());
    // After `install_metrics`: the counters' handles come from its recorder.
    let requests = Arc::new(crate::request::RequestMetrics::new(config.report_skus_max));
    let rate_limits = Arc::new(crate::rate_limit::RateLimits::new(&config.rate_limits()));
    let waiting_rooms = Arc::new(
        crate::waiting_room::WaitingRooms::open(config.waiting_rooms()?)
            .map_err(crate::config::ConfigError::Invalid)?
            .with_directory(crate::waiting_room::node_directory(Arc::clone(&node))),
    );
    migrate_waiting_rooms(&node, &waiting_rooms, &config).await;
    let alerts = Arc::new(start_alerts(&config)?);
    let console = Arc::new(crate::console::Console::new(config.console_streams_max));
    let replication_slot = Arc::new(std::sync::OnceLock::new());
    let quic_admin_token = token.clone();
    let state = web::Data::new(AppState {
        node: Arc::clone(&node),
        gatekeeper: Arc::clone(&gatekeeper),
        body: config.body_limits(),
        metrics: metrics.clone(),
        readiness: Arc::clone(&readiness),
        replication: Arc::clone(&replication_slot),
        orders_read_max: config.orders_read_max,
        customer_orders: crate::http::CustomerOrderLimits::of(&config),
        requests: Arc::clone(&requests),
        rate_limits: Arc::clone(&rate_limits),
        waiting_rooms: Arc::clone(&waiting_rooms),
        alerts: Arc::clone(&alerts),
        events: events.as_ref().map(|events| Arc::clone(events.status())),
        console: Arc::clone(&console),
    });
    let workers = config.http_workers.unwrap_or_else(Config::cores);
    let head_limits = config.head_limits();
    let address_counts = AddressCounts::new(config.http_connections_per_address_max);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(middleware::from_fn(
                crate::http::rate_limit::limit_by_address,
            ))
            .wrap(middleware::from_fn(move |request, next| {
                refuse_over_limits(head_limits, request, next)
            }))
            .wrap(middleware::from_fn(record_latency))
            .configure(configure)
    })
    .workers(workers)
    .on_connect(on_connect(address_counts))
    .max_connections(config.http_connections_max)
    .shutdown_timeout(config.shutdown_timeout_secs)
    .disable_signals();
    let http_tls = match (&config.http_tls_cert, &config.http_tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(crate::http_tls::HttpTls::load(cert, key)?)),
        _ => None,
    };
    let bound = match &http_tls {
        Some(tls) => server.bind_rustls_0_23(config.http_addr, tls.server_config()?),
        None => server.bind(config.http_addr),
    };
    let server = bound.map_err(|source| ServeError::Bind {
        addr: config.http_addr.to_string(),
        source,
    })?;
    // Installed before the listening lines: whoever reads them may send SIGTERM
    // at once, and it must shut down gracefully, not kill the process.
    let signals = ShutdownSignals::install();
    // QUIC's lines come before HTTP's, so a reader waiting for the HTTP line has
    // seen both.
    let quic = if config.quic_enabled {
        Some(
            start_quic(
                &config,
                Arc::clone(&node),
                quic_admin_token,
                Arc::clone(&gatekeeper),
                Arc::clone(&requests),
                Arc::clone(&rate_limits),
                Arc::clone(&waiting_rooms),
            )
            .await?,
        )
    } else {
        None
    };
    let http_addr = server.addrs().first().copied().unwrap_or(config.http_addr);
    let mut advertise = PeerAddress {
        http: format!("http://{http_addr}"),
        quic: quic.as_ref().map(|quic| quic.local_addr().to_string()),
        replication: None,
    };
    node.cluster().set_advertise(advertise.clone());
    if let Some(secret) = secret {
        let settings = ReplicationSettings {
            secret,
            listen: config.replication_addr,
            follow: config.follow.clone(),
            heartbeat: Duration::from_millis(config.replication_heartbeat_ms),
            message_bytes_max: config.replication_message_bytes_max,
            unacked_bytes_max: config.replication_unacked_bytes_max,
            auto_promote_after: config.auto_promote_after_ms.map(Duration::from_millis),
            unauthenticated_sessions_max: config.replication_unauthenticated_sessions_max,
            handshake_timeout: Duration::from_millis(config.replication_handshake_timeout_ms),
        };
        let replication = Replication::start(Arc::clone(&node), settings)?;
        if let Some(addr) = replication.local_addr() {
            advertise.replication = Some(addr.to_string());
            node.cluster().set_advertise(advertise);
            println!("flashgate: listening on replication {addr}");
            tracing::info!(%addr, "listening for replication");
        }
        let _ = replication_slot.set(replication);
    }
    let status = node.cluster_status();
    tracing::info!(
        role = status.role.as_str(),
        mode = status.replication.as_str(),
        epoch = status.epoch,
        "cluster role"
    );
    let scheme = if http_tls.is_some() { "https" } else { "http" };
    for addr in server.addrs() {
        // One plain line on stdout, for operators and scripts that start us on port 0.
        println!("flashgate: listening on {scheme} {addr}");
        tracing::info!(%addr, scheme, "listening for HTTP");
    }
    if let Some(tls) = &http_tls {
        tracing::info!(sha256 = %tls.fingerprint_sha256(), "HTTP TLS certificate");
    }
    // SIGHUP reads the HTTP certificate again.
    let reloads = http_tls.map(|tls| {
        actix_web::rt::spawn(async move {
            let Ok(mut hangups) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                tracing::error!("cannot listen for SIGHUP: the HTTP certificate cannot be reloaded");
                return;
            };
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(sha256) => tracing::info!(%sha256, "HTTP TLS certificate reloaded"),
                    Err(error) => tracing::error!(%error, "HTTP TLS certificate not reloaded; the old one stays"),
                }
            }
        })
    });
    let server = server.run();
    let handle = server.handle();
    readiness.set(true);

    // Idle keys leave the rate limits' tables; the counts reach /metrics.
    let housekeeping = actix_web::rt::spawn(async move {
        let mut ticker = tokio::time::interval(crate::rate_limit::HOUSEKEEPING_INTERVAL);
        loop {
            ticker.tick().await;
            rate_limits.housekeeping();
        }
    });

    let checkpoint_node = Arc::clone(&node);
    let checkpoints = (config.checkpoint_interval_secs > 0).then(|| {
        let interval = Duration::from_secs(config.checkpoint_interval_secs);
        actix_web::rt::spawn(async move {
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                ticker.tick().await;
                match checkpoint_node.checkpoint().await {
                    Ok(report) => tracing::info!(
                        covers_lsn = report.covers_lsn,
                        bytes = report.bytes,
                        elapsed_ms = report.elapsed.as_millis() as u64,
                        "checkpoint written"
                    ),
                    Err(error) => tracing::error!(%error, "checkpoint failed"),
                }
            }
        })
    });

    let monitor = actix_web::rt::spawn(crate::alerts::monitor::run(
        Arc::clone(&node),
        Arc::clone(&requests),
        Arc::clone(&alerts),
        crate::alerts::AlertEngine::new(config.alert_rules(), run_id()),
        Duration::from_millis(config.alert_evaluate_interval_ms),
        config.metrics_skus_max,
    ));

    let _sampler = actix_web::rt::spawn(Arc::clone(&console.sampler).run(
        Arc::clone(&node),
        Arc::clone(&requests),
        metrics,
        Arc::clone(&console.streams),
        Duration::from_millis(config.console_sample_interval_ms),
    ));

    let signal_readiness = Arc::clone(&readiness);
    let console_streams = Arc::clone(&console.streams);
    let quic_shutdown = quic.as_ref().map(QuicServer::shutdown_trigger);
    let stop_bound = config.stop_bound();
    actix_web::rt::spawn(async move {
        let name = signals.recv().await;
        tracing::info!(
            signal = name,
            stop_bound_ms = stop_bound.as_millis() as u64,
            "shutting down: no new connections; finishing in-flight requests"
        );
        start_stop_deadline(stop_bound);
        signal_readiness.set(false);
        // Open console streams would hold the graceful stop to its timeout.
        console_streams.stop();
        // Both front ends drain at once, each within the shutdown timeout.
        if let Some(quic_shutdown) = quic_shutdown {
            quic_shutdown.trigger();
        }
        handle.stop(true).await;
    });

    let served = server.await;
    readiness.set(false);
    // Whatever ended the HTTP server, QUIC stops too before the final checkpoint.
    if let Some(quic) = quic {
        quic.stop().await;
    }
    let slot = Arc::clone(&replication_slot);
    actix_web::rt::task::spawn_blocking(move || {
        if let Some(replication) = slot.get() {
            replication.stop();
        }
    })
    .await
    .ok();
    served.map_err(ServeError::Http)?;
    housekeeping.abort();
    if let Some(reloads) = reloads {
        reloads.abort();
    }
    if let Some(checkpoints) = checkpoints {
        checkpoints.abort();
    }
    monitor.abort();
    if let Some(alerts) = Arc::into_inner(alerts) {
        if let Some(webhooks) = alerts.webhooks {
            actix_web::rt::task::spawn_blocking(move || webhooks.stop())
                .await
                .ok();
        }
    }
    if let Some(reason) = node.storage_failure().map(str::to_owned) {
        tracing::error!(
            %reason,
            "final checkpoint skipped: the log failed; it holds every acknowledged order"
        );
        // Closing a failed store waits on the disk again (sled flushes on drop,
        // and the log writer may still be stuck in it): leave both to the exit.
        std::mem::forget(runtime);
        std::mem::forget(node);
        return Err(ServeError::StorageFailed(reason));
    }
    let started = Instant::now();
    let stall = Duration::from_millis(config.disk_stall_timeout_ms);
    match tokio::time::timeout(stall, node.checkpoint()).await {
        Ok(Ok(report)) => tracing::info!(
            covers_lsn = report.covers_lsn,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "final checkpoint written"
        ),
        Ok(Err(error)) => {
            tracing::error!(%error, "final checkpoint failed; the log still holds every order")
        }
        Err(_) => tracing::error!(
            disk_stall_timeout_ms = config.disk_stall_timeout_ms,
            "final checkpoint abandoned: the disk did not answer in time; the log still holds every order"
        ),
    }
    drop(node);
    actix_web::rt::task::spawn_blocking(move || {
        runtime.stop();
        if let Some(events) = events {
            events.stop();
        }
        // Last: everything the log writer made durable goes to the archive.
        if let Some(archiver) = archiver {
            archiver.stop();
        }
    })
    .await
    .ok();
    tracing::info!("stopped");
    Ok(())
}

/// The alert feed and, when receivers are configured, the webhook thread
/// with its signing key.
fn start_alerts(config: &Config) -> Result<crate::alerts::Alerts, ServeError> {
    use crate::alerts::webhook::{load_key, Backoff, SecretSource, WebhookConfig, Webhooks};
    let limits = crate::alerts::FeedLimits {
        recent_max: config.alert_recent_max,
        events_max: config.alert_feed_events_max,
    };
    if config.webhook_urls.is_empty() {
        return Ok(crate::alerts::Alerts::new(limits, None));
    }
    let (key, source) = load_key(
        config.webhook_secret.as_deref(),
        config.webhook_secret_file.as_deref(),
        &config.data_dir,
    )
    .map_err(ServeError::Webhook)?;
    match source {
        SecretSource::Configured => tracing::info!("webhook signing secret: configured"),
        SecretSource::File(path) => {
            println!("flashgate: webhook signing secret is in {}", path.display())
        }
        SecretSource::Generated(path) => println!(
            "flashgate: generated a webhook signing secret, stored in {} (mode 0600)",
            path.display()
        ),
    }
    let webhooks = Webhooks::start(WebhookConfig {
        urls: config.webhook_urls.clone(),
        key,
        queue_max: config.webhook_queue_max,
        retry_for: Duration::from_secs(config.webhook_retry_for_secs),
        attempt_timeout: Duration::from_millis(config.webhook_attempt_timeout_ms),
        backoff: Backoff {
            initial: Duration::from_millis(config.webhook_backoff_initial_ms),
            max: Duration::from_millis(config.webhook_backoff_max_ms),
        },
        in_flight_max: config.webhook_in_flight_max,
        node: format!("http://{}", config.http_addr),
    })
    .map_err(|error| ServeError::Webhook(format!("cannot start the delivery thread: {error}")))?;
    tracing::info!(
        receivers = config.webhook_urls.len(),
        "alert webhooks: {}",
        config
            .webhook_urls
            .iter()
            .map(|url| crate::alerts::webhook::receiver_name(url))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(crate::alerts::Alerts::new(limits, Some(webhooks)))
}

/// This run's id: 8 random hex digits, so alert ids and webhook message ids
/// never repeat across restarts.
fn run_id() -> String {
    let mut bytes = [0u8; 4];
    if getrandom::getrandom(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.subsec_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Makes sure the process ends within `bound` of now, whatever is stuck: a
/// thread that waits out the bound, says so, and exits with
/// `EXIT_STOP_ABANDONED`. A stop that finishes first ends the process before it.
fn start_stop_deadline(bound: Duration) {
    let spawned = std::thread::Builder::new()
        .name("flashgate-stop-deadline".into())
        .spawn(move || {
            std::thread::sleep(bound);
            tracing::error!(
                stop_bound_ms = bound.as_millis() as u64,
                exit_code = EXIT_STOP_ABANDONED,
                "STOP ABANDONED: the graceful stop did not finish within its bound (a wait on the disk never returned); exiting without the final checkpoint: the log holds every acknowledged order"
            );
            eprintln!(
                "flashgate: the graceful stop did not finish within {} ms; exiting with code {EXIT_STOP_ABANDONED} without the final checkpoint (the log holds every acknowledged order)",
                bound.as_millis()
            );
            std::process::exit(EXIT_STOP_ABANDONED);
        });
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the stop deadline; this stop is not bounded");
    }
}

/// Loads or generates the QUIC certificate, prints it, and starts the QUIC front
/// end; prints its address once bound.
async fn start_quic(
    config: &Config,
    node: Arc<Node>,
    admin_token: String,
    gatekeeper: Arc<crate::auth::Gatekeeper>,
    requests: Arc<crate::request::RequestMetrics>,
    rate_limits: Arc<crate::rate_limit::RateLimits>,
    waiting_rooms: Arc<crate::waiting_room::WaitingRooms>,
) -> Result<QuicServer, ServeError> {
    let configured = config.quic_cert.as_deref().zip(config.quic_key.as_deref());
    let certificate = server_certificate(&config.data_dir, configured, config.quic_addr.ip())
        .map_err(QuicError::from)?;
    let source = match certificate.source {
        CertificateSource::Configured => "configured",
        CertificateSource::Stored => "stored",
        CertificateSource::Generated => "generated",
    };
    // One plain line for clients that pin the certificate.
    println!(
        "flashgate: QUIC certificate {} sha256 {}",
        certificate.path.display(),
        certificate.fingerprint_sha256
    );
    tracing::info!(
        path = %certificate.path.display(),
        sha256 = %certificate.fingerprint_sha256,
        source,
        "QUIC certificate"
    );
    let tls = certificate.rustls_config().map_err(QuicError::from)?;
    let limits = QuicLimits::from_config(config);
    let quic = QuicServer::start(
        node,
        admin_token,
        gatekeeper,
        requests,
        rate_limits,
        waiting_rooms,
        tls,
        config.quic_addr,
        limits,
    )
    .await?;
    let addr = quic.local_addr();
    println!("flashgate: listening on quic {addr}");
    tracing::info!(%addr, "listening for QUIC");
    Ok(quic)
}

/// The shutdown signals. From `install` on, SIGINT and SIGTERM no longer kill the
/// process; they wait in these streams until `recv` takes them.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> ShutdownSignals {
        use tokio::signal::unix::{signal, SignalKind};
        ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).expect("install the SIGINT handler"),
            terminate: signal(SignalKind::terminate()).expect("install the SIGTERM handler"),
        }
    }

    /// Waits for the first signal; returns its name.
    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

/// A request method as a metric label, from a fixed set: any client may send
/// any method name, and each distinct label would be a new series kept for
/// the life of the process.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Most (method, route, status) latency series one HTTP worker keeps the
/// handle of; past it (only a client sending unusual requests gets there),
/// a series is looked up by name and labels each time.
const LATENCY_HANDLES_PER_WORKER_MAX: usize = 128;

/// One latency series of `flashgate_http_request_duration_seconds` and its handle.
struct LatencySeries {
    method: &'static str,
    status: u16,
    route: Option<String>,
    histogram: metrics::Histogram,
}

thread_local! {
    /// The latency handles this HTTP worker has used: each request records
    /// into its series' kept handle instead of building the key and looking
    /// it up in the registry. Labels come from fixed sets (methods, routes,
    /// the statuses the server answers), so there are few.
    static LATENCY_SERIES: std::cell::RefCell<Vec<LatencySeries>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

async fn record_latency(
    request: actix_web::dev::ServiceRequest,
    next: middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(request.method());
    let response = next.call(request).await?;
    let route = response.request().match_pattern();
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    LATENCY_SERIES.with_borrow_mut(|kept| {
        let found = kept.iter().find(|series| {
            series.status == status && series.method == method && series.route == route
        });
        if let Some(series) = found {
            series.histogram.record(elapsed);
            return;
        }
        let histogram = metrics::histogram!(
            "flashgate_http_request_duration_seconds",
            "method" => method,
            "route" => route.clone().unwrap_or_else(|| "unmatched".to_owned()),
            "status" => status.to_string()
        );
        histogram.record(elapsed);
        if kept.len() < LATENCY_HANDLES_PER_WORKER_MAX {
            kept.push(LatencySeries {
                method,
                status,
                route,
                histogram,
            });
        }
    });
    Ok(response)
}

/// Moves the room settings of an older version's `waiting-rooms.json` into
/// the log, on a primary, for SKUs that have no room there yet; then renames
/// the file `waiting-rooms.json.migrated`. A standby keeps the file (it
/// gets its rooms from its primary's log) and warns.
async fn migrate_waiting_rooms(
    node: &Arc<Node>,
    rooms: &crate::waiting_room::WaitingRooms,
    config: &Config,
) {
    let saved = rooms.take_saved();
    if saved.is_empty() {
        return;
    }
    let path = config.data_dir.join(crate::waiting_room::SETTINGS_FILE);
    if !node.cluster().takes_writes() {
        tracing::warn!(path = %path.display(), "waiting-room settings of an older version are in the data dir: a standby takes its rooms from the primary's log; put them on the primary");
        return;
    }
    let mut failed = false;
    for (sku, settings) in saved {
        let Ok(id) = flashgate_actors::domain::SkuId::parse(&sku) else {
            tracing::warn!(%sku, "the older waiting-room settings name an invalid SKU id: skipped");
            continue;
        };
        if node.waiting_room(&id).is_some() {
            continue;
        }
        let command = flashgate_actors::domain::SetWaitingRoom {
            sku: id,
            room: Some(settings.into()),
        };
        if let Err(error) = node.set_waiting_room(command).await {
            tracing::error!(%sku, %error, "cannot move an older waiting room into the log; put it again");
            failed = true;
        }
    }
    if !failed {
        let migrated = path.with_extension("json.migrated");
        match std::fs::rename(&path, &migrated) {
            Ok(()) => {
                tracing::info!(path = %migrated.display(), "moved the waiting rooms of an older version into the log")
            }
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "waiting rooms moved into the log, but the old file was not renamed")
            }
        }
    }
}
