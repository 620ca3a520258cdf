//! `AlertEngine`: the alert rules, pure. Each evaluation gets an
//! `Observation` (what the node knows at `now`: every SKU's stock, its
//! counters since start, its place in the cluster, its storage) and returns
//! the alerts it raised and resolved. No clock, no I/O: the monitor
//! (`monitor.rs`) reads the node and passes `now` in.
//!
//! The rules, numbered (docs/ALERTS.md has them for operators):
//! 1. `low_stock` (warning, per SKU): a SKU with a `low_stock_threshold`
//!    above 0 has `available` at or below it. Raised once per crossing:
//!    resolved when `available` rises above the threshold, raised anew at
//!    the next crossing.
//! 2. `sold_out` (warning, per SKU): `available` is 0 of a `total` above 0.
//!    Resolved when units come back (a restock, a reservation that expired
//!    or was cancelled).
//! 3. `restocked` (info, per SKU, an event): `total` grew since the last
//!    evaluation. Raised and resolved at once.
//! 4. `unpaid_expiry_spike` (warning): over `unpaid_expiry_window_ms`, at
//!    least `unpaid_expiry_min_ended` reservations ended (confirmed,
//!    cancelled or expired) and more than `unpaid_expiry_percent` of them
//!    expired unpaid.
//! 5. `duplicate_orders` (warning): over `duplicate_orders_window_ms`,
//!    idempotent replays, reused keys and refusals for a customer's limit
//!    together are at least `duplicate_orders_min` and at least
//!    `duplicate_orders_percent` of the orders taken.
//! 6. `overload_shedding` (warning): over `overload_window_ms`, orders
//!    refused `overloaded` are at least `overload_min` and at least
//!    `overload_percent` of the orders taken.
//! 7. `replication_lag` (warning): on a primary with its standby connected,
//!    the standby is `replication_lag_ms` or more behind.
//! 8. `standby_lost` (critical): a replicated primary has had no standby
//!    connected for `standby_lost_after_ms` or more.
//! 9. `replication_degraded` (critical): a sync primary answers without its
//!    standby (`standby_loss = degrade`, or promoted without a standby yet).
//! 10. `fenced` (critical): this node learned of a newer primary and takes
//!     no writes. Resolved when it follows the new primary as a standby.
//! 11. `promoted` (warning, an event): this node became primary (a standby
//!     promoted, or a primary's epoch moved on).
//! 12. `storage_failed` (critical): the order log failed; the node takes no
//!     more writes. Never resolved while the process runs.
//! 13. `admin_auth_failures` (warning): over `admin_auth_window_ms`, at
//!     least `admin_auth_failures_min` calls to the admin API sent a
//!     credential and were refused for it (401, 403, 429).
//! 14. `webhook_disabled` (warning, per receiver): a webhook receiver
//!     answered 410 Gone and gets nothing more until the node restarts.
//!
//! The window rules resolve as soon as their condition no longer holds over
//! the window. A SKU's rules need its stock, which only a primary reads:
//! without stock in an observation they keep their state.

use std::collections::{BTreeMap, HashMap};

use flashgate_actors::domain::{SkuStock, Timestamp};
use flashgate_actors::{Replication, Role};
use serde::Serialize;

use super::window::{CounterWindow, Counters};

/// Every kind of alert.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    LowStock,
    SoldOut,
    Restocked,
    UnpaidExpirySpike,
    DuplicateOrders,
    OverloadShedding,
    ReplicationLag,
    StandbyLost,
    ReplicationDegraded,
    Fenced,
    Promoted,
    StorageFailed,
    AdminAuthFailures,
    WebhookDisabled,
    ArchiveBehind,
    EventsBehind,
    EventsGap,
}

impl AlertKind {
    pub const ALL: [AlertKind; 17] = [
        AlertKind::LowStock,
        AlertKind::SoldOut,
        AlertKind::Restocked,
        AlertKind::UnpaidExpirySpike,
        AlertKind::DuplicateOrders,
        AlertKind::OverloadShedding,
        AlertKind::ReplicationLag,
        AlertKind::StandbyLost,
        AlertKind::ReplicationDegraded,
        AlertKind::Fenced,
        AlertKind::Promoted,
        AlertKind::StorageFailed,
        AlertKind::AdminAuthFailures,
        AlertKind::WebhookDisabled,
        AlertKind::ArchiveBehind,
        AlertKind::EventsBehind,
        AlertKind::EventsGap,
    ];

    /// The kind's name, as in JSON, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::LowStock => "low_stock",
            AlertKind::SoldOut => "sold_out",
            AlertKind::Restocked => "restocked",
            AlertKind::UnpaidExpirySpike => "unpaid_expiry_spike",
            AlertKind::DuplicateOrders => "duplicate_orders",
            AlertKind::OverloadShedding => "overload_shedding",
            AlertKind::ReplicationLag => "replication_lag",
            AlertKind::StandbyLost => "standby_lost",
            AlertKind::ReplicationDegraded => "replication_degraded",
            AlertKind::Fenced => "fenced",
            AlertKind::Promoted => "promoted",
            AlertKind::StorageFailed => "storage_failed",
            AlertKind::AdminAuthFailures => "admin_auth_failures",
            AlertKind::WebhookDisabled => "webhook_disabled",
            AlertKind::ArchiveBehind => "archive_behind",
            AlertKind::EventsBehind => "events_behind",
            AlertKind::EventsGap => "events_gap",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            AlertKind::Restocked => Severity::Info,
            AlertKind::StandbyLost
            | AlertKind::ReplicationDegraded
            | AlertKind::Fenced
            | AlertKind::StorageFailed
            | AlertKind::EventsGap => Severity::Critical,
            _ => Severity::Warning,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One alert: raised when its rule's condition began to hold, resolved when
/// it stopped (an event alert is resolved when raised).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Alert {
    /// Unique on this node across restarts: the run's id, then a number.
    pub id: String,
    pub kind: AlertKind,
    pub severity: Severity,
    /// The SKU, for the kinds about one SKU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    /// What happened, with the numbers.
    pub message: String,
    /// RFC 3339, milliseconds.
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String)]
    pub started_at: Timestamp,
    /// RFC 3339, milliseconds; null while the alert is active.
    #[serde(serialize_with = "rfc3339_optional")]
    #[schema(value_type = Option<String>, required = true)]
    pub resolved_at: Option<Timestamp>,
}

fn rfc3339<S: serde::Serializer>(at: &Timestamp, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(at)
}

fn rfc3339_optional<S: serde::Serializer>(
    at: &Option<Timestamp>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => serializer.collect_str(at),
        None => serializer.serialize_none(),
    }
}

impl Alert {
    pub fn is_active(&self) -> bool {
        self.resolved_at.is_none()
    }
}

/// What an evaluation changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertChange {
    Raised(Alert),
    Resolved(Alert),
}

impl AlertChange {
    pub fn alert(&self) -> &Alert {
        match self {
            AlertChange::Raised(alert) | AlertChange::Resolved(alert) => alert,
        }
    }
}

/// The rules' thresholds and windows (`Config`'s `alert_*` settings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertRules {
    pub unpaid_expiry_window_ms: u64,
    pub unpaid_expiry_min_ended: u64,
    pub unpaid_expiry_percent: u64,
    pub duplicate_orders_window_ms: u64,
    pub duplicate_orders_min: u64,
    pub duplicate_orders_percent: u64,
    pub overload_window_ms: u64,
    pub overload_min: u64,
    pub overload_percent: u64,
    pub replication_lag_ms: u64,
    pub standby_lost_after_ms: u64,
    pub admin_auth_window_ms: u64,
    pub admin_auth_failures_min: u64,
}

impl Default for AlertRules {
    fn default() -> AlertRules {
        AlertRules {
            unpaid_expiry_window_ms: 300_000,
            unpaid_expiry_min_ended: 20,
            unpaid_expiry_percent: 50,
            duplicate_orders_window_ms: 60_000,
            duplicate_orders_min: 100,
            duplicate_orders_percent: 20,
            overload_window_ms: 30_000,
            overload_min: 10,
            overload_percent: 5,
            replication_lag_ms: 2_000,
            standby_lost_after_ms: 5_000,
            admin_auth_window_ms: 60_000,
            admin_auth_failures_min: 10,
        }
    }
}

impl AlertRules {
    /// The longest window a rule looks back over.
    pub fn longest_window_ms(&self) -> u64 {
        self.unpaid_expiry_window_ms
            .max(self.duplicate_orders_window_ms)
            .max(self.overload_window_ms)
            .max(self.admin_auth_window_ms)
    }
}

/// The node's place in its cluster, as the rules need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    pub role: Role,
    pub epoch: u64,
    pub replication: Replication,
    pub standby_connected: bool,
    /// Why a sync primary answers without its standby, when it does.
    pub degraded: Option<String>,
    pub lag_ms: u64,
    pub lag_records: u64,
}

/// What the node knows at `now`.
#[derive(Clone, Debug)]
pub struct Observation<'a> {
    pub now: Timestamp,
    /// Every SKU's stock, when it was read (a primary reads it; a standby
    /// or a failed read gives none).
    pub stock: Option<&'a [SkuStock]>,
    pub counters: Counters,
    pub cluster: ClusterView,
    pub storage_failure: Option<&'a str>,
    /// With continuous archiving: how many durable records the archive
    /// lacks, and how many the log keeps for it before trimming them anyway.
    pub archive: Option<ArchiveView>,
    /// With order events on NATS: how many durable records are unpublished,
    /// the log's retention for them, and the gaps found since the start.
    pub events: Option<EventsView>,
    /// Webhook receivers disabled after answering 410, by a name that
    /// reveals no secret (scheme, host, port).
    pub disabled_webhooks: &'a [String],
}

/// The archive's distance behind the log (`Observation::archive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveView {
    pub lag_records: u64,
    pub retention_records_max: u64,
}

/// The events publisher's distance behind the log (`Observation::events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventsView {
    pub lag_records: u64,
    pub retention_records_max: u64,
    pub gaps: u64,
}

/// Samples the window keeps at most: one per evaluation over the longest
/// window at the fastest evaluation interval (100 ms over a day), bounded.
const WINDOW_SAMPLES_MAX: usize = 1 << 16;

/// A SKU as the last evaluation saw it.
#[derive(Clone, Copy, Debug)]
struct SkuSeen {
    total: u64,
}

/// What an alert is about: its kind and, for some kinds, a subject (a SKU,
/// a webhook receiver). At most one alert per key is active.
type AlertKey = (AlertKind, Option<String>);

/// The alert rules and what they remember between evaluations.
pub struct AlertEngine {
    rules: AlertRules,
    /// This run's id: alert ids are `<run>-<number>`.
    run: String,
    next_number: u64,
    active: BTreeMap<AlertKey, Alert>,
    skus: HashMap<String, SkuSeen>,
    window: CounterWindow,
    /// The last evaluation's role and epoch (none before the first).
    cluster: Option<(Role, u64)>,
    /// Since when a replicated primary has had no standby connected.
    standby_away_since: Option<Timestamp>,
}

/// What is raised or resolved in one evaluation, before the engine's state
/// takes it in.
struct Evaluation<'e> {
    engine: &'e mut AlertEngine,
    now: Timestamp,
    changes: Vec<AlertChange>,
}

impl Evaluation<'_> {
    /// Makes the alert of `key` active (with `message`) if `holds`, resolves
    /// it otherwise; an alert that stays active keeps its first message.
    fn condition(&mut self, key: AlertKey, holds: bool, message: impl FnOnce() -> String) {
        let active = self.engine.active.contains_key(&key);
        if holds && !active {
            let alert = self.engine.new_alert(&key, message(), self.now);
            self.engine.active.insert(key, alert.clone());
            self.changes.push(AlertChange::Raised(alert));
        } else if !holds && active {
            if let Some(mut alert) = self.engine.active.remove(&key) {
                alert.resolved_at = Some(self.now);
                self.changes.push(AlertChange::Resolved(alert));
            }
        }
    }

    /// An event: raised and resolved at once.
    fn event(&mut self, key: AlertKey, message: String) {
        let mut alert = self.engine.new_alert(&key, message, self.now);
        self.changes.push(AlertChange::Raised(alert.clone()));
        alert.resolved_at = Some(self.now);
        self.changes.push(AlertChange::Resolved(alert));
    }
}

impl AlertEngine {
    /// An engine with no alerts; `run` names this process's run (unique
    /// across restarts, e.g. random), so alert ids never repeat.
    pub fn new(rules: AlertRules, run: String) -> AlertEngine {
        let span = rules.longest_window_ms();
        AlertEngine {
            rules,
            run,
            next_number: 1,
            active: BTreeMap::new(),
            skus: HashMap::new(),
            window: CounterWindow::new(span, WINDOW_SAMPLES_MAX),
            cluster: None,
            standby_away_since: None,
        }
    }

    pub fn rules(&self) -> &AlertRules {
        &self.rules
    }

    /// The active alerts, by kind then subject.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    fn new_alert(&mut self, (kind, subject): &AlertKey, message: String, now: Timestamp) -> Alert {
        let id = format!("{}-{}", self.run, self.next_number);
        self.next_number += 1;
        let sku = match kind {
            AlertKind::LowStock | AlertKind::SoldOut | AlertKind::Restocked => subject.clone(),
            _ => None,
        };
        Alert {
            id,
            kind: *kind,
            severity: kind.severity(),
            sku,
            message,
            started_at: now,
            resolved_at: None,
        }
    }

    /// Applies every rule to `observation`; returns what was raised and
    /// resolved, in rule order (an event's raise before its resolve).
    pub fn evaluate(&mut self, observation: &Observation) -> Vec<AlertChange> {
        let now = observation.now;
        self.window.record(now.0, observation.counters);
        let mut evaluation = Evaluation {
            engine: self,
            now,
            changes: Vec::new(),
        };
        if let Some(stock) = observation.stock {
            evaluation.stock(stock);
        }
        evaluation.windows();
        evaluation.cluster(&observation.cluster);
        if let Some(reason) = observation.storage_failure {
            evaluation.condition((AlertKind::StorageFailed, None), true, || {
                format!("the order log failed; this node takes no more writes: {reason}")
            });
        }
        if let Some(archive) = observation.archive {
            // Half the retention gone: past all of it the log is trimmed
            // anyway and the archive gets a gap.
            let behind = archive.lag_records > archive.retention_records_max / 2;
            evaluation.condition((AlertKind::ArchiveBehind, None), behind, || {
                format!(
                    "the archive is {} records behind the log, which keeps {} for it; past that the log is trimmed and the archive gets a gap: check the archive dir and archive_command",
                    archive.lag_records, archive.retention_records_max
                )
            });
        }
        if let Some(events) = observation.events {
            let behind = events.lag_records > events.retention_records_max / 2;
            evaluation.condition((AlertKind::EventsBehind, None), behind, || {
                format!(
                    "{} order events are not yet on NATS JetStream; the log keeps {} for the publisher, past that it publishes a gap marker instead: check NATS (events_nats_url)",
                    events.lag_records, events.retention_records_max
                )
            });
            evaluation.condition((AlertKind::EventsGap, None), events.gaps > 0, || {
                format!(
                    "{} gap(s) in the order events since this node started: records the log no longer held were never published (markers on the stream's .gaps subject); consumers must reconcile from the API",
                    events.gaps
                )
            });
        }
        for name in observation.disabled_webhooks {
            evaluation.condition(
                (AlertKind::WebhookDisabled, Some(name.clone())),
                true,
                || format!("webhook receiver {name} answered 410 Gone: nothing more is sent to it until this node restarts"),
            );
        }
        evaluation.changes
    }
}

fn percent(part: u64, whole: u64) -> u64 {
    part.saturating_mul(100).checked_div(whole).unwrap_or(0)
}

impl Evaluation<'_> {
    /// Rules 1–3.
    fn stock(&mut self, stock: &[SkuStock]) {
        for sku in stock {
            let name = sku.id.as_str();
            let seen = self.engine.skus.get(name).copied();
            let threshold = sku.low_stock_threshold;
            self.condition(
                (AlertKind::LowStock, Some(name.to_owned())),
                threshold > 0 && sku.available <= threshold,
                || {
                    format!(
                        "SKU {name}: {} of {} units available, at or below its low-stock threshold of {threshold}",
                        sku.available, sku.total
                    )
                },
            );
            self.condition(
                (AlertKind::SoldOut, Some(name.to_owned())),
                sku.available == 0 && sku.total > 0,
                || {
                    format!(
                        "SKU {name} sold out: 0 of {} units available ({} sold, {} reserved)",
                        sku.total, sku.sold, sku.reserved
                    )
                },
            );
            if let Some(seen) = seen {
                if sku.total > seen.total {
                    self.event(
                        (AlertKind::Restocked, Some(name.to_owned())),
                        format!(
                            "SKU {name} restocked: {} units added, {} of {} available",
                            sku.total - seen.total,
                            sku.available,
                            sku.total
                        ),
                    );
                }
            }
            self.engine
                .skus
                .insert(name.to_owned(), SkuSeen { total: sku.total });
        }
    }

    /// Rules 4–6 and 13.
    fn windows(&mut self) {
        let rules = self.engine.rules.clone();
        let window = &self.engine.window;
        let unpaid = window.growth(rules.unpaid_expiry_window_ms);
        let duplicates = window.growth(rules.duplicate_orders_window_ms);
        let overload = window.growth(rules.overload_window_ms);
        let admin = window.growth(rules.admin_auth_window_ms);

        let ended = unpaid.confirmed + unpaid.cancelled + unpaid.expired;
        self.condition(
            (AlertKind::UnpaidExpirySpike, None),
            ended >= rules.unpaid_expiry_min_ended
                && unpaid.expired.saturating_mul(100) > rules.unpaid_expiry_percent.saturating_mul(ended),
            || {
                format!(
                    "{}% of the {ended} reservations that ended in the last {} s expired unpaid ({} expired, {} confirmed, {} cancelled; threshold {}%)",
                    percent(unpaid.expired, ended),
                    rules.unpaid_expiry_window_ms / 1000,
                    unpaid.expired,
                    unpaid.confirmed,
                    unpaid.cancelled,
                    rules.unpaid_expiry_percent
                )
            },
        );

        let repeated = duplicates.replayed + duplicates.key_reused + duplicates.limit_exceeded;
        self.condition(
            (AlertKind::DuplicateOrders, None),
            repeated >= rules.duplicate_orders_min
                && repeated.saturating_mul(100)
                    >= rules.duplicate_orders_percent.saturating_mul(duplicates.orders),
            || {
                format!(
                    "{repeated} of {} orders in the last {} s were repeats ({} idempotent replays, {} reused keys, {} refused for a customer's limit): double clicks, retry storms or bots",
                    duplicates.orders,
                    rules.duplicate_orders_window_ms / 1000,
                    duplicates.replayed,
                    duplicates.key_reused,
                    duplicates.limit_exceeded
                )
            },
        );

        self.condition(
            (AlertKind::OverloadShedding, None),
            overload.overloaded >= rules.overload_min
                && overload.overloaded.saturating_mul(100)
                    >= rules.overload_percent.saturating_mul(overload.orders),
            || {
                format!(
                    "{} of {} orders in the last {} s were refused 503 overloaded ({}%): the shards' queues are full",
                    overload.overloaded,
                    overload.orders,
                    rules.overload_window_ms / 1000,
                    percent(overload.overloaded, overload.orders)
                )
            },
        );

        self.condition(
            (AlertKind::AdminAuthFailures, None),
            admin.admin_auth_refused >= rules.admin_auth_failures_min,
            || {
                format!(
                    "{} calls to the admin API were refused for their credential in the last {} s: someone may be guessing the token",
                    admin.admin_auth_refused,
                    rules.admin_auth_window_ms / 1000
                )
            },
        );
    }

    /// Rules 7–11.
    fn cluster(&mut self, cluster: &ClusterView) {
        let rules = self.engine.rules.clone();
        let primary = cluster.role == Role::Primary;
        let replicated = cluster.replication != Replication::Standalone;

        self.condition(
            (AlertKind::ReplicationLag, None),
            primary
                && replicated
                && cluster.standby_connected
                && cluster.lag_ms >= rules.replication_lag_ms,
            || {
                format!(
                    "the standby is {} ms ({} records) behind this primary; threshold {} ms",
                    cluster.lag_ms, cluster.lag_records, rules.replication_lag_ms
                )
            },
        );

        let away = primary && replicated && !cluster.standby_connected;
        let since = if away {
            *self.engine.standby_away_since.get_or_insert(self.now)
        } else {
            self.engine.standby_away_since = None;
            self.now
        };
        let away_ms = self.now.0.saturating_sub(since.0);
        self.condition(
            (AlertKind::StandbyLost, None),
            away && away_ms >= rules.standby_lost_after_ms,
            || {
                format!(
                    "no standby has been connected to this {} primary for {} ms: {}",
                    cluster.replication.as_str(),
                    away_ms,
                    match cluster.replication {
                        Replication::Sync => "orders wait for it (standby_loss decides what then)",
                        _ => "acknowledged orders are on this node's disk only",
                    }
                )
            },
        );

        self.condition(
            (AlertKind::ReplicationDegraded, None),
            primary && cluster.degraded.is_some(),
            || {
                format!(
                    "this primary answers orders without its standby: {}",
                    cluster.degraded.as_deref().unwrap_or("degraded")
                )
            },
        );

        self.condition(
            (AlertKind::Fenced, None),
            cluster.role == Role::Fenced,
            || {
                format!(
                    "this node (epoch {}) learned of a newer primary and takes no writes; point buyers at the new primary",
                    cluster.epoch
                )
            },
        );

        if let Some((role, epoch)) = self.engine.cluster {
            let became_primary = primary && (role != Role::Primary || cluster.epoch > epoch);
            if became_primary {
                self.event(
                    (AlertKind::Promoted, None),
                    format!(
                        "this node became primary at epoch {} (was {} at epoch {epoch})",
                        cluster.epoch,
                        role.as_str()
                    ),
                );
            }
        }
        self.engine.cluster = Some((cluster.role, cluster.epoch));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate_actors::domain::SkuId;

    const T0: u64 = 1_764_000_000_000;

    fn engine() -> AlertEngine {
        AlertEngine::new(AlertRules::default(), "r1".into())
    }

    fn standalone() -> ClusterView {
        ClusterView {
            role: Role::Primary,
            epoch: 1,
            replication: Replication::Standalone,
            standby_connected: false,
            degraded: None,
            lag_ms: 0,
            lag_records: 0,
        }
    }

    fn sku(id: &str, total: u64, available: u64, threshold: u64) -> SkuStock {
        SkuStock {
            id: SkuId::parse(id).unwrap(),
            total,
            available,
            reserved: 0,
            sold: total - available,
            low_stock_threshold: threshold,
        }
    }

    /// One evaluation with everything quiet but what the arguments say.
    struct Step<'a> {
        at_ms: u64,
        stock: Option<&'a [SkuStock]>,
        counters: Counters,
        cluster: ClusterView,
        storage_failure: Option<&'a str>,
        archive: Option<ArchiveView>,
        events: Option<EventsView>,
        disabled: &'a [String],
    }

    impl<'a> Step<'a> {
        fn at(at_ms: u64) -> Step<'a> {
            Step {
                at_ms,
                stock: None,
                counters: Counters::default(),
                cluster: standalone(),
                storage_failure: None,
                archive: None,
                events: None,
                disabled: &[],
            }
        }

        fn run(self, engine: &mut AlertEngine) -> Vec<(AlertKind, &'static str)> {
            let observation = Observation {
                now: Timestamp(T0 + self.at_ms),
                stock: self.stock,
                counters: self.counters,
                cluster: self.cluster,
                storage_failure: self.storage_failure,
                archive: self.archive,
                events: self.events,
                disabled_webhooks: self.disabled,
            };
            engine
                .evaluate(&observation)
                .into_iter()
                .map(|change| match change {
                    AlertChange::Raised(alert) => {
                        assert!(alert.resolved_at.is_none());
                        assert_eq!(alert.severity, alert.kind.severity());
                        (alert.kind, "raised")
                    }
                    AlertChange::Resolved(alert) => {
                        assert!(alert.resolved_at.is_some());
                        (alert.kind, "resolved")
                    }
                })
                .collect()
        }
    }

    fn stock_step<'a>(at_ms: u64, stock: &'a [SkuStock]) -> Step<'a> {
        Step {
            stock: Some(stock),
            ..Step::at(at_ms)
        }
    }

    /// Rule 1: raised at the threshold (not one above), once while it
    /// stays low, resolved above it, raised again at the next crossing; a
    /// threshold of 0 turns it off.
    #[test]
    fn low_stock_once_per_crossing() {
        let mut engine = engine();
        assert_eq!(stock_step(0, &[sku("A", 100, 11, 10)]).run(&mut engine), []);
        let raised = stock_step(1, &[sku("A", 100, 10, 10)]).run(&mut engine);
        assert_eq!(raised, [(AlertKind::LowStock, "raised")]);
        let alert = engine.active().next().unwrap().clone();
        assert_eq!(alert.sku.as_deref(), Some("A"));
        assert!(alert.message.contains("10 of 100"), "{}", alert.message);
        assert_eq!(alert.id, "r1-1");
        assert_eq!(stock_step(2, &[sku("A", 100, 3, 10)]).run(&mut engine), []);
        assert_eq!(
            stock_step(3, &[sku("A", 100, 11, 10)]).run(&mut engine),
            [(AlertKind::LowStock, "resolved")]
        );
        assert_eq!(
            stock_step(4, &[sku("A", 100, 9, 10)]).run(&mut engine),
            [(AlertKind::LowStock, "raised")]
        );
        assert_eq!(engine.active().next().unwrap().id, "r1-2");
        // Threshold 0: off, even at 1 unit left.
        let mut engine = super::tests::engine();
        assert_eq!(stock_step(0, &[sku("B", 5, 1, 0)]).run(&mut engine), []);
    }

    /// Rule 2: raised at 0 available, resolved when units come back; a SKU
    /// created with no stock is not "sold out". Rule 1 stays active beside it.
    #[test]
    fn sold_out_until_units_come_back() {
        let mut engine = engine();
        assert_eq!(
            stock_step(0, &[sku("A", 10, 1, 0), sku("Z", 0, 0, 0)]).run(&mut engine),
            []
        );
        let changes = stock_step(1, &[sku("A", 10, 0, 0)]).run(&mut engine);
        assert_eq!(changes, [(AlertKind::SoldOut, "raised")]);
        let message = &engine.active().next().unwrap().message;
        assert!(
            message.contains("0 of 10") && message.contains("10 sold"),
            "{message}"
        );
        assert_eq!(stock_step(2, &[sku("A", 10, 0, 0)]).run(&mut engine), []);
        assert_eq!(
            stock_step(3, &[sku("A", 10, 1, 0)]).run(&mut engine),
            [(AlertKind::SoldOut, "resolved")]
        );
        let mut engine = super::tests::engine();
        let both = stock_step(0, &[sku("A", 10, 0, 2)]).run(&mut engine);
        assert_eq!(
            both,
            [
                (AlertKind::LowStock, "raised"),
                (AlertKind::SoldOut, "raised")
            ]
        );
    }

    /// Rule 3: a grown total is an event (raised and resolved at once), not
    /// on the first sight of a SKU; with rules 1 and 2 resolved by it.
    #[test]
    fn restocked_is_an_event_that_resolves_sold_out() {
        let mut engine = engine();
        assert_eq!(
            stock_step(0, &[sku("A", 10, 0, 2)]).run(&mut engine).len(),
            2
        );
        let changes = stock_step(1, &[sku("A", 60, 50, 2)]).run(&mut engine);
        assert_eq!(
            changes,
            [
                (AlertKind::LowStock, "resolved"),
                (AlertKind::SoldOut, "resolved"),
                (AlertKind::Restocked, "raised"),
                (AlertKind::Restocked, "resolved"),
            ]
        );
        assert_eq!(engine.active().count(), 0);
        assert_eq!(stock_step(2, &[sku("A", 60, 50, 2)]).run(&mut engine), []);
        // Without stock (a standby, a failed read), SKU alerts keep their state.
        let mut engine = super::tests::engine();
        stock_step(0, &[sku("A", 10, 0, 0)]).run(&mut engine);
        assert_eq!(Step::at(1).run(&mut engine), []);
        assert_eq!(engine.active().count(), 1);
    }

    fn counters_step<'a>(at_ms: u64, counters: Counters) -> Step<'a> {
        Step {
            counters,
            ..Step::at(at_ms)
        }
    }

    /// Rule 4: more than 50% of at least 20 ended reservations expired, over
    /// the window; exactly 50% or 19 ended is not; resolved when the window
    /// no longer holds them.
    #[test]
    fn unpaid_expiry_spike_edges_and_resolution() {
        let ended = |confirmed, expired| Counters {
            confirmed,
            expired,
            ..Counters::default()
        };
        let mut engine = engine();
        counters_step(0, Counters::default()).run(&mut engine);
        assert_eq!(counters_step(1_000, ended(10, 10)).run(&mut engine), []);
        assert_eq!(counters_step(2_000, ended(10, 9)).run(&mut engine), []);
        let mut engine = super::tests::engine();
        counters_step(0, Counters::default()).run(&mut engine);
        assert_eq!(counters_step(1_000, ended(4, 5)).run(&mut engine), []); // 9 ended
        assert_eq!(
            counters_step(2_000, ended(9, 11)).run(&mut engine),
            [(AlertKind::UnpaidExpirySpike, "raised")]
        );
        let message = &engine.active().next().unwrap().message;
        assert!(message.contains("55% of the 20"), "{message}");
        // Five minutes later with nothing new: the window is empty.
        assert_eq!(counters_step(150_000, ended(9, 11)).run(&mut engine), []);
        assert_eq!(
            counters_step(302_001, ended(9, 11)).run(&mut engine),
            [(AlertKind::UnpaidExpirySpike, "resolved")]
        );
    }

    /// Rule 5: at least 100 repeats and at least 20% of orders; 99, or
    /// under 20%, is not.
    #[test]
    fn duplicate_orders_edges_and_resolution() {
        let orders = |orders, replayed, key_reused, limit_exceeded| Counters {
            orders,
            replayed,
            key_reused,
            limit_exceeded,
            ..Counters::default()
        };
        let mut engine = engine();
        counters_step(0, Counters::default()).run(&mut engine);
        assert_eq!(
            counters_step(1_000, orders(400, 40, 20, 39)).run(&mut engine),
            []
        );
        let mut engine = super::tests::engine();
        counters_step(0, Counters::default()).run(&mut engine);
        assert_eq!(
            counters_step(1_000, orders(501, 50, 25, 25)).run(&mut engine),
            []
        );
        assert_eq!(
            counters_step(2_000, orders(501, 50, 25, 26)).run(&mut engine),
            [(AlertKind::DuplicateOrders, "raised")]
        );
        assert_eq!(
            counters_step(62_001, orders(501, 50, 25, 26)).run(&mut engine),
            [(AlertKind::DuplicateOrders, "resolved")]
        );
    }

    /// Rule 6: at least 10 refusals and at least 5% of orders.
    #[test]
    fn overload_shedding_edges_and_resolution() {
        let shed = |orders, overloaded| Counters {
            orders,
            overloaded,
            ..Counters::default()
        };
        let mut engine = engine();
        counters_step(0, Counters::default()).run(&mut engine);
        assert_eq!(counters_step(1_000, shed(100, 9)).run(&mut engine), []);
        assert_eq!(counters_step(2_000, shed(10_000, 10)).run(&mut engine), []);
        let mut engine = super::tests::engine();
        counters_step(0, Counters::default()).run(&mut engine);
        assert_eq!(
            counters_step(1_000, shed(200, 10)).run(&mut engine),
            [(AlertKind::OverloadShedding, "raised")]
        );
        assert!(engine
            .active()
            .next()
            .unwrap()
            .message
            .contains("10 of 200"));
        assert_eq!(
            counters_step(31_001, shed(200, 10)).run(&mut engine),
            [(AlertKind::OverloadShedding, "resolved")]
        );
    }

    /// Rule 13: 10 refused admin calls in the window; 9 is not.
    #[test]
    fn admin_auth_failures_edges_and_resolution() {
        let refused = |admin_auth_refused| Counters {
            admin_auth_refused,
            ..Counters::default()
        };
        let mut engine = engine();
        counters_step(0, Counters::default()).run(&mut engine);
        assert_eq!(counters_step(1_000, refused(9)).run(&mut engine), []);
        assert_eq!(
            counters_step(2_000, refused(10)).run(&mut engine),
            [(AlertKind::AdminAuthFailures, "raised")]
        );
        assert_eq!(counters_step(30_000, refused(10)).run(&mut engine), []);
        assert_eq!(
            counters_step(62_001, refused(10)).run(&mut engine),
            [(AlertKind::AdminAuthFailures, "resolved")]
        );
    }

    fn cluster_step<'a>(at_ms: u64, cluster: ClusterView) -> Step<'a> {
        Step {
            cluster,
            ..Step::at(at_ms)
        }
    }

    fn sync_primary(connected: bool, lag_ms: u64) -> ClusterView {
        ClusterView {
            replication: Replication::Sync,
            standby_connected: connected,
            lag_ms,
            lag_records: lag_ms / 10,
            ..standalone()
        }
    }

    /// Rule 7: at 2,000 ms behind, not at 1,999; only with the standby
    /// connected; resolved once below.
    #[test]
    fn replication_lag_edges_and_resolution() {
        let mut engine = engine();
        assert_eq!(
            cluster_step(0, sync_primary(true, 1_999)).run(&mut engine),
            []
        );
        assert_eq!(
            cluster_step(1, sync_primary(true, 2_000)).run(&mut engine),
            [(AlertKind::ReplicationLag, "raised")]
        );
        assert!(engine
            .active()
            .next()
            .unwrap()
            .message
            .contains("2000 ms (200 records)"));
        assert_eq!(
            cluster_step(2, sync_primary(true, 10)).run(&mut engine),
            [(AlertKind::ReplicationLag, "resolved")]
        );
        // A standby's own view of lag raises nothing (its primary does).
        let standby = ClusterView {
            role: Role::Standby,
            ..sync_primary(true, 60_000)
        };
        assert_eq!(cluster_step(3, standby).run(&mut engine), []);
    }

    /// Rule 8: a replicated primary without a standby for 5,000 ms (not
    /// 4,999); resolved when one connects; a standalone node never.
    #[test]
    fn standby_lost_after_its_grace_and_resolution() {
        let mut engine = engine();
        assert_eq!(cluster_step(0, sync_primary(true, 0)).run(&mut engine), []);
        assert_eq!(
            cluster_step(1_000, sync_primary(false, 0)).run(&mut engine),
            []
        );
        assert_eq!(
            cluster_step(5_999, sync_primary(false, 0)).run(&mut engine),
            []
        );
        assert_eq!(
            cluster_step(6_000, sync_primary(false, 0)).run(&mut engine),
            [(AlertKind::StandbyLost, "raised")]
        );
        assert_eq!(
            cluster_step(7_000, sync_primary(true, 0)).run(&mut engine),
            [(AlertKind::StandbyLost, "resolved")]
        );
        // Away again: the grace starts over.
        assert_eq!(
            cluster_step(8_000, sync_primary(false, 0)).run(&mut engine),
            []
        );
        assert_eq!(
            cluster_step(12_999, sync_primary(false, 0)).run(&mut engine),
            []
        );
        let mut engine = super::tests::engine();
        assert_eq!(cluster_step(0, standalone()).run(&mut engine), []);
        assert_eq!(cluster_step(60_000, standalone()).run(&mut engine), []);
    }

    /// Rules 9 and 10: active exactly while the state holds.
    #[test]
    fn degraded_and_fenced_follow_the_state() {
        let mut engine = engine();
        let degraded = ClusterView {
            degraded: Some("the standby did not answer within 5000 ms".into()),
            ..sync_primary(false, 0)
        };
        assert_eq!(
            cluster_step(0, degraded).run(&mut engine),
            [(AlertKind::ReplicationDegraded, "raised")]
        );
        assert!(engine
            .active()
            .next()
            .unwrap()
            .message
            .contains("did not answer"));
        assert_eq!(
            cluster_step(1, sync_primary(true, 0)).run(&mut engine),
            [(AlertKind::ReplicationDegraded, "resolved")]
        );
        let fenced = ClusterView {
            role: Role::Fenced,
            ..sync_primary(false, 0)
        };
        assert_eq!(
            cluster_step(2, fenced).run(&mut engine),
            [(AlertKind::Fenced, "raised")]
        );
        let following = ClusterView {
            role: Role::Standby,
            epoch: 2,
            ..sync_primary(true, 0)
        };
        assert_eq!(
            cluster_step(3, following).run(&mut engine),
            [(AlertKind::Fenced, "resolved")]
        );
    }

    /// Rule 11: an event when a standby becomes primary or a primary's epoch
    /// moves on; not on the first evaluation.
    #[test]
    fn promoted_is_an_event() {
        let mut engine = engine();
        let standby = ClusterView {
            role: Role::Standby,
            ..sync_primary(true, 0)
        };
        assert_eq!(cluster_step(0, standby).run(&mut engine), []);
        let promoted = ClusterView {
            epoch: 2,
            degraded: Some("promoted without a standby".into()),
            ..sync_primary(false, 0)
        };
        let changes = cluster_step(1, promoted.clone()).run(&mut engine);
        assert_eq!(
            changes,
            [
                (AlertKind::ReplicationDegraded, "raised"),
                (AlertKind::Promoted, "raised"),
                (AlertKind::Promoted, "resolved"),
            ]
        );
        assert_eq!(cluster_step(2, promoted).run(&mut engine), []);
        let mut engine = super::tests::engine();
        assert_eq!(cluster_step(0, standalone()).run(&mut engine), []);
    }

    /// Rules 12 and 14: raised once, never resolved while the process runs.
    #[test]
    fn storage_failed_and_webhook_disabled_stay() {
        let mut engine = engine();
        let failed = Step {
            storage_failure: Some("fsync failed: EIO"),
            ..Step::at(0)
        };
        assert_eq!(
            failed.run(&mut engine),
            [(AlertKind::StorageFailed, "raised")]
        );
        let disabled = ["http://127.0.0.1:9/".to_owned()];
        let again = Step {
            storage_failure: Some("fsync failed: EIO"),
            disabled: &disabled,
            ..Step::at(1)
        };
        assert_eq!(
            again.run(&mut engine),
            [(AlertKind::WebhookDisabled, "raised")]
        );
        let messages: Vec<&str> = engine
            .active()
            .map(|alert| alert.message.as_str())
            .collect();
        assert!(messages.iter().any(|m| m.contains("EIO")), "{messages:?}");
        assert!(messages.iter().any(|m| m.contains("410")), "{messages:?}");
        let later = Step {
            storage_failure: Some("fsync failed: EIO"),
            disabled: &disabled,
            ..Step::at(2)
        };
        assert_eq!(later.run(&mut engine), []);
    }

    /// The archive behind by more than half the log's retention for it is
    /// raised (not at exactly half), and resolved once it caught up.
    #[test]
    fn archive_behind_is_raised_past_half_the_retention_and_resolved() {
        let mut engine = engine();
        let step = |at_ms, lag_records| Step {
            archive: Some(ArchiveView {
                lag_records,
                retention_records_max: 1_000,
            }),
            ..Step::at(at_ms)
        };
        assert_eq!(step(0, 500).run(&mut engine), []);
        assert_eq!(
            step(1, 501).run(&mut engine),
            [(AlertKind::ArchiveBehind, "raised")]
        );
        assert_eq!(step(2, 900).run(&mut engine), []);
        let message = &engine.active().next().unwrap().message;
        assert!(message.contains("501 records behind"), "{message}");
        assert_eq!(
            step(3, 10).run(&mut engine),
            [(AlertKind::ArchiveBehind, "resolved")]
        );
        // Without an archive there is nothing to say.
        assert_eq!(Step::at(4).run(&mut engine), []);
    }

    /// Order events behind by more than half the log's retention for them
    /// are raised and resolved like the archive; a gap stays raised.
    #[test]
    fn events_behind_and_events_gap() {
        let mut engine = engine();
        let step = |at_ms, lag_records, gaps| Step {
            events: Some(EventsView {
                lag_records,
                retention_records_max: 1_000,
                gaps,
            }),
            ..Step::at(at_ms)
        };
        assert_eq!(step(0, 500, 0).run(&mut engine), []);
        assert_eq!(
            step(1, 501, 0).run(&mut engine),
            [(AlertKind::EventsBehind, "raised")]
        );
        assert_eq!(
            step(2, 10, 1).run(&mut engine),
            [
                (AlertKind::EventsBehind, "resolved"),
                (AlertKind::EventsGap, "raised")
            ]
        );
        assert_eq!(step(3, 0, 1).run(&mut engine), []);
        let message = &engine.active().next().unwrap().message;
        assert!(message.contains("1 gap"), "{message}");
    }

    /// Every kind has a rule test above; ids are unique and the JSON form
    /// names the kind, the severity and RFC 3339 times.
    #[test]
    fn alerts_serialise_with_their_kind_and_times() {
        let mut engine = engine();
        stock_step(0, &[sku("A", 10, 0, 0)]).run(&mut engine);
        let alert = engine.active().next().unwrap();
        let json = serde_json::to_value(alert).unwrap();
        assert_eq!(json["kind"], "sold_out");
        assert_eq!(json["severity"], "warning");
        assert_eq!(json["sku"], "A");
        assert_eq!(json["started_at"], "2025-11-24T16:00:00.000Z");
        assert!(json["resolved_at"].is_null());
        let names: std::collections::HashSet<&str> =
            AlertKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), AlertKind::ALL.len());
    }
}
