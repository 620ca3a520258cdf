//! Frames: `length` (u32, big-endian: the bytes that follow), `version` (one
//! byte, `PROTOCOL_VERSION`), then the body: one `Request` or `Response` in
//! bincode 2's standard configuration. `FrameReader` cuts frames out of a byte
//! stream; it never allocates more than the frame limit, and every failure is a
//! `FrameError` naming what was wrong.

use bincode::{Decode, Encode};

use crate::code;
use crate::PROTOCOL_VERSION;

/// Length prefix plus version byte.
pub const FRAME_HEADER_BYTES: usize = 5;
/// The largest frame limit a server may be configured with (16 MiB).
pub const FRAME_BYTES_MAX_LIMIT: usize = 16 << 20;

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
    pub fn next_frame<M: Decode<()>>(&mut self) -> Result<Option<M>, FrameError> {
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
        let config = bincode::config::standard().with_limit::<FRAME_BYTES_MAX_LIMIT>();
        let (message, read) = bincode::decode_from_slice(body, config)
            .map_err(|error| FrameError::Malformed(error.to_string()))?;
        if read != body.len() {
            return Err(FrameError::Malformed(format!(
                "{} bytes after the message",
                body.len() - read
            )));
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
