//! A checkpoint chunk's bytes as recovery (or a standby catching up) decodes
//! them: a `CheckpointChunk` in bincode under the chunk limit.
//!
//! Must hold: no panic, no allocation sized by a claimed length beyond the
//! input; the input decodes whole or the error is a `DecodeError` naming the
//! checkpoint chunk; a decoded chunk re-encodes to bytes no longer than the
//! input that decode to the same chunk. Its head (`chunk_head`, read without
//! decoding the rest, by which recovery sorts chunks to their shards) never
//! panics, and for a chunk that decodes, it says what the chunk is.
#![no_main]

use flashgate_actors::codec::{chunk_head, decode_chunk, encode_chunk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let head = chunk_head(bytes);
    match decode_chunk(bytes) {
        Ok(chunk) => {
            assert_eq!(head.ok(), Some(chunk.head()), "the head disagrees");
            let again = encode_chunk(&chunk);
            assert!(again.len() <= bytes.len(), "re-encoding grew");
            assert_eq!(decode_chunk(&again).ok().as_ref(), Some(&chunk));
        }
        Err(error) => assert!(error
            .to_string()
            .starts_with("cannot decode checkpoint chunk")),
    }
});
