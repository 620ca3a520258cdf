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
//! A log entry in sled holds records back to back, at most `SLED_VALUE_BYTES_MAX`
//! bytes of them, keyed by the first record's LSN in big-endian so sled's order is
//! the log's order. A group commit is written as one or more entries (one sled
//! batch); a record never straddles two entries.

use std::ops::Range;

use crate::error::StorageError;
use crate::inline::SLED_VALUE_BYTES_MAX;

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

/// Records encoded back to back and cut into log entries of at most
/// `SLED_VALUE_BYTES_MAX` bytes each. A record never straddles two entries.
#[derive(Debug, Default)]
pub(crate) struct LogEntries {
    bytes: Vec<u8>,
    /// Each entry's first LSN and where it starts in `bytes`.
    starts: Vec<(Lsn, usize)>,
}

impl LogEntries {
    pub(crate) fn with_capacity(bytes: usize) -> LogEntries {
        LogEntries {
            bytes: Vec::with_capacity(bytes),
            starts: Vec::new(),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.starts.clear();
    }

    /// Appends one record: to the last entry if it still fits there, else as the
    /// first record of a new entry. The body must fit one entry.
    pub(crate) fn push(&mut self, epoch: u64, lsn: Lsn, body: &[u8]) {
        let record_bytes = RECORD_HEADER_BYTES + body.len();
        assert!(
            record_bytes <= SLED_VALUE_BYTES_MAX,
            "a record of {record_bytes} bytes does not fit one log entry"
        );
        let fits = self.starts.last().is_some_and(|&(_, start)| {
            self.bytes.len() - start + record_bytes <= SLED_VALUE_BYTES_MAX
        });
        if !fits {
            self.starts.push((lsn, self.bytes.len()));
        }
        encode_record(&mut self.bytes, epoch, lsn, body);
    }

    /// How many entries the records pushed since `clear` make.
    pub(crate) fn entry_count(&self) -> usize {
        self.starts.len()
    }

    /// Bytes of every record pushed since `clear`.
    pub(crate) fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    /// Every record's bytes, and each entry's first LSN and start in them.
    pub(crate) fn parts(&self) -> (&[u8], &[(Lsn, usize)]) {
        (&self.bytes, &self.starts)
    }

    /// The entries: first LSN and bytes, in LSN order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Lsn, &[u8])> + '_ {
        self.starts
            .iter()
            .enumerate()
            .map(|(index, &(first, start))| {
                let end = self
                    .starts
                    .get(index + 1)
                    .map_or(self.bytes.len(), |&(_, next)| next);
                (first, &self.bytes[start..end])
            })
    }
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
            body: bytes[body].to_vec(),
        })
    })
}

/// Checks every record of one log entry, like `decode_entry`, without copying
/// anything: `out` gets each record's epoch, LSN and where its body is in `bytes`.
pub(crate) fn decode_entry_spans(
    bytes: &[u8],
    expected_first: Lsn,
    body_bytes_max: usize,
    out: &mut Vec<(u64, Lsn, Range<usize>)>,
) -> Result<(), StorageError> {
    walk_entry(bytes, expected_first, body_bytes_max, |epoch, lsn, body| {
        out.push((epoch, lsn, body))
    })
}

/// Visits each record of an entry, checked, with where its body is in `bytes`.
fn walk_entry(
    bytes: &[u8],
    expected_first: Lsn,
    body_bytes_max: usize,
    mut visit: impl FnMut(u64, Lsn, Range<usize>),
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
        let start = bytes.len() - rest.len() + RECORD_HEADER_BYTES;
        visit(epoch, lsn, start..start + body.len());
        rest = &rest[RECORD_HEADER_BYTES + body_len..];
        if !rest.is_empty() {
            expected = expected.checked_add(1).ok_or_else(|| {
                StorageError::corrupt(expected, "a record follows the last possible LSN")
            })?;
        }
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
    fn records_are_cut_into_entries_under_the_limit_and_never_straddle_two() {
        let mut entries = LogEntries::default();
        let bodies: Vec<Vec<u8>> = (0..500u64)
            .map(|lsn| vec![lsn as u8; (lsn as usize * 37) % 700])
            .collect();
        for (index, body) in bodies.iter().enumerate() {
            entries.push(2, 100 + index as u64, body);
        }
        let mut records = Vec::new();
        let mut count = 0;
        for (first, bytes) in entries.iter() {
            assert!(bytes.len() <= SLED_VALUE_BYTES_MAX, "{} bytes", bytes.len());
            assert_eq!(first, 100 + records.len() as u64);
            count += 1;
            decode_entry(bytes, first, SLED_VALUE_BYTES_MAX, &mut records).unwrap();
        }
        assert!(count > 1, "the records filled several entries");
        let read: Vec<&Vec<u8>> = records.iter().map(|record| &record.body).collect();
        assert_eq!(read, bodies.iter().collect::<Vec<_>>());
        // The largest record fills an entry on its own.
        entries.clear();
        entries.push(1, 1, b"x");
        entries.push(1, 2, &[7; SLED_VALUE_BYTES_MAX - RECORD_HEADER_BYTES]);
        assert_eq!(
            entries.iter().map(|(first, _)| first).collect::<Vec<_>>(),
            vec![1, 2]
        );
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

    #[test]
    fn a_record_after_the_last_possible_lsn_is_an_error_not_an_overflow() {
        let mut bytes = Vec::new();
        encode_record(&mut bytes, 1, u64::MAX, b"last");
        encode_record(&mut bytes, 1, 0, b"wrapped");
        let error = verify_entry(&bytes, u64::MAX, 1024).expect_err("no LSN follows u64::MAX");
        assert!(
            matches!(&error, StorageError::Corrupt { lsn: u64::MAX, reason } if reason.contains("last possible LSN")),
            "{error}"
        );
        assert!(decode_entry(&bytes, u64::MAX, 1024, &mut Vec::new()).is_err());
        assert_eq!(
            verify_entry(&bytes[..RECORD_HEADER_BYTES + 4], u64::MAX, 1024).ok(),
            Some(1)
        );
    }
}
