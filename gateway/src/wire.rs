//! The JSON wire format: reading request bodies field by field (so every error
//! names its field and rule) and the response bodies. Wire types convert into
//! domain types here and nowhere else.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use flashgate_actors::domain::{
    IdempotencyKey, InvalidField, Order, OrderId, PlaceOrder, PutSku, RequestedSettings, Restock,
    Sku, Timestamp,
};
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::request::RequestError;

/// Reads a JSON object body: checks the media type, the size limit and the syntax.
/// What a request body may cost: bytes, and the time to arrive.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub bytes_max: usize,
    pub read_timeout: std::time::Duration,
}

pub async fn read_object(
    request: &HttpRequest,
    payload: web::Payload,
    limits: BodyLimits,
) -> Result<Fields, RequestError> {
    parse_object(&read_body(request, payload, limits).await?)
}

/// Reads a place-order body (`sku`, `quantity`, `customer_id`, nothing
/// else) as a command under `idempotency_key`, with the same checks and
/// refusals as `read_object` followed by field-by-field reading, but without
/// building a map of the members: the fields' rules are `PlaceOrder::parse`'s.
pub async fn read_order(
    request: &HttpRequest,
    payload: web::Payload,
    limits: BodyLimits,
    idempotency_key: Option<IdempotencyKey>,
) -> Result<PlaceOrder, RequestError> {
    parse_order(&read_body(request, payload, limits).await?, idempotency_key)
}

/// The bytes of a JSON body, after checking its media type, its size and
/// the time it takes to arrive.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limits: BodyLimits,
) -> Result<web::Bytes, RequestError> {
    let body_bytes_max = limits.bytes_max;
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !is_json(content_type) {
        return Err(RequestError::UnsupportedMediaType);
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    if declared.is_some_and(|length| length > body_bytes_max) {
        return Err(RequestError::BodyTooLarge(body_bytes_max));
    }
    let read = async {
        // A body that arrives in one chunk (the usual case: it came with the
        // head) is parsed where it lies; only a body in several chunks is
        // copied into one buffer.
        let mut first: Option<web::Bytes> = None;
        let mut joined: Option<web::BytesMut> = None;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|error| {
                RequestError::MalformedJson(format!("cannot read the body: {error}"))
            })?;
            let held = first.as_ref().map_or(0, |first| first.len())
                + joined.as_ref().map_or(0, |joined| joined.len());
            if held + chunk.len() > body_bytes_max {
                return Err(RequestError::BodyTooLarge(body_bytes_max));
            }
            match (&mut joined, first.take()) {
                (Some(joined), _) => joined.extend_from_slice(&chunk),
                (None, None) => first = Some(chunk),
                (None, Some(earlier)) => {
                    let capacity = declared
                        .unwrap_or(0)
                        .clamp(held + chunk.len(), body_bytes_max);
                    let mut buffer = web::BytesMut::with_capacity(capacity);
                    buffer.extend_from_slice(&earlier);
                    buffer.extend_from_slice(&chunk);
                    joined = Some(buffer);
                }
            }
        }
        Ok(match joined {
            Some(joined) => joined.freeze(),
            None => first.unwrap_or_default(),
        })
    };
    tokio::time::timeout(limits.read_timeout, read)
        .await
        .map_err(|_| RequestError::BodyTimeout(limits.read_timeout))?
}

/// Whether a `Content-Type` names JSON: `application/json` or
/// `application/<anything>+json`, in any case, parameters ignored.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let prefix = "application/";
    let has_prefix = essence
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix));
    let subtype = essence.get(prefix.len()..).unwrap_or("");
    has_prefix
        && (subtype.eq_ignore_ascii_case("json")
            || subtype
                .len()
                .checked_sub("+json".len())
                .and_then(|start| subtype.get(start..))
                .is_some_and(|tail| tail.eq_ignore_ascii_case("+json")))
}

/// A whole request body as a JSON object's members: `MalformedJson` for bytes
/// that are not JSON (or repeat a key), `InvalidField` for JSON that is not an
/// object. Pure: what `read_object` does once the body has arrived.
pub fn parse_object(body: &[u8]) -> Result<Fields, RequestError> {
    match serde_json::from_slice::<StrictJson>(body).map(|strict| strict.0) {
        Ok(Value::Object(map)) => Ok(Fields(map)),
        Ok(_) => Err(not_an_object()),
        Err(error) => Err(malformed(error)),
    }
}

fn not_an_object() -> RequestError {
    InvalidField::new("body", "must be a JSON object").into()
}

fn malformed(error: serde_json::Error) -> RequestError {
    RequestError::MalformedJson(format!("the body is not valid JSON: {error}"))
}

/// A whole place-order body as a command: what `read_order` does once the
/// body has arrived. Refuses exactly as `parse_object` and then reading
/// `sku`, `quantity` and `customer_id` from `Fields` would: bytes that are
/// not JSON or repeat a key are `MalformedJson`, then the members in that
/// order by their JSON type, then the first other member by name, then
/// `PlaceOrder::parse`'s rules.
pub fn parse_order(
    body: &[u8],
    idempotency_key: Option<IdempotencyKey>,
) -> Result<PlaceOrder, RequestError> {
    let members = match serde_json::from_slice::<OrderJson>(body) {
        Ok(OrderJson::Object(members)) => members,
        Ok(OrderJson::NotObject) => return Err(not_an_object()),
        Err(error) => return Err(malformed(error)),
    };
    let present = |value: Option<Value>| value.filter(|value| !value.is_null());
    let sku = required_string("sku", present(members.sku))?;
    let quantity = required_unsigned("quantity", present(members.quantity))?;
    let customer = required_string("customer_id", present(members.customer_id))?;
    if let Some(unknown) = members.others.into_iter().next() {
        return Err(RequestError::UnknownMember(unknown));
    }
    Ok(PlaceOrder::parse(
        &sku,
        quantity,
        &customer,
        idempotency_key,
    )?)
}

/// A place-order body as it was read: its three members (a JSON null kept
/// as such, so a repeated key is seen) and the names of any others, in order.
enum OrderJson {
    Object(OrderMembers),
    NotObject,
}

#[derive(Default)]
struct OrderMembers {
    sku: Option<Value>,
    quantity: Option<Value>,
    customer_id: Option<Value>,
    others: std::collections::BTreeSet<String>,
}

impl<'de> serde::Deserialize<'de> for OrderJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<OrderJson, D::Error> {
        deserializer.deserialize_any(OrderVisitor)
    }
}

/// A member name of a place-order body: one of its three is matched in
/// place, without a `String`.
enum MemberName {
    Sku,
    Quantity,
    CustomerId,
    Other(String),
}

impl<'de> serde::Deserialize<'de> for MemberName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<MemberName, D::Error> {
        deserializer.deserialize_str(MemberNameVisitor)
    }
}

struct MemberNameVisitor;

impl serde::de::Visitor<'_> for MemberNameVisitor {
    type Value = MemberName;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_str<E>(self, name: &str) -> Result<MemberName, E> {
        Ok(match name {
            "sku" => MemberName::Sku,
            "quantity" => MemberName::Quantity,
            "customer_id" => MemberName::CustomerId,
            other => MemberName::Other(other.to_owned()),
        })
    }
}

struct OrderVisitor;

impl<'de> serde::de::Visitor<'de> for OrderVisitor {
    type Value = OrderJson;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OrderJson, A::Error> {
        let mut members = OrderMembers::default();
        while let Some(name) = map.next_key::<MemberName>()? {
            let (slot, name) = match name {
                MemberName::Sku => (&mut members.sku, "sku"),
                MemberName::Quantity => (&mut members.quantity, "quantity"),
                MemberName::CustomerId => (&mut members.customer_id, "customer_id"),
                MemberName::Other(name) => {
                    if members.others.contains(&name) {
                        return Err(repeated_key(&name));
                    }
                    let StrictJson(_) = map.next_value()?;
                    members.others.insert(name);
                    continue;
                }
            };
            if slot.is_some() {
                return Err(repeated_key(name));
            }
            let StrictJson(value) = map.next_value()?;
            *slot = Some(value);
        }
        Ok(OrderJson::Object(members))
    }

    // Anything but an object is read whole (so bad JSON anywhere in it is
    // still `MalformedJson`), then refused as not an object.
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<OrderJson, A::Error> {
        StrictVisitor.visit_seq(seq).map(|_| OrderJson::NotObject)
    }

    fn visit_bool<E>(self, _: bool) -> Result<OrderJson, E> {
        Ok(OrderJson::NotObject)
    }

    fn visit_i64<E>(self, _: i64) -> Result<OrderJson, E> {
        Ok(OrderJson::NotObject)
    }

    fn visit_u64<E>(self, _: u64) -> Result<OrderJson, E> {
        Ok(OrderJson::NotObject)
    }

    fn visit_f64<E>(self, _: f64) -> Result<OrderJson, E> {
        Ok(OrderJson::NotObject)
    }

    fn visit_str<E>(self, _: &str) -> Result<OrderJson, E> {
        Ok(OrderJson::NotObject)
    }

    fn visit_unit<E>(self) -> Result<OrderJson, E> {
        Ok(OrderJson::NotObject)
    }
}

/// The refusal of a key sent twice in one object.
fn repeated_key<E: serde::de::Error>(key: &str) -> E {
    E::custom(format!(
        "the key \"{key}\" appears twice (send each key once)"
    ))
}

/// A JSON value whose objects are checked for repeated keys at every depth:
/// with `"quantity":1,"quantity":5` a plain parse keeps the last silently, so
/// what a client meant and what a proxy or a log shows could differ.
struct StrictJson(Value);

impl<'de> serde::Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<StrictJson, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = StrictJson;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::Bool(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::from(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::from(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::from(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::String(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::String(value)))
    }

    fn visit_unit<E>(self) -> Result<StrictJson, E> {
        Ok(StrictJson(Value::Null))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<StrictJson, A::Error> {
        let mut values = Vec::new();
        while let Some(StrictJson(value)) = seq.next_element()? {
            values.push(value);
        }
        Ok(StrictJson(Value::Array(values)))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<StrictJson, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if members.contains_key(&key) {
                return Err(repeated_key(&key));
            }
            let StrictJson(value) = map.next_value()?;
            members.insert(key, value);
        }
        Ok(StrictJson(Value::Object(members)))
    }
}

/// The members of a JSON object body, taken one at a time.
pub struct Fields(Map<String, Value>);

impl Fields {
    /// Reads a put-SKU body for `sku`: `stock` and the settings, and nothing
    /// else; the defaults and rules are `PutSku::parse`'s.
    pub fn into_put_sku(mut self, sku: &str) -> Result<PutSku, RequestError> {
        let stock = self.optional_unsigned("stock")?;
        let requested = RequestedSettings {
            per_customer_limit: self.optional_unsigned("per_customer_limit")?,
            max_quantity_per_order: self.optional_u32("max_quantity_per_order")?,
            sale_starts_at: self.optional_timestamp("sale_starts_at")?,
            reservation_ttl_secs: self.optional_u32("reservation_ttl_secs")?,
            low_stock_threshold: self.optional_unsigned("low_stock_threshold")?,
        };
        self.finish()?;
        Ok(PutSku::parse(sku, stock, requested)?)
    }

    /// Reads a restock body for `sku`: `quantity`, and nothing else; the
    /// rules are `Restock::parse`'s.
    pub fn into_restock(mut self, sku: &str) -> Result<Restock, RequestError> {
        let quantity = self.unsigned("quantity")?;
        self.finish()?;
        Ok(Restock::parse(sku, quantity)?)
    }

    /// Reads a change body for order `id`: `quantity` and/or `sku`, and
    /// nothing else; the rules are `ChangeOrder::parse`'s.
    pub fn into_change_order(
        mut self,
        id: flashgate_actors::domain::OrderId,
        customer: Option<flashgate_actors::domain::CustomerId>,
        key: IdempotencyKey,
    ) -> Result<flashgate_actors::domain::ChangeOrder, RequestError> {
        let quantity = self.optional_unsigned("quantity")?;
        let sku = self.optional_string("sku")?;
        self.finish()?;
        Ok(flashgate_actors::domain::ChangeOrder::parse(
            id,
            customer,
            sku.as_deref(),
            quantity,
            key,
        )?)
    }
}

fn invalid(field: &'static str, rule: &str) -> RequestError {
    InvalidField::new(field, rule).into()
}

// A member's JSON type, checked: `value` is the member, `None` when absent
// or null.

fn required_string(field: &'static str, value: Option<Value>) -> Result<String, RequestError> {
    optional_string(field, value)?.ok_or_else(|| invalid(field, "is required (a string)"))
}

fn optional_string(
    field: &'static str,
    value: Option<Value>,
) -> Result<Option<String>, RequestError> {
    match value {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn required_unsigned(field: &'static str, value: Option<Value>) -> Result<u64, RequestError> {
    optional_unsigned(field, value)?.ok_or_else(|| invalid(field, "is required (a whole number)"))
}

fn optional_unsigned(
    field: &'static str,
    value: Option<Value>,
) -> Result<Option<u64>, RequestError> {
    match value {
        None => Ok(None),
        Some(Value::Number(number)) => match number.as_u64() {
            Some(value) => Ok(Some(value)),
            None if number.as_f64().is_some_and(|value| value < 0.0) => {
                Err(invalid(field, "must be 0 or more"))
            }
            None if number.is_f64() => Err(invalid(
                field,
                "must be written as a whole number such as 3 (not 3.0, -0 or 3e0)",
            )),
            None => Err(invalid(field, "must be a whole number, 0 or more")),
        },
        Some(_) => Err(invalid(field, "must be a whole number, 0 or more")),
    }
}

impl Fields {
    fn take(&mut self, field: &'static str) -> Option<Value> {
        self.0.remove(field).filter(|value| !value.is_null())
    }

    /// Whether the body names `field` (null included).
    pub fn contains(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// A member as it is, for a reader of its own (`None` when absent or null).
    pub fn value(&mut self, field: &'static str) -> Option<Value> {
        self.take(field)
    }

    pub fn string(&mut self, field: &'static str) -> Result<String, RequestError> {
        required_string(field, self.take(field))
    }

    pub fn optional_string(&mut self, field: &'static str) -> Result<Option<String>, RequestError> {
        optional_string(field, self.take(field))
    }

    pub fn unsigned(&mut self, field: &'static str) -> Result<u64, RequestError> {
        required_unsigned(field, self.take(field))
    }

    pub fn optional_unsigned(&mut self, field: &'static str) -> Result<Option<u64>, RequestError> {
        optional_unsigned(field, self.take(field))
    }

    /// A number the domain bounds far below `u32::MAX`: a larger one is read as
    /// `u32::MAX`, so the domain's refusal states the field's real range
    /// rather than the width of the type.
    pub fn optional_u32(&mut self, field: &'static str) -> Result<Option<u32>, RequestError> {
        Ok(self
            .optional_unsigned(field)?
            .map(|value| u32::try_from(value).unwrap_or(u32::MAX)))
    }

    pub fn optional_timestamp(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Timestamp>, RequestError> {
        match self.optional_string(field)? {
            None => Ok(None),
            Some(text) => Timestamp::parse_rfc3339(&text).map(Some).ok_or_else(|| {
                invalid(
                    field,
                    "must be an RFC 3339 UTC time such as 2026-11-27T09:00:00Z",
                )
            }),
        }
    }

    /// A required array of strings; `Ok` with every element, or the field's
    /// rule when it is not an array or holds something other than a string.
    pub fn strings(&mut self, field: &'static str) -> Result<Vec<String>, RequestError> {
        match self.take(field) {
            None => Err(invalid(field, "is required (an array of strings)")),
            Some(Value::Array(values)) => values
                .into_iter()
                .map(|value| match value {
                    Value::String(text) => Ok(text),
                    _ => Err(invalid(field, "must hold only strings")),
                })
                .collect(),
            Some(_) => Err(invalid(field, "must be an array of strings")),
        }
    }

    /// Call last: refuses members nobody asked for, so typos are not ignored.
    pub fn finish(self) -> Result<(), RequestError> {
        match self.0.keys().next() {
            None => Ok(()),
            Some(unknown) => Err(RequestError::UnknownMember(unknown.clone())),
        }
    }
}

/// An order id in a JSON answer, `<epoch>-<shard>-<number>` as its
/// `Display` writes it, formatted in a stack buffer: no `String`, no
/// formatting machinery.
pub struct OrderIdText(pub OrderId);

impl Serialize for OrderIdText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Two u64s of at most 20 digits, a u32 of at most 10, two dashes.
        let mut text = [0u8; 52];
        let mut len = 0;
        for (index, part) in [self.0.epoch, u64::from(self.0.shard), self.0.number]
            .into_iter()
            .enumerate()
        {
            if index > 0 {
                text[len] = b'-';
                len += 1;
            }
            let mut digits = [0u8; 20];
            let start = decimal(part, &mut digits);
            let part = &digits[start..];
            text[len..len + part.len()].copy_from_slice(part);
            len += part.len();
        }
        serializer.serialize_str(ascii(&text[..len]))
    }
}

/// `value` in decimal at the end of `digits`; returns where it starts.
fn decimal(mut value: u64, digits: &mut [u8; 20]) -> usize {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return start;
        }
    }
}

/// `value`'s last `slot.len()` decimal digits, zeros in front, into `slot`.
fn fixed_digits(slot: &mut [u8], mut value: u64) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Text known to be ASCII (digits and punctuation written here).
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// A time in a JSON answer: RFC 3339, UTC, milliseconds, the text of
/// `Timestamp`'s `Display` (`2026-11-27T09:00:00.000Z`), formatted in a stack
/// buffer. A time past `Timestamp::MAX`, which validated input never holds,
/// goes through `Display`.
pub struct TimeText(pub Timestamp);

impl Serialize for TimeText {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.0 > Timestamp::MAX {
            return serializer.collect_str(&self.0);
        }
        let mut text = *b"0000-00-00T00:00:00.000Z";
        serializer.serialize_str(rfc3339_millis(self.0, &mut text))
    }
}

/// `at` (at most `Timestamp::MAX`) as `YYYY-MM-DDTHH:MM:SS.mmmZ`, its
/// digits written into the places of `text`.
fn rfc3339_millis(at: Timestamp, text: &mut [u8; 24]) -> &str {
    let millis = at.0 % 1000;
    let secs = at.0 / 1000;
    let (days, secs_of_day) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian calendar),
    // by eras of 400 years counted from 0000-03-01.
    let days_since_0000_03_01 = days + 719_468;
    let era = days_since_0000_03_01 / 146_097;
    let day_of_era = days_since_0000_03_01 % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    fixed_digits(&mut text[0..4], year);
    fixed_digits(&mut text[5..7], month);
    fixed_digits(&mut text[8..10], day);
    fixed_digits(&mut text[11..13], secs_of_day / 3600);
    fixed_digits(&mut text[14..16], secs_of_day % 3600 / 60);
    fixed_digits(&mut text[17..19], secs_of_day % 60);
    fixed_digits(&mut text[20..23], millis);
    ascii(text)
}

/// An order, as every answer about one shows it. Built from the order
/// without copying its text: the id and the times are formatted on the stack
/// as the answer is written.
#[derive(Serialize, ToSchema)]
#[schema(as = Order)]
pub struct OrderBody<'a> {
    /// `<epoch>-<shard>-<number>`, unique for the life of the data directory.
    #[schema(value_type = String, pattern = "^[0-9]+-[0-9]+-[0-9]+$", examples("1-3-1042"))]
    pub order_id: OrderIdText,
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", examples("tee-black-m"))]
    pub sku: &'a str,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: u32,
    #[schema(min_length = 1, max_length = 64)]
    pub customer_id: &'a str,
    /// `reserved` holds stock until `reserved_until`; `confirmed` is paid;
    /// `cancelled` and `expired` gave their stock back.
    #[schema(schema_with = order_status_schema)]
    pub status: &'static str,
    /// RFC 3339, UTC, milliseconds.
    #[schema(value_type = String, format = DateTime, examples("2026-11-27T09:00:00.000Z"))]
    pub created_at: TimeText,
    /// When an unconfirmed reservation expires and its stock returns.
    #[schema(value_type = String, format = DateTime)]
    pub reserved_until: TimeText,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: TimeText,
    /// The order's changes before it shipped, oldest first (in the answers
    /// of `GET /v1/orders/{id}` and `PATCH /v1/orders/{id}` for an order that
    /// was changed; absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<OrderChangeBody>>)]
    pub changes: Option<Vec<OrderChangeBody<'a>>>,
}

/// One change of an order: what it held before and after, and when.
#[derive(Serialize, ToSchema)]
#[schema(as = OrderChange)]
pub struct OrderChangeBody<'a> {
    #[schema(value_type = String, format = DateTime)]
    pub at: TimeText,
    pub from_sku: &'a str,
    pub from_quantity: u32,
    pub to_sku: &'a str,
    pub to_quantity: u32,
}

impl<'a> OrderBody<'a> {
    /// The order with its history (no `changes` member for an order never
    /// changed: its body is as every other answer shows it).
    pub fn with_changes(
        order: &'a Order,
        changes: &'a [flashgate_actors::domain::OrderChange],
    ) -> OrderBody<'a> {
        if changes.is_empty() {
            return OrderBody::from(order);
        }
        OrderBody {
            changes: Some(
                changes
                    .iter()
                    .map(|change| OrderChangeBody {
                        at: TimeText(change.at),
                        from_sku: change.from_sku.as_str(),
                        from_quantity: change.from_quantity,
                        to_sku: change.to_sku.as_str(),
                        to_quantity: change.to_quantity,
                    })
                    .collect(),
            ),
            ..OrderBody::from(order)
        }
    }
}

fn order_status_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some([
            "reserved",
            "confirmed",
            "cancelled",
            "expired",
            "shipped",
        ]))
        .build()
}

impl<'a> From<&'a Order> for OrderBody<'a> {
    fn from(order: &'a Order) -> OrderBody<'a> {
        OrderBody {
            order_id: OrderIdText(order.id),
            sku: order.sku.as_str(),
            quantity: order.quantity,
            customer_id: order.customer.as_str(),
            status: order.status.as_str(),
            created_at: TimeText(order.created_at),
            reserved_until: TimeText(order.reserved_until),
            updated_at: TimeText(order.updated_at),
            changes: None,
        }
    }
}

/// A SKU: its stock counters (`available + reserved + sold == total`) and its
/// sale settings.
#[derive(Serialize, ToSchema)]
#[schema(as = Sku)]
pub struct SkuBody<'a> {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", examples("tee-black-m"))]
    pub sku: &'a str,
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    /// Units one customer may hold (reserved or bought); null for no limit.
    #[schema(minimum = 1, required = true)]
    pub per_customer_limit: Option<u64>,
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_quantity_per_order: u32,
    /// Orders before this time are refused with `sale_not_open`; null when open.
    #[schema(format = DateTime, required = true)]
    pub sale_starts_at: Option<String>,
    #[schema(minimum = 1, maximum = 604_800)]
    pub reservation_ttl_secs: u32,
    pub low_stock_threshold: u64,
    /// Whether `available` is at or below `low_stock_threshold`.
    pub low_stock: bool,
    /// Present when the SKU is behind a waiting room: orders need an
    /// admission ticket from `POST /v1/skus/{sku}/queue`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub waiting_room: Option<crate::waiting_room::WaitingRoomSettings>,
}

impl SkuBody<'_> {
    /// The body with the SKU's waiting room, if it has one.
    pub fn with_waiting_room(mut self, rooms: &crate::waiting_room::WaitingRooms) -> Self {
        self.waiting_room = rooms.settings(self.sku);
        self
    }
}

impl<'a> From<&'a Sku> for SkuBody<'a> {
    fn from(sku: &'a Sku) -> SkuBody<'a> {
        SkuBody {
            sku: sku.id.as_str(),
            total: sku.total,
            available: sku.available,
            reserved: sku.reserved,
            sold: sku.sold,
            per_customer_limit: sku.settings.per_customer_limit,
            max_quantity_per_order: sku.settings.max_quantity_per_order,
            sale_starts_at: sku.settings.sale_starts_at.map(|at| at.to_string()),
            reservation_ttl_secs: sku.settings.reservation_ttl_secs,
            low_stock_threshold: sku.settings.low_stock_threshold,
            low_stock: sku.is_low_stock(),
            waiting_room: None,
        }
    }
}

// Request bodies. The handlers read them member by member (`Fields`) so each
// refusal names its member and rule; these types describe the same members for
// the published contract (`/openapi.json`). Unknown members are refused
// (`additionalProperties: false`), and a JSON null counts as an absent member.

/// `POST /v1/orders`: reserve `quantity` units of `sku` for `customer_id`.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", examples("tee-black-m"))]
    pub sku: String,
    /// At most the SKU's `max_quantity_per_order` (refused with `invalid_field` above it).
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: u32,
    /// 1 to 64 bytes of printable characters: no control, format (zero-width,
    /// bidirectional), line or paragraph separator, private-use or unassigned
    /// characters.
    #[schema(min_length = 1, max_length = 64, examples("alice"))]
    pub customer_id: String,
}

/// `PATCH /v1/orders/{order_id}`: what the order becomes; at least one member.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeOrderRequest {
    /// At most the SKU's `max_quantity_per_order`.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub quantity: Option<u32>,
    /// Another SKU of the same shard (another size or colour).
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", examples("tee-black-l"))]
    pub sku: Option<String>,
}

/// `PUT /v1/skus/{sku}`: create a SKU (with `stock`) or change its settings.
/// An absent setting takes its default.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSkuRequest {
    /// Required to create; on an existing SKU it must equal its `total` (stock
    /// only grows through restock).
    #[schema(minimum = 0, maximum = 281_474_976_710_656_u64)]
    pub stock: Option<u64>,
    /// Absent or null: no limit.
    #[schema(minimum = 1, maximum = 281_474_976_710_656_u64)]
    pub per_customer_limit: Option<u64>,
    /// Default 10.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_quantity_per_order: Option<u32>,
    /// RFC 3339 UTC time such as `2026-11-27T09:00:00Z`; absent or null: open now.
    #[schema(format = DateTime)]
    pub sale_starts_at: Option<String>,
    /// Default 600.
    #[schema(minimum = 1, maximum = 604_800)]
    pub reservation_ttl_secs: Option<u32>,
    /// Default 0.
    #[schema(minimum = 0, maximum = 281_474_976_710_656_u64)]
    pub low_stock_threshold: Option<u64>,
    /// Puts the SKU behind a waiting room; absent or null: none (a room the
    /// SKU had is removed). Putting the same settings again keeps its queue.
    pub waiting_room: Option<crate::waiting_room::WaitingRoomSettings>,
}

/// `POST /v1/skus/{sku}/restock`: add units to a SKU's total.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockRequest {
    /// At least 1, and the total stays at most 2^48.
    #[schema(minimum = 1, maximum = 281_474_976_710_656_u64)]
    pub quantity: u64,
}

/// `POST /v1/orders/read`: the orders to read.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadOrdersRequest {
    /// Order ids as `POST /v1/orders` answered them; at most the server's
    /// `orders_read_max` (1,000 unless configured), more is refused with
    /// `batch_too_large`. A string that is not an order id is reported unknown.
    #[schema(max_items = 1000, examples(json!(["1-3-1042", "1-0-7"])))]
    pub order_ids: Vec<String>,
}

// Answers built with `serde_json::json!` in the handlers, described here.

/// `GET /healthz`: the process answers.
#[derive(ToSchema)]
pub struct HealthBody {
    #[schema(schema_with = up_schema)]
    pub status: String,
}

fn up_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["up"]))
        .build()
}

/// `GET /readyz` when the node takes requests.
#[derive(ToSchema)]
pub struct ReadyBody {
    #[schema(schema_with = ready_schema)]
    pub status: String,
    pub epoch: u64,
    pub shards: u64,
    pub durable_lsn: u64,
    #[schema(schema_with = role_schema)]
    pub role: String,
    pub accepting_orders: bool,
    /// Why a primary is degraded, or null.
    #[schema(required = true)]
    pub degraded: Option<String>,
}

fn ready_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["ready"]))
        .build()
}

/// `GET /readyz` when the node is starting, shutting down, or its order log failed.
#[derive(ToSchema)]
pub struct NotReadyBody {
    #[schema(schema_with = not_ready_schema)]
    pub status: String,
    pub detail: String,
    /// The code an order would get now (`not_primary`,
    /// `standby_unavailable`, …), when the node runs but would refuse orders.
    pub code: Option<String>,
    /// This node's role, when it runs but would refuse orders.
    #[schema(schema_with = role_schema)]
    pub role: Option<String>,
    pub epoch: Option<u64>,
    pub accepting_orders: Option<bool>,
    /// Why a primary is degraded, or null.
    pub degraded: Option<String>,
}

fn not_ready_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["not_ready"]))
        .build()
}

fn role_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["primary", "standby", "fenced"]))
        .build()
}

/// `GET /v1/cluster`: this node's role, replication and log positions.
#[derive(ToSchema)]
pub struct ClusterBody {
    #[schema(schema_with = role_schema)]
    pub role: String,
    pub epoch: u64,
    pub last_lsn: u64,
    pub durable_lsn: u64,
    /// On a primary, what the standby acknowledged; on a standby, its own durable LSN.
    pub acked_lsn: u64,
    #[schema(schema_with = mode_schema)]
    pub mode: String,
    #[schema(schema_with = standby_loss_schema)]
    pub standby_loss: String,
    pub degraded: bool,
    #[schema(required = true)]
    pub degraded_reason: Option<String>,
    pub accepting_orders: bool,
    pub handing_over: bool,
    /// A primary's standby, or a standby's upstream; null when none is configured.
    #[schema(required = true)]
    pub peer: Option<PeerBody>,
    /// The current primary, when known.
    #[schema(required = true)]
    pub primary: Option<PrimaryBody>,
    pub lag_records: u64,
    pub lag_ms: u64,
    #[schema(required = true)]
    pub replica_failure: Option<String>,
    /// The events publisher (docs/EVENTS.md); null when events are not
    /// published.
    #[schema(required = true)]
    pub events: Option<EventsBody>,
}

/// How far order events got on NATS JetStream.
#[derive(ToSchema)]
pub struct EventsBody {
    /// Whether the publisher is connected to JetStream.
    pub connected: bool,
    /// The last log record JetStream acknowledged (or, on a standby, the
    /// last the stream holds).
    pub published_lsn: u64,
    /// Records durable (and acknowledged by a sync standby) but not yet
    /// published.
    pub lag_records: u64,
    /// Since when the publisher has been behind, in milliseconds; 0 when
    /// caught up.
    pub lag_ms: u64,
    /// Events published since this node started.
    pub published: u64,
    /// Gap markers published since this node started (records the log no
    /// longer held when the publisher got there).
    pub gaps: u64,
}

fn mode_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["standalone", "sync", "async"]))
        .build()
}

fn standby_loss_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(["block", "degrade"]))
        .build()
}

/// The other node of the pair.
#[derive(ToSchema)]
pub struct PeerBody {
    /// Its replication address.
    pub address: String,
    /// On a primary: the standby's HTTP base URL, once it said it.
    #[schema(required = false)]
    pub http: Option<String>,
    pub connected: bool,
    /// On a standby: why the last attempt to follow the primary failed (a
    /// refusal, no answer), until one succeeds.
    #[schema(required = false)]
    pub last_failure: Option<String>,
    /// On a standby: attempts that failed in a row.
    #[schema(required = false)]
    pub failures: Option<u64>,
}

/// Where the primary answers.
#[derive(ToSchema)]
pub struct PrimaryBody {
    /// HTTP base URL.
    pub http: String,
    /// QUIC address, when it serves QUIC.
    #[schema(required = true)]
    pub quic: Option<String>,
}

/// `POST /v1/admin/promote`: this standby is now the primary.
#[derive(ToSchema)]
pub struct PromoteBody {
    pub epoch: u64,
    pub last_lsn: u64,
    pub elapsed_ms: u64,
}

/// `POST /v1/admin/handover`: this primary stopped taking writes and its
/// standby has every record up to `last_lsn`; promote the standby next.
#[derive(ToSchema)]
pub struct HandoverBody {
    pub epoch: u64,
    pub last_lsn: u64,
}

/// `POST /v1/admin/resume`: the handover is undone; this primary takes orders.
#[derive(ToSchema)]
pub struct ResumeBody {
    pub epoch: u64,
    pub accepting_orders: bool,
}

/// One part of a switchover, as this node could take it now.
#[derive(ToSchema)]
pub struct SwitchoverStepCheck {
    pub possible: bool,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// `GET /v1/admin/switchover-check`: whether this node could hand over (as a
/// primary with a connected standby) or be promoted (as a standby with a
/// complete state) now.
#[derive(ToSchema)]
pub struct SwitchoverCheckBody {
    /// `primary`, `standby` or `fenced`.
    pub role: String,
    pub epoch: u64,
    pub hand_over: SwitchoverStepCheck,
    pub promote: SwitchoverStepCheck,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer's times are exactly the text of `Timestamp`'s `Display`,
    /// across leap days, century years, the epoch and the last
    /// representable millisecond: clients parse them, and a read written
    /// before this formatter must match one written after.
    #[test]
    fn times_are_written_as_display_writes_them() {
        let mut samples = vec![
            0,
            999,
            1_000,
            86_399_999,
            951_782_400_000,   // 2000-02-29
            4_107_542_400_000, // 2100-03-01
            1_764_236_800_123,
            Timestamp::MAX.0,
        ];
        // Steps of a prime number of milliseconds across the whole range.
        let mut at = 0u64;
        while at <= Timestamp::MAX.0 {
            samples.push(at);
            at += 7_919_993_713;
        }
        for ms in samples {
            let written = serde_json::to_string(&TimeText(Timestamp(ms))).unwrap();
            assert_eq!(written, format!("\"{}\"", Timestamp(ms)), "{ms}");
        }
        let past = Timestamp(Timestamp::MAX.0 + 1);
        assert_eq!(
            serde_json::to_string(&TimeText(past)).unwrap(),
            format!("\"{past}\"")
        );
    }

    /// An answer's order id is exactly the text of `OrderId`'s `Display`,
    /// the largest parts included.
    #[test]
    fn order_ids_are_written_as_display_writes_them() {
        for id in [
            OrderId {
                epoch: 1,
                shard: 0,
                number: 42,
            },
            OrderId {
                epoch: 0,
                shard: 0,
                number: 0,
            },
            OrderId {
                epoch: u64::MAX,
                shard: u32::MAX,
                number: u64::MAX,
            },
        ] {
            let written = serde_json::to_string(&OrderIdText(id)).unwrap();
            assert_eq!(written, format!("\"{id}\""));
        }
    }

    /// The map-free reading of an order body refuses and accepts exactly as
    /// reading it into `Fields` member by member does: same code, same
    /// detail (the JSON error's position included), same command.
    #[test]
    fn an_order_body_reads_as_fields_would_read_it() {
        fn through_fields(body: &[u8]) -> Result<PlaceOrder, RequestError> {
            let mut fields = parse_object(body)?;
            let sku = fields.string("sku")?;
            let quantity = fields.unsigned("quantity")?;
            let customer = fields.string("customer_id")?;
            fields.finish()?;
            Ok(PlaceOrder::parse(&sku, quantity, &customer, None)?)
        }
        let outcome = |result: Result<PlaceOrder, RequestError>| match result {
            Ok(order) => Ok((
                order.sku.as_str().to_owned(),
                order.quantity,
                order.customer.as_str().to_owned(),
            )),
            Err(error) => Err((error.code(), error.to_string())),
        };
        let bodies: &[&str] = &[
            r#"{"sku":"A","quantity":2,"customer_id":"alice"}"#,
            r#"{"customer_id":"alice","quantity":2,"sku":"A"}"#,
            r#"{"sku":"A","quantity":2,"customer_id":"al\u0069ce"}"#,
            r#"{"s\u006bu":"A","quantity":2,"customer_id":"alice"}"#,
            r#"{"sku":"A","quantity":2,"customer_id":"alice","colour":"red","b":1}"#,
            r#"{"sku":"A","quantity":2,"customer_id":"alice","b":{"x":1,"x":2}}"#,
            r#"{"sku":"A","quantity":2,"customer_id":"alice","b":1,"b":2}"#,
            r#"{"sku":"A","sku":"B","quantity":2,"customer_id":"alice"}"#,
            r#"{"sku":null,"sku":"B","quantity":2,"customer_id":"alice"}"#,
            r#"{"sku":null,"quantity":2,"customer_id":"alice"}"#,
            r#"{"quantity":2,"customer_id":"alice"}"#,
            r#"{"sku":5,"quantity":2,"customer_id":"alice"}"#,
            r#"{"sku":"A","quantity":"2","customer_id":"alice"}"#,
            r#"{"sku":"A","quantity":-1,"customer_id":"alice"}"#,
            r#"{"sku":"A","quantity":2.0,"customer_id":"alice"}"#,
            r#"{"sku":"A","quantity":0,"customer_id":"alice"}"#,
            r#"{"sku":"A","quantity":99999999999,"customer_id":"alice"}"#,
            r#"{"sku":"no spaces","quantity":2,"customer_id":"alice"}"#,
            r#"{"sku":"A","quantity":2,"customer_id":""}"#,
            r#"{"sku":"A","quantity":2}"#,
            r#"{"sku":"A","quantity":2,"customer_id":"alice"} x"#,
            r#"{"sku":"A","quantity":2,"customer_id":"alice""#,
            r#"{"sku":"A","quantity":2,"customer_id":["alice"]}"#,
            r#"["sku","A"]"#,
            r#"[1,2"#,
            r#""sku""#,
            "3",
            "null",
            "true",
            "",
            "{}",
        ];
        for body in bodies {
            assert_eq!(
                outcome(parse_order(body.as_bytes(), None)),
                outcome(through_fields(body.as_bytes())),
                "{body}"
            );
        }
    }
}
