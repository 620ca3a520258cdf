//! flashgate's binary order protocol, spoken over QUIC by trusted upstreams.
//! Pure definitions and codec: no sockets, no clocks. docs/PROTOCOL.md specifies
//! every byte; this crate is the reference implementation of that document.
//!
//! # Layout
//! - `frame`: the length-prefixed frame (`u32` length, version byte, body) and
//!   `FrameReader`, which cuts frames out of a byte stream with limits.
//! - `message`: `Request` and `Response`, the frame bodies, and their fields.
//! - `code`: the error codes, the same as the HTTP API's.

pub mod code;
pub mod frame;
pub mod message;

pub use frame::{
    decode_bytes_max, encode_frame, FrameError, FrameMessage, FrameReader, FRAME_BYTES_MAX_LIMIT,
    FRAME_HEADER_BYTES,
};
pub use message::{Order, OrderStatus, PlaceOrder, Request, Response, Sku, SkuSettings};

/// The ALPN protocol id a client must offer.
pub const ALPN: &[u8] = b"flashgate/1";
/// The protocol version this build speaks; carried in every frame.
pub const PROTOCOL_VERSION: u8 = 1;
