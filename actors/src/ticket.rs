//! Answers on their way out: what a shard answers (`Outcome`), the reply that
//! waits for the disk (`PendingReply`), the log ticket that carries it
//! (`Ticket`), and each shard's two watermarks (`ShardShared`): what is
//! durable here, and what may be reported to a client.
//!
//! The two differ on a sync primary: a record is durable here first, and may
//! be reported only once the standby has it too (or the node runs degraded).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::domain::{Order, Reply, Sku};
use crate::error::NodeError;

/// What a shard answers.
#[derive(Debug)]
pub enum Outcome {
    Reply(Reply),
    Order(Option<Order>),
    Sku(Option<Sku>),
    Skus(Vec<Sku>),
    /// For `RequestKind::Durable`: everything the shard had decided is on
    /// this node's disk.
    Durable,
    /// For `RequestKind::Orders`: one entry per id asked, in order.
    Orders(Vec<Option<Order>>),
}

pub type Response = Result<Outcome, NodeError>;

/// An answer waiting for the disk: sent by the log writer once every record
/// appended before it (and with it) is durable, and in sync mode once the
/// standby acknowledged them.
pub struct PendingReply {
    sender: oneshot::Sender<Response>,
    response: Response,
}

impl PendingReply {
    pub fn new(sender: oneshot::Sender<Response>, response: Response) -> PendingReply {
        PendingReply { sender, response }
    }

    pub fn send(self) {
        // The caller may have gone (client disconnected); the outcome stands.
        let _ = self.sender.send(self.response);
    }

    pub fn fail(self, error: NodeError) {
        let _ = self.sender.send(Err(error));
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
    /// The shard's last event durable on this node (set by the log writer).
    pub durable_seq: AtomicU64,
    /// The shard's last event that answers may report: durable here and, on a
    /// sync primary that is not degraded, acknowledged by the standby. Never
    /// ahead of `durable_seq`.
    pub answerable_seq: AtomicU64,
}

impl ShardShared {
    /// A shard whose events through `durable_seq` are durable here, and
    /// through `answerable_seq` may be reported.
    pub fn new(durable_seq: u64, answerable_seq: u64) -> ShardShared {
        assert!(answerable_seq <= durable_seq);
        ShardShared {
            depth: AtomicUsize::new(0),
            durable_seq: AtomicU64::new(durable_seq),
            answerable_seq: AtomicU64::new(answerable_seq),
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
    for ticket in tickets {
        if let Some(reply) = ticket.reply {
            reply.send();
        }
    }
}

/// Fails the answers of tickets with `error`. Raises no watermark: what they
/// reflect stays unanswerable until a later answer is released.
pub fn fail_tickets(tickets: Vec<Ticket>, error: &NodeError) {
    for ticket in tickets {
        if let Some(reply) = ticket.reply {
            reply.fail(error.clone());
        }
    }
}
