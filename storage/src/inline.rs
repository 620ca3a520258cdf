//! Every byte flashgate stores in sled stays in sled's data file (`sled/db`), the
//! one file the durability barrier fsyncs. This module holds the limit that
//! guarantees it and the check, run at `Storage::open`, that the limit holds for
//! the sled configuration in use. Pure: no I/O.
//!
//! # Why a limit
//!
//! sled 0.34.7 writes each item of its log either into the current segment of
//! `sled/db` or, when the item is too large for a segment, into a file of its own
//! under `sled/blobs/`, with `write_all` and no fsync (`pagecache/blob_io.rs`,
//! `write_blob`). `Db::flush` makes the pointer to such a file durable, never its
//! bytes: after a power loss the pointer would survive and the bytes not.
//!
//! An item goes to a blob file when its serialized size plus a 32-byte message
//! header is over `segment_size / 4 - 20` bytes (`pagecache/logger.rs`,
//! `reserve_inner`: `MAX_MSG_HEADER_LEN`, `MINIMUM_ITEMS_PER_SEGMENT`,
//! `SEG_HEADER_LEN`): with the default 512 KiB segments, an item of more than
//! 131,020 bytes. An item is one insert (a key and its value), or a whole tree
//! node when sled consolidates a page (every 10 updates), splits or merges it,
//! or moves it while cleaning a segment. So the bound that matters is the
//! largest node, not the largest value.
//!
//! # The largest node
//!
//! - A leaf is split by the next traversal that finds more than 16 entries
//!   (`node.rs`, `should_split`): an insert can leave 17. A leaf that falls under
//!   4 entries is merged into its left sibling (`should_merge`), which may then
//!   hold 17 + 3 = 20 until the next traversal splits it. An index node splits
//!   over 256 children and merges under 64: at most 257 + 63 = 320.
//! - A node serializes as (`serialization.rs`, `Node` and `Data`): 2 bytes, two
//!   optional page ids (varints, at most 9 bytes each), its low and high keys
//!   (each a varint length and the key), a tag byte and an entry count (varint),
//!   and per entry a key length and a value length (varints) with the key and
//!   the value. Keys are stored without their common prefix; the bound counts
//!   them whole.
//!
//! The check doubles both entry counts as a margin (several threads inserting
//! into one leaf can each pass the split check before any of them links its
//! entry), and requires the largest leaf with every value at
//! `SLED_VALUE_BYTES_MAX` and every key at `SLED_KEY_BYTES_MAX`, and the largest
//! index node, to stay under the threshold. With 512 KiB segments: a leaf of
//! 40 × (3,072 + 32 + 18) + 112 = 124,992 bytes against 131,020.

use crate::error::StorageError;
use crate::record::RECORD_HEADER_BYTES;

/// Largest value flashgate stores in any sled tree (log entries, checkpoint
/// pages, meta facts). Every insert checks it; `check_values_stay_inline`
/// proves at start that a whole leaf of such values stays in sled's data file.
pub const SLED_VALUE_BYTES_MAX: usize = 3 * 1024;

/// Largest key flashgate uses in any sled tree (log: 8 bytes; checkpoint pages:
/// 16; meta: names of at most this length). Every insert checks it.
pub const SLED_KEY_BYTES_MAX: usize = 32;

/// Largest record body: one record with its header always fits in one log
/// entry, so a record never straddles two entries.
pub const RECORD_BODY_BYTES_MAX: usize = SLED_VALUE_BYTES_MAX - RECORD_HEADER_BYTES;

/// sled 0.34.7's default segment size, the one flashgate opens sled with.
pub const SLED_SEGMENT_BYTES_DEFAULT: usize = 512 * 1024;

/// sled 0.34.7 `MAX_MSG_HEADER_LEN`: the header sled writes before each item.
const SLED_MESSAGE_HEADER_BYTES: usize = 32;
/// sled 0.34.7 `SEG_HEADER_LEN`.
const SLED_SEGMENT_HEADER_BYTES: usize = 20;
/// sled 0.34.7 `MINIMUM_ITEMS_PER_SEGMENT`: larger items become blob files.
const SLED_SEGMENT_ITEMS_MIN: usize = 4;
/// Most bytes of one of sled's varints.
const SLED_VARINT_BYTES_MAX: usize = 9;
/// Most entries of a leaf when sled writes it whole: 17 after an insert, plus
/// the 3 of a merged sibling.
const SLED_LEAF_ENTRIES_MAX: usize = 17 + 3;
/// Most children of an index node when sled writes it whole: 257 + 63.
const SLED_INDEX_ENTRIES_MAX: usize = 257 + 63;
/// Safety factor on both entry counts.
const SLED_ENTRIES_MARGIN: usize = 2;

/// The largest item sled 0.34.7 keeps in its data file with `segment_bytes`
/// segments; anything larger goes to a blob file that is never fsynced.
pub const fn sled_inline_item_bytes_max(segment_bytes: usize) -> usize {
    (segment_bytes / SLED_SEGMENT_ITEMS_MIN)
        .saturating_sub(SLED_SEGMENT_HEADER_BYTES)
        .saturating_sub(SLED_MESSAGE_HEADER_BYTES)
}

/// An upper bound of the serialized size of a sled 0.34.7 tree node holding
/// `entries` entries with keys of at most `key_bytes` and values of at most
/// `value_bytes` (for an index node: a page id, a varint).
pub const fn sled_node_bytes_max(entries: usize, key_bytes: usize, value_bytes: usize) -> usize {
    let header = 2 // merging flag, prefix length
        + 2 * SLED_VARINT_BYTES_MAX // next, merging child
        + 2 * (SLED_VARINT_BYTES_MAX + key_bytes) // low and high keys
        + 1 // leaf or index
        + SLED_VARINT_BYTES_MAX; // entry count
    let entry = 2 * SLED_VARINT_BYTES_MAX + key_bytes + value_bytes;
    header + entries * entry
}

/// The largest leaf and index node flashgate's limits allow, margin included.
pub const fn flashgate_node_bytes_max() -> usize {
    let leaf = sled_node_bytes_max(
        SLED_LEAF_ENTRIES_MAX * SLED_ENTRIES_MARGIN,
        SLED_KEY_BYTES_MAX,
        SLED_VALUE_BYTES_MAX,
    );
    let index = sled_node_bytes_max(
        SLED_INDEX_ENTRIES_MAX * SLED_ENTRIES_MARGIN,
        SLED_KEY_BYTES_MAX,
        SLED_VARINT_BYTES_MAX,
    );
    if leaf > index {
        leaf
    } else {
        index
    }
}

/// Checks that with `segment_bytes` segments sled keeps every node flashgate's
/// limits allow in its data file. An error says what to do.
pub fn check_values_stay_inline(segment_bytes: usize) -> Result<(), StorageError> {
    let node_bytes_max = flashgate_node_bytes_max();
    let inline_bytes_max = sled_inline_item_bytes_max(segment_bytes);
    if node_bytes_max > inline_bytes_max {
        return Err(StorageError::Limits(format!(
            "sled with {segment_bytes}-byte segments writes any page over {inline_bytes_max} bytes \
             to sled/blobs/ without fsync, and a page of values of up to {SLED_VALUE_BYTES_MAX} \
             bytes may reach {node_bytes_max} bytes; open sled with segments of at least \
             {SLED_SEGMENT_BYTES_DEFAULT} bytes (its default), or lower SLED_VALUE_BYTES_MAX"
        )));
    }
    Ok(())
}

/// Checks one key and value before they go to sled. An error names the tree.
pub(crate) fn check_value(tree: &str, key: &[u8], value: &[u8]) -> Result<(), StorageError> {
    if key.len() > SLED_KEY_BYTES_MAX || value.len() > SLED_VALUE_BYTES_MAX {
        return Err(StorageError::ValueTooLarge {
            tree: tree.to_owned(),
            key_bytes: key.len(),
            value_bytes: value.len(),
        });
    }
    Ok(())
}

// The limits hold for the segment size flashgate opens sled with.
const _: () =
    assert!(flashgate_node_bytes_max() <= sled_inline_item_bytes_max(SLED_SEGMENT_BYTES_DEFAULT));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_segments_keep_a_full_leaf_of_largest_values_inline() {
        assert_eq!(sled_inline_item_bytes_max(512 * 1024), 131_020);
        assert_eq!(flashgate_node_bytes_max(), 124_992);
        check_values_stay_inline(SLED_SEGMENT_BYTES_DEFAULT).unwrap();
        check_values_stay_inline(1 << 24).unwrap();
    }

    #[test]
    fn segments_whose_threshold_is_too_small_are_refused_with_what_to_do() {
        let error = check_values_stay_inline(256 * 1024).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("65484") && message.contains("sled/blobs/"),
            "{message}"
        );
        assert!(message.contains("524288"), "{message}");
    }

    #[test]
    fn a_value_or_key_over_the_limit_is_refused_naming_the_tree() {
        check_value("log", &[0; 8], &[0; SLED_VALUE_BYTES_MAX]).unwrap();
        let error = check_value("log", &[0; 8], &[0; SLED_VALUE_BYTES_MAX + 1]).unwrap_err();
        assert!(error.to_string().contains("log"), "{error}");
        assert!(check_value("meta", &[0; SLED_KEY_BYTES_MAX + 1], b"").is_err());
    }

    #[test]
    fn a_record_always_fits_one_entry() {
        assert_eq!(
            RECORD_BODY_BYTES_MAX + RECORD_HEADER_BYTES,
            SLED_VALUE_BYTES_MAX
        );
    }
}
