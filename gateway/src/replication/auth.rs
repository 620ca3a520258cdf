//! Who may join the cluster: both ends of a replication connection prove they
//! hold the cluster secret. The proof is an HMAC-SHA256, keyed by the secret, of
//! the side's label and keying material exported from this very TLS session, so
//! it cannot be replayed on another connection or relayed by a node in the
//! middle (its two TLS sessions export different material). TLS itself
//! encrypts; certificates are throwaway, the secret is the identity.

use ring::hmac;

const EXPORTER_LABEL: &[u8] = b"EXPORTER-flashgate-replication";
/// The side that opens the connection (a standby, or a primary fencing an
/// older one).
pub const DIALER: &[u8] = b"flashgate replication dialer";
/// The side that accepts it.
pub const LISTENER: &[u8] = b"flashgate replication listener";
/// QUIC application close code: the peer did not prove the cluster secret.
pub const CLOSE_AUTH_FAILED: u32 = 1;
/// QUIC application close code: the dialer's handshake broke a rule (a message
/// too large or malformed); the reason names which.
pub const CLOSE_HANDSHAKE_FAILED: u32 = 2;

/// This connection's proof for `side`.
pub fn proof(secret: &[u8], side: &[u8], connection: &quinn::Connection) -> Option<[u8; 32]> {
    let material = exported(connection)?;
    Some(sign(secret, side, &material))
}

/// Whether `proof` is `side`'s proof on this connection (constant time).
pub fn verify(
    secret: &[u8],
    side: &[u8],
    connection: &quinn::Connection,
    proof: &[u8; 32],
) -> bool {
    let Some(material) = exported(connection) else {
        return false;
    };
    verify_material(secret, side, &material, proof)
}

/// Whether `proof` is `side`'s proof for this keying material (constant time).
pub fn verify_material(secret: &[u8], side: &[u8], material: &[u8; 32], proof: &[u8; 32]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, &message(side, material), proof).is_ok()
}

fn exported(connection: &quinn::Connection) -> Option<[u8; 32]> {
    let mut material = [0u8; 32];
    connection
        .export_keying_material(&mut material, EXPORTER_LABEL, b"")
        .ok()?;
    Some(material)
}

fn message(side: &[u8], material: &[u8; 32]) -> Vec<u8> {
    let mut message = Vec::with_capacity(side.len() + material.len());
    message.extend_from_slice(side);
    message.extend_from_slice(material);
    message
}

/// `side`'s proof for this keying material.
pub fn sign(secret: &[u8], side: &[u8], material: &[u8; 32]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, &message(side, material));
    tag.as_ref().try_into().expect("HMAC-SHA256 is 32 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_depends_on_the_secret_the_side_and_the_session() {
        let material = [7u8; 32];
        let proof = sign(b"0123456789abcdef", DIALER, &material);
        assert_eq!(proof, sign(b"0123456789abcdef", DIALER, &material));
        assert_ne!(proof, sign(b"0123456789abcdeX", DIALER, &material));
        assert_ne!(proof, sign(b"0123456789abcdef", LISTENER, &material));
        assert_ne!(proof, sign(b"0123456789abcdef", DIALER, &[8u8; 32]));
    }
}
