//! The HTTP API's JSON, converted to and from the protocol crate's types: bodies,
//! RFC 3339 times ↔ milliseconds since the epoch, and problem+json (RFC 9457)
//! errors → `ClientError`. Pure functions, no I/O.

use std::borrow::Cow;
use std::time::{Duration, UNIX_EPOCH};

use flashgate_protocol::{code, Order, OrderStatus, Sku, SkuSettings};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api::PlaceOrder;
use crate::error::{ClientError, TransportError};

/// The last millisecond RFC 3339 (a four-digit year) can write:
/// 9999-12-31T23:59:59.999Z.
pub const TIME_MS_MAX: u64 = 253_402_300_799_999;

/// How much of an unreadable body an error message quotes.
const BODY_QUOTE_BYTES_MAX: usize = 200;

/// Milliseconds since the Unix epoch of an RFC 3339 UTC time such as
/// `2026-11-27T09:00:00.000Z`; `None` if it is not one, or before the epoch.
/// The server's own form (`YYYY-MM-DDTHH:MM:SS.mmmZ`) is read directly, at
/// three per order; any other goes through humantime.
pub fn rfc3339_to_ms(text: &str) -> Option<u64> {
    if let Some(ms) = server_time_to_ms(text) {
        return Some(ms);
    }
    let time = humantime::parse_rfc3339(text).ok()?;
    let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
    u64::try_from(since_epoch.as_millis()).ok()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (years 1970 to 9999) as milliseconds since the
/// epoch; `None` for anything else, valid or not.
fn server_time_to_ms(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 24 {
        return None;
    }
    let separators = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (23, b'Z'),
    ];
    if separators.iter().any(|&(at, byte)| bytes[at] != byte) {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u64> {
        bytes[from..to].iter().try_fold(0u64, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + u64::from(byte - b'0'))
        })
    };
    let (year, month, day) = (number(0, 4)?, number(5, 7)?, number(8, 10)?);
    let (hour, minute, second, ms) = (
        number(11, 13)?,
        number(14, 16)?,
        number(17, 19)?,
        number(20, 23)?,
    );
    let leap = |year: u64| {
        (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
    };
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(year) => 29,
        2 => 28,
        _ => return None,
    };
    if year < 1970 || day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from 1970-01-01 to the first of the month, then the day.
    let leap_days = |year: u64| year / 4 - year / 100 + year / 400;
    let mut days = (year - 1970) * 365 + leap_days(year - 1) - leap_days(1969);
    const BEFORE_MONTH: [u64; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    days += BEFORE_MONTH[month as usize - 1] + u64::from(month > 2 && leap(year)) + day - 1;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms)
}

/// The RFC 3339 UTC time, with milliseconds, of `ms` since the Unix epoch;
/// `None` past `TIME_MS_MAX`.
pub fn ms_to_rfc3339(ms: u64) -> Option<String> {
    if ms > TIME_MS_MAX {
        return None;
    }
    let time = UNIX_EPOCH + Duration::from_millis(ms);
    Some(humantime::format_rfc3339_millis(time).to_string())
}

/// `POST /v1/orders`'s body (the idempotency key travels as a header),
/// written straight from the order's fields.
pub fn place_order_body(order: &PlaceOrder) -> Result<Vec<u8>, ClientError> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        sku: &'a str,
        quantity: u32,
        customer_id: &'a str,
    }
    to_bytes(&Body {
        sku: &order.sku,
        quantity: order.quantity,
        customer_id: &order.customer_id,
    })
}

/// A change's body: the members that change, nothing else.
pub fn change_order_body(change: &crate::api::ChangeOrder) -> Result<Vec<u8>, ClientError> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        sku: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        quantity: Option<u32>,
    }
    to_bytes(&Body {
        sku: change.sku.as_deref(),
        quantity: change.quantity,
    })
}

/// One change of an order's history as the HTTP API writes it.
#[derive(Deserialize)]
struct OrderChangeBody {
    at: String,
    from_sku: String,
    from_quantity: u32,
    to_sku: String,
    to_quantity: u32,
}

/// An order with its history, as the answer to a change writes it.
#[derive(Deserialize)]
struct ChangedBody<'a> {
    #[serde(flatten, borrow)]
    order: OrderBody<'a>,
    changes: Option<Vec<OrderChangeBody>>,
}

/// Reads a change's answer: the order and its history (`None` when the
/// answer has no `changes` member).
pub fn changed_from_json(body: &[u8]) -> Result<crate::api::Changed, ClientError> {
    let body = parse::<ChangedBody>("an order with its changes", body)?;
    let changes = match body.changes {
        None => None,
        Some(changes) => Some(
            changes
                .into_iter()
                .map(|change| {
                    Ok(crate::api::OrderChange {
                        at_ms: time_field("changes[].at", &change.at)?,
                        from_sku: change.from_sku,
                        from_quantity: change.from_quantity,
                        to_sku: change.to_sku,
                        to_quantity: change.to_quantity,
                    })
                })
                .collect::<Result<Vec<_>, ClientError>>()?,
        ),
    };
    Ok(crate::api::Changed {
        order: body.order.into_order()?,
        changes,
    })
}

/// A waiting-room ticket as the HTTP API writes it.
#[derive(Deserialize)]
struct QueueTicketBody {
    ticket: String,
    status: String,
    position: Option<u32>,
    ahead: u32,
    estimated_wait_secs: u64,
    units_remain: bool,
    poll_after_ms: u64,
    admission_ticket: Option<String>,
}

/// Reads a join's or a poll's answer.
pub fn queue_ticket_from_json(body: &[u8]) -> Result<crate::api::QueueTicket, ClientError> {
    let body = parse::<QueueTicketBody>("a waiting-room ticket", body)?;
    Ok(crate::api::QueueTicket {
        ticket: body.ticket,
        status: body.status,
        position: body.position,
        ahead: body.ahead,
        estimated_wait_secs: body.estimated_wait_secs,
        units_remain: body.units_remain,
        poll_after: std::time::Duration::from_millis(body.poll_after_ms),
        admission_ticket: body.admission_ticket,
    })
}

/// A request body as JSON bytes.
pub fn to_bytes<T: serde::Serialize + ?Sized>(body: &T) -> Result<Vec<u8>, ClientError> {
    let mut bytes = Vec::with_capacity(128);
    serde_json::to_writer(&mut bytes, body).map_err(|error| {
        ClientError::Config(format!("cannot write the request as JSON: {error}"))
    })?;
    Ok(bytes)
}

/// `PUT /v1/skus/{sku}`'s body: the settings that are set. A time past
/// `TIME_MS_MAX` is refused with `invalid_field`, as the server would.
pub fn sku_settings_body(settings: &SkuSettings) -> Result<Value, ClientError> {
    let mut body = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(name.to_owned(), value);
        }
    };
    put("stock", settings.stock.map(Value::from));
    put(
        "per_customer_limit",
        settings.per_customer_limit.map(Value::from),
    );
    put(
        "max_quantity_per_order",
        settings.max_quantity_per_order.map(Value::from),
    );
    put(
        "reservation_ttl_secs",
        settings.reservation_ttl_secs.map(Value::from),
    );
    put(
        "low_stock_threshold",
        settings.low_stock_threshold.map(Value::from),
    );
    if let Some(ms) = settings.sale_starts_at_ms {
        let text = ms_to_rfc3339(ms).ok_or_else(|| {
            ClientError::server(
                code::INVALID_FIELD,
                format!(
                    "sale_starts_at_ms: {ms} is after 9999-12-31T23:59:59.999Z \
                     (refused by the client: RFC 3339 cannot write it)"
                ),
            )
        })?;
        body.insert("sale_starts_at".into(), Value::String(text));
    }
    Ok(Value::Object(body))
}

/// An order as the HTTP API writes it. The fields read only to be converted
/// borrow from the body (a `Cow` in case the JSON escapes a character).
#[derive(Deserialize)]
struct OrderBody<'a> {
    order_id: String,
    sku: String,
    quantity: u32,
    customer_id: String,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    #[serde(borrow)]
    reserved_until: Cow<'a, str>,
    #[serde(borrow)]
    updated_at: Cow<'a, str>,
}

/// A SKU as the HTTP API writes it.
#[derive(Deserialize)]
struct SkuBody {
    sku: String,
    total: u64,
    available: u64,
    reserved: u64,
    sold: u64,
    per_customer_limit: Option<u64>,
    max_quantity_per_order: u32,
    sale_starts_at: Option<String>,
    reservation_ttl_secs: u32,
    low_stock_threshold: u64,
    low_stock: bool,
}

fn time_field(field: &str, text: &str) -> Result<u64, ClientError> {
    rfc3339_to_ms(text).ok_or_else(|| {
        ClientError::Protocol(format!(
            "{field}: {text:?} is not an RFC 3339 UTC time after the epoch"
        ))
    })
}

fn parse<'a, T: Deserialize<'a>>(what: &str, body: &'a [u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|error| {
        ClientError::Protocol(format!(
            "expected {what} as JSON ({error}); got {}",
            quote(body)
        ))
    })
}

impl OrderBody<'_> {
    fn into_order(self) -> Result<Order, ClientError> {
        let status = OrderStatus::parse(&self.status).ok_or_else(|| {
            ClientError::Protocol(format!("status: {:?} is not an order status", self.status))
        })?;
        Ok(Order {
            created_at_ms: time_field("created_at", &self.created_at)?,
            reserved_until_ms: time_field("reserved_until", &self.reserved_until)?,
            updated_at_ms: time_field("updated_at", &self.updated_at)?,
            order_id: self.order_id,
            sku: self.sku,
            quantity: self.quantity,
            customer_id: self.customer_id,
            status,
        })
    }
}

impl SkuBody {
    fn into_sku(self) -> Result<Sku, ClientError> {
        let sale_starts_at_ms = match &self.sale_starts_at {
            None => None,
            Some(text) => Some(time_field("sale_starts_at", text)?),
        };
        Ok(Sku {
            sku: self.sku,
            total: self.total,
            available: self.available,
            reserved: self.reserved,
            sold: self.sold,
            per_customer_limit: self.per_customer_limit,
            max_quantity_per_order: self.max_quantity_per_order,
            sale_starts_at_ms,
            reservation_ttl_secs: self.reservation_ttl_secs,
            low_stock_threshold: self.low_stock_threshold,
            low_stock: self.low_stock,
        })
    }
}

/// Reads an order body.
pub fn order_from_json(body: &[u8]) -> Result<Order, ClientError> {
    if let Some(order) = server_order(body) {
        return Ok(order);
    }
    parse::<OrderBody>("an order", body)?.into_order()
}

/// An order exactly as the server writes it (its members in its order, no
/// whitespace, no escapes, its time form), read without a general JSON
/// parser: this runs once per order placed, and a load tester must cost
/// little. `None` for anything else, which `order_from_json` then reads (or
/// refuses) through serde, so what is accepted does not change.
fn server_order(body: &[u8]) -> Option<Order> {
    let mut cursor = Cursor { bytes: body, at: 0 };
    cursor.literal(b"{\"order_id\":")?;
    let order_id = cursor.string()?.to_owned();
    cursor.literal(b",\"sku\":")?;
    let sku = cursor.string()?.to_owned();
    cursor.literal(b",\"quantity\":")?;
    let quantity = cursor.number()?;
    cursor.literal(b",\"customer_id\":")?;
    let customer_id = cursor.string()?.to_owned();
    cursor.literal(b",\"status\":")?;
    let status = OrderStatus::parse(cursor.string()?)?;
    cursor.literal(b",\"created_at\":")?;
    let created_at_ms = server_time_to_ms(cursor.string()?)?;
    cursor.literal(b",\"reserved_until\":")?;
    let reserved_until_ms = server_time_to_ms(cursor.string()?)?;
    cursor.literal(b",\"updated_at\":")?;
    let updated_at_ms = server_time_to_ms(cursor.string()?)?;
    cursor.literal(b"}")?;
    (cursor.at == body.len()).then_some(Order {
        order_id,
        sku,
        quantity,
        customer_id,
        status,
        created_at_ms,
        reserved_until_ms,
        updated_at_ms,
    })
}

/// A position in a body, for `server_order`.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn literal(&mut self, expected: &[u8]) -> Option<()> {
        let rest = self.bytes.get(self.at..)?;
        rest.starts_with(expected)
            .then(|| self.at += expected.len())
    }

    /// A string without escapes or control characters (`None` otherwise),
    /// found in one pass over its bytes.
    fn string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let rest = self.bytes.get(self.at..)?;
        let mut length = None;
        for (index, &byte) in rest.iter().enumerate() {
            match byte {
                b'"' => {
                    length = Some(index);
                    break;
                }
                b'\\' | 0..0x20 => return None,
                _ => {}
            }
        }
        let length = length?;
        self.at += length + 1;
        std::str::from_utf8(&rest[..length]).ok()
    }

    /// A `u32` written as JSON writes it: digits, no leading zero.
    fn number(&mut self) -> Option<u32> {
        let rest = self.bytes.get(self.at..)?;
        let length = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
        let digits = &rest[..length];
        if length == 0 || length > 10 || (length > 1 && digits[0] == b'0') {
            return None;
        }
        let value = digits
            .iter()
            .fold(0u64, |value, &digit| value * 10 + u64::from(digit - b'0'));
        self.at += length;
        u32::try_from(value).ok()
    }
}

/// `POST /v1/orders/read`'s answer.
#[derive(Deserialize)]
struct OrdersReadBody<'a> {
    #[serde(borrow)]
    orders: Vec<OrderBody<'a>>,
    unknown: Vec<String>,
}

/// Reads `POST /v1/orders/read`'s answer.
pub fn orders_read_from_json(body: &[u8]) -> Result<crate::api::OrdersRead, ClientError> {
    let read = parse::<OrdersReadBody>("the orders read", body)?;
    Ok(crate::api::OrdersRead {
        orders: read
            .orders
            .into_iter()
            .map(OrderBody::into_order)
            .collect::<Result<_, _>>()?,
        unknown: read.unknown,
    })
}

/// Reads a SKU body.
pub fn sku_from_json(body: &[u8]) -> Result<Sku, ClientError> {
    parse::<SkuBody>("a SKU", body)?.into_sku()
}

/// Reads `GET /v1/skus`'s array of SKUs.
pub fn skus_from_json(body: &[u8]) -> Result<Vec<Sku>, ClientError> {
    parse::<Vec<SkuBody>>("an array of SKUs", body)?
        .into_iter()
        .map(SkuBody::into_sku)
        .collect()
}

/// An RFC 9457 problem as the server writes it; only `code` is required.
#[derive(Deserialize)]
struct Problem {
    code: String,
    detail: Option<String>,
    title: Option<String>,
    /// `not_primary` only: the base URL of the primary, when the node knows it.
    primary: Option<String>,
}

/// The `primary` member of a problem body (a `not_primary` refusal names the
/// current primary's base URL there when the node knows it).
pub fn problem_primary(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Problem>(body).ok()?.primary
}

/// The error an HTTP answer with a non-success `status` means. A problem body
/// with a `code` is the server's refusal. Without one the answer came from
/// something else (a proxy, a load balancer): a 408, 502, 503 or 504 then says
/// nothing about the request's outcome (`Transport`), any other status is a
/// `Protocol` error.
pub fn error_from_response(status: u16, body: &[u8]) -> ClientError {
    if let Ok(problem) = serde_json::from_slice::<Problem>(body) {
        let detail = problem
            .detail
            .or(problem.title)
            .unwrap_or_else(|| format!("HTTP {status}"));
        return ClientError::Server {
            code: problem.code,
            detail,
        };
    }
    let what = format!("HTTP {status} without a problem+json body: {}", quote(body));
    match status {
        408 | 502 | 503 | 504 => ClientError::Transport(TransportError::Http(what)),
        _ => ClientError::Protocol(what),
    }
}

/// The start of a body, for error messages.
fn quote(body: &[u8]) -> String {
    let shown = &body[..body.len().min(BODY_QUOTE_BYTES_MAX)];
    let mut text = format!("{:?}", String::from_utf8_lossy(shown));
    if body.len() > shown.len() {
        text.push_str(&format!(" ({} bytes in all)", body.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_and_ms_convert_both_ways() {
        assert_eq!(rfc3339_to_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_to_ms("2026-11-27T09:00:00.123Z"),
            Some(1_795_770_000_123)
        );
        assert_eq!(
            ms_to_rfc3339(1_795_770_000_123).as_deref(),
            Some("2026-11-27T09:00:00.123Z")
        );
        for ms in [0, 1, 999, 1_795_770_000_123, TIME_MS_MAX] {
            let text = ms_to_rfc3339(ms).unwrap();
            assert_eq!(rfc3339_to_ms(&text), Some(ms), "{text}");
        }
        assert_eq!(
            ms_to_rfc3339(TIME_MS_MAX).as_deref(),
            Some("9999-12-31T23:59:59.999Z")
        );
        assert_eq!(ms_to_rfc3339(TIME_MS_MAX + 1), None);
        assert_eq!(ms_to_rfc3339(u64::MAX), None);
        assert_eq!(rfc3339_to_ms("yesterday"), None);
        assert_eq!(rfc3339_to_ms("2026-11-27 09:00:00"), None);
    }

    #[test]
    fn the_servers_time_form_is_read_as_humantime_reads_it() {
        // Spread over every year the form can write, leap days included.
        let mut ms = 0u64;
        while ms <= TIME_MS_MAX {
            let text = ms_to_rfc3339(ms).unwrap();
            assert_eq!(server_time_to_ms(&text), Some(ms), "{text}");
            ms += 7_919_993_017;
        }
        for text in ["2024-02-29T23:59:59.999Z", "2000-02-29T00:00:00.000Z"] {
            let slow = humantime::parse_rfc3339(text).unwrap();
            let slow = slow.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
            assert_eq!(server_time_to_ms(text), Some(slow), "{text}");
        }
        for invalid in [
            "2023-02-29T00:00:00.000Z",
            "1900-02-29T00:00:00.000Z",
            "2026-13-01T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-11-27T24:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "2026-11-27T09:00:00.00aZ",
        ] {
            assert_eq!(server_time_to_ms(invalid), None, "{invalid}");
            assert_eq!(rfc3339_to_ms(invalid), None, "{invalid}");
        }
    }

    #[test]
    fn an_order_body_becomes_an_order() {
        let body = br#"{"order_id":"1-0-1","sku":"SNEAKER-42","quantity":2,
            "customer_id":"alice","status":"reserved",
            "created_at":"2026-11-27T09:00:00.000Z",
            "reserved_until":"2026-11-27T09:10:00.000Z",
            "updated_at":"2026-11-27T09:00:00.000Z","new_member":true}"#;
        let order = order_from_json(body).unwrap();
        assert_eq!(
            order,
            Order {
                order_id: "1-0-1".into(),
                sku: "SNEAKER-42".into(),
                quantity: 2,
                customer_id: "alice".into(),
                status: OrderStatus::Reserved,
                created_at_ms: 1_795_770_000_000,
                reserved_until_ms: 1_795_770_600_000,
                updated_at_ms: 1_795_770_000_000,
            }
        );
    }

    #[test]
    fn the_servers_own_layout_is_read_as_serde_reads_it() {
        let order = |customer: &str, quantity: &str, status: &str| {
            format!(
                "{{\"order_id\":\"1-3-1042\",\"sku\":\"tee-black-m\",\"quantity\":{quantity},\
                 \"customer_id\":\"{customer}\",\"status\":\"{status}\",\
                 \"created_at\":\"2026-11-27T09:00:00.123Z\",\
                 \"reserved_until\":\"2026-11-27T09:10:00.123Z\",\
                 \"updated_at\":\"2026-11-27T09:05:00.000Z\"}}"
            )
        };
        let serde = |body: &str| parse::<OrderBody>("an order", body.as_bytes())?.into_order();
        // Read directly: the same order serde reads.
        for body in [
            order("alice", "1", "reserved"),
            order("zoë 🛒", "4294967295", "cancelled"),
        ] {
            let fast = server_order(body.as_bytes()).expect(&body);
            assert_eq!(Ok(fast), serde(&body).map_err(|error| error.to_string()));
        }
        // Anything else goes through serde: the same answer, or the same refusal.
        for body in [
            order("a\\\"b", "1", "reserved"),
            order("alice", "01", "reserved"),
            order("alice", "4294967296", "reserved"),
            order("alice", "1", "lost"),
            order("alice", "1", "reserved") + " ",
            order("alice", "1", "reserved").replace(",\"sku\"", ", \"sku\""),
        ] {
            assert_eq!(server_order(body.as_bytes()), None, "{body}");
            assert_eq!(
                order_from_json(body.as_bytes()).map_err(|error| error.to_string()),
                serde(&body).map_err(|error| error.to_string()),
                "{body}"
            );
        }
    }

    #[test]
    fn a_bad_order_body_is_a_protocol_error() {
        let bad_status = br#"{"order_id":"1-0-1","sku":"A","quantity":1,"customer_id":"c",
            "status":"lost","created_at":"2026-11-27T09:00:00Z",
            "reserved_until":"2026-11-27T09:00:00Z","updated_at":"2026-11-27T09:00:00Z"}"#;
        assert!(matches!(
            order_from_json(bad_status),
            Err(ClientError::Protocol(message)) if message.contains("lost")
        ));
        let bad_time = br#"{"order_id":"1-0-1","sku":"A","quantity":1,"customer_id":"c",
            "status":"reserved","created_at":"soon",
            "reserved_until":"2026-11-27T09:00:00Z","updated_at":"2026-11-27T09:00:00Z"}"#;
        assert!(matches!(
            order_from_json(bad_time),
            Err(ClientError::Protocol(message)) if message.contains("created_at")
        ));
        assert!(matches!(
            order_from_json(b"<html>"),
            Err(ClientError::Protocol(_))
        ));
    }

    #[test]
    fn a_sku_body_becomes_a_sku() {
        let body = br#"{"sku":"SNEAKER-42","total":100,"available":97,"reserved":2,"sold":1,
            "per_customer_limit":1,"max_quantity_per_order":10,
            "sale_starts_at":"2026-11-27T09:00:00.000Z","reservation_ttl_secs":600,
            "low_stock_threshold":5,"low_stock":false}"#;
        let sku = sku_from_json(body).unwrap();
        assert_eq!(sku.sale_starts_at_ms, Some(1_795_770_000_000));
        assert_eq!(
            (sku.total, sku.available, sku.reserved, sku.sold),
            (100, 97, 2, 1)
        );
        let list = format!("[{}]", String::from_utf8_lossy(body)).replace(
            r#""sale_starts_at":"2026-11-27T09:00:00.000Z""#,
            r#""sale_starts_at":null"#,
        );
        let skus = skus_from_json(list.as_bytes()).unwrap();
        assert_eq!(skus.len(), 1);
        assert_eq!(skus[0].sale_starts_at_ms, None);
    }

    #[test]
    fn settings_send_only_what_is_set_with_rfc3339_times() {
        let settings = SkuSettings {
            stock: Some(100),
            per_customer_limit: Some(1),
            sale_starts_at_ms: Some(1_795_770_000_000),
            ..SkuSettings::default()
        };
        assert_eq!(
            sku_settings_body(&settings).unwrap(),
            serde_json::json!({
                "stock": 100,
                "per_customer_limit": 1,
                "sale_starts_at": "2026-11-27T09:00:00.000Z",
            })
        );
        let too_late = SkuSettings {
            sale_starts_at_ms: Some(u64::MAX),
            ..SkuSettings::default()
        };
        assert_eq!(
            sku_settings_body(&too_late).unwrap_err().code(),
            Some(code::INVALID_FIELD)
        );
    }

    #[test]
    fn problem_bodies_become_server_errors_with_the_code() {
        let body = br#"{"type":"urn:flashgate:problem:sold_out","title":"Conflict",
            "status":409,"detail":"SKU SNEAKER-42 is sold out","code":"sold_out"}"#;
        assert_eq!(
            error_from_response(409, body),
            ClientError::Server {
                code: "sold_out".into(),
                detail: "SKU SNEAKER-42 is sold out".into(),
            }
        );
        let overloaded = br#"{"title":"Service Unavailable","status":503,"code":"overloaded"}"#;
        let error = error_from_response(503, overloaded);
        assert_eq!(error.code(), Some("overloaded"));
        assert!(error.is_retryable());
        assert!(
            matches!(error, ClientError::Server { detail, .. } if detail == "Service Unavailable")
        );
    }

    #[test]
    fn a_not_primary_problem_names_the_primary_when_it_knows_it() {
        let body = br#"{"type":"urn:flashgate:problem:not_primary","title":"Service Unavailable",
            "status":503,"code":"not_primary","detail":"this node is a standby",
            "primary":"http://127.0.0.1:8081","primary_quic":"127.0.0.1:4434"}"#;
        assert_eq!(error_from_response(503, body).code(), Some("not_primary"));
        assert_eq!(
            problem_primary(body).as_deref(),
            Some("http://127.0.0.1:8081")
        );
        let unknown = br#"{"status":503,"code":"not_primary","detail":"no primary known"}"#;
        assert_eq!(problem_primary(unknown), None);
        assert_eq!(problem_primary(b"<html>"), None);
    }

    #[test]
    fn answers_without_a_problem_are_transport_or_protocol_errors() {
        assert!(matches!(
            error_from_response(502, b"<html>Bad Gateway</html>"),
            ClientError::Transport(TransportError::Http(message)) if message.contains("Bad Gateway")
        ));
        assert!(matches!(
            error_from_response(418, b"{\"detail\":\"no code\"}"),
            ClientError::Protocol(_)
        ));
        let long = vec![b'x'; 1000];
        let ClientError::Protocol(message) = error_from_response(400, &long) else {
            panic!("expected a protocol error");
        };
        assert!(message.contains("1000 bytes in all"), "{message}");
        assert!(message.len() < 400, "{message}");
    }
}
