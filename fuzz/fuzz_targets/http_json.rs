//! Every JSON body the HTTP API takes, as its handler reads it: the strict
//! parse (`wire::parse_object`: JSON, an object, no key twice), then the
//! readers the handlers themselves call (`wire::parse_order` for a place-order
//! body, `Fields::into_put_sku` and `Fields::into_restock` in
//! `gateway/src/wire.rs`).
//!
//! Input: byte 0 picks the body (0 place order, 1 put SKU, 2 restock); the
//! rest is the body.
//!
//! Must hold: no panic; every refusal is `malformed_json` (400) or
//! `invalid_field` (422) with a message; the strict parse accepts only what a
//! plain JSON parse reads as an object with the same members, and refuses
//! what a plain parse accepts only for a repeated key; an accepted body,
//! written back as JSON, is accepted again with the same values; and the
//! place-order reader, which reads its members without building a map,
//! accepts and refuses exactly as `parse_object` and `Fields` would.
#![no_main]

use flashgate_actors::domain::{PlaceOrder, PutSku, Restock, Timestamp};
use flashgate_gateway::problem::status;
use flashgate_gateway::request::RequestError;
use flashgate_gateway::wire::{parse_object, parse_order};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const SKU: &str = "SKU-1";

/// What a place-order body asks for.
fn place_order(body: &[u8]) -> Result<PlaceOrder, RequestError> {
    parse_order(body, None)
}

/// The same body read member by member from `Fields`, as every other body is.
fn place_order_through_fields(body: &[u8]) -> Result<PlaceOrder, RequestError> {
    let mut fields = parse_object(body)?;
    let sku = fields.string("sku")?;
    let quantity = fields.unsigned("quantity")?;
    let customer = fields.string("customer_id")?;
    fields.finish()?;
    Ok(PlaceOrder::parse(&sku, quantity, &customer, None)?)
}

fn order_json(order: &PlaceOrder) -> Value {
    json!({
        "sku": order.sku.to_string(),
        "quantity": order.quantity,
        "customer_id": order.customer.as_str(),
    })
}

fn put_sku(body: &[u8]) -> Result<PutSku, RequestError> {
    parse_object(body)?.into_put_sku(SKU)
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

fn restock(body: &[u8]) -> Result<Restock, RequestError> {
    parse_object(body)?.into_restock(SKU)
}

fn check_refusal(error: &RequestError) {
    let (status, code) = (status(error), error.code());
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
    parse: impl Fn(&[u8]) -> Result<T, RequestError>,
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
        Err(RequestError::MalformedJson(reason)) => {
            if let Ok(value) = &plain {
                assert!(value.is_object() || value.is_array(), "{value:?}");
                assert!(reason.contains("appears twice"), "{reason}");
            }
        }
        Err(RequestError::InvalidField(_)) => {
            assert!(matches!(plain, Ok(ref value) if !value.is_object()));
        }
        Err(other) => panic!("parse_object refused with {other:?}"),
    }
    match which % 3 {
        0 => {
            check(body, place_order, order_json);
            let outcome = |result: Result<PlaceOrder, RequestError>| match result {
                Ok(order) => Ok(format!("{order:?}")),
                Err(error) => Err((error.code(), error.to_string())),
            };
            assert_eq!(
                outcome(place_order(body)),
                outcome(place_order_through_fields(body)),
                "the place-order reader and Fields disagree"
            );
        }
        1 => check(body, put_sku, put_sku_json),
        _ => check(
            body,
            restock,
            |restock| json!({ "quantity": restock.quantity }),
        ),
    }
    // Timestamps written back read back the same instant.
    if let Ok(text) = std::str::from_utf8(body) {
        if let Some(at) = Timestamp::parse_rfc3339(text) {
            let shown = at.to_string();
            assert_eq!(Timestamp::parse_rfc3339(&shown), Some(at), "{shown}");
        }
    }
});
