//! Every JSON body the HTTP API takes, as its handler reads it: the strict
//! parse (`wire::parse_object`: JSON, an object, no key twice), then the
//! members taken field by field with the same calls and validators, in the
//! same order, as `http/orders.rs` (place an order) and `http/skus.rs` (put a
//! SKU, restock) take them.
//!
//! Input: byte 0 picks the body (0 place order, 1 put SKU, 2 restock); the
//! rest is the body.
//!
//! Must hold: no panic; every refusal is `malformed_json` (400) or
//! `invalid_field` (422) with a message; the strict parse accepts only what a
//! plain JSON parse reads as an object with the same members, and refuses
//! what a plain parse accepts only for a repeated key; an accepted body,
//! written back as JSON, is accepted again with the same values.
#![no_main]

use flashgate_actors::domain::{
    CustomerId, PutSku, SkuId, SkuSettings, Timestamp, QUANTITY_PER_ORDER_MAX,
};
use flashgate_gateway::problem::ApiError;
use flashgate_gateway::wire::parse_object;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// What a place-order body asks for.
#[derive(Debug)]
struct Order {
    sku: SkuId,
    quantity: u32,
    customer: CustomerId,
}

fn place_order(body: &[u8]) -> Result<Order, ApiError> {
    let mut fields = parse_object(body)?;
    let sku = SkuId::parse(&fields.string("sku")?)?;
    let quantity = fields.unsigned("quantity")?;
    let customer = CustomerId::parse(&fields.string("customer_id")?)?;
    fields.finish()?;
    let quantity = u32::try_from(quantity)
        .ok()
        .filter(|quantity| (1..=QUANTITY_PER_ORDER_MAX).contains(quantity))
        .ok_or_else(|| {
            ApiError::InvalidField(format!(
                "quantity: must be between 1 and {QUANTITY_PER_ORDER_MAX}"
            ))
        })?;
    Ok(Order {
        sku,
        quantity,
        customer,
    })
}

fn order_json(order: &Order) -> Value {
    json!({
        "sku": order.sku.to_string(),
        "quantity": order.quantity,
        "customer_id": order.customer.as_str(),
    })
}

const SKU: &str = "SKU-1";

fn put_sku(body: &[u8]) -> Result<PutSku, ApiError> {
    let sku = SkuId::parse(SKU)?;
    let mut fields = parse_object(body)?;
    let defaults = SkuSettings::default();
    let stock = fields.optional_unsigned("stock")?;
    let settings = SkuSettings {
        per_customer_limit: fields.optional_unsigned("per_customer_limit")?,
        max_quantity_per_order: fields
            .optional_u32("max_quantity_per_order")?
            .unwrap_or(defaults.max_quantity_per_order),
        sale_starts_at: fields.optional_timestamp("sale_starts_at")?,
        reservation_ttl_secs: fields
            .optional_u32("reservation_ttl_secs")?
            .unwrap_or(defaults.reservation_ttl_secs),
        low_stock_threshold: fields
            .optional_unsigned("low_stock_threshold")?
            .unwrap_or(defaults.low_stock_threshold),
    };
    fields.finish()?;
    Ok(PutSku {
        sku,
        stock,
        settings,
    })
}

fn put_sku_json(put: &PutSku) -> Value {
    let settings = &put.settings;
    let mut body = json!({
        "max_quantity_per_order": settings.max_quantity_per_order,
        "reservation_ttl_secs": settings.reservation_ttl_secs,
        "low_stock_threshold": settings.low_stock_threshold,
    });
    if let Some(stock) = put.stock {
        body["stock"] = json!(stock);
    }
    if let Some(limit) = settings.per_customer_limit {
        body["per_customer_limit"] = json!(limit);
    }
    if let Some(at) = settings.sale_starts_at {
        body["sale_starts_at"] = json!(at.to_string());
    }
    body
}

fn restock(body: &[u8]) -> Result<u64, ApiError> {
    let mut fields = parse_object(body)?;
    let quantity = fields.unsigned("quantity")?;
    fields.finish()?;
    Ok(quantity)
}

fn check_refusal(error: &ApiError) {
    let (status, code) = error.status_and_code();
    assert!(
        matches!(
            (status.as_u16(), code),
            (400, "malformed_json") | (422, "invalid_field")
        ),
        "{status} {code}: {error}"
    );
    assert!(!error.to_string().is_empty());
}

/// Parses `body` with `parse`, and an accepted body once more as `write`
/// writes it back: the same values (compared as shown by `Debug`).
fn check<T: std::fmt::Debug>(
    body: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, ApiError>,
    write: impl Fn(&T) -> Value,
) {
    match parse(body) {
        Ok(value) => {
            let again = serde_json::to_vec(&write(&value)).expect("JSON values serialize");
            match parse(&again) {
                Ok(reparsed) => assert_eq!(
                    format!("{reparsed:?}"),
                    format!("{value:?}"),
                    "written back: {again:?}"
                ),
                Err(error) => panic!("accepted {value:?}, refused written back: {error}"),
            }
        }
        Err(error) => check_refusal(&error),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    // The strict parse refines the plain one.
    let plain = serde_json::from_slice::<Value>(body);
    match parse_object(body) {
        Ok(_) => assert!(matches!(plain, Ok(Value::Object(_)))),
        Err(ApiError::MalformedJson(reason)) => {
            if let Ok(value) = &plain {
                assert!(value.is_object() || value.is_array(), "{value:?}");
                assert!(reason.contains("appears twice"), "{reason}");
            }
        }
        Err(ApiError::InvalidField(_)) => {
            assert!(matches!(plain, Ok(ref value) if !value.is_object()));
        }
        Err(other) => panic!("parse_object refused with {other:?}"),
    }
    match which % 3 {
        0 => check(body, place_order, order_json),
        1 => check(body, put_sku, put_sku_json),
        _ => check(body, restock, |quantity| json!({ "quantity": quantity })),
    }
    // Timestamps written back read back the same instant.
    if let Ok(text) = std::str::from_utf8(body) {
        if let Some(at) = Timestamp::parse_rfc3339(text) {
            let shown = at.to_string();
            assert_eq!(Timestamp::parse_rfc3339(&shown), Some(at), "{shown}");
        }
    }
});
