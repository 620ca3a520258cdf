//! The audit: pure checks over what the run recorded (`Ledger`) and what it
//! read back from the server afterwards. No I/O, so every violation kind is
//! unit-tested from crafted inputs.
//!
//! It flags:
//! - `oversell`: a SKU's sold + reserved exceeds its total, or the units of the
//!   run's acknowledged orders that are still live (reserved or confirmed)
//!   exceed it;
//! - `missing_order`: an acknowledged order the server does not know;
//! - `changed_order`: an acknowledged order whose customer differs from what
//!   was acknowledged, or whose SKU and quantity differ from its last
//!   acknowledged change (from what the order was acknowledged with when no
//!   change was acknowledged; either, when a change's outcome is unknown);
//! - `status_mismatch`: an order whose status cannot follow from what the run
//!   did to it (e.g. cancelled though the run only confirmed it);
//! - `duplicate_order_id`: two order ids acknowledged for one idempotency key;
//! - `counter_mismatch`: when the run is the only writer (it created the
//!   SKUs), a SKU's reserved or sold units differ from the orders the run
//!   knows (at least those, when some placements' outcome stayed unknown);
//! - `read_back_failed`: an order or SKU that could not be read back, so the
//!   run cannot vouch for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use flashgate_client::{Order, OrderStatus, Sku};
use serde::Serialize;

use crate::ledger::{Change, Ledger, Payment};
use crate::workload::AfterPayment;

/// Violations kept in a report at most (the count is always exact).
pub const VIOLATIONS_LISTED_MAX: usize = 1000;

/// What reading an order back gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadBack<T> {
    Found(T),
    /// The server answered that it does not exist.
    Missing,
    /// No usable answer (transport error, other refusal): the error.
    Failed(String),
}

/// The kinds of violation, as reported (`snake_case`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    Oversell,
    MissingOrder,
    ChangedOrder,
    StatusMismatch,
    DuplicateOrderId,
    CounterMismatch,
    ReadBackFailed,
    /// The read-back did not finish within `--audit-timeout`.
    AuditIncomplete,
}

/// One violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// What was expected and what was found.
    pub detail: String,
}

/// The audit's verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// True exactly when no violation was found.
    pub passed: bool,
    /// Whether the counter check ran (the run was the only writer).
    pub sole_writer: bool,
    pub orders_checked: u64,
    pub skus_checked: u64,
    pub violation_count: u64,
    /// Violation counts by kind.
    pub violations_by_kind: BTreeMap<ViolationKind, u64>,
    /// The violations, at most `VIOLATIONS_LISTED_MAX`.
    pub violations: Vec<Violation>,
}

/// The statuses an order may have after what the run did to it.
fn allowed_statuses(payment: &Payment) -> &'static [OrderStatus] {
    use OrderStatus::{Cancelled, Confirmed, Expired, Reserved};
    match payment {
        Payment::Nothing | Payment::Refused(..) => &[Reserved, Expired],
        Payment::Done(AfterPayment::Confirm) => &[Confirmed],
        Payment::Done(AfterPayment::Cancel) => &[Cancelled],
        Payment::Pending(AfterPayment::Confirm) | Payment::Unknown(AfterPayment::Confirm) => {
            &[Reserved, Confirmed, Expired]
        }
        Payment::Pending(AfterPayment::Cancel) | Payment::Unknown(AfterPayment::Cancel) => {
            &[Reserved, Cancelled, Expired]
        }
        Payment::Done(AfterPayment::Nothing)
        | Payment::Pending(AfterPayment::Nothing)
        | Payment::Unknown(AfterPayment::Nothing) => &[Reserved, Expired],
    }
}

/// Audits a run. `orders` holds the read-back of every order in the ledger
/// (an absent entry counts as a failed read); `skus` the read-back of every
/// SKU the run touched; `sole_writer` whether the run was the only writer of
/// those SKUs (then counters must match the ledger).
/// The verdict of an audit cut short by its bound: failed, with one
/// `audit_incomplete` violation. An audit that did not read everything back
/// proves nothing, so it never passes.
pub fn audit_incomplete(orders_acknowledged: u64, bound: std::time::Duration) -> AuditReport {
    let kind = ViolationKind::AuditIncomplete;
    AuditReport {
        passed: false,
        sole_writer: false,
        orders_checked: 0,
        skus_checked: 0,
        violation_count: 1,
        violations_by_kind: BTreeMap::from([(kind, 1)]),
        violations: vec![Violation {
            kind,
            sku: None,
            order_id: None,
            detail: format!(
                "reading back the {orders_acknowledged} acknowledged orders and the SKUs did not finish within --audit-timeout ({} ms); raise it to audit this run",
                bound.as_millis()
            ),
        }],
    }
}

pub fn audit(
    ledger: &Ledger,
    orders: &HashMap<String, ReadBack<Order>>,
    skus: &BTreeMap<String, ReadBack<Sku>>,
    sole_writer: bool,
) -> AuditReport {
    let mut violations = Vec::new();
    let mut flag = |kind, sku: Option<&str>, order_id: Option<&str>, detail: String| {
        violations.push(Violation {
            kind,
            sku: sku.map(str::to_owned),
            order_id: order_id.map(str::to_owned),
            detail,
        })
    };

    // One idempotency key, one order id.
    let mut ids_by_key: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for (customer, key, order_id) in ledger.every_acknowledgement() {
        ids_by_key
            .entry((customer, key))
            .or_default()
            .insert(order_id);
    }
    for ((customer, key), ids) in &ids_by_key {
        if ids.len() > 1 {
            flag(
                ViolationKind::DuplicateOrderId,
                None,
                ids.first().copied(),
                format!("customer {customer} key {key} was acknowledged as orders {ids:?}"),
            );
        }
    }

    // Every acknowledged order, as acknowledged, in a status the run explains.
    // Live units per SKU: reserved and confirmed, from what was read back.
    let mut reserved_units: HashMap<&str, u64> = HashMap::new();
    let mut sold_units: HashMap<&str, u64> = HashMap::new();
    for (order_id, acknowledged) in &ledger.orders {
        let sku = Some(acknowledged.sku.as_str());
        let order = match orders.get(order_id) {
            Some(ReadBack::Found(order)) => order,
            Some(ReadBack::Missing) => {
                flag(
                    ViolationKind::MissingOrder,
                    sku,
                    Some(order_id),
                    "acknowledged, but the server does not know it".into(),
                );
                continue;
            }
            Some(ReadBack::Failed(error)) => {
                flag(
                    ViolationKind::ReadBackFailed,
                    sku,
                    Some(order_id),
                    format!("cannot read it back: {error}"),
                );
                continue;
            }
            None => {
                flag(
                    ViolationKind::ReadBackFailed,
                    sku,
                    Some(order_id),
                    "it was not read back".into(),
                );
                continue;
            }
        };
        // What the order may hold: the last acknowledged change, else what
        // it was acknowledged with; either while a change's outcome is
        // unknown.
        let placed = (acknowledged.sku.as_str(), acknowledged.quantity);
        let (expected, also) = match &acknowledged.change {
            Change::Nothing | Change::Refused(_) => (placed, None),
            Change::Done { sku, quantity } => ((sku.as_str(), *quantity), None),
            Change::Pending { sku, quantity } | Change::Unknown { sku, quantity } => {
                (placed, Some((sku.as_str(), *quantity)))
            }
        };
        let held = (order.sku.as_str(), order.quantity);
        if (held != expected && Some(held) != also) || order.customer_id != acknowledged.customer_id
        {
            flag(
                ViolationKind::ChangedOrder,
                sku,
                Some(order_id),
                format!(
                    "acknowledged as {} x{} for {} (change: {:?}), read back as {} x{} for {}",
                    acknowledged.sku,
                    acknowledged.quantity,
                    acknowledged.customer_id,
                    acknowledged.change,
                    order.sku,
                    order.quantity,
                    order.customer_id
                ),
            );
        }
        let allowed = allowed_statuses(&acknowledged.payment);
        if !allowed.contains(&order.status) {
            flag(
                ViolationKind::StatusMismatch,
                sku,
                Some(order_id),
                format!(
                    "status {} after {:?}; expected one of {:?}",
                    order.status.as_str(),
                    acknowledged.payment,
                    allowed
                        .iter()
                        .map(|status| status.as_str())
                        .collect::<Vec<_>>()
                ),
            );
        }
        let units = u64::from(order.quantity);
        match order.status {
            OrderStatus::Reserved => *reserved_units.entry(&order.sku).or_default() += units,
            OrderStatus::Confirmed | OrderStatus::Shipped => {
                *sold_units.entry(&order.sku).or_default() += units
            }
            OrderStatus::Cancelled | OrderStatus::Expired => {}
        }
    }

    // Every SKU: no oversell; with one writer, counters match the orders.
    for (name, read_back) in skus {
        let sku = match read_back {
            ReadBack::Found(sku) => sku,
            ReadBack::Missing => {
                flag(
                    ViolationKind::ReadBackFailed,
                    Some(name),
                    None,
                    "the SKU is unknown to the server".into(),
                );
                continue;
            }
            ReadBack::Failed(error) => {
                flag(
                    ViolationKind::ReadBackFailed,
                    Some(name),
                    None,
                    format!("cannot read it back: {error}"),
                );
                continue;
            }
        };
        let reserved = reserved_units.get(name.as_str()).copied().unwrap_or(0);
        let sold = sold_units.get(name.as_str()).copied().unwrap_or(0);
        if sku.sold.saturating_add(sku.reserved) > sku.total {
            flag(
                ViolationKind::Oversell,
                Some(name),
                None,
                format!(
                    "sold {} + reserved {} > total {}",
                    sku.sold, sku.reserved, sku.total
                ),
            );
        }
        if reserved + sold > sku.total {
            flag(
                ViolationKind::Oversell,
                Some(name),
                None,
                format!(
                    "the run holds {} live acknowledged units, the SKU has {} in total",
                    reserved + sold,
                    sku.total
                ),
            );
        }
        if sole_writer {
            let unknown = ledger.unknown_units_by_sku.get(name).copied().unwrap_or(0);
            let agrees = |counter: u64, known: u64| {
                if unknown == 0 {
                    counter == known
                } else {
                    counter >= known && counter <= known + unknown
                }
            };
            if !agrees(sku.reserved, reserved) || !agrees(sku.sold, sold) {
                flag(
                    ViolationKind::CounterMismatch,
                    Some(name),
                    None,
                    format!(
                        "counters reserved {} sold {}; the run's orders reserve {reserved} and sold {sold} (plus up to {unknown} units of unanswered placements)",
                        sku.reserved, sku.sold
                    ),
                );
            }
        }
    }

    let mut violations_by_kind = BTreeMap::new();
    for violation in &violations {
        *violations_by_kind.entry(violation.kind).or_default() += 1;
    }
    let violation_count = violations.len() as u64;
    violations.truncate(VIOLATIONS_LISTED_MAX);
    AuditReport {
        passed: violation_count == 0,
        sole_writer,
        orders_checked: ledger.orders.len() as u64,
        skus_checked: skus.len() as u64,
        violation_count,
        violations_by_kind,
        violations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKU: &str = "shoe-0";

    fn order(id: &str, customer: &str, status: OrderStatus) -> Order {
        Order {
            order_id: id.into(),
            sku: SKU.into(),
            quantity: 1,
            customer_id: customer.into(),
            status,
            created_at_ms: 1,
            reserved_until_ms: 2,
            updated_at_ms: 1,
        }
    }

    fn sku(total: u64, reserved: u64, sold: u64) -> Sku {
        Sku {
            sku: SKU.into(),
            total,
            available: total.saturating_sub(reserved + sold),
            reserved,
            sold,
            per_customer_limit: None,
            max_quantity_per_order: 10,
            sale_starts_at_ms: None,
            reservation_ttl_secs: 600,
            low_stock_threshold: 0,
            low_stock: false,
        }
    }

    /// A clean run: order 1 reserved, order 2 confirmed, order 3 cancelled, on
    /// a SKU of 2 units whose counters say reserved 1, sold 1.
    struct Clean {
        ledger: Ledger,
        orders: HashMap<String, ReadBack<Order>>,
        skus: BTreeMap<String, ReadBack<Sku>>,
    }

    fn clean() -> Clean {
        let mut ledger = Ledger::default();
        let mut orders = HashMap::new();
        let plans = [
            ("1", AfterPayment::Nothing, OrderStatus::Reserved),
            ("2", AfterPayment::Confirm, OrderStatus::Confirmed),
            ("3", AfterPayment::Cancel, OrderStatus::Cancelled),
        ];
        for (id, plan, status) in plans {
            let customer = format!("c{id}");
            ledger.acknowledged(
                order(id, &customer, OrderStatus::Reserved),
                format!("k{id}"),
                plan,
            );
            if plan != AfterPayment::Nothing {
                ledger.paid(id, Payment::Done(plan));
            }
            orders.insert(id.to_owned(), ReadBack::Found(order(id, &customer, status)));
        }
        let skus = BTreeMap::from([(SKU.to_owned(), ReadBack::Found(sku(2, 1, 1)))]);
        Clean {
            ledger,
            orders,
            skus,
        }
    }

    fn kinds(report: &AuditReport) -> Vec<ViolationKind> {
        report.violations.iter().map(|v| v.kind).collect()
    }

    #[test]
    fn a_clean_run_passes() {
        let run = clean();
        let report = audit(&run.ledger, &run.orders, &run.skus, true);
        assert!(report.passed, "{:?}", report.violations);
        assert_eq!(report.orders_checked, 3);
        assert_eq!(report.skus_checked, 1);
    }

    #[test]
    fn counters_above_total_are_an_oversell() {
        let mut run = clean();
        run.skus.insert(SKU.into(), ReadBack::Found(sku(2, 2, 1)));
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(kinds(&report), [ViolationKind::Oversell]);
        assert!(!report.passed);
    }

    #[test]
    fn more_live_acknowledged_units_than_stock_are_an_oversell() {
        let mut run = clean();
        // The counters look fine, but the run holds 2 live units of a 1-unit SKU.
        run.skus.insert(SKU.into(), ReadBack::Found(sku(1, 0, 1)));
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(kinds(&report), [ViolationKind::Oversell]);
    }

    #[test]
    fn a_missing_order_is_flagged() {
        let mut run = clean();
        run.orders.insert("1".into(), ReadBack::Missing);
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(kinds(&report), [ViolationKind::MissingOrder]);
    }

    #[test]
    fn a_changed_order_is_flagged() {
        let mut run = clean();
        let mut changed = order("1", "c1", OrderStatus::Reserved);
        changed.quantity = 2;
        run.orders.insert("1".into(), ReadBack::Found(changed));
        // Enough stock that the extra unit is not also an oversell.
        run.skus.insert(SKU.into(), ReadBack::Found(sku(5, 1, 1)));
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(kinds(&report), [ViolationKind::ChangedOrder]);

        let mut run = clean();
        run.orders.insert(
            "1".into(),
            ReadBack::Found(order("1", "somebody-else", OrderStatus::Reserved)),
        );
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(kinds(&report), [ViolationKind::ChangedOrder]);
    }

    #[test]
    fn an_order_must_hold_its_last_acknowledged_change() {
        let moved = |quantity| {
            let mut order = order("1", "c1", OrderStatus::Reserved);
            order.sku = "shoe-1".into();
            order.quantity = quantity;
            order
        };
        let skus = |run: &mut Clean| {
            run.skus.insert(SKU.into(), ReadBack::Found(sku(5, 0, 1)));
            run.skus.insert(
                "shoe-1".into(),
                ReadBack::Found(Sku {
                    sku: "shoe-1".into(),
                    ..sku(5, 2, 0)
                }),
            );
        };
        // Acknowledged and applied: passes.
        let mut run = clean();
        skus(&mut run);
        run.ledger.changed(
            "1",
            Change::Done {
                sku: "shoe-1".into(),
                quantity: 2,
            },
        );
        run.orders.insert("1".into(), ReadBack::Found(moved(2)));
        let report = audit(&run.ledger, &run.orders, &run.skus, true);
        assert!(report.passed, "{:?}", report.violations);
        // Acknowledged but not applied: flagged.
        run.orders.insert(
            "1".into(),
            ReadBack::Found(order("1", "c1", OrderStatus::Reserved)),
        );
        run.skus.insert(SKU.into(), ReadBack::Found(sku(5, 1, 1)));
        run.skus.insert(
            "shoe-1".into(),
            ReadBack::Found(Sku {
                sku: "shoe-1".into(),
                ..sku(5, 0, 0)
            }),
        );
        let report = audit(&run.ledger, &run.orders, &run.skus, true);
        assert_eq!(kinds(&report), [ViolationKind::ChangedOrder]);
        // Unknown outcome: either is fine, anything else is not.
        run.ledger.changed(
            "1",
            Change::Unknown {
                sku: "shoe-1".into(),
                quantity: 2,
            },
        );
        let report = audit(&run.ledger, &run.orders, &run.skus, true);
        assert!(report.passed, "{:?}", report.violations);
        run.orders.insert("1".into(), ReadBack::Found(moved(3)));
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert!(kinds(&report).contains(&ViolationKind::ChangedOrder));
        // Refused: the order as placed.
        run.ledger.changed("1", Change::Refused("sold_out".into()));
        run.orders.insert("1".into(), ReadBack::Found(moved(2)));
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(kinds(&report), [ViolationKind::ChangedOrder]);
    }

    #[test]
    fn a_status_the_run_cannot_explain_is_flagged() {
        let mut run = clean();
        // Confirmed by the run, read back cancelled.
        run.orders.insert(
            "2".into(),
            ReadBack::Found(order("2", "c2", OrderStatus::Cancelled)),
        );
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(kinds(&report), [ViolationKind::StatusMismatch]);
    }

    #[test]
    fn two_order_ids_for_one_key_are_flagged() {
        let mut run = clean();
        // A retry of order 1's key answered with another order id.
        run.ledger
            .acknowledgements
            .push(crate::ledger::Acknowledgement {
                customer_id: "c1".into(),
                idempotency_key: "k1".into(),
                order_id: "9".into(),
            });
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(kinds(&report), [ViolationKind::DuplicateOrderId]);
    }

    #[test]
    fn counters_that_disagree_with_the_orders_are_flagged_for_a_sole_writer() {
        let mut run = clean();
        run.skus.insert(SKU.into(), ReadBack::Found(sku(5, 2, 1)));
        let report = audit(&run.ledger, &run.orders, &run.skus, true);
        assert_eq!(kinds(&report), [ViolationKind::CounterMismatch]);
        // Another writer may explain the difference: no check then.
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert!(report.passed, "{:?}", report.violations);
        // Unanswered placements may explain it too, up to their units.
        run.ledger.unknown(SKU, 1);
        let report = audit(&run.ledger, &run.orders, &run.skus, true);
        assert!(report.passed, "{:?}", report.violations);
    }

    #[test]
    fn unreadable_orders_and_skus_fail_the_audit() {
        let mut run = clean();
        run.orders
            .insert("1".into(), ReadBack::Failed("timeout".into()));
        run.skus
            .insert(SKU.into(), ReadBack::Failed("timeout".into()));
        let report = audit(&run.ledger, &run.orders, &run.skus, false);
        assert_eq!(
            kinds(&report),
            [ViolationKind::ReadBackFailed, ViolationKind::ReadBackFailed]
        );
    }
}
