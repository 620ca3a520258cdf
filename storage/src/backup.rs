//! Backups as bytes: the frames a node streams to `flashgate backup` and the
//! backup's data files are made of, and the log tail a backup carries.
//!
//! A frame is a kind (u8), the payload's length (u32 BE), a CRC32 (u32 BE)
//! of the kind, the length and the payload, then the payload. A reader
//! refuses a length over its limit before it allocates, so a damaged length
//! costs nothing. A backup file starts with `FILE_MAGIC` and the backup
//! format version (u32 BE), then frames; the manifest also holds a SHA-256
//! of each file, so a damaged byte is found even where a CRC32 would miss it.
//!
//! Storage knows neither what the frames mean nor orders: `actors::backup`
//! gives the kinds their meaning.

use std::io::{Read, Write};

use crate::error::StorageError;
use crate::record::Lsn;
use crate::store::{EntryBytes, Storage};

/// The first bytes of every backup data file.
pub const FILE_MAGIC: &[u8; 8] = b"FGBACKUP";
/// The layout of a backup (files, frames, manifest) this build writes and
/// the newest it reads.
pub const BACKUP_FORMAT_VERSION: u32 = 1;
/// Kind, length and CRC32 before a frame's payload.
pub const FRAME_HEADER_BYTES: usize = 9;
/// The largest payload a frame may carry: a checkpoint chunk at its limit
/// (`StorageConfig::chunk_bytes_max`, 64 MiB) with room to spare.
pub const FRAME_PAYLOAD_BYTES_MAX: usize = (64 << 20) + 4096;

/// Appends one frame to `out`.
pub fn encode_frame(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    assert!(
        payload.len() <= FRAME_PAYLOAD_BYTES_MAX,
        "backup frame over the limit"
    );
    let length = (payload.len() as u32).to_be_bytes();
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[kind]);
    hasher.update(&length);
    hasher.update(payload);
    out.push(kind);
    out.extend_from_slice(&length);
    out.extend_from_slice(&hasher.finalize().to_be_bytes());
    out.extend_from_slice(payload);
}

/// The header of a backup data file.
pub fn file_header() -> Vec<u8> {
    let mut header = FILE_MAGIC.to_vec();
    header.extend_from_slice(&BACKUP_FORMAT_VERSION.to_be_bytes());
    header
}

/// Why a frame could not be read. Says what was wrong; the caller adds where.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("cut short: {0}")]
    Truncated(String),
    #[error("a frame of kind {kind} claims {length} bytes; the limit is {max}")]
    TooLong { kind: u8, length: usize, max: usize },
    #[error("a frame of kind {kind} and {length} bytes fails its checksum")]
    Checksum { kind: u8, length: usize },
    #[error("{0}")]
    Io(String),
    #[error("does not start with a backup file header")]
    NotABackupFile,
    #[error("is of backup format {found}; this build reads up to {supported}: restore with a newer flashgate")]
    NewerFormat { found: u32, supported: u32 },
}

/// Reads frames from a byte stream, each checked. No I/O of its own beyond
/// the reader it is given.
pub struct FrameReader<R> {
    reader: R,
    payload_bytes_max: usize,
    /// Bytes read so far, for progress and error positions.
    pub offset: u64,
}

impl<R: Read> FrameReader<R> {
    pub fn new(reader: R, payload_bytes_max: usize) -> FrameReader<R> {
        FrameReader {
            reader,
            payload_bytes_max,
            offset: 0,
        }
    }

    /// Reads and checks a backup file's header.
    pub fn read_file_header(&mut self) -> Result<(), FrameError> {
        let mut header = [0u8; 12];
        self.read_exact_or(&mut header, "the file header")?;
        if &header[..8] != FILE_MAGIC {
            return Err(FrameError::NotABackupFile);
        }
        let found = u32::from_be_bytes(header[8..].try_into().expect("4 bytes"));
        if found == 0 {
            return Err(FrameError::Io(
                "names backup format 0, which no flashgate writes".into(),
            ));
        }
        if found > BACKUP_FORMAT_VERSION {
            return Err(FrameError::NewerFormat {
                found,
                supported: BACKUP_FORMAT_VERSION,
            });
        }
        Ok(())
    }

    /// The next frame's kind and payload; `None` at a clean end (between frames).
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, FrameError> {
        let mut header = [0u8; FRAME_HEADER_BYTES];
        let mut filled = 0;
        while filled < header.len() {
            match self.reader.read(&mut header[filled..]) {
                Ok(0) if filled == 0 => return Ok(None),
                Ok(0) => {
                    return Err(FrameError::Truncated(format!(
                        "a frame header at byte {} has {filled} of {FRAME_HEADER_BYTES} bytes",
                        self.offset
                    )))
                }
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(FrameError::Io(error.to_string())),
            }
        }
        self.offset += FRAME_HEADER_BYTES as u64;
        let kind = header[0];
        let length = u32::from_be_bytes(header[1..5].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(header[5..9].try_into().expect("4 bytes"));
        if length > self.payload_bytes_max {
            return Err(FrameError::TooLong {
                kind,
                length,
                max: self.payload_bytes_max,
            });
        }
        let mut payload = vec![0u8; length];
        self.read_exact_or(&mut payload, "a frame's payload")?;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&header[..5]);
        hasher.update(&payload);
        if hasher.finalize() != crc {
            return Err(FrameError::Checksum { kind, length });
        }
        Ok(Some((kind, payload)))
    }

    fn read_exact_or(&mut self, buffer: &mut [u8], what: &str) -> Result<(), FrameError> {
        match self.reader.read_exact(buffer) {
            Ok(()) => {
                self.offset += buffer.len() as u64;
                Ok(())
            }
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => Err(
                FrameError::Truncated(format!("{what} at byte {} ends early", self.offset)),
            ),
            Err(error) => Err(FrameError::Io(error.to_string())),
        }
    }
}

/// Writes one frame to `writer`.
pub fn write_frame(writer: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    encode_frame(&mut bytes, kind, payload);
    writer.write_all(&bytes)
}

/// A log entry as a frame payload: its first LSN (u64 BE), then its bytes.
pub fn encode_entry_payload(entry: &EntryBytes) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + entry.bytes.len());
    payload.extend_from_slice(&entry.first_lsn.to_be_bytes());
    payload.extend_from_slice(&entry.bytes);
    payload
}

/// The first LSN and the bytes of a log entry frame's payload.
pub fn decode_entry_payload(payload: &[u8]) -> Result<(Lsn, &[u8]), String> {
    if payload.len() < 8 {
        return Err(format!(
            "a log entry of {} bytes has no first LSN",
            payload.len()
        ));
    }
    let first = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
    Ok((first, &payload[8..]))
}

impl Storage {
    /// The log entries holding the records after `after` up to `through`, as
    /// stored, each checked; an entry that straddles `through` is cut there.
    /// Refuses (`StorageError::LogTrimmed`) when a checkpoint written since the
    /// caller's snapshot trimmed records after `after`: the caller takes a new
    /// snapshot. Holds the checkpoint lock, so no trim runs while it reads.
    pub fn read_entries_through(
        &self,
        after: Lsn,
        through: Lsn,
    ) -> Result<Vec<EntryBytes>, StorageError> {
        let _no_trim = self.checkpoint_lock();
        let covers = self.checkpoint_covers_lsn()?;
        if covers > after {
            return Err(StorageError::LogTrimmed { after, covers });
        }
        let record_bytes_max = self.config().record_bytes_max;
        let mut entries = Vec::new();
        let mut next = after;
        while next < through {
            let page = self.read_entries_after(next, 1 << 20)?;
            if page.is_empty() {
                break;
            }
            for entry in page {
                if entry.first_lsn > through {
                    return Ok(entries);
                }
                next = entry.last_lsn;
                if entry.last_lsn <= through && entry.first_lsn > after {
                    entries.push(entry);
                    continue;
                }
                // Cut to the records in (after, through].
                let mut records = Vec::new();
                crate::record::decode_entry(
                    &entry.bytes,
                    entry.first_lsn,
                    record_bytes_max,
                    &mut records,
                )?;
                let mut kept = Vec::new();
                let mut first_lsn = None;
                for record in records
                    .iter()
                    .filter(|record| record.lsn > after && record.lsn <= through)
                {
                    first_lsn.get_or_insert(record.lsn);
                    crate::record::encode_record(&mut kept, record.epoch, record.lsn, &record.body);
                }
                if let Some(first_lsn) = first_lsn {
                    entries.push(EntryBytes {
                        first_lsn,
                        last_lsn: entry.last_lsn.min(through),
                        bytes: kept,
                    });
                }
                if entry.last_lsn >= through {
                    return Ok(entries);
                }
            }
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_refuse_damage() {
        let mut bytes = file_header();
        encode_frame(&mut bytes, 2, b"chunk");
        encode_frame(&mut bytes, 3, b"");
        let mut reader = FrameReader::new(&bytes[..], 16);
        reader.read_file_header().unwrap();
        assert_eq!(reader.next_frame().unwrap(), Some((2, b"chunk".to_vec())));
        assert_eq!(reader.next_frame().unwrap(), Some((3, Vec::new())));
        assert_eq!(reader.next_frame().unwrap(), None);

        for index in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[index] ^= 0x01;
            let mut reader = FrameReader::new(&damaged[..], 16);
            let read = reader
                .read_file_header()
                .and_then(|()| while_frames(&mut reader));
            assert!(
                read.is_err(),
                "a flipped bit at byte {index} went unnoticed"
            );
        }
        for length in 0..bytes.len() {
            let mut reader = FrameReader::new(&bytes[..length], 16);
            let read = reader
                .read_file_header()
                .and_then(|()| while_frames(&mut reader));
            let clean_end = length == 12 || length == 12 + 9 + 5;
            assert_eq!(read.is_ok(), clean_end, "cut at {length}");
        }
    }

    fn while_frames(reader: &mut FrameReader<&[u8]>) -> Result<(), FrameError> {
        while reader.next_frame()?.is_some() {}
        Ok(())
    }

    #[test]
    fn a_newer_backup_format_is_refused() {
        let mut bytes = FILE_MAGIC.to_vec();
        bytes.extend_from_slice(&(BACKUP_FORMAT_VERSION + 1).to_be_bytes());
        let error = FrameReader::new(&bytes[..], 16)
            .read_file_header()
            .unwrap_err();
        assert!(matches!(error, FrameError::NewerFormat { .. }), "{error}");
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_before_it_is_read() {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, 1, &[7; 32]);
        let error = FrameReader::new(&bytes[..], 16).next_frame().unwrap_err();
        assert!(matches!(error, FrameError::TooLong { length: 32, .. }));
    }
}
