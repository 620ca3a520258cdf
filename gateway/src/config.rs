//! `Config`: every setting of `flashgate serve`, with its default. Layers, each
//! overriding the one before: built-in defaults, a TOML file (`--config`),
//! `FLASHGATE_*` environment variables, command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use flashgate_actors::NodeConfig;
use flashgate_storage::WriterConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the log, checkpoints and generated secrets live.
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    /// Shards for a new data dir (default: the number of cores).
    pub shards: Option<u32>,
    /// Bearer token for the admin API; generated into the data dir when absent.
    pub admin_token: Option<String>,
    pub log_format: LogFormat,
    /// HTTP worker threads (default: the number of cores).
    pub http_workers: Option<usize>,
    /// Open HTTP connections per worker; more wait in the accept queue.
    pub http_connections_max: usize,
    /// Largest accepted request body.
    pub http_body_bytes_max: usize,
    /// Seconds to let in-flight requests finish at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Requests that may wait per shard before answers become 503 `overloaded`.
    pub mailbox_requests_max: usize,
    /// The Retry-After given with 503 `overloaded`.
    pub retry_after_secs: u32,
    pub orders_per_shard_max: usize,
    pub expiry_interval_ms: u64,
    pub expiry_batch_max: usize,
    /// Seconds between checkpoints; 0 turns periodic checkpoints off (one is
    /// still written at shutdown).
    pub checkpoint_interval_secs: u64,
    pub log_queue_records_max: usize,
    pub log_batch_records_max: usize,
    pub log_batch_bytes_max: usize,
    /// Whether to run the QUIC front end (`--no-quic` turns it off; HTTP runs
    /// either way).
    pub quic_enabled: bool,
    pub quic_addr: SocketAddr,
    /// PEM certificate chain for QUIC; with `quic_key`, or neither (then a
    /// self-signed certificate is generated into the data dir).
    pub quic_cert: Option<PathBuf>,
    /// PEM private key for `quic_cert`.
    pub quic_key: Option<PathBuf>,
    /// Largest request frame (length prefix included); a larger one is answered
    /// with `frame_too_large` and its stream ends.
    pub quic_frame_bytes_max: usize,
    /// Bidirectional streams a client may have open on one connection; it opens
    /// more once one ends.
    pub quic_streams_per_connection_max: u32,
    /// Open QUIC connections; further ones are closed with a reason.
    pub quic_connections_max: usize,
    /// Requests (batched orders count one each) being processed per connection;
    /// beyond it a request is answered `too_many_in_flight`.
    pub quic_in_flight_per_connection_max: usize,
    /// Most orders in one `PlaceOrders` frame; more is `batch_too_large`.
    pub quic_batch_orders_max: usize,
    /// A connection with no traffic for this long is closed.
    pub quic_idle_timeout_ms: u64,
}

/// The largest `quic_batch_orders_max`. One answer in a `Response::Batch` (an
/// order, or an error with its detail) is at most about 300 bytes, so a batch's
/// answer stays near 2 MiB: inside the frame limit clients read answers with.
pub const QUIC_BATCH_ORDERS_MAX_LIMIT: usize = 8_192;
/// The smallest `quic_frame_bytes_max`: room for any one request of valid ids.
pub const QUIC_FRAME_BYTES_MAX_MIN: usize = 1024;
/// The longest `quic_idle_timeout_ms` (one day).
pub const QUIC_IDLE_TIMEOUT_MS_LIMIT: u64 = 24 * 3600 * 1000;

impl Default for Config {
    fn default() -> Config {
        let node = NodeConfig::default();
        Config {
            data_dir: PathBuf::from("./flashgate-data"),
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            shards: None,
            admin_token: None,
            log_format: LogFormat::Text,
            http_workers: None,
            http_connections_max: 25_000,
            http_body_bytes_max: 16 * 1024,
            shutdown_timeout_secs: 30,
            mailbox_requests_max: node.mailbox_requests_max,
            retry_after_secs: 1,
            orders_per_shard_max: node.orders_per_shard_max,
            expiry_interval_ms: node.expiry_interval.as_millis() as u64,
            expiry_batch_max: node.expiry_batch_max,
            checkpoint_interval_secs: 300,
            log_queue_records_max: node.writer.queue_records_max,
            log_batch_records_max: node.writer.batch_records_max,
            log_batch_bytes_max: node.writer.batch_bytes_max,
            quic_enabled: true,
            quic_addr: SocketAddr::from(([127, 0, 0, 1], 4433)),
            quic_cert: None,
            quic_key: None,
            quic_frame_bytes_max: 64 * 1024,
            quic_streams_per_connection_max: 16,
            quic_connections_max: 1024,
            quic_in_flight_per_connection_max: 4096,
            quic_batch_orders_max: 1024,
            quic_idle_timeout_ms: 30_000,
        }
    }
}

/// Settings given on the command line; `None` leaves the lower layers' value.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quic_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist; check the --config path")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}; fix or remove that value")]
    Invalid(String),
}

const ENV_KEYS: &[&str] = &[
    "data_dir",
    "http_addr",
    "shards",
    "admin_token",
    "log_format",
    "http_workers",
    "http_connections_max",
    "http_body_bytes_max",
    "shutdown_timeout_secs",
    "mailbox_requests_max",
    "retry_after_secs",
    "orders_per_shard_max",
    "expiry_interval_ms",
    "expiry_batch_max",
    "checkpoint_interval_secs",
    "log_queue_records_max",
    "log_batch_records_max",
    "log_batch_bytes_max",
    "quic_enabled",
    "quic_addr",
    "quic_cert",
    "quic_key",
    "quic_frame_bytes_max",
    "quic_streams_per_connection_max",
    "quic_connections_max",
    "quic_in_flight_per_connection_max",
    "quic_batch_orders_max",
    "quic_idle_timeout_ms",
];

impl Config {
    /// Loads the layers and checks every limit.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::MissingFile(file.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("FLASHGATE_").only(ENV_KEYS))
            .merge(Serialized::defaults(overrides));
        let config: Config = figment
            .extract()
            .map_err(|error| ConfigError::Invalid(error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("http_connections_max", self.http_connections_max as u64),
            ("http_body_bytes_max", self.http_body_bytes_max as u64),
            ("mailbox_requests_max", self.mailbox_requests_max as u64),
            ("orders_per_shard_max", self.orders_per_shard_max as u64),
            ("expiry_interval_ms", self.expiry_interval_ms),
            ("expiry_batch_max", self.expiry_batch_max as u64),
            ("log_queue_records_max", self.log_queue_records_max as u64),
            ("log_batch_records_max", self.log_batch_records_max as u64),
            ("log_batch_bytes_max", self.log_batch_bytes_max as u64),
            (
                "quic_streams_per_connection_max",
                u64::from(self.quic_streams_per_connection_max),
            ),
            ("quic_connections_max", self.quic_connections_max as u64),
            (
                "quic_in_flight_per_connection_max",
                self.quic_in_flight_per_connection_max as u64,
            ),
            ("quic_batch_orders_max", self.quic_batch_orders_max as u64),
            ("quic_idle_timeout_ms", self.quic_idle_timeout_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if let Some(0) = self.http_workers {
            return Err(ConfigError::Invalid(
                "http_workers must be at least 1".into(),
            ));
        }
        if let Some(shards) = self.shards {
            if shards == 0 || shards > flashgate_actors::node::SHARDS_MAX {
                return Err(ConfigError::Invalid(format!(
                    "shards must be between 1 and {}, got {shards}",
                    flashgate_actors::node::SHARDS_MAX
                )));
            }
        }
        if self
            .admin_token
            .as_deref()
            .is_some_and(|token| token.len() < 16)
        {
            return Err(ConfigError::Invalid(
                "admin_token must be at least 16 characters".into(),
            ));
        }
        self.validate_quic()
    }

    fn validate_quic(&self) -> Result<(), ConfigError> {
        let frame_limit = flashgate_protocol::FRAME_BYTES_MAX_LIMIT;
        if !(QUIC_FRAME_BYTES_MAX_MIN..=frame_limit).contains(&self.quic_frame_bytes_max) {
            return Err(ConfigError::Invalid(format!(
                "quic_frame_bytes_max must be between {QUIC_FRAME_BYTES_MAX_MIN} and {frame_limit}, got {}",
                self.quic_frame_bytes_max
            )));
        }
        if self.quic_batch_orders_max > QUIC_BATCH_ORDERS_MAX_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "quic_batch_orders_max must be at most {QUIC_BATCH_ORDERS_MAX_LIMIT}, got {}",
                self.quic_batch_orders_max
            )));
        }
        // A batch takes one in-flight slot per order: a larger batch could never run.
        if self.quic_batch_orders_max > self.quic_in_flight_per_connection_max {
            return Err(ConfigError::Invalid(format!(
                "quic_batch_orders_max ({}) must be at most quic_in_flight_per_connection_max ({})",
                self.quic_batch_orders_max, self.quic_in_flight_per_connection_max
            )));
        }
        if self.quic_idle_timeout_ms > QUIC_IDLE_TIMEOUT_MS_LIMIT {
            return Err(ConfigError::Invalid(format!(
                "quic_idle_timeout_ms must be at most {QUIC_IDLE_TIMEOUT_MS_LIMIT}, got {}",
                self.quic_idle_timeout_ms
            )));
        }
        if self.quic_cert.is_some() != self.quic_key.is_some() {
            return Err(ConfigError::Invalid(
                "quic_cert and quic_key go together: give both (--quic-cert and --quic-key) or neither".into(),
            ));
        }
        Ok(())
    }

    pub fn cores() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    pub fn node_config(&self) -> NodeConfig {
        NodeConfig {
            shards: self
                .shards
                .unwrap_or(Config::cores() as u32)
                .min(flashgate_actors::node::SHARDS_MAX),
            shards_explicit: self.shards.is_some(),
            mailbox_requests_max: self.mailbox_requests_max,
            orders_per_shard_max: self.orders_per_shard_max,
            expiry_interval: Duration::from_millis(self.expiry_interval_ms),
            expiry_batch_max: self.expiry_batch_max,
            writer: WriterConfig {
                queue_records_max: self.log_queue_records_max,
                batch_records_max: self.log_batch_records_max,
                batch_bytes_max: self.log_batch_bytes_max,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("flashgate.toml");
        std::fs::write(&file, "http_addr = \"127.0.0.1:9000\"\nshards = 3\n").unwrap();
        let config = Config::load(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(config.http_addr.port(), 9000);
        assert_eq!(config.shards, Some(3));
        let overrides = Overrides {
            shards: Some(5),
            ..Overrides::default()
        };
        assert_eq!(
            Config::load(Some(&file), &overrides).unwrap().shards,
            Some(5)
        );

        std::fs::write(&file, "shards = \"many\"\n").unwrap();
        let message = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("shards"), "{message}");
        std::fs::write(&file, "shardz = 2\n").unwrap();
        let message = Config::load(Some(&file), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(message.contains("shardz"), "{message}");
        let missing = dir.path().join("absent.toml");
        assert!(matches!(
            Config::load(Some(&missing), &Overrides::default()),
            Err(ConfigError::MissingFile(_))
        ));
    }

    #[test]
    fn quic_limits_are_checked_and_cert_and_key_go_together() {
        Config::default().validate().unwrap();
        let invalid = |config: Config| config.validate().unwrap_err().to_string();
        let message = invalid(Config {
            quic_cert: Some("cert.pem".into()),
            ..Config::default()
        });
        assert!(message.contains("quic_key"), "{message}");
        let message = invalid(Config {
            quic_frame_bytes_max: flashgate_protocol::FRAME_BYTES_MAX_LIMIT + 1,
            ..Config::default()
        });
        assert!(message.contains("quic_frame_bytes_max"), "{message}");
        let message = invalid(Config {
            quic_batch_orders_max: 100,
            quic_in_flight_per_connection_max: 10,
            ..Config::default()
        });
        assert!(
            message.contains("quic_in_flight_per_connection_max"),
            "{message}"
        );
        let message = invalid(Config {
            quic_streams_per_connection_max: 0,
            ..Config::default()
        });
        assert!(
            message.contains("quic_streams_per_connection_max"),
            "{message}"
        );
    }
}
