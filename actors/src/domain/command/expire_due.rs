//! `ExpireDue`: expire reservations whose TTL has passed at `now`, at most
//! `expiry_batch_max` per pass. Only the primary's shell sends it; the events it
//! logs are what replay and a standby apply.

use super::{apply_decided, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::shard::ShardCore;
use crate::domain::types::Timestamp;

#[derive(Clone, Debug, Default)]
pub struct ExpireDue;

impl ExpireDue {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        events.extend(
            shard
                .due_reservations(now)
                .take(shard.expiry_batch_max())
                .map(|id| Event::OrderExpired { id, at: now }),
        );
        apply_decided(shard, events);
        Ok(Reply::Expired {
            count: events.len(),
        })
    }
}
