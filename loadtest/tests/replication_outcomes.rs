//! What the engine makes of the answers a cluster gives around a failover,
//! through a scripted gateway: `standby_unavailable` may have made the order,
//! so it is retried under the same key and the order comes back as a replay;
//! `not_primary` (the client found no primary in time) did nothing and is an
//! error of its own code; a transport error that outlives the retries leaves
//! the order's units unknown to the audit. Only answers with an order count
//! as acknowledged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flashgate_client::{
    ChangeOrder, Changed, ClientError, Order, OrderGateway, OrderStatus, PlaceOrder, Placed, Sku,
    SkuSettings, TransportError,
};
use flashgate_loadtest::order_flow::{lock, Engine};
use flashgate_loadtest::recorder::{Recorder, CREATED, REPLAYED, TRANSPORT_ERROR};
use flashgate_loadtest::scenario::Scenario;
use flashgate_loadtest::target::{Endpoint, Transport};
use flashgate_loadtest::workload::{sku_names, Workload};

/// What the gateway does with the n-th distinct order (by idempotency key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Script {
    /// The first attempt makes the order but answers `standby_unavailable`;
    /// a retry under the key gets the order.
    StandbyUnavailableThenReplay,
    /// Every attempt: `not_primary`, nothing made.
    NotPrimary,
    /// Every attempt: the connection is lost.
    Lost,
    /// The order is made and answered.
    Placed,
}

const SCRIPT: [Script; 5] = [
    Script::StandbyUnavailableThenReplay,
    Script::NotPrimary,
    Script::Lost,
    Script::Placed,
    Script::Placed,
];

/// One order, by idempotency key.
#[derive(Clone, Copy)]
struct Seen {
    /// Its place among the distinct orders seen.
    index: usize,
    script: Script,
    attempts: u32,
}

#[derive(Default)]
struct ScriptedGateway {
    keys: Mutex<HashMap<String, Seen>>,
}

fn order_of(order: &PlaceOrder, index: usize) -> Order {
    Order {
        order_id: format!("1-0-{index}"),
        sku: order.sku.clone(),
        quantity: order.quantity,
        customer_id: order.customer_id.clone(),
        status: OrderStatus::Reserved,
        created_at_ms: 0,
        reserved_until_ms: 0,
        updated_at_ms: 0,
    }
}

fn refused(code: &str) -> ClientError {
    ClientError::Server {
        code: code.into(),
        detail: "scripted".into(),
    }
}

fn unused() -> ClientError {
    ClientError::Config("not used by this test".into())
}

impl OrderGateway for ScriptedGateway {
    async fn place(&self, order: PlaceOrder) -> Result<Placed, ClientError> {
        let key = order
            .idempotency_key
            .clone()
            .expect("the engine sends keys");
        let Seen {
            index,
            script,
            attempts,
        } = {
            let mut keys = self.keys.lock().unwrap();
            let index = keys.len();
            let seen = keys.entry(key).or_insert(Seen {
                index,
                script: SCRIPT[index % SCRIPT.len()],
                attempts: 0,
            });
            seen.attempts += 1;
            *seen
        };
        match (script, attempts) {
            (Script::StandbyUnavailableThenReplay, 1) => Err(refused("standby_unavailable")),
            (Script::StandbyUnavailableThenReplay, _) => Ok(Placed {
                order: order_of(&order, index),
                created: false,
            }),
            (Script::NotPrimary, _) => Err(refused("not_primary")),
            (Script::Lost, _) => Err(TransportError::ConnectionLost("scripted".into()).into()),
            (Script::Placed, _) => Ok(Placed {
                order: order_of(&order, index),
                created: true,
            }),
        }
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

#[tokio::test]
async fn replication_answers_are_retried_counted_and_audited_as_they_mean() {
    let retries = 2;
    let start = Instant::now();
    let engine = Arc::new(Engine::new(
        vec![Endpoint {
            gateway: ScriptedGateway::default(),
            transport: Transport::Quic,
            address: "fake-a,fake-b".into(),
            batch: 1,
        }],
        Recorder::new(start),
        retries,
        Duration::ZERO,
        start + Duration::from_secs(60),
        SCRIPT.len() as u64,
    ));
    let scenario = Scenario::default();
    let mut workload = Workload::new(&scenario, "replication", sku_names("s", 1).into(), 1);
    for seq in 0..SCRIPT.len() as u64 {
        engine
            .place_call(0, vec![workload.next(seq)], Instant::now())
            .await;
    }

    let recorded = std::mem::replace(&mut *lock(&engine.recorder), Recorder::new(start)).finish();
    assert_eq!(recorded.counters.sent, 5);
    assert_eq!(recorded.counters.acknowledged, 3);
    assert_eq!(recorded.created, 2);
    assert_eq!(recorded.replayed, 1);
    assert_eq!(recorded.by_outcome[CREATED].count, 2);
    assert_eq!(recorded.by_outcome[REPLAYED].count, 1);
    assert_eq!(recorded.errors_by_code.get("not_primary"), Some(&1));
    assert_eq!(recorded.errors_by_code.get(TRANSPORT_ERROR), Some(&1));
    assert_eq!(recorded.errors_by_code.get("standby_unavailable"), None);
    // One retry after standby_unavailable, every retry after the lost
    // connection; none after not_primary.
    assert_eq!(recorded.counters.retries, 1 + u64::from(retries));

    let ledger = lock(&engine.ledger);
    assert_eq!(ledger.orders.len(), 3);
    // The lost order may exist: its unit is unknown. The refused one did not
    // happen, and the replayed one is known.
    let unknown: u64 = ledger.unknown_units_by_sku.values().sum();
    assert_eq!(unknown, 1);
}
