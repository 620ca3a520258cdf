//! The events publisher: a thread with its own small runtime that follows the
//! durable log and publishes each domain event to JetStream, in log order,
//! with `Nats-Msg-Id` set to the event id, and moves its cursor only past
//! records JetStream acknowledged.
//!
//! - On the primary it publishes; on a standby it only reads where the
//!   stream got to, so its checkpoints keep what the cluster has not yet
//!   published and a promotion resumes there (`cursor::resume_after`).
//! - The cursor is also saved in the data dir (`events-cursor`, at most once
//!   a second and at stop); whichever of the two is further (and agrees with
//!   this log) wins.
//! - NATS down or slow: the publisher reconnects with backoff; the records
//!   wait in the log. A record the log no longer holds (the retention passed)
//!   becomes one gap marker on `<prefix>.gaps`, logged and counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use async_nats::jetstream::{self, context::Context, stream};
use flashgate_actors::codec::decode_log_entry;
use flashgate_actors::domain::{Event, OrderId, Timestamp};
use flashgate_actors::log_hold::LogHold;
use flashgate_actors::{Node, Replication};
use flashgate_storage::{decode_entry, Lsn, Record, StorageError};
use tokio::sync::watch;

use super::cursor::{self, Published};
use super::schema::{self, EventId, Message, OrderFacts};
use super::EventsConfig;

/// The file in the data dir holding the last published record: `epoch lsn`.
pub const CURSOR_FILE: &str = "events-cursor";
/// How often the saved cursor is rewritten at most.
const CURSOR_SAVE_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait for new durable records before looking again.
const IDLE_POLL: Duration = Duration::from_millis(50);
/// How often a standby reads where the stream got to.
const STANDBY_POLL: Duration = Duration::from_secs(1);
/// Reconnection backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Longest wait for one JetStream answer (an ack, a stream lookup).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most marks kept for the publish lag in time (`Worker::observe_lag`).
const LAG_MARKS_MAX: usize = 4_096;
/// Most orders whose facts (SKU, customer, quantity) are remembered between
/// records; beyond it they are read back from the node.
const FACTS_MAX: usize = 200_000;

/// What `/metrics`, `/v1/cluster` and the alerts see of the publisher.
#[derive(Debug, Default)]
pub struct EventsStatus {
    pub connected: AtomicBool,
    /// The last record published (acknowledged by JetStream).
    pub published_lsn: AtomicU64,
    /// What may be published now (durable, and acknowledged by a sync
    /// standby).
    pub publishable_lsn: AtomicU64,
    /// Milliseconds since the publisher first fell behind; 0 when caught up.
    pub lag_ms: AtomicU64,
    pub published: AtomicU64,
    pub gaps: AtomicU64,
}

pub struct EventsPublisher {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
    status: Arc<EventsStatus>,
}

impl EventsPublisher {
    /// Starts the publisher for `node`; from now on its checkpoints keep
    /// the log not yet published (up to the retention).
    pub fn start(node: Arc<Node>, config: EventsConfig) -> std::io::Result<EventsPublisher> {
        let saved = read_cursor(&node.storage().path().join(CURSOR_FILE));
        let history = node.storage().epoch_history().unwrap_or_default();
        let log_start = node.storage().checkpoint_covers_lsn().unwrap_or(0);
        let durable = node.progress().durable_lsn();
        let through = cursor::resume_after(&history, saved, None, log_start, durable);
        let hold = Arc::new(LogHold::new(through, config.retention_records_max));
        node.keep_log_for_events(Arc::clone(&hold));
        let status = Arc::new(EventsStatus::default());
        status.published_lsn.store(through, Ordering::Release);
        let (stop, stopped) = watch::channel(false);
        let worker = Worker {
            node,
            config,
            hold,
            status: Arc::clone(&status),
            facts: HashMap::new(),
            saved_at: None,
            unpublished_since: std::collections::VecDeque::new(),
        };
        let thread = std::thread::Builder::new()
            .name("flashgate-events".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        tracing::error!(%error, "EVENTS NOT PUBLISHED: cannot start the publisher's runtime");
                        return;
                    }
                };
                runtime.block_on(worker.run(stopped));
            })?;
        Ok(EventsPublisher {
            stop,
            thread: Some(thread),
            status,
        })
    }

    pub fn status(&self) -> &Arc<EventsStatus> {
        &self.status
    }

    /// Saves the cursor and stops the thread (what is unpublished stays in
    /// the log for the next start).
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Why a session with NATS ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("log: {0}")]
    Log(String),
}

fn nats(error: impl std::fmt::Display) -> SessionError {
    SessionError::Nats(error.to_string())
}

struct Worker {
    node: Arc<Node>,
    config: EventsConfig,
    hold: Arc<LogHold>,
    status: Arc<EventsStatus>,
    /// SKU, customer and quantity of orders seen reserved, by id.
    facts: HashMap<OrderId, OrderFacts>,
    saved_at: Option<Instant>,
    /// When each step of what became publishable was first seen, oldest
    /// first (at most `LAG_MARKS_MAX`): the age of the oldest unpublished
    /// record is the publish lag in time.
    unpublished_since: std::collections::VecDeque<(Lsn, Instant)>,
}

impl Worker {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        let mut warned = false;
        loop {
            if *stopped.borrow() {
                break;
            }
            let result = self.session(&mut stopped, &mut backoff, &mut warned).await;
            self.status.connected.store(false, Ordering::Release);
            metrics::gauge!("flashgate_events_connected").set(0.0);
            match result {
                Ok(()) => break,
                Err(error) => {
                    if !warned {
                        tracing::warn!(url = %self.config.nats_url, %error, "events not published: NATS unavailable; orders go on, the events wait in the log");
                        warned = true;
                    } else {
                        tracing::debug!(%error, "events: still no NATS");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped.changed() => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        self.save_cursor(true);
    }

    /// One connection: publish (or, on a standby, watch) until stopped (`Ok`)
    /// or NATS fails (`Err`).
    /// A connection that got as far as the stream resets `backoff` and
    /// `warned`.
    async fn session(
        &mut self,
        stopped: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
        warned: &mut bool,
    ) -> Result<(), SessionError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(REQUEST_TIMEOUT)
            .name("flashgate")
            .connect(self.config.nats_url.as_str())
            .await
            .map_err(nats)?;
        let mut context = jetstream::new(client);
        context.set_timeout(REQUEST_TIMEOUT);
        let mut stream = context
            .get_or_create_stream(stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![self.config.stream_subjects()],
                max_age: Duration::from_secs(self.config.stream_max_age_secs),
                duplicate_window: Duration::from_secs(self.config.duplicate_window_secs),
                ..Default::default()
            })
            .await
            .map_err(nats)?;
        self.status.connected.store(true, Ordering::Release);
        metrics::gauge!("flashgate_events_connected").set(1.0);
        *backoff = BACKOFF_MIN;
        *warned = false;
        tracing::info!(url = %self.config.nats_url, stream = %self.config.stream, "events: connected to JetStream");
        // Known once this node publishes: the cursor it resumed from.
        let mut cursor: Option<Lsn> = None;
        loop {
            if *stopped.borrow() {
                return Ok(());
            }
            if !self.node.cluster().takes_writes() {
                cursor = None;
                self.follow_stream(&mut stream).await?;
                tokio::select! {
                    _ = tokio::time::sleep(STANDBY_POLL) => {}
                    _ = stopped.changed() => {}
                }
                continue;
            }
            let after = match cursor {
                Some(after) => after,
                None => {
                    let after = self.resume_point(&mut stream).await?;
                    tracing::info!(after_lsn = after, "events: publishing");
                    after
                }
            };
            let publishable = self.publishable();
            self.observe_lag(after, publishable);
            if publishable <= after {
                cursor = Some(after);
                tokio::select! {
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = self.node.cluster().durable_changed() => {}
                    _ = stopped.changed() => {}
                }
                continue;
            }
            let through = publishable.min(after + self.config.batch_records_max as u64);
            let published = self.publish_batch(&context, after, through).await?;
            cursor = Some(published);
            self.advance(published);
        }
    }

    /// What may be published: what is durable here and, in sync replication
    /// that is not degraded, acknowledged by the standby too.
    fn publishable(&self) -> Lsn {
        let durable = self.node.progress().durable_lsn();
        let status = self.node.cluster_status();
        let publishable = match status.replication {
            Replication::Sync if status.degraded.is_none() => durable.min(status.acked_lsn),
            _ => durable,
        };
        self.status
            .publishable_lsn
            .store(publishable, Ordering::Release);
        publishable
    }

    /// Records and milliseconds the publisher is behind: the age of the
    /// oldest record durable and not yet published (as first seen here).
    fn observe_lag(&mut self, after: Lsn, publishable: Lsn) {
        let lag = publishable.saturating_sub(after);
        metrics::gauge!("flashgate_events_lag_records").set(lag as f64);
        while self
            .unpublished_since
            .front()
            .is_some_and(|(lsn, _)| *lsn <= after)
        {
            self.unpublished_since.pop_front();
        }
        if publishable > after
            && self
                .unpublished_since
                .back()
                .is_none_or(|(lsn, _)| *lsn < publishable)
        {
            if self.unpublished_since.len() == LAG_MARKS_MAX {
                // Coarser, never younger: the newest mark moves up.
                self.unpublished_since.pop_back();
            }
            self.unpublished_since
                .push_back((publishable, Instant::now()));
        }
        let lag_ms = self
            .unpublished_since
            .front()
            .map_or(0, |(_, since)| since.elapsed().as_millis() as u64);
        self.status.lag_ms.store(lag_ms, Ordering::Release);
        metrics::gauge!("flashgate_events_lag_seconds").set(lag_ms as f64 / 1000.0);
    }

    fn advance(&mut self, published: Lsn) {
        self.hold.through_lsn.store(published, Ordering::Release);
        self.status
            .published_lsn
            .store(published, Ordering::Release);
        metrics::gauge!("flashgate_events_published_lsn").set(published as f64);
        self.save_cursor(false);
    }

    /// Where to resume: this node's saved cursor or the stream's last
    /// message, whichever is further and agrees with this log.
    async fn resume_point(&mut self, stream: &mut stream::Stream) -> Result<Lsn, SessionError> {
        let storage = self.node.storage();
        let history = storage
            .epoch_history()
            .map_err(|error| SessionError::Log(error.to_string()))?;
        let log_start = storage
            .checkpoint_covers_lsn()
            .map_err(|error| SessionError::Log(error.to_string()))?;
        let saved = read_cursor(&storage.path().join(CURSOR_FILE));
        let stream_last = self.stream_last(stream).await?;
        let durable = self.node.progress().durable_lsn();
        let after = cursor::resume_after(&history, saved, stream_last, log_start, durable);
        self.hold.through_lsn.store(after, Ordering::Release);
        self.status.published_lsn.store(after, Ordering::Release);
        Ok(after)
    }

    /// On a standby: keep the log from where the stream got to.
    async fn follow_stream(&mut self, stream: &mut stream::Stream) -> Result<(), SessionError> {
        if let Some(last) = self.stream_last(stream).await? {
            let history = self.node.storage().epoch_history().unwrap_or_default();
            let agreed = cursor::agreed(&history, last);
            self.hold.through_lsn.store(agreed, Ordering::Release);
            self.status.published_lsn.store(agreed, Ordering::Release);
        }
        Ok(())
    }

    /// The last message of the stream, when it is one of this cluster's.
    async fn stream_last(
        &self,
        stream: &mut stream::Stream,
    ) -> Result<Option<Published>, SessionError> {
        let last_sequence = stream.info().await.map_err(nats)?.state.last_sequence;
        if last_sequence == 0 {
            return Ok(None);
        }
        let message = match stream.get_raw_message(last_sequence).await {
            Ok(message) => message,
            // Deleted or aged out between the two calls: nothing known.
            Err(error) => {
                tracing::debug!(%error, "events: the stream's last message is gone");
                return Ok(None);
            }
        };
        let cluster = self
            .node
            .cluster_id()
            .map_err(|e| SessionError::Log(e.to_string()))?;
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|value| value.as_str().to_owned())
            .and_then(|text| {
                let text = text.strip_prefix("gap-").unwrap_or(&text).to_owned();
                EventId::parse(&text)
            });
        Ok(id.filter(|id| id.cluster == cluster).map(|id| Published {
            epoch: id.epoch,
            lsn: id.lsn,
        }))
    }

    /// Publishes the records in `(after, through]` and waits for every
    /// acknowledgement; returns the last LSN now published.
    async fn publish_batch(
        &mut self,
        context: &Context,
        after: Lsn,
        through: Lsn,
    ) -> Result<Lsn, SessionError> {
        let node = Arc::clone(&self.node);
        let read = tokio::task::spawn_blocking(move || {
            let storage = node.storage();
            let entries = storage.read_entries_through(after, through)?;
            let mut records = Vec::new();
            for entry in &entries {
                decode_entry(
                    &entry.bytes,
                    entry.first_lsn,
                    storage.config().record_bytes_max,
                    &mut records,
                )?;
            }
            Ok::<Vec<Record>, StorageError>(records)
        })
        .await
        .map_err(|error| SessionError::Log(error.to_string()))?;
        let cluster = self
            .node
            .cluster_id()
            .map_err(|error| SessionError::Log(error.to_string()))?;
        let now = Timestamp::from_system_time(SystemTime::now());
        let records = match read {
            Ok(records) => records,
            Err(StorageError::LogTrimmed { covers, .. }) => {
                let epoch = self.node.progress().epoch();
                let marker = schema::gap(
                    &self.config.subject_prefix,
                    cluster,
                    epoch,
                    after,
                    covers,
                    now,
                );
                self.publish_all(context, vec![marker]).await?;
                self.status.gaps.fetch_add(1, Ordering::AcqRel);
                self.hold.gaps.fetch_add(1, Ordering::AcqRel);
                metrics::counter!("flashgate_events_gaps_total").increment(1);
                tracing::error!(
                    from_lsn = after + 1,
                    through_lsn = covers,
                    retention_records_max = self.config.retention_records_max,
                    "EVENTS GAP: the log was trimmed past the publisher (it was behind by more than events_retention_records_max); a gap marker was published on {}.gaps",
                    self.config.subject_prefix
                );
                return Ok(covers);
            }
            Err(error) => return Err(SessionError::Log(error.to_string())),
        };
        let mut entries = Vec::with_capacity(records.len());
        for record in &records {
            let entry = decode_log_entry(&record.body)
                .map_err(|error| SessionError::Log(format!("record {}: {error}", record.lsn)))?;
            entries.push((record.epoch, record.lsn, entry));
        }
        // Facts of the orders the records name by id only and this
        // publisher has not seen reserved (before its cursor, after a
        // restart): read back with their history, and taken as they were at
        // the time of the first record that names them (later changes
        // undone), so an event is never published under a SKU it did not
        // have yet.
        let mut first_seen: Vec<(OrderId, Timestamp)> = Vec::new();
        for (_, _, entry) in &entries {
            if let Some(id) = schema::order_needing_facts(&entry.event) {
                if !self.facts.contains_key(&id) && !first_seen.iter().any(|(seen, _)| *seen == id)
                {
                    first_seen.push((id, event_time(&entry.event).unwrap_or(now)));
                }
            }
        }
        let mut looked_up: HashMap<OrderId, OrderFacts> = HashMap::new();
        for (id, at) in first_seen {
            match self.node.order_history(id, None).await {
                Ok((order, changes)) => {
                    looked_up.insert(id, facts_at(&order, &changes, at));
                }
                Err(flashgate_actors::NodeError::Rejected(_)) => {}
                Err(error) => return Err(SessionError::Log(error.to_string())),
            }
        }
        for (id, facts) in looked_up {
            self.facts.insert(id, facts);
        }
        let mut messages = Vec::with_capacity(entries.len());
        for (epoch, lsn, entry) in &entries {
            match &entry.event {
                Event::OrderReserved(order) | Event::OrderAdopted { order, .. }
                    if self.facts.len() < FACTS_MAX || self.facts.contains_key(&order.id) =>
                {
                    self.facts.insert(order.id, facts_of(order));
                }
                Event::OrderChanged { id, change } => {
                    if let Some(facts) = self.facts.get_mut(id) {
                        facts.sku = change.to_sku.clone();
                        facts.quantity = change.to_quantity;
                    }
                }
                _ => {}
            }
            let id = EventId {
                cluster,
                epoch: *epoch,
                lsn: *lsn,
            };
            let facts =
                schema::order_needing_facts(&entry.event).and_then(|order| self.facts.get(&order));
            if let Some(message) =
                schema::message(&self.config.subject_prefix, id, entry, facts, now)
            {
                messages.push(message);
            }
            self.forget_finished(&entry.event);
        }
        if self.facts.len() > FACTS_MAX {
            // Bounded: what is forgotten is read back when next needed.
            self.facts.clear();
        }
        let count = messages.len() as u64;
        self.publish_all(context, messages).await?;
        self.status.published.fetch_add(count, Ordering::AcqRel);
        metrics::counter!("flashgate_events_published_total").increment(count);
        Ok(records
            .last()
            .map_or(through, |record| record.lsn.max(through)))
    }

    /// Orders whose later events need no facts from memory.
    fn forget_finished(&mut self, event: &Event) {
        match event {
            Event::OrderCancelled { id, .. }
            | Event::OrderExpired { id, .. }
            | Event::OrderShipped { id, .. } => {
                self.facts.remove(id);
            }
            Event::OrdersRetired { ids } => {
                for id in ids {
                    self.facts.remove(id);
                }
            }
            _ => {}
        }
    }

    /// Sends every message, then waits for every acknowledgement, in order.
    async fn publish_all(
        &self,
        context: &Context,
        messages: Vec<Message>,
    ) -> Result<(), SessionError> {
        let mut acks = Vec::with_capacity(messages.len());
        for message in messages {
            let payload = serde_json::to_vec(&message.body).map_err(nats)?;
            let publish = jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(&message.msg_id);
            acks.push(
                context
                    .send_publish(message.subject, publish)
                    .await
                    .map_err(nats)?,
            );
        }
        for ack in acks {
            ack.await.map_err(nats)?;
        }
        Ok(())
    }

    /// Writes the cursor file (atomically: a temporary file, fsynced, renamed)
    /// at most once per `CURSOR_SAVE_INTERVAL`, or now when `force`.
    fn save_cursor(&mut self, force: bool) {
        if !force
            && self
                .saved_at
                .is_some_and(|at| at.elapsed() < CURSOR_SAVE_INTERVAL)
        {
            return;
        }
        let published = self.status.published_lsn.load(Ordering::Acquire);
        if published == 0 {
            return;
        }
        // The epoch of the record at `published`, from the history.
        let history = self.node.storage().epoch_history().unwrap_or_default();
        let epoch = history
            .iter()
            .rev()
            .find(|start| start.first_lsn <= published)
            .map_or(0, |start| start.epoch);
        let path = self.node.storage().path().join(CURSOR_FILE);
        if let Err(error) = write_cursor(
            &path,
            Published {
                epoch,
                lsn: published,
            },
        ) {
            tracing::warn!(path = %path.display(), %error, "events: cannot save the cursor; a restart resumes from the stream's last message");
        }
        self.saved_at = Some(Instant::now());
    }
}

/// When an order event happened, for the events that say.
fn event_time(event: &Event) -> Option<Timestamp> {
    match event {
        Event::OrderConfirmed { at, .. }
        | Event::OrderCancelled { at, .. }
        | Event::OrderExpired { at, .. }
        | Event::OrderShipped { at, .. } => Some(*at),
        Event::OrderChanged { change, .. } => Some(change.at),
        _ => None,
    }
}

/// An order's SKU and quantity at `at`: its changes after `at` undone.
fn facts_at(
    order: &flashgate_actors::domain::Order,
    changes: &[flashgate_actors::domain::OrderChange],
    at: Timestamp,
) -> OrderFacts {
    let mut facts = facts_of(order);
    for change in changes.iter().rev().take_while(|change| change.at > at) {
        facts.sku = change.from_sku.clone();
        facts.quantity = change.from_quantity;
    }
    facts
}

fn facts_of(order: &flashgate_actors::domain::Order) -> OrderFacts {
    OrderFacts {
        sku: order.sku.clone(),
        customer: order.customer.clone(),
        quantity: order.quantity,
    }
}

/// The saved cursor, when there is a readable one.
fn read_cursor(path: &Path) -> Option<Published> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut parts = text.split_whitespace();
    let epoch = parts.next()?.parse().ok()?;
    let lsn = parts.next()?.parse().ok()?;
    Some(Published { epoch, lsn })
}

fn write_cursor(path: &Path, published: Published) -> std::io::Result<()> {
    let partial: PathBuf = path.with_extension("partial");
    {
        let mut file = std::fs::File::create(&partial)?;
        std::io::Write::write_all(
            &mut file,
            format!("{} {}\n", published.epoch, published.lsn).as_bytes(),
        )?;
        file.sync_all()?;
    }
    std::fs::rename(&partial, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate_actors::domain::{
        CustomerId, IdempotencyKey, Order, OrderChange, OrderStatus, SkuId,
    };

    /// An order read back after later changes is published with the SKU
    /// and quantity it had when the event happened.
    #[test]
    fn facts_are_taken_as_they_were_at_the_event() {
        let sku = |name: &str| SkuId::parse(name).unwrap();
        let order = Order {
            id: OrderId {
                epoch: 1,
                shard: 0,
                number: 1,
            },
            sku: sku("c"),
            quantity: 3,
            customer: CustomerId::parse("ann").unwrap(),
            status: OrderStatus::Confirmed,
            created_at: Timestamp(100),
            reserved_until: Timestamp(10_000),
            updated_at: Timestamp(150),
            idempotency_key: None,
        };
        let change = |at, from: &str, from_quantity, to: &str, to_quantity| OrderChange {
            at: Timestamp(at),
            from_sku: sku(from),
            from_quantity,
            to_sku: sku(to),
            to_quantity,
            key: IdempotencyKey::parse("k").unwrap(),
        };
        let changes = [change(200, "a", 1, "b", 2), change(300, "b", 2, "c", 3)];
        let at = |t| {
            let facts = facts_at(&order, &changes, Timestamp(t));
            (facts.sku.as_str().to_owned(), facts.quantity)
        };
        assert_eq!(at(150), ("a".to_owned(), 1), "before both changes");
        assert_eq!(at(200), ("b".to_owned(), 2), "at the first");
        assert_eq!(at(299), ("b".to_owned(), 2));
        assert_eq!(at(400), ("c".to_owned(), 3), "after both");
    }
}
