//! `ShipBuffer`: the durable batches a primary's log writer hands over for the
//! replication streamer, so that a standby keeping up is sent what the writer
//! just wrote without reading it back from sled. Pure: no clock, no I/O.
//!
//! The rules:
//! 1. Batches are kept only while a streamer ships (`start`, `stop`): a
//!    primary without a standby keeps nothing.
//! 2. At most `bytes_max` bytes are kept: a batch that does not fit drops the
//!    oldest ones (the writer never waits for a standby). A streamer that
//!    finds a gap before the oldest batch kept reads the missing part from
//!    the log on disk, as a standby that is behind or catching up always does.
//! 3. A batch is kept once it is durable, never before; what is taken is
//!    whole entries, in LSN order, after the LSN the streamer has sent.

use std::collections::VecDeque;

use flashgate_storage::{DurableBatch, Lsn};

/// What `ShipBuffer::take_after` found.
#[derive(Debug)]
pub enum Shipment {
    /// Nothing after that LSN is kept (it may still be on disk).
    Nothing,
    /// Batches continuing the LSN asked for, oldest first; entries at or before
    /// it are still in the first one (`DurableBatch::entries_after` skips them).
    Batches(Vec<DurableBatch>),
    /// The oldest batch kept starts after the next LSN wanted: read from the
    /// log up to the record before `first_kept`.
    Gap { first_kept: Lsn },
}

/// Durable batches waiting for the streamer. See the module doc for the rules.
#[derive(Debug)]
pub struct ShipBuffer {
    batches: VecDeque<DurableBatch>,
    bytes: usize,
    bytes_max: usize,
    shipping: bool,
}

impl ShipBuffer {
    pub fn new(bytes_max: usize) -> ShipBuffer {
        ShipBuffer {
            batches: VecDeque::new(),
            bytes: 0,
            bytes_max,
            shipping: false,
        }
    }

    /// A streamer ships from now on, keeping at most `bytes_max` bytes.
    pub fn start(&mut self, bytes_max: usize) {
        self.clear();
        self.bytes_max = bytes_max;
        self.shipping = true;
    }

    /// No streamer ships: drop everything, keep nothing more.
    pub fn stop(&mut self) {
        self.clear();
        self.shipping = false;
    }

    pub fn shipping(&self) -> bool {
        self.shipping
    }

    /// Bytes kept now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keeps a durable batch (rule 1, rule 2).
    pub fn push(&mut self, batch: DurableBatch) {
        if !self.shipping {
            return;
        }
        if batch.bytes_len() > self.bytes_max {
            // Larger than everything kept may be: the streamer reads it from
            // disk, and everything kept before it would leave a gap anyway.
            self.clear();
            return;
        }
        while self.bytes + batch.bytes_len() > self.bytes_max {
            let Some(oldest) = self.batches.pop_front() else {
                break;
            };
            self.bytes -= oldest.bytes_len();
        }
        self.bytes += batch.bytes_len();
        self.batches.push_back(batch);
    }

    /// Takes the batches holding records after `sent`, up to about
    /// `bytes_max` bytes (at least one batch), dropping those at or before it.
    pub fn take_after(&mut self, sent: Lsn, bytes_max: usize) -> Shipment {
        while let Some(oldest) = self.batches.front() {
            if oldest.last_lsn() > sent {
                break;
            }
            self.bytes -= oldest.bytes_len();
            self.batches.pop_front();
        }
        let Some(oldest) = self.batches.front() else {
            return Shipment::Nothing;
        };
        if oldest.first_lsn() > sent + 1 {
            return Shipment::Gap {
                first_kept: oldest.first_lsn(),
            };
        }
        let mut taken = Vec::new();
        let mut bytes = 0;
        while let Some(batch) = self.batches.front() {
            if !taken.is_empty() && bytes + batch.bytes_len() > bytes_max {
                break;
            }
            bytes += batch.bytes_len();
            self.bytes -= batch.bytes_len();
            taken.extend(self.batches.pop_front());
        }
        Shipment::Batches(taken)
    }

    fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use flashgate_storage::{encode_record, DurableBatch};

    use super::*;

    /// A batch of one entry holding records `first..=last` of 100-byte bodies.
    fn batch(first: Lsn, last: Lsn) -> DurableBatch {
        let mut bytes = Vec::new();
        for lsn in first..=last {
            encode_record(&mut bytes, 1, lsn, &[lsn as u8; 100]);
        }
        DurableBatch::from_entries(&[(first, &bytes)], last)
    }

    fn lsns(shipment: Shipment) -> Vec<(Lsn, Lsn)> {
        match shipment {
            Shipment::Batches(batches) => batches
                .iter()
                .map(|batch| (batch.first_lsn(), batch.last_lsn()))
                .collect(),
            other => panic!("expected batches, got {other:?}"),
        }
    }

    #[test]
    fn nothing_is_kept_while_no_streamer_ships() {
        let mut buffer = ShipBuffer::new(1 << 20);
        buffer.push(batch(1, 2));
        assert!(matches!(
            buffer.take_after(0, usize::MAX),
            Shipment::Nothing
        ));
        buffer.start(1 << 20);
        buffer.push(batch(3, 4));
        buffer.stop();
        assert_eq!(buffer.bytes(), 0);
        buffer.push(batch(5, 6));
        assert!(matches!(
            buffer.take_after(4, usize::MAX),
            Shipment::Nothing
        ));
    }

    #[test]
    fn batches_continue_the_lsn_sent_and_what_was_sent_is_dropped() {
        let mut buffer = ShipBuffer::new(0);
        buffer.start(1 << 20);
        buffer.push(batch(1, 3));
        buffer.push(batch(4, 5));
        buffer.push(batch(6, 9));
        // The log on disk already shipped 1-3: the rest continues it.
        assert_eq!(lsns(buffer.take_after(3, usize::MAX)), vec![(4, 5), (6, 9)]);
        assert_eq!(buffer.bytes(), 0);
        assert!(matches!(
            buffer.take_after(9, usize::MAX),
            Shipment::Nothing
        ));
        // A batch partly sent is taken whole; its entries say what is new.
        buffer.push(batch(10, 12));
        let Shipment::Batches(taken) = buffer.take_after(10, usize::MAX) else {
            panic!("expected a batch");
        };
        assert_eq!(taken[0].entries_after(10).count(), 1);
        assert_eq!(taken[0].entries_after(12).count(), 0);
    }

    #[test]
    fn a_take_stops_near_its_byte_limit_but_takes_at_least_one_batch() {
        let mut buffer = ShipBuffer::new(0);
        buffer.start(1 << 20);
        for first in (1..=10).step_by(2) {
            buffer.push(batch(first, first + 1));
        }
        let one = batch(1, 2).bytes_len();
        assert_eq!(lsns(buffer.take_after(0, 1)), vec![(1, 2)]);
        assert_eq!(lsns(buffer.take_after(2, 2 * one)), vec![(3, 4), (5, 6)]);
        assert_eq!(buffer.bytes(), 2 * one);
    }

    #[test]
    fn over_the_limit_the_oldest_go_and_the_streamer_finds_the_gap() {
        let one = batch(1, 2).bytes_len();
        let mut buffer = ShipBuffer::new(0);
        buffer.start(2 * one);
        buffer.push(batch(1, 2));
        buffer.push(batch(3, 4));
        buffer.push(batch(5, 6));
        assert!(buffer.bytes() <= 2 * one);
        assert!(matches!(
            buffer.take_after(0, usize::MAX),
            Shipment::Gap { first_kept: 3 }
        ));
        // Once the log on disk delivered 1-2, the rest continues from memory.
        assert_eq!(lsns(buffer.take_after(2, usize::MAX)), vec![(3, 4), (5, 6)]);
        // A batch larger than the limit is not kept, nor anything before it.
        buffer.push(batch(7, 8));
        buffer.push(batch(9, 20));
        assert_eq!(buffer.bytes(), 0);
        assert!(matches!(
            buffer.take_after(6, usize::MAX),
            Shipment::Nothing
        ));
    }
}
