//! Webhooks: every alert event POSTed to each configured receiver, signed as
//! the Standard Webhooks specification says (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! id.timestamp.body>`, the key being the base64 after `whsec_`).
//!
//! The pure parts: `sign`, `Backoff` (exponential with jitter, the jitter
//! passed in), `verdict` (what a receiver's answer means). The shell:
//! `Webhooks`, a thread of its own with its own runtime and HTTP client,
//! fed through a bounded queue the monitor never waits on (a full queue
//! drops the event and counts it). Each delivery is retried until
//! `retry_for` after its first attempt; a receiver answering 410 Gone is
//! disabled until the node restarts (the `webhook_disabled` alert).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use tokio::sync::mpsc;

use super::feed::FeedEvent;

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The key lengths the specification allows.
pub const SECRET_KEY_BYTES_MIN: usize = 24;
pub const SECRET_KEY_BYTES_MAX: usize = 64;

/// The file in the data dir a generated secret is kept in.
pub const SECRET_FILE: &str = "webhook-secret";

/// Where the signing secret came from, for the start-up line.
pub enum SecretSource {
    Configured,
    File(std::path::PathBuf),
    Generated(std::path::PathBuf),
}

/// The signing key: from `configured`, else from `file`, else from the data
/// dir's `webhook-secret` (generated there, mode 0600, when absent).
pub fn load_key(
    configured: Option<&str>,
    file: Option<&std::path::Path>,
    data_dir: &std::path::Path,
) -> Result<(Vec<u8>, SecretSource), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(secret) = configured {
        return Ok((secret_key(secret)?, SecretSource::Configured));
    }
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).map_err(|error| {
            format!(
                "cannot read the webhook secret file {}: {error}",
                path.display()
            )
        })
    };
    if let Some(path) = file {
        let key =
            secret_key(&read(path)?).map_err(|error| format!("{}: {error}", path.display()))?;
        return Ok((key, SecretSource::File(path.to_owned())));
    }
    let path = data_dir.join(SECRET_FILE);
    if path.exists() {
        let key =
            secret_key(&read(&path)?).map_err(|error| format!("{}: {error}", path.display()))?;
        return Ok((key, SecretSource::File(path)));
    }
    let secret =
        generate_secret().map_err(|error| format!("cannot generate a webhook secret: {error}"))?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| {
            file.write_all(secret.as_bytes())?;
            file.sync_all()
        });
    written.map_err(|error| {
        format!(
            "cannot write the webhook secret file {}: {error}; check the data dir's permissions or give webhook_secret_file",
            path.display()
        )
    })?;
    Ok((secret_key(&secret)?, SecretSource::Generated(path)))
}

/// The HMAC key of a `whsec_<base64>` secret, or what is wrong with it.
pub fn secret_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.trim().strip_prefix(SECRET_PREFIX).ok_or_else(|| {
        format!("the webhook secret must look like {SECRET_PREFIX}<base64 of {SECRET_KEY_BYTES_MIN} to {SECRET_KEY_BYTES_MAX} random bytes>, e.g. `echo {SECRET_PREFIX}$(head -c 32 /dev/urandom | base64)`")
    })?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|error| {
            format!("the webhook secret after {SECRET_PREFIX} is not base64: {error}")
        })?;
    if !(SECRET_KEY_BYTES_MIN..=SECRET_KEY_BYTES_MAX).contains(&key.len()) {
        return Err(format!(
            "the webhook secret's key is {} bytes; it must be {SECRET_KEY_BYTES_MIN} to {SECRET_KEY_BYTES_MAX}",
            key.len()
        ));
    }
    Ok(key)
}

/// A new random secret in the specification's form.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key)?;
    Ok(format!(
        "{SECRET_PREFIX}{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// The `webhook-signature` value of one attempt: `v1,` and the base64 of
/// HMAC-SHA256(key, "<id>.<timestamp>.<body>").
pub fn sign(key: &[u8], id: &str, timestamp_secs: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp_secs.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
    )
}

/// A receiver as logs and alerts name it: scheme, host and port only (a
/// webhook URL's path often holds a secret of its own).
pub fn receiver_name(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(url) => format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or("?"),
            url.port()
                .map(|port| format!(":{port}"))
                .unwrap_or_default()
        ),
        Err(_) => "(invalid url)".into(),
    }
}

/// Checks a webhook URL: http or https, with a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| format!("webhook url {:?} is not a URL: {error}", receiver_name(url)))?;
    if parsed.scheme() != "http" && parsed.scheme() != "https" {
        return Err(format!(
            "webhook url {} must be http:// or https://",
            receiver_name(url)
        ));
    }
    if parsed.host_str().is_none() {
        return Err(format!("webhook url {} has no host", receiver_name(url)));
    }
    Ok(())
}

/// When the next attempt goes: the delay doubles from `initial` per
/// attempt, up to `max`, and is spread by jitter so that receivers that
/// failed together are not retried together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Backoff {
    /// The delay after failed attempt number `attempt` (1 for the first):
    /// half of the capped exponential delay, plus `jitter` (in [0, 1)) of
    /// the other half ("equal jitter").
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(30));
        let capped = doubled.min(self.max);
        let half = capped / 2;
        half + half.mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// What a receiver's answer means for a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Delivered,
    /// 410 Gone: the receiver asks to get nothing more.
    Gone,
    /// Anything else (another status, no answer): try again later.
    Retry,
}

pub fn verdict(status: Option<u16>) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        _ => Verdict::Retry,
    }
}

/// How webhooks are delivered (`Config`'s `webhook_*` settings).
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    /// The HMAC key (decoded from the `whsec_` secret).
    pub key: Vec<u8>,
    /// Events waiting to be delivered, all receivers together; past it new
    /// ones are dropped and counted.
    pub queue_max: usize,
    /// How long after its first attempt a delivery is retried.
    pub retry_for: Duration,
    /// How long one attempt may take.
    pub attempt_timeout: Duration,
    pub backoff: Backoff,
    /// Attempts in flight at once, all receivers together.
    pub in_flight_max: usize,
    /// The node's address, carried in every payload.
    pub node: String,
}

/// One event for one receiver, with its attempts so far.
struct Delivery {
    receiver: usize,
    id: Arc<str>,
    body: Arc<[u8]>,
    first_attempt: Option<Instant>,
    attempts: u32,
    due: Instant,
}

/// What the monitor and `/metrics` see of the deliveries.
#[derive(Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub gave_up: AtomicU64,
    pub dropped: AtomicU64,
    pub queued: AtomicU64,
    /// Receivers disabled after a 410, by `receiver_name`.
    pub disabled: Mutex<Vec<String>>,
}

impl WebhookStats {
    pub fn disabled(&self) -> Vec<String> {
        self.disabled
            .lock()
            .map(|names| names.clone())
            .unwrap_or_default()
    }

    /// Sets the `flashgate_webhook_*` metrics from the counts.
    pub fn export(&self) {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        for (outcome, counter) in [
            ("delivered", &self.delivered),
            ("failed_attempt", &self.failed_attempts),
            ("gave_up", &self.gave_up),
            ("dropped", &self.dropped),
        ] {
            metrics::counter!("flashgate_webhook_deliveries_total", "outcome" => outcome)
                .absolute(get(counter));
        }
        metrics::gauge!("flashgate_webhook_queue_depth").set(get(&self.queued) as f64);
        metrics::gauge!("flashgate_webhooks_disabled").set(self.disabled().len() as f64);
    }
}

/// The delivery thread and the queue into it.
pub struct Webhooks {
    sender: mpsc::Sender<FeedEvent>,
    stats: Arc<WebhookStats>,
    receivers: usize,
    /// Dropped (or sent) to stop the delivery loop at once, whatever it
    /// waits for (a full queue does not read its channel).
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhooks {
    /// Starts the delivery thread for `config.urls` (none: a queue that
    /// delivers nothing is never made; see `enqueue`).
    pub fn start(config: WebhookConfig) -> std::io::Result<Webhooks> {
        let (sender, receiver) = mpsc::channel(config.queue_max.max(1));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let stats = Arc::new(WebhookStats::default());
        let receivers = config.urls.len();
        let thread_stats = Arc::clone(&stats);
        let thread = if receivers == 0 {
            None
        } else {
            Some(
                std::thread::Builder::new()
                    .name("flashgate-webhooks".into())
                    .spawn(move || {
                        let runtime = match tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            Ok(runtime) => runtime,
                            Err(error) => {
                                tracing::error!(%error, "cannot start the webhook runtime; no webhooks are delivered");
                                return;
                            }
                        };
                        runtime.block_on(deliver(config, receiver, stopped, thread_stats));
                    })?,
            )
        };
        Ok(Webhooks {
            sender,
            stats,
            receivers,
            stop: Some(stop),
            thread,
        })
    }

    pub fn stats(&self) -> &Arc<WebhookStats> {
        &self.stats
    }

    /// Queues an event for every receiver without waiting: a full queue
    /// drops it (counted in `flashgate_webhook_deliveries_total{outcome="dropped"}`).
    pub fn enqueue(&self, event: FeedEvent) {
        if self.receivers == 0 {
            return;
        }
        match self.sender.try_send(event) {
            Ok(()) => {
                self.stats.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(mpsc::error::TrySendError::Full(event)) => {
                self.stats
                    .dropped
                    .fetch_add(self.receivers as u64, Ordering::Relaxed);
                tracing::warn!(
                    alert_id = %event.alert.id,
                    "the webhook queue is full; this alert event is not delivered (webhook_queue_max)"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Stops the delivery thread at once: what is still queued or waiting
    /// for a retry is not delivered, attempts in flight are abandoned.
    pub fn stop(mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The payload of one event, in the specification's envelope.
pub fn payload(event: &FeedEvent, node: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "type": event.kind,
        "timestamp": event.alert.resolved_at.unwrap_or(event.alert.started_at).to_string(),
        "data": {
            "event_id": event.event_id,
            "node": node,
            "alert": event.alert,
        },
    });
    serde_json::to_vec(&body).expect("an alert serialises")
}

fn jitter() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::getrandom(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

/// The delivery loop: takes events while there is room, runs due attempts
/// (at most `in_flight_max` at once), schedules retries, gives up past
/// `retry_for`, disables a receiver on 410. Ends when told to stop or the
/// queue closes.
async fn deliver(
    config: WebhookConfig,
    mut events: mpsc::Receiver<FeedEvent>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    stats: Arc<WebhookStats>,
) {
    // https receivers: reqwest's rustls takes the process's default crypto
    // provider (ring, as the rest of flashgate's TLS); without one it would
    // panic. Installing fails only when one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .timeout(config.attempt_timeout)
        .user_agent(concat!("flashgate/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook client; no webhooks are delivered");
            return;
        }
    };
    let names: Vec<String> = config.urls.iter().map(|url| receiver_name(url)).collect();
    let mut disabled = vec![false; config.urls.len()];
    let mut waiting: VecDeque<Delivery> = VecDeque::new();
    let mut attempts = tokio::task::JoinSet::new();
    let mut open = true;
    loop {
        // Start every due attempt there is room for.
        let now = Instant::now();
        let mut index = 0;
        while index < waiting.len() && attempts.len() < config.in_flight_max {
            if waiting[index].due > now {
                index += 1;
                continue;
            }
            let Some(mut delivery) = waiting.remove(index) else {
                break;
            };
            if disabled[delivery.receiver] {
                continue;
            }
            delivery.first_attempt.get_or_insert(now);
            delivery.attempts += 1;
            let request = attempt_request(&client, &config, &delivery);
            attempts.spawn(async move {
                let answer = request
                    .send()
                    .await
                    .map(|response| response.status().as_u16())
                    .map_err(|error| error_chain(&error));
                (delivery, answer)
            });
        }
        if !open && waiting.is_empty() && attempts.is_empty() {
            return;
        }
        let next_due = waiting.iter().map(|delivery| delivery.due).min();
        let room = waiting.len() + attempts.len() < config.queue_max.max(1);
        tokio::select! {
            _ = &mut stop => {
                attempts.abort_all();
                return;
            }
            event = events.recv(), if open && room => match event {
                Some(event) => {
                    stats.queued.fetch_sub(1, Ordering::Relaxed);
                    let body: Arc<[u8]> = payload(&event, &config.node).into();
                    let id: Arc<str> = format!("msg_{}_{}", event.alert.id.split('-').next().unwrap_or("0"), event.event_id).into();
                    for receiver in 0..config.urls.len() {
                        waiting.push_back(Delivery {
                            receiver,
                            id: Arc::clone(&id),
                            body: Arc::clone(&body),
                            first_attempt: None,
                            attempts: 0,
                            due: Instant::now(),
                        });
                    }
                }
                None => {
                    // Stopping: what waits is not delivered.
                    open = false;
                    waiting.clear();
                    attempts.abort_all();
                }
            },
            Some(finished) = attempts.join_next(), if !attempts.is_empty() => {
                let Ok((mut delivery, answer)) = finished else { continue };
                let name = &names[delivery.receiver];
                let (status, failure) = match &answer {
                    Ok(status) => (Some(*status), format!("answered {status}")),
                    Err(error) => (None, error.clone()),
                };
                match verdict(status) {
                    Verdict::Delivered => {
                        stats.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    // Attempts in flight together may all hear 410: the
                    // receiver is disabled once.
                    Verdict::Gone if disabled[delivery.receiver] => {}
                    Verdict::Gone => {
                        disabled[delivery.receiver] = true;
                        waiting.retain(|other| other.receiver != delivery.receiver);
                        tracing::error!(receiver = %name, "a webhook receiver answered 410 Gone: it is disabled until this node restarts");
                        if let Ok(mut names) = stats.disabled.lock() {
                            names.push(name.clone());
                        }
                    }
                    Verdict::Retry => {
                        stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                        let now = Instant::now();
                        let started = delivery.first_attempt.unwrap_or(now);
                        let delay = config.backoff.delay(delivery.attempts, jitter());
                        if now + delay > started + config.retry_for {
                            stats.gave_up.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(receiver = %name, webhook_id = %delivery.id, attempts = delivery.attempts, "gave up delivering a webhook after retrying for webhook_retry_for_secs; the last attempt {failure}");
                        } else {
                            tracing::info!(receiver = %name, webhook_id = %delivery.id, attempt = delivery.attempts, retry_in_ms = delay.as_millis() as u64, "a webhook delivery failed ({failure}); retrying");
                            delivery.due = now + delay;
                            waiting.push_back(delivery);
                        }
                    }
                }
            },
            _ = sleep_until(next_due), if next_due.is_some() => {},
        }
    }
}

/// An error with its causes, for a log line ("error sending request:
/// connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
    }
}

/// One attempt's request, signed with the attempt's timestamp.
fn attempt_request(
    client: &reqwest::Client,
    config: &WebhookConfig,
    delivery: &Delivery,
) -> reqwest::RequestBuilder {
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let signature = sign(&config.key, &delivery.id, timestamp, &delivery.body);
    client
        .post(&config.urls[delivery.receiver])
        .header("content-type", "application/json")
        .header("webhook-id", &*delivery.id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference
    /// libraries: this secret, id, timestamp and body sign to this value.
    #[test]
    fn signs_like_the_specification() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_must_be_in_the_specification_s_form() {
        assert!(secret_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap_err()
            .contains("whsec_"));
        assert!(secret_key("whsec_!!!").unwrap_err().contains("base64"));
        assert!(secret_key("whsec_c2hvcnQ=")
            .unwrap_err()
            .contains("24 to 64"));
        let generated = generate_secret().unwrap();
        assert_eq!(secret_key(&generated).unwrap().len(), 32);
    }

    /// The delay doubles per attempt up to the cap; jitter spreads it over
    /// its upper half.
    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter() {
        let backoff = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        };
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(250));
        assert_eq!(backoff.delay(1, 1.0), Duration::from_millis(500));
        assert_eq!(backoff.delay(2, 0.0), Duration::from_millis(500));
        assert_eq!(backoff.delay(3, 1.0), Duration::from_millis(2000));
        assert_eq!(backoff.delay(20, 1.0), Duration::from_secs(30));
        assert_eq!(backoff.delay(u32::MAX, 0.0), Duration::from_secs(15));
    }

    #[test]
    fn answers_and_what_they_mean() {
        assert_eq!(verdict(Some(200)), Verdict::Delivered);
        assert_eq!(verdict(Some(204)), Verdict::Delivered);
        assert_eq!(verdict(Some(410)), Verdict::Gone);
        assert_eq!(verdict(Some(500)), Verdict::Retry);
        assert_eq!(verdict(Some(429)), Verdict::Retry);
        assert_eq!(verdict(None), Verdict::Retry);
    }

    /// A receiver that never takes anything costs bounded memory: at most
    /// `queue_max` events wait in the queue and `queue_max` deliveries in
    /// the loop; every event past them is dropped and counted, enqueueing
    /// never waits, and a stop does not wait for retries.
    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        use crate::alerts::engine::{Alert, AlertKind, Severity};
        use flashgate_actors::domain::Timestamp;
        // Nothing listens on a port of a closed listener: every attempt fails.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let webhooks = Webhooks::start(WebhookConfig {
            urls: vec![format!("http://127.0.0.1:{port}/hook")],
            key: vec![7; 32],
            queue_max: 2,
            retry_for: Duration::from_secs(3600),
            attempt_timeout: Duration::from_secs(1),
            backoff: Backoff {
                initial: Duration::from_secs(600),
                max: Duration::from_secs(600),
            },
            in_flight_max: 4,
            node: "http://127.0.0.1:1".into(),
        })
        .unwrap();
        let events = 100;
        for event_id in 1..=events {
            webhooks.enqueue(FeedEvent {
                event_id,
                kind: "alert.raised",
                alert: Alert {
                    id: format!("r-{event_id}"),
                    kind: AlertKind::SoldOut,
                    severity: Severity::Warning,
                    sku: Some("A".into()),
                    message: "sold out".into(),
                    started_at: Timestamp(1),
                    resolved_at: None,
                },
            });
        }
        let dropped = webhooks.stats().dropped.load(Ordering::Relaxed);
        assert!(dropped >= events - 4, "dropped {dropped} of {events}");
        assert!(dropped <= events, "dropped {dropped} of {events}");
        // A full queue's loop reads nothing from its channel; stop still
        // ends it at once, not after its retries' backoff.
        let (done, stopped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            webhooks.stop();
            let _ = done.send(());
        });
        stopped
            .recv_timeout(Duration::from_secs(30))
            .expect("stop returns while deliveries wait for a retry");
    }

    /// Logs and alerts never show a URL's path (it may hold a token).
    #[test]
    fn receivers_are_named_without_their_path() {
        assert_eq!(
            receiver_name("https://hooks.example.com/services/T00/B00/XXXX"),
            "https://hooks.example.com"
        );
        assert_eq!(
            receiver_name("http://127.0.0.1:9000/hook"),
            "http://127.0.0.1:9000"
        );
        assert!(check_url("ftp://example.com/").is_err());
        assert!(check_url("not a url").is_err());
        assert!(check_url("http://127.0.0.1:9000/hook").is_ok());
    }
}
