//! One call's life: place its orders (one, or a QUIC batch), retry after a
//! timeout, a transport error or `standby_unavailable` under the same
//! idempotency key (bounded), record each order's outcome and latency (from
//! its intended send time), and plan what follows: the change (`--change-ratio`)
//! at once, then the confirm or cancel after the payment delay. Moving to another node of a cluster is the client's
//! (its failover); what comes back here is a call's final outcome.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashgate_client::{ChangeOrder, ClientError, OrderGateway, PlaceOrder, Placed};
use flashgate_protocol::code;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::LoadtestError;
use crate::ledger::{Change, Ledger, Payment};
use crate::recorder::{error_label, Recorder, CREATED, REPLAYED};
use crate::target::{Endpoint, Transport};
use crate::workload::{AfterPayment, PlannedChange, PlannedOrder};

/// What every task of a run shares.
pub struct Engine<G> {
    pub endpoints: Vec<Endpoint<G>>,
    pub recorder: Mutex<Recorder>,
    pub ledger: Mutex<Ledger>,
    /// Changes, and confirms and cancels waiting for their payment delay.
    pub payments: Mutex<JoinSet<()>>,
    pub retries: u32,
    pub payment_delay: Duration,
    /// The load stops at this instant…
    pub deadline: Instant,
    /// …or when this many orders were started.
    pub orders_max: u64,
    orders_started: AtomicU64,
    next_endpoint: AtomicUsize,
    /// Set once when a target turned out to have no node that takes orders:
    /// the load stops at once and the run ends with `no_primary`'s error.
    halted: watch::Sender<bool>,
    no_primary: Mutex<Option<LoadtestError>>,
    /// The last failure a call ended with: its code and detail, for the
    /// progress lines of a run where nothing is acknowledged.
    last_error: Mutex<Option<(String, String)>>,
    /// Set while the load runs; orders of calls abandoned by the drain bound
    /// are then recorded as unknown outcomes.
    has_abandoned: AtomicBool,
    /// The waiting-room scenario: every order queues first (`queue`).
    pub waiting_room: Option<Mutex<crate::queue::QueueStats>>,
}

/// An order placement in flight: dropped before `settled` (its task aborted
/// by the drain bound), its orders' outcomes are unknown to the audit.
struct InFlight<'a, G> {
    engine: &'a Engine<G>,
    orders: Vec<(String, u32)>,
    settled: bool,
}

impl<G> Drop for InFlight<'_, G> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.engine.has_abandoned.store(true, Ordering::Relaxed);
        let mut ledger = lock(&self.engine.ledger);
        for (sku, quantity) in &self.orders {
            ledger.unknown(sku, *quantity);
        }
    }
}

/// Locks a mutex, going on after a panic elsewhere: the data is counters and
/// lists that stay consistent per call.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<G: OrderGateway + Send + Sync + 'static> Engine<G> {
    /// `endpoints` must not be empty.
    pub fn new(
        endpoints: Vec<Endpoint<G>>,
        recorder: Recorder,
        retries: u32,
        payment_delay: Duration,
        deadline: Instant,
        orders_max: u64,
    ) -> Engine<G> {
        assert!(!endpoints.is_empty(), "an engine needs an endpoint");
        Engine {
            endpoints,
            recorder: Mutex::new(recorder),
            ledger: Mutex::new(Ledger::default()),
            payments: Mutex::new(JoinSet::new()),
            retries,
            payment_delay,
            deadline,
            orders_max,
            orders_started: AtomicU64::new(0),
            next_endpoint: AtomicUsize::new(0),
            halted: watch::Sender::new(false),
            no_primary: Mutex::new(None),
            last_error: Mutex::new(None),
            has_abandoned: AtomicBool::new(false),
            waiting_room: None,
        }
    }

    /// The engine of the waiting-room scenario: each order joins its SKU's
    /// queue and is placed once admitted, with its admission ticket.
    pub fn with_waiting_room(mut self) -> Engine<G> {
        self.waiting_room = Some(Mutex::new(crate::queue::QueueStats::default()));
        self
    }

    /// Whether the run was halted (see `no_primary`).
    pub fn is_halted(&self) -> bool {
        *self.halted.borrow()
    }

    /// Resolves once the run was halted (see `no_primary`).
    pub async fn halted(&self) {
        let mut halted = self.halted.subscribe();
        let _ = halted.wait_for(|halted| *halted).await;
    }

    /// The error that halted the run, if one did.
    pub fn take_no_primary(&self) -> Option<LoadtestError> {
        lock(&self.no_primary).take()
    }

    /// The last failure's code and detail.
    pub fn last_error(&self) -> Option<(String, String)> {
        lock(&self.last_error).clone()
    }

    /// Waits for `tasks` until `until` or until the run is halted, whichever
    /// comes first, then aborts what is left (abandoned calls record their
    /// orders as unknown outcomes as they are dropped).
    pub async fn settle(&self, tasks: &mut JoinSet<()>, until: Instant) {
        tokio::select! {
            _ = async { while tasks.join_next().await.is_some() {} } => {}
            _ = tokio::time::sleep_until(until.into()) => {}
            _ = self.halted() => {}
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Whether some call was abandoned in flight by the drain bound.
    pub fn abandoned_any(&self) -> bool {
        self.has_abandoned.load(Ordering::Relaxed)
    }

    /// Notes a call's final failure. A `not_primary` one means the client
    /// found no node of the target that takes orders within its failover
    /// wait: the run halts at once and ends with that error.
    fn note_failure(&self, endpoint: usize, error: &ClientError) {
        let detail = match error {
            ClientError::Server { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        *lock(&self.last_error) = Some((error_label(error), detail.clone()));
        if error.code() != Some(code::NOT_PRIMARY) {
            return;
        }
        let endpoint = &self.endpoints[endpoint];
        let flag = match endpoint.transport {
            Transport::Http => "--http",
            Transport::Quic => "--quic",
        };
        let mut no_primary = lock(&self.no_primary);
        if no_primary.is_none() && !*self.halted.borrow() {
            // The run ends at once with it (the caller prints it).
            *no_primary = Some(LoadtestError::no_primary(flag, &endpoint.address, &detail));
            self.halted.send_replace(true);
        }
    }

    /// The next endpoint, round robin.
    pub fn pick_endpoint(&self) -> usize {
        self.next_endpoint.fetch_add(1, Ordering::Relaxed) % self.endpoints.len()
    }

    /// Claims up to `wanted` orders under the order cap: the first sequence
    /// number and how many were granted (0 when the cap is reached).
    pub fn claim_orders(&self, wanted: u64) -> (u64, u64) {
        let first = self.orders_started.fetch_add(wanted, Ordering::Relaxed);
        let granted = wanted.min(self.orders_max.saturating_sub(first));
        (first, granted)
    }

    /// Whether the load should stop now.
    pub fn stopped(&self) -> bool {
        *self.halted.borrow()
            || Instant::now() >= self.deadline
            || self.orders_started.load(Ordering::Relaxed) >= self.orders_max
    }

    /// Sends `orders` to endpoint `endpoint` in one call (a batch when the
    /// endpoint batches and there is more than one) and records every outcome
    /// with its latency from `intended`.
    pub async fn place_call(
        self: &Arc<Self>,
        endpoint: usize,
        mut orders: Vec<PlannedOrder>,
        mut intended: Instant,
    ) {
        if self.waiting_room.is_some() {
            // Only admitted orders are sent; an order's latency starts at
            // its admission (the time in queue is reported on its own).
            let mut admitted = Vec::with_capacity(orders.len());
            for mut order in orders {
                if let Some(ticket) = self.queue_through(endpoint, &order).await {
                    order.queue_ticket = Some(ticket);
                    admitted.push(order);
                }
            }
            if admitted.is_empty() {
                return;
            }
            orders = admitted;
            intended = Instant::now();
        }
        lock(&self.recorder).sent(orders.len() as u64);
        let mut in_flight = InFlight {
            engine: self,
            orders: orders
                .iter()
                .map(|order| (order.sku.clone(), order.quantity))
                .collect(),
            settled: false,
        };
        self.place_all(endpoint, orders, intended).await;
        in_flight.settled = true;
    }

    async fn place_all(
        self: &Arc<Self>,
        endpoint: usize,
        orders: Vec<PlannedOrder>,
        intended: Instant,
    ) {
        let gateway = &self.endpoints[endpoint].gateway;
        if orders.len() == 1 {
            for order in orders {
                self.place_one(endpoint, order, intended, 0, false).await;
            }
            return;
        }
        let mut attempt = 0;
        let mut maybe_applied = false;
        let results = loop {
            let requests = orders.iter().map(request).collect();
            match gateway.place_batch(requests).await {
                Ok(results) => break results,
                Err(error) if is_unanswered(&error) && attempt < self.retries => {
                    maybe_applied |= may_have_been_applied(&error);
                    attempt += 1;
                    let mut recorder = lock(&self.recorder);
                    for _ in &orders {
                        recorder.retried();
                    }
                }
                Err(error) => {
                    maybe_applied |= may_have_been_applied(&error);
                    for order in &orders {
                        self.failed(order, &error, intended, maybe_applied);
                    }
                    self.note_failure(endpoint, &error);
                    return;
                }
            }
        };
        // One batch, one answer: record all of it under one lock of each, not
        // two locks per order.
        let elapsed = intended.elapsed();
        let mut retries = Vec::new();
        let mut payments = Vec::new();
        let mut last_failure = None;
        {
            let mut recorder = lock(&self.recorder);
            let mut ledger = lock(&self.ledger);
            for (order, result) in orders.into_iter().zip(results) {
                match result {
                    Ok(placed) => {
                        let label = if placed.created { CREATED } else { REPLAYED };
                        recorder.finished(label, elapsed);
                        let follow_up = plan_follow_up(&placed, &order);
                        ledger.acknowledged(
                            placed.order,
                            order.idempotency_key,
                            order.after_payment,
                        );
                        if let Some(follow_up) = follow_up {
                            follow_up.note_planned(&mut ledger);
                            payments.push(follow_up);
                        }
                    }
                    Err(error) if is_unanswered(&error) && attempt < self.retries => {
                        recorder.retried();
                        retries.push((order, maybe_applied || may_have_been_applied(&error)));
                    }
                    Err(error) => {
                        recorder.finished(&error_label(&error), elapsed);
                        if maybe_applied {
                            ledger.unknown(&order.sku, order.quantity);
                        }
                        last_failure = Some(error);
                    }
                }
            }
        }
        if let Some(error) = last_failure {
            self.note_failure(endpoint, &error);
        }
        for follow_up in payments {
            self.schedule_follow_up(endpoint, follow_up);
        }
        for (order, applied) in retries {
            self.place_one(endpoint, order, intended, attempt + 1, applied)
                .await;
        }
    }

    /// Places one order, retrying unanswered attempts under its key.
    async fn place_one(
        self: &Arc<Self>,
        endpoint: usize,
        order: PlannedOrder,
        intended: Instant,
        mut attempt: u32,
        mut maybe_applied: bool,
    ) {
        let gateway = &self.endpoints[endpoint].gateway;
        loop {
            match gateway.place(request(&order)).await {
                Ok(placed) => return self.acknowledged(endpoint, order, placed, intended),
                Err(error) if is_unanswered(&error) && attempt < self.retries => {
                    maybe_applied |= may_have_been_applied(&error);
                    attempt += 1;
                    lock(&self.recorder).retried();
                }
                Err(error) => {
                    maybe_applied |= may_have_been_applied(&error);
                    self.failed(&order, &error, intended, maybe_applied);
                    return self.note_failure(endpoint, &error);
                }
            }
        }
    }

    fn acknowledged(
        self: &Arc<Self>,
        endpoint: usize,
        order: PlannedOrder,
        placed: Placed,
        intended: Instant,
    ) {
        let label = if placed.created { CREATED } else { REPLAYED };
        lock(&self.recorder).finished(label, intended.elapsed());
        let follow_up = {
            let mut ledger = lock(&self.ledger);
            let follow_up = plan_follow_up(&placed, &order);
            ledger.acknowledged(placed.order, order.idempotency_key, order.after_payment);
            if let Some(follow_up) = &follow_up {
                follow_up.note_planned(&mut ledger);
            }
            follow_up
        };
        if let Some(follow_up) = follow_up {
            self.schedule_follow_up(endpoint, follow_up);
        }
    }

    /// Changes the order at once (if planned), then confirms or cancels it
    /// after the payment delay, in a task of its own.
    fn schedule_follow_up(self: &Arc<Self>, endpoint: usize, follow_up: FollowUp) {
        let engine = Arc::clone(self);
        lock(&self.payments).spawn(async move {
            if let Some((change, target)) = follow_up.change {
                engine
                    .change(endpoint, &follow_up.order_id, change, target)
                    .await;
            }
            if follow_up.action != AfterPayment::Nothing {
                engine
                    .pay(endpoint, follow_up.order_id, follow_up.action)
                    .await;
            }
        });
    }

    /// Changes `order_id` as planned, with retries after unanswered attempts
    /// under the change's key, and records how it ended. An acknowledged
    /// change is recorded as the SKU and quantity asked (`target`): the
    /// audit then checks that the order holds them.
    async fn change(
        &self,
        endpoint: usize,
        order_id: &str,
        change: PlannedChange,
        target: (String, u32),
    ) {
        let gateway = &self.endpoints[endpoint].gateway;
        let request = ChangeOrder {
            sku: change.sku,
            quantity: change.quantity,
        };
        let (sku, quantity) = target;
        let mut attempt = 0;
        let mut maybe_applied = false;
        let outcome = loop {
            match gateway
                .change(order_id, request.clone(), &change.idempotency_key)
                .await
            {
                Ok(_) => break Change::Done { sku, quantity },
                Err(error) if is_unanswered(&error) && attempt < self.retries => {
                    maybe_applied |= may_have_been_applied(&error);
                    attempt += 1;
                }
                Err(error) if maybe_applied || may_have_been_applied(&error) => {
                    self.note_failure(endpoint, &error);
                    break Change::Unknown { sku, quantity };
                }
                Err(error) => {
                    self.note_failure(endpoint, &error);
                    break Change::Refused(error_label(&error));
                }
            }
        };
        lock(&self.ledger).changed(order_id, outcome);
    }

    fn failed(
        &self,
        order: &PlannedOrder,
        error: &ClientError,
        intended: Instant,
        maybe_applied: bool,
    ) {
        lock(&self.recorder).finished(&error_label(error), intended.elapsed());
        if maybe_applied {
            lock(&self.ledger).unknown(&order.sku, order.quantity);
        }
    }

    /// Confirms or cancels `order_id` after the payment delay, with retries
    /// after unanswered attempts, and records how it ended.
    async fn pay(&self, endpoint: usize, order_id: String, action: AfterPayment) {
        tokio::time::sleep(self.payment_delay).await;
        let gateway = &self.endpoints[endpoint].gateway;
        let mut attempt = 0;
        let mut maybe_applied = false;
        let payment = loop {
            let result = match action {
                AfterPayment::Confirm => gateway.confirm(&order_id).await,
                AfterPayment::Cancel => gateway.cancel(&order_id).await,
                AfterPayment::Nothing => return,
            };
            match result {
                Ok(_) => break Payment::Done(action),
                Err(error) if is_unanswered(&error) && attempt < self.retries => {
                    maybe_applied |= may_have_been_applied(&error);
                    attempt += 1;
                }
                Err(error) if maybe_applied || may_have_been_applied(&error) => {
                    self.note_failure(endpoint, &error);
                    break Payment::Unknown(action);
                }
                Err(error) => {
                    self.note_failure(endpoint, &error);
                    break Payment::Refused(action, error_label(&error));
                }
            }
        };
        lock(&self.ledger).paid(&order_id, payment);
    }
}

/// What follows an acknowledged order: its change (with the SKU and
/// quantity it asks for), then its confirm or cancel.
struct FollowUp {
    order_id: String,
    change: Option<(PlannedChange, (String, u32))>,
    action: AfterPayment,
}

impl FollowUp {
    /// Records the planned change as pending, under the same ledger lock as
    /// the order's acknowledgement: the audit never sees the order without
    /// it.
    fn note_planned(&self, ledger: &mut Ledger) {
        if let Some((_, (sku, quantity))) = &self.change {
            ledger.change_planned(&self.order_id, sku.clone(), *quantity);
        }
    }
}

/// The follow-up of `placed`, if the plan has one.
fn plan_follow_up(placed: &Placed, order: &PlannedOrder) -> Option<FollowUp> {
    if order.change.is_none() && order.after_payment == AfterPayment::Nothing {
        return None;
    }
    let change = order.change.clone().map(|change| {
        let target = (
            change
                .sku
                .clone()
                .unwrap_or_else(|| placed.order.sku.clone()),
            change.quantity.unwrap_or(placed.order.quantity),
        );
        (change, target)
    });
    Some(FollowUp {
        order_id: placed.order.order_id.clone(),
        change,
        action: order.after_payment,
    })
}

fn request(order: &PlannedOrder) -> PlaceOrder {
    let request = PlaceOrder::new(&order.sku, order.quantity, &order.customer_id)
        .with_idempotency_key(&order.idempotency_key);
    match &order.queue_ticket {
        Some(ticket) => request.with_queue_ticket(ticket),
        None => request,
    }
}

/// No answer arrived (a timeout or transport failure), or the primary could
/// not reach its standby (`standby_unavailable`): retried under the same
/// idempotency key, which returns the order if an earlier attempt made it.
fn is_unanswered(error: &ClientError) -> bool {
    matches!(error, ClientError::Transport(_)) || error.code() == Some(code::STANDBY_UNAVAILABLE)
}

/// Whether a failed attempt may have been applied by the server.
fn may_have_been_applied(error: &ClientError) -> bool {
    error.may_have_been_applied()
}
