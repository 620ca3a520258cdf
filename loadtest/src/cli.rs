//! `execute`: the command line's whole life (scenario, run, summary, report
//! files) and its exit code, so that `main` is a thin shell and tests can
//! drive exactly what the binary does.

use crate::progress::ProgressMode;
use crate::{html, run, Flags, LoadtestError, Scenario};

/// Exit codes: the run passed its audit.
pub const EXIT_PASSED: u8 = 0;
/// The audit failed (or was cut short by `--audit-timeout`).
pub const EXIT_AUDIT_FAILED: u8 = 1;
/// Bad arguments or configuration.
pub const EXIT_CONFIG: u8 = 2;
/// The run could not be done: unreachable target, no node that takes
/// orders, SKU preparation failed, report not writable.
pub const EXIT_RUN_FAILED: u8 = 3;

/// What a command line ended with: the exit code, and the errors it printed
/// on stderr (each line also printed as it happened).
#[derive(Debug)]
pub struct Outcome {
    pub exit_code: u8,
    pub errors: Vec<String>,
}

/// Runs the command line `flags` describes, printing the summary on stdout
/// and errors on stderr, and returns its outcome.
pub fn execute(flags: &Flags, progress: ProgressMode) -> Outcome {
    let mut errors = Vec::new();
    let mut fail = |exit_code: u8, message: String| {
        eprintln!("flashgate-loadtest: {message}");
        errors.push(message);
        exit_code
    };
    let exit_code = 'run: {
        let scenario = match Scenario::load(flags) {
            Ok(scenario) => scenario,
            Err(error) => break 'run fail(EXIT_CONFIG, error.to_string()),
        };
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                break 'run fail(
                    EXIT_RUN_FAILED,
                    format!("cannot start the async runtime: {error}"),
                )
            }
        };
        let result = runtime.block_on(run(&scenario, progress));
        // Calls abandoned by the drain bound, or still waiting when the run
        // ended with an error, are not waited for further.
        runtime.shutdown_background();
        let report = match result {
            Ok(report) => report,
            Err(error @ LoadtestError::Config { .. }) => {
                break 'run fail(EXIT_CONFIG, error.to_string())
            }
            Err(error) => break 'run fail(EXIT_RUN_FAILED, error.to_string()),
        };
        print!("{}", report.summary());
        let writes = [
            (flags.report_json.as_ref(), report.to_json()),
            (flags.report_html.as_ref(), html::render(&report)),
        ];
        for (path, text) in writes {
            let Some(path) = path else { continue };
            if let Err(error) = std::fs::write(path, text) {
                break 'run fail(
                    EXIT_RUN_FAILED,
                    format!("cannot write {}: {error}", path.display()),
                );
            }
            println!("wrote {}", path.display());
        }
        if report.audit.passed {
            EXIT_PASSED
        } else {
            EXIT_AUDIT_FAILED
        }
    };
    Outcome { exit_code, errors }
}
