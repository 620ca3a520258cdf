//! The I/O-free order logic of one shard: commands and `now` go in, a reply and
//! the events to log come out. No clocks, threads, sockets or disk.

pub mod command;
pub mod customers;
pub mod due;
pub mod event;
pub mod gate;
pub mod order;
pub mod retention;
pub mod shard;
pub mod sku;
mod text;
pub mod types;

pub use command::{
    AbortMove, AdoptOrder, BeginMove, Cancel, ChangeOrder, Command, Confirm, CoreError, ExpireDue,
    FinishMove, PendingMove, PlaceOrder, PutSku, Reply, Restock, Retire, SetWaitingRoom, Ship,
    WaitingRoom, ADMITTED_TTL_SECS_LIMIT, ADMIT_PER_SEC_LIMIT,
};
pub use customers::ListingPosition;
pub use event::{Event, Events};
pub use gate::SkuGate;
pub use order::{Order, OrderChange, OrderStatus, CHANGES_PER_ORDER_MAX};
pub use retention::{
    answer_archived, answer_archived_change, KeyEntry, RetainedImage, RetainedKey, Retention,
};
pub use shard::{Execution, InconsistentEvent, ShardConfig, ShardCore, SkuImage, Touched};
pub use sku::{RequestedSettings, Sku, SkuSettings, SkuStock, QUANTITY_PER_ORDER_MAX, STOCK_MAX};
pub use types::{
    CustomerId, IdHasher, IdMap, IdempotencyKey, InvalidField, OrderId, SkuId, Timestamp,
};
