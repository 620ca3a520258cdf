mod common;

use std::time::Duration;

use common::{order_id, poll_until, Client, Launch};
use serde_json::{json, Value};

/// Longest wait for a reservation with a TTL of a few seconds to expire.
const EXPIRY_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits until the order shows `expired`; returns it.
fn wait_until_expired(api: &Client, id: &str) -> Value {
    poll_until(&format!("order {id} to expire"), EXPIRY_TIMEOUT, || {
        let order = api.order(id);
        (order["status"] == "expired").then_some(order)
    })
}

/// An unpaid reservation expires after its TTL and its stock returns to sale,
/// while a confirmed order stays sold: a flash sale must not let abandoned carts
/// hold stock, nor take back what a customer paid for.
#[test]
fn reservations_expire_and_return_stock_but_confirmed_orders_do_not() {
    let server = Launch::new()
        .env("FLASHGATE_EXPIRY_INTERVAL_MS", "50")
        .start();
    let api = server.client();
    api.put_sku("flash-1s", json!({ "stock": 5, "reservation_ttl_secs": 1 }));

    let abandoned = api.reserve("flash-1s", 2, "abandoner");
    let sku = api.sku("flash-1s");
    assert_eq!(
        (&sku["available"], &sku["reserved"]),
        (&json!(3), &json!(2)),
        "{sku}"
    );
    let id = order_id(&abandoned);
    let expired = wait_until_expired(api, &id);
    assert_eq!(expired["quantity"], 2, "{expired}");
    let sku = api.sku("flash-1s");
    assert_eq!(
        (&sku["available"], &sku["reserved"], &sku["sold"]),
        (&json!(5), &json!(0), &json!(0)),
        "{sku}"
    );

    let (status, problem) = api.confirm(&id);
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "invalid_transition", "{problem}");
    assert_eq!(api.order(&id)["status"], "expired");

    // A TTL of a few seconds leaves room to confirm before it runs out even on a
    // slow machine.
    api.put_sku("flash-3s", json!({ "stock": 5, "reservation_ttl_secs": 3 }));
    let paid = api.reserve("flash-3s", 1, "payer");
    let (status, confirmed) = api.confirm(&order_id(&paid));
    assert_eq!(status, 200, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed", "{confirmed}");
    // A reservation made after the confirmed order expires after it would have:
    // once this one has expired, the confirmed order's TTL has passed too.
    let witness = api.reserve("flash-3s", 1, "witness");
    wait_until_expired(api, &order_id(&witness));
    assert_eq!(api.order(&order_id(&paid)), confirmed);
    let sku = api.sku("flash-3s");
    assert_eq!(
        (&sku["available"], &sku["reserved"], &sku["sold"]),
        (&json!(4), &json!(0), &json!(1)),
        "{sku}"
    );
}

/// A reservation still open at shutdown expires after the restart: the expiry
/// schedule is rebuilt from the data dir, so stock held by a cart abandoned
/// during a deploy comes back.
#[test]
fn a_reservation_open_at_shutdown_expires_after_the_restart() {
    let data = tempfile::tempdir().expect("create a data dir");
    // No expiry pass runs in the first process, so the reservation is certainly
    // still open when it stops.
    let mut server = Launch::new()
        .data_dir(data.path())
        .env("FLASHGATE_EXPIRY_INTERVAL_MS", "3600000")
        .start();
    let api = server.client();
    api.put_sku("flash-1s", json!({ "stock": 5, "reservation_ttl_secs": 1 }));
    let id = order_id(&api.reserve("flash-1s", 3, "abandoner"));
    assert!(server.terminate().success(), "graceful shutdown");

    let server = Launch::new()
        .data_dir(data.path())
        .env("FLASHGATE_EXPIRY_INTERVAL_MS", "50")
        .start();
    let api = server.client();
    wait_until_expired(api, &id);
    let sku = api.sku("flash-1s");
    assert_eq!(
        (&sku["available"], &sku["reserved"], &sku["sold"]),
        (&json!(5), &json!(0), &json!(0)),
        "{sku}"
    );
}
