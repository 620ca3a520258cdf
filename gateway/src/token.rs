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

/// Fewest characters a configured admin token may have.
pub const TOKEN_CHARS_MIN: usize = 16;
/// Fewest bits of entropy a configured admin token must show, estimated from
/// how often each of its characters repeats (16 random hex digits show about
/// 51, `aaaaaaaaaaaaaaaa` none).
pub const TOKEN_ENTROPY_BITS_MIN: f64 = 48.0;

/// Refuses a configured admin token that is short or easy to guess, saying
/// why and how to make a good one.
pub fn check_strength(token: &str) -> Result<(), String> {
    let chars = token.chars().count();
    if chars < TOKEN_CHARS_MIN {
        return Err(format!(
            "admin_token must be at least {TOKEN_CHARS_MIN} characters, got {chars}; e.g. `head -c 24 /dev/urandom | base64`"
        ));
    }
    let bits = entropy_bits(token);
    if bits < TOKEN_ENTROPY_BITS_MIN {
        return Err(format!(
            "admin_token is too easy to guess (about {bits:.0} bits, at least {TOKEN_ENTROPY_BITS_MIN:.0} needed: too many repeated characters); use random characters, e.g. `head -c 24 /dev/urandom | base64`"
        ));
    }
    Ok(())
}

/// The Shannon entropy of `text`'s characters times its length: an upper
/// bound on what guessing it costs, low for repeats and short alphabets.
fn entropy_bits(text: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    for c in text.chars() {
        *counts.entry(c).or_insert(0u32) += 1;
    }
    let total = text.chars().count() as f64;
    let per_char: f64 = counts
        .values()
        .map(|&count| {
            let share = f64::from(count) / total;
            -share * share.log2()
        })
        .sum();
    per_char * total
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
    fn weak_admin_tokens_are_refused_with_the_reason() {
        assert!(check_strength("short").unwrap_err().contains("at least 16"));
        for weak in ["aaaaaaaaaaaaaaaa", "abababababababab", "aaaaaaaaaaaaaaab"] {
            let error = check_strength(weak).unwrap_err();
            assert!(error.contains("too easy to guess"), "{weak}: {error}");
        }
        for good in [
            "0123456789abcdeX",
            "integration-test-admin-token",
            "Zm9vYmFyYmF6cXV4cXV1eA==",
        ] {
            assert_eq!(check_strength(good), Ok(()), "{good}");
        }
    }

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
