//! Frames: `length` (u32, big-endian: the bytes that follow), `version` (one
//! byte, `PROTOCOL_VERSION`), then the body: one `Request` or `Response` in
//! bincode 2's standard configuration. `FrameReader` cuts frames out of a byte
//! stream; it never buffers more than the frame limit, decodes a body with a
//! limit derived from that body's own length (`decode_bytes_max`), and every
//! failure is a `FrameError` naming what was wrong.

use bincode::error::DecodeError;
use bincode::{Decode, Encode};

use crate::code;
use crate::message::{PlaceOrder, Request, Response};
use crate::PROTOCOL_VERSION;

/// Length prefix plus version byte.
pub const FRAME_HEADER_BYTES: usize = 5;
/// The largest frame limit a server may be configured with (16 MiB).
pub const FRAME_BYTES_MAX_LIMIT: usize = 16 << 20;

/// A message that travels in frames, with the most memory bincode may claim
/// while decoding one byte of its body.
///
/// bincode's limit counts memory, not wire bytes: an integer claims its full
/// width (8 bytes for a `u64` that took 1 byte on the wire), a string its
/// length plus 8 for its length prefix, and a `Vec` claims the memory of all
/// its elements as soon as it has read their count, before the first one.
/// So the claim per wire byte is at most the in-memory size of the `Vec`
/// element over its shortest encoding, plus 8 for the fields inside it.
pub trait FrameMessage: Decode<()> + Encode {
    /// Upper bound of claimed bytes per body byte for any body that decodes.
    const DECODED_BYTES_PER_BODY_BYTE_MAX: usize;
}

/// The shortest `PlaceOrder` on the wire: five one-byte fields (request id,
/// empty sku, quantity, empty customer id, no idempotency key).
const PLACE_ORDER_WIRE_BYTES_MIN: usize = 5;
/// The shortest `Response` on the wire: an empty `Batch` (variant, count 0).
const RESPONSE_WIRE_BYTES_MIN: usize = 2;
/// What the fields inside one element may claim per wire byte (a `u64` of one
/// byte claims 8).
const FIELD_CLAIM_PER_WIRE_BYTE_MAX: usize = 8;

impl FrameMessage for Request {
    // `Vec<PlaceOrder>` in `PlaceOrders` is the only container of structs.
    const DECODED_BYTES_PER_BODY_BYTE_MAX: usize = std::mem::size_of::<PlaceOrder>()
        .div_ceil(PLACE_ORDER_WIRE_BYTES_MIN)
        + FIELD_CLAIM_PER_WIRE_BYTE_MAX;
}

impl FrameMessage for Response {
    // `Vec<Response>` in `Batch`, whose shortest element is an empty batch.
    const DECODED_BYTES_PER_BODY_BYTE_MAX: usize = std::mem::size_of::<Response>()
        .div_ceil(RESPONSE_WIRE_BYTES_MIN)
        + FIELD_CLAIM_PER_WIRE_BYTE_MAX;
}

/// The smallest decode limit, so that a tiny frame's fixed claims (an enum's
/// variant index claims 4 bytes, whatever the body) always fit.
const DECODE_BYTES_MIN_LOG2: u32 = 10;
/// The largest decode limit: `FRAME_BYTES_MAX_LIMIT` (2^24) times the largest
/// `DECODED_BYTES_PER_BODY_BYTE_MAX` (72, a `Response`), rounded up to a power
/// of two; a test checks that it is enough.
const DECODE_BYTES_MAX_LOG2: u32 = 31;

/// The limit a body of `body_bytes` is decoded with: what any message of that
/// length may legitimately claim (`M::DECODED_BYTES_PER_BODY_BYTE_MAX` per
/// byte), rounded up to a power of two (bincode takes its limit as a constant,
/// so one is compiled per power). A body that claims more (a string or a list
/// whose length prefix promises more than the body holds) is refused before
/// anything of that size is allocated. The frame limit bounds `body_bytes`, so
/// a server with `quic_frame_bytes_max` of 64 KiB never decodes with more than
/// a few MiB, whatever the bytes say.
pub fn decode_bytes_max<M: FrameMessage>(body_bytes: usize) -> usize {
    1usize << decode_bytes_max_log2::<M>(body_bytes)
}

fn decode_bytes_max_log2<M: FrameMessage>(body_bytes: usize) -> u32 {
    let claim = body_bytes.saturating_mul(M::DECODED_BYTES_PER_BODY_BYTE_MAX);
    let log2 = claim
        .checked_next_power_of_two()
        .map_or(usize::BITS, usize::trailing_zeros);
    log2.clamp(DECODE_BYTES_MIN_LOG2, DECODE_BYTES_MAX_LOG2)
}

/// Decodes `body` as one `M` under `decode_bytes_max::<M>(body.len())`.
fn decode_body<M: FrameMessage>(body: &[u8]) -> Result<(M, usize), DecodeError> {
    macro_rules! decode_with_limit_log2 {
        ($log2:expr; $($bits:literal)*) => {
            match $log2 {
                $($bits => bincode::decode_from_slice(
                    body,
                    bincode::config::standard().with_limit::<{ 1usize << $bits }>(),
                ),)*
                _ => unreachable!("decode_bytes_max_log2 clamps to the compiled range"),
            }
        };
    }
    decode_with_limit_log2!(decode_bytes_max_log2::<M>(body.len());
        10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31)
}

/// Why bytes could not be read as a frame. `code()` is the wire error code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {length} bytes is over the limit of {max} bytes")]
    TooLarge { length: usize, max: usize },
    #[error("frame version {found}; this server speaks version {PROTOCOL_VERSION}")]
    UnsupportedVersion { found: u8 },
    #[error("frame body is not a valid message: {0}")]
    Malformed(String),
    #[error("the stream ended {missing} bytes short of a complete frame")]
    Truncated { missing: usize },
}

impl FrameError {
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::TooLarge { .. } => code::FRAME_TOO_LARGE,
            FrameError::UnsupportedVersion { .. } => code::UNSUPPORTED_VERSION,
            FrameError::Malformed(_) => code::MALFORMED_FRAME,
            FrameError::Truncated { .. } => code::TRUNCATED_FRAME,
        }
    }
}

/// Appends one frame holding `message` to `out`.
pub fn encode_frame<M: Encode>(message: &M, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
    out[start + 4] = PROTOCOL_VERSION;
    bincode::encode_into_std_write(message, out, bincode::config::standard())
        .expect("writing to a Vec cannot fail");
    let length = u32::try_from(out.len() - start - 4).expect("frames are far below 4 GiB");
    out[start..start + 4].copy_from_slice(&length.to_be_bytes());
}

/// Cuts frames out of a byte stream. Feed it bytes as they arrive with
/// `extend`, take complete frames with `next_frame`, and call `finish` when the
/// stream ends.
pub struct FrameReader {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already consumed.
    start: usize,
    frame_bytes_max: usize,
}

impl FrameReader {
    pub fn new(frame_bytes_max: usize) -> FrameReader {
        assert!(frame_bytes_max > 0 && frame_bytes_max <= FRAME_BYTES_MAX_LIMIT);
        FrameReader {
            buffer: Vec::new(),
            start: 0,
            frame_bytes_max,
        }
    }

    /// Adds bytes read from the stream. Drops the frames already taken first, so
    /// the buffer holds at most one partial frame plus `bytes`, however long the
    /// stream runs.
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held: those of frames not yet taken.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next complete frame's message, `Ok(None)` if more bytes are needed.
    /// After an error the stream cannot be resynchronised: stop reading it.
    pub fn next_frame<M: FrameMessage>(&mut self) -> Result<Option<M>, FrameError> {
        let pending = &self.buffer[self.start..];
        if pending.len() < 4 {
            return Ok(None);
        }
        let length = u32::from_be_bytes(pending[..4].try_into().expect("4 bytes")) as usize;
        // The length counts the version byte, so a frame's total size is length + 4.
        if length + 4 > self.frame_bytes_max {
            return Err(FrameError::TooLarge {
                length: length + 4,
                max: self.frame_bytes_max,
            });
        }
        if length == 0 {
            return Err(FrameError::Malformed(
                "length 0: a frame holds at least its version byte".into(),
            ));
        }
        if pending.len() < 5 {
            return Ok(None);
        }
        if pending[4] != PROTOCOL_VERSION {
            return Err(FrameError::UnsupportedVersion { found: pending[4] });
        }
        if pending.len() < length + 4 {
            return Ok(None);
        }
        let body = &pending[FRAME_HEADER_BYTES..length + 4];
        let (message, read) = decode_body::<M>(body).map_err(|error| match error {
            DecodeError::LimitExceeded => FrameError::Malformed(format!(
                "a length inside the body promises more than its {} bytes can hold (decode limit {} bytes)",
                body.len(),
                decode_bytes_max::<M>(body.len())
            )),
            other => FrameError::Malformed(other.to_string()),
        })?;
        if read != body.len() {
            return Err(FrameError::Malformed(format!(
                "{} bytes after the message",
                body.len() - read
            )));
        }
        // One message has one encoding: bincode reads a varint written longer
        // than needed (e.g. 0xFB 0x07 0x00 for 7), so a body is taken only if
        // it is exactly what encoding its message gives back. Bools, Option
        // tags and enum variants outside their range fail the decode itself.
        let mut canonical = Vec::with_capacity(body.len());
        bincode::encode_into_std_write(&message, &mut canonical, bincode::config::standard())
            .expect("writing to a Vec cannot fail");
        if canonical != body {
            return Err(FrameError::Malformed(
                "an integer is not in its shortest encoding (docs/PROTOCOL.md, section 4: write the shortest form)".into(),
            ));
        }
        self.start += length + 4;
        Ok(Some(message))
    }

    /// Call when the stream has ended: an error if it stopped inside a frame.
    pub fn finish(&self) -> Result<(), FrameError> {
        let pending = self.buffer.len() - self.start;
        if pending == 0 {
            return Ok(());
        }
        let missing = if pending < 4 {
            4 - pending + 1
        } else {
            let length = u32::from_be_bytes(
                self.buffer[self.start..self.start + 4]
                    .try_into()
                    .expect("4 bytes"),
            );
            (length as usize + 4).saturating_sub(pending)
        };
        Err(FrameError::Truncated { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{PlaceOrder, Request, Response};

    fn place(request_id: u64) -> Request {
        Request::PlaceOrder(PlaceOrder {
            request_id,
            sku: "SNEAKER-42".into(),
            quantity: 1,
            customer_id: "alice".into(),
            idempotency_key: Some("k".into()),
        })
    }

    #[test]
    fn frames_round_trip_whole_and_byte_by_byte() {
        let mut bytes = Vec::new();
        for id in 0..3 {
            encode_frame(&place(id), &mut bytes);
        }
        let mut whole = FrameReader::new(1 << 20);
        whole.extend(&bytes);
        for id in 0..3 {
            assert_eq!(whole.next_frame::<Request>().unwrap(), Some(place(id)));
        }
        assert_eq!(whole.next_frame::<Request>().unwrap(), None);
        whole.finish().unwrap();

        let mut trickle = FrameReader::new(1 << 20);
        let mut seen = Vec::new();
        for byte in &bytes {
            trickle.extend(std::slice::from_ref(byte));
            while let Some(request) = trickle.next_frame::<Request>().unwrap() {
                seen.push(request);
            }
        }
        assert_eq!(seen, (0..3).map(place).collect::<Vec<_>>());
    }

    #[test]
    fn a_long_stream_read_in_odd_chunks_keeps_the_buffer_small() {
        let mut bytes = Vec::new();
        for id in 0..10_000 {
            encode_frame(&place(id), &mut bytes);
        }
        let mut reader = FrameReader::new(1 << 20);
        let mut taken = 0;
        for chunk in bytes.chunks(37) {
            reader.extend(chunk);
            while reader.next_frame::<Request>().unwrap().is_some() {
                taken += 1;
            }
            assert!(
                reader.buffer.len() < 37 + 64,
                "buffer grew to {}",
                reader.buffer.len()
            );
        }
        assert_eq!(taken, 10_000);
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn the_documented_example_bytes_decode() {
        // docs/PROTOCOL.md, "A worked example": GetSku { request_id: 7, sku: "A" }.
        let bytes = [0, 0, 0, 5, 1, 4, 7, 1, b'A'];
        let mut reader = FrameReader::new(1024);
        reader.extend(&bytes);
        assert_eq!(
            reader.next_frame::<Request>().unwrap(),
            Some(Request::GetSku {
                request_id: 7,
                sku: "A".into()
            })
        );
        let mut encoded = Vec::new();
        encode_frame(
            &Request::GetSku {
                request_id: 7,
                sku: "A".into(),
            },
            &mut encoded,
        );
        assert_eq!(encoded, bytes);
    }

    fn hex(bytes: &[u8]) -> String {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_documented_order_exchange_encodes_byte_for_byte() {
        // docs/PROTOCOL.md, section 8.
        let mut request = Vec::new();
        encode_frame(
            &Request::PlaceOrder(PlaceOrder {
                request_id: 300,
                sku: "SKU-1".into(),
                quantity: 2,
                customer_id: "c1".into(),
                idempotency_key: Some("k1".into()),
            }),
            &mut request,
        );
        assert_eq!(
            hex(&request),
            "00 00 00 13 01 00 fb 2c 01 05 53 4b 55 2d 31 02 02 63 31 01 02 6b 31"
        );
        let mut response = Vec::new();
        encode_frame(
            &Response::Order {
                request_id: 300,
                created: true,
                order: crate::message::Order {
                    order_id: "1-0-7".into(),
                    sku: "SKU-1".into(),
                    quantity: 2,
                    customer_id: "c1".into(),
                    status: crate::message::OrderStatus::Reserved,
                    created_at_ms: 1_795_000_000_000,
                    reserved_until_ms: 1_795_000_600_000,
                    updated_at_ms: 1_795_000_000_000,
                },
            },
            &mut response,
        );
        assert_eq!(
            hex(&response),
            "00 00 00 32 01 00 fb 2c 01 01 05 31 2d 30 2d 37 05 53 4b 55 2d 31 02 02 63 31 00 \
             fd 00 5e 56 ee a1 01 00 00 fd c0 85 5f ee a1 01 00 00 fd 00 5e 56 ee a1 01 00 00"
        );
    }

    #[test]
    fn bad_frames_are_errors_with_codes() {
        let mut oversized = FrameReader::new(64);
        oversized.extend(&[0, 0, 1, 0, 1]);
        assert_eq!(
            oversized.next_frame::<Request>().unwrap_err().code(),
            code::FRAME_TOO_LARGE
        );

        let mut version = FrameReader::new(64);
        version.extend(&[0, 0, 0, 2, 9, 0]);
        assert_eq!(
            version.next_frame::<Request>().unwrap_err().code(),
            code::UNSUPPORTED_VERSION
        );

        let mut garbage = FrameReader::new(64);
        garbage.extend(&[0, 0, 0, 3, 1, 200, 200]);
        assert_eq!(
            garbage.next_frame::<Request>().unwrap_err().code(),
            code::MALFORMED_FRAME
        );

        let mut trailing = FrameReader::new(64);
        trailing.extend(&[0, 0, 0, 6, 1, 4, 7, 1, b'A', 0]);
        assert_eq!(
            trailing.next_frame::<Request>().unwrap_err().code(),
            code::MALFORMED_FRAME
        );

        let mut truncated = FrameReader::new(64);
        truncated.extend(&[0, 0, 0, 5, 1, 4]);
        assert_eq!(truncated.next_frame::<Request>().unwrap(), None);
        assert_eq!(
            truncated.finish().unwrap_err().code(),
            code::TRUNCATED_FRAME
        );

        // A huge claimed string length must not allocate: it fails on the limit.
        let mut bomb = FrameReader::new(64);
        bomb.extend(&[
            0, 0, 0, 12, 1, 4, 7, 253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f,
        ]);
        assert_eq!(
            bomb.next_frame::<Request>().unwrap_err().code(),
            code::MALFORMED_FRAME
        );
    }

    /// A length prefix inside the body (here a string's) that promises more
    /// than the body holds is refused on the decode limit, which follows the
    /// frame's own length, before anything of the promised size is
    /// allocated; a fixed 16 MiB limit let every such frame allocate the
    /// promised bytes first.
    #[test]
    fn a_promised_length_beyond_the_body_is_refused_on_the_decode_limit() {
        // GetSku { request_id: 7, sku: <100,000 bytes promised, 1 sent> }.
        let mut frame = vec![0, 0, 0, 8, PROTOCOL_VERSION, 4, 7, 0xFC];
        frame.extend_from_slice(&100_000u32.to_le_bytes());
        frame.push(b'A');
        let length = u32::try_from(frame.len() - 4).unwrap();
        frame[..4].copy_from_slice(&length.to_be_bytes());
        let mut reader = FrameReader::new(1024);
        reader.extend(&frame);
        match reader.next_frame::<Request>() {
            Err(FrameError::Malformed(detail)) => {
                assert!(detail.contains("promises more"), "{detail}")
            }
            other => panic!("expected a refusal on the decode limit, got {other:?}"),
        }
        assert!(decode_bytes_max::<Request>(1024) < 64 * 1024);
    }

    /// The densest bodies that decode (every element as short as it can be
    /// on the wire) stay within their limit, so the limit never refuses a
    /// frame that is well formed, and the largest frame's limit is compiled.
    #[test]
    fn the_densest_bodies_decode_within_their_limit() {
        let empty = PlaceOrder {
            request_id: 0,
            sku: String::new(),
            quantity: 0,
            customer_id: String::new(),
            idempotency_key: None,
        };
        let batch = Request::PlaceOrders {
            orders: vec![empty; 13_000],
        };
        let mut bytes = Vec::new();
        encode_frame(&batch, &mut bytes);
        assert!(bytes.len() > 64_000);
        let mut reader = FrameReader::new(bytes.len());
        reader.extend(&bytes);
        assert_eq!(reader.next_frame::<Request>().unwrap(), Some(batch));

        let nested = Response::Batch {
            results: vec![Response::Batch { results: vec![] }; 30_000],
        };
        let mut bytes = Vec::new();
        encode_frame(&nested, &mut bytes);
        let mut reader = FrameReader::new(bytes.len());
        reader.extend(&bytes);
        assert_eq!(reader.next_frame::<Response>().unwrap(), Some(nested));

        let largest = FRAME_BYTES_MAX_LIMIT * Response::DECODED_BYTES_PER_BODY_BYTE_MAX;
        assert!(decode_bytes_max::<Response>(FRAME_BYTES_MAX_LIMIT) >= largest);
    }

    /// A varint written longer than needed, an Option tag or a bool other
    /// than 0 or 1 are malformed: one message has exactly one encoding, so
    /// two readers of the same bytes cannot disagree on what they say.
    #[test]
    fn only_the_shortest_encoding_is_read() {
        let refused = |body: &[u8]| {
            let mut frame = (body.len() as u32 + 1).to_be_bytes().to_vec();
            frame.push(PROTOCOL_VERSION);
            frame.extend_from_slice(body);
            let mut reader = FrameReader::new(1024);
            reader.extend(&frame);
            reader.next_frame::<Request>().unwrap_err()
        };
        // GetSku { request_id: 7 as 0xFB 07 00, sku: "A" }.
        match refused(&[4, 0xFB, 7, 0, 1, b'A']) {
            FrameError::Malformed(detail) => assert!(detail.contains("shortest"), "{detail}"),
            other => panic!("{other:?}"),
        }
        // The variant index written long.
        assert_eq!(
            refused(&[0xFB, 4, 0, 7, 1, b'A']).code(),
            code::MALFORMED_FRAME
        );
        // PlaceOrder with an idempotency key tag of 2.
        assert_eq!(
            refused(&[0, 1, 1, b'A', 1, 1, b'c', 2]).code(),
            code::MALFORMED_FRAME
        );
        // The shortest form of the same GetSku is read.
        let mut reader = FrameReader::new(1024);
        reader.extend(&[0, 0, 0, 5, PROTOCOL_VERSION, 4, 7, 1, b'A']);
        assert!(reader.next_frame::<Request>().unwrap().is_some());
    }

    #[test]
    fn responses_round_trip() {
        let response = Response::Error {
            request_id: 9,
            code: code::SOLD_OUT.into(),
            detail: "sku A is sold out".into(),
        };
        let mut bytes = Vec::new();
        encode_frame(&response, &mut bytes);
        let mut reader = FrameReader::new(1024);
        reader.extend(&bytes);
        assert_eq!(reader.next_frame::<Response>().unwrap(), Some(response));
    }
}
