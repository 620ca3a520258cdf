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
//! Two kinds of thread hold requests:
//! - an actix arbiter (the HTTP workers): the send is a task spawned on the
//!   thread's own loop, which runs once the tasks already woken have run;
//! - a thread of a multi-threaded tokio runtime marked with
//!   `mark_event_loop_thread` when it started (the QUIC front end's): the send
//!   is a task that first yields once, so it runs after the tasks that were
//!   ready on that worker (each QUIC request is a task of its own). Such a task
//!   may run on another thread of the runtime; it sends the outbox it was
//!   spawned for, never the outbox of the thread it happens to run on.
//!
//! Guarantees: a request held here is either sent to its shard or, when the
//! node is gone before the turn ends, dropped with its reply (its caller then
//! hears `shutting_down`); requests to one shard leave in the order they were
//! made on this thread. On any other thread nothing is held.
//!
//! The answers go back the same way: each such thread has an `Inbox` that the
//! log writer and the shards leave its callers' answers in, waking its task
//! once per batch (`ticket.rs`).

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use thread_local::ThreadLocal;

use crate::shard_actor::Request;
use crate::ticket::Inbox;

/// Where the generations of marked tokio worker threads come from; 0 means
/// "not marked".
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's mark, if a marked tokio runtime's: unique per thread
    /// start, so an outbox left behind by a thread that ended is never taken
    /// for the outbox of a later thread that reuses its id.
    static GENERATION: Cell<u64> = const { Cell::new(0) };
}

/// Marks the calling thread, a thread of a multi-threaded tokio runtime, as
/// one whose requests may be held for the end of its loop turn. Call it from the
/// runtime's `on_thread_start`; only there does every later task on the thread
/// run on a runtime that drives the tasks spawned from it.
pub fn mark_event_loop_thread() {
    GENERATION.with(|generation| generation.set(GENERATIONS.fetch_add(1, Ordering::Relaxed)));
}

/// How a thread's held requests leave at the end of its turn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Turn {
    /// An actix arbiter: `actix::spawn` the send.
    Arbiter,
    /// A marked tokio worker: `tokio::spawn` the send, after one yield.
    Tokio,
}

impl Turn {
    /// Runs `task` on this thread's loop, after the tasks already ready there.
    pub(crate) fn spawn(self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        match self {
            Turn::Arbiter => {
                actix::spawn(task);
            }
            Turn::Tokio => {
                tokio::spawn(async move {
                    tokio::task::yield_now().await;
                    task.await;
                });
            }
        }
    }
}

pub(crate) struct Outboxes {
    shards: usize,
    local: ThreadLocal<RefCell<Option<Local>>>,
}

/// A thread's outbox and what it was made for.
struct Local {
    turn: Turn,
    /// The thread's mark when the outbox was made (0 on an arbiter).
    generation: u64,
    outbox: Arc<Outbox>,
}

/// One thread's held requests. The mutex is only ever contended by the send
/// task of a tokio worker's turn, when it runs on another worker.
pub(crate) struct Outbox {
    held: Mutex<Held>,
    /// Where this thread's callers' answers arrive.
    inbox: Arc<Inbox>,
}

struct Held {
    /// Requests held for each shard, in the order they were made.
    per_shard: Vec<Vec<Request>>,
    /// Whether this turn's send is scheduled.
    scheduled: bool,
}

/// What `Outboxes::hold` did with a request.
pub(crate) enum Holding {
    /// Held; the caller must schedule `Outbox::take` for the end of the turn
    /// (it was the turn's first request), in the way `Turn` says.
    First(Turn, Arc<Outbox>),
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
    fn local(&self) -> Option<(Turn, Arc<Outbox>)> {
        let (turn, generation) = if actix::Arbiter::try_current().is_some() {
            (Turn::Arbiter, 0)
        } else {
            match GENERATION.with(Cell::get) {
                0 => return None,
                generation => (Turn::Tokio, generation),
            }
        };
        let slot = self.local.get_or(|| RefCell::new(None));
        let mut slot = slot.borrow_mut();
        match &*slot {
            Some(local) if local.turn == turn && local.generation == generation => {}
            _ => {
                let inbox = Arc::new(Inbox::default());
                turn.spawn(Arc::clone(&inbox).run());
                *slot = Some(Local {
                    turn,
                    generation,
                    outbox: Arc::new(Outbox {
                        held: Mutex::new(Held {
                            per_shard: (0..self.shards).map(|_| Vec::new()).collect(),
                            scheduled: false,
                        }),
                        inbox,
                    }),
                });
            }
        }
        slot.as_ref()
            .map(|local| (local.turn, Arc::clone(&local.outbox)))
    }

    /// The inbox of this thread's callers; `None` off an event-loop thread.
    pub(crate) fn inbox(&self) -> Option<Arc<Inbox>> {
        self.local().map(|(_, outbox)| Arc::clone(&outbox.inbox))
    }

    /// Holds `request` for `shard` until this thread's loop turn ends.
    pub(crate) fn hold(&self, shard: u32, request: Request) -> Holding {
        let Some((turn, outbox)) = self.local() else {
            return Holding::Direct(request);
        };
        let mut held = outbox.lock();
        held.per_shard[shard as usize].push(request);
        if held.scheduled {
            Holding::Queued
        } else {
            held.scheduled = true;
            drop(held);
            Holding::First(turn, outbox)
        }
    }
}

impl Outbox {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // Every statement under the lock leaves it consistent.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The held requests, per shard (empty ones left out); the next request
    /// starts a new turn.
    pub(crate) fn take(&self) -> Vec<(u32, Vec<Request>)> {
        let mut held = self.lock();
        held.scheduled = false;
        held.per_shard
            .iter_mut()
            .enumerate()
            .filter(|(_, requests)| !requests.is_empty())
            .map(|(shard, requests)| (shard as u32, std::mem::take(requests)))
            .collect()
    }
}
