//! Events: what a command changed. They are what the log stores, what replay
//! applies, and (later) what a standby applies; applying one decides nothing.

use bincode::{Decode, Encode};

use super::command::WaitingRoom;
use super::order::{Order, OrderChange};
use super::sku::SkuSettings;
use super::types::{CustomerId, IdempotencyKey, OrderId, SkuId, Timestamp};

/// The events one command decided, in the order they apply. Most commands
/// decide one event (an order reserved, confirmed, cancelled): it is held
/// inline, without an allocation; more spill to the heap.
pub type Events = smallvec::SmallVec<[Event; 1]>;

#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Event {
    SkuCreated {
        sku: SkuId,
        stock: u64,
        settings: SkuSettings,
    },
    SkuSettingsChanged {
        sku: SkuId,
        settings: SkuSettings,
    },
    Restocked {
        sku: SkuId,
        quantity: u64,
    },
    /// A new order holding stock; carries the whole order.
    OrderReserved(Order),
    OrderConfirmed {
        id: OrderId,
        at: Timestamp,
    },
    OrderCancelled {
        id: OrderId,
        at: Timestamp,
    },
    /// Decided by the primary's clock; replay never re-decides it.
    OrderExpired {
        id: OrderId,
        at: Timestamp,
    },
    /// Confirmed or finished orders leave memory; their last state is in the
    /// archive (written by the shell before this event is logged). A confirmed
    /// one is settled. At most `ORDERS_PER_RETIRE_EVENT` ids.
    OrdersRetired {
        ids: Vec<OrderId>,
    },
    /// Idempotency keys of orders that left memory are forgotten. At most
    /// `KEYS_PER_FORGET_EVENT` keys.
    KeysForgotten {
        keys: Vec<(CustomerId, IdempotencyKey)>,
    },
    /// A confirmed order was handed to the carrier. (New events go at the
    /// end: the log stores the variant's index.)
    OrderShipped {
        id: OrderId,
        at: Timestamp,
    },
    /// A reserved or confirmed order now holds `change.to_quantity` units of
    /// `change.to_sku` (a SKU of the same shard) instead of what it held.
    OrderChanged {
        id: OrderId,
        change: OrderChange,
    },
    /// The order is frozen while it moves to `change.to_sku` on shard
    /// `to_shard` (`command::move_order`).
    OrderMoveStarted {
        id: OrderId,
        to_shard: u32,
        change: OrderChange,
    },
    /// The move was refused by the other shard: the order is as it was.
    OrderMoveAborted {
        id: OrderId,
    },
    /// The other shard holds the order now: its units here go back, and it
    /// leaves this shard (not archived: it lives on there).
    OrderMovedOut {
        id: OrderId,
    },
    /// An order moved here from another shard, with its history (the move
    /// last); it holds `order.quantity` units of `order.sku` in its status.
    OrderAdopted {
        order: Order,
        history: Vec<OrderChange>,
    },
    /// The SKU's waiting room is now `room` (`None`: it has none).
    WaitingRoomSet {
        sku: SkuId,
        room: Option<WaitingRoom>,
    },
}
