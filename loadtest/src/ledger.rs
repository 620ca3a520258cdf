//! `Ledger`: what the run knows about the orders it made: every
//! acknowledgement (an idempotency key answered with an order id), every
//! acknowledged order as it was acknowledged, what the run then did to it, and
//! the units whose placement outcome stayed unknown. The audit's input.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};

use flashgate_client::Order;

use crate::workload::AfterPayment;

/// What the run did to an acknowledged order after the payment delay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payment {
    /// Nothing (the order stays reserved until it expires).
    Nothing,
    /// The action was planned but the run ended before it was answered.
    Pending(AfterPayment),
    /// The server applied it.
    Done(AfterPayment),
    /// The server refused it with this code; nothing was applied.
    Refused(AfterPayment, String),
    /// No answer, even after retries: it may or may not have been applied.
    Unknown(AfterPayment),
}

/// Where the change the run made to an acknowledged order stands. The order
/// must hold the SKU and quantity of its last acknowledged change, or those
/// it was acknowledged with when no change was acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// None planned.
    Nothing,
    /// Planned to this SKU and quantity; the run ended before it was
    /// answered: the order may hold either.
    Pending { sku: String, quantity: u32 },
    /// Acknowledged: the order now holds this SKU and quantity.
    Done { sku: String, quantity: u32 },
    /// Refused with this code: the order holds what it was acknowledged with.
    Refused(String),
    /// No answer, even after retries: it may or may not have been applied.
    Unknown { sku: String, quantity: u32 },
}

/// Changes by outcome, as reported.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangeTotals {
    /// Changes the run planned on acknowledged orders.
    pub planned: u64,
    /// Answered with the changed order.
    pub acknowledged: u64,
    /// Refused, by code (`change_across_shards`, `sold_out`, ...).
    pub refused_by_code: std::collections::BTreeMap<String, u64>,
    /// No answer even after retries, or still in flight when the run ended.
    pub unknown: u64,
}

/// An order as it was acknowledged to the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcknowledgedOrder {
    pub order_id: String,
    pub sku: String,
    pub quantity: u32,
    pub customer_id: String,
    pub idempotency_key: String,
    pub payment: Payment,
    pub change: Change,
}

/// One acknowledgement: the key of the request and the order id answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acknowledgement {
    pub customer_id: String,
    pub idempotency_key: String,
    pub order_id: String,
}

/// Everything the audit needs from the run.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    /// Acknowledged orders by order id, each with the key of its first
    /// acknowledgement.
    pub orders: BTreeMap<String, AcknowledgedOrder>,
    /// The acknowledgements after each order's first (an order id answered
    /// again, under the same key or another): with `orders`, every
    /// acknowledgement the run got. Kept apart so the usual order, answered
    /// once, costs no second copy of its ids.
    pub acknowledgements: Vec<Acknowledgement>,
    /// Units per SKU of placements that got no answer even after retries: the
    /// server may hold orders the run does not know.
    pub unknown_units_by_sku: HashMap<String, u64>,
}

impl Ledger {
    /// Records an acknowledgement of `order` under `idempotency_key`, with what
    /// the run plans to do to it. Takes both by value: the ledger keeps their
    /// strings instead of copying them.
    pub fn acknowledged(&mut self, order: Order, idempotency_key: String, plan: AfterPayment) {
        let payment = match plan {
            AfterPayment::Nothing => Payment::Nothing,
            planned => Payment::Pending(planned),
        };
        match self.orders.entry(order.order_id) {
            Entry::Occupied(entry) => self.acknowledgements.push(Acknowledgement {
                customer_id: order.customer_id,
                idempotency_key,
                order_id: entry.key().clone(),
            }),
            Entry::Vacant(entry) => {
                let order_id = entry.key().clone();
                entry.insert(AcknowledgedOrder {
                    order_id,
                    sku: order.sku,
                    quantity: order.quantity,
                    customer_id: order.customer_id,
                    idempotency_key,
                    payment,
                    change: Change::Nothing,
                });
            }
        }
    }

    /// Every acknowledgement as (customer, key, order id): each order's first,
    /// then the later ones.
    pub fn every_acknowledgement(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.orders
            .values()
            .map(|order| {
                (
                    order.customer_id.as_str(),
                    order.idempotency_key.as_str(),
                    order.order_id.as_str(),
                )
            })
            .chain(self.acknowledgements.iter().map(|acknowledgement| {
                (
                    acknowledgement.customer_id.as_str(),
                    acknowledgement.idempotency_key.as_str(),
                    acknowledgement.order_id.as_str(),
                )
            }))
    }

    /// Records how the confirm or cancel of `order_id` ended.
    pub fn paid(&mut self, order_id: &str, payment: Payment) {
        if let Some(order) = self.orders.get_mut(order_id) {
            order.payment = payment;
        }
    }

    /// Records that the run will change `order_id` to `sku` x `quantity`.
    pub fn change_planned(&mut self, order_id: &str, sku: String, quantity: u32) {
        if let Some(order) = self.orders.get_mut(order_id) {
            order.change = Change::Pending { sku, quantity };
        }
    }

    /// Records how the change of `order_id` ended.
    pub fn changed(&mut self, order_id: &str, change: Change) {
        if let Some(order) = self.orders.get_mut(order_id) {
            order.change = change;
        }
    }

    /// The run's changes by outcome.
    pub fn change_totals(&self) -> ChangeTotals {
        let mut totals = ChangeTotals::default();
        for order in self.orders.values() {
            match &order.change {
                Change::Nothing => continue,
                Change::Done { .. } => totals.acknowledged += 1,
                Change::Refused(code) => {
                    *totals.refused_by_code.entry(code.clone()).or_default() += 1
                }
                Change::Pending { .. } | Change::Unknown { .. } => totals.unknown += 1,
            }
            totals.planned += 1;
        }
        totals
    }

    /// Records a placement whose outcome stays unknown.
    pub fn unknown(&mut self, sku: &str, quantity: u32) {
        *self.unknown_units_by_sku.entry(sku.to_owned()).or_default() += u64::from(quantity);
    }

    /// Orders the run confirmed (applied) and cancelled (applied).
    pub fn payments_done(&self) -> (u64, u64) {
        let mut confirmed = 0;
        let mut cancelled = 0;
        for order in self.orders.values() {
            match order.payment {
                Payment::Done(AfterPayment::Confirm) => confirmed += 1,
                Payment::Done(AfterPayment::Cancel) => cancelled += 1,
                _ => {}
            }
        }
        (confirmed, cancelled)
    }
}
