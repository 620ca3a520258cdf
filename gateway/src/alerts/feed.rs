//! `AlertFeed`: what the node shows of its alerts. The active ones, the
//! recently resolved ones (bounded), and every change as a numbered event in
//! a bounded ring, so a reader that was away (a Server-Sent-Events stream
//! reconnecting with `Last-Event-ID`) gets what it missed, or learns that
//! the ring no longer holds it and must reload the list.

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::watch;

use super::engine::{Alert, AlertChange, AlertKind};

/// One change of one alert, numbered in the feed's sequence (1, 2, 3, …
/// within one run of the node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeedEvent {
    pub event_id: u64,
    /// `alert.raised` or `alert.resolved`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub alert: Alert,
}

/// Why `events_after` cannot answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missed {
    /// The oldest event the ring still holds.
    pub oldest: u64,
}

/// The feed's limits (`Config::alert_recent_max`, `alert_feed_events_max`).
#[derive(Clone, Copy, Debug)]
pub struct FeedLimits {
    pub recent_max: usize,
    pub events_max: usize,
}

struct FeedState {
    active: Vec<Alert>,
    recent: VecDeque<Alert>,
    events: VecDeque<FeedEvent>,
    next_event_id: u64,
}

pub struct AlertFeed {
    limits: FeedLimits,
    state: Mutex<FeedState>,
    /// The last event id published: readers wait on it for news.
    last_event: watch::Sender<u64>,
}

impl AlertFeed {
    pub fn new(limits: FeedLimits) -> AlertFeed {
        assert!(limits.recent_max > 0 && limits.events_max > 0);
        AlertFeed {
            limits,
            state: Mutex::new(FeedState {
                active: Vec::new(),
                recent: VecDeque::new(),
                events: VecDeque::new(),
                next_event_id: 1,
            }),
            last_event: watch::Sender::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FeedState> {
        // A panic aborts the process (fail-stop), so the lock is never poisoned
        // in a running node; the state is still consistent if it were.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes in an evaluation's changes: each becomes an event, is logged and
    /// counted; returns the events (for the webhooks).
    pub fn publish(&self, changes: Vec<AlertChange>) -> Vec<FeedEvent> {
        if changes.is_empty() {
            return Vec::new();
        }
        let mut state = self.state();
        let mut published = Vec::with_capacity(changes.len());
        for change in changes {
            let kind = match &change {
                AlertChange::Raised(alert) => {
                    log_raised(alert);
                    metrics::counter!("flashgate_alerts_raised_total", "kind" => alert.kind.as_str())
                        .increment(1);
                    state.active.push(alert.clone());
                    "alert.raised"
                }
                AlertChange::Resolved(alert) => {
                    tracing::info!(
                        alert_id = %alert.id,
                        kind = alert.kind.as_str(),
                        sku = alert.sku.as_deref(),
                        "alert resolved: {}",
                        alert.message
                    );
                    state.active.retain(|active| active.id != alert.id);
                    state.recent.push_front(alert.clone());
                    state.recent.truncate(self.limits.recent_max);
                    "alert.resolved"
                }
            };
            let event = FeedEvent {
                event_id: state.next_event_id,
                kind,
                alert: change.alert().clone(),
            };
            state.next_event_id += 1;
            state.events.push_back(event.clone());
            if state.events.len() > self.limits.events_max {
                state.events.pop_front();
            }
            published.push(event);
        }
        for kind in AlertKind::ALL {
            let active = state
                .active
                .iter()
                .filter(|alert| alert.kind == kind)
                .count();
            metrics::gauge!("flashgate_alerts_active", "kind" => kind.as_str()).set(active as f64);
        }
        let last = state.next_event_id - 1;
        drop(state);
        self.last_event.send_replace(last);
        published
    }

    /// The active alerts, newest first, and the recently resolved ones,
    /// newest first (at most `recent_max`).
    pub fn list(&self) -> (Vec<Alert>, Vec<Alert>) {
        let state = self.state();
        let mut active = state.active.clone();
        active.reverse();
        (active, state.recent.iter().cloned().collect())
    }

    /// The last event id published (0 before the first).
    pub fn last_event_id(&self) -> u64 {
        *self.last_event.borrow()
    }

    /// Events after `after`, oldest first; `Missed` when the ring has let go
    /// of one of them, or `after` is not of this run (the reader must reload
    /// `list` and go on from `last_event_id`).
    pub fn events_after(&self, after: u64) -> Result<Vec<FeedEvent>, Missed> {
        let state = self.state();
        let last = state.next_event_id - 1;
        let oldest = state
            .events
            .front()
            .map_or(state.next_event_id, |e| e.event_id);
        // An id past the last one comes from an earlier run of the node
        // (ids restart with each run): the reader must reload too.
        if after > last || after + 1 < oldest {
            return Err(Missed { oldest });
        }
        Ok(state
            .events
            .iter()
            .filter(|event| event.event_id > after)
            .cloned()
            .collect())
    }

    /// A receiver that changes whenever events are published.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.last_event.subscribe()
    }
}

fn log_raised(alert: &Alert) {
    let (id, kind, sku) = (&alert.id, alert.kind.as_str(), alert.sku.as_deref());
    match alert.severity {
        super::engine::Severity::Critical => {
            tracing::error!(alert_id = %id, kind, sku, "ALERT: {}", alert.message)
        }
        super::engine::Severity::Warning => {
            tracing::warn!(alert_id = %id, kind, sku, "alert: {}", alert.message)
        }
        super::engine::Severity::Info => {
            tracing::info!(alert_id = %id, kind, sku, "alert: {}", alert.message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::engine::Severity;
    use flashgate_actors::domain::Timestamp;

    fn alert(id: &str, resolved: bool) -> Alert {
        Alert {
            id: id.into(),
            kind: AlertKind::SoldOut,
            severity: Severity::Warning,
            sku: Some("A".into()),
            message: "sold out".into(),
            started_at: Timestamp(1),
            resolved_at: resolved.then_some(Timestamp(2)),
        }
    }

    /// Events are numbered without gaps; a reader resumes after the last id
    /// it saw; one the ring let go of is told it missed events; the lists
    /// are bounded and newest first.
    #[test]
    fn events_resume_after_an_id_and_the_ring_is_bounded() {
        let feed = AlertFeed::new(FeedLimits {
            recent_max: 2,
            events_max: 4,
        });
        assert_eq!(feed.events_after(0), Ok(vec![]));
        let events = feed.publish(vec![
            AlertChange::Raised(alert("a", false)),
            AlertChange::Raised(alert("b", false)),
        ]);
        assert_eq!(
            events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(feed.last_event_id(), 2);
        let (active, recent) = feed.list();
        assert_eq!(
            active.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert!(recent.is_empty());
        feed.publish(vec![
            AlertChange::Resolved(alert("a", true)),
            AlertChange::Raised(alert("c", false)),
            AlertChange::Resolved(alert("b", true)),
            AlertChange::Resolved(alert("c", true)),
        ]);
        let (active, recent) = feed.list();
        assert!(active.is_empty());
        assert_eq!(
            recent.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            ["c", "b"]
        );
        // Ring of 4 holds 3..=6.
        let after_four: Vec<u64> = feed
            .events_after(4)
            .unwrap()
            .iter()
            .map(|e| e.event_id)
            .collect();
        assert_eq!(after_four, [5, 6]);
        assert_eq!(feed.events_after(2).unwrap().len(), 4);
        assert_eq!(feed.events_after(1), Err(Missed { oldest: 3 }));
        assert_eq!(feed.events_after(6), Ok(vec![]));
        assert_eq!(feed.events_after(7), Err(Missed { oldest: 3 }));
        let json = serde_json::to_value(&feed.events_after(5).unwrap()[0]).unwrap();
        assert_eq!(json["type"], "alert.resolved");
        assert_eq!(json["event_id"], 6);
    }
}
