//! `flashgate-loadtest`: runs a scenario, prints the summary, writes the
//! reports. Exit codes: 0 the run passed its audit, 1 the audit failed, 2 bad
//! arguments or configuration, 3 the run could not be done (unreachable
//! target, SKU preparation failed, report not writable).

use std::process::ExitCode;

use clap::Parser;
use flashgate_loadtest::progress::ProgressMode;
use flashgate_loadtest::{html, run, Flags, LoadtestError, Scenario};

fn main() -> ExitCode {
    let flags = Flags::parse();
    let scenario = match Scenario::load(&flags) {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("flashgate-loadtest: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("flashgate-loadtest: cannot start the async runtime: {error}");
            return ExitCode::from(3);
        }
    };
    let report = match runtime.block_on(run(&scenario, ProgressMode::Auto)) {
        Ok(report) => report,
        Err(error @ LoadtestError::Config { .. }) => {
            eprintln!("flashgate-loadtest: {error}");
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("flashgate-loadtest: {error}");
            return ExitCode::from(3);
        }
    };
    print!("{}", report.summary());
    let writes = [
        (flags.report_json.as_ref(), report.to_json()),
        (flags.report_html.as_ref(), html::render(&report)),
    ];
    for (path, text) in writes {
        let Some(path) = path else { continue };
        if let Err(error) = std::fs::write(path, text) {
            eprintln!(
                "flashgate-loadtest: cannot write {}: {error}",
                path.display()
            );
            return ExitCode::from(3);
        }
        println!("wrote {}", path.display());
    }
    if report.audit.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
