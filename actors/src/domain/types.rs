//! Identifiers and values of the order domain, validated once at construction.

use std::fmt;

use bincode::{Decode, Encode};

use super::text::{same_text, text_codec, KeyedText, SharedText};

/// Milliseconds since the Unix epoch, UTC. The core never reads a clock: every
/// command carries the `now` its shell observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The last instant RFC 3339 can write: 9999-12-31T23:59:59.999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    pub fn from_system_time(time: std::time::SystemTime) -> Timestamp {
        let since_epoch = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn to_system_time(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.0)
    }

    /// Parses an RFC 3339 UTC instant such as `2026-11-27T09:00:00Z`.
    pub fn parse_rfc3339(value: &str) -> Option<Timestamp> {
        humantime::parse_rfc3339(value)
            .ok()
            .map(Timestamp::from_system_time)
    }

    pub fn plus_secs(self, secs: u32) -> Timestamp {
        Timestamp(self.0.saturating_add(u64::from(secs) * 1000))
    }
}

/// Longest SKU id, customer id and idempotency key, in bytes.
pub const ID_LENGTH_MAX: usize = 64;

/// Why a value was refused: names the field and the rule it broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct InvalidField {
    pub field: &'static str,
    pub rule: String,
}

impl InvalidField {
    pub fn new(field: &'static str, rule: impl Into<String>) -> InvalidField {
        InvalidField {
            field,
            rule: rule.into(),
        }
    }
}

/// RFC 3339 in UTC with milliseconds, e.g. `2026-11-27T09:00:00.000Z`.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self > Timestamp::MAX {
            // RFC 3339 has four-digit years; never reached through validated input.
            return write!(f, "{} ms after the Unix epoch", self.0);
        }
        write!(
            f,
            "{}",
            humantime::format_rfc3339_millis(self.to_system_time())
        )
    }
}

/// The hasher of every map the core keys by ids: foldhash, seeded per map,
/// several times faster than SipHash on these short keys. It needs no
/// protection against ids made to collide (HashDoS): no buyer chooses what it
/// hashes. Order ids are numbered by the shard; SKU ids are created by an
/// operator (a buyer naming an unknown SKU only misses); customer ids and
/// idempotency keys hash as their keyed SipHash, computed once when they are
/// made (see `text`).
pub type IdHasher = foldhash::fast::RandomState;

/// A map keyed by ids (see `IdHasher`).
pub type IdMap<K, V> = std::collections::HashMap<K, V, IdHasher>;

// Ids are logged as bincode logs a `String` (see `text`).
text_codec!(SkuId);
text_codec!(CustomerId);
text_codec!(IdempotencyKey);

/// A SKU id: 1 to 64 characters of `A-Za-z0-9._-`.
#[derive(Clone, Debug, Eq, PartialOrd, Ord)]
pub struct SkuId(SharedText);

impl PartialEq for SkuId {
    #[inline]
    fn eq(&self, other: &SkuId) -> bool {
        same_text(&self.0, &other.0)
    }
}

impl std::hash::Hash for SkuId {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl SkuId {
    pub fn parse(value: &str) -> Result<SkuId, InvalidField> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if value.is_empty() || value.len() > ID_LENGTH_MAX || !value.chars().all(allowed) {
            return Err(InvalidField::new(
                "sku",
                "must be 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' or '-'",
            ));
        }
        Ok(SkuId(SharedText::from(value)))
    }

    fn from_text(text: SharedText) -> SkuId {
        SkuId(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A hash that never changes between builds or runs (FNV-1a), so a SKU maps to
    /// the same shard on every node and after every restart.
    pub fn stable_hash(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.0.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash
    }
}

impl fmt::Display for SkuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `c` may stand in an identifier a person types: no control
/// characters, no invisible format characters (zero-width spaces and joiners,
/// bidirectional overrides, the byte-order mark), no line or paragraph
/// separators, no private-use characters. Such characters would make two ids
/// that look the same different (`al\u{200b}ice` is not `alice`), or change
/// how logs and consoles show them.
fn printable(c: char) -> bool {
    // Most ids are ASCII, where only the controls are excluded; the table
    // look-up below says the same (a test compares all 128).
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    printable_by_category(c)
}

fn printable_by_category(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    )
}

fn parse_printable(field: &'static str, value: &str) -> Result<KeyedText, InvalidField> {
    if value.is_empty() || value.len() > ID_LENGTH_MAX || !value.chars().all(printable) {
        return Err(InvalidField::new(
            field,
            "must be 1 to 64 bytes of printable characters (no control, format such as zero-width or bidirectional, line or paragraph separator, private-use or unassigned characters)",
        ));
    }
    Ok(KeyedText::new(SharedText::from(value)))
}

/// A customer id: 1 to 64 bytes of printable characters. Buyers choose it, so
/// it hashes with a keyed hash computed once (see `text`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomerId(KeyedText);

impl CustomerId {
    pub fn parse(value: &str) -> Result<CustomerId, InvalidField> {
        parse_printable("customer_id", value).map(CustomerId)
    }

    fn from_text(text: SharedText) -> CustomerId {
        CustomerId(KeyedText::new(text))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// A client-chosen key that makes retries of one order safe: 1 to 64 bytes of
/// printable characters, scoped to the customer. Hashed like a customer id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IdempotencyKey(KeyedText);

impl IdempotencyKey {
    pub fn parse(value: &str) -> Result<IdempotencyKey, InvalidField> {
        parse_printable("Idempotency-Key", value).map(IdempotencyKey)
    }

    fn from_text(text: SharedText) -> IdempotencyKey {
        IdempotencyKey(KeyedText::new(text))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// An order id, unique for the life of a data directory and across failovers:
/// the epoch that created it, the shard that owns it, and the shard's counter.
/// Written `<epoch>-<shard>-<number>`, e.g. `1-3-1042`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct OrderId {
    pub epoch: u64,
    pub shard: u32,
    pub number: u64,
}

impl OrderId {
    pub fn parse(value: &str) -> Option<OrderId> {
        let mut parts = value.splitn(3, '-');
        let mut next = || {
            parts
                .next()
                .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        let epoch = next()?.parse().ok()?;
        let shard = next()?.parse().ok()?;
        let number = next()?.parse().ok()?;
        Some(OrderId {
            epoch,
            shard,
            number,
        })
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.epoch, self.shard, self.number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ASCII shortcut of `printable` decides every ASCII character as
    /// the general-category rule does: an id is accepted or refused the same
    /// whichever path checks it.
    #[test]
    fn the_ascii_shortcut_agrees_with_the_category_rule() {
        for byte in 0..=127u8 {
            let c = char::from(byte);
            assert_eq!(printable(c), printable_by_category(c), "{byte:#04x}");
        }
        assert!(!printable('\u{200b}') && !printable('\u{202e}') && printable('é'));
    }

    #[test]
    fn sku_ids_follow_the_rule() {
        assert!(SkuId::parse("TSHIRT-red.L_2").is_ok());
        assert!(SkuId::parse("").is_err());
        assert!(SkuId::parse(&"a".repeat(65)).is_err());
        assert!(SkuId::parse(&"a".repeat(64)).is_ok());
        assert!(SkuId::parse("no spaces").is_err());
        assert!(SkuId::parse("é").is_err());
    }

    #[test]
    fn customer_ids_refuse_control_characters() {
        assert!(CustomerId::parse("alice@example.com").is_ok());
        assert!(CustomerId::parse("tab\there").is_err());
        assert!(CustomerId::parse("").is_err());
        assert!(CustomerId::parse("Zoë Müller-Łukasz 山田").is_ok());
        for sneaky in [
            "al\u{200b}ice", // zero-width space
            "al\u{202e}ice", // right-to-left override
            "\u{feff}alice", // byte-order mark
            "al\u{2028}ice", // line separator
            "al\u{2029}ice", // paragraph separator
            "al\u{e000}ice", // private use
            "al\u{00ad}ice", // soft hyphen (a format character)
        ] {
            assert!(CustomerId::parse(sneaky).is_err(), "{sneaky:?}");
            assert!(IdempotencyKey::parse(sneaky).is_err(), "{sneaky:?}");
        }
    }

    #[test]
    fn order_ids_round_trip_through_text() {
        let id = OrderId {
            epoch: 7,
            shard: 3,
            number: 1042,
        };
        assert_eq!(id.to_string(), "7-3-1042");
        assert_eq!(OrderId::parse("7-3-1042"), Some(id));
        assert_eq!(OrderId::parse("7-3"), None);
        assert_eq!(OrderId::parse("7-3-x"), None);
        assert_eq!(OrderId::parse("7--3-4"), None);
        assert_eq!(OrderId::parse("+7-3-4"), None);
    }

    #[test]
    fn timestamps_print_and_parse_as_rfc3339() {
        let t = Timestamp::parse_rfc3339("2026-11-27T09:00:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-27T09:00:00.000Z");
        assert_eq!(Timestamp::parse_rfc3339("tomorrow"), None);
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59.999Z");
        assert!(Timestamp(u64::MAX).to_string().contains("ms after"));
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        // Changing this hash would move SKUs between shards of existing data dirs.
        assert_eq!(
            SkuId::parse("a").unwrap().stable_hash(),
            0xaf63_dc4c_8601_ec8c
        );
    }
}
