//! An archived order as a read from the archive tree decodes it (an order
//! that left a shard's memory, read back for `GET /v1/orders/{id}`, a
//! confirm or cancel, or a standby's checkpoint install): an `Order` in
//! bincode, then for a changed order its history, under the record body
//! limit.
//!
//! Must hold: no panic; the input decodes whole or the error is a
//! `DecodeError` naming the archived order; a decoded order and history
//! encode with `encode_archived_order` (which asserts the limit) to bytes no
//! longer than the input that decode to the same order and history.
#![no_main]

use flashgate_actors::codec::{decode_archived, encode_archived_order};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    match decode_archived(bytes) {
        Ok((order, changes)) => {
            let encoded = encode_archived_order(&order, &changes);
            assert!(encoded.len() <= bytes.len(), "re-encoding grew");
            assert_eq!(decode_archived(&encoded).ok(), Some((order, changes)));
        }
        Err(error) => assert!(error
            .to_string()
            .starts_with("cannot decode archived order")),
    }
});
