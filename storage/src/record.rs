//! The log record format. A record is a fixed 25-byte header and a body:
//!
//! | offset | size | field                                                 |
//! |--------|------|-------------------------------------------------------|
//! | 0      | 1    | format version (`RECORD_VERSION`)                     |
//! | 1      | 8    | epoch, little-endian                                  |
//! | 9      | 8    | LSN, little-endian                                    |
//! | 17     | 4    | body length in bytes, little-endian                   |
//! | 21     | 4    | CRC32 (IEEE) of bytes 0..21 followed by the body      |
//! | 25     | n    | body (opaque here; the order logic's bincode events)  |
//!
//! A log entry in sled holds one group-commit batch: records back to back, keyed
//! by the first record's LSN in big-endian so sled's order is the log's order.

use crate::error::StorageError;

pub const RECORD_VERSION: u8 = 1;
pub const RECORD_HEADER_BYTES: usize = 25;

/// Log sequence number: the position of a record in the log, starting at 1.
pub type Lsn = u64;

/// A record as read back from the log, its checksum verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub epoch: u64,
    pub lsn: Lsn,
    pub body: Vec<u8>,
}

/// Appends one encoded record to `out`.
pub fn encode_record(out: &mut Vec<u8>, epoch: u64, lsn: Lsn, body: &[u8]) {
    let start = out.len();
    let body_len = u32::try_from(body.len()).expect("record bodies are bounded far below 4 GiB");
    out.push(RECORD_VERSION);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[start..start + 21]);
    hasher.update(body);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(body);
}

/// Checks every record of one entry without copying anything; returns the count.
/// The writer runs this right before an entry goes to disk.
pub fn verify_entry(
    bytes: &[u8],
    expected_first: Lsn,
    body_bytes_max: usize,
) -> Result<usize, StorageError> {
    let mut count = 0;
    walk_entry(bytes, expected_first, body_bytes_max, |_, _, _| count += 1)?;
    Ok(count)
}

/// Decodes every record of one log entry. `expected_first` is the LSN the entry is
/// keyed by; each following record must carry the next LSN. Any mismatch, torn
/// record or checksum failure is an error naming the LSN, never a panic.
pub fn decode_entry(
    bytes: &[u8],
    expected_first: Lsn,
    body_bytes_max: usize,
    out: &mut Vec<Record>,
) -> Result<(), StorageError> {
    walk_entry(bytes, expected_first, body_bytes_max, |epoch, lsn, body| {
        out.push(Record {
            epoch,
            lsn,
            body: body.to_vec(),
        })
    })
}

fn walk_entry(
    bytes: &[u8],
    expected_first: Lsn,
    body_bytes_max: usize,
    mut visit: impl FnMut(u64, Lsn, &[u8]),
) -> Result<(), StorageError> {
    let mut rest = bytes;
    let mut expected = expected_first;
    if rest.is_empty() {
        return Err(StorageError::corrupt(expected, "empty log entry"));
    }
    while !rest.is_empty() {
        if rest.len() < RECORD_HEADER_BYTES {
            return Err(StorageError::corrupt(expected, "truncated record header"));
        }
        let version = rest[0];
        if version != RECORD_VERSION {
            return Err(StorageError::corrupt(
                expected,
                format!("record format version {version}, this build reads {RECORD_VERSION}"),
            ));
        }
        let epoch = u64::from_le_bytes(rest[1..9].try_into().expect("8 bytes"));
        let lsn = u64::from_le_bytes(rest[9..17].try_into().expect("8 bytes"));
        let body_len = u32::from_le_bytes(rest[17..21].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[21..25].try_into().expect("4 bytes"));
        if body_len > body_bytes_max {
            return Err(StorageError::corrupt(
                expected,
                format!("record body of {body_len} bytes is over the limit of {body_bytes_max}"),
            ));
        }
        let body = rest
            .get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + body_len)
            .ok_or_else(|| StorageError::corrupt(expected, "truncated record body"))?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&rest[..21]);
        hasher.update(body);
        if hasher.finalize() != crc {
            return Err(StorageError::corrupt(expected, "record checksum mismatch"));
        }
        if lsn != expected {
            return Err(StorageError::corrupt(
                expected,
                format!("record carries LSN {lsn} where the log expects {expected}"),
            ));
        }
        visit(epoch, lsn, body);
        expected += 1;
        rest = &rest[RECORD_HEADER_BYTES + body_len..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first: Lsn, bodies: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            encode_record(&mut out, 3, first + i as u64, body);
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let bytes = entry(10, &[b"one", b"", b"three"]);
        let mut records = Vec::new();
        decode_entry(&bytes, 10, 1024, &mut records).unwrap();
        let bodies: Vec<&[u8]> = records.iter().map(|r| r.body.as_slice()).collect();
        assert_eq!(bodies, vec![&b"one"[..], b"", b"three"]);
        assert_eq!(records[2].lsn, 12);
        assert!(records.iter().all(|r| r.epoch == 3));
    }

    #[test]
    fn every_flipped_bit_is_detected_with_its_lsn() {
        let bytes = entry(5, &[b"payload"]);
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            let error = decode_entry(&damaged, 5, 1024, &mut Vec::new()).unwrap_err();
            assert!(
                matches!(error, StorageError::Corrupt { lsn: 5, .. }),
                "bit {bit}: {error}"
            );
        }
    }

    #[test]
    fn truncation_and_wrong_lsn_are_errors() {
        let bytes = entry(1, &[b"abc", b"def"]);
        let first_record_end = RECORD_HEADER_BYTES + 3;
        for cut in (1..bytes.len()).filter(|cut| *cut != first_record_end) {
            assert!(
                decode_entry(&bytes[..cut], 1, 1024, &mut Vec::new()).is_err(),
                "cut at {cut}"
            );
        }
        assert!(decode_entry(&bytes, 2, 1024, &mut Vec::new()).is_err());
        assert!(
            decode_entry(&bytes, 1, 2, &mut Vec::new()).is_err(),
            "body limit"
        );
    }
}
