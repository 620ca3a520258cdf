//! The QUIC front end's input: a stream's bytes, cut into frames by
//! `FrameReader` under the server's default frame limit, each frame's body a
//! `Request` (as the server reads it) or a `Response` (as the client library
//! reads it); each request then goes through the conversions to domain
//! commands (`gateway::quic::convert`), as the server runs them.
//!
//! Input: byte 0 picks the message type (bit 0) and, with byte 1, how the
//! stream's bytes arrive (chunk sizes); the rest is the stream.
//!
//! Must hold: no panic; the frames read do not depend on how the bytes
//! arrive; the reader never buffers more than one frame's limit plus the
//! bytes just added; every error is a `FrameError` with a frame code and
//! stops the stream; `finish` fails exactly when bytes of a frame are left;
//! every frame read re-encodes to a frame no longer than its bytes that reads
//! back the same; conversions refuse with typed errors, and what they accept
//! holds the domain's rules.
#![no_main]

use bincode::Encode;
use flashgate_fuzz::{assert_round_trip, chunks};
use flashgate_gateway::auth::{Caller, Credentials};
use flashgate_gateway::quic::convert;
use flashgate_gateway::request::{self, RequestError};
use flashgate_gateway::Config;
use flashgate_protocol::{
    code, encode_frame, FrameError, FrameMessage, FrameReader, Request, Response,
};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// What reading a whole stream gave: the messages, the bytes each frame took,
/// and how it ended.
#[derive(Debug, PartialEq)]
struct Read<M> {
    messages: Vec<(M, usize)>,
    end: Result<(), FrameError>,
}

fn read_stream<M: FrameMessage>(stream: &[u8], sizes: &[u8], frame_bytes_max: usize) -> Read<M> {
    let mut reader = FrameReader::new(frame_bytes_max);
    let mut messages = Vec::new();
    for chunk in chunks(stream, sizes) {
        let before = reader.buffered();
        assert!(
            before < frame_bytes_max,
            "the reader holds {before} bytes of an incomplete frame, over the frame limit {frame_bytes_max}"
        );
        reader.extend(chunk);
        loop {
            let held = reader.buffered();
            match reader.next_frame::<M>() {
                Ok(Some(message)) => messages.push((message, held - reader.buffered())),
                Ok(None) => break,
                Err(error) => {
                    assert!(
                        [
                            code::FRAME_TOO_LARGE,
                            code::UNSUPPORTED_VERSION,
                            code::MALFORMED_FRAME
                        ]
                        .contains(&error.code()),
                        "{error:?} while reading"
                    );
                    assert!(!error.to_string().is_empty());
                    return Read {
                        messages,
                        end: Err(error),
                    };
                }
            }
        }
    }
    let end = reader.finish();
    assert_eq!(end.is_err(), reader.buffered() > 0, "finish: {end:?}");
    if let Err(error) = &end {
        assert_eq!(error.code(), code::TRUNCATED_FRAME);
    }
    Read { messages, end }
}

/// One frame re-encoded, read back by a fresh reader.
fn read_frame<M: FrameMessage>(frame: &[u8], frame_bytes_max: usize) -> Option<M> {
    let mut reader = FrameReader::new(frame_bytes_max);
    reader.extend(frame);
    let message = reader.next_frame().ok()??;
    (reader.buffered() == 0).then_some(message)
}

fn check<M>(stream: &[u8], sizes: &[u8], frame_bytes_max: usize) -> Vec<M>
where
    M: FrameMessage + Encode + PartialEq + std::fmt::Debug,
{
    let whole = read_stream::<M>(stream, &[], frame_bytes_max);
    let trickled = read_stream::<M>(stream, sizes, frame_bytes_max);
    assert_eq!(
        whole, trickled,
        "the frames read depend on how bytes arrive"
    );
    let mut messages = Vec::new();
    for (message, frame_bytes) in whole.messages {
        let mut frame = Vec::new();
        encode_frame(&message, &mut frame);
        assert!(frame.len() <= frame_bytes, "re-encoding grew the frame");
        // The body alone, as `assert_round_trip` compares bodies.
        assert_round_trip(&message, frame_bytes - 5, |body| {
            let mut framed = Vec::new();
            framed.extend_from_slice(&u32::try_from(body.len() + 1).ok()?.to_be_bytes());
            framed.push(flashgate_protocol::PROTOCOL_VERSION);
            framed.extend_from_slice(body);
            read_frame(&framed, frame_bytes_max)
        });
        messages.push(message);
    }
    messages
}

const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789abcdef";

fn convert_request(request: &Request) {
    // A refusal is answered as `Response::Error` with its code and detail.
    let checked = |result: Result<(), RequestError>| {
        if let Err(error) = result {
            assert!(!error.code().is_empty());
            assert!(!error.to_string().is_empty(), "{}", error.code());
        }
    };
    match request {
        Request::PlaceOrder(order) => checked(convert::place_order(order).map(|command| {
            assert!(command.quantity >= 1);
            assert_eq!(command.sku.to_string(), order.sku);
        })),
        Request::PlaceOrders { orders } => {
            for order in orders {
                checked(convert::place_order(order).map(drop));
            }
        }
        Request::GetOrder { order_id, .. }
        | Request::Confirm { order_id, .. }
        | Request::Cancel { order_id, .. }
        | Request::Ship { order_id, .. } => checked(request::order_id(order_id).map(|id| {
            // An accepted id names the same order however it was written.
            assert_eq!(request::order_id(&id.to_string()).ok(), Some(id));
        })),
        Request::GetSku { sku, .. } => checked(
            flashgate_actors::domain::SkuId::parse(sku)
                .map(drop)
                .map_err(RequestError::from),
        ),
        Request::PutSku {
            admin_token,
            sku,
            settings,
            ..
        } => {
            checked(convert::check_admin(admin_token, ADMIN_TOKEN));
            checked(convert::put_sku(sku, settings).map(|command| {
                let _ = command.validate();
            }));
        }
        Request::Restock {
            admin_token,
            sku,
            quantity,
            ..
        } => {
            checked(convert::check_admin(admin_token, ADMIN_TOKEN));
            checked(convert::restock(sku, *quantity).map(drop));
        }
        // The credential is untrusted bytes too: a token, or a buyer JWT
        // (header, claims and signature parsed before the key is known).
        Request::Authenticate { credential, .. } => {
            match credentials().identify(Some(credential)) {
                Ok(caller) => assert!(
                    matches!(caller, Caller::Admin | Caller::Buyer(_)),
                    "{caller:?}"
                ),
                Err(failure) => assert!(!failure.0.is_empty()),
            }
        }
        Request::GetOrders { order_ids, .. } => {
            for order_id in order_ids {
                checked(request::order_id(order_id).map(drop));
            }
        }
        Request::ChangeOrder {
            order_id,
            sku,
            quantity,
            idempotency_key,
            ..
        } => checked(request::order_id(order_id).and_then(|id| {
            convert::change_order(id, None, sku.as_deref(), *quantity, idempotency_key).map(
                |command| {
                    // What is accepted names something to change, within
                    // the domain's rules, for the order asked.
                    assert_eq!(command.id, id);
                    assert!(command.sku.is_some() || command.quantity.is_some());
                    assert!(command.quantity.is_none_or(|quantity| quantity >= 1));
                    assert_eq!(command.sku.as_ref().map(|sku| sku.to_string()), *sku);
                },
            )
        })),
    }
}

/// The node's credentials in the harness: the admin token and a buyer-token
/// HMAC secret (written once to a temporary file, as the node reads it).
fn credentials() -> &'static Credentials {
    static CREDENTIALS: OnceLock<Credentials> = OnceLock::new();
    CREDENTIALS.get_or_init(|| {
        let secret =
            std::env::temp_dir().join(format!("flashgate-fuzz-jwt-secret-{}", std::process::id()));
        std::fs::write(&secret, "fuzz-buyer-token-secret-0123456789abcdef")
            .expect("write the buyer-token secret");
        let config = Config {
            jwt_hmac_secret_file: Some(secret),
            ..Config::default()
        };
        Credentials::load(&config, ADMIN_TOKEN).expect("the harness's credentials")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((&size, stream)) = rest.split_first() else {
        return;
    };
    let sizes = [size, mode >> 1, size.rotate_left(3), 1];
    let frame_bytes_max = flashgate_gateway::Config::default().quic_frame_bytes_max;
    if mode & 1 == 0 {
        for request in check::<Request>(stream, &sizes, frame_bytes_max) {
            convert_request(&request);
        }
    } else {
        check::<Response>(stream, &sizes, frame_bytes_max);
    }
});
