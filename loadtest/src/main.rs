//! `flashgate-loadtest`: runs a scenario, prints the summary, writes the
//! reports (`cli::execute`). Exit codes: 0 the run passed its audit, 1 the
//! audit failed (or did not finish within `--audit-timeout`), 2 bad arguments
//! or configuration, 3 the run could not be done (unreachable target, no node
//! of a target takes orders, SKU preparation failed, report not writable).

use std::process::ExitCode;

use clap::Parser;
use flashgate_loadtest::cli;
use flashgate_loadtest::progress::ProgressMode;
use flashgate_loadtest::Flags;

fn main() -> ExitCode {
    let flags = Flags::parse();
    ExitCode::from(cli::execute(&flags, ProgressMode::Auto).exit_code)
}
