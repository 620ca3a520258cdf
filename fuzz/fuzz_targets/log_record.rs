//! A log record's body as replay decodes it: a `LogEntry` (shard, sequence,
//! event) in bincode under the record body limit.
//!
//! Must hold: no panic; the input decodes whole (no trailing bytes) or the
//! error is a `DecodeError` naming what was decoded; a decoded entry encodes
//! with `encode_log_entry` (which asserts the limit) to bytes no longer than
//! the input that decode to the same entry.
#![no_main]

use flashgate_actors::codec::{decode_log_entry, encode_log_entry, RECORD_BODY_BYTES_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    match decode_log_entry(body) {
        Ok(entry) => {
            assert!(body.len() <= RECORD_BODY_BYTES_MAX);
            let bytes = encode_log_entry(&entry);
            assert!(bytes.len() <= body.len(), "re-encoding grew");
            assert_eq!(decode_log_entry(&bytes).ok().as_ref(), Some(&entry));
        }
        Err(error) => assert!(error
            .to_string()
            .starts_with("cannot decode log record body")),
    }
});
