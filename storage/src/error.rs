use std::path::PathBuf;

use crate::record::Lsn;

/// Everything that can go wrong with the data directory. Messages say what,
/// where, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot use data dir {path}: {source}; check that it exists or can be created, is writable by this user, and is not used by another flashgate process")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the log in {path}: {message}; check that no other flashgate process uses this data dir")]
    Open { path: PathBuf, message: String },
    #[error("data dir {path} was written by storage format {found}; this flashgate reads format {supported} at most: run a newer flashgate")]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("log record at LSN {lsn} is damaged: {reason}; the log cannot be trusted past this point: restore the data dir from a standby or backup")]
    Corrupt { lsn: Lsn, reason: String },
    #[error("checkpoint is damaged: {0}; remove nothing by hand: restore the data dir from a standby or backup")]
    CorruptCheckpoint(String),
    #[error("storage limits do not hold: {0}")]
    Limits(String),
    #[error("refused to store a value of {value_bytes} bytes under a key of {key_bytes} bytes in sled tree {tree}: the limits are {} and {} bytes, which keep every value in sled's data file, the one file the durability barrier fsyncs; this is a bug in flashgate", crate::inline::SLED_VALUE_BYTES_MAX, crate::inline::SLED_KEY_BYTES_MAX)]
    ValueTooLarge {
        tree: String,
        key_bytes: usize,
        value_bytes: usize,
    },
    #[error("log write failed: {0}")]
    Io(String),
    #[error("storage stopped taking writes after an earlier failure: {0}")]
    Stopped(String),
    #[error("a checkpoint covering LSN {covers} trimmed the log after LSN {after} while a backup read it; take the snapshot again")]
    LogTrimmed { after: Lsn, covers: Lsn },
}

impl StorageError {
    pub fn corrupt(lsn: Lsn, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            lsn,
            reason: reason.into(),
        }
    }
}

impl From<sled::Error> for StorageError {
    fn from(error: sled::Error) -> StorageError {
        match error {
            sled::Error::Io(error) => StorageError::from(error),
            other => StorageError::Io(other.to_string()),
        }
    }
}

impl From<std::io::Error> for StorageError {
    fn from(error: std::io::Error) -> StorageError {
        StorageError::Io(describe_io_error(&error))
    }
}

/// An I/O error as an operator needs it: the system's words, the errno name for
/// the errors a disk gives, and what to do about them.
pub fn describe_io_error(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let (name, action) = match error.kind() {
        ErrorKind::StorageFull => ("ENOSPC", "free space on the data dir's filesystem"),
        ErrorKind::QuotaExceeded => ("EDQUOT", "raise the quota or free space"),
        ErrorKind::ReadOnlyFilesystem => ("EROFS", "remount the filesystem read-write"),
        _ if error.raw_os_error() == Some(5) => ("EIO", "check or replace the disk"),
        _ => return error.to_string(),
    };
    format!("{error} ({name}: {action})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_named_enospc_with_what_to_do() {
        let full = std::io::Error::from_raw_os_error(28);
        let message = StorageError::from(full).to_string();
        assert!(
            message.contains("ENOSPC") && message.contains("free space"),
            "{message}"
        );
        let other = std::io::Error::other("something else");
        assert_eq!(
            StorageError::from(other).to_string(),
            "log write failed: something else"
        );
    }
}
