//! Alerts end to end: a real node sells a SKU out, its alert rules raise
//! `low_stock` and `sold_out`, `GET /v1/alerts` lists them, and every alert
//! event reaches a real HTTP receiver signed as the Standard Webhooks
//! specification says, retried after a failure, never delivered twice once
//! it was accepted; a receiver answering 410 is disabled with an alert.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{poll_until, Launch, OPERATOR_TOKEN};
use serde_json::{json, Value};

/// The signing secret the node is given (24 bytes of key, base64).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Longest wait for an alert or a delivery.
const ALERT_TIMEOUT: Duration = Duration::from_secs(20);
/// Longest a receiver waits for one request's bytes.
const RECEIVER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Most requests one receiver takes before it stops answering (bounds the
/// test if the node sent without end).
const RECEIVER_REQUESTS_MAX: usize = 500;

/// One request a receiver got, and the status it answered.
#[derive(Clone, Debug)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a delivery's body is JSON")
    }
}

/// A webhook receiver on a free port: `answer` decides each request's
/// status from its `webhook-id` and how often that id came before.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

impl Receiver {
    fn start(answer: fn(seen_before: usize) -> u16) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
        let addr = listener.local_addr().expect("receiver address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, stopping) = (Arc::clone(&received), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming().take(RECEIVER_REQUESTS_MAX) {
                if stopping.load(Ordering::Acquire) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let Some((headers, body)) = read_request(&stream) else {
                    continue;
                };
                let id = headers.get("webhook-id").cloned().unwrap_or_default();
                let mut log = log.lock().unwrap();
                let seen_before = log
                    .iter()
                    .filter(|r: &&Received| r.header("webhook-id") == id)
                    .count();
                let status = answer(seen_before);
                log.push(Received {
                    headers,
                    body,
                    answered: status,
                });
                drop(log);
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Receiver {
            url: format!("http://{addr}/hook"),
            received,
            stop,
            thread: Some(thread),
            addr,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one HTTP/1.1 request: header names lower-cased, the body by its
/// `content-length`.
fn read_request(stream: &TcpStream) -> Option<(HashMap<String, String>, Vec<u8>)> {
    stream.set_read_timeout(Some(RECEIVER_READ_TIMEOUT)).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    if !line.starts_with("POST ") {
        return None;
    }
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((headers, body))
}

/// Base64 (standard alphabet, padded), written here so the check does not
/// share the node's encoder.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * index) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text.bytes().filter(|c| *c != b'=').map(value).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (index, digit) in chunk.iter().enumerate() {
            n |= u32::from(*digit) << (18 - 6 * index);
        }
        for index in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * index)) as u8);
        }
    }
    out
}

/// The Standard Webhooks check, as a receiver makes it: the key is the
/// base64 after `whsec_`; the signed content is `id.timestamp.body`; one of
/// the space-separated `v1,<base64>` signatures must match; the timestamp
/// must be within five minutes of now.
fn verify(secret: &str, delivery: &Received) -> Result<(), String> {
    let key = unbase64(secret.strip_prefix("whsec_").ok_or("no whsec_ prefix")?);
    let id = delivery.header("webhook-id");
    let timestamp = delivery.header("webhook-timestamp");
    if id.is_empty() || timestamp.is_empty() {
        return Err("webhook-id or webhook-timestamp missing".into());
    }
    let sent: u64 = timestamp.parse().map_err(|_| "timestamp is not a number")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if sent.abs_diff(now) > 300 {
        return Err(format!(
            "timestamp {sent} is more than 5 minutes from {now}"
        ));
    }
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(&delivery.body);
    let tag = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        &content,
    );
    let expected = format!("v1,{}", base64(tag.as_ref()));
    let signatures = delivery.header("webhook-signature");
    if signatures.split(' ').any(|given| given == expected) {
        Ok(())
    } else {
        Err(format!("no signature in {signatures:?} matches {expected}"))
    }
}

/// The alert events delivered with 2xx: (type, kind, SKU).
fn accepted(receiver: &Receiver) -> Vec<(String, String, String)> {
    receiver
        .received()
        .iter()
        .filter(|delivery| delivery.answered < 300)
        .map(|delivery| {
            let body = delivery.json();
            let alert = &body["data"]["alert"];
            (
                body["type"].as_str().unwrap_or_default().to_owned(),
                alert["kind"].as_str().unwrap_or_default().to_owned(),
                alert["sku"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn has(events: &[(String, String, String)], kind: &str, what: &str, sku: &str) -> bool {
    events
        .iter()
        .any(|(t, k, s)| t == what && k == kind && s == sku)
}

/// A real node sold out: `low_stock` and `sold_out` are raised, listed and
/// delivered; a restock resolves both and raises `restocked`. Every
/// delivery carries a valid Standard Webhooks signature; each message's
/// first attempt is answered 500 and retried until accepted, then never
/// sent again; a receiver answering 410 is disabled, with a
/// `webhook_disabled` alert. This is what an operator relies on to hear of
/// a sale's state without watching a screen.
#[test]
fn alerts_are_listed_and_delivered_signed_with_retries() {
    // Fails each message's first attempt, accepts the second.
    let flaky = Receiver::start(|seen_before| if seen_before == 0 { 500 } else { 200 });
    let gone = Receiver::start(|_| 410);
    let server = Launch::new()
        .arg("--webhook-url")
        .arg(flaky.url.clone())
        .arg("--webhook-url")
        .arg(gone.url.clone())
        .env("FLASHGATE_WEBHOOK_SECRET", SECRET)
        .env("FLASHGATE_ALERT_EVALUATE_INTERVAL_MS", "100")
        .env("FLASHGATE_WEBHOOK_BACKOFF_INITIAL_MS", "100")
        .env("FLASHGATE_WEBHOOK_BACKOFF_MAX_MS", "400")
        .env("FLASHGATE_ALERT_ADMIN_AUTH_FAILURES_MIN", "3")
        .start();
    let api = server.client();
    api.put_sku("drop-1", json!({ "stock": 6, "low_stock_threshold": 2 }));
    for buyer in 0..6 {
        let (status, body) = api.place_order("drop-1", 1, &format!("buyer-{buyer}"));
        assert_eq!(status, 201, "{body}");
    }
    let (status, refused) = api.place_order("drop-1", 1, "late-buyer");
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("sold_out")),
        "{refused}"
    );

    // Listed, for an operator.
    let operator = api.with_credential(Some(OPERATOR_TOKEN));
    let listed = poll_until("low_stock and sold_out to be listed", ALERT_TIMEOUT, || {
        let (status, body) = operator.get("/v1/alerts");
        assert_eq!(status, 200, "{body}");
        let kinds: Vec<&str> = body["active"]
            .as_array()?
            .iter()
            .filter(|alert| alert["sku"] == "drop-1")
            .filter_map(|alert| alert["kind"].as_str())
            .collect();
        (kinds.contains(&"low_stock") && kinds.contains(&"sold_out")).then_some(body)
    });
    let sold_out = listed["active"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["kind"] == "sold_out")
        .unwrap();
    assert_eq!(sold_out["severity"], "warning", "{sold_out}");
    assert!(sold_out["resolved_at"].is_null(), "{sold_out}");
    assert!(
        sold_out["message"].as_str().unwrap().contains("0 of 6"),
        "{sold_out}"
    );
    assert!(listed["last_event_id"].as_u64().unwrap() >= 2, "{listed}");

    // Delivered, after a failed first attempt.
    poll_until(
        "low_stock and sold_out to be delivered",
        ALERT_TIMEOUT,
        || {
            let events = accepted(&flaky);
            (has(&events, "low_stock", "alert.raised", "drop-1")
                && has(&events, "sold_out", "alert.raised", "drop-1"))
            .then_some(())
        },
    );

    // The 410 receiver is disabled, with an alert, and gets nothing more.
    poll_until("webhook_disabled to be delivered", ALERT_TIMEOUT, || {
        has(&accepted(&flaky), "webhook_disabled", "alert.raised", "").then_some(())
    });
    let (_, listed) = operator.get("/v1/alerts");
    let disabled = listed["active"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["kind"] == "webhook_disabled")
        .unwrap_or_else(|| panic!("no webhook_disabled alert in {listed}"));
    let message = disabled["message"].as_str().unwrap();
    assert!(message.contains("410"), "{message}");
    assert!(
        !message.contains("/hook"),
        "a URL's path is never shown: {message}"
    );
    let gone_before = gone.received();
    assert!(!gone_before.is_empty() && gone_before.iter().all(|r| r.answered == 410));

    // A restock resolves both and is an event of its own.
    let (status, body) = api.admin_post("/v1/skus/drop-1/restock", &json!({ "quantity": 4 }));
    assert_eq!(status, 200, "{body}");
    poll_until(
        "the restock's alerts to be delivered",
        ALERT_TIMEOUT,
        || {
            let events = accepted(&flaky);
            (has(&events, "low_stock", "alert.resolved", "drop-1")
                && has(&events, "sold_out", "alert.resolved", "drop-1")
                && has(&events, "restocked", "alert.raised", "drop-1")
                && has(&events, "restocked", "alert.resolved", "drop-1"))
            .then_some(())
        },
    );

    // Someone guessing: refused admin credentials raise admin_auth_failures
    // (a call without one is refused too, and not counted).
    let guesser = api.with_credential(Some("not-the-admin-token-0123"));
    for _ in 0..3 {
        let answer = guesser.send(guesser.request("GET", "/v1/alerts"), None);
        assert_eq!(answer.status, 401, "{}", answer.text);
    }
    let anonymous = api.with_credential(None);
    let answer = anonymous.send(anonymous.request("GET", "/v1/alerts"), None);
    assert_eq!(answer.status, 401, "{}", answer.text);
    let buyer = api.with_credential(Some(&common::buyer_token("alice")));
    let answer = buyer.send(buyer.request("GET", "/v1/alerts"), None);
    assert_eq!(answer.status, 403, "{}", answer.text);
    poll_until("admin_auth_failures to be delivered", ALERT_TIMEOUT, || {
        has(&accepted(&flaky), "admin_auth_failures", "alert.raised", "").then_some(())
    });
    assert_eq!(
        gone.received().len(),
        gone_before.len(),
        "a receiver that answered 410 got more deliveries"
    );

    // Every delivery is signed; each message was tried until accepted once.
    let deliveries = flaky.received();
    let mut attempts: HashMap<String, Vec<u16>> = HashMap::new();
    let mut ids_per_event: HashMap<(String, String), Vec<String>> = HashMap::new();
    for delivery in &deliveries {
        verify(SECRET, delivery).unwrap_or_else(|error| {
            panic!("delivery {:?}: {error}", delivery.header("webhook-id"))
        });
        assert_eq!(delivery.header("content-type"), "application/json");
        let id = delivery.header("webhook-id").to_owned();
        attempts
            .entry(id.clone())
            .or_default()
            .push(delivery.answered);
        let body = delivery.json();
        let event = (
            body["data"]["alert"]["id"].as_str().unwrap().to_owned(),
            body["type"].as_str().unwrap().to_owned(),
        );
        let ids = ids_per_event.entry(event).or_default();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    for (id, statuses) in &attempts {
        assert_eq!(
            statuses,
            &[500, 200],
            "message {id}: one failed attempt, one retry accepted, nothing after"
        );
    }
    for (event, ids) in &ids_per_event {
        assert_eq!(ids.len(), 1, "alert event {event:?} was sent as {ids:?}");
    }
    let metrics = api.metrics_page();
    for line in [
        "flashgate_alerts_raised_total{kind=\"sold_out\"} 1",
        "flashgate_alerts_raised_total{kind=\"low_stock\"} 1",
        "flashgate_webhooks_disabled 1",
        // Three wrong tokens and a buyer's; the call without one is not a guess.
        "flashgate_admin_auth_refused_total 4",
        "flashgate_sku_available_units{sku=\"drop-1\"} 4",
    ] {
        assert!(metrics.contains(line), "{line} not in /metrics:\n{metrics}");
    }
}

/// The kinds active on `server` now, and those resolved recently.
fn alert_kinds(server: &common::Server) -> (Vec<String>, Vec<String>) {
    let (status, body) = server.client().get("/v1/alerts");
    assert_eq!(status, 200, "{body}");
    let kinds = |list: &Value| -> Vec<String> {
        list.as_array()
            .map(|alerts| {
                alerts
                    .iter()
                    .filter_map(|alert| alert["kind"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    (kinds(&body["active"]), kinds(&body["recent"]))
}

/// The cluster alerts follow a real pair: a primary without its standby
/// raises `standby_lost` and resolves it when the standby connects; after
/// the primary dies and the standby is promoted, the new primary reports
/// `promoted`, `replication_degraded` (it answers alone) and `standby_lost`.
/// An operator learns of a failover and of running without a copy from the
/// node itself.
#[test]
fn cluster_alerts_follow_a_failover() {
    let mut primary = Launch::new()
        .replicated("127.0.0.1:0")
        .env("FLASHGATE_ALERT_EVALUATE_INTERVAL_MS", "100")
        .env("FLASHGATE_ALERT_STANDBY_LOST_AFTER_MS", "300")
        .env("FLASHGATE_STANDBY_LOSS", "degrade")
        .start();
    poll_until(
        "standby_lost on a primary with no standby",
        ALERT_TIMEOUT,
        || {
            alert_kinds(&primary)
                .0
                .contains(&"standby_lost".to_owned())
                .then_some(())
        },
    );
    let standby = Launch::new()
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .env("FLASHGATE_ALERT_EVALUATE_INTERVAL_MS", "100")
        .env("FLASHGATE_ALERT_STANDBY_LOST_AFTER_MS", "300")
        .env("FLASHGATE_STANDBY_LOSS", "degrade")
        .start();
    poll_until(
        "standby_lost resolved once the standby connects",
        ALERT_TIMEOUT,
        || {
            let (active, recent) = alert_kinds(&primary);
            (!active.contains(&"standby_lost".to_owned())
                && recent.contains(&"standby_lost".to_owned()))
            .then_some(())
        },
    );
    let (active, _) = alert_kinds(&standby);
    assert!(
        active.is_empty(),
        "a following standby has no alerts: {active:?}"
    );

    primary.kill();
    standby.promote();
    poll_until("the promoted node's alerts", ALERT_TIMEOUT, || {
        let (active, recent) = alert_kinds(&standby);
        (recent.contains(&"promoted".to_owned())
            && active.contains(&"replication_degraded".to_owned())
            && active.contains(&"standby_lost".to_owned()))
        .then_some(())
    });
}
