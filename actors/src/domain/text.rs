//! The text inside ids. It is shared: a clone is a reference count, so an
//! order, its event, its reply and the shard's indexes hold one allocation.
//! The text a buyer chooses (customer ids, idempotency keys) is also hashed
//! once, when the id is made, with SipHash-1-3 under a key random per process;
//! maps keyed by such ids mix only that hash, so no buyer can make ids collide
//! in a map (HashDoS) without the key, and no map hashes the text again.
//! The log stores ids as bincode stores a `String`; that never changes here.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, OnceLock};

use bincode::de::read::Reader;
use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};

use super::types::ID_LENGTH_MAX;

/// Text shared by every copy of an id.
pub(crate) type SharedText = Arc<str>;

/// Shared text with its keyed hash. Equality, order and `Debug` are the
/// text's; `Hash` writes the keyed hash alone (equal texts have equal hashes:
/// one key per process).
#[derive(Clone)]
pub(crate) struct KeyedText {
    hash: u64,
    text: SharedText,
}

/// Whether two shared texts are equal; copies of one id compare without
/// reading the text.
#[inline]
pub(crate) fn same_text(a: &SharedText, b: &SharedText) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// SipHash-1-3 under a key drawn once per process.
fn keyed_hash(text: &str) -> u64 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    KEY.get_or_init(RandomState::new).hash_one(text)
}

impl KeyedText {
    pub(crate) fn new(text: SharedText) -> KeyedText {
        KeyedText {
            hash: keyed_hash(&text),
            text,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for KeyedText {
    #[inline]
    fn eq(&self, other: &KeyedText) -> bool {
        self.hash == other.hash && same_text(&self.text, &other.text)
    }
}

impl Eq for KeyedText {}

impl PartialOrd for KeyedText {
    fn partial_cmp(&self, other: &KeyedText) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyedText {
    fn cmp(&self, other: &KeyedText) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl Hash for KeyedText {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl fmt::Debug for KeyedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

/// Writes an id's text as bincode writes a `String`: the log's format.
pub(crate) fn encode_text<E: Encoder>(text: &str, encoder: &mut E) -> Result<(), EncodeError> {
    text.encode(encoder)
}

/// Reads an id's text as bincode reads a `String` (length, then UTF-8 bytes,
/// within the decoder's limit, with the same errors), into one allocation.
pub(crate) fn decode_text<D: Decoder>(decoder: &mut D) -> Result<SharedText, DecodeError> {
    let length = u64::decode(decoder)?;
    let length = usize::try_from(length).map_err(|_| DecodeError::OutsideUsizeRange(length))?;
    decoder.claim_container_read::<u8>(length)?;
    if length > ID_LENGTH_MAX {
        // Longer than any validator lets through; read it the general way.
        let mut bytes = vec![0; length];
        decoder.reader().read(&mut bytes)?;
        let text = String::from_utf8(bytes).map_err(|e| DecodeError::Utf8 {
            inner: e.utf8_error(),
        })?;
        return Ok(SharedText::from(text));
    }
    let mut buffer = [0; ID_LENGTH_MAX];
    let bytes = &mut buffer[..length];
    decoder.reader().read(bytes)?;
    let text = std::str::from_utf8(bytes).map_err(|inner| DecodeError::Utf8 { inner })?;
    Ok(SharedText::from(text))
}

/// Encode and decode an id type through `as_str` and `from_text`.
macro_rules! text_codec {
    ($id:ident) => {
        impl bincode::Encode for $id {
            fn encode<E: bincode::enc::Encoder>(
                &self,
                encoder: &mut E,
            ) -> Result<(), bincode::error::EncodeError> {
                $crate::domain::text::encode_text(self.as_str(), encoder)
            }
        }

        impl<Context> bincode::Decode<Context> for $id {
            fn decode<D: bincode::de::Decoder<Context = Context>>(
                decoder: &mut D,
            ) -> Result<Self, bincode::error::DecodeError> {
                $crate::domain::text::decode_text(decoder).map($id::from_text)
            }
        }

        bincode::impl_borrow_decode!($id);
    };
}

pub(crate) use text_codec;
