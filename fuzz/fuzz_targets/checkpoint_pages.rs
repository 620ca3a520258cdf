//! A checkpoint as stored in the data dir's `checkpoints` tree: the `current`
//! pointer (generation, covered LSN, chunk count, layout, CRC32) and the pages
//! (or, for storage format 1, whole chunks) it names, read as
//! `Storage::read_checkpoint` reads them, then each chunk decoded as recovery
//! decodes it.
//!
//! Input: a structured description (`arbitrary`) of the tree's values; a value
//! may be raw bytes or "sealed" (its CRC32 computed by the harness) so the
//! fuzzer reaches past the checksums.
//!
//! Must hold: no panic and no allocation sized by a claimed count (a pointer
//! may claim 2^32 - 1 chunks, a page 2^32 - 1 pages); a checkpoint read has
//! the pointer's chunk count and covered LSN, every chunk under the chunk
//! limit, and written again (`checkpoint_values`) reads back the same; a
//! failure is `StorageError::CorruptCheckpoint`.
#![no_main]

use std::collections::BTreeMap;

use flashgate_actors::codec::decode_chunk;
use flashgate_storage::fuzzing::{checkpoint_values, read_checkpoint_values};
use flashgate_storage::{StorageConfig, StorageError};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Pointer {
    Absent,
    Raw(Vec<u8>),
    /// Format 2 (with `layout`) or format 1 (without), CRC32 computed.
    Sealed {
        generation: u8,
        covers_lsn: u64,
        chunk_count: u32,
        layout: Option<u32>,
    },
}

#[derive(Arbitrary, Debug)]
enum Value {
    Raw(Vec<u8>),
    /// A format 2 page, CRC32 over its key computed.
    Page {
        page_count: u32,
        payload: Vec<u8>,
    },
    /// A format 1 chunk, CRC32 computed.
    Chunk(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Key {
    Page { generation: u8, chunk: u8, page: u8 },
    Chunk { generation: u8, chunk: u8 },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Tree {
    pointer: Pointer,
    values: Vec<(Key, Value)>,
}

fn key_bytes(key: &Key) -> Vec<u8> {
    let mut bytes = Vec::new();
    match key {
        Key::Page {
            generation,
            chunk,
            page,
        } => {
            bytes.extend_from_slice(&u64::from(*generation).to_be_bytes());
            bytes.extend_from_slice(&u32::from(*chunk).to_be_bytes());
            bytes.extend_from_slice(&u32::from(*page).to_be_bytes());
        }
        Key::Chunk { generation, chunk } => {
            bytes.extend_from_slice(&u64::from(*generation).to_be_bytes());
            bytes.extend_from_slice(&u32::from(*chunk).to_be_bytes());
        }
        Key::Raw(raw) => bytes.extend_from_slice(raw),
    }
    bytes
}

fn value_bytes(key: &[u8], value: &Value) -> Vec<u8> {
    match value {
        Value::Raw(raw) => raw.clone(),
        Value::Page {
            page_count,
            payload,
        } => {
            let mut bytes = vec![0; 4];
            bytes.extend_from_slice(&page_count.to_be_bytes());
            bytes.extend_from_slice(payload);
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(key);
            hasher.update(&bytes[4..]);
            bytes[..4].copy_from_slice(&hasher.finalize().to_be_bytes());
            bytes
        }
        Value::Chunk(chunk) => {
            let mut bytes = crc32fast::hash(chunk).to_be_bytes().to_vec();
            bytes.extend_from_slice(chunk);
            bytes
        }
    }
}

fn pointer_bytes(pointer: &Pointer) -> Option<Vec<u8>> {
    match pointer {
        Pointer::Absent => None,
        Pointer::Raw(raw) => Some(raw.clone()),
        Pointer::Sealed {
            generation,
            covers_lsn,
            chunk_count,
            layout,
        } => {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&u64::from(*generation).to_be_bytes());
            bytes.extend_from_slice(&covers_lsn.to_be_bytes());
            bytes.extend_from_slice(&chunk_count.to_be_bytes());
            if let Some(layout) = layout {
                bytes.extend_from_slice(&layout.to_be_bytes());
            }
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_be_bytes());
            Some(bytes)
        }
    }
}

fuzz_target!(|tree: Tree| {
    let chunk_bytes_max = StorageConfig::default().chunk_bytes_max;
    let mut stored = BTreeMap::new();
    for (key, value) in &tree.values {
        let key = key_bytes(key);
        let value = value_bytes(&key, value);
        stored.insert(key, value);
    }
    let current = pointer_bytes(&tree.pointer);
    let read = read_checkpoint_values(current.as_deref(), chunk_bytes_max, |key| {
        Ok::<_, StorageError>(stored.get(key).cloned())
    });
    let checkpoint = match read {
        Ok(None) => {
            assert!(current.is_none());
            return;
        }
        Ok(Some(checkpoint)) => checkpoint,
        Err(StorageError::CorruptCheckpoint(reason)) => {
            assert!(!reason.is_empty());
            return;
        }
        Err(other) => panic!("an error other than a damaged checkpoint: {other:?}"),
    };
    let current = current.expect("a checkpoint read has a pointer");
    let covers_lsn = u64::from_be_bytes(current[8..16].try_into().expect("8 bytes"));
    let chunk_count = u32::from_be_bytes(current[16..20].try_into().expect("4 bytes"));
    assert_eq!(checkpoint.covers_lsn, covers_lsn);
    assert_eq!(checkpoint.chunks.len(), chunk_count as usize);
    assert!(checkpoint
        .chunks
        .iter()
        .all(|chunk| chunk.len() <= chunk_bytes_max));

    // Written again as the current build writes it, it reads back the same.
    let rewritten: BTreeMap<Vec<u8>, Vec<u8>> =
        checkpoint_values(9, checkpoint.covers_lsn, &checkpoint.chunks)
            .into_iter()
            .collect();
    let again = read_checkpoint_values(
        rewritten.get(b"current".as_slice()).map(Vec::as_slice),
        chunk_bytes_max,
        |key| Ok::<_, StorageError>(rewritten.get(key).cloned()),
    )
    .expect("a checkpoint written by this build reads back")
    .expect("it has a pointer");
    assert_eq!(again.covers_lsn, checkpoint.covers_lsn);
    assert_eq!(again.chunks, checkpoint.chunks);

    for chunk in &checkpoint.chunks {
        let _ = decode_chunk(chunk);
    }
});
