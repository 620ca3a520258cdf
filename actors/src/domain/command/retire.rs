//! `Retire`: let confirmed and finished orders past their retention leave
//! memory, and forget idempotency keys past theirs, at most
//! `retire_batch_max` of each per pass. Only the primary's shell sends it; the
//! events it logs are what replay and a standby apply.

use super::{apply_decided, CoreError, Reply};
use crate::domain::event::{Event, Events};
use crate::domain::retention::{KEYS_PER_FORGET_EVENT, ORDERS_PER_RETIRE_EVENT};
use crate::domain::shard::ShardCore;
use crate::domain::types::Timestamp;

#[derive(Clone, Debug, Default)]
pub struct Retire;

impl Retire {
    pub(super) fn decide(
        self,
        shard: &mut ShardCore,
        now: Timestamp,
        events: &mut Events,
    ) -> Result<Reply, CoreError> {
        let batch_max = shard.config().retention.retire_batch_max;
        let ids: Vec<_> = shard.due_retirements(now).take(batch_max).collect();
        let keys: Vec<_> = shard.due_keys(now).take(batch_max).collect();
        let (orders, key_count) = (ids.len(), keys.len());
        events.extend(
            ids.chunks(ORDERS_PER_RETIRE_EVENT)
                .map(|ids| Event::OrdersRetired { ids: ids.to_vec() }),
        );
        events.extend(
            keys.chunks(KEYS_PER_FORGET_EVENT)
                .map(|keys| Event::KeysForgotten {
                    keys: keys.to_vec(),
                }),
        );
        apply_decided(shard, events);
        Ok(Reply::Retired {
            orders,
            keys: key_count,
        })
    }
}
