//! The open-loop scheduler measures latency from each request's intended send
//! time, so a server that stops answering for a while shows in the numbers
//! (as in wrk2) instead of silently slowing the load down: that is the whole
//! point of the open model. A fake gateway answers at once except for one
//! call, which it holds for `STALL`; with one request allowed outstanding,
//! every arrival during the stall waits, is counted late, and its latency
//! includes the wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_client::{
    ChangeOrder, Changed, ClientError, Order, OrderGateway, OrderStatus, PlaceOrder, Placed, Sku,
    SkuSettings,
};
use flashgate_loadtest::order_flow::Engine;
use flashgate_loadtest::recorder::{Recorder, CREATED};
use flashgate_loadtest::scenario::Scenario;
use flashgate_loadtest::schedule;
use flashgate_loadtest::target::{Endpoint, Transport};
use flashgate_loadtest::workload::{sku_names, Workload};

const STALL: Duration = Duration::from_millis(500);
/// The call that stalls (0-based).
const STALLED_CALL: u64 = 20;

/// A fake server: answers every order after `delay`, except call
/// `stalled_call`, held for `STALL`; counts the calls in flight at once.
#[derive(Default)]
struct FakeGateway {
    calls: AtomicU64,
    stalled_call: Option<u64>,
    delay: Duration,
    in_flight: AtomicU64,
    most_in_flight: AtomicU64,
}

fn order_of(order: &PlaceOrder, id: u64) -> Order {
    Order {
        order_id: format!("1-0-{id}"),
        sku: order.sku.clone(),
        quantity: order.quantity,
        customer_id: order.customer_id.clone(),
        status: OrderStatus::Reserved,
        created_at_ms: 0,
        reserved_until_ms: 0,
        updated_at_ms: 0,
    }
}

fn unused() -> ClientError {
    ClientError::Config("not used by this test".into())
}

impl OrderGateway for FakeGateway {
    async fn place(&self, order: PlaceOrder) -> Result<Placed, ClientError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        // The fake server's service time and stall: the behaviour under
        // test, not a wait for an event.
        if self.stalled_call == Some(call) {
            tokio::time::sleep(STALL).await;
        } else if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(Placed {
            order: order_of(&order, call),
            created: true,
        })
    }

    async fn place_batch(
        &self,
        orders: Vec<PlaceOrder>,
    ) -> Result<Vec<Result<Placed, ClientError>>, ClientError> {
        let mut results = Vec::new();
        for order in orders {
            results.push(self.place(order).await);
        }
        Ok(results)
    }

    async fn order(&self, _order_id: &str) -> Result<Order, ClientError> {
        Err(unused())
    }

    async fn confirm(&self, _order_id: &str) -> Result<Order, ClientError> {
        Err(unused())
    }

    async fn cancel(&self, _order_id: &str) -> Result<Order, ClientError> {
        Err(unused())
    }

    async fn ship(&self, _order_id: &str) -> Result<Order, ClientError> {
        Err(unused())
    }

    async fn change(
        &self,
        _order_id: &str,
        _change: ChangeOrder,
        _idempotency_key: &str,
    ) -> Result<Changed, ClientError> {
        Err(unused())
    }

    async fn sku(&self, _sku: &str) -> Result<Sku, ClientError> {
        Err(unused())
    }

    async fn put_sku(
        &self,
        _sku: &str,
        _settings: SkuSettings,
    ) -> Result<(Sku, bool), ClientError> {
        Err(unused())
    }

    async fn restock(&self, _sku: &str, _quantity: u64) -> Result<Sku, ClientError> {
        Err(unused())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_open_loop_latencies() {
    let rate = 200.0;
    let scenario = Scenario {
        rate,
        ..Scenario::default()
    };
    let start = Instant::now();
    // 300 arrivals over 1.5 s; the stall starts after about 100 ms.
    let engine = Arc::new(Engine::new(
        vec![Endpoint {
            gateway: FakeGateway {
                stalled_call: Some(STALLED_CALL),
                ..FakeGateway::default()
            },
            transport: Transport::Http,
            address: "fake".into(),
            batch: 1,
        }],
        Recorder::new(start),
        0,
        Duration::ZERO,
        start + Duration::from_millis(1500),
        300,
    ));
    let workload = Workload::new(&scenario, "stall", sku_names("s", 2).into(), 1);
    // One sender: one call outstanding at most.
    schedule::open(
        &engine,
        vec![workload],
        rate,
        Duration::ZERO,
        Duration::from_secs(5),
    )
    .await;

    let recorded =
        std::mem::replace(&mut *engine.recorder.lock().unwrap(), Recorder::new(start)).finish();
    let stall_us = STALL.as_micros() as u64;
    let created = &recorded.by_outcome[CREATED];
    assert!(
        recorded.overall.max >= stall_us,
        "max {} µs < stall {stall_us} µs",
        recorded.overall.max
    );
    // The arrivals queued behind the stall carry their wait too: far more
    // than the one stalled call is slow, so p99 (not only max) shows it.
    assert!(
        created.p99 >= stall_us / 2,
        "p99 {} µs hides a {stall_us} µs stall",
        created.p99
    );
    assert!(
        recorded.counters.late > 1,
        "late {}",
        recorded.counters.late
    );
    assert_eq!(recorded.counters.acknowledged, recorded.counters.sent);
}

const DELAY: Duration = Duration::from_millis(20);

/// The open model's bound on outstanding calls is its number of senders:
/// offered four times what eight senders can carry, the run has exactly
/// eight calls in flight at its busiest, never more, and the arrivals that
/// waited for a sender are counted late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outstanding_calls_never_exceed_the_senders() {
    let senders = 8;
    // Eight senders at 20 ms a call carry 400 calls/s.
    let rate = 1600.0;
    let scenario = Scenario {
        rate,
        ..Scenario::default()
    };
    let gateway = FakeGateway {
        delay: DELAY,
        ..FakeGateway::default()
    };
    let start = Instant::now();
    let engine = Arc::new(Engine::new(
        vec![Endpoint {
            gateway,
            transport: Transport::Http,
            address: "fake".into(),
            batch: 1,
        }],
        Recorder::new(start),
        0,
        Duration::ZERO,
        start + Duration::from_millis(500),
        u64::MAX,
    ));
    let workloads = (0..senders)
        .map(|sender| Workload::new(&scenario, "bound", sku_names("s", 2).into(), sender))
        .collect();
    schedule::open(
        &engine,
        workloads,
        rate,
        Duration::ZERO,
        Duration::from_secs(5),
    )
    .await;

    let most = engine.endpoints[0]
        .gateway
        .most_in_flight
        .load(Ordering::SeqCst);
    assert_eq!(most, senders, "calls in flight at the busiest moment");
    let recorded =
        std::mem::replace(&mut *engine.recorder.lock().unwrap(), Recorder::new(start)).finish();
    assert!(
        recorded.counters.late > 0,
        "late {}",
        recorded.counters.late
    );
    assert_eq!(recorded.counters.acknowledged, recorded.counters.sent);
}
