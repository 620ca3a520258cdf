//! The replication port before the peer proved the cluster secret: what a
//! listener reads from an unauthenticated dialer (a length-prefixed `Hello`
//! under the handshake limit, then, once proven, a `Follow`).
//!
//! Input: byte 0 bit 0 set replaces the first message's proof with the right
//! one (so the fuzzer reaches the `Follow` past the secret); the rest is the
//! stream.
//!
//! Must hold: no panic; a length over the handshake limit is refused before
//! any body is read; a body decodes to a message or a typed `WireError`; a
//! proof is accepted exactly when it is the HMAC of the secret for this
//! session's keying material; a decoded message keeps the wire's limits
//! (advertised addresses, epoch histories) and re-encodes to the same value.
#![no_main]

use flashgate_fuzz::check_replication_message;
use flashgate_gateway::replication::fuzzing::{
    decode_handshake, history_from_wire, sign, verify_material, Message, WireError, DIALER,
    PRE_AUTH_MESSAGE_BYTES_MAX,
};
use flashgate_storage::agreed_through;
use libfuzzer_sys::fuzz_target;

use flashgate_fuzz::seeds::{CLUSTER_SECRET as SECRET, KEYING_MATERIAL as MATERIAL};

/// The next message of `stream` as `wire::receive` reads it under `bytes_max`:
/// `None` when the stream ends first.
fn receive(stream: &mut &[u8], bytes_max: usize) -> Option<Result<Message, WireError>> {
    let header: [u8; 4] = stream.get(..4)?.try_into().expect("4 bytes");
    let length = u32::from_be_bytes(header) as usize;
    if length > bytes_max {
        return Some(Err(WireError::TooLarge(length, bytes_max)));
    }
    let body = stream.get(4..4 + length)?;
    *stream = &stream[4 + length..];
    let result = decode_handshake(body);
    if let Ok(message) = &result {
        check_replication_message(message, body.len());
    } else if let Err(error) = &result {
        assert!(matches!(error, WireError::Malformed(_)), "{error:?}");
    }
    Some(result)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut stream)) = data.split_first() else {
        return;
    };
    let right = sign(SECRET, DIALER, &MATERIAL);
    let proof = match receive(&mut stream, PRE_AUTH_MESSAGE_BYTES_MAX) {
        Some(Ok(Message::Hello { proof })) => proof,
        _ => return,
    };
    let proof = if mode & 1 == 1 { right } else { proof };
    let proven = verify_material(SECRET, DIALER, &MATERIAL, &proof);
    assert_eq!(
        proven,
        proof == right,
        "a proof other than the HMAC was accepted, or the HMAC refused"
    );
    if !proven {
        return;
    }
    if let Some(Ok(Message::Follow {
        history, last_lsn, ..
    })) = receive(&mut stream, PRE_AUTH_MESSAGE_BYTES_MAX)
    {
        // The listener compares the follower's history with its own.
        let ours = history_from_wire(&[(1, 1), (2, 100), (5, 1000)]);
        let theirs = history_from_wire(&history);
        let agreed = agreed_through(&ours, 2000, &theirs, last_lsn);
        assert!(agreed <= 2000.min(last_lsn), "agreed through {agreed}");
    }
});
