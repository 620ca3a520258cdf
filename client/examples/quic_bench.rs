//! Orders per second over one QUIC connection: `tasks` loops, each sending batch
//! frames of `batch` orders (distinct customers, spread over `skus` SKUs) and
//! waiting for their answers, so `tasks × batch` orders are in flight at once on
//! the connection's pipelined streams. Every counted order was acknowledged,
//! which flashgate does only once it is durable. Prints one summary line.
//!
//! `cargo run --release -p flashgate-client --example quic_bench -- \
//!     --addr 127.0.0.1:4433 --fingerprint HEX [--secs 20] [--tasks 8] [--batch 64] [--skus 8]`
//!
//! The SKUs `BENCH-0` .. `BENCH-<skus-1>` must exist with enough stock
//! (scripts/bench-quic.sh creates them). The connection authenticates with
//! `FLASHGATE_CREDENTIAL` (a service token) when it is set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flashgate_client::{OrderGateway, PlaceOrder, QuicClient, QuicConfig, Trust};

struct Args {
    addr: std::net::SocketAddr,
    fingerprint: String,
    secs: u64,
    tasks: usize,
    batch: usize,
    skus: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: "127.0.0.1:4433".parse().expect("a literal address"),
        fingerprint: String::new(),
        secs: 20,
        tasks: 8,
        batch: 64,
        skus: 8,
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: {value} is not a number"))
        };
        match flag.as_str() {
            "--addr" => {
                args.addr = value
                    .parse()
                    .map_err(|_| format!("--addr: {value} is not host:port"))?
            }
            "--fingerprint" => args.fingerprint = value.clone(),
            "--secs" => args.secs = number()?.clamp(1, 600),
            "--tasks" => args.tasks = number()?.clamp(1, 256) as usize,
            "--batch" => args.batch = number()?.clamp(1, 1024) as usize,
            "--skus" => args.skus = number()?.clamp(1, 1000) as usize,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.fingerprint.is_empty() {
        return Err("--fingerprint is required (flashgate serve prints it)".into());
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            eprintln!("quic_bench: {error}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let fingerprint = args
        .fingerprint
        .parse()
        .expect("a SHA-256 fingerprint in hex");
    let mut config = QuicConfig::new(vec![args.addr], Trust::Fingerprint(fingerprint));
    config.credential = std::env::var("FLASHGATE_CREDENTIAL").ok();
    config.requests_in_flight_max = args.tasks * args.batch;
    config.stream_count = args.tasks.min(8);
    let client = Arc::new(QuicClient::connect(config).await.expect("connect"));
    let acknowledged = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.secs);
    let mut latencies_us = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..args.tasks {
        let client = Arc::clone(&client);
        let acknowledged = Arc::clone(&acknowledged);
        let refused = Arc::clone(&refused);
        let (batch, skus) = (args.batch, args.skus);
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut sent: u64 = 0;
            while Instant::now() < deadline {
                let orders = (0..batch)
                    .map(|i| {
                        sent += 1;
                        PlaceOrder::new(
                            format!("BENCH-{}", (sent as usize + i) % skus),
                            1,
                            format!("q-{task}-{sent}"),
                        )
                    })
                    .collect();
                let asked = Instant::now();
                let results = client
                    .place_batch(orders)
                    .await
                    .expect("the batch is answered");
                latencies.push(asked.elapsed().as_micros() as u64);
                for result in results {
                    match result {
                        Ok(_) => acknowledged.fetch_add(1, Ordering::Relaxed),
                        Err(_) => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }
            latencies
        });
    }
    while let Some(latencies) = tasks.join_next().await {
        latencies_us.extend(latencies.expect("a bench task panicked"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_us.sort_unstable();
    let percentile = |p: f64| latencies_us[((latencies_us.len() - 1) as f64 * p) as usize];
    let acknowledged = acknowledged.load(Ordering::Relaxed);
    println!(
        "quic orders/s {:.0} acknowledged {} refused {} batches {} batch_latency_us p50 {} p99 {} ({} tasks x {} orders per batch, one connection)",
        acknowledged as f64 / elapsed,
        acknowledged,
        refused.load(Ordering::Relaxed),
        latencies_us.len(),
        percentile(0.5),
        percentile(0.99),
        args.tasks,
        args.batch
    );
}
