//! Order events out, on NATS JetStream: the log is the outbox.
//!
//! - `schema`: a log record as a stream message (subject, id, JSON). Pure.
//! - `cursor`: where publishing resumes after a restart or a failover. Pure.
//! - `publisher`: the thread that reads the durable log after its cursor and
//!   publishes, waiting for JetStream's acknowledgement before it moves on.
//!
//! The order path hands the publisher nothing and never waits for it: the
//! publisher reads records from the disk once they are durable (and, in sync
//! replication, acknowledged by the standby), and checkpoints keep the log it
//! has not published, up to `retention_records_max` (then a gap marker is
//! published and counted; orders never block on NATS).

pub mod cursor;
pub mod publisher;
pub mod schema;

pub use publisher::{EventsPublisher, EventsStatus};

/// Default stream name.
pub const STREAM_DEFAULT: &str = "FLASHGATE";
/// Default subject prefix: subjects are `<prefix>.orders.<sku>`,
/// `<prefix>.skus.<sku>` and `<prefix>.gaps`.
pub const SUBJECT_PREFIX_DEFAULT: &str = "flashgate";
/// Default age after which the stream drops a message: a week.
pub const STREAM_MAX_AGE_SECS_DEFAULT: u64 = 7 * 24 * 3600;
/// Default JetStream duplicate window (`Nats-Msg-Id` dedup).
pub const DUPLICATE_WINDOW_SECS_DEFAULT: u64 = 120;
/// Default records the log keeps for a publisher that is behind.
pub const RETENTION_RECORDS_MAX_DEFAULT: u64 = 10_000_000;
/// Default most records read and published per round.
pub const BATCH_RECORDS_MAX_DEFAULT: usize = 1_024;

/// Where and how to publish.
#[derive(Clone, Debug)]
pub struct EventsConfig {
    /// `nats://HOST:PORT` (several, comma-separated, for a NATS cluster).
    pub nats_url: String,
    pub stream: String,
    pub subject_prefix: String,
    /// The stream keeps a message this long (created with the stream; an
    /// existing stream keeps its own settings).
    pub stream_max_age_secs: u64,
    pub duplicate_window_secs: u64,
    /// Records the log keeps for a publisher that is behind; past it the log
    /// is trimmed anyway and a gap marker is published.
    pub retention_records_max: u64,
    /// Most records read and published per round (their acknowledgements
    /// are awaited together).
    pub batch_records_max: usize,
}

impl EventsConfig {
    /// The subjects of the stream.
    pub fn stream_subjects(&self) -> String {
        format!("{}.>", self.subject_prefix)
    }
}
