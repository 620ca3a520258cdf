//! What clients were told, and the audit of a node against it, for tests that
//! inject faults into the real binary.
//!
//! - `History`: every answer a client got: acknowledged orders (first answers
//!   and replays of their idempotency keys), confirms and cancels and how they
//!   ended, placements whose outcome stayed unknown. It outlives the processes
//!   it was told by, so one history spans kills, restarts and failovers.
//! - `Load`: client threads placing orders with idempotency keys, confirming
//!   and cancelling some of them (sometimes long after, across restarts) and
//!   retrying some keys, recording every answer in a `History`.
//! - `History::settle`: after a restart or a failover, retries what has no
//!   known outcome under its key, so that the history again names every order
//!   the node may hold.
//! - `audit`: reads every order and SKU back and runs the load tester's pure
//!   audit (`flashgate_loadtest::audit`) over them, with the checks it leaves
//!   to its caller: every SKU's counters add up to its stock, and no order
//!   expired before its reservation ran out.
//! - `Rng`: a small seeded generator, so a failing run replays from its seed.
//! - `Launch::start_and_kill_after`: a start SIGKILLed at a chosen moment,
//!   listening or not (a kill during recovery).
//! - `RunLogs`: the logs of every process of a run, kept when it fails.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flashgate_client::{Order, OrderStatus, Sku};
use flashgate_loadtest::audit::{self as pure, AuditReport, ReadBack, Violation, ViolationKind};
use flashgate_loadtest::ledger::{AcknowledgedOrder, Acknowledgement, Change, Ledger, Payment};
use flashgate_loadtest::workload::AfterPayment;
use serde_json::{json, Value};

use super::{read_to_string_lossy, Client, Launch, Server, LISTENING_PREFIX};

/// Units one order asks for at most (at least 1).
pub const ORDER_QUANTITY_MAX: u64 = 3;
/// Customers per load thread: their orders share a customer id, so a key is
/// only unique per customer.
const CUSTOMERS_PER_THREAD: usize = 5;
/// Of a load thread's steps, the percentage that retries a key it was
/// already answered for.
const RETRY_STEP_PERCENT: u64 = 10;
/// Of a load thread's steps, the percentage that confirms or cancels an order
/// acknowledged earlier (by any thread, before or after a restart).
const PAYMENT_STEP_PERCENT: u64 = 35;
/// Of acknowledged orders, the percentage planned to be confirmed, and to be
/// cancelled; the rest stay reserved until they expire.
const CONFIRM_PERCENT: u64 = 45;
const CANCEL_PERCENT: u64 = 25;
/// Keys of acknowledged orders retried by `settle`, at most.
pub const KEYS_RETRIED_BY_SETTLE: usize = 20;
/// Threads reading orders back in `audit`.
const READ_BACK_THREADS: usize = 4;
/// Read-backs `audit` tries, at most, to find one during which no SKU changed.
const SNAPSHOT_ATTEMPTS_MAX: usize = 20;
/// Violations quoted in a failure message, at most.
const VIOLATIONS_QUOTED_MAX: usize = 20;

/// A seeded SplitMix64 generator: small, fast, and the same sequence for the
/// same seed on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..bound`; `bound` must not be 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0, "Rng::below(0)");
        self.next_u64() % bound
    }

    /// True with a chance of `percent` in 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration in `low..=high`, to the millisecond.
    pub fn duration(&mut self, low: Duration, high: Duration) -> Duration {
        let low_ms = low.as_millis() as u64;
        let high_ms = (high.as_millis() as u64).max(low_ms);
        Duration::from_millis(low_ms + self.below(high_ms - low_ms + 1))
    }

    /// A generator for another thread, derived from this one.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }
}

/// The seed in environment variable `name` (decimal), or a fresh one from the
/// clock; printed to stderr either way, with how to replay it.
pub fn seed_from_env(name: &str) -> u64 {
    let seed = match std::env::var(name) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a decimal seed")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|since| since.as_nanos() as u64)
            .unwrap_or(0),
    };
    eprintln!("seed {seed} (replay with {name}={seed})");
    seed
}

/// One `POST /v1/orders`: its body and its idempotency key, the same for the
/// first try and every retry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    pub sku: String,
    pub quantity: u64,
    pub customer: String,
    pub idempotency_key: String,
}

impl Placement {
    pub fn body(&self) -> Value {
        json!({ "sku": self.sku, "quantity": self.quantity, "customer_id": self.customer })
    }

    /// Sends it once; `Err` when no answer came back.
    pub fn send(&self, client: &Client) -> Result<(u16, Value), String> {
        client.try_post_json(
            "/v1/orders",
            &self.body(),
            &[("Idempotency-Key", &self.idempotency_key)],
        )
    }
}

/// An acknowledged order as the history keeps it.
#[derive(Clone, Debug)]
struct Acknowledged {
    placement: Placement,
    order: AcknowledgedOrder,
    /// When its reservation runs out, as acknowledged.
    reserved_until_ms: u64,
}

#[derive(Debug, Default)]
struct Record {
    orders: BTreeMap<String, Acknowledged>,
    acknowledgements: Vec<Acknowledgement>,
    /// Placements without an answer (or with a 5xx): the order may exist.
    unknown: Vec<Placement>,
    /// Acknowledged orders still to be confirmed or cancelled, oldest first.
    unpaid: VecDeque<(String, AfterPayment)>,
}

/// Every answer clients got, shared by the threads of any number of loads.
#[derive(Clone, Debug, Default)]
pub struct History(Arc<Mutex<Record>>);

/// What a history holds, for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Orders acknowledged (one per order id).
    pub orders: usize,
    /// Acknowledgements, replays of a key included.
    pub acknowledgements: usize,
    /// Confirms and cancels answered 200.
    pub confirms: u64,
    pub cancels: u64,
    /// Placements whose outcome is still unknown.
    pub unknown: usize,
}

/// How one answer to a confirm or cancel ends up in the history.
fn payment_of(plan: AfterPayment, answer: &Result<(u16, Value), String>) -> Payment {
    match answer {
        Ok((200, _)) => Payment::Done(plan),
        // A refusal: nothing was applied.
        Ok((status, body)) if (400..500).contains(status) => {
            Payment::Refused(plan, body["code"].as_str().unwrap_or("no code").to_owned())
        }
        // 5xx (e.g. `storage_failed`, `standby_unavailable`) or no answer: it
        // may have been applied.
        _ => Payment::Unknown(plan),
    }
}

fn transition_path(order_id: &str, plan: AfterPayment) -> String {
    let action = match plan {
        AfterPayment::Confirm => "confirm",
        AfterPayment::Cancel => "cancel",
        AfterPayment::Nothing => unreachable!("no request for an order left alone"),
    };
    format!("/v1/orders/{order_id}/{action}")
}

impl History {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.0.lock().expect("the history lock")
    }

    /// Records that `placement` was answered 200/201 with `body`; `plan` is
    /// what to do to the order later, if it is new.
    pub fn acknowledged(&self, placement: &Placement, body: &Value, plan: AfterPayment) {
        let order = order_from_json(body)
            .unwrap_or_else(|error| panic!("the answer to {placement:?}: {error}: {body}"));
        let mut record = self.record();
        record.acknowledgements.push(Acknowledgement {
            customer_id: placement.customer.clone(),
            idempotency_key: placement.idempotency_key.clone(),
            order_id: order.order_id.clone(),
        });
        if record.orders.contains_key(&order.order_id) {
            return;
        }
        record.orders.insert(
            order.order_id.clone(),
            Acknowledged {
                placement: placement.clone(),
                order: AcknowledgedOrder {
                    order_id: order.order_id.clone(),
                    sku: order.sku.clone(),
                    quantity: order.quantity,
                    customer_id: order.customer_id.clone(),
                    idempotency_key: placement.idempotency_key.clone(),
                    payment: Payment::Nothing,
                    change: Change::Nothing,
                },
                reserved_until_ms: order.reserved_until_ms,
            },
        );
        if plan != AfterPayment::Nothing {
            record.unpaid.push_back((order.order_id, plan));
        }
    }

    /// Records a placement with no known outcome.
    pub fn unknown(&self, placement: Placement) {
        self.record().unknown.push(placement);
    }

    /// The oldest acknowledged order still to be confirmed or cancelled.
    fn take_unpaid(&self) -> Option<(String, AfterPayment)> {
        self.record().unpaid.pop_front()
    }

    /// Sends `plan` for `order_id` and records how it ended; `Err` when no
    /// answer came back.
    fn pay(&self, client: &Client, order_id: &str, plan: AfterPayment) -> Result<(), String> {
        let answer = client.try_post_json(&transition_path(order_id, plan), &json!({}), &[]);
        let payment = payment_of(plan, &answer);
        if let (Payment::Done(_), Ok((_, body))) = (&payment, &answer) {
            let expected = match plan {
                AfterPayment::Confirm => "confirmed",
                _ => "cancelled",
            };
            assert_eq!(body["status"], expected, "{plan:?} of {order_id}: {body}");
        }
        if let Some(order) = self.record().orders.get_mut(order_id) {
            order.order.payment = payment;
        }
        answer.map(|_| ())
    }

    /// A random acknowledged placement, to retry its key.
    fn sample(&self, rng: &mut Rng) -> Option<Placement> {
        let record = self.record();
        if record.orders.is_empty() {
            return None;
        }
        let index = rng.below(record.orders.len() as u64) as usize;
        record
            .orders
            .values()
            .nth(index)
            .map(|order| order.placement.clone())
    }

    /// Brings the history up to date on a (restarted or promoted) node: retries
    /// every placement with no known outcome under its key, and every confirm
    /// or cancel with no known outcome, and retries up to
    /// `KEYS_RETRIED_BY_SETTLE` keys that were acknowledged (the audit then
    /// finds any that answers another order id). Panics if the node does not
    /// answer.
    pub fn settle(&self, client: &Client, rng: &mut Rng) {
        let unknown = std::mem::take(&mut self.record().unknown);
        for placement in unknown {
            let answer = placement
                .send(client)
                .unwrap_or_else(|error| panic!("retry of {placement:?}: no answer: {error}"));
            match answer {
                (200 | 201, body) => self.acknowledged(&placement, &body, AfterPayment::Nothing),
                // Refused (e.g. sold out): the key made no order.
                (status, _) if (400..500).contains(&status) => {}
                _ => self.unknown(placement),
            }
        }
        let unknown_payments: Vec<(String, AfterPayment)> = self
            .record()
            .orders
            .values()
            .filter_map(|order| match order.order.payment {
                Payment::Unknown(plan) => Some((order.order.order_id.clone(), plan)),
                _ => None,
            })
            .collect();
        for (order_id, plan) in unknown_payments {
            self.pay(client, &order_id, plan)
                .unwrap_or_else(|error| panic!("retry of {plan:?} {order_id}: {error}"));
        }
        for _ in 0..KEYS_RETRIED_BY_SETTLE {
            let Some(placement) = self.sample(rng) else {
                break;
            };
            match placement.send(client) {
                Ok((200, body)) => self.acknowledged(&placement, &body, AfterPayment::Nothing),
                Ok((status, body)) => panic!(
                    "a retry of acknowledged {placement:?} answered {status} instead of 200 with the order: {body}"
                ),
                Err(error) => panic!("retry of {placement:?}: no answer: {error}"),
            }
        }
    }

    /// The load tester's ledger of this history.
    pub fn ledger(&self) -> Ledger {
        let record = self.record();
        let mut ledger = Ledger {
            orders: record
                .orders
                .iter()
                .map(|(id, order)| (id.clone(), order.order.clone()))
                .collect(),
            acknowledgements: record.acknowledgements.clone(),
            unknown_units_by_sku: HashMap::new(),
        };
        for placement in &record.unknown {
            ledger.unknown(&placement.sku, placement.quantity as u32);
        }
        ledger
    }

    pub fn counts(&self) -> Counts {
        let ledger = self.ledger();
        let (confirms, cancels) = ledger.payments_done();
        let record = self.record();
        Counts {
            orders: record.orders.len(),
            acknowledgements: record.acknowledgements.len(),
            confirms,
            cancels,
            unknown: record.unknown.len(),
        }
    }

    /// When each acknowledged order's reservation runs out, as acknowledged.
    fn reserved_until_ms(&self) -> HashMap<String, u64> {
        self.record()
            .orders
            .iter()
            .map(|(id, order)| (id.clone(), order.reserved_until_ms))
            .collect()
    }
}

/// The shape of a `Load`.
#[derive(Clone, Copy, Debug)]
pub struct LoadConfig {
    /// Client threads, each with one request in flight at a time.
    pub threads: usize,
    /// Requests per thread at most.
    pub steps_max: usize,
    /// Each thread pauses a random time up to this between two requests
    /// (buyers' think time), so a load lasts long enough to be killed in
    /// without piling up more orders than an audit can read back quickly.
    pub think_time_max: Duration,
}

/// Load threads placing, confirming, cancelling and retrying, each until told
/// to stop, until its first request without an answer (the node is gone), or
/// until `steps_max` steps.
pub struct Load {
    stop: Arc<AtomicBool>,
    acknowledged: Arc<AtomicUsize>,
    /// Threads that ran all their steps.
    steps_run_out: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `config.threads` threads against `client` ordering `skus`; keys
    /// are named after `name`, which must differ between loads of one history.
    pub fn start(
        client: &Client,
        history: &History,
        skus: &[&str],
        config: LoadConfig,
        name: &str,
        rng: &mut Rng,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let steps_run_out = Arc::new(AtomicUsize::new(0));
        let skus: Arc<Vec<String>> = Arc::new(skus.iter().map(|sku| (*sku).to_owned()).collect());
        let threads = (0..config.threads)
            .map(|thread| {
                let worker = Worker {
                    client: client.clone(),
                    history: history.clone(),
                    skus: Arc::clone(&skus),
                    name: format!("{name}-{thread}"),
                    rng: rng.fork(),
                    acknowledged: Arc::clone(&acknowledged),
                    think_time_max: config.think_time_max,
                };
                let stop = Arc::clone(&stop);
                let steps_run_out = Arc::clone(&steps_run_out);
                std::thread::spawn(move || {
                    if worker.run(&stop, config.steps_max) {
                        steps_run_out.fetch_add(1, Ordering::AcqRel);
                    }
                })
            })
            .collect();
        Load {
            stop,
            acknowledged,
            steps_run_out,
            threads,
        }
    }

    /// New orders acknowledged by this load so far.
    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::Acquire)
    }

    /// True once every thread ended (stopped, lost the node, or ran its steps).
    pub fn ended(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }

    /// True when every thread ran all its steps (none was stopped or lost
    /// the node).
    pub fn steps_run_out(&self) -> bool {
        self.steps_run_out.load(Ordering::Acquire) == self.threads.len()
    }

    /// Stops the threads and waits for them.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Release);
        for thread in self.threads {
            thread.join().expect("a load thread panicked");
        }
    }
}

struct Worker {
    client: Client,
    history: History,
    skus: Arc<Vec<String>>,
    name: String,
    rng: Rng,
    acknowledged: Arc<AtomicUsize>,
    think_time_max: Duration,
}

impl Worker {
    /// Runs until stopped, until a request gets no answer, or for
    /// `steps_max` steps; returns whether it ran them all.
    fn run(mut self, stop: &AtomicBool, steps_max: usize) -> bool {
        for step in 0..steps_max {
            if stop.load(Ordering::Acquire) {
                return false;
            }
            if self.step(step).is_err() {
                // The node is gone; the next requests would only be refused.
                return false;
            }
            // Pacing of the load, not a wait for an event.
            std::thread::sleep(self.rng.duration(Duration::ZERO, self.think_time_max));
        }
        true
    }

    /// One request; `Err` when it got no answer.
    fn step(&mut self, step: usize) -> Result<(), String> {
        let roll = self.rng.below(100);
        if roll < RETRY_STEP_PERCENT {
            if let Some(placement) = self.history.sample(&mut self.rng) {
                if let (200 | 201, body) = placement.send(&self.client)? {
                    self.history
                        .acknowledged(&placement, &body, AfterPayment::Nothing);
                }
                return Ok(());
            }
        } else if roll < RETRY_STEP_PERCENT + PAYMENT_STEP_PERCENT {
            if let Some((order_id, plan)) = self.history.take_unpaid() {
                return self.history.pay(&self.client, &order_id, plan);
            }
        }
        let placement = Placement {
            sku: self.skus[self.rng.below(self.skus.len() as u64) as usize].clone(),
            quantity: 1 + self.rng.below(ORDER_QUANTITY_MAX),
            customer: format!("{}-c{}", self.name, step % CUSTOMERS_PER_THREAD),
            idempotency_key: format!("{}-{step}", self.name),
        };
        let plan = match self.rng.below(100) {
            roll if roll < CONFIRM_PERCENT => AfterPayment::Confirm,
            roll if roll < CONFIRM_PERCENT + CANCEL_PERCENT => AfterPayment::Cancel,
            _ => AfterPayment::Nothing,
        };
        match placement.send(&self.client) {
            Ok((200 | 201, body)) => {
                self.history.acknowledged(&placement, &body, plan);
                self.acknowledged.fetch_add(1, Ordering::AcqRel);
            }
            // Refused (sold out, insufficient stock): no order.
            Ok((status, _)) if (400..500).contains(&status) => {}
            Ok(_) => self.history.unknown(placement),
            Err(error) => {
                self.history.unknown(placement);
                return Err(error);
            }
        }
        Ok(())
    }
}

/// Reads an order as the HTTP API writes it.
pub fn order_from_json(body: &Value) -> Result<Order, String> {
    let text = |field: &str| {
        body[field]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("{field} is not a string"))
    };
    let time = |field: &str| {
        let text = text(field)?;
        let at = humantime::parse_rfc3339(&text)
            .map_err(|error| format!("{field} {text:?} is not an RFC 3339 time: {error}"))?;
        at.duration_since(UNIX_EPOCH)
            .map(|since| since.as_millis() as u64)
            .map_err(|_| format!("{field} {text:?} is before 1970"))
    };
    let status = text("status")?;
    Ok(Order {
        order_id: text("order_id")?,
        sku: text("sku")?,
        quantity: body["quantity"]
            .as_u64()
            .and_then(|quantity| u32::try_from(quantity).ok())
            .ok_or("quantity is not a u32")?,
        customer_id: text("customer_id")?,
        status: OrderStatus::parse(&status).ok_or(format!("{status:?} is not a status"))?,
        created_at_ms: time("created_at")?,
        reserved_until_ms: time("reserved_until")?,
        updated_at_ms: time("updated_at")?,
    })
}

/// Reads the counters of a SKU as the HTTP API writes it (the settings the
/// audit does not look at are left at their defaults).
pub fn sku_from_json(body: &Value) -> Result<Sku, String> {
    let number = |field: &str| {
        body[field]
            .as_u64()
            .ok_or_else(|| format!("{field} is not a number"))
    };
    Ok(Sku {
        sku: body["sku"]
            .as_str()
            .ok_or("sku is not a string")?
            .to_owned(),
        total: number("total")?,
        available: number("available")?,
        reserved: number("reserved")?,
        sold: number("sold")?,
        per_customer_limit: body["per_customer_limit"].as_u64(),
        max_quantity_per_order: 0,
        sale_starts_at_ms: None,
        reservation_ttl_secs: 0,
        low_stock_threshold: 0,
        low_stock: false,
    })
}

fn read_back<T>(
    client: &Client,
    path: &str,
    parse: impl Fn(&Value) -> Result<T, String>,
) -> ReadBack<T> {
    match client.try_send(client.request("GET", path), None) {
        Ok(answer) if answer.status == 200 => match parse(&answer.json()) {
            Ok(value) => ReadBack::Found(value),
            Err(error) => ReadBack::Failed(format!("GET {path}: {error}: {}", answer.text)),
        },
        Ok(answer) if answer.status == 404 => ReadBack::Missing,
        Ok(answer) => ReadBack::Failed(format!("GET {path}: {} {}", answer.status, answer.text)),
        Err(error) => ReadBack::Failed(format!("GET {path}: no answer: {error}")),
    }
}

/// Reads back every order of `ids`, on `READ_BACK_THREADS` threads.
fn read_orders(client: &Client, ids: &[String]) -> HashMap<String, ReadBack<Order>> {
    let chunk = ids.len().div_ceil(READ_BACK_THREADS).max(1);
    std::thread::scope(|scope| {
        let readers: Vec<_> = ids
            .chunks(chunk)
            .map(|ids| {
                scope.spawn(move || {
                    ids.iter()
                        .map(|id| {
                            let path = format!("/v1/orders/{id}");
                            (id.clone(), read_back(client, &path, order_from_json))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        readers
            .into_iter()
            .flat_map(|reader| reader.join().expect("a read-back thread panicked"))
            .collect()
    })
}

fn read_skus(client: &Client, stocks: &[(&str, u64)]) -> BTreeMap<String, ReadBack<Sku>> {
    stocks
        .iter()
        .map(|(sku, _)| {
            let path = format!("/v1/skus/{sku}");
            ((*sku).to_owned(), read_back(client, &path, sku_from_json))
        })
        .collect()
}

/// Audits `client`'s node against `history`. `stocks` names every SKU the
/// history's orders use and the stock it was created with; the history must be
/// their only writer. Beyond the load tester's audit (missing, changed or
/// duplicated orders, statuses the answers cannot explain, oversell, counters
/// that disagree with the orders), it flags a SKU whose counters do not add up
/// to its stock (as an oversell) and an order that expired before its
/// reservation ran out (as a status mismatch).
pub fn audit(client: &Client, history: &History, stocks: &[(&str, u64)]) -> AuditReport {
    let ledger = history.ledger();
    let ids: Vec<String> = ledger.orders.keys().cloned().collect();
    // Reservations keep expiring while orders are read back; only a read-back
    // during which no SKU changed is a snapshot the counters can be held to.
    let mut attempt = 1;
    let (orders, skus) = loop {
        let before = read_skus(client, stocks);
        let orders = read_orders(client, &ids);
        let skus = read_skus(client, stocks);
        if skus == before || attempt == SNAPSHOT_ATTEMPTS_MAX {
            break (orders, skus);
        }
        attempt += 1;
    };
    let mut report = pure::audit(&ledger, &orders, &skus, true);
    let mut extra = Vec::new();
    for (name, stock) in stocks {
        let Some(ReadBack::Found(sku)) = skus.get(*name) else {
            continue;
        };
        let counted = sku.available + sku.reserved + sku.sold;
        if sku.total != *stock || counted != sku.total {
            extra.push(Violation {
                kind: ViolationKind::Oversell,
                sku: Some((*name).to_owned()),
                order_id: None,
                detail: format!(
                    "created with {stock} units; counters total {} available {} reserved {} sold {}",
                    sku.total, sku.available, sku.reserved, sku.sold
                ),
            });
        }
    }
    let reserved_until = history.reserved_until_ms();
    for (id, read) in &orders {
        let ReadBack::Found(order) = read else {
            continue;
        };
        let until = reserved_until.get(id).copied().unwrap_or(0);
        if order.status == OrderStatus::Expired && order.updated_at_ms < until {
            extra.push(Violation {
                kind: ViolationKind::StatusMismatch,
                sku: Some(order.sku.clone()),
                order_id: Some(id.clone()),
                detail: format!(
                    "expired at {} ms, before its reservation ran out at {until} ms",
                    order.updated_at_ms
                ),
            });
        }
    }
    for violation in extra {
        *report.violations_by_kind.entry(violation.kind).or_default() += 1;
        report.violation_count += 1;
        report.violations.push(violation);
    }
    report.passed = report.violation_count == 0;
    report
}

/// Violations of `kind` in `report`.
pub fn violations(report: &AuditReport, kind: ViolationKind) -> u64 {
    report.violations_by_kind.get(&kind).copied().unwrap_or(0)
}

/// Panics, quoting the violations and `context` (which should name the seed),
/// unless the audit passed.
pub fn assert_passed(report: &AuditReport, context: &str) {
    if report.passed {
        return;
    }
    let quoted: Vec<String> = report
        .violations
        .iter()
        .take(VIOLATIONS_QUOTED_MAX)
        .map(|violation| {
            format!(
                "  {:?} sku {:?} order {:?}: {}",
                violation.kind, violation.sku, violation.order_id, violation.detail
            )
        })
        .collect();
    panic!(
        "audit failed {context}: {} violations {:?}\n{}",
        report.violation_count,
        report.violations_by_kind,
        quoted.join("\n")
    );
}

/// What became of a start SIGKILLed by `Launch::start_and_kill_after`.
#[derive(Debug)]
pub struct KilledStart {
    /// Whether it printed its listening line before the kill (start-up done).
    pub listened: bool,
    /// Its logs up to the kill.
    pub stderr: String,
}

impl Launch {
    /// Starts the process on its data dir (which must be given) and SIGKILLs
    /// it `delay` later, listening or not: a kill during start-up and recovery.
    /// Panics, with its stderr, if it exited by itself first.
    pub fn start_and_kill_after(self, delay: Duration) -> KilledStart {
        let data_dir = self
            .data_dir
            .clone()
            .expect("a kill during start-up needs the data dir to restart on");
        let log_dir = tempfile::tempdir().expect("create a temporary log dir");
        let stderr_path = log_dir.path().join("stderr.log");
        let mut child = self
            .command(&data_dir, &stderr_path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn flashgate");
        let stdout = child.stdout.take().expect("stdout is piped");
        let listened = Arc::new(AtomicBool::new(false));
        let reader = {
            let listened = Arc::clone(&listened);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with(LISTENING_PREFIX) {
                        listened.store(true, Ordering::Release);
                    }
                }
            })
        };
        // The moment of the fault, not a wait for an event.
        std::thread::sleep(delay);
        let exited = child.try_wait().expect("look at flashgate");
        let _ = child.kill();
        let _ = child.wait();
        let _ = reader.join();
        let stderr = read_to_string_lossy(&stderr_path);
        if let Some(status) = exited {
            panic!("flashgate exited by itself ({status}) during start-up; stderr:\n{stderr}");
        }
        KilledStart {
            listened: listened.load(Ordering::Acquire),
            stderr,
        }
    }
}

/// The logs of every process a fault test ran, kept under the target
/// directory when the test fails (and removed when it passes), so a failing
/// seed can be studied after the run.
pub struct RunLogs {
    dir: PathBuf,
    kept: usize,
    /// Logs of processes still running, copied only if the test fails.
    live: Vec<(String, PathBuf)>,
}

impl RunLogs {
    pub fn new(test: &str, seed: u64) -> RunLogs {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fault-logs")
            .join(format!("{test}-{seed}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|error| panic!("create {}: {error}", dir.display()));
        RunLogs {
            dir,
            kept: 0,
            live: Vec::new(),
        }
    }

    /// Copies `server`'s log as it is now (after a kill: all of it).
    pub fn keep(&mut self, label: &str, server: &Server) {
        self.keep_text(label, &server.stderr());
    }

    pub fn keep_text(&mut self, label: &str, text: &str) {
        self.kept += 1;
        let path = self.dir.join(format!("{:03}-{label}.log", self.kept));
        let _ = std::fs::write(path, text);
    }

    /// Remembers the log of a running `server` under `label` (replacing the
    /// one kept under that label before), to copy if the test fails.
    pub fn watch(&mut self, label: &str, server: &Server) {
        self.live.retain(|(kept, _)| kept != label);
        self.live
            .push((label.to_owned(), server.stderr_path.clone()));
    }
}

impl Drop for RunLogs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
            return;
        }
        for (label, path) in std::mem::take(&mut self.live) {
            let text = read_to_string_lossy(&path);
            self.keep_text(&format!("{label}-at-the-failure"), &text);
        }
        eprintln!(
            "the logs of every process of this run are in {}",
            self.dir.display()
        );
    }
}
