//! `Config`: every setting of `flashgate serve`, with its default. Layers, each
//! overriding the one before: built-in defaults, a TOML file (`--config`),
//! `FLASHGATE_*` environment variables, command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use flashgate_actors::{ClusterConfig, NodeConfig, Replication, Role, StandbyLoss};
use flashgate_storage::WriterConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The role a node starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StartRole {
    Primary,
    Standby,
}

/// When a primary with a standby answers a buyer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    /// After the order is durable on both nodes.
    Sync,
    /// After it is durable here; the standby follows with a lag.
    Async,
}

/// What a sync primary does when its standby is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StandbyLossMode {
    /// Orders wait, then get 503 `standby_unavailable`.
    Block,
    /// After the timeout, go on alone (reported as degraded).
    Degrade,
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
    /// Longest a request body may take to arrive once its head has: past it,
    /// 408 `body_timeout` and the connection is closed (a client sending one
    /// byte a second must not hold a connection).
    pub http_body_read_timeout_ms: u64,
    /// Seconds to let in-flight requests finish at shutdown.
    pub shutdown_timeout_secs: u64,
    /// Longest one wait on the disk (a log write, an fsync) may last; past it the
    /// node fail-stops: 503 `storage_failed`, `/readyz` not ready. It also bounds
    /// the final checkpoint and the log's close at shutdown (`stop_bound`).
    pub disk_stall_timeout_ms: u64,
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
    /// `primary` takes orders; `standby` follows `follow`.
    pub role: StartRole,
    /// The primary's replication address (`host:port`), for a standby.
    pub follow: Option<String>,
    /// Where this node listens (UDP) for a standby, and for a newer primary's
    /// fencing. Without it (and without `follow`) a node runs standalone.
    pub replication_addr: Option<SocketAddr>,
    pub replication: ReplicationMode,
    pub standby_loss: StandbyLossMode,
    /// How long answers wait for the standby before `standby_loss` applies.
    pub standby_timeout_ms: u64,
    /// A standby promotes itself after hearing nothing from its primary for
    /// this long. Only with sync replication and `standby_loss = block`.
    pub auto_promote_after_ms: Option<u64>,
    /// The secret every node of the cluster shares (at least 16 bytes).
    pub cluster_secret: Option<String>,
    /// A file holding the cluster secret (trailing whitespace ignored).
    pub cluster_secret_file: Option<PathBuf>,
    /// Most log bytes in one replication message.
    pub replication_message_bytes_max: usize,
    /// How often a primary tells its standby where it stands; a standby that
    /// hears nothing for 10 of these reconnects.
    pub replication_heartbeat_ms: u64,
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
            http_body_read_timeout_ms: 5_000,
            shutdown_timeout_secs: 30,
            disk_stall_timeout_ms: node.disk_stall_timeout.as_millis() as u64,
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
            role: StartRole::Primary,
            follow: None,
            replication_addr: None,
            replication: ReplicationMode::Sync,
            standby_loss: StandbyLossMode::Block,
            standby_timeout_ms: 5_000,
            auto_promote_after_ms: None,
            cluster_secret: None,
            cluster_secret_file: None,
            replication_message_bytes_max: 4 << 20,
            replication_heartbeat_ms: 100,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<StartRole>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_loss: Option<StandbyLossMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standby_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_promote_after_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_secret_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_stall_timeout_ms: Option<u64>,
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
    "http_body_read_timeout_ms",
    "shutdown_timeout_secs",
    "disk_stall_timeout_ms",
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
    "role",
    "follow",
    "replication_addr",
    "replication",
    "standby_loss",
    "standby_timeout_ms",
    "auto_promote_after_ms",
    "cluster_secret",
    "cluster_secret_file",
    "replication_message_bytes_max",
    "replication_heartbeat_ms",
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
        Config::extract(figment)
    }

    /// A config file's text over the defaults, checked as `load` checks it:
    /// the file layer alone, without the environment or flags.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        Config::extract(
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(text)),
        )
    }

    fn extract(figment: Figment) -> Result<Config, ConfigError> {
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
            ("http_body_read_timeout_ms", self.http_body_read_timeout_ms),
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
            ("standby_timeout_ms", self.standby_timeout_ms),
            ("disk_stall_timeout_ms", self.disk_stall_timeout_ms),
            (
                "replication_message_bytes_max",
                self.replication_message_bytes_max as u64,
            ),
            ("replication_heartbeat_ms", self.replication_heartbeat_ms),
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
        if let Some(token) = self.admin_token.as_deref() {
            crate::token::check_strength(token).map_err(ConfigError::Invalid)?;
        }
        self.validate_quic()?;
        self.validate_replication()
    }

    /// Whether this node takes part in replication at all.
    pub fn replicated(&self) -> bool {
        self.replication_addr.is_some() || self.follow.is_some()
    }

    fn validate_replication(&self) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        match (self.role, &self.follow) {
            (StartRole::Standby, None) => {
                return invalid(
                    "role = standby needs the primary's replication address: --follow HOST:PORT"
                        .into(),
                )
            }
            (StartRole::Primary, Some(_)) => {
                return invalid(
                    "follow is for a standby: add --role standby, or drop --follow".into(),
                )
            }
            _ => {}
        }
        if let Some(after) = self.auto_promote_after_ms {
            if self.role != StartRole::Standby {
                return invalid("auto_promote_after is for a standby (--role standby)".into());
            }
            if self.replication != ReplicationMode::Sync {
                return invalid("auto_promote_after needs --replication sync: with async replication the primary acknowledges orders the standby may not have, and promoting would lose them".into());
            }
            if self.standby_loss != StandbyLossMode::Block {
                return invalid("auto_promote_after needs --standby-loss block: with degrade, a primary that lost sight of its standby goes on alone, and an automatic promotion would let two primaries acknowledge orders".into());
            }
            if after < 2 * self.replication_heartbeat_ms {
                return invalid(format!(
                    "auto_promote_after must be at least two heartbeats ({} ms)",
                    2 * self.replication_heartbeat_ms
                ));
            }
        }
        if self.cluster_secret.is_some() && self.cluster_secret_file.is_some() {
            return invalid(
                "give the cluster secret once: cluster_secret or cluster_secret_file, not both"
                    .into(),
            );
        }
        if self.replicated() && self.cluster_secret.is_none() && self.cluster_secret_file.is_none()
        {
            return invalid("replication needs the cluster secret: --cluster-secret-file FILE or FLASHGATE_CLUSTER_SECRET".into());
        }
        if let Some(secret) = &self.cluster_secret {
            check_secret(secret.as_bytes())?;
        }
        Ok(())
    }

    /// The cluster secret, read from the file when given there.
    pub fn load_cluster_secret(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        if let Some(secret) = &self.cluster_secret {
            return Ok(Some(secret.as_bytes().to_vec()));
        }
        let Some(path) = &self.cluster_secret_file else {
            return Ok(None);
        };
        let mut bytes = std::fs::read(path).map_err(|error| {
            ConfigError::Invalid(format!(
                "cannot read the cluster secret file {}: {error}",
                path.display()
            ))
        })?;
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        check_secret(&bytes)?;
        Ok(Some(bytes))
    }

    /// The cluster settings of the node.
    pub fn cluster_config(&self) -> ClusterConfig {
        ClusterConfig {
            role: match self.role {
                StartRole::Primary => Role::Primary,
                StartRole::Standby => Role::Standby,
            },
            replication: match (self.replicated(), self.replication) {
                (false, _) => Replication::Standalone,
                (true, ReplicationMode::Sync) => Replication::Sync,
                (true, ReplicationMode::Async) => Replication::Async,
            },
            standby_loss: match self.standby_loss {
                StandbyLossMode::Block => StandbyLoss::Block,
                StandbyLossMode::Degrade => StandbyLoss::Degrade,
            },
            standby_timeout: Duration::from_millis(self.standby_timeout_ms),
        }
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
            cluster: self.cluster_config(),
            disk_stall_timeout: Duration::from_millis(self.disk_stall_timeout_ms),
        }
    }

    /// What one HTTP request body may cost.
    pub fn body_limits(&self) -> crate::wire::BodyLimits {
        crate::wire::BodyLimits {
            bytes_max: self.http_body_bytes_max,
            read_timeout: Duration::from_millis(self.http_body_read_timeout_ms),
        }
    }

    /// The longest a graceful stop takes: the front ends drain within
    /// `shutdown_timeout_secs`, then the final checkpoint and the log's close get
    /// `disk_stall_timeout_ms` each. Past it the process exits anyway (a stuck
    /// disk must not keep a stopping node alive); the log holds every
    /// acknowledged order, so a skipped checkpoint loses nothing.
    pub fn stop_bound(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
            + 2 * Duration::from_millis(self.disk_stall_timeout_ms)
    }
}

/// The shortest cluster secret accepted.
pub const CLUSTER_SECRET_BYTES_MIN: usize = 16;

fn check_secret(secret: &[u8]) -> Result<(), ConfigError> {
    if secret.len() < CLUSTER_SECRET_BYTES_MIN {
        return Err(ConfigError::Invalid(format!(
            "the cluster secret must be at least {CLUSTER_SECRET_BYTES_MIN} bytes, got {}",
            secret.len()
        )));
    }
    Ok(())
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
