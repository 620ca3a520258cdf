//! Wire ↔ domain for the QUIC front end. Wire requests become domain commands
//! here, through the domain's own validators, so a value refused over HTTP is
//! refused over QUIC with the same code; domain answers become wire messages
//! here and nowhere else. Times on the wire are milliseconds since the Unix
//! epoch, UTC, which is what `Timestamp` holds.

use flashgate_actors::domain::{
    ChangeOrder, CustomerId, IdempotencyKey, InvalidField, Order, OrderId, OrderStatus, PlaceOrder,
    PutSku, RequestedSettings, Restock, Sku, Timestamp,
};
use flashgate_protocol as wire;

use crate::request::RequestError;
use crate::token::token_matches;

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

/// A wire order as a domain command, by the rules of `PlaceOrder::parse`.
pub fn place_order(order: &wire::PlaceOrder) -> Result<PlaceOrder, RequestError> {
    let idempotency_key = match &order.idempotency_key {
        None => None,
        // The domain names the field after the HTTP header; on the wire it is
        // `idempotency_key`.
        Some(key) => Some(
            IdempotencyKey::parse(key)
                .map_err(|error| InvalidField::new("idempotency_key", error.rule))?,
        ),
    };
    Ok(PlaceOrder::parse(
        &order.sku,
        u64::from(order.quantity),
        &order.customer_id,
        idempotency_key,
    )?)
}

/// A wire change of order `id` as a domain command, by the rules of
/// `ChangeOrder::parse` (the HTTP `PATCH`'s): the key is required, as the
/// `Idempotency-Key` header is there; with `customer`, only that customer's
/// order may be changed.
pub fn change_order(
    id: OrderId,
    customer: Option<CustomerId>,
    sku: Option<&str>,
    quantity: Option<u32>,
    idempotency_key: &str,
) -> Result<ChangeOrder, RequestError> {
    let key = IdempotencyKey::parse(idempotency_key)
        .map_err(|error| InvalidField::new("idempotency_key", error.rule))?;
    Ok(ChangeOrder::parse(
        id,
        customer,
        sku,
        quantity.map(u64::from),
        key,
    )?)
}

/// `PutSku`'s fields as a command, by the rules and defaults of
/// `PutSku::parse`: an absent setting takes its default, as an absent JSON
/// member does over HTTP.
pub fn put_sku(sku: &str, settings: &wire::SkuSettings) -> Result<PutSku, RequestError> {
    let requested = RequestedSettings {
        per_customer_limit: settings.per_customer_limit,
        max_quantity_per_order: settings.max_quantity_per_order,
        sale_starts_at: settings.sale_starts_at_ms.map(Timestamp),
        reservation_ttl_secs: settings.reservation_ttl_secs,
        low_stock_threshold: settings.low_stock_threshold,
    };
    Ok(PutSku::parse(sku, settings.stock, requested)?)
}

/// A restock's fields as a command, by the rules of `Restock::parse`.
pub fn restock(sku: &str, quantity: u64) -> Result<Restock, RequestError> {
    Ok(Restock::parse(sku, quantity)?)
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
        OrderStatus::Shipped => wire::OrderStatus::Shipped,
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

#[cfg(test)]
mod tests {
    use super::*;
    use flashgate_actors::domain::{CoreError, SkuId, SkuSettings, QUANTITY_PER_ORDER_MAX};
    use flashgate_actors::NodeError;
    use flashgate_protocol::code;

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
