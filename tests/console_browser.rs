//! The operator console in real headless Chromium (Playwright, driving the
//! machine's `/usr/bin/chromium`): against a real primary and standby, an
//! operator signs in, creates a SKU through the page, watches a sale sell it
//! out (stock to 0, the `sold_out` alert, the charts moving), changes its
//! settings and restocks it, reads the report, hands over from the
//! primary's console and promotes the standby through its own, which really
//! makes it the primary. This is the console as people use it, not its API
//! alone. Screenshots are left in target/test-artifacts/console/.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{pair, poll_until, Launch, ADMIN_TOKEN};

/// Longest the browser script may run (it bounds each step itself).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);

/// Where the machine's Chromium is (Debian's package).
const CHROMIUM: &str = "/usr/bin/chromium";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Whether `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A child process killed when dropped (a failed assertion must not leave
/// a browser behind).
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_operator_runs_a_sale_and_a_promotion_from_the_console() {
    if !runs("node") {
        eprintln!("SKIPPED: node is not installed (Debian: apt-get install nodejs npm)");
        return;
    }
    if !Path::new(CHROMIUM).exists() {
        eprintln!("SKIPPED: {CHROMIUM} is missing (Debian: apt-get install chromium)");
        return;
    }
    let modules = browser_dir().join("node_modules/playwright-core");
    assert!(
        modules.exists(),
        "tests/browser/node_modules is missing: run `npm ci --prefix tests/browser` (playwright-core, pinned by tests/browser/package-lock.json; it downloads no browser)"
    );

    let primary = Launch::new()
        .replicated("127.0.0.1:0")
        .env("FLASHGATE_ALERT_EVALUATE_INTERVAL_MS", "200")
        .start();
    let standby = Launch::new()
        .replicated("127.0.0.1:0")
        .standby_of(primary.replication_addr())
        .env("FLASHGATE_ALERT_EVALUATE_INTERVAL_MS", "200")
        .start();
    pair::wait_in_sync(&primary);

    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("test-artifacts/console");
    let _ = std::fs::remove_dir_all(&artifacts);
    let mut script = Child(
        Command::new("node")
            .arg(browser_dir().join("console.mjs"))
            .env("FLASHGATE_PRIMARY_URL", primary.base_url())
            .env("FLASHGATE_STANDBY_URL", standby.base_url())
            .env("FLASHGATE_TOKEN", ADMIN_TOKEN)
            .env("FLASHGATE_ARTIFACTS", &artifacts)
            .env("CHROMIUM", CHROMIUM)
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run node tests/browser/console.mjs"),
    );
    let status = poll_until("the browser script to finish", SCRIPT_TIMEOUT, || {
        script.0.try_wait().expect("wait for the script")
    });
    assert!(
        status.success(),
        "the browser script failed ({status}); screenshots in {}",
        artifacts.display()
    );

    // The page's switchover was real: the standby is the primary of a new
    // epoch and takes orders; what the pages did is on it.
    let cluster = standby.wait_for_cluster("the promoted standby", |cluster| {
        cluster["role"] == "primary"
    });
    assert!(cluster["epoch"].as_u64() > Some(1), "{cluster}");
    let sku = standby.client().sku("LAUNCH-1");
    assert_eq!(
        (
            sku["available"].as_u64(),
            sku["total"].as_u64(),
            sku["low_stock_threshold"].as_u64()
        ),
        (Some(6), Some(30), Some(3)),
        "the page's sale, settings and restock: {sku}"
    );
    let (status, order) = standby
        .client()
        .place_order("LAUNCH-1", 1, "after-switchover");
    assert_eq!(status, 201, "the new primary takes orders: {order}");
    for name in [
        "01-create-sku-dialog.png",
        "02-sold-out.png",
        "03-restock-dialog.png",
        "04-report.png",
        "05-phone.png",
        "06-handover-answer.png",
        "07-standby.png",
        "08-promote-answer.png",
        "09-promoted.png",
    ] {
        let size = std::fs::metadata(artifacts.join(name)).map_or(0, |meta| meta.len());
        assert!(size > 10_000, "{name} was saved ({size} bytes)");
    }
}
