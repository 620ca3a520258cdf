//! `LoadtestError`: why a run could not be done at all. A run that was done
//! but whose audit failed is not an error: it is a `Report` with violations.

use flashgate_client::ClientError;

/// Everything that stops a run before it produces a report.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// The scenario is invalid; `flag` names the flag (or TOML key) to fix.
    #[error("{flag}: {message}")]
    Config { flag: String, message: String },
    /// A client could not be set up or could not reach its server.
    #[error("cannot use {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: ClientError,
    },
    /// Preparing the SKUs (creating them, or reading them when not created)
    /// failed.
    #[error("SKU {sku}: {source}")]
    Sku {
        sku: String,
        #[source]
        source: ClientError,
    },
    /// No node of a target takes orders: each refused as `not_primary` until
    /// the client's failover wait ran out. The load tester follows only the
    /// nodes it is given, so a primary elsewhere is never found.
    #[error("{target}: no node of this target takes orders: {detail}. {hint}")]
    NoPrimary {
        /// The target as given (`--http URL`, `--quic ADDR`).
        target: String,
        /// The node's own words (the primary it names, if it names one).
        detail: String,
        /// What to pass instead.
        hint: String,
    },
    /// Preparing the SKUs did not finish within its bound.
    #[error("preparing the SKUs took longer than {secs:.1} s (the failover wait plus twice the request timeout); check that the target is a primary and answers, or raise --failover-wait/--request-timeout")]
    SetupTimedOut { secs: f64 },
    /// Writing a report file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a `not_primary` detail says after this: the primary's HTTP URL.
const PRIMARY_IS_AT: &str = "the primary is at ";

impl LoadtestError {
    /// The error for a target none of whose nodes took a call: `flag` is
    /// `--http` or `--quic`, `detail` the last `not_primary` refusal's detail.
    /// The hint names the primary the refusal named, when it named one.
    pub fn no_primary(flag: &str, target: &str, detail: &str) -> LoadtestError {
        let named = detail
            .find(PRIMARY_IS_AT)
            .map(|at| detail[at + PRIMARY_IS_AT.len()..].trim())
            .map(|rest| rest.split_whitespace().next().unwrap_or(rest))
            .filter(|primary| !primary.is_empty());
        let hint = match (named, flag) {
            (Some(primary), "--http") => format!(
                "The load tester follows only the nodes it is given: pass every node of the cluster, e.g. --http {target},{primary}"
            ),
            (Some(primary), _) => format!(
                "The load tester follows only the nodes it is given: pass every node's QUIC address, e.g. --quic {target},<QUIC address of {primary}>"
            ),
            (None, _) => format!(
                "Pass the primary's address, or every node of the cluster comma-separated, in {flag}; or promote a node"
            ),
        };
        LoadtestError::NoPrimary {
            target: format!("{flag} {target}"),
            detail: detail.trim_end_matches('.').to_owned(),
            hint,
        }
    }

    /// A configuration error naming the flag to fix.
    pub fn config(flag: impl Into<String>, message: impl Into<String>) -> LoadtestError {
        LoadtestError::Config {
            flag: flag.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_naming_a_primary_says_what_to_pass() {
        let error = LoadtestError::no_primary(
            "--http",
            "http://127.0.0.1:8081",
            "this node does not take orders; the primary is at http://10.0.0.1:8080",
        );
        let text = error.to_string();
        assert!(
            text.contains("--http http://127.0.0.1:8081,http://10.0.0.1:8080"),
            "{text}"
        );
        assert!(
            text.contains("no node of this target takes orders"),
            "{text}"
        );
    }

    #[test]
    fn a_refusal_without_a_primary_still_says_what_to_pass() {
        let text = LoadtestError::no_primary(
            "--quic",
            "127.0.0.1:4433",
            "this node does not take orders and does not know the current primary; try another node",
        )
        .to_string();
        assert!(text.contains("in --quic"), "{text}");
    }
}
