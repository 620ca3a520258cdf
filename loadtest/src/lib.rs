//! flashgate-loadtest: drives a flashgate node with many buyers over HTTP and
//! QUIC (through `flashgate_client`, the same library upstreams use), measures
//! latencies in HDR histograms, and ends every run with an audit that reads
//! back every acknowledged order and every touched SKU.
//!
//! Two load models: a closed loop (N buyers, each sending its next order when
//! the last one is answered) and an open loop (a constant arrival rate; each
//! latency counts from the request's *intended* send time, as wrk2 does, so a
//! server that stalls shows in the numbers instead of slowing the load down).
//!
//! # Layout
//! - `scenario`: `Scenario`, everything a run does; `Flags`, the command line;
//!   defaults → TOML file → flags (figment), then validation naming the flag.
//! - `error`: `LoadtestError`, one enum for everything that stops a run.
//! - `target`: `Endpoint` (one gateway, its transport and batch size) and
//!   `Target`, the HTTP or QUIC client behind `OrderGateway`.
//! - `workload`: which SKU, customer and idempotency key the next order gets
//!   (uniform or Zipf popularity), and what happens after payment (pure).
//! - `recorder`: `Recorder`, HDR histograms per outcome, counters, the
//!   per-second timeline.
//! - `ledger`: `Ledger`, every acknowledged order and what the run did to it,
//!   the input of the audit.
//! - `order_flow`: one order's life: place with idempotent retries, then
//!   confirm or cancel after the payment delay.
//! - `schedule`: the two load models (closed buyers, open-loop arrivals with
//!   intended send times and a bound on outstanding requests).
//! - `audit`: pure checks over the ledger and what was read back: oversell,
//!   missing or changed orders, duplicate ids per key, counters.
//! - `run`: `run`, the whole run: connect, create SKUs, load, drain, read
//!   back, audit, `Report`.
//! - `report`: `Report`, the JSON report (fields documented in
//!   docs/LOADTEST.md) and the human summary.
//! - `html`: the self-contained HTML report with inline SVG charts.
//! - `cli`: `execute`, the command line's run, summary, report files and exit
//!   code (`main` is a thin shell around it).
//! - `progress`: live progress (indicatif on a terminal, one line per second
//!   otherwise).

pub mod audit;
pub mod cli;
pub mod error;
pub mod html;
pub mod ledger;
pub mod order_flow;
pub mod progress;
pub mod queue;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scenario;
pub mod schedule;
pub mod target;
pub mod workload;

pub use error::LoadtestError;
pub use report::Report;
pub use run::run;
pub use scenario::{Flags, Scenario};
