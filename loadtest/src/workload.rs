//! What the next order is: which SKU (uniform or Zipf popularity), which
//! customer, which idempotency key, and what happens after payment. Pure:
//! the random source is passed in.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};

use crate::scenario::{Popularity, Scenario};

/// What the run does to an acknowledged order after the payment delay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterPayment {
    Nothing,
    Confirm,
    Cancel,
}

/// The change the run makes to an order once it is acknowledged (before
/// its confirm or cancel): another quantity, another SKU of the run, or
/// both. `None` keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedChange {
    pub sku: Option<String>,
    pub quantity: Option<u32>,
    /// Unique in the run, like the order's.
    pub idempotency_key: String,
}

/// One order to place, before it is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedOrder {
    pub sku: String,
    pub quantity: u32,
    pub customer_id: String,
    pub idempotency_key: String,
    pub after_payment: AfterPayment,
    /// Changed once acknowledged (`--change-ratio`).
    pub change: Option<PlannedChange>,
    /// The waiting room's admission, once the order was admitted.
    pub queue_ticket: Option<String>,
}

/// Draws orders. One per task (it is not shared), seeded from the run's seed
/// and the task's index so a seeded run is repeatable per task.
pub struct Workload {
    rng: StdRng,
    run_id: String,
    sku_names: std::sync::Arc<[String]>,
    zipf: Option<Zipf<f64>>,
    customers: u32,
    quantity: u32,
    confirm_ratio: f64,
    cancel_ratio: f64,
    change_ratio: f64,
}

impl Workload {
    /// `sku_names` are the run's SKUs, most popular first under Zipf.
    pub fn new(
        scenario: &Scenario,
        run_id: &str,
        sku_names: std::sync::Arc<[String]>,
        seed: u64,
    ) -> Workload {
        assert!(!sku_names.is_empty(), "a workload needs SKUs");
        let zipf = match scenario.popularity {
            Popularity::Uniform => None,
            // Validated: at least one SKU and a positive exponent.
            Popularity::Zipf => Zipf::new(sku_names.len() as f64, scenario.zipf_exponent).ok(),
        };
        Workload {
            rng: StdRng::seed_from_u64(seed),
            run_id: run_id.to_owned(),
            sku_names,
            zipf,
            customers: scenario.customers.max(1),
            quantity: scenario.quantity,
            confirm_ratio: scenario.confirm_ratio,
            cancel_ratio: scenario.cancel_ratio,
            change_ratio: scenario.change_ratio,
        }
    }

    /// The order with sequence number `sequence` (unique in the run, so its
    /// idempotency key is unique too).
    pub fn next(&mut self, sequence: u64) -> PlannedOrder {
        let sku_index = match &self.zipf {
            // Zipf samples 1..=n as a float.
            Some(zipf) => (zipf.sample(&mut self.rng) as usize).saturating_sub(1),
            None => self.rng.random_range(0..self.sku_names.len()),
        }
        .min(self.sku_names.len() - 1);
        let customer = self.rng.random_range(0..self.customers);
        let draw: f64 = self.rng.random();
        let after_payment = if draw < self.confirm_ratio {
            AfterPayment::Confirm
        } else if draw < self.confirm_ratio + self.cancel_ratio {
            AfterPayment::Cancel
        } else {
            AfterPayment::Nothing
        };
        let change = (self.change_ratio > 0.0 && self.rng.random::<f64>() < self.change_ratio)
            .then(|| self.change(sku_index, sequence));
        PlannedOrder {
            sku: self.sku_names[sku_index].clone(),
            quantity: self.quantity,
            customer_id: numbered(&self.run_id, "-c", u64::from(customer)),
            idempotency_key: numbered(&self.run_id, "-k", sequence),
            after_payment,
            change,
            queue_ticket: None,
        }
    }

    /// A change of the order of SKU `sku_index`: another quantity (one less,
    /// or one more for a single unit), the next SKU of the run, or both,
    /// each a third of the time (the quantity only, with one SKU).
    fn change(&mut self, sku_index: usize, sequence: u64) -> PlannedChange {
        let other_quantity = if self.quantity > 1 {
            self.quantity - 1
        } else {
            self.quantity + 1
        };
        let other_sku = || self.sku_names[(sku_index + 1) % self.sku_names.len()].clone();
        let kind = if self.sku_names.len() > 1 {
            self.rng.random_range(0..3u8)
        } else {
            0
        };
        let (sku, quantity) = match kind {
            0 => (None, Some(other_quantity)),
            1 => (Some(other_sku()), None),
            _ => (Some(other_sku()), Some(other_quantity)),
        };
        PlannedChange {
            sku,
            quantity,
            idempotency_key: numbered(&self.run_id, "-x", sequence),
        }
    }
}

/// `<run_id><infix><number>`, built in one allocation (this runs twice per
/// order: `format!` would cost several times as much).
fn numbered(run_id: &str, infix: &str, number: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut text = String::with_capacity(run_id.len() + infix.len() + digits.len() - at);
    text.push_str(run_id);
    text.push_str(infix);
    for &digit in &digits[at..] {
        text.push(char::from(digit));
    }
    text
}

/// The SKU names of a run: `<prefix>-<i>`.
pub fn sku_names(prefix: &str, count: u32) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix}-{index}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_are_the_run_id_infix_and_decimal_number() {
        assert_eq!(numbered("run", "-k", 0), "run-k0");
        assert_eq!(numbered("run", "-c", 9_041), "run-c9041");
        assert_eq!(numbered("", "-k", u64::MAX), format!("-k{}", u64::MAX));
    }

    #[test]
    fn changes_ask_for_something_else_under_keys_of_their_own() {
        let scenario = Scenario {
            change_ratio: 1.0,
            quantity: 1,
            ..Scenario::default()
        };
        let names: std::sync::Arc<[String]> = sku_names("s", 3).into();
        let mut workload = Workload::new(&scenario, "run", names.clone(), 11);
        let orders: Vec<PlannedOrder> = (0..300).map(|sequence| workload.next(sequence)).collect();
        let mut keys = std::collections::HashSet::new();
        let (mut skus, mut quantities) = (0, 0);
        for order in &orders {
            assert!(keys.insert(order.idempotency_key.clone()));
            let change = order
                .change
                .as_ref()
                .expect("every order changes at ratio 1");
            assert!(keys.insert(change.idempotency_key.clone()), "{change:?}");
            assert!(change.sku.is_some() || change.quantity.is_some());
            if let Some(sku) = &change.sku {
                assert_ne!(sku, &order.sku);
                assert!(names.contains(sku));
                skus += 1;
            }
            if let Some(quantity) = change.quantity {
                assert_eq!(quantity, 2);
                quantities += 1;
            }
        }
        assert!(skus > 0 && quantities > 0, "{skus} {quantities}");

        // One SKU: only the quantity changes. No ratio: nothing changes.
        let one: std::sync::Arc<[String]> = sku_names("s", 1).into();
        let mut workload = Workload::new(&scenario, "run", one, 11);
        assert!((0..50).all(|sequence| workload
            .next(sequence)
            .change
            .is_some_and(|change| change.sku.is_none())));
        let mut workload = Workload::new(&Scenario::default(), "run", names, 11);
        assert!((0..50).all(|sequence| workload.next(sequence).change.is_none()));
    }

    #[test]
    fn zipf_prefers_the_first_sku_and_keys_are_unique() {
        let scenario = Scenario {
            popularity: Popularity::Zipf,
            zipf_exponent: 1.5,
            confirm_ratio: 0.5,
            ..Scenario::default()
        };
        let names: std::sync::Arc<[String]> = sku_names("s", 10).into();
        let mut workload = Workload::new(&scenario, "run", names, 7);
        let orders: Vec<PlannedOrder> = (0..2000).map(|sequence| workload.next(sequence)).collect();
        let first = orders.iter().filter(|order| order.sku == "s-0").count();
        let last = orders.iter().filter(|order| order.sku == "s-9").count();
        assert!(first > last, "s-0 {first} times, s-9 {last} times");
        let keys: std::collections::HashSet<_> =
            orders.iter().map(|order| &order.idempotency_key).collect();
        assert_eq!(keys.len(), orders.len());
        assert!(orders
            .iter()
            .any(|order| order.after_payment == AfterPayment::Confirm));
        assert!(orders
            .iter()
            .all(|order| order.after_payment != AfterPayment::Cancel));
    }
}
