//! A log entry as read from the data dir (or received from a primary): records
//! back to back, each a 25-byte header (version, epoch, LSN, length, CRC32)
//! and a body, under the entry's key (its first LSN).
//!
//! Input: byte 0 bit 0 set recomputes each record's CRC32 (so the fuzzer
//! reaches past the checksum), bytes 1..9 the expected first LSN
//! (little-endian), the rest the entry.
//!
//! Must hold: no panic; `decode_entry` and `verify_entry` agree; a decoded
//! entry is records of consecutive LSNs from the key on, bodies under the
//! limit, that re-encode byte for byte; a failure is `StorageError::Corrupt`
//! naming an LSN of the entry; each body decodes as replay decodes it (see
//! `log_record`).
#![no_main]

use flashgate_actors::codec::{decode_log_entry, encode_log_entry};
use flashgate_storage::{
    decode_entry, encode_record, verify_entry, StorageConfig, StorageError, RECORD_HEADER_BYTES,
};
use libfuzzer_sys::fuzz_target;

/// Rewrites each record's CRC32 to match its header and body, as far as the
/// lengths let the records be found.
fn seal(entry: &mut [u8]) {
    let mut start = 0;
    while entry.len() - start >= RECORD_HEADER_BYTES {
        let length =
            u32::from_le_bytes(entry[start + 17..start + 21].try_into().expect("4 bytes")) as usize;
        let end = start + RECORD_HEADER_BYTES + length;
        if end > entry.len() {
            return;
        }
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&entry[start..start + 21]);
        hasher.update(&entry[start + RECORD_HEADER_BYTES..end]);
        let crc = hasher.finalize().to_le_bytes();
        entry[start + 21..start + 25].copy_from_slice(&crc);
        start = end;
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let first = u64::from_le_bytes(data[1..9].try_into().expect("8 bytes"));
    let mut entry = data[9..].to_vec();
    if data[0] & 1 == 1 {
        seal(&mut entry);
    }
    let body_bytes_max = StorageConfig::default().record_bytes_max;
    let verified = verify_entry(&entry, first, body_bytes_max);
    let mut records = Vec::new();
    let decoded = decode_entry(&entry, first, body_bytes_max, &mut records);
    match (&verified, &decoded) {
        (Ok(count), Ok(())) => {
            assert_eq!(*count, records.len());
            assert!(*count >= 1);
            let mut again = Vec::new();
            for (index, record) in records.iter().enumerate() {
                assert_eq!(Some(record.lsn), first.checked_add(index as u64));
                assert!(record.body.len() <= body_bytes_max);
                encode_record(&mut again, record.epoch, record.lsn, &record.body);
            }
            assert_eq!(again, entry, "records re-encode to other bytes");
        }
        (Err(StorageError::Corrupt { lsn, reason }), Err(StorageError::Corrupt { .. })) => {
            assert!(!reason.is_empty());
            let last = first.saturating_add(records.len() as u64);
            assert!((first..=last).contains(lsn), "error names LSN {lsn}");
        }
        other => panic!("verify and decode disagree, or an untyped error: {other:?}"),
    }
    for record in &records {
        if let Ok(decoded) = decode_log_entry(&record.body) {
            let bytes = encode_log_entry(&decoded);
            assert!(bytes.len() <= record.body.len());
            assert_eq!(decode_log_entry(&bytes).ok().as_ref(), Some(&decoded));
        }
    }
});
