//! The replication channel's messages and their framing: a `u32` big-endian
//! length, then the message in bincode 2 (standard configuration), decoded with
//! a size limit. One bidirectional QUIC stream carries a whole session.

use bincode::{Decode, Encode};
use bytes::Bytes;
use flashgate_actors::PeerAddress;
use flashgate_storage::{EpochStart, EPOCH_HISTORY_MAX};
use quinn::{RecvStream, SendStream};

/// Where a node is reached, on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct NodeInfo {
    pub http: String,
    pub quic: Option<String>,
    pub replication: Option<String>,
}

impl From<PeerAddress> for NodeInfo {
    fn from(peer: PeerAddress) -> NodeInfo {
        NodeInfo {
            http: peer.http,
            quic: peer.quic,
            replication: peer.replication,
        }
    }
}

impl From<NodeInfo> for PeerAddress {
    fn from(info: NodeInfo) -> PeerAddress {
        PeerAddress {
            http: info.http,
            quic: info.quic,
            replication: info.replication,
        }
    }
}

/// How the primary brings a follower up to date.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Start {
    /// Log entries follow, from the follower's last LSN on.
    Log,
    /// `chunk_count` checkpoint chunks follow, then the log after `covers_lsn`.
    Checkpoint { covers_lsn: u64, chunk_count: u32 },
    /// The follower's log parts from the primary's after `keep_through`: it must
    /// discard the rest, then connect again.
    DiscardAfter { keep_through: u64 },
}

/// Every message of a session. Each carries, or follows one that carried, the
/// sender's epoch.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Message {
    /// Both ways, first: proof of the cluster secret bound to this TLS session.
    Hello {
        proof: [u8; 32],
    },
    /// Dialer → listener: who I am and where my log ends.
    Follow {
        node: NodeInfo,
        is_primary: bool,
        epoch: u64,
        cluster_id: u64,
        last_lsn: u64,
        history: Vec<(u64, u64)>,
        empty: bool,
    },
    /// Listener → follower: accepted; how it catches up.
    Welcome {
        epoch: u64,
        cluster_id: u64,
        history: Vec<(u64, u64)>,
        primary: NodeInfo,
        /// The primary's replication mode and standby-loss rule, as strings.
        replication: String,
        standby_loss: String,
        start: Start,
    },
    /// Listener → dialer: not served; `primary` is where to go, when known.
    Refused {
        reason: String,
        /// The listener's epoch: a dialer below it is stale.
        epoch: u64,
        primary: Option<NodeInfo>,
    },
    /// Listener → a newer primary: this node is fenced now.
    Fenced {
        epoch: u64,
    },
    CheckpointChunk {
        bytes: Vec<u8>,
    },
    /// Whole log entries, as stored: (first LSN, records).
    Entries {
        epoch: u64,
        entries: Vec<(u64, Vec<u8>)>,
    },
    Heartbeat {
        epoch: u64,
        durable_lsn: u64,
    },
    /// Follower → primary: everything up to `durable_lsn` is durable here.
    Ack {
        durable_lsn: u64,
    },
}

pub fn history_to_wire(history: &[EpochStart]) -> Vec<(u64, u64)> {
    history
        .iter()
        .map(|start| (start.epoch, start.first_lsn))
        .collect()
}

pub fn history_from_wire(history: &[(u64, u64)]) -> Vec<EpochStart> {
    history
        .iter()
        .map(|&(epoch, first_lsn)| EpochStart { epoch, first_lsn })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("replication stream: {0}")]
    Io(String),
    #[error("replication message of {0} bytes is over the limit of {1}")]
    TooLarge(usize, usize),
    #[error("replication message does not decode: {0}")]
    Malformed(String),
    #[error("the peer sent {0} where it was not expected")]
    Unexpected(&'static str),
    #[error("the peer ended the session")]
    Closed,
}

impl Message {
    /// The variant's index on the wire (bincode's enum tag).
    fn variant_index(&self) -> u32 {
        match self {
            Message::Hello { .. } => 0,
            Message::Follow { .. } => 1,
            Message::Welcome { .. } => 2,
            Message::Refused { .. } => 3,
            Message::Fenced { .. } => 4,
            Message::CheckpointChunk { .. } => 5,
            Message::Entries { .. } => 6,
            Message::Heartbeat { .. } => 7,
            Message::Ack { .. } => 8,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Follow { .. } => "follow",
            Message::Welcome { .. } => "welcome",
            Message::Refused { .. } => "refused",
            Message::Fenced { .. } => "fenced",
            Message::CheckpointChunk { .. } => "checkpoint chunk",
            Message::Entries { .. } => "entries",
            Message::Heartbeat { .. } => "heartbeat",
            Message::Ack { .. } => "ack",
        }
    }
}

/// The most bytes a message may have: the largest checkpoint chunk, with room.
pub const MESSAGE_BYTES_LIMIT: usize = flashgate_actors::codec::CHUNK_BYTES_MAX + (1 << 20);

pub fn encode(message: &Message) -> Vec<u8> {
    let mut bytes = vec![0; 4];
    bincode::encode_into_std_write(message, &mut bytes, bincode::config::standard())
        .expect("messages encode into a Vec");
    let length = u32::try_from(bytes.len() - 4).expect("messages are far below 4 GiB");
    bytes[..4].copy_from_slice(&length.to_be_bytes());
    bytes
}

/// The largest message of the handshake, before and just after the secret is
/// proven: a hello (33 bytes), and a follow request with the longest
/// advertised addresses and epoch history (see the test). Bytes claimed past
/// it (a length prefix, a vector's length) are refused before anything is
/// read or allocated for them.
pub const PRE_AUTH_MESSAGE_BYTES_MAX: usize = 4 << 10;

/// Decodes a message of the session, whose vectors may claim up to
/// `MESSAGE_BYTES_LIMIT` bytes.
pub fn decode(body: &[u8]) -> Result<Message, WireError> {
    decode_limited::<MESSAGE_BYTES_LIMIT>(body)
}

/// Decodes a handshake message: nothing in it may claim more than
/// `PRE_AUTH_MESSAGE_BYTES_MAX` bytes, so a peer that has proven nothing
/// cannot make this node allocate for a large message.
pub fn decode_handshake(body: &[u8]) -> Result<Message, WireError> {
    decode_limited::<PRE_AUTH_MESSAGE_BYTES_MAX>(body)
}

fn decode_limited<const LIMIT: usize>(body: &[u8]) -> Result<Message, WireError> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (message, read): (Message, usize) = bincode::decode_from_slice(body, config)
        .map_err(|error| WireError::Malformed(error.to_string()))?;
    if read != body.len() {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes",
            body.len() - read
        )));
    }
    message.check()?;
    Ok(message)
}

/// Longest address part (an HTTP URL, a `host:port`) a peer may advertise: it
/// is stored as the fence of a node it fences, and shown to clients.
pub const PEER_ADDRESS_BYTES_MAX: usize = 255;

impl NodeInfo {
    fn check(&self) -> Result<(), WireError> {
        let parts = [
            Some(&self.http),
            self.quic.as_ref(),
            self.replication.as_ref(),
        ];
        for part in parts.into_iter().flatten() {
            if part.len() > PEER_ADDRESS_BYTES_MAX {
                return Err(WireError::Malformed(format!(
                    "an advertised address of {} bytes; the limit is {PEER_ADDRESS_BYTES_MAX}",
                    part.len()
                )));
            }
        }
        Ok(())
    }
}

impl Message {
    /// Refuses what decodes but breaks a limit: advertised addresses and
    /// epoch histories must fit where they are stored.
    fn check(&self) -> Result<(), WireError> {
        let (node, history) = match self {
            Message::Follow { node, history, .. } => (Some(node), Some(history)),
            Message::Welcome {
                primary, history, ..
            } => (Some(primary), Some(history)),
            Message::Refused { primary, .. } => (primary.as_ref(), None),
            _ => (None, None),
        };
        if let Some(node) = node {
            node.check()?;
        }
        if let Some(history) = history.filter(|history| history.len() > EPOCH_HISTORY_MAX) {
            return Err(WireError::Malformed(format!(
                "an epoch history of {} epochs; the limit is {EPOCH_HISTORY_MAX}",
                history.len()
            )));
        }
        Ok(())
    }
}

/// The frame of `Message::Entries { epoch, entries }`, byte for byte what
/// `encode` makes of it, as chunks that share the entries' bytes instead of
/// copying them: the small parts (length prefix, variant, epoch, each entry's
/// LSN and length) are written once into one buffer and sliced.
pub fn entries_frame(epoch: u64, entries: &[(u64, Bytes)]) -> Vec<Bytes> {
    let config = bincode::config::standard();
    let mut heads: Vec<u8> = vec![0; 4];
    // Where each entry's head ends in `heads`.
    let mut ends = Vec::with_capacity(entries.len() + 1);
    let entries_tag = Message::Entries {
        epoch: 0,
        entries: Vec::new(),
    }
    .variant_index();
    let encode = |heads: &mut Vec<u8>, value: u64| {
        bincode::encode_into_std_write(value, heads, config).expect("numbers encode into a Vec");
    };
    bincode::encode_into_std_write(entries_tag, &mut heads, config)
        .expect("numbers encode into a Vec");
    encode(&mut heads, epoch);
    encode(&mut heads, entries.len() as u64);
    ends.push(heads.len());
    let mut length = heads.len() - 4;
    for (first, bytes) in entries {
        encode(&mut heads, *first);
        encode(&mut heads, bytes.len() as u64);
        ends.push(heads.len());
        length += bytes.len();
    }
    length += heads.len() - ends[0];
    let length = u32::try_from(length).expect("messages are far below 4 GiB");
    heads[..4].copy_from_slice(&length.to_be_bytes());
    let heads = Bytes::from(heads);
    let mut chunks = Vec::with_capacity(2 * entries.len() + 1);
    chunks.push(heads.slice(..ends[0]));
    for (index, (_, bytes)) in entries.iter().enumerate() {
        chunks.push(heads.slice(ends[index]..ends[index + 1]));
        chunks.push(bytes.clone());
    }
    chunks
}

/// Sends a frame made of chunks (`entries_frame`) without copying them.
pub async fn send_chunks(stream: &mut SendStream, chunks: &mut [Bytes]) -> Result<(), WireError> {
    stream
        .write_all_chunks(chunks)
        .await
        .map_err(|error| WireError::Io(error.to_string()))
}

pub async fn send(stream: &mut SendStream, message: &Message) -> Result<(), WireError> {
    stream
        .write_all(&encode(message))
        .await
        .map_err(|error| WireError::Io(error.to_string()))
}

/// The largest message accepted for acknowledgements and a fencing answer:
/// small messages from a proven peer.
pub const HANDSHAKE_BYTES_MAX: usize = 64 << 10;

/// `receive_handshake`, giving up after `timeout` with an error naming `what`
/// was awaited.
pub async fn receive_within(
    stream: &mut RecvStream,
    timeout: std::time::Duration,
    what: &str,
) -> Result<Message, WireError> {
    tokio::time::timeout(timeout, receive_handshake(stream))
        .await
        .map_err(|_| WireError::Io(format!("no {what} within {timeout:?}")))?
}

/// Reads the next handshake message (at most `PRE_AUTH_MESSAGE_BYTES_MAX`).
pub async fn receive_handshake(stream: &mut RecvStream) -> Result<Message, WireError> {
    let body = receive_body(stream, PRE_AUTH_MESSAGE_BYTES_MAX).await?;
    decode_handshake(&body)
}

/// Reads the next message; `Closed` when the peer finished the stream.
pub async fn receive(stream: &mut RecvStream, bytes_max: usize) -> Result<Message, WireError> {
    let body = receive_body(stream, bytes_max).await?;
    decode(&body)
}

/// Reads the next message's bytes, refusing a length over `bytes_max` before
/// reading them.
async fn receive_body(stream: &mut RecvStream, bytes_max: usize) -> Result<Vec<u8>, WireError> {
    let mut header = [0u8; 4];
    match stream.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Err(WireError::Closed),
        Err(error) => return Err(WireError::Io(error.to_string())),
    }
    let length = u32::from_be_bytes(header) as usize;
    if length > bytes_max {
        return Err(WireError::TooLarge(length, bytes_max));
    }
    let mut body = vec![0; length];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|error| WireError::Io(error.to_string()))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_an_error() {
        let message = Message::Entries {
            epoch: 3,
            entries: vec![(7, vec![1, 2, 3])],
        };
        let bytes = encode(&message);
        assert_eq!(
            u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - 4
        );
        assert_eq!(decode(&bytes[4..]).unwrap(), message);
        assert!(decode(&bytes[4..bytes.len() - 1]).is_err());
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn an_entries_frame_is_what_encode_makes_of_the_message() {
        // Sizes on both sides of bincode's varint steps (251, 2^16, 2^32).
        type Entries = Vec<(u64, Vec<u8>)>;
        let cases: Vec<(u64, Entries)> = vec![
            (1, vec![]),
            (3, vec![(7, vec![1, 2, 3])]),
            (
                250,
                vec![
                    (250, vec![9; 250]),
                    (251, vec![8; 251]),
                    (70_000, vec![7; 3000]),
                ],
            ),
            (
                u64::MAX,
                vec![(1 << 40, vec![6; 65_536]), (u64::MAX, vec![])],
            ),
        ];
        for (epoch, entries) in cases {
            let message = Message::Entries {
                epoch,
                entries: entries.clone(),
            };
            let shared: Vec<(u64, Bytes)> = entries
                .into_iter()
                .map(|(first, bytes)| (first, Bytes::from(bytes)))
                .collect();
            let joined: Vec<u8> = entries_frame(epoch, &shared).concat();
            assert!(joined == encode(&message), "epoch {epoch}");
        }
        for message in [
            Message::Hello { proof: [0; 32] },
            Message::Fenced { epoch: 1 },
            Message::CheckpointChunk { bytes: vec![] },
            Message::Heartbeat {
                epoch: 1,
                durable_lsn: 2,
            },
            Message::Ack { durable_lsn: 3 },
        ] {
            let tag = encode(&message)[4];
            assert_eq!(
                u32::from(tag),
                message.variant_index(),
                "{}",
                message.name()
            );
        }
    }

    #[test]
    fn an_advertised_address_over_the_limit_is_refused() {
        let follow = |http: String| Message::Follow {
            node: NodeInfo {
                http,
                quic: None,
                replication: None,
            },
            is_primary: false,
            epoch: 1,
            cluster_id: 1,
            last_lsn: 0,
            history: vec![(1, 1)],
            empty: true,
        };
        let fits = encode(&follow("h".repeat(PEER_ADDRESS_BYTES_MAX)));
        assert!(decode(&fits[4..]).is_ok());
        let over = encode(&follow("h".repeat(PEER_ADDRESS_BYTES_MAX + 1)));
        let error = decode(&over[4..]).expect_err("over the limit");
        assert!(error.to_string().contains("255"), "{error}");
    }

    #[test]
    fn the_largest_follow_request_fits_the_handshake_limit() {
        let address = "h".repeat(PEER_ADDRESS_BYTES_MAX);
        let largest = Message::Follow {
            node: NodeInfo {
                http: address.clone(),
                quic: Some(address.clone()),
                replication: Some(address),
            },
            is_primary: true,
            epoch: u64::MAX,
            cluster_id: u64::MAX,
            last_lsn: u64::MAX,
            history: vec![(u64::MAX, u64::MAX); EPOCH_HISTORY_MAX],
            empty: false,
        };
        let bytes = encode(&largest);
        assert!(
            bytes.len() - 4 <= PRE_AUTH_MESSAGE_BYTES_MAX,
            "{} bytes",
            bytes.len() - 4
        );
        assert_eq!(decode_handshake(&bytes[4..]).unwrap(), largest);
    }

    #[test]
    fn a_handshake_message_cannot_claim_a_large_vector() {
        // A checkpoint chunk claiming 1 MiB in a few bytes: the session's
        // decoder would allocate for the claim before finding the bytes
        // missing; the handshake's refuses the claim itself.
        let mut body = vec![5u8]; // the CheckpointChunk variant
        body.push(0xfc); // a u32 length follows
        body.extend_from_slice(&(1u32 << 20).to_le_bytes());
        let error = decode_handshake(&body).expect_err("claim over the limit");
        assert!(error.to_string().contains("LimitExceeded"), "{error}");
        let error = decode(&body).expect_err("bytes missing");
        assert!(!error.to_string().contains("LimitExceeded"), "{error}");
    }
}
