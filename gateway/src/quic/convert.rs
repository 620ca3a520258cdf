//! Wire ↔ domain for the QUIC front end. Wire requests become domain commands
//! here, through the domain's own validators, so a value refused over HTTP is
//! refused over QUIC with the same code; domain answers become wire messages
//! here and nowhere else. Times on the wire are milliseconds since the Unix
//! epoch, UTC, which is what `Timestamp` holds.

use flashgate_actors::domain::{
    CustomerId, IdempotencyKey, InvalidField, Order, OrderId, OrderStatus, PlaceOrder, PutSku,
    Restock, Sku, SkuId, SkuSettings, Timestamp, QUANTITY_PER_ORDER_MAX,
};
use flashgate_actors::NodeError;
use flashgate_protocol as wire;
use flashgate_protocol::code;

use crate::error_code::node_error_code;
use crate::token::token_matches;

/// Longest piece of a client's value quoted back in an error's detail.
const QUOTED_BYTES_MAX: usize = 64;

/// Every way the QUIC front end refuses one request. `code()` is its wire code,
/// the HTTP API's code for the same refusal.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Node(#[from] NodeError),
    #[error("{0}")]
    InvalidField(#[from] InvalidField),
    #[error("no order {0}: order ids look like 1-0-42")]
    UnknownOrderId(String),
    /// No valid credential where one is needed.
    #[error("{0}")]
    Unauthorized(String),
    /// The connection's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A buyer ordering for another customer.
    #[error("{0}")]
    CustomerMismatch(String),
    #[error("too many refused credentials from this address: wait {0} s")]
    TooManyAuthFailures(u64),
    #[error("this connection has {0} requests in flight, its limit; send more as answers arrive")]
    TooManyInFlight(usize),
    /// A `GetOrders` over the server's `orders_read_max`; nothing was read.
    #[error("the read asks for {ids} orders, over the limit of {max}; send at most {max} ids per GetOrders")]
    ReadTooLarge { ids: usize, max: usize },
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Node(error) => node_error_code(error),
            RequestError::InvalidField(_) => code::INVALID_FIELD,
            RequestError::UnknownOrderId(_) => code::UNKNOWN_ORDER,
            RequestError::Unauthorized(_) => code::UNAUTHORIZED,
            RequestError::Forbidden(_) => code::FORBIDDEN,
            RequestError::CustomerMismatch(_) => code::CUSTOMER_MISMATCH,
            RequestError::TooManyAuthFailures(_) => code::TOO_MANY_AUTH_FAILURES,
            RequestError::TooManyInFlight(_) => code::TOO_MANY_IN_FLIGHT,
            RequestError::ReadTooLarge { .. } => code::BATCH_TOO_LARGE,
        }
    }

    /// This error as the answer to request `request_id`.
    pub fn into_response(self, request_id: u64) -> wire::Response {
        wire::Response::Error {
            request_id,
            code: self.code().to_owned(),
            detail: self.to_string(),
        }
    }
}

impl From<crate::auth::Refusal> for RequestError {
    fn from(refusal: crate::auth::Refusal) -> RequestError {
        use crate::auth::Refusal as R;
        match refusal {
            R::Unauthenticated(detail) => RequestError::Unauthorized(detail),
            R::Forbidden(detail) => RequestError::Forbidden(detail),
            R::CustomerMismatch { .. } => RequestError::CustomerMismatch(refusal.to_string()),
        }
    }
}

impl From<crate::auth::Refused> for RequestError {
    fn from(refused: crate::auth::Refused) -> RequestError {
        match refused {
            crate::auth::Refused::Invalid(failure) => RequestError::Unauthorized(failure.0),
            crate::auth::Refused::Throttled { retry_after_secs } => {
                RequestError::TooManyAuthFailures(retry_after_secs)
            }
        }
    }
}

/// Passes when `given` is the admin token: empty is `unauthorized` (no token
/// sent), anything else but the token `forbidden`.
pub fn check_admin(given: &str, token: &str) -> Result<(), RequestError> {
    if given.is_empty() {
        Err(RequestError::Unauthorized(
            "this request needs the admin token: send it in admin_token".into(),
        ))
    } else if token_matches(given, token) {
        Ok(())
    } else {
        Err(RequestError::Forbidden("the admin token is wrong".into()))
    }
}

/// A wire order as a domain command, each field checked as the HTTP API checks it.
pub fn place_order(order: &wire::PlaceOrder) -> Result<PlaceOrder, RequestError> {
    let sku = SkuId::parse(&order.sku)?;
    if !(1..=QUANTITY_PER_ORDER_MAX).contains(&order.quantity) {
        return Err(InvalidField::new(
            "quantity",
            format!("must be between 1 and {QUANTITY_PER_ORDER_MAX}"),
        )
        .into());
    }
    let customer = CustomerId::parse(&order.customer_id)?;
    let idempotency_key = match &order.idempotency_key {
        None => None,
        // The domain names the field after the HTTP header; on the wire it is
        // `idempotency_key`.
        Some(key) => Some(
            IdempotencyKey::parse(key)
                .map_err(|error| InvalidField::new("idempotency_key", error.rule))?,
        ),
    };
    Ok(PlaceOrder {
        sku,
        quantity: order.quantity,
        customer,
        idempotency_key,
    })
}

pub fn sku_id(raw: &str) -> Result<SkuId, RequestError> {
    Ok(SkuId::parse(raw)?)
}

/// An order id; one that cannot be an id is an unknown order, as over HTTP.
pub fn order_id(raw: &str) -> Result<OrderId, RequestError> {
    OrderId::parse(raw).ok_or_else(|| RequestError::UnknownOrderId(quoted(raw)))
}

/// `PutSku`'s fields as a command; absent settings take their defaults, as
/// absent JSON members do over HTTP.
pub fn put_sku(sku: &str, settings: &wire::SkuSettings) -> Result<PutSku, RequestError> {
    let defaults = SkuSettings::default();
    Ok(PutSku {
        sku: sku_id(sku)?,
        stock: settings.stock,
        settings: SkuSettings {
            per_customer_limit: settings.per_customer_limit,
            max_quantity_per_order: settings
                .max_quantity_per_order
                .unwrap_or(defaults.max_quantity_per_order),
            sale_starts_at: settings.sale_starts_at_ms.map(Timestamp),
            reservation_ttl_secs: settings
                .reservation_ttl_secs
                .unwrap_or(defaults.reservation_ttl_secs),
            low_stock_threshold: settings
                .low_stock_threshold
                .unwrap_or(defaults.low_stock_threshold),
        },
    })
}

pub fn restock(sku: &str, quantity: u64) -> Result<Restock, RequestError> {
    Ok(Restock {
        sku: sku_id(sku)?,
        quantity,
    })
}

pub fn order_to_wire(order: &Order) -> wire::Order {
    wire::Order {
        order_id: order.id.to_string(),
        sku: order.sku.as_str().to_owned(),
        quantity: order.quantity,
        customer_id: order.customer.as_str().to_owned(),
        status: status_to_wire(order.status),
        created_at_ms: order.created_at.0,
        reserved_until_ms: order.reserved_until.0,
        updated_at_ms: order.updated_at.0,
    }
}

fn status_to_wire(status: OrderStatus) -> wire::OrderStatus {
    match status {
        OrderStatus::Reserved => wire::OrderStatus::Reserved,
        OrderStatus::Confirmed => wire::OrderStatus::Confirmed,
        OrderStatus::Cancelled => wire::OrderStatus::Cancelled,
        OrderStatus::Expired => wire::OrderStatus::Expired,
    }
}

pub fn sku_to_wire(sku: &Sku) -> wire::Sku {
    wire::Sku {
        sku: sku.id.as_str().to_owned(),
        total: sku.total,
        available: sku.available,
        reserved: sku.reserved,
        sold: sku.sold,
        per_customer_limit: sku.settings.per_customer_limit,
        max_quantity_per_order: sku.settings.max_quantity_per_order,
        sale_starts_at_ms: sku.settings.sale_starts_at.map(|at| at.0),
        reservation_ttl_secs: sku.settings.reservation_ttl_secs,
        low_stock_threshold: sku.settings.low_stock_threshold,
        low_stock: sku.is_low_stock(),
    }
}

/// A client's value for an error's detail, cut short so a large frame is not
/// echoed back whole.
fn quoted(raw: &str) -> String {
    if raw.len() <= QUOTED_BYTES_MAX {
        return raw.to_owned();
    }
    let mut end = QUOTED_BYTES_MAX;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &raw[..end], raw.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate_actors::domain::CoreError;

    fn wire_order(sku: &str, quantity: u32, key: Option<&str>) -> wire::PlaceOrder {
        wire::PlaceOrder {
            request_id: 1,
            sku: sku.into(),
            quantity,
            customer_id: "alice".into(),
            idempotency_key: key.map(Into::into),
        }
    }

    #[test]
    fn orders_are_checked_like_http_and_name_their_field() {
        assert!(place_order(&wire_order("SNEAKER-42", 1, Some("k"))).is_ok());
        for (order, field) in [
            (wire_order("no spaces", 1, None), "sku"),
            (wire_order("A", 0, None), "quantity"),
            (
                wire_order("A", QUANTITY_PER_ORDER_MAX + 1, None),
                "quantity",
            ),
            (wire_order("A", 1, Some("")), "idempotency_key"),
        ] {
            let error = place_order(&order).unwrap_err();
            assert_eq!(error.code(), code::INVALID_FIELD, "{order:?}");
            assert!(error.to_string().starts_with(field), "{error}");
        }
    }

    #[test]
    fn errors_carry_the_http_codes() {
        let refused = RequestError::from(NodeError::Rejected(CoreError::SoldOut(
            SkuId::parse("A").unwrap(),
        )));
        assert_eq!(refused.code(), "sold_out");
        assert_eq!(
            RequestError::from(NodeError::Overloaded { shard: 0, depth: 1 }).code(),
            "overloaded"
        );
        let unknown = order_id(&"9".repeat(1000)).unwrap_err();
        assert_eq!(unknown.code(), "unknown_order");
        assert!(unknown.to_string().len() < 200, "{unknown}");
        assert!(order_id("1-0-42").is_ok());
    }

    #[test]
    fn the_admin_token_is_missing_wrong_or_right() {
        let token = "0123456789abcdef";
        assert!(matches!(
            check_admin("", token),
            Err(RequestError::Unauthorized(_))
        ));
        assert!(matches!(
            check_admin("0123456789abcdeX", token),
            Err(RequestError::Forbidden(_))
        ));
        assert!(check_admin(token, token).is_ok());
    }

    #[test]
    fn times_are_milliseconds_since_the_epoch() {
        let command = put_sku(
            "A",
            &wire::SkuSettings {
                stock: Some(5),
                sale_starts_at_ms: Some(1_700_000_000_123),
                ..wire::SkuSettings::default()
            },
        )
        .unwrap();
        assert_eq!(
            command.settings.sale_starts_at,
            Some(Timestamp(1_700_000_000_123))
        );
        assert_eq!(
            command.settings,
            SkuSettings {
                sale_starts_at: Some(Timestamp(1_700_000_000_123)),
                ..SkuSettings::default()
            }
        );
    }
}
