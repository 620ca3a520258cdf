//! Waiting-room tickets: signed, self-contained, checked without any state.
//!
//! A ticket is `<payload>.<mac>`, both base64url without padding: the
//! payload is a small JSON object (what it is, the room instance, the SKU,
//! the customer, the queue number, when it was issued and, for an
//! admission, until when it may be used); the mac is HMAC-SHA256 (ring) of
//! the payload's bytes under the node's waiting-room key. Anything that does
//! not verify, or that is over `TICKET_BYTES_MAX`, is refused before its
//! payload is read. Pure: the key and `now` are passed in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

/// The longest ticket read: a SKU and a customer id of 64 characters each,
/// and a few numbers, come to well under this.
pub const TICKET_BYTES_MAX: usize = 1024;

/// What a ticket stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A place in the queue: polled, never ordered with.
    #[serde(rename = "join")]
    Join,
    /// An admission: orders the SKU once, until `expires_at_ms`.
    #[serde(rename = "admitted")]
    Admitted,
}

/// A ticket's contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    #[serde(rename = "k")]
    pub kind: Kind,
    /// The room instance that issued it (a new one after each restart or
    /// change of the room's settings).
    #[serde(rename = "r")]
    pub room: u64,
    #[serde(rename = "s")]
    pub sku: String,
    #[serde(rename = "c")]
    pub customer: String,
    /// The queue number.
    #[serde(rename = "n")]
    pub number: u32,
    #[serde(rename = "i")]
    pub issued_at_ms: u64,
    /// For an admission: the last moment it may be used (exclusive).
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// Why a ticket was not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("the ticket is over {TICKET_BYTES_MAX} bytes")]
    TooLong,
    #[error("the ticket is not <payload>.<signature> in base64url")]
    Malformed,
    #[error("the ticket's signature does not verify: it was not issued by this waiting room (or was, before a restart of a node without waiting_room_secret_file), or was changed")]
    BadSignature,
}

/// The key tickets are signed with.
pub struct TicketKey(hmac::Key);

impl TicketKey {
    /// A key from `secret` (at least 32 bytes, checked by the caller).
    pub fn new(secret: &[u8]) -> TicketKey {
        TicketKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The signed ticket for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        // Claims are strings and numbers: serialising cannot fail.
        let payload = serde_json::to_vec(claims).expect("ticket claims serialise");
        let tag = hmac::sign(&self.0, &payload);
        let mut ticket = URL_SAFE_NO_PAD.encode(&payload);
        ticket.push('.');
        ticket.push_str(&URL_SAFE_NO_PAD.encode(tag.as_ref()));
        ticket
    }

    /// The claims of a ticket this key signed; the signature is checked (in
    /// constant time) before the payload is parsed.
    pub fn verify(&self, ticket: &str) -> Result<Claims, Unreadable> {
        if ticket.len() > TICKET_BYTES_MAX {
            return Err(Unreadable::TooLong);
        }
        let (payload, tag) = ticket.split_once('.').ok_or(Unreadable::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| Unreadable::Malformed)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| Unreadable::Malformed)?;
        hmac::verify(&self.0, &payload, &tag).map_err(|_| Unreadable::BadSignature)?;
        // Signed by this key, so written by `sign`; refused all the same if not.
        serde_json::from_slice(&payload).map_err(|_| Unreadable::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            kind: Kind::Admitted,
            room: 7,
            sku: "SNEAKER-42".into(),
            customer: "alice".into(),
            number: 12,
            issued_at_ms: 1_000,
            expires_at_ms: Some(61_000),
        }
    }

    #[test]
    fn a_signed_ticket_verifies_to_its_claims() {
        let key = TicketKey::new(&[1; 32]);
        let ticket = key.sign(&claims());
        assert!(ticket.len() < TICKET_BYTES_MAX);
        assert_eq!(key.verify(&ticket), Ok(claims()));
    }

    #[test]
    fn another_key_a_changed_payload_or_garbage_is_refused() {
        let key = TicketKey::new(&[1; 32]);
        let ticket = key.sign(&claims());
        assert_eq!(
            TicketKey::new(&[2; 32]).verify(&ticket),
            Err(Unreadable::BadSignature)
        );
        // The same signature over another customer's claims.
        let (_, tag) = ticket.split_once('.').unwrap();
        let mut other = claims();
        other.customer = "mallory".into();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap())
        );
        assert_eq!(key.verify(&forged), Err(Unreadable::BadSignature));
        for garbage in ["", "abc", "a.b", "!!.??"] {
            assert!(key.verify(garbage).is_err(), "{garbage:?}");
        }
        assert_eq!(
            key.verify(&"a".repeat(TICKET_BYTES_MAX + 1)),
            Err(Unreadable::TooLong)
        );
    }
}
