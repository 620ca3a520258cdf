//! The admin token: configured, or generated once and kept in the data dir.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

const TOKEN_FILE: &str = "admin-token";

#[derive(Debug, thiserror::Error)]
#[error("cannot {action} the admin token file {path}: {source}; check the data dir's permissions or pass --admin-token")]
pub struct TokenError {
    action: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// Where the token came from, for the start-up message.
pub enum TokenSource {
    Configured,
    Stored(PathBuf),
    Generated(PathBuf),
}

/// Returns the configured token, or the one stored in the data dir, or a new one
/// written there with mode 0600.
pub fn admin_token(
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<(String, TokenSource), TokenError> {
    if let Some(token) = configured {
        return Ok((token.to_owned(), TokenSource::Configured));
    }
    let path = data_dir.join(TOKEN_FILE);
    let error = |action, source| TokenError {
        action,
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(token) if token.trim().len() >= 16 => {
            let mode = std::fs::metadata(&path)
                .map_err(|e| error("read", e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "the admin token file is readable by others; chmod 600 it");
            }
            return Ok((token.trim().to_owned(), TokenSource::Stored(path)));
        }
        Ok(_) => {}
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(error("read", source)),
    }
    let mut bytes = [0u8; 24];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| error("generate", std::io::Error::other(e.to_string())))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| error("write", e))?;
    file.write_all(token.as_bytes())
        .map_err(|e| error("write", e))?;
    file.sync_all().map_err(|e| error("write", e))?;
    Ok((token, TokenSource::Generated(path)))
}

/// Whether `given` is the admin token. Compares in constant time, so response
/// timing does not reveal how much of a guess was right; both front ends' admin
/// guards use it.
pub fn token_matches(given: &str, token: &str) -> bool {
    let (given, token) = (given.as_bytes(), token.as_bytes());
    if given.len() != token.len() {
        return false;
    }
    given
        .iter()
        .zip(token)
        .fold(0u8, |diff, (x, y)| diff | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = admin_token(dir.path(), None).unwrap();
        assert!(matches!(source, TokenSource::Generated(_)));
        assert_eq!(first.len(), 48);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, source) = admin_token(dir.path(), None).unwrap();
        assert_eq!(first, second);
        assert!(matches!(source, TokenSource::Stored(_)));
        let (configured, _) = admin_token(dir.path(), Some("configured-token-1234")).unwrap();
        assert_eq!(configured, "configured-token-1234");
    }
}
