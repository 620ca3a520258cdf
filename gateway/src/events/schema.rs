//! What one log record becomes on the event stream: its subject, its
//! `Nats-Msg-Id`, and its JSON body (schema version 1, docs/EVENTS.md). Pure:
//! records and the facts of the orders they name in, messages out.
//!
//! An event's id is `<cluster>-<epoch>-<lsn>`: the cluster id (16 hex
//! digits), the epoch the record was written in, and its log position. The
//! same record has the same id on every node of the cluster (a standby holds
//! the primary's records with their epochs), so a re-send after a restart or
//! a failover is the same message, which JetStream drops within its
//! duplicate window and a consumer recognises by id after it. A record
//! written by another primary at the same position after an async failover
//! has another epoch, hence another id.

use flashgate_actors::codec::LogEntry;
use flashgate_actors::domain::{CustomerId, Event, OrderId, SkuId, Timestamp};
use flashgate_storage::Lsn;
use serde_json::{json, Map, Value};

/// The `schema` field of every message; it changes when a field changes
/// meaning or goes away (a new field or kind does not change it).
pub const SCHEMA_VERSION: u32 = 1;

/// What the stream needs of an order that a record names by id only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFacts {
    pub sku: SkuId,
    pub customer: CustomerId,
    pub quantity: u32,
}

/// An event's id (`<cluster>-<epoch>-<lsn>`), parsed back from a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventId {
    pub cluster: u64,
    pub epoch: u64,
    pub lsn: Lsn,
}

impl EventId {
    pub fn text(&self) -> String {
        format!("{:016x}-{}-{}", self.cluster, self.epoch, self.lsn)
    }

    pub fn parse(text: &str) -> Option<EventId> {
        let mut parts = text.split('-');
        let cluster = u64::from_str_radix(parts.next()?, 16).ok()?;
        let epoch = parts.next()?.parse().ok()?;
        let lsn = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(EventId {
            cluster,
            epoch,
            lsn,
        })
    }
}

/// One message for the stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub id: EventId,
    /// `Nats-Msg-Id`: the event id's text (a gap marker's starts `gap-`).
    pub msg_id: String,
    pub subject: String,
    pub body: Value,
}

/// The order id a record's event names without its SKU (confirm, cancel,
/// expire, ship): the publisher looks those up before `message`.
pub fn order_needing_facts(event: &Event) -> Option<OrderId> {
    match event {
        Event::OrderConfirmed { id, .. }
        | Event::OrderCancelled { id, .. }
        | Event::OrderExpired { id, .. }
        | Event::OrderShipped { id, .. }
        | Event::OrderChanged { id, .. } => Some(*id),
        _ => None,
    }
}

/// The message for one record, or `None` for a record that is not a domain
/// event (orders leaving memory, keys forgotten: bookkeeping of one node).
/// `facts` answers for the order `order_needing_facts` names; `None` there
/// still makes a message, with the order's SKU unknown (`sku: null`).
pub fn message(
    prefix: &str,
    id: EventId,
    entry: &LogEntry,
    facts: Option<&OrderFacts>,
    published_at: Timestamp,
) -> Option<Message> {
    let mut body = Map::new();
    body.insert("schema".into(), json!(SCHEMA_VERSION));
    body.insert("id".into(), json!(id.text()));
    body.insert("epoch".into(), json!(id.epoch));
    body.insert("lsn".into(), json!(id.lsn));
    body.insert("shard".into(), json!(entry.shard));
    let (kind, subject, time) = match &entry.event {
        Event::SkuCreated {
            sku,
            stock,
            settings,
        } => {
            body.insert("sku".into(), json!(sku.as_str()));
            body.insert("stock".into(), json!(stock));
            body.insert("settings".into(), settings_json(settings));
            ("sku.created", sku_subject(prefix, sku), None)
        }
        Event::SkuSettingsChanged { sku, settings } => {
            body.insert("sku".into(), json!(sku.as_str()));
            body.insert("settings".into(), settings_json(settings));
            ("sku.settings_changed", sku_subject(prefix, sku), None)
        }
        Event::WaitingRoomSet { sku, room } => {
            body.insert("sku".into(), json!(sku.as_str()));
            body.insert(
                "waiting_room".into(),
                match room {
                    Some(room) => json!({
                        "admit_per_sec": room.admit_per_sec,
                        "admitted_ttl_secs": room.admitted_ttl_secs,
                        "queue_length_max": room.queue_length_max,
                    }),
                    None => Value::Null,
                },
            );
            ("sku.waiting_room_set", sku_subject(prefix, sku), None)
        }
        Event::Restocked { sku, quantity } => {
            body.insert("sku".into(), json!(sku.as_str()));
            body.insert("quantity".into(), json!(quantity));
            ("sku.restocked", sku_subject(prefix, sku), None)
        }
        Event::OrderReserved(order) => {
            body.insert("sku".into(), json!(order.sku.as_str()));
            body.insert("order_id".into(), json!(order.id.to_string()));
            body.insert("customer_id".into(), json!(order.customer.as_str()));
            body.insert("quantity".into(), json!(order.quantity));
            body.insert("status".into(), json!(order.status.as_str()));
            body.insert(
                "reserved_until".into(),
                json!(order.reserved_until.to_string()),
            );
            if let Some(key) = &order.idempotency_key {
                body.insert("idempotency_key".into(), json!(key.as_str()));
            }
            (
                "order.reserved",
                order_subject(prefix, Some(&order.sku)),
                Some(order.created_at),
            )
        }
        Event::OrderConfirmed { id, at } => {
            order_change(&mut body, *id, facts, "confirmed");
            (
                "order.confirmed",
                order_subject(prefix, facts.map(|f| &f.sku)),
                Some(*at),
            )
        }
        Event::OrderCancelled { id, at } => {
            order_change(&mut body, *id, facts, "cancelled");
            (
                "order.cancelled",
                order_subject(prefix, facts.map(|f| &f.sku)),
                Some(*at),
            )
        }
        Event::OrderExpired { id, at } => {
            order_change(&mut body, *id, facts, "expired");
            (
                "order.expired",
                order_subject(prefix, facts.map(|f| &f.sku)),
                Some(*at),
            )
        }
        Event::OrderShipped { id, at } => {
            order_change(&mut body, *id, facts, "shipped");
            (
                "order.shipped",
                order_subject(prefix, facts.map(|f| &f.sku)),
                Some(*at),
            )
        }
        Event::OrderChanged { id, change } => {
            body.insert("order_id".into(), json!(id.to_string()));
            body.insert("sku".into(), json!(change.to_sku.as_str()));
            body.insert("quantity".into(), json!(change.to_quantity));
            body.insert("from_sku".into(), json!(change.from_sku.as_str()));
            body.insert("from_quantity".into(), json!(change.from_quantity));
            if let Some(facts) = facts {
                body.insert("customer_id".into(), json!(facts.customer.as_str()));
            }
            // On the new SKU's subject; a consumer of the old SKU's subject
            // learns of it from the next event there (none: the order left).
            (
                "order.changed",
                order_subject(prefix, Some(&change.to_sku)),
                Some(change.at),
            )
        }
        Event::OrderAdopted { order, history } => {
            // The move, as consumers see it: a change to a SKU of another
            // shard (published when the new shard holds the order).
            let change = history.last()?;
            body.insert("order_id".into(), json!(order.id.to_string()));
            body.insert("sku".into(), json!(order.sku.as_str()));
            body.insert("quantity".into(), json!(order.quantity));
            body.insert("from_sku".into(), json!(change.from_sku.as_str()));
            body.insert("from_quantity".into(), json!(change.from_quantity));
            body.insert("customer_id".into(), json!(order.customer.as_str()));
            body.insert("status".into(), json!(order.status.as_str()));
            (
                "order.changed",
                order_subject(prefix, Some(&order.sku)),
                Some(change.at),
            )
        }
        // Steps of a move, and bookkeeping: not domain events.
        Event::OrderMoveStarted { .. }
        | Event::OrderMoveAborted { .. }
        | Event::OrderMovedOut { .. }
        | Event::OrdersRetired { .. }
        | Event::KeysForgotten { .. } => return None,
    };
    body.insert("kind".into(), json!(kind));
    if let Some(time) = time {
        body.insert("time".into(), json!(time.to_string()));
    }
    body.insert("published_at".into(), json!(published_at.to_string()));
    Some(Message {
        id,
        msg_id: id.text(),
        subject,
        body: Value::Object(body),
    })
}

/// The gap marker: records `after + 1 ..= through` were never published (the
/// log no longer held them when the publisher got there).
pub fn gap(
    prefix: &str,
    cluster: u64,
    epoch: u64,
    after: Lsn,
    through: Lsn,
    published_at: Timestamp,
) -> Message {
    // Its own id space (`gap-` ahead of the position), so it never takes
    // the id of a record.
    let id = EventId {
        cluster,
        epoch,
        lsn: through,
    };
    let msg_id = format!("gap-{}", id.text());
    let body = json!({
        "schema": SCHEMA_VERSION,
        "id": msg_id,
        "kind": "gap",
        "epoch": epoch,
        "from_lsn": after + 1,
        "through_lsn": through,
        "published_at": published_at.to_string(),
    });
    Message {
        id,
        msg_id,
        subject: format!("{prefix}.gaps"),
        body,
    }
}

fn order_change(
    body: &mut Map<String, Value>,
    id: OrderId,
    facts: Option<&OrderFacts>,
    status: &str,
) {
    body.insert("order_id".into(), json!(id.to_string()));
    body.insert("status".into(), json!(status));
    match facts {
        Some(facts) => {
            body.insert("sku".into(), json!(facts.sku.as_str()));
            body.insert("customer_id".into(), json!(facts.customer.as_str()));
            body.insert("quantity".into(), json!(facts.quantity));
        }
        None => {
            body.insert("sku".into(), Value::Null);
        }
    }
}

fn settings_json(settings: &flashgate_actors::domain::SkuSettings) -> Value {
    json!({
        "per_customer_limit": settings.per_customer_limit,
        "max_quantity_per_order": settings.max_quantity_per_order,
        "sale_starts_at": settings.sale_starts_at.map(|at| at.to_string()),
        "reservation_ttl_secs": settings.reservation_ttl_secs,
        "low_stock_threshold": settings.low_stock_threshold,
    })
}

/// `<prefix>.orders.<sku>`; an order whose SKU is unknown goes to
/// `<prefix>.orders._unknown` (never a valid SKU: `_unknown` is one, so the
/// body's `sku: null` is what tells).
fn order_subject(prefix: &str, sku: Option<&SkuId>) -> String {
    match sku {
        Some(sku) => format!("{prefix}.orders.{}", sku.as_str()),
        None => format!("{prefix}.orders._unknown"),
    }
}

fn sku_subject(prefix: &str, sku: &SkuId) -> String {
    format!("{prefix}.skus.{}", sku.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate_actors::domain::{Order, OrderStatus};

    fn id(lsn: Lsn) -> EventId {
        EventId {
            cluster: 0xabc,
            epoch: 2,
            lsn,
        }
    }

    fn order() -> Order {
        Order {
            id: OrderId {
                epoch: 2,
                shard: 1,
                number: 7,
            },
            sku: SkuId::parse("tee-m").unwrap(),
            quantity: 2,
            customer: CustomerId::parse("alice").unwrap(),
            status: OrderStatus::Reserved,
            created_at: Timestamp(1_000),
            reserved_until: Timestamp(61_000),
            updated_at: Timestamp(1_000),
            idempotency_key: None,
        }
    }

    /// Ids round-trip and carry the epoch: the same position in another
    /// epoch is another event.
    #[test]
    fn ids_round_trip_and_differ_by_epoch() {
        let text = id(42).text();
        assert_eq!(text, "0000000000000abc-2-42");
        assert_eq!(EventId::parse(&text), Some(id(42)));
        assert_ne!(
            EventId::parse("0000000000000abc-3-42"),
            Some(id(42)),
            "another epoch"
        );
        assert_eq!(EventId::parse("abc-2"), None);
        assert_eq!(EventId::parse("abc-2-42-1"), None);
        assert_eq!(EventId::parse("xyz-2-42"), None);
    }

    /// Every domain event becomes a message on its SKU's subject with the
    /// order's facts; bookkeeping records become none.
    #[test]
    fn records_become_messages() {
        let entry = |event| LogEntry {
            shard: 1,
            seq: 9,
            event,
        };
        let reserved = message(
            "fg",
            id(1),
            &entry(Event::OrderReserved(order())),
            None,
            Timestamp(5),
        )
        .unwrap();
        assert_eq!(reserved.subject, "fg.orders.tee-m");
        assert_eq!(reserved.body["kind"], "order.reserved");
        assert_eq!(reserved.body["order_id"], "2-1-7");
        assert_eq!(reserved.body["customer_id"], "alice");
        assert_eq!(reserved.body["quantity"], 2);
        assert_eq!(reserved.body["time"], "1970-01-01T00:00:01.000Z");
        assert_eq!(reserved.body["schema"], SCHEMA_VERSION);
        assert_eq!(reserved.body["id"], id(1).text());

        let facts = OrderFacts {
            sku: SkuId::parse("tee-m").unwrap(),
            customer: CustomerId::parse("alice").unwrap(),
            quantity: 2,
        };
        let shipped = Event::OrderShipped {
            id: order().id,
            at: Timestamp(9_000),
        };
        assert_eq!(order_needing_facts(&shipped), Some(order().id));
        let shipped = message("fg", id(2), &entry(shipped), Some(&facts), Timestamp(5)).unwrap();
        assert_eq!(shipped.subject, "fg.orders.tee-m");
        assert_eq!(shipped.body["kind"], "order.shipped");
        assert_eq!(shipped.body["status"], "shipped");
        assert_eq!(shipped.body["quantity"], 2);

        let unknown = Event::OrderCancelled {
            id: order().id,
            at: Timestamp(9_000),
        };
        let unknown = message("fg", id(3), &entry(unknown), None, Timestamp(5)).unwrap();
        assert_eq!(unknown.subject, "fg.orders._unknown");
        assert!(unknown.body["sku"].is_null());

        let restocked = Event::Restocked {
            sku: SkuId::parse("tee-m").unwrap(),
            quantity: 5,
        };
        let restocked = message("fg", id(4), &entry(restocked), None, Timestamp(5)).unwrap();
        assert_eq!(restocked.subject, "fg.skus.tee-m");
        assert_eq!(restocked.body["kind"], "sku.restocked");

        let retired = Event::OrdersRetired {
            ids: vec![order().id],
        };
        assert_eq!(
            message("fg", id(5), &entry(retired), None, Timestamp(5)),
            None
        );
    }

    /// A gap says which records are missing, on a subject of its own.
    #[test]
    fn a_gap_names_the_missing_records() {
        let marker = gap("fg", 0xabc, 2, 10, 20, Timestamp(0));
        assert_eq!(marker.subject, "fg.gaps");
        assert_eq!(marker.body["from_lsn"], 11);
        assert_eq!(marker.body["through_lsn"], 20);
        assert!(marker.body["id"].as_str().unwrap().starts_with("gap-"));
    }
}
