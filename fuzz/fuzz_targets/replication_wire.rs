//! The replication channel after the peer proved the cluster secret: every
//! message body under the session limit, as a standby reads a primary's
//! (entries, checkpoint chunks) and a primary a standby's.
//!
//! Must hold: no panic; a body decodes to a message that keeps the wire's
//! limits and re-encodes to the same value, or to a typed `WireError`; log
//! entries carried are checked as a standby checks them before storing
//! (`verify_entry`, split under the value limit) and their records decode
//! as replay decodes them; checkpoint chunks decode as a standby loads them.
#![no_main]

use flashgate_actors::codec::{decode_chunk, decode_log_entry};
use flashgate_fuzz::check_replication_message;
use flashgate_gateway::replication::fuzzing::{decode, Message, WireError, MESSAGE_BYTES_LIMIT};
use flashgate_storage::fuzzing::split_replicated_entry;
use flashgate_storage::{decode_entry, verify_entry, StorageConfig, SLED_VALUE_BYTES_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    assert!(body.len() <= MESSAGE_BYTES_LIMIT);
    let message = match decode(body) {
        Ok(message) => message,
        Err(error) => {
            assert!(matches!(error, WireError::Malformed(_)), "{error:?}");
            return;
        }
    };
    check_replication_message(&message, body.len());
    match message {
        Message::Entries { entries, .. } => {
            let record_bytes_max = StorageConfig::default().record_bytes_max;
            for (first, bytes) in entries {
                let verified = verify_entry(&bytes, first, record_bytes_max);
                let mut records = Vec::new();
                let decoded = decode_entry(&bytes, first, record_bytes_max, &mut records);
                assert_eq!(verified.is_ok(), decoded.is_ok());
                let split = split_replicated_entry(&bytes, first, record_bytes_max);
                assert_eq!(split.is_ok(), decoded.is_ok());
                if let Ok(split) = split {
                    let joined: Vec<u8> = split.iter().flat_map(|(_, part)| part.clone()).collect();
                    assert_eq!(joined, bytes, "splitting changed the records");
                    assert!(split
                        .iter()
                        .all(|(_, part)| part.len() <= SLED_VALUE_BYTES_MAX));
                }
                for record in records {
                    let _ = decode_log_entry(&record.body);
                }
            }
        }
        Message::CheckpointChunk { bytes } => {
            let _ = decode_chunk(&bytes);
        }
        _ => {}
    }
});
