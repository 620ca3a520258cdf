//! The demo's flash sale: the catalog and the load (`SalePlan`, and the load
//! tester's `Scenario` built from it), the load running on a thread of its
//! own while the demo crashes and promotes nodes (`LoadRun`), and the stock
//! check over the SKUs read back at the end (`check_stock`, pure).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use flashgate_loadtest::progress::ProgressMode;
use flashgate_loadtest::report::SkuState;
use flashgate_loadtest::scenario::{LoadModel, Popularity, TransportChoice};
use flashgate_loadtest::{LoadtestError, Report, Scenario};

use crate::cli::duration::show_duration;
use crate::cli::node_url::NodeUrl;

/// The catalog, the buyers and the load of the demo's sale.
#[derive(Clone, Debug, PartialEq)]
pub struct SalePlan {
    pub skus: u32,
    pub stock_per_sku: u64,
    /// Units one customer may hold of one SKU.
    pub per_customer_limit: u64,
    pub customers: u32,
    /// Orders per second, sent whatever the nodes do (open loop).
    pub rate_per_sec: f64,
    pub duration: Duration,
    /// When the primary is killed, from the start of the load.
    pub crash_after: Duration,
    /// Share of acknowledged orders confirmed after `payment_delay_ms`.
    pub confirm_ratio: f64,
    pub payment_delay_ms: u64,
    /// Calls in flight at most; later arrivals wait and count as late.
    pub outstanding_max: u32,
    pub request_timeout_ms: u64,
}

/// The sale the demo runs: more buyers than units and more orders than
/// units, so SKUs sell out; the primary dies well before the end, with stock
/// left, so the new primary sells the rest.
pub const SALE: SalePlan = SalePlan {
    skus: 4,
    stock_per_sku: 400,
    per_customer_limit: 1,
    customers: 2000,
    rate_per_sec: 200.0,
    duration: Duration::from_secs(12),
    crash_after: Duration::from_secs(5),
    confirm_ratio: 0.5,
    payment_delay_ms: 300,
    outstanding_max: 512,
    request_timeout_ms: 5000,
};

/// Extra time, beyond the load itself, the load tester may take to let
/// payments finish and read every order back.
pub const LOAD_FINISH_GRACE: Duration = Duration::from_secs(120);

impl SalePlan {
    /// Units on sale over all SKUs.
    pub fn units(&self) -> u64 {
        self.stock_per_sku * u64::from(self.skus)
    }

    /// Orders the load sends.
    pub fn orders(&self) -> u64 {
        (self.rate_per_sec * self.duration.as_secs_f64()) as u64
    }

    /// One line for a person.
    pub fn describe(&self) -> String {
        format!(
            "{} SKUs of {} units ({} units, at most {} per customer and SKU), {} customers, \
             {:.0} orders/s for {} ({} orders), {:.0}% of the acknowledged ones paid (confirmed) after {} ms",
            self.skus,
            self.stock_per_sku,
            self.units(),
            self.per_customer_limit,
            self.customers,
            self.rate_per_sec,
            show_duration(self.duration),
            self.orders(),
            self.confirm_ratio * 100.0,
            self.payment_delay_ms
        )
    }

    /// The load tester's scenario for the sale against the pair's `nodes`
    /// (HTTP), creating the SKUs with the admin token, ordering with the
    /// service token and confirming with the payments token. Validated.
    ///
    /// Both nodes are one cluster target (comma-separated): the client sends
    /// to the node that serves, moves on when a node refuses with
    /// `not_primary` or cannot be reached, and retries an order only under its
    /// idempotency key.
    pub fn scenario(
        &self,
        nodes: &[NodeUrl],
        credentials: &Credentials,
    ) -> Result<Scenario, LoadtestError> {
        let scenario = Scenario {
            http: vec![nodes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")],
            transport: Some(TransportChoice::Http),
            model: LoadModel::Open,
            rate: self.rate_per_sec,
            outstanding_max: self.outstanding_max,
            duration_secs: self.duration.as_secs_f64(),
            skus: self.skus,
            stock: self.stock_per_sku,
            per_customer_limit: Some(self.per_customer_limit),
            create_skus: true,
            admin_token: Some(credentials.admin.clone()),
            credential: Some(credentials.service.clone()),
            payments_credential: Some(credentials.payments.clone()),
            customers: self.customers,
            popularity: Popularity::Uniform,
            confirm_ratio: self.confirm_ratio,
            payment_delay_ms: self.payment_delay_ms,
            request_timeout_ms: self.request_timeout_ms,
            connect_timeout_ms: 1_000,
            ..Scenario::default()
        };
        scenario.validate()?;
        Ok(scenario)
    }
}

/// The tokens the demo's load tester carries.
pub struct Credentials {
    pub admin: String,
    pub service: String,
    pub payments: String,
}

/// Why the load did not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot start the load tester's runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot start the load tester's thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("{0}")]
    Run(#[source] LoadtestError),
    #[error("the load tester stopped without a report (it panicked)")]
    Panicked,
    #[error("the load tester had no report {0:?} after the end of the load; the nodes' logs may say why")]
    Stalled(Duration),
}

/// The load, running on a thread of its own.
pub struct LoadRun {
    report: mpsc::Receiver<Result<Report, LoadError>>,
    /// When the thread started; the load starts right after the SKUs are created.
    pub started: Instant,
}

impl LoadRun {
    /// Starts the load tester on `scenario` in a thread with its own runtime.
    pub fn start(scenario: Scenario) -> Result<LoadRun, LoadError> {
        let (sender, report) = mpsc::channel();
        let started = Instant::now();
        std::thread::Builder::new()
            .name("demo-load".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(LoadError::Runtime)
                    .and_then(|runtime| {
                        runtime
                            .block_on(flashgate_loadtest::run(&scenario, ProgressMode::Off))
                            .map_err(LoadError::Run)
                    });
                // Nobody listens any more when the demo already stopped.
                let _ = sender.send(result);
            })
            .map_err(LoadError::Thread)?;
        Ok(LoadRun { report, started })
    }

    /// Waits until `at`. Returns `None` then, or the run's outcome if it
    /// ended before.
    pub fn wait_until(&self, at: Instant) -> Option<Result<Report, LoadError>> {
        let left = at.saturating_duration_since(Instant::now());
        match self.report.recv_timeout(left) {
            Ok(result) => Some(result),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(Err(LoadError::Panicked)),
        }
    }

    /// Waits for the report, at most `timeout`.
    pub fn finish(self, timeout: Duration) -> Result<Report, LoadError> {
        match self.report.recv_timeout(timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(LoadError::Stalled(timeout)),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(LoadError::Panicked),
        }
    }
}

/// What the SKUs' counters say about the stock, as read back after the sale.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StockCheck {
    pub skus: usize,
    /// SKUs with no unit left.
    pub sold_out: usize,
    /// Units sold (reserved or confirmed) over all SKUs.
    pub units_sold: u64,
    /// Each SKU whose counters do not add up: a sold-out SKU that sold less
    /// than its stock (units vanished), or any SKU that sold more.
    pub problems: Vec<String>,
}

impl StockCheck {
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks that all `expected_skus` were read back, that every sold-out SKU
/// sold exactly its stock and that no SKU sold more than its stock.
pub fn check_stock(skus: &[SkuState], expected_skus: u32) -> StockCheck {
    let mut check = StockCheck {
        skus: skus.len(),
        ..StockCheck::default()
    };
    if skus.len() < expected_skus as usize {
        check.problems.push(format!(
            "only {} of the {expected_skus} SKUs could be read back after the sale",
            skus.len()
        ));
    }
    for sku in skus {
        let sold = sku.reserved + sku.sold;
        check.units_sold += sold;
        if sold > sku.total {
            check.problems.push(format!(
                "{}: {sold} units sold of a stock of {}",
                sku.sku, sku.total
            ));
        } else if sku.available == 0 {
            check.sold_out += 1;
            if sold != sku.total {
                check.problems.push(format!(
                    "{}: sold out after selling {sold} units of a stock of {}",
                    sku.sku, sku.total
                ));
            }
        }
    }
    check
}

#[cfg(test)]
mod tests {
    fn credentials() -> Credentials {
        Credentials {
            admin: "0123456789abcdef".into(),
            service: "service-0123456789".into(),
            payments: "payments-0123456789".into(),
        }
    }

    use super::*;

    #[test]
    fn the_sale_has_more_buyers_and_orders_than_units_and_time_after_the_crash() {
        assert!(u64::from(SALE.customers) > SALE.units());
        assert!(SALE.orders() > SALE.units());
        // The crash comes after some sales and leaves time to sell the rest.
        assert!(SALE.crash_after > Duration::from_secs(2));
        assert!(SALE.duration >= SALE.crash_after * 2);
        let sold_before_crash = (SALE.rate_per_sec * SALE.crash_after.as_secs_f64()) as u64;
        assert!(
            sold_before_crash < SALE.units(),
            "stock is left at the crash"
        );
    }

    #[test]
    fn the_scenario_targets_both_nodes_and_is_valid() {
        let nodes: Vec<NodeUrl> = ["http://127.0.0.1:40001", "http://127.0.0.1:40002"]
            .iter()
            .map(|url| url.parse().unwrap())
            .collect();
        let scenario = SALE.scenario(&nodes, &credentials()).unwrap();
        assert_eq!(
            scenario.http,
            ["http://127.0.0.1:40001,http://127.0.0.1:40002"]
        );
        assert!(scenario.create_skus);
        assert_eq!(scenario.model, LoadModel::Open);
        assert_eq!(scenario.stock, SALE.stock_per_sku);
        assert_eq!(scenario.per_customer_limit, Some(1));
        assert!(
            SALE.describe().contains("1600 units"),
            "{}",
            SALE.describe()
        );

        let error = SALE.scenario(&[], &credentials()).unwrap_err();
        assert!(error.to_string().contains("--http"), "{error}");
    }

    fn sku(name: &str, total: u64, available: u64, reserved: u64, sold: u64) -> SkuState {
        SkuState {
            sku: name.into(),
            total,
            available,
            reserved,
            sold,
        }
    }

    #[test]
    fn a_sold_out_sku_must_have_sold_exactly_its_stock() {
        let check = check_stock(
            &[sku("a", 400, 0, 150, 250), sku("b", 400, 12, 200, 188)],
            2,
        );
        assert!(check.passed(), "{check:?}");
        assert_eq!((check.skus, check.sold_out, check.units_sold), (2, 1, 788));

        let check = check_stock(&[sku("a", 400, 0, 100, 250)], 1);
        assert!(!check.passed());
        assert!(
            check.problems[0].contains("sold out after selling 350"),
            "{check:?}"
        );

        let check = check_stock(&[sku("a", 400, 0, 200, 250)], 1);
        assert!(
            check.problems[0].contains("450 units sold of a stock of 400"),
            "{check:?}"
        );
    }

    #[test]
    fn skus_that_could_not_be_read_back_fail_the_check() {
        let check = check_stock(&[sku("a", 400, 0, 150, 250)], 4);
        assert!(!check.passed());
        assert!(
            check.problems[0].contains("only 1 of the 4 SKUs"),
            "{check:?}"
        );
        assert!(
            !check_stock(&[], 4).passed(),
            "nothing read back is no proof"
        );
    }
}
