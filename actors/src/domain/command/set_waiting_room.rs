//! `SetWaitingRoom`: put a SKU behind a waiting room, change its room, or
//! remove it. The settings are part of the replicated state (a log event,
//! carried in checkpoints), so a standby, a promoted standby, a replay and a
//! restored backup all hold them; the queue itself is the front end's.

use bincode::{Decode, Encode};

use super::{apply_decided, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::shard::ShardCore;
use crate::domain::types::{InvalidField, SkuId};

/// The highest `admit_per_sec` a room may set.
pub const ADMIT_PER_SEC_LIMIT: u32 = 100_000;
/// The longest `admitted_ttl_secs` a room may set (a day).
pub const ADMITTED_TTL_SECS_LIMIT: u32 = 86_400;

/// A SKU's waiting-room settings, as the log and checkpoints store them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub struct WaitingRoom {
    /// Buyers admitted per second while units remain, 1 to
    /// `ADMIT_PER_SEC_LIMIT`.
    pub admit_per_sec: u32,
    /// How long an admission may be used, 1 to `ADMITTED_TTL_SECS_LIMIT` s.
    pub admitted_ttl_secs: u32,
    /// Most buyers in the queue, at least 1 (the front end caps it at its
    /// node's `waiting_room_queue_length_max`).
    pub queue_length_max: u32,
}

impl WaitingRoom {
    /// The settings if each is within its range; the error names the member.
    pub fn parse(
        admit_per_sec: u32,
        admitted_ttl_secs: u32,
        queue_length_max: u32,
    ) -> Result<WaitingRoom, InvalidField> {
        if !(1..=ADMIT_PER_SEC_LIMIT).contains(&admit_per_sec) {
            return Err(InvalidField::new(
                "waiting_room.admit_per_sec",
                format!("must be a whole number from 1 to {ADMIT_PER_SEC_LIMIT}"),
            ));
        }
        if !(1..=ADMITTED_TTL_SECS_LIMIT).contains(&admitted_ttl_secs) {
            return Err(InvalidField::new(
                "waiting_room.admitted_ttl_secs",
                format!("must be a whole number from 1 to {ADMITTED_TTL_SECS_LIMIT}"),
            ));
        }
        if queue_length_max == 0 {
            return Err(InvalidField::new(
                "waiting_room.queue_length_max",
                "must be a whole number of at least 1",
            ));
        }
        Ok(WaitingRoom {
            admit_per_sec,
            admitted_ttl_secs,
            queue_length_max,
        })
    }
}

#[derive(Clone, Debug)]
pub struct SetWaitingRoom {
    pub sku: SkuId,
    /// `None` removes the room.
    pub room: Option<WaitingRoom>,
}

impl SetWaitingRoom {
    /// Decided on the SKU's shard: the SKU must exist. Setting what is
    /// already set logs nothing.
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        if shard.sku(&self.sku).is_none() {
            return Err(CoreError::UnknownSku(self.sku));
        }
        if shard.waiting_room(&self.sku) != self.room {
            if let Some(room) = &self.room {
                WaitingRoom::parse(
                    room.admit_per_sec,
                    room.admitted_ttl_secs,
                    room.queue_length_max,
                )?;
            }
            events.push(Event::WaitingRoomSet {
                sku: self.sku.clone(),
                room: self.room,
            });
            apply_decided(shard, events);
        }
        let sku = shard.sku(&self.sku).expect("the sku exists").clone();
        Ok(Reply::Sku {
            sku,
            created: false,
        })
    }
}
