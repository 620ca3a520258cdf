//! Answers on their way out: what a shard answers (`Outcome`), the reply that
//! waits for the disk (`PendingReply`), the log ticket that carries it
//! (`Ticket`), and each shard's two watermarks (`ShardShared`): what is
//! durable here, and what may be reported to a client.
//!
//! The two differ on a sync primary: a record is durable here first, and may
//! be reported only once the standby has it too (or the node runs degraded).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};

use crate::domain::{IdHasher, Order, Reply, Sku, SkuGate, SkuId, SkuStock};
use crate::error::NodeError;

/// What a shard answers.
#[derive(Debug)]
pub enum Outcome {
    Reply(Reply),
    Order(Option<Order>),
    Sku(Option<Sku>),
    Skus(Vec<Sku>),
    /// For `RequestKind::Stock`: every SKU's counters, without holdings.
    Stock(Vec<SkuStock>),
    /// For `RequestKind::Durable`: everything the shard had decided is on
    /// this node's disk.
    Durable,
    /// For `RequestKind::Orders`: one entry per id asked, in order.
    /// `None` for an order this shard does not know; the second list names
    /// (by index) those that moved to another shard, and which.
    Orders(Vec<Option<Order>>, Vec<(usize, u32)>),
    /// For `Order` and `History`: the order moved to this shard.
    Moved(u32),
    /// For `RequestKind::PendingMoves`: each frozen order and its target shard.
    PendingMoves(Vec<(crate::domain::OrderId, u32)>),
    /// For `RequestKind::History`: the order and its changes, oldest first.
    History(Option<(Order, Vec<crate::domain::OrderChange>)>),
    /// For `RequestKind::Sales`: each SKU's figures decided on this node.
    Sales(Vec<(SkuId, crate::sales::SkuSales)>),
    /// For `RequestKind::CustomerOrders`: newest first.
    CustomerOrders(Vec<Order>),
}

pub type Response = Result<Outcome, NodeError>;

/// Where an answer goes: the caller's channel, and, when the caller waits on
/// an event-loop thread, that thread's `Inbox`, so that the answers one
/// batch completes for one thread wake it once, not once each.
pub struct ReplyTo {
    sender: oneshot::Sender<Response>,
    inbox: Option<Arc<Inbox>>,
}

impl ReplyTo {
    pub fn new(sender: oneshot::Sender<Response>, inbox: Option<Arc<Inbox>>) -> ReplyTo {
        ReplyTo { sender, inbox }
    }

    /// Sends the answer now.
    pub fn send(self, response: Response) {
        let mut woken = Woken::default();
        self.deliver(response, &mut woken);
        woken.wake();
    }

    /// Sends the answer, or leaves it in the caller's inbox with the inbox in
    /// `woken`: the caller wakes when `woken` does.
    pub fn deliver(self, response: Response, woken: &mut Woken) {
        match self.inbox {
            // The caller may have gone (client disconnected); the outcome stands.
            None => drop(self.sender.send(response)),
            Some(inbox) => {
                inbox.push(self.sender, response);
                woken.add(inbox);
            }
        }
    }
}

/// Answers for the callers waiting on one event-loop thread, handed over by
/// the threads that complete them (the log writer, a shard) and sent on by a
/// task on that thread (`Inbox::run`): one cross-thread wake-up per batch of
/// answers instead of one per answer.
#[derive(Default)]
pub struct Inbox {
    answers: Mutex<Vec<(oneshot::Sender<Response>, Response)>>,
    ready: Notify,
}

impl Inbox {
    fn push(&self, sender: oneshot::Sender<Response>, response: Response) {
        self.answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push((sender, response));
    }

    /// Sends on the answers handed over, as they come; runs on the callers'
    /// thread until that thread's loop stops.
    pub async fn run(self: Arc<Inbox>) {
        let mut answers = Vec::new();
        loop {
            self.ready.notified().await;
            std::mem::swap(
                &mut answers,
                &mut *self
                    .answers
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            for (sender, response) in answers.drain(..) {
                let _ = sender.send(response);
            }
        }
    }
}

/// The inboxes that answers were left in, to wake once each.
#[derive(Default)]
pub struct Woken(Vec<Arc<Inbox>>);

impl Woken {
    fn add(&mut self, inbox: Arc<Inbox>) {
        if !self.0.iter().any(|known| Arc::ptr_eq(known, &inbox)) {
            self.0.push(inbox);
        }
    }

    /// Wakes each inbox's task once.
    pub fn wake(&mut self) {
        for inbox in self.0.drain(..) {
            inbox.ready.notify_one();
        }
    }
}

/// An answer waiting for the disk: sent by the log writer once every record
/// appended before it (and with it) is durable, and in sync mode once the
/// standby acknowledged them.
pub struct PendingReply {
    reply: ReplyTo,
    response: Response,
}

impl PendingReply {
    pub fn new(reply: ReplyTo, response: Response) -> PendingReply {
        PendingReply { reply, response }
    }

    pub fn send(self) {
        self.reply.send(self.response);
    }

    /// Sends it, waking its caller's inbox with `woken`.
    pub fn deliver(self, woken: &mut Woken) {
        self.reply.deliver(self.response, woken);
    }

    pub fn fail(self, error: NodeError) {
        self.reply.send(Err(error));
    }

    /// Fails it, waking its caller's inbox with `woken`.
    pub fn fail_with(self, error: NodeError, woken: &mut Woken) {
        self.reply.deliver(Err(error), woken);
    }
}

/// What a log ticket stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TicketKind {
    /// A log record: the shard's event `seq`.
    Record,
    /// No record: an answer reflecting the shard's state through event `seq`
    /// (a read, a replay, a refusal). It completes behind those records and,
    /// like them, waits for the standby in sync mode.
    Answer,
    /// No record: completes once the shard's events through `seq` are durable
    /// on this node, standby or not (checkpoints, promotion, handover).
    LocalDurable,
}

/// A log ticket: which shard, which of its events, and the reply to send once
/// it may be sent.
pub struct Ticket {
    pub shard: u32,
    pub seq: u64,
    pub kind: TicketKind,
    pub reply: Option<PendingReply>,
}

impl Ticket {
    pub fn is_record(&self) -> bool {
        self.kind == TicketKind::Record
    }
}

/// What a shard shares with the rest of the node.
pub struct ShardShared {
    /// Requests sent and not yet taken from the mailbox.
    pub depth: AtomicUsize,
    /// Mailbox messages of requests the shard has taken, and the requests in
    /// them: their ratio is how well requests travel together (`outbox.rs`).
    pub messages: AtomicU64,
    pub requests: AtomicU64,
    /// The shard's last event durable on this node (set by the log writer).
    pub durable_seq: AtomicU64,
    /// The shard's last event that answers may report: durable here and, on a
    /// sync primary that is not degraded, acknowledged by the standby. Never
    /// ahead of `durable_seq`.
    pub answerable_seq: AtomicU64,
    /// What the shard publishes of each of its SKUs for refusals at the front
    /// end (`domain::gate`): written by the shard alone, read by the front
    /// ends' threads.
    pub gates: dashmap::DashMap<SkuId, SkuGate, IdHasher>,
    /// The waiting room of each of the shard's SKUs that has one, and the
    /// opening of its sale (`Event::WaitingRoomSet`): written by the shard
    /// when it decides or applies a change (a primary's command, a
    /// standby's record, replay, a checkpoint), read by the front ends.
    pub waiting_rooms: dashmap::DashMap<
        SkuId,
        (crate::domain::WaitingRoom, Option<crate::domain::Timestamp>),
        IdHasher,
    >,
    /// Reservations this shard decided to end, since the node started, by
    /// how: confirmed (paid), cancelled, expired unpaid. Counted where the
    /// events are decided (a primary's shard), read by the alert monitor
    /// and `/metrics`.
    pub reservations_ended: ReservationsEnded,
}

/// Reservations ended since start, by how (see `ShardShared`).
#[derive(Debug, Default)]
pub struct ReservationsEnded {
    pub confirmed: AtomicU64,
    pub cancelled: AtomicU64,
    pub expired: AtomicU64,
}

impl ShardShared {
    /// A shard whose events through `durable_seq` are durable here, and
    /// through `answerable_seq` may be reported.
    pub fn new(durable_seq: u64, answerable_seq: u64) -> ShardShared {
        assert!(answerable_seq <= durable_seq);
        ShardShared {
            depth: AtomicUsize::new(0),
            messages: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            durable_seq: AtomicU64::new(durable_seq),
            answerable_seq: AtomicU64::new(answerable_seq),
            gates: dashmap::DashMap::with_hasher(IdHasher::default()),
            waiting_rooms: dashmap::DashMap::with_hasher(IdHasher::default()),
            reservations_ended: ReservationsEnded::default(),
        }
    }

    /// Both watermarks to `seq` (a standby applied its primary's records, or a
    /// shard was rebuilt from storage).
    pub fn set_applied(&self, seq: u64) {
        self.durable_seq.store(seq, Ordering::Release);
        self.answerable_seq.store(seq, Ordering::Release);
    }
}

/// Records that the tickets' records are durable on this node.
pub fn mark_durable(shards: &[Arc<ShardShared>], tickets: &[Ticket]) {
    for ticket in tickets.iter().filter(|ticket| ticket.is_record()) {
        let durable = &shards[ticket.shard as usize].durable_seq;
        durable.fetch_max(ticket.seq, Ordering::AcqRel);
    }
}

/// Sends the answers of tickets that may be reported, after raising each
/// shard's answerable watermark (so a caller that hears back and asks again
/// finds its shard answerable already).
pub fn complete_tickets(shards: &[Arc<ShardShared>], tickets: Vec<Ticket>) {
    for ticket in &tickets {
        if ticket.kind != TicketKind::LocalDurable {
            let answerable = &shards[ticket.shard as usize].answerable_seq;
            answerable.fetch_max(ticket.seq, Ordering::AcqRel);
        }
    }
    let mut woken = Woken::default();
    for ticket in tickets {
        if let Some(reply) = ticket.reply {
            reply.deliver(&mut woken);
        }
    }
    woken.wake();
}

/// Fails the answers of tickets with `error`. Raises no watermark: what they
/// reflect stays unanswerable until a later answer is released.
pub fn fail_tickets(tickets: Vec<Ticket>, error: &NodeError) {
    let mut woken = Woken::default();
    for ticket in tickets {
        if let Some(reply) = ticket.reply {
            reply.fail_with(error.clone(), &mut woken);
        }
    }
    woken.wake();
}
