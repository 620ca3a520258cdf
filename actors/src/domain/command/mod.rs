//! Commands: each file holds one command's validation and decision. A decision
//! reads the shard, returns the reply and the events that carry it out; the
//! shard applies those events, so nothing here mutates state directly.

mod change_order;
mod expire_due;
mod move_order;
mod place_order;
mod put_sku;
mod restock;
mod retire;
mod set_waiting_room;
mod transition;

pub use change_order::ChangeOrder;
pub use expire_due::ExpireDue;
pub use move_order::{AbortMove, AdoptOrder, BeginMove, FinishMove, PendingMove};
pub use place_order::PlaceOrder;
pub use put_sku::PutSku;
pub use restock::Restock;
pub use retire::Retire;
pub use set_waiting_room::{
    SetWaitingRoom, WaitingRoom, ADMITTED_TTL_SECS_LIMIT, ADMIT_PER_SEC_LIMIT,
};
pub use transition::{Cancel, Confirm, Ship};

use super::event::{Event, Events};
use super::order::Order;
use super::shard::{Execution, ShardCore};
use super::sku::Sku;
use super::types::{InvalidField, OrderId, SkuId, Timestamp};

#[derive(Clone, Debug)]
pub enum Command {
    PutSku(PutSku),
    Restock(Restock),
    PlaceOrder(PlaceOrder),
    Confirm(Confirm),
    Cancel(Cancel),
    Ship(Ship),
    ChangeOrder(ChangeOrder),
    BeginMove(BeginMove),
    AdoptOrder(AdoptOrder),
    AbortMove(AbortMove),
    FinishMove(FinishMove),
    ExpireDue(ExpireDue),
    Retire(Retire),
    SetWaitingRoom(SetWaitingRoom),
}

/// What a successful command answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `created` is false when an idempotent retry found the order already there.
    Order {
        order: Order,
        created: bool,
    },
    /// `created` is false when the SKU existed and its settings were updated.
    Sku {
        sku: Sku,
        created: bool,
    },
    Expired {
        count: usize,
    },
    /// An idempotent retry whose order has left memory: the shell answers it
    /// from the archive, as `Order { created: false }`.
    ArchivedOrder {
        id: OrderId,
    },
    Retired {
        orders: usize,
        keys: usize,
    },
    /// `BeginMove` froze the order: it, and its history with the move last.
    Moving {
        order: Order,
        history: Vec<super::order::OrderChange>,
    },
}

/// Every way a command can be refused. Each maps to one error code a user sees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    #[error("sku {0} is sold out")]
    SoldOut(SkuId),
    #[error("sku {sku} has {available} units available, {requested} requested")]
    InsufficientStock {
        sku: SkuId,
        available: u64,
        requested: u64,
    },
    #[error("customer holds {held} units of sku {sku}; {requested} more would pass the limit of {limit} per customer")]
    LimitExceeded {
        sku: SkuId,
        limit: u64,
        held: u64,
        requested: u64,
    },
    #[error("the sale of sku {sku} opens at {starts_at}")]
    SaleNotOpen { sku: SkuId, starts_at: Timestamp },
    #[error("no sku {0}")]
    UnknownSku(SkuId),
    #[error("no order {0}")]
    UnknownOrder(OrderId),
    #[error("order {id} is {from}; it cannot become {to}")]
    InvalidTransition {
        id: OrderId,
        from: &'static str,
        to: &'static str,
    },
    #[error("{0}")]
    InvalidField(#[from] InvalidField),
    #[error("this Idempotency-Key was already used by this customer with a different request; use a new key for a new order")]
    IdempotencyKeyReused,
    #[error("the shard holds its maximum of {0} live orders; retry when some are confirmed, cancelled or expired")]
    OrderCapacityReached(usize),
    #[error("order {id} was changed {max} times, the most an order takes; cancel it and place a new one")]
    TooManyChanges { id: OrderId, max: usize },
    #[error("order {0} is being changed; retry in a moment")]
    OrderBusy(OrderId),
    #[error("order {id} moved to another shard once already; it changes only to SKUs of the shard it is on now (not to {sku}): cancel it and place a new order for {sku}")]
    ChangeAcrossShards { id: OrderId, sku: SkuId },
    /// Order `id` lives on shard `to` now: the node sends the command on
    /// (never seen by a caller).
    #[error("order {id} moved to shard {to}")]
    Moved { id: OrderId, to: u32 },
}

impl Command {
    /// Decides the command at `now` and applies the events that carry it
    /// out to `shard`; returns the reply and those events.
    pub(super) fn execute(self, shard: &mut ShardCore, now: Timestamp) -> Execution {
        let mut events = Events::new();
        let reply = match self {
            // The order path builds its execution where the caller receives it.
            Command::PlaceOrder(command) => return command.execute(shard, now),
            Command::PutSku(command) => command.decide(shard, &mut events),
            Command::Restock(command) => command.decide(shard, &mut events),
            Command::SetWaitingRoom(command) => command.decide(shard, &mut events),
            Command::Confirm(command) => command.decide(shard, now, &mut events),
            Command::Cancel(command) => command.decide(shard, now, &mut events),
            Command::Ship(command) => command.decide(shard, now, &mut events),
            Command::ChangeOrder(command) => command.decide(shard, now, &mut events),
            Command::BeginMove(command) => command.decide(shard, now, &mut events),
            Command::AdoptOrder(command) => command.decide(shard, now, &mut events),
            Command::AbortMove(command) => command.decide(shard, &mut events),
            Command::FinishMove(command) => command.decide(shard, &mut events),
            Command::ExpireDue(command) => command.decide(shard, now, &mut events),
            Command::Retire(command) => command.decide(shard, now, &mut events),
        };
        Execution { reply, events }
    }
}

/// The rules an order of `quantity` units of `sku` meets, whoever places it
/// (a new order, a change, a move): the SKU's maximum per order, its sale's
/// opening, its stock and the customer's limit. `available` and `held` are
/// the SKU's units on offer and the customer's holding, as they would be
/// without the order being decided (a change counts its own units back).
/// `held` is a look-up, made only when the SKU limits what a customer holds.
pub(super) fn check_offer(
    sku: &super::sku::Sku,
    quantity: u32,
    available: u64,
    held: impl FnOnce() -> u64,
    now: Timestamp,
) -> Result<(), CoreError> {
    let max = sku.settings.max_quantity_per_order;
    if quantity == 0 || quantity > max {
        return Err(InvalidField::new(
            "quantity",
            format!("must be between 1 and {max} for sku {}", sku.id),
        )
        .into());
    }
    if let Some(starts_at) = sku.settings.sale_starts_at {
        if now < starts_at {
            return Err(CoreError::SaleNotOpen {
                sku: sku.id.clone(),
                starts_at,
            });
        }
    }
    let requested = u64::from(quantity);
    if available == 0 {
        return Err(CoreError::SoldOut(sku.id.clone()));
    }
    if available < requested {
        return Err(CoreError::InsufficientStock {
            sku: sku.id.clone(),
            available,
            requested,
        });
    }
    if let Some(limit) = sku.settings.per_customer_limit {
        let held = held();
        if held + requested > limit {
            return Err(CoreError::LimitExceeded {
                sku: sku.id.clone(),
                limit,
                held,
                requested,
            });
        }
    }
    Ok(())
}

/// Applies the events a decision produced. They were decided against this very
/// state, so a misfit is a bug, not bad input.
fn apply_decided(shard: &mut ShardCore, events: &[Event]) {
    for event in events {
        shard
            .apply(event)
            .expect("an event decided by the core applies to the state it was decided on");
    }
}

fn order_reply(shard: &ShardCore, id: &OrderId, created: bool) -> Reply {
    let order = shard
        .order(id)
        .expect("order exists after its event")
        .clone();
    Reply::Order { order, created }
}
