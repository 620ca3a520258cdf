//! `run`: a whole run. Connect the targets, create or read the SKUs, drive the
//! load, let the planned confirms and cancels finish, read back every
//! acknowledged order and every SKU, audit, and build the `Report`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use flashgate_client::{
    ClientError, FailoverConfig, HttpClient, HttpConfig, OrderGateway, QuicClient, QuicConfig,
    SkuSettings, Trust,
};
use flashgate_protocol::code;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::audit::{audit, audit_incomplete, ReadBack};
use crate::error::LoadtestError;
use crate::order_flow::{lock, Engine};
use crate::progress::{self, ProgressMode};
use crate::recorder::Recorder;
use crate::report::{Latencies, NodeSwitchRecord, Report, SkuState, TargetState, Totals};
use crate::scenario::{nodes_of, LoadModel, Scenario, ServerTrust};
use crate::schedule;
use crate::target::{Client, Endpoint, Target, Transport};
use crate::workload::{sku_names, Workload};

/// Order ids per batched read-back (`read_orders`): the server's default
/// `orders_read_max`. A node that refuses the batch (a smaller limit, or a
/// version without the batched read) has the batch's orders read one by one.
pub const READ_BATCH_ORDERS: usize = 1000;
/// Batched read-backs in flight at once during the audit.
const READ_BATCHES_IN_FLIGHT_MAX: usize = 8;
/// Single-order read-backs in flight at once, where a batch was refused.
const READ_BACKS_IN_FLIGHT_MAX: usize = 32;
/// Attempts per read-back (transport errors are retried).
const READ_BACK_ATTEMPTS: u32 = 3;

/// Connects to the scenario's targets (only those) and runs it.
pub async fn run(scenario: &Scenario, progress: ProgressMode) -> Result<Report, LoadtestError> {
    let endpoints = connect(scenario).await?;
    run_with(scenario, endpoints, progress).await
}

/// The clients' failover: the scenario's wait, the client's default backoff.
fn failover(scenario: &Scenario) -> FailoverConfig {
    FailoverConfig {
        wait_max: scenario.failover_wait(),
        ..FailoverConfig::default()
    }
}

/// The clients for the scenario's targets, in the order given: HTTP first. A
/// target with several nodes is one client that follows their primary.
pub async fn connect(scenario: &Scenario) -> Result<Vec<Endpoint<Target>>, LoadtestError> {
    let mut endpoints = Vec::new();
    if scenario.uses_http() {
        let trust = trust(scenario)?;
        for url in &scenario.http {
            let http = |credential: Option<&String>| {
                let mut config = HttpConfig::with_base_urls(nodes_of(url));
                config.trust = trust.clone();
                config.admin_token = scenario.admin_token.clone();
                config.credential = credential.cloned();
                config.request_timeout = scenario.request_timeout();
                config.connect_timeout = scenario.connect_timeout();
                config.failover = failover(scenario);
                HttpClient::new(config)
                    .map_err(|error| LoadtestError::config("--http", error.to_string()))
            };
            let orders = Client::Http(http(scenario.credential.as_ref())?);
            let payments = match &scenario.payments_credential {
                Some(credential) => Some(Client::Http(http(Some(credential))?)),
                None => None,
            };
            endpoints.push(Endpoint {
                gateway: Target { orders, payments },
                transport: Transport::Http,
                address: url.clone(),
                batch: 1,
            });
        }
    }
    if scenario.uses_quic() {
        let trust = trust(scenario)?.ok_or_else(|| {
            LoadtestError::config(
                "--fingerprint/--cert/--insecure-accept-any-certificate",
                "QUIC targets need one of them",
            )
        })?;
        for address in &scenario.quic {
            let addrs = nodes_of(address)
                .into_iter()
                .map(|node| {
                    node.parse().map_err(|_| {
                        LoadtestError::config("--quic", format!("{node:?} is not IP:port"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let mut config = QuicConfig::new(addrs, trust.clone());
            config.admin_token = scenario.admin_token.clone();
            config.credential = scenario.credential.clone();
            config.request_timeout = scenario.request_timeout();
            config.connect_timeout = scenario.connect_timeout();
            config.failover = failover(scenario);
            // The client's own limits must not be tighter than the scenario's
            // concurrency: requests waiting inside the client would count as
            // server latency and cap the load below what was asked for.
            let (calls, streams) = quic_concurrency(scenario);
            config.requests_in_flight_max = calls;
            config.stream_count = streams;
            let config_for_payments = config.clone();
            let client =
                QuicClient::connect(config)
                    .await
                    .map_err(|source| LoadtestError::Connect {
                        target: format!("quic {address}"),
                        source,
                    })?;
            let payments = match &scenario.payments_credential {
                Some(credential) => {
                    let mut config = config_for_payments.clone();
                    config.credential = Some(credential.clone());
                    Some(Client::Quic(QuicClient::connect(config).await.map_err(
                        |source| LoadtestError::Connect {
                            target: format!("quic {address} (payments)"),
                            source,
                        },
                    )?))
                }
                None => None,
            };
            endpoints.push(Endpoint {
                gateway: Target {
                    orders: Client::Quic(client),
                    payments,
                },
                transport: Transport::Quic,
                address: address.clone(),
                batch: scenario.batch,
            });
        }
    }
    Ok(endpoints)
}

/// The server certificate trust the flags give (`--fingerprint`, `--cert`,
/// `--insecure-accept-any-certificate`), for QUIC and `https://` targets alike.
fn trust(scenario: &Scenario) -> Result<Option<Trust>, LoadtestError> {
    Ok(match scenario.server_trust() {
        Some(ServerTrust::Fingerprint(hex)) => Some(Trust::Fingerprint(hex.parse().map_err(
            |error: ClientError| LoadtestError::config("--fingerprint", error.to_string()),
        )?)),
        Some(ServerTrust::Certificate(path)) => {
            Some(Trust::Certificate(std::fs::read(&path).map_err(
                |error| LoadtestError::config("--cert", format!("{}: {error}", path.display())),
            )?))
        }
        Some(ServerTrust::InsecureAcceptAnyCertificate) => {
            Some(Trust::InsecureAcceptAnyCertificate)
        }
        None => None,
    })
}

/// Streams the load tester opens on one QUIC connection at most: a node's
/// default `quic_streams_per_connection_max`.
const QUIC_STREAMS_MAX: usize = 16;

/// Orders in flight and streams a QUIC client needs to carry the scenario's
/// concurrency: every buyer's (or every outstanding call's) batch at once.
fn quic_concurrency(scenario: &Scenario) -> (usize, usize) {
    let calls = match scenario.model {
        LoadModel::Closed => scenario.buyers,
        LoadModel::Open => scenario.outstanding_max,
    } as usize;
    let orders = calls.saturating_mul(scenario.batch as usize);
    (
        orders.clamp(1, flashgate_client::quic::REQUESTS_IN_FLIGHT_MAX_LIMIT),
        calls
            .clamp(1, QUIC_STREAMS_MAX)
            .min(flashgate_client::quic::STREAMS_MAX),
    )
}

/// A random id for this run (SKU prefix, customers, idempotency keys).
fn new_run_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// Runs `scenario` against `endpoints` (real clients, or a fake gateway in
/// tests). Returns once the audit is done; an audit that found violations is
/// a report with `audit.passed == false`, not an error.
pub async fn run_with<G: OrderGateway + Send + Sync + 'static>(
    scenario: &Scenario,
    endpoints: Vec<Endpoint<G>>,
    progress_mode: ProgressMode,
) -> Result<Report, LoadtestError> {
    if endpoints.is_empty() {
        return Err(LoadtestError::config(
            "--transport",
            "no target left to use",
        ));
    }
    let run_id = new_run_id();
    let prefix = scenario
        .sku_prefix
        .clone()
        .unwrap_or_else(|| format!("lt-{run_id}"));
    let names = sku_names(&prefix, scenario.skus);
    let setup_timeout = scenario.setup_timeout();
    let sole_writer =
        tokio::time::timeout(setup_timeout, prepare_skus(scenario, &endpoints[0], &names))
            .await
            .map_err(|_| LoadtestError::SetupTimedOut {
                secs: setup_timeout.as_secs_f64(),
            })??;

    let started_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    let start = Instant::now();
    let engine = Engine::new(
        endpoints,
        Recorder::new(start),
        scenario.retries,
        scenario.payment_delay(),
        start + scenario.duration(),
        scenario.orders_max(),
    );
    let engine = Arc::new(match scenario.waiting_room_admit_per_sec {
        Some(_) => engine.with_waiting_room(),
        None => engine,
    });
    let (stop_progress, stopped) = watch::channel(false);
    let progress_task = (progress_mode == ProgressMode::Auto)
        .then(|| tokio::spawn(progress::show(Arc::clone(&engine), start, stopped)));

    let seed = scenario.seed.unwrap_or_else(rand::random);
    let names: Arc<[String]> = names.into();
    // One workload per task, seeded from the run's seed and the task's index.
    let workloads = |tasks: u32| -> Vec<Workload> {
        (0..tasks)
            .map(|task| {
                let seed = seed.wrapping_add(u64::from(task));
                Workload::new(scenario, &run_id, Arc::clone(&names), seed)
            })
            .collect()
    };
    match scenario.model {
        LoadModel::Closed => {
            schedule::closed(
                &engine,
                workloads(scenario.buyers),
                scenario.ramp_up(),
                scenario.drain_timeout(),
            )
            .await;
        }
        LoadModel::Open => {
            schedule::open(
                &engine,
                workloads(scenario.outstanding_max),
                scenario.rate,
                scenario.ramp_up(),
                scenario.drain_timeout(),
            )
            .await;
        }
    }
    let measured = start.elapsed();

    // Let the planned confirms and cancels finish within what is left of the
    // drain bound (it started when the load stopped).
    let drain_until = (start + measured).min(engine.deadline) + scenario.drain_timeout();
    let mut payments = std::mem::take(&mut *lock(&engine.payments));
    engine.settle(&mut payments, drain_until).await;
    let _ = stop_progress.send(true);
    if let Some(task) = progress_task {
        let _ = task.await;
    }
    if let Some(error) = engine.take_no_primary() {
        return Err(error);
    }

    // Read back and audit.
    let ledger = std::mem::take(&mut *lock(&engine.ledger));
    let order_ids: Vec<String> = ledger.orders.keys().cloned().collect();
    let read_started = Instant::now();
    let read = tokio::time::timeout(scenario.audit_timeout(), async {
        let orders = read_back_orders(&engine, order_ids).await;
        let mut skus = BTreeMap::new();
        for name in names.iter() {
            let gateway = &engine.endpoints[0].gateway;
            skus.insert(
                name.clone(),
                read_back(|| gateway.sku(name), code::UNKNOWN_SKU).await,
            );
        }
        (orders, skus)
    })
    .await;
    let read_back_secs = read_started.elapsed().as_secs_f64();
    let (audit, skus) = match read {
        Ok((orders, skus)) => (audit(&ledger, &orders, &skus, sole_writer), skus),
        Err(_) => (
            audit_incomplete(ledger.orders.len() as u64, scenario.audit_timeout()),
            BTreeMap::new(),
        ),
    };

    let (targets, node_switches) = follow_ups(&engine.endpoints, start);
    let recorded = {
        let mut recorder = lock(&engine.recorder);
        for switch in &node_switches {
            recorder.node_switch(switch.at_secs);
        }
        std::mem::replace(&mut *recorder, Recorder::new(start)).finish()
    };
    let (confirmed, cancelled) = ledger.payments_done();
    let measured_secs = measured.as_secs_f64();
    let mut scenario = scenario.clone();
    scenario.admin_token = None;
    scenario.credential = None;
    scenario.payments_credential = None;
    Ok(Report {
        run_id,
        scenario,
        started_at_unix_ms,
        measured_secs,
        throughput_per_sec: recorded.counters.acknowledged as f64 / measured_secs.max(1e-6),
        totals: Totals {
            sent: recorded.counters.sent,
            acknowledged: recorded.counters.acknowledged,
            created: recorded.created,
            replayed: recorded.replayed,
            errors: recorded.counters.errors,
            abandoned: recorded
                .counters
                .sent
                .saturating_sub(recorded.counters.acknowledged + recorded.counters.errors),
            late: recorded.counters.late,
            retries: recorded.counters.retries,
            confirmed,
            cancelled,
            changes: ledger.change_totals(),
        },
        latency_us: Latencies {
            overall: recorded.overall,
            by_outcome: recorded.by_outcome,
        },
        errors_by_code: recorded.errors_by_code,
        timeline: recorded.timeline,
        targets,
        node_switches,
        skus: skus
            .values()
            .filter_map(|read| match read {
                ReadBack::Found(sku) => Some(SkuState {
                    sku: sku.sku.clone(),
                    total: sku.total,
                    available: sku.available,
                    reserved: sku.reserved,
                    sold: sku.sold,
                }),
                _ => None,
            })
            .collect(),
        audit,
        read_back_secs,
        waiting_room: engine
            .waiting_room
            .as_ref()
            .map(|stats| lock(stats).report()),
    })
}

/// Each target's nodes and the node that answered it last, and every switch
/// of answering node, in time order (seconds from `start`).
fn follow_ups<G: OrderGateway>(
    endpoints: &[Endpoint<G>],
    start: Instant,
) -> (Vec<TargetState>, Vec<NodeSwitchRecord>) {
    let mut targets = Vec::new();
    let mut switches = Vec::new();
    for endpoint in endpoints {
        targets.push(TargetState {
            transport: endpoint.transport.as_str().to_owned(),
            target: endpoint.address.clone(),
            nodes: nodes_of(&endpoint.address)
                .into_iter()
                .map(str::to_owned)
                .collect(),
            current_node: endpoint.gateway.current_node(),
        });
        for switch in endpoint.gateway.node_switches() {
            switches.push(NodeSwitchRecord::new(
                switch,
                start,
                endpoint.transport,
                &endpoint.address,
            ));
        }
    }
    switches.sort_by(|a, b| a.at_secs.total_cmp(&b.at_secs));
    (targets, switches)
}

/// Creates the SKUs (`--create-skus`) or checks that they exist. Returns
/// whether the run is their only writer: it created every one of them.
async fn prepare_skus<G: OrderGateway>(
    scenario: &Scenario,
    endpoint: &Endpoint<G>,
    names: &[String],
) -> Result<bool, LoadtestError> {
    let gateway = &endpoint.gateway;
    let mut sole_writer = scenario.create_skus;
    for name in names {
        let result = if scenario.create_skus {
            let settings = SkuSettings {
                stock: Some(scenario.stock),
                per_customer_limit: scenario.per_customer_limit,
                max_quantity_per_order: (scenario.quantity > 1).then_some(scenario.quantity),
                reservation_ttl_secs: scenario.reservation_ttl_secs,
                ..SkuSettings::default()
            };
            let put = match scenario.waiting_room_admit_per_sec {
                Some(admit_per_sec) => {
                    let room = flashgate_client::WaitingRoom {
                        admit_per_sec,
                        admitted_ttl_secs: scenario.waiting_room_admitted_ttl_secs,
                    };
                    gateway
                        .put_sku_with_waiting_room(name, settings, room)
                        .await
                }
                None => gateway.put_sku(name, settings).await,
            };
            put.map(|(_, created)| {
                // An existing SKU may have orders this run does not know.
                sole_writer &= created;
            })
        } else {
            gateway.sku(name).await.map(|_| ())
        };
        result.map_err(|source| match &source {
            ClientError::Server {
                code: refusal,
                detail,
            } if refusal == code::NOT_PRIMARY => {
                let flag = match endpoint.transport {
                    Transport::Http => "--http",
                    Transport::Quic => "--quic",
                };
                LoadtestError::no_primary(flag, &endpoint.address, detail)
            }
            _ => LoadtestError::Sku {
                sku: name.clone(),
                source,
            },
        })?;
    }
    Ok(sole_writer)
}

/// Reads a value back, retrying transport errors; `missing_code` is the
/// server's "does not exist".
async fn read_back<T, F, Fut>(mut call: F, missing_code: &str) -> ReadBack<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    let mut last = String::new();
    for _ in 0..READ_BACK_ATTEMPTS {
        match call().await {
            Ok(value) => return ReadBack::Found(value),
            Err(error) if error.code() == Some(missing_code) => return ReadBack::Missing,
            Err(error) if error.is_retryable() => last = error.to_string(),
            Err(error) => return ReadBack::Failed(error.to_string()),
        }
    }
    ReadBack::Failed(last)
}

/// Reads back every order in batches of `READ_BATCH_ORDERS`, at most
/// `READ_BATCHES_IN_FLIGHT_MAX` at once, round robin over the endpoints. A
/// batch that fails after its retries is read again order by order, so one
/// refusal (or a node without the batched read) costs speed, not the audit.
async fn read_back_orders<G: OrderGateway + Send + Sync + 'static>(
    engine: &Arc<Engine<G>>,
    order_ids: Vec<String>,
) -> HashMap<String, ReadBack<flashgate_client::Order>> {
    let slots = Arc::new(Semaphore::new(READ_BATCHES_IN_FLIGHT_MAX));
    let mut tasks = JoinSet::new();
    let mut results = HashMap::with_capacity(order_ids.len());
    let mut ids = order_ids.into_iter().peekable();
    while ids.peek().is_some() {
        let batch: Vec<String> = ids.by_ref().take(READ_BATCH_ORDERS).collect();
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let reader = Arc::clone(engine);
        tasks.spawn(async move {
            let gateway = &reader.endpoints[reader.pick_endpoint()].gateway;
            let read = read_back(|| gateway.read_orders(&batch), code::UNKNOWN_ORDER).await;
            drop(permit);
            (batch, read)
        });
        while let Some(Ok((batch, read))) = tasks.try_join_next() {
            settle_batch(engine, batch, read, &mut results).await;
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((batch, read)) = joined {
            settle_batch(engine, batch, read, &mut results).await;
        }
    }
    results
}

/// Files a batch's answer under each of its ids: found, or missing when the
/// node reported it unknown (or did not mention it); a batch that got no
/// usable answer is read again one order at a time.
async fn settle_batch<G: OrderGateway + Send + Sync + 'static>(
    engine: &Arc<Engine<G>>,
    batch: Vec<String>,
    read: ReadBack<flashgate_client::OrdersRead>,
    results: &mut HashMap<String, ReadBack<flashgate_client::Order>>,
) {
    match read {
        ReadBack::Found(read) => {
            let mut found: HashMap<String, flashgate_client::Order> = read
                .orders
                .into_iter()
                .map(|order| (order.order_id.clone(), order))
                .collect();
            for order_id in batch {
                let read = match found.remove(&order_id) {
                    Some(order) => ReadBack::Found(order),
                    None => ReadBack::Missing,
                };
                results.insert(order_id, read);
            }
        }
        ReadBack::Missing | ReadBack::Failed(_) => {
            results.extend(read_back_one_by_one(engine, batch).await);
        }
    }
}

async fn read_back_one_by_one<G: OrderGateway + Send + Sync + 'static>(
    engine: &Arc<Engine<G>>,
    order_ids: Vec<String>,
) -> HashMap<String, ReadBack<flashgate_client::Order>> {
    let slots = Arc::new(Semaphore::new(READ_BACKS_IN_FLIGHT_MAX));
    let mut tasks = JoinSet::new();
    let mut results = HashMap::new();
    for order_id in order_ids {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let engine = Arc::clone(engine);
        tasks.spawn(async move {
            let gateway = &engine.endpoints[engine.pick_endpoint()].gateway;
            let read = read_back(|| gateway.order(&order_id), code::UNKNOWN_ORDER).await;
            drop(permit);
            (order_id, read)
        });
        while let Some(Ok((order_id, read))) = tasks.try_join_next() {
            results.insert(order_id, read);
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Ok((order_id, read)) = joined {
            results.insert(order_id, read);
        }
    }
    results
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;

    #[test]
    fn the_quic_client_carries_every_buyers_batch_at_once() {
        let mut scenario = Scenario {
            buyers: 64,
            batch: 64,
            ..Scenario::default()
        };
        assert_eq!(quic_concurrency(&scenario), (4096, 16));
        scenario.buyers = 2;
        scenario.batch = 1;
        assert_eq!(quic_concurrency(&scenario), (2, 2));
        scenario.model = LoadModel::Open;
        scenario.outstanding_max = 1024;
        assert_eq!(quic_concurrency(&scenario), (1024, 16));
    }
}
