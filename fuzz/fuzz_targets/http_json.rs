//! Every JSON body the HTTP API takes, as its handler reads it: the strict
//! parse (`wire::parse_object`: JSON, an object, no key twice), then the
//! readers the handlers themselves call (`Fields::into_order`,
//! `into_sku_settings`, `into_restock_quantity` in `gateway/src/wire.rs`).
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

use flashgate_actors::domain::{PutSku, SkuId, Timestamp};
use flashgate_gateway::problem::ApiError;
use flashgate_gateway::wire::{parse_object, OrderFields as Order};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// What a place-order body asks for.
fn place_order(body: &[u8]) -> Result<Order, ApiError> {
    parse_object(body)?.into_order()
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
    let (stock, settings) = parse_object(body)?.into_sku_settings()?;
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
    parse_object(body)?.into_restock_quantity()
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
