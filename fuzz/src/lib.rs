//! Shared by the fuzz targets in `fuzz_targets/`: the checks every decoder
//! must pass, and the valid encodings that seed the corpora
//! (`cargo run --example write_seeds`).

pub mod seeds;

use bincode::Encode;
use flashgate_gateway::replication::fuzzing;
use flashgate_storage::EPOCH_HISTORY_MAX;

/// `value` encoded in bincode 2's standard configuration, as every decoder
/// under test reads it.
pub fn bincode_bytes<T: Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, bincode::config::standard()).expect("encodes into a Vec")
}

/// A decoded value encodes again to bytes that decode to the same value, and
/// those bytes are no longer than the ones it was decoded from (the encoder
/// writes the shortest form; a decoder may accept longer ones, e.g. varints
/// with leading zero groups).
pub fn assert_round_trip<T>(value: &T, decoded_from: usize, decode: impl Fn(&[u8]) -> Option<T>)
where
    T: Encode + PartialEq + std::fmt::Debug,
{
    let again = bincode_bytes(value);
    assert!(
        again.len() <= decoded_from,
        "re-encoding grew from {decoded_from} to {} bytes: {value:?}",
        again.len()
    );
    let decoded =
        decode(&again).unwrap_or_else(|| panic!("re-encoding does not decode: {value:?}"));
    assert_eq!(&decoded, value, "re-encoding decodes to another value");
}

/// Splits `bytes` into chunks whose sizes cycle through `sizes` (each at
/// least 1): how a stream's bytes may arrive.
pub fn chunks<'a>(bytes: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut index = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(index % sizes.len().max(1))
            .map_or(rest.len(), |&size| usize::from(size).max(1));
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        out.push(chunk);
        rest = tail;
        index += 1;
    }
    out
}

/// What every decoded replication message must satisfy: it re-encodes to the
/// same value, framed as `wire::encode` frames it, and keeps the limits the
/// decoder promises (advertised addresses, epoch histories).
pub fn check_replication_message(message: &fuzzing::Message, body_bytes: usize) {
    assert_round_trip(message, body_bytes, |bytes| fuzzing::decode(bytes).ok());
    let framed = fuzzing::encode(message);
    assert_eq!(&framed[4..], bincode_bytes(message).as_slice());
    assert_eq!(
        u32::from_be_bytes(framed[..4].try_into().expect("4 bytes")) as usize,
        framed.len() - 4
    );
    let nodes = match message {
        fuzzing::Message::Follow { node, history, .. } => {
            assert!(history.len() <= EPOCH_HISTORY_MAX);
            vec![node]
        }
        fuzzing::Message::Welcome {
            primary, history, ..
        } => {
            assert!(history.len() <= EPOCH_HISTORY_MAX);
            vec![primary]
        }
        fuzzing::Message::Refused { primary, .. } => primary.iter().collect(),
        _ => Vec::new(),
    };
    for node in nodes {
        for part in [
            Some(&node.http),
            node.quic.as_ref(),
            node.replication.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            assert!(part.len() <= fuzzing::PEER_ADDRESS_BYTES_MAX, "{part:?}");
        }
    }
}
