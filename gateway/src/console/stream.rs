//! The console's live stream (`GET /v1/console/stream`): Server-Sent Events
//! carrying the alert feed's events by id and the sampler's snapshots.
//!
//! What a reader gets, in order:
//! 1. On connecting with `Last-Event-ID: N` that the feed still holds: every
//!    alert event after N (`event: alert`, `id:` its number), nothing else
//!    of the past. Without the header, or when the ring let go of N (or N
//!    is from an earlier run of the node): one `event: alerts` with the
//!    active and recent alerts, `reason` (`start` or `missed`), and `id:`
//!    the last event id, so the reader resumes from there.
//! 2. Then, as they happen: each new alert event, each new snapshot (the
//!    latest only: a slow reader skips snapshots, never queues them), and a
//!    comment line every `KEEPALIVE` so proxies keep the connection.
//!
//! Bounded: at most `console_streams_max` streams at once (`StreamSlots`;
//! one more is refused with 503 `too_many_streams`); a stream's memory is
//! one snapshot and the alert events it has not sent yet, which the feed's
//! ring bounds; the stream produces a frame only when the connection takes
//! one. A stream ends when the node stops.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::watch;

use crate::alerts::{Alert, Alerts};

/// A comment line this often when nothing else was sent.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// How long a browser waits before reconnecting (the `retry:` field).
pub const RECONNECT_MS: u64 = 1_000;

/// The cap on concurrent streams, and whether the node is stopping.
pub struct StreamSlots {
    max: usize,
    open: AtomicUsize,
    stopping: watch::Sender<bool>,
}

/// One stream's place; given back when dropped (the connection closed).
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl StreamSlots {
    pub fn new(max: usize) -> StreamSlots {
        StreamSlots {
            max,
            open: AtomicUsize::new(0),
            stopping: watch::Sender::new(false),
        }
    }

    /// A slot, or `None` when `max` streams are open.
    pub fn take(self: &Arc<Self>) -> Option<StreamSlot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            })
            .ok()
            .map(|_| StreamSlot {
                slots: Arc::clone(self),
            })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Ends every stream (the node is stopping: a graceful stop would
    /// otherwise wait for the open streams until its timeout).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }
}

/// One Server-Sent Event: `event`, `id` when given, and `data` as one JSON
/// line (JSON escapes newlines, so one `data:` line is exact).
pub fn frame<T: Serialize>(event: &str, id: Option<u64>, data: &T) -> Bytes {
    let json = serde_json::to_string(data).expect("console events serialise");
    let mut text = String::with_capacity(json.len() + 48);
    text.push_str("event: ");
    text.push_str(event);
    text.push('\n');
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str("data: ");
    text.push_str(&json);
    text.push_str("\n\n");
    Bytes::from(text)
}

/// The `alerts` event: the whole list, after which the reader resumes from
/// `last_event_id`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertList {
    /// `start` (no `Last-Event-ID` was sent) or `missed` (the events after
    /// the one sent are no longer held: this list replaces what the reader
    /// had).
    pub reason: &'static str,
    pub active: Vec<Alert>,
    pub recent: Vec<Alert>,
    pub last_event_id: u64,
}

fn alert_list(alerts: &Alerts, reason: &'static str) -> (u64, Bytes) {
    // The id first: an event published between the two reads is then sent
    // again as an event, which the page applies idempotently (by alert id).
    let last_event_id = alerts.feed.last_event_id();
    let (active, recent) = alerts.feed.list();
    let body = AlertList {
        reason,
        active,
        recent,
        last_event_id,
    };
    (last_event_id, frame("alerts", Some(last_event_id), &body))
}

/// The `Last-Event-ID` header's value as an event id; anything else is
/// taken as no id (a fresh start), as the SSE specification lets a server
/// ignore an id it did not send.
pub fn parse_last_event_id(value: Option<&str>) -> Option<u64> {
    value.and_then(|value| value.trim().parse().ok())
}

struct State {
    alerts: Arc<Alerts>,
    /// The last alert event id sent.
    sent: u64,
    feed: watch::Receiver<u64>,
    snapshots: watch::Receiver<Option<Bytes>>,
    stopping: watch::Receiver<bool>,
    ready: VecDeque<Bytes>,
    _slot: StreamSlot,
}

impl State {
    /// Queues the alert events after `sent`, or the list when they are gone.
    fn catch_up(&mut self) {
        match self.alerts.feed.events_after(self.sent) {
            Ok(events) => {
                for event in events {
                    self.sent = event.event_id;
                    self.ready
                        .push_back(frame("alert", Some(event.event_id), &event));
                }
            }
            Err(_) => {
                let (last, list) = alert_list(&self.alerts, "missed");
                self.sent = last;
                self.ready.push_back(list);
            }
        }
    }
}

/// The body of one stream: the opening frames (see the module doc), then
/// events as they come, until the node stops.
pub fn events(
    alerts: Arc<Alerts>,
    snapshots: watch::Receiver<Option<Bytes>>,
    slots: &StreamSlots,
    slot: StreamSlot,
    last_event_id: Option<u64>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    let mut ready = VecDeque::new();
    ready.push_back(Bytes::from(format!(
        ": flashgate console stream\nretry: {RECONNECT_MS}\n\n"
    )));
    let feed = alerts.feed.subscribe();
    let mut state = State {
        sent: 0,
        feed,
        snapshots,
        stopping: slots.stopping.subscribe(),
        ready,
        alerts,
        _slot: slot,
    };
    match last_event_id {
        Some(id) => {
            state.sent = id;
            state.catch_up();
        }
        None => {
            let (last, list) = alert_list(&state.alerts, "start");
            state.sent = last;
            state.ready.push_back(list);
        }
    }
    state.feed.mark_unchanged();
    // The latest snapshot at once, if there is one.
    state.snapshots.mark_changed();
    futures_util::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(frame) = state.ready.pop_front() {
                return Some((Ok(frame), state));
            }
            if *state.stopping.borrow() {
                return None;
            }
            tokio::select! {
                changed = state.feed.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    state.catch_up();
                }
                changed = state.snapshots.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    if let Some(snapshot) = state.snapshots.borrow_and_update().clone() {
                        state.ready.push_back(snapshot);
                    }
                }
                _ = state.stopping.changed() => return None,
                _ = tokio::time::sleep(KEEPALIVE) => {
                    state.ready.push_back(Bytes::from_static(b": keep-alive\n\n"));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cap holds; a dropped slot is given back.
    #[test]
    fn slots_are_capped_and_given_back() {
        let slots = Arc::new(StreamSlots::new(2));
        let a = slots.take().unwrap();
        let _b = slots.take().unwrap();
        assert!(slots.take().is_none());
        assert_eq!(slots.open(), 2);
        drop(a);
        assert!(slots.take().is_some());
    }

    /// A reader that does not read holds nothing but the newest snapshot:
    /// a thousand snapshots published meanwhile come out as one, the
    /// newest; alert events published meanwhile come out each, in order.
    #[test]
    fn a_slow_reader_gets_the_newest_snapshot_only() {
        use futures_util::StreamExt;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let alerts = Arc::new(Alerts::new(
            crate::alerts::FeedLimits {
                recent_max: 8,
                events_max: 8,
            },
            None,
        ));
        let (snapshots, receiver) = watch::channel(None);
        let slots = Arc::new(StreamSlots::new(1));
        let slot = slots.take().unwrap();
        let mut stream = Box::pin(events(Arc::clone(&alerts), receiver, &slots, slot, None));
        runtime.block_on(async {
            macro_rules! next {
                () => {
                    String::from_utf8(stream.next().await.unwrap().unwrap().to_vec()).unwrap()
                };
            }
            assert!(next!().starts_with(": flashgate console stream"));
            assert!(next!().starts_with("event: alerts\nid: 0\n"));
            for number in 0..1000 {
                snapshots.send_replace(Some(frame("snapshot", None, &number)));
            }
            let alert = |id: &str| crate::alerts::Alert {
                id: id.into(),
                kind: crate::alerts::AlertKind::SoldOut,
                severity: crate::alerts::Severity::Warning,
                sku: Some("A".into()),
                message: "sold out".into(),
                started_at: flashgate_actors::domain::Timestamp(1),
                resolved_at: None,
            };
            alerts.feed.publish(vec![
                crate::alerts::AlertChange::Raised(alert("a")),
                crate::alerts::AlertChange::Raised(alert("b")),
            ]);
            let mut frames = Vec::new();
            for _ in 0..3 {
                frames.push(next!());
            }
            frames.sort();
            assert!(frames[0].starts_with("event: alert\nid: 1\n"), "{frames:?}");
            assert!(frames[1].starts_with("event: alert\nid: 2\n"), "{frames:?}");
            assert_eq!(frames[2], "event: snapshot\ndata: 999\n\n");
            // Nothing else is waiting: the next frame is a later one.
            snapshots.send_replace(Some(frame("snapshot", None, &1000)));
            assert_eq!(next!(), "event: snapshot\ndata: 1000\n\n");
        });
        drop(stream);
        assert_eq!(slots.open(), 0, "the slot is given back with the stream");
    }

    #[test]
    fn frames_are_one_event_each() {
        let frame = frame("alert", Some(7), &serde_json::json!({"a": "x\ny"}));
        assert_eq!(
            &frame[..],
            b"event: alert\nid: 7\ndata: {\"a\":\"x\\ny\"}\n\n"
        );
        assert_eq!(parse_last_event_id(Some(" 12 ")), Some(12));
        assert_eq!(parse_last_event_id(Some("abc")), None);
        assert_eq!(parse_last_event_id(None), None);
    }
}
