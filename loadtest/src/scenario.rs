//! `Scenario`: everything a run does, from defaults, an optional TOML file
//! and the command line (flags override the file), checked once so the rest of
//! the crate can trust it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::error::LoadtestError;

/// Hard cap on a run's duration, whatever the flags say.
pub const DURATION_SECS_MAX: f64 = 3600.0;
/// Hard cap on the orders of one run (the ledger keeps each acknowledged one).
pub const ORDERS_MAX: u64 = 2_000_000;
/// Hard caps on the load's shape.
pub const BUYERS_MAX: u32 = 10_000;
pub const RATE_PER_SEC_MAX: f64 = 1_000_000.0;
pub const OUTSTANDING_MAX_LIMIT: u32 = 65_536;
pub const SKUS_MAX: u32 = 100_000;
pub const CUSTOMERS_MAX: u32 = 10_000_000;
pub const RETRIES_MAX: u32 = 10;
pub const BATCH_MAX: u32 = 1_000;
pub const TARGETS_MAX: usize = 16;
/// Most nodes in one target (the clients' own limit).
pub const NODES_PER_TARGET_MAX: usize = 16;
pub const PAYMENT_DELAY_MS_MAX: u64 = 600_000;
pub const REQUEST_TIMEOUT_MS_MAX: u64 = 600_000;
pub const FAILOVER_WAIT_MS_MAX: u64 = 600_000;
/// Upper bounds of the drain and audit bounds.
pub const DRAIN_TIMEOUT_MS_MAX: u64 = 600_000;
pub const AUDIT_TIMEOUT_MS_MAX: u64 = 3_600_000;
/// What separates the nodes of one cluster in a target (`--http a,b`).
pub const NODE_SEPARATOR: char = ',';

/// How the load is generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoadModel {
    /// `buyers` concurrent buyers, each sending its next order when the last
    /// one is answered.
    Closed,
    /// A constant arrival rate, whatever the server does.
    Open,
}

/// Which of the given targets to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    Http,
    Quic,
    Both,
}

/// How buyers pick a SKU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Popularity {
    Uniform,
    /// SKU `i` (1-based) is picked with weight `1 / i^zipf_exponent`.
    Zipf,
}

/// A validated run description. Field names are the TOML keys.
///
/// A target (an entry of `http` or `quic`) is one gateway: one node, or the
/// nodes of one cluster separated by commas (`"http://a:8080,http://b:8080"`),
/// which one client follows as the primary moves among them. Several targets
/// are several ways into the same orders (the HTTP and QUIC listeners of one
/// node or cluster): the load is spread over them and the audit reads back
/// through any of them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// HTTP targets: base URLs (`http://host:port` or `https://host:port`),
    /// comma-separated for the nodes of one cluster.
    pub http: Vec<String>,
    /// QUIC targets: addresses (`IP:port`, UDP), comma-separated for the nodes
    /// of one cluster.
    pub quic: Vec<String>,
    /// SHA-256 of the server certificate (QUIC and `https://` targets), 64
    /// hex digits.
    pub fingerprint: Option<String>,
    /// PEM or DER certificate file (the server's, or its CA's) that QUIC and
    /// `https://` servers must present.
    pub cert: Option<PathBuf>,
    pub insecure_accept_any_certificate: bool,
    /// `None`: every given target.
    pub transport: Option<TransportChoice>,
    /// Orders per QUIC batch frame (`place_batch`); HTTP always sends one.
    pub batch: u32,
    pub model: LoadModel,
    /// Closed model: concurrent buyers.
    pub buyers: u32,
    /// Open model: calls per second (a QUIC batch is one call).
    pub rate: f64,
    /// Open model: calls in flight at most; an arrival beyond it waits and is
    /// counted late.
    pub outstanding_max: u32,
    pub duration_secs: f64,
    /// Stop after this many orders (or at `duration_secs`, whichever first).
    pub orders: Option<u64>,
    pub ramp_up_secs: f64,
    pub skus: u32,
    /// Units per SKU when `create_skus`.
    pub stock: u64,
    pub per_customer_limit: Option<u64>,
    pub reservation_ttl_secs: Option<u32>,
    /// The waiting-room scenario: the SKUs are behind a waiting room
    /// admitting this many buyers a second (put on them with
    /// `create_skus`); each order first joins the queue, polls it honouring
    /// `poll_after`, and orders with its admission. HTTP targets only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room_admit_per_sec: Option<u32>,
    /// How long an admission may be used (with `create_skus`).
    pub waiting_room_admitted_ttl_secs: u32,
    /// Units per order.
    pub quantity: u32,
    pub create_skus: bool,
    pub admin_token: Option<String>,
    /// Sent with every call but confirmations and admin calls: a service
    /// token (any customer) or a buyer token (one customer).
    pub credential: Option<String>,
    /// Sent with confirmations (a payments token); without it they go with
    /// `credential`.
    pub payments_credential: Option<String>,
    /// SKU names are `<sku_prefix>-<i>`, `i` from 0; default a run-unique prefix.
    pub sku_prefix: Option<String>,
    pub customers: u32,
    pub popularity: Popularity,
    pub zipf_exponent: f64,
    /// Share of acknowledged orders confirmed after `payment_delay_ms`.
    pub confirm_ratio: f64,
    /// Share of acknowledged orders cancelled after `payment_delay_ms`.
    pub cancel_ratio: f64,
    /// Share of orders changed once acknowledged (before their confirm or
    /// cancel): to another quantity, another SKU of the run, or both. A SKU
    /// on another shard than the order's is refused (`change_across_shards`)
    /// and counted as such.
    pub change_ratio: f64,
    pub payment_delay_ms: u64,
    /// Retries of an order after a timeout or transport error, under the same
    /// idempotency key.
    pub retries: u32,
    /// One attempt at one node, for every call.
    pub request_timeout_ms: u64,
    /// The clients' TCP connect / QUIC handshake timeout, per node. A QUIC
    /// node that died is noticed only after it (nothing refuses a UDP
    /// handshake), so keep it short for a cluster.
    pub connect_timeout_ms: u64,
    /// How long a client looks for a node that takes a call after its node
    /// refused it as `not_primary` or could not be reached (the clients'
    /// `FailoverConfig::wait_max`); 0 turns failover off.
    pub failover_wait_ms: u64,
    /// After the load stops (at `duration_secs`), how long calls still in
    /// flight and the planned confirms and cancels may take. What is still
    /// open then is abandoned: counted, and its orders' outcome treated as
    /// unknown by the audit.
    pub drain_timeout_ms: u64,
    /// How long reading back every acknowledged order and SKU may take. An
    /// audit cut short by it fails (`audit_incomplete`), never passes.
    pub audit_timeout_ms: u64,
    /// Seed of the workload's random choices; random when absent.
    pub seed: Option<u64>,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            http: Vec::new(),
            quic: Vec::new(),
            fingerprint: None,
            cert: None,
            insecure_accept_any_certificate: false,
            transport: None,
            batch: 1,
            model: LoadModel::Closed,
            buyers: 32,
            rate: 1000.0,
            outstanding_max: 1024,
            duration_secs: 10.0,
            orders: None,
            ramp_up_secs: 0.0,
            skus: 10,
            stock: 1000,
            per_customer_limit: None,
            reservation_ttl_secs: None,
            waiting_room_admit_per_sec: None,
            waiting_room_admitted_ttl_secs: 60,
            quantity: 1,
            create_skus: false,
            admin_token: None,
            credential: None,
            payments_credential: None,
            sku_prefix: None,
            customers: 10_000,
            popularity: Popularity::Uniform,
            zipf_exponent: 1.0,
            confirm_ratio: 0.0,
            cancel_ratio: 0.0,
            change_ratio: 0.0,
            payment_delay_ms: 0,
            retries: 3,
            request_timeout_ms: 10_000,
            connect_timeout_ms: 5_000,
            failover_wait_ms: 10_000,
            drain_timeout_ms: 10_000,
            audit_timeout_ms: 60_000,
            seed: None,
        }
    }
}

/// The command line. Every flag is optional so that it overrides the TOML
/// file only when given.
#[derive(Clone, Debug, Default, Parser, Serialize)]
#[command(
    name = "flashgate-loadtest",
    about = "Load-test a flashgate node over HTTP and QUIC, then audit every acknowledged order."
)]
pub struct Flags {
    /// A scenario TOML file (keys as the flags, with `_`); flags override it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub report_json: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub report_html: Option<PathBuf>,

    /// An HTTP target (repeatable): a base URL, or the comma-separated base
    /// URLs of one cluster's nodes, followed as one gateway.
    #[arg(long, value_name = "URL[,URL...]")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<String>,
    /// A QUIC target (repeatable): an IP:port, or the comma-separated
    /// addresses of one cluster's nodes, followed as one gateway.
    #[arg(long, value_name = "ADDR[,ADDR...]")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quic: Vec<String>,
    /// Pin the server certificate (QUIC and https:// targets) by its SHA-256
    /// (64 hex digits).
    #[arg(long, value_name = "HEX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Trust this PEM/DER certificate, or the CA it is, for QUIC and https://
    /// targets.
    #[arg(long, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// INSECURE: accept any QUIC or HTTPS certificate (throwaway local tests
    /// only).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub insecure_accept_any_certificate: bool,
    /// Which given targets to use (default: all of them).
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<TransportChoice>,
    /// Orders per QUIC batch frame.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Load model.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<LoadModel>,
    /// Closed model: concurrent buyers.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyers: Option<u32>,
    /// Open model: calls per second.
    #[arg(long, value_name = "R")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Open model: calls in flight at most.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outstanding_max: Option<u32>,
    /// Send load for this many seconds at most [default: 10]. The whole run
    /// takes at most the setup (connect timeout, then failover wait plus
    /// twice the request timeout), this, the drain timeout and the audit
    /// timeout.
    #[arg(long = "duration", value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
    /// Stop after this many orders.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub orders: Option<u64>,
    /// Ramp the load up linearly over this many seconds.
    #[arg(long = "ramp-up", value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_up_secs: Option<f64>,
    /// Number of SKUs.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skus: Option<u32>,
    /// Units per SKU (with --create-skus).
    #[arg(long, value_name = "UNITS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stock: Option<u64>,
    /// Units one customer may hold per SKU (with --create-skus).
    #[arg(long, value_name = "UNITS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_customer_limit: Option<u64>,
    /// Reservation TTL of created SKUs.
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_ttl_secs: Option<u32>,
    /// The waiting-room scenario: SKUs behind a waiting room admitting N
    /// buyers a second; each order joins, polls and orders when admitted
    /// (HTTP only; one order per call).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room_admit_per_sec: Option<u32>,
    /// How long an admission may be used (with --waiting-room-admit-per-sec
    /// and --create-skus; default 60).
    #[arg(long, value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_room_admitted_ttl_secs: Option<u32>,
    /// Units per order.
    #[arg(long, value_name = "UNITS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<u32>,
    /// Create the SKUs through the admin API (needs --admin-token).
    #[arg(long)]
    #[serde(skip_serializing_if = "is_false")]
    pub create_skus: bool,
    /// The admin token, for --create-skus.
    #[arg(long, value_name = "TOKEN", env = "FLASHGATE_ADMIN_TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// The credential sent with orders, reads and cancellations: a service
    /// token (it orders for any customer).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLASHGATE_CREDENTIAL",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
    /// The credential sent with confirmations (--confirm-ratio): a payments token.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "FLASHGATE_PAYMENTS_CREDENTIAL",
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payments_credential: Option<String>,
    /// SKU names are <PREFIX>-<i>.
    #[arg(long, value_name = "PREFIX")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku_prefix: Option<String>,
    /// Number of distinct customers.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customers: Option<u32>,
    /// How buyers pick SKUs.
    #[arg(long, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub popularity: Option<Popularity>,
    /// Zipf exponent (with --popularity zipf).
    #[arg(long, value_name = "S")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zipf_exponent: Option<f64>,
    /// Share of acknowledged orders to confirm (0..=1).
    #[arg(long, value_name = "RATIO")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_ratio: Option<f64>,
    /// Share of acknowledged orders to cancel (0..=1).
    #[arg(long, value_name = "RATIO")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_ratio: Option<f64>,
    /// Share of orders to change once acknowledged (0..=1): another
    /// quantity, another SKU of the run, or both.
    #[arg(long, value_name = "RATIO")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_ratio: Option<f64>,
    /// Confirm/cancel this long after the reservation.
    #[arg(long = "payment-delay", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_delay_ms: Option<u64>,
    /// Retries after a timeout or transport error (same idempotency key).
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Per-request timeout (one attempt at one node).
    #[arg(long = "request-timeout", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// Connect / handshake timeout per node.
    #[arg(long = "connect-timeout", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// How long a client looks for the primary among a target's nodes (0: no
    /// failover).
    #[arg(long = "failover-wait", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover_wait_ms: Option<u64>,
    /// After the load stops, how long calls in flight and planned confirms
    /// and cancels may still take; what is open then is abandoned and
    /// reported [default: 10000].
    #[arg(long = "drain-timeout", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain_timeout_ms: Option<u64>,
    /// How long the audit's read-back may take; an audit cut short fails
    /// [default: 60000].
    #[arg(long = "audit-timeout", value_name = "MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_timeout_ms: Option<u64>,
    /// Seed for the workload's random choices.
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The nodes of a target: its comma-separated parts, trimmed.
pub fn nodes_of(target: &str) -> Vec<&str> {
    target.split(NODE_SEPARATOR).map(str::trim).collect()
}

/// How the server's certificate is trusted, over QUIC and HTTPS alike.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerTrust {
    Fingerprint(String),
    Certificate(PathBuf),
    InsecureAcceptAnyCertificate,
}

impl Scenario {
    /// Defaults, then the `--config` file, then the flags; validated.
    pub fn load(flags: &Flags) -> Result<Scenario, LoadtestError> {
        let mut figment = Figment::from(Serialized::defaults(Scenario::default()));
        if let Some(path) = &flags.config {
            if !path.is_file() {
                return Err(LoadtestError::config(
                    "--config",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        let scenario: Scenario = figment
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(|error| LoadtestError::config("--config", error.to_string()))?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks every field; the error names the flag to fix.
    pub fn validate(&self) -> Result<(), LoadtestError> {
        let bad = |flag: &str, message: String| Err(LoadtestError::config(flag, message));
        if self.http.is_empty() && self.quic.is_empty() {
            return bad("--http/--quic", "give at least one target".into());
        }
        if self.http.len() > TARGETS_MAX || self.quic.len() > TARGETS_MAX {
            return bad("--http/--quic", format!("at most {TARGETS_MAX} of each"));
        }
        for (flag, targets) in [("--http", &self.http), ("--quic", &self.quic)] {
            for target in targets {
                let nodes = nodes_of(target);
                if nodes.len() > NODES_PER_TARGET_MAX {
                    return bad(
                        flag,
                        format!("{target:?}: at most {NODES_PER_TARGET_MAX} nodes in one target"),
                    );
                }
                if nodes.iter().any(|node| node.is_empty()) {
                    return bad(flag, format!("{target:?}: an empty node between commas"));
                }
                let distinct: std::collections::BTreeSet<&str> = nodes.iter().copied().collect();
                if distinct.len() != nodes.len() {
                    return bad(flag, format!("{target:?}: a node is given twice"));
                }
            }
        }
        for target in &self.quic {
            for node in nodes_of(target) {
                if node.parse::<SocketAddr>().is_err() {
                    return bad("--quic", format!("{node:?} is not an IP:port address"));
                }
            }
        }
        match self.transport {
            Some(TransportChoice::Http) if self.http.is_empty() => {
                return bad("--transport", "http needs at least one --http URL".into())
            }
            Some(TransportChoice::Quic) if self.quic.is_empty() => {
                return bad(
                    "--transport",
                    "quic needs at least one --quic address".into(),
                )
            }
            Some(TransportChoice::Both) if self.http.is_empty() || self.quic.is_empty() => {
                return bad("--transport", "both needs --http and --quic targets".into())
            }
            _ => {}
        }
        let trusts = usize::from(self.fingerprint.is_some())
            + usize::from(self.cert.is_some())
            + usize::from(self.insecure_accept_any_certificate);
        if (self.uses_quic() || self.uses_https()) && trusts != 1 {
            return bad(
                "--fingerprint/--cert/--insecure-accept-any-certificate",
                "QUIC and https:// targets need exactly one of them".into(),
            );
        }
        if !(1..=BATCH_MAX).contains(&self.batch) {
            return bad("--batch", format!("must be 1 to {BATCH_MAX}"));
        }
        if !(1..=BUYERS_MAX).contains(&self.buyers) {
            return bad("--buyers", format!("must be 1 to {BUYERS_MAX}"));
        }
        if !(self.rate > 0.0 && self.rate <= RATE_PER_SEC_MAX) {
            return bad(
                "--rate",
                format!("must be > 0 and at most {RATE_PER_SEC_MAX}"),
            );
        }
        if !(1..=OUTSTANDING_MAX_LIMIT).contains(&self.outstanding_max) {
            return bad(
                "--outstanding-max",
                format!("must be 1 to {OUTSTANDING_MAX_LIMIT}"),
            );
        }
        if !(self.duration_secs > 0.0 && self.duration_secs <= DURATION_SECS_MAX) {
            return bad(
                "--duration",
                format!("must be > 0 and at most {DURATION_SECS_MAX} seconds"),
            );
        }
        if let Some(orders) = self.orders {
            if !(1..=ORDERS_MAX).contains(&orders) {
                return bad("--orders", format!("must be 1 to {ORDERS_MAX}"));
            }
        }
        if !(self.ramp_up_secs >= 0.0 && self.ramp_up_secs <= self.duration_secs) {
            return bad(
                "--ramp-up",
                "must be between 0 and --duration seconds".into(),
            );
        }
        if !(1..=SKUS_MAX).contains(&self.skus) {
            return bad("--skus", format!("must be 1 to {SKUS_MAX}"));
        }
        if self.stock == 0 {
            return bad("--stock", "must be at least 1".into());
        }
        if self.quantity == 0 {
            return bad("--quantity", "must be at least 1".into());
        }
        if !(1..=CUSTOMERS_MAX).contains(&self.customers) {
            return bad("--customers", format!("must be 1 to {CUSTOMERS_MAX}"));
        }
        if self.create_skus && self.admin_token.is_none() {
            return bad(
                "--admin-token",
                "--create-skus needs the admin token".into(),
            );
        }
        if !self.create_skus && self.sku_prefix.is_none() {
            return bad(
                "--sku-prefix",
                "name the existing SKUs' prefix, or pass --create-skus".into(),
            );
        }
        if let Some(prefix) = &self.sku_prefix {
            if prefix.is_empty() || prefix.len() > 64 {
                return bad("--sku-prefix", "must be 1 to 64 characters".into());
            }
        }
        if !(self.zipf_exponent > 0.0 && self.zipf_exponent <= 10.0) {
            return bad("--zipf-exponent", "must be > 0 and at most 10".into());
        }
        for (flag, ratio) in [
            ("--confirm-ratio", self.confirm_ratio),
            ("--cancel-ratio", self.cancel_ratio),
            ("--change-ratio", self.change_ratio),
        ] {
            if !(0.0..=1.0).contains(&ratio) {
                return bad(flag, "must be between 0 and 1".into());
            }
        }
        if let Some(rate) = self.waiting_room_admit_per_sec {
            let flag = "--waiting-room-admit-per-sec";
            if rate == 0 {
                return bad(flag, "must be at least 1".into());
            }
            if self.uses_quic() {
                return bad(
                    flag,
                    "waiting rooms are reached over HTTP: use --transport http or drop --quic"
                        .into(),
                );
            }
            if self.waiting_room_admitted_ttl_secs == 0 {
                return bad(
                    "--waiting-room-admitted-ttl-secs",
                    "must be at least 1".into(),
                );
            }
        }
        if self.confirm_ratio + self.cancel_ratio > 1.0 {
            return bad(
                "--confirm-ratio/--cancel-ratio",
                "their sum must be at most 1".into(),
            );
        }
        if self.payment_delay_ms > PAYMENT_DELAY_MS_MAX {
            return bad(
                "--payment-delay",
                format!("at most {PAYMENT_DELAY_MS_MAX} ms"),
            );
        }
        if self.retries > RETRIES_MAX {
            return bad("--retries", format!("at most {RETRIES_MAX}"));
        }
        if !(1..=REQUEST_TIMEOUT_MS_MAX).contains(&self.request_timeout_ms) {
            return bad(
                "--request-timeout",
                format!("must be 1 to {REQUEST_TIMEOUT_MS_MAX} ms"),
            );
        }
        if !(1..=REQUEST_TIMEOUT_MS_MAX).contains(&self.connect_timeout_ms) {
            return bad(
                "--connect-timeout",
                format!("must be 1 to {REQUEST_TIMEOUT_MS_MAX} ms"),
            );
        }
        if self.failover_wait_ms > FAILOVER_WAIT_MS_MAX {
            return bad(
                "--failover-wait",
                format!("at most {FAILOVER_WAIT_MS_MAX} ms"),
            );
        }
        if !(1..=DRAIN_TIMEOUT_MS_MAX).contains(&self.drain_timeout_ms) {
            return bad(
                "--drain-timeout",
                format!("must be 1 to {DRAIN_TIMEOUT_MS_MAX} ms"),
            );
        }
        if !(1..=AUDIT_TIMEOUT_MS_MAX).contains(&self.audit_timeout_ms) {
            return bad(
                "--audit-timeout",
                format!("must be 1 to {AUDIT_TIMEOUT_MS_MAX} ms"),
            );
        }
        Ok(())
    }

    /// Whether QUIC targets take part in the run.
    pub fn uses_quic(&self) -> bool {
        !self.quic.is_empty() && self.transport != Some(TransportChoice::Http)
    }

    /// Whether HTTP targets take part in the run.
    pub fn uses_http(&self) -> bool {
        !self.http.is_empty() && self.transport != Some(TransportChoice::Quic)
    }

    /// Whether an `https://` node takes part in the run.
    pub fn uses_https(&self) -> bool {
        self.uses_http()
            && self.http.iter().any(|target| {
                nodes_of(target)
                    .iter()
                    .any(|node| node.starts_with("https://"))
            })
    }

    /// The certificate trust, for QUIC and `https://` targets (validated to
    /// be exactly one when they are used).
    pub fn server_trust(&self) -> Option<ServerTrust> {
        if let Some(hex) = &self.fingerprint {
            return Some(ServerTrust::Fingerprint(hex.clone()));
        }
        if let Some(path) = &self.cert {
            return Some(ServerTrust::Certificate(path.clone()));
        }
        self.insecure_accept_any_certificate
            .then_some(ServerTrust::InsecureAcceptAnyCertificate)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration_secs)
    }

    pub fn ramp_up(&self) -> Duration {
        Duration::from_secs_f64(self.ramp_up_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn failover_wait(&self) -> Duration {
        Duration::from_millis(self.failover_wait_ms)
    }

    /// The longest one call may take in the client: its first attempt, then
    /// attempts at other nodes started within the failover wait, each up to
    /// the request timeout.
    pub fn call_time_max(&self) -> Duration {
        self.failover_wait() + self.request_timeout() * 2
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_millis(self.drain_timeout_ms)
    }

    pub fn audit_timeout(&self) -> Duration {
        Duration::from_millis(self.audit_timeout_ms)
    }

    /// The bound on preparing the SKUs before the load: one call's longest
    /// time in the client (`call_time_max`).
    pub fn setup_timeout(&self) -> Duration {
        self.call_time_max()
    }

    pub fn payment_delay(&self) -> Duration {
        Duration::from_millis(self.payment_delay_ms)
    }

    /// The order cap: `--orders` or the hard cap.
    pub fn orders_max(&self) -> u64 {
        self.orders.unwrap_or(ORDERS_MAX).min(ORDERS_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags {
            http: vec!["http://127.0.0.1:8080".into()],
            sku_prefix: Some("shoe".into()),
            ..Flags::default()
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.toml");
        std::fs::write(
            &path,
            "buyers = 7\nskus = 3\nmodel = \"open\"\nrate = 50.0\n",
        )
        .unwrap();
        let mut flags = flags();
        flags.config = Some(path);
        flags.skus = Some(5);
        let scenario = Scenario::load(&flags).unwrap();
        assert_eq!(scenario.buyers, 7);
        assert_eq!(scenario.skus, 5);
        assert_eq!(scenario.model, LoadModel::Open);
        assert_eq!(scenario.rate, 50.0);
    }

    #[test]
    fn errors_name_the_flag() {
        let mut bad = flags();
        bad.quic = vec!["127.0.0.1:4433".into()];
        let error = Scenario::load(&bad).unwrap_err().to_string();
        assert!(error.contains("--fingerprint"), "{error}");

        let mut bad = flags();
        bad.http = vec!["https://localhost:8443".into()];
        let error = Scenario::load(&bad).unwrap_err().to_string();
        assert!(error.contains("https://"), "{error}");
        bad.insecure_accept_any_certificate = true;
        assert!(Scenario::load(&bad).unwrap().uses_https());

        let mut bad = flags();
        bad.change_ratio = Some(1.5);
        let error = Scenario::load(&bad).unwrap_err().to_string();
        assert!(error.contains("--change-ratio"), "{error}");

        let mut bad = flags();
        bad.confirm_ratio = Some(0.8);
        bad.cancel_ratio = Some(0.5);
        let error = Scenario::load(&bad).unwrap_err().to_string();
        assert!(error.contains("--confirm-ratio"), "{error}");

        let mut bad = flags();
        bad.duration_secs = Some(DURATION_SECS_MAX + 1.0);
        let error = Scenario::load(&bad).unwrap_err().to_string();
        assert!(error.contains("--duration"), "{error}");
    }

    #[test]
    fn a_target_may_name_the_nodes_of_one_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.toml");
        std::fs::write(
            &path,
            "http = [\"http://127.0.0.1:8080, http://127.0.0.1:8081\"]\n\
             quic = [\"127.0.0.1:4433,127.0.0.1:4434\"]\n\
             insecure_accept_any_certificate = true\n\
             failover_wait_ms = 3000\n",
        )
        .unwrap();
        let mut flags = flags();
        flags.http.clear();
        flags.config = Some(path);
        let scenario = Scenario::load(&flags).unwrap();
        assert_eq!(scenario.http.len(), 1);
        assert_eq!(
            nodes_of(&scenario.http[0]),
            ["http://127.0.0.1:8080", "http://127.0.0.1:8081"]
        );
        assert_eq!(
            nodes_of(&scenario.quic[0]),
            ["127.0.0.1:4433", "127.0.0.1:4434"]
        );
        assert_eq!(scenario.failover_wait(), Duration::from_secs(3));

        // On the command line: one flag, one cluster; repeated flags, more
        // targets.
        let flags = Flags::parse_from([
            "flashgate-loadtest",
            "--http",
            "http://a:1,http://b:1",
            "--http",
            "http://c:1",
            "--sku-prefix",
            "shoe",
            "--failover-wait",
            "0",
        ]);
        let scenario = Scenario::load(&flags).unwrap();
        assert_eq!(scenario.http, ["http://a:1,http://b:1", "http://c:1"]);
        assert_eq!(scenario.failover_wait(), Duration::ZERO);
    }

    #[test]
    fn bad_cluster_targets_name_the_flag() {
        for (http, quic) in [
            (vec!["http://a:1,,http://b:1"], vec![]),
            (vec!["http://a:1,http://a:1"], vec![]),
            (vec![], vec!["127.0.0.1:4433,localhost:4434"]),
        ] {
            let mut bad = flags();
            bad.http = http.iter().map(|t| t.to_string()).collect();
            bad.quic = quic.iter().map(|t| t.to_string()).collect();
            bad.insecure_accept_any_certificate = true;
            let error = Scenario::load(&bad).unwrap_err().to_string();
            let flag = if quic.is_empty() { "--http" } else { "--quic" };
            assert!(error.starts_with(flag), "{error}");
        }
        let mut bad = flags();
        bad.http = vec![vec!["http://a:1"; NODES_PER_TARGET_MAX + 1]
            .iter()
            .enumerate()
            .map(|(i, node)| format!("{node}{i}"))
            .collect::<Vec<_>>()
            .join(",")];
        let error = Scenario::load(&bad).unwrap_err().to_string();
        assert!(error.contains("at most"), "{error}");
        let mut bad = flags();
        bad.failover_wait_ms = Some(FAILOVER_WAIT_MS_MAX + 1);
        let error = Scenario::load(&bad).unwrap_err().to_string();
        assert!(error.starts_with("--failover-wait"), "{error}");
    }

    #[test]
    fn unknown_keys_in_the_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scenario.toml");
        std::fs::write(&path, "byers = 7\n").unwrap();
        let mut flags = flags();
        flags.config = Some(path);
        let error = Scenario::load(&flags).unwrap_err().to_string();
        assert!(error.contains("byers"), "{error}");
    }
}
