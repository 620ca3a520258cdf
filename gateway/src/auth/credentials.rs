//! `Credentials`: the tokens and keys a node knows, loaded once at start, and
//! `identify`, which turns a bearer credential into a `Caller`.
//!
//! - Opaque tokens (admin, service, payments, operator) are kept only as
//!   SHA-256 digests; a credential is hashed and looked up, so no comparison
//!   of secret bytes depends on how much of a guess was right.
//! - Buyer tokens are JWTs: HMAC (`jwt_hmac_secret_file`, HS256/384/512) or
//!   public keys (`jwt_jwks_file`, a JWK set: RS*, PS*, ES256/384, EdDSA,
//!   chosen by the token's `kid`). `sub` is the customer id and `exp` is
//!   required; `iss` and `aud` are checked when configured.

use std::path::{Path, PathBuf};

use flashgate_actors::domain::CustomerId;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use super::Caller;
use crate::config::{Config, ConfigError};

/// The longest credential read. Longer is refused before any parsing: a JWT
/// of a customer id and a few claims is a few hundred bytes.
pub const CREDENTIAL_BYTES_MAX: usize = 4096;
/// The shortest HMAC secret for buyer tokens (RFC 7518 §3.2: at least the
/// hash's size).
pub const JWT_HMAC_SECRET_BYTES_MIN: usize = 32;
/// Most tokens in one tokens file (rotation needs two; a list this long is a
/// mistake).
pub const TOKENS_PER_FILE_MAX: usize = 64;

/// Whether buyer and payment calls need a credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BuyerAuth {
    /// Every call but the catalogue carries a credential (the default).
    Token,
    /// Development only: buyer and payment calls need no credential and may
    /// act for any customer. Refused with replication unless
    /// `development_auth_with_replication` says otherwise.
    Development,
}

/// Why a credential was not accepted: its detail says what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthFailure(pub String);

type Digest = [u8; 32];

fn digest(text: &str) -> Digest {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(digest.as_ref());
    bytes
}

struct BuyerKeys {
    /// Keys by `kid` (`None`: the only key, used for every token).
    keys: Vec<(Option<String>, DecodingKey, Algorithm)>,
    validation: Validation,
}

#[derive(Deserialize)]
struct BuyerClaims {
    sub: String,
}

/// Every credential this node accepts.
pub struct Credentials {
    buyer_auth: BuyerAuth,
    tokens: Vec<(Digest, Caller)>,
    buyers: Option<BuyerKeys>,
}

impl Credentials {
    /// Reads the tokens files and buyer keys named in `config`; `admin_token`
    /// is the node's admin token (configured or generated).
    pub fn load(config: &Config, admin_token: &str) -> Result<Credentials, ConfigError> {
        let mut tokens = vec![(digest(admin_token), Caller::Admin)];
        let files = [
            (&config.service_tokens_file, Caller::Service),
            (&config.payments_tokens_file, Caller::Payments),
            (&config.fulfilment_tokens_file, Caller::Fulfilment),
            (&config.operator_tokens_file, Caller::Operator),
        ];
        for (path, caller) in files {
            if let Some(path) = path {
                for token in read_tokens(path)? {
                    let token = digest(&token);
                    if let Some((_, other)) = tokens.iter().find(|(known, _)| *known == token) {
                        return Err(invalid(format!(
                            "{}: a token there is already the {} token; give every role its own",
                            path.display(),
                            other.role()
                        )));
                    }
                    tokens.push((token, caller.clone()));
                }
            }
        }
        Ok(Credentials {
            buyer_auth: config.buyer_auth,
            tokens,
            buyers: buyer_keys(config)?,
        })
    }

    /// Whether any credential can place orders for buyers besides the admin
    /// token (for the start-up warning).
    pub fn takes_buyers(&self) -> bool {
        self.buyer_auth == BuyerAuth::Development
            || self.buyers.is_some()
            || self
                .tokens
                .iter()
                .any(|(_, caller)| *caller == Caller::Service)
    }

    /// The caller of a call that carries `bearer`, or none (`None`).
    pub fn identify(&self, bearer: Option<&str>) -> Result<Caller, AuthFailure> {
        let Some(bearer) = bearer else {
            return Ok(match self.buyer_auth {
                BuyerAuth::Token => Caller::Anonymous,
                BuyerAuth::Development => Caller::Development,
            });
        };
        if bearer.len() > CREDENTIAL_BYTES_MAX {
            return Err(AuthFailure(format!(
                "the credential is {} bytes, over the limit of {CREDENTIAL_BYTES_MAX}",
                bearer.len()
            )));
        }
        let token = digest(bearer);
        if let Some((_, caller)) = self.tokens.iter().find(|(known, _)| *known == token) {
            return Ok(caller.clone());
        }
        match &self.buyers {
            Some(keys) if bearer.split('.').count() == 3 => keys.buyer(bearer),
            _ => Err(AuthFailure(
                "the credential is not one this node knows: send an admin, service, payments, fulfilment or operator token, or a buyer token signed with the configured key"
                    .into(),
            )),
        }
    }
}

impl BuyerKeys {
    fn buyer(&self, token: &str) -> Result<Caller, AuthFailure> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| AuthFailure(format!("the buyer token is malformed: {error}")))?;
        let (_, key, _) = self
            .keys
            .iter()
            .find(|(kid, _, algorithm)| {
                *algorithm == header.alg
                    && (kid.is_none() || kid.as_deref() == header.kid.as_deref())
            })
            .ok_or_else(|| {
                AuthFailure(format!(
                    "the buyer token is signed with {:?}{}, which no configured key matches",
                    header.alg,
                    header
                        .kid
                        .as_deref()
                        .map(|kid| format!(" and kid {kid}"))
                        .unwrap_or_default()
                ))
            })?;
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let claims = jsonwebtoken::decode::<BuyerClaims>(token, key, &validation)
            .map_err(|error| AuthFailure(describe_jwt_error(&error)))?
            .claims;
        let customer = CustomerId::parse(&claims.sub).map_err(|error| {
            AuthFailure(format!(
                "the buyer token's subject is not a customer id: {error}"
            ))
        })?;
        Ok(Caller::Buyer(customer))
    }
}

fn describe_jwt_error(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::ExpiredSignature => "the buyer token has expired (exp); get a new one".into(),
        K::ImmatureSignature => "the buyer token is not valid yet (nbf)".into(),
        K::InvalidSignature => "the buyer token's signature is not valid".into(),
        K::InvalidIssuer => "the buyer token's issuer (iss) is not the configured one".into(),
        K::InvalidAudience => "the buyer token's audience (aud) is not the configured one".into(),
        K::MissingRequiredClaim(claim) => format!("the buyer token has no {claim} claim"),
        K::InvalidAlgorithm => "the buyer token's algorithm does not match its key".into(),
        _ => format!("the buyer token is malformed: {error}"),
    }
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}

/// A tokens file: one token a line; blank lines and `#` comments skipped.
pub(crate) fn read_tokens(path: &Path) -> Result<Vec<String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| invalid(format!("cannot read {}: {error}", path.display())))?;
    warn_if_readable_by_others(path);
    let mut tokens = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.len() > CREDENTIAL_BYTES_MAX || !line.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "{} line {}: a token is printable ASCII without spaces, at most {CREDENTIAL_BYTES_MAX} bytes",
                path.display(),
                number + 1
            )));
        }
        crate::token::check_strength(line).map_err(|reason| {
            invalid(format!(
                "{} line {}: {}",
                path.display(),
                number + 1,
                reason.replacen("admin_token", "the token", 1)
            ))
        })?;
        tokens.push(line.to_owned());
    }
    if tokens.is_empty() || tokens.len() > TOKENS_PER_FILE_MAX {
        return Err(invalid(format!(
            "{} must hold between 1 and {TOKENS_PER_FILE_MAX} tokens, one a line; it holds {}",
            path.display(),
            tokens.len()
        )));
    }
    Ok(tokens)
}

fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path) {
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "a credentials file is readable by others; chmod 600 it");
        }
    }
}

fn read_secret(path: &PathBuf) -> Result<Vec<u8>, ConfigError> {
    let mut bytes = std::fs::read(path)
        .map_err(|error| invalid(format!("cannot read {}: {error}", path.display())))?;
    warn_if_readable_by_others(path);
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    Ok(bytes)
}

fn buyer_keys(config: &Config) -> Result<Option<BuyerKeys>, ConfigError> {
    let mut keys = Vec::new();
    if let Some(path) = &config.jwt_hmac_secret_file {
        let secret = read_secret(path)?;
        if secret.len() < JWT_HMAC_SECRET_BYTES_MIN {
            return Err(invalid(format!(
                "{}: the buyer-token HMAC secret must be at least {JWT_HMAC_SECRET_BYTES_MIN} bytes, got {}; e.g. `head -c 48 /dev/urandom | base64`",
                path.display(),
                secret.len()
            )));
        }
        for algorithm in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            keys.push((None, DecodingKey::from_secret(&secret), algorithm));
        }
    }
    if let Some(path) = &config.jwt_jwks_file {
        let text = std::fs::read_to_string(path)
            .map_err(|error| invalid(format!("cannot read {}: {error}", path.display())))?;
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|error| invalid(format!("{}: not a JWK set: {error}", path.display())))?;
        if set.keys.is_empty() {
            return Err(invalid(format!(
                "{}: the JWK set has no keys",
                path.display()
            )));
        }
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone();
            let name = kid.clone().unwrap_or_else(|| "(no kid)".into());
            let algorithm = jwk
                .common
                .key_algorithm
                .and_then(|algorithm| algorithm.to_string().parse::<Algorithm>().ok())
                .filter(|algorithm| {
                    !matches!(algorithm, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
                })
                .ok_or_else(|| {
                    invalid(format!(
                        "{}: key {name} needs an \"alg\" of a public-key signature (RS256, PS256, ES256, EdDSA, …)",
                        path.display()
                    ))
                })?;
            if kid.is_none() && set.keys.len() > 1 {
                return Err(invalid(format!(
                    "{}: with several keys each needs a \"kid\"",
                    path.display()
                )));
            }
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|error| invalid(format!("{}: key {name}: {error}", path.display())))?;
            keys.push((kid, key, algorithm));
        }
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation.leeway = config.jwt_leeway_secs;
    validation.validate_nbf = true;
    if let Some(issuer) = &config.jwt_issuer {
        validation.set_issuer(&[issuer]);
    }
    match &config.jwt_audience {
        Some(audience) => validation.set_audience(&[audience]),
        None => validation.validate_aud = false,
    }
    Ok(Some(BuyerKeys { keys, validation }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &str = "a-buyer-token-secret-of-at-least-32-bytes";

    #[derive(Serialize)]
    struct Claims<'a> {
        sub: &'a str,
        exp: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        iss: Option<&'a str>,
    }

    fn now_secs() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn sign(sub: &str, exp: u64, iss: Option<&str>) -> String {
        jsonwebtoken::encode(
            &Header::default(),
            &Claims { sub, exp, iss },
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn credentials(dir: &Path, edit: impl FnOnce(&mut Config)) -> Credentials {
        let secret = dir.join("jwt-secret");
        std::fs::write(&secret, SECRET).unwrap();
        let service = dir.join("service-tokens");
        std::fs::write(
            &service,
            "# storefront\nservice-token-0123456789\nservice-token-rotated-4567\n",
        )
        .unwrap();
        let mut config = Config {
            jwt_hmac_secret_file: Some(secret),
            service_tokens_file: Some(service),
            jwt_issuer: Some("https://shop.example".into()),
            ..Config::default()
        };
        edit(&mut config);
        Credentials::load(&config, "admin-token-0123456789").unwrap()
    }

    #[test]
    fn each_credential_names_its_caller_and_failures_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = credentials(dir.path(), |_| {});
        assert_eq!(credentials.identify(None), Ok(Caller::Anonymous));
        assert_eq!(
            credentials.identify(Some("admin-token-0123456789")),
            Ok(Caller::Admin)
        );
        for service in ["service-token-0123456789", "service-token-rotated-4567"] {
            assert_eq!(credentials.identify(Some(service)), Ok(Caller::Service));
        }
        let alice = sign("alice", now_secs() + 600, Some("https://shop.example"));
        assert_eq!(
            credentials.identify(Some(&alice)),
            Ok(Caller::Buyer(CustomerId::parse("alice").unwrap()))
        );
        let failure = |credential: &str| credentials.identify(Some(credential)).unwrap_err().0;
        assert!(failure("guess-0123456789").contains("not one this node knows"));
        let expired = sign("alice", now_secs() - 3600, Some("https://shop.example"));
        assert!(failure(&expired).contains("expired"));
        let elsewhere = sign("alice", now_secs() + 600, Some("https://other.example"));
        assert!(failure(&elsewhere).contains("issuer"));
        let mut forged = alice.clone();
        forged.pop();
        forged.push(if alice.ends_with('A') { 'B' } else { 'A' });
        assert!(
            failure(&forged).contains("signature"),
            "{}",
            failure(&forged)
        );
        let control = sign(
            "al\u{200b}ice",
            now_secs() + 600,
            Some("https://shop.example"),
        );
        assert!(failure(&control).contains("subject"));
        assert!(failure(&"x".repeat(CREDENTIAL_BYTES_MAX + 1)).contains("over the limit"));
    }

    #[test]
    fn development_mode_names_the_anonymous_caller_and_bad_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let development = credentials(dir.path(), |config| {
            config.buyer_auth = BuyerAuth::Development;
        });
        assert_eq!(development.identify(None), Ok(Caller::Development));

        let weak = dir.path().join("weak");
        std::fs::write(&weak, "aaaaaaaaaaaaaaaaaaaa\n").unwrap();
        let config = Config {
            payments_tokens_file: Some(weak.clone()),
            ..Config::default()
        };
        let message = Credentials::load(&config, "admin-token-0123456789")
            .err()
            .unwrap()
            .to_string();
        assert!(
            message.contains("line 1") && message.contains("too easy"),
            "{message}"
        );

        std::fs::write(&weak, "admin-token-0123456789\n").unwrap();
        let message = Credentials::load(&config, "admin-token-0123456789")
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("already the admin token"), "{message}");

        let short = dir.path().join("short-secret");
        std::fs::write(&short, "too-short").unwrap();
        let config = Config {
            jwt_hmac_secret_file: Some(short),
            ..Config::default()
        };
        let message = Credentials::load(&config, "admin-token-0123456789")
            .err()
            .unwrap()
            .to_string();
        assert!(message.contains("at least 32 bytes"), "{message}");
    }
}
