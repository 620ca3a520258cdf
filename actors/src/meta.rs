//! The node's cluster facts in the data dir's meta tree: its cluster id and,
//! on a fenced node, the newer primary that fenced it. Read at start (by
//! `node`) and changed by role changes (by `replica`).

use flashgate_storage::{Storage, StorageError};

use crate::peer::PeerAddress;

pub(crate) const META_CLUSTER_ID: &[u8] = b"cluster_id";
pub(crate) const META_FENCED_EPOCH: &[u8] = b"fenced_epoch";
pub(crate) const META_FENCED_PRIMARY: &[u8] = b"fenced_primary";

/// Gives a new data dir its cluster id (random); keeps an existing one.
pub(crate) fn ensure_cluster_id(storage: &Storage) -> Result<(), StorageError> {
    if storage.meta_u64(META_CLUSTER_ID)?.is_none() {
        storage.set_meta_u64(META_CLUSTER_ID, random_u64())?;
    }
    Ok(())
}

/// The data dir's cluster id (0 before one was given).
pub(crate) fn cluster_id(storage: &Storage) -> Result<u64, StorageError> {
    Ok(storage.meta_u64(META_CLUSTER_ID)?.unwrap_or(0))
}

/// The fence a data dir carries, if any: the newer epoch and its primary.
pub(crate) fn read_fence(storage: &Storage) -> Result<Option<(u64, PeerAddress)>, StorageError> {
    let Some(epoch) = storage
        .meta_u64(META_FENCED_EPOCH)?
        .filter(|epoch| *epoch > 0)
    else {
        return Ok(None);
    };
    let bytes = storage.meta_bytes(META_FENCED_PRIMARY)?.unwrap_or_default();
    Ok(Some((epoch, PeerAddress::decode(&bytes))))
}

/// Persists that a newer primary fenced this node; returns once durable.
pub(crate) fn write_fence(
    storage: &Storage,
    epoch: u64,
    primary: &PeerAddress,
) -> Result<(), StorageError> {
    storage.set_meta_values(&[
        (META_FENCED_PRIMARY, &primary.encode()),
        (META_FENCED_EPOCH, &epoch.to_be_bytes()),
    ])
}

/// A random number for a new cluster's id.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}
