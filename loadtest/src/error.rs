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
    /// Writing a report file failed.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl LoadtestError {
    /// A configuration error naming the flag to fix.
    pub fn config(flag: impl Into<String>, message: impl Into<String>) -> LoadtestError {
        LoadtestError::Config {
            flag: flag.into(),
            message: message.into(),
        }
    }
}
