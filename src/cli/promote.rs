//! `flashgate promote --node URL --token TOKEN`: makes a standby the primary,
//! as an operator does after the primary is lost. The node raises its epoch,
//! so the old primary is fenced if it comes back.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::admin::{AdminClient, CallError, REQUEST_TIMEOUT};
use crate::cli::cluster::Promoted;
use crate::cli::duration::show_duration;
use crate::cli::node_url::NodeUrl;
use crate::cli::TokenArg;

#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// HTTP base URL of the standby to promote, e.g. http://10.0.0.2:8080.
    #[arg(long, value_name = "URL")]
    pub node: NodeUrl,
    #[command(flatten)]
    pub token: TokenArg,
}

/// Runs the command: 0 when the node answered that it is the primary, 1 when
/// it refused or could not be reached (the message says which, and why).
pub fn run(args: PromoteArgs) -> ExitCode {
    let client = AdminClient::new(Some(args.token.token));
    let started = Instant::now();
    match promote(&client, &args.node) {
        Ok(promoted) => {
            println!(
                "flashgate: {}",
                describe(&args.node, &promoted, started.elapsed())
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("flashgate: promote failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Promotes the standby at `node`. Returns once the node answered that it is
/// the primary at the new epoch; from then on it takes orders.
pub fn promote(client: &AdminClient, node: &NodeUrl) -> Result<Promoted, CallError> {
    client.promote(node, REQUEST_TIMEOUT)
}

/// The outcome for a person; `round_trip` is the time the request took as
/// seen from here.
pub fn describe(node: &NodeUrl, promoted: &Promoted, round_trip: Duration) -> String {
    format!(
        "promoted {node}: primary at epoch {}, log at LSN {} (the node took {}, {} with the request)",
        promoted.epoch,
        promoted.last_lsn,
        show_duration(Duration::from_millis(promoted.elapsed_ms)),
        show_duration(round_trip)
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: PromoteArgs,
    }

    #[test]
    fn the_node_and_token_are_checked_when_parsed() {
        let parsed = Command::try_parse_from([
            "promote",
            "--node",
            "http://10.0.0.2:8080/",
            "--token",
            "t0k",
        ])
        .unwrap();
        assert_eq!(parsed.args.node.to_string(), "http://10.0.0.2:8080");
        assert_eq!(parsed.args.token.token, "t0k");

        let error = Command::try_parse_from(["promote", "--node", "10.0.0.2:8080", "--token", "t"])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("http://10.0.0.2:8080"), "{error}");
        let error = Command::try_parse_from(["promote", "--node", "http://a:1", "--token", ""])
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("empty"), "{error}");
    }

    #[test]
    fn the_outcome_names_the_epoch_and_the_times() {
        let node: NodeUrl = "http://10.0.0.2:8080".parse().unwrap();
        let promoted = Promoted {
            epoch: 7,
            last_lsn: 4096,
            elapsed_ms: 12,
        };
        assert_eq!(
            describe(&node, &promoted, Duration::from_millis(15)),
            "promoted http://10.0.0.2:8080: primary at epoch 7, log at LSN 4096 \
             (the node took 12 ms, 15 ms with the request)"
        );
    }
}
