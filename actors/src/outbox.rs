//! `Outbox`: requests to the shards made on one event-loop thread during one
//! turn of its loop, held per shard and sent as one mailbox message per shard
//! when the turn ends.
//!
//! An HTTP worker serves many connections on one thread: when the loop wakes
//! with a dozen requests ready, each would otherwise cost the shard's thread a
//! wake-up of its own. Held here, they cost one per shard, as a QUIC batch
//! frame's orders do. Nothing waits for more requests to arrive: the turn that
//! made the first one sends them all, so a lone request is not delayed.
//!
//! Guarantees: a request held here is either sent to its shard or, when the
//! node is gone before the turn ends, dropped with its reply (its caller then
//! hears `shutting_down`); requests to one shard leave in the order they were
//! made on this thread. Outside an event-loop thread (e.g. the QUIC front end's
//! multi-threaded runtime) nothing is held.
//!
//! The answers go back the same way: each such thread has an `Inbox` that the
//! log writer and the shards leave its callers' answers in, waking its task
//! once per batch (`ticket.rs`).

use std::cell::RefCell;
use std::sync::Arc;

use thread_local::ThreadLocal;

use crate::shard_actor::Request;
use crate::ticket::Inbox;

pub(crate) struct Outboxes {
    shards: usize,
    local: ThreadLocal<RefCell<Outbox>>,
}

struct Outbox {
    /// Requests held for each shard, in the order they were made.
    per_shard: Vec<Vec<Request>>,
    /// Whether this turn's send is scheduled.
    scheduled: bool,
    /// Where this thread's callers' answers arrive.
    inbox: Arc<Inbox>,
}

/// What `Outboxes::hold` did with a request.
pub(crate) enum Held {
    /// Held; the caller must schedule `Outboxes::take` for the end of the
    /// turn (it was the turn's first request).
    First,
    /// Held, the turn's send already scheduled.
    Queued,
    /// Not on an event-loop thread: send it now.
    Direct(Request),
}

impl Outboxes {
    pub(crate) fn new(shards: usize) -> Outboxes {
        Outboxes {
            shards,
            local: ThreadLocal::new(),
        }
    }

    /// This thread's outbox, made (with its inbox's task) on first use;
    /// `None` off an event-loop thread.
    fn local(&self) -> Option<&RefCell<Outbox>> {
        actix::Arbiter::try_current()?;
        Some(self.local.get_or(|| {
            let inbox = Arc::new(Inbox::default());
            actix::spawn(Arc::clone(&inbox).run());
            RefCell::new(Outbox {
                per_shard: (0..self.shards).map(|_| Vec::new()).collect(),
                scheduled: false,
                inbox,
            })
        }))
    }

    /// The inbox of this thread's callers; `None` off an event-loop thread.
    pub(crate) fn inbox(&self) -> Option<Arc<Inbox>> {
        self.local()
            .map(|outbox| Arc::clone(&outbox.borrow().inbox))
    }

    /// Holds `request` for `shard` until this thread's loop turn ends.
    pub(crate) fn hold(&self, shard: u32, request: Request) -> Held {
        let Some(outbox) = self.local() else {
            return Held::Direct(request);
        };
        let mut outbox = outbox.borrow_mut();
        outbox.per_shard[shard as usize].push(request);
        if outbox.scheduled {
            Held::Queued
        } else {
            outbox.scheduled = true;
            Held::First
        }
    }

    /// This thread's held requests, per shard (empty ones left out); the
    /// next request starts a new turn.
    pub(crate) fn take(&self) -> Vec<(u32, Vec<Request>)> {
        let Some(outbox) = self.local.get() else {
            return Vec::new();
        };
        let mut outbox = outbox.borrow_mut();
        outbox.scheduled = false;
        outbox
            .per_shard
            .iter_mut()
            .enumerate()
            .filter(|(_, requests)| !requests.is_empty())
            .map(|(shard, requests)| (shard as u32, std::mem::take(requests)))
            .collect()
    }
}
