//! Shipping: a confirmed order handed to the carrier is final. Only the
//! fulfilment credential (or the admin) ships; an unpaid order does not ship; a
//! shipped order can no longer be cancelled, its units stay sold, and it stays
//! shipped after a crash. The same over HTTP and QUIC.

mod common;

use std::io::Write;

use common::{order_id, Launch, Server, ADMIN_TOKEN};
use flashgate_client::{ClientError, OrderGateway, QuicClient, QuicConfig, Trust};
use flashgate_protocol::OrderStatus;
use serde_json::{json, Value};

const FULFILMENT_TOKEN: &str = "fulfilment-token-for-the-warehouse-0001";

fn start(data_dir: Option<&std::path::Path>) -> (Server, tempfile::NamedTempFile) {
    let mut tokens = tempfile::NamedTempFile::new().expect("a tokens file");
    writeln!(tokens, "{FULFILMENT_TOKEN}").expect("write the tokens file");
    let mut launch = Launch::new()
        .arg("--fulfilment-tokens-file")
        .arg(tokens.path().to_string_lossy().into_owned());
    if let Some(data_dir) = data_dir {
        launch = launch.data_dir(data_dir);
    }
    (launch.start(), tokens)
}

fn ship(server: &Server, credential: Option<&str>, order_id: &str) -> (u16, Value) {
    server
        .client()
        .with_credential(credential)
        .post_json(&format!("/v1/orders/{order_id}/ship"), &json!({}))
}

/// Over HTTP: who may ship, what ships, and that shipped is final and durable.
#[test]
fn a_shipped_order_is_final_and_survives_a_crash() {
    let (mut server, tokens) = start(None);
    let client = server.client();
    client.put_sku("tee", json!({ "stock": 5 }));
    let order = client.reserve("tee", 2, "alice");
    let id = order_id(&order);

    // Unpaid: it does not ship.
    let (status, body) = ship(&server, Some(FULFILMENT_TOKEN), &id);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "invalid_transition", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("reserved"),
        "{body}"
    );

    assert_eq!(client.confirm(&id).0, 200);
    // Without a credential, and as a buyer, no shipping.
    let (status, body) = ship(&server, None, &id);
    assert_eq!(status, 401, "{body}");
    let (status, body) = ship(&server, Some(&common::buyer_token("alice")), &id);
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body) = ship(&server, Some(FULFILMENT_TOKEN), &id);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "shipped", "{body}");
    // Idempotent, and the admin may ship too.
    let (status, body) = ship(&server, Some(ADMIN_TOKEN), &id);
    assert_eq!((status, body["status"].as_str()), (200, Some("shipped")));
    // A payment retry still hears "paid".
    let (status, body) = client.confirm(&id);
    assert_eq!((status, body["status"].as_str()), (200, Some("shipped")));

    // Final: no cancel; the units stay sold.
    let (status, body) = client.cancel(&id);
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "invalid_transition", "{body}");
    let sku = client.sku("tee");
    assert_eq!(
        (sku["sold"].as_u64(), sku["available"].as_u64()),
        (Some(2), Some(3))
    );

    // An unknown order, and a malformed id, are said so.
    let (status, body) = ship(&server, Some(FULFILMENT_TOKEN), "1-0-999999");
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_order"))
    );
    let (status, body) = ship(&server, Some(FULFILMENT_TOKEN), "not-an-id");
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_order"))
    );
    assert!(
        body["detail"].as_str().unwrap().contains("look like"),
        "{body}"
    );

    // The fulfilment credential reads orders but places none.
    let fulfilment = client.with_credential(Some(FULFILMENT_TOKEN));
    assert_eq!(fulfilment.get(&format!("/v1/orders/{id}")).0, 200);
    let (status, _) = fulfilment.place_order("tee", 1, "bob");
    assert_eq!(status, 403);

    // SIGKILL, restart on the same data: still shipped, still sold.
    let data_dir = server.data_dir().to_path_buf();
    server.kill();
    let (server, _tokens) = start(Some(&data_dir));
    drop(tokens);
    let client = server.client();
    assert_eq!(client.order(&id)["status"], "shipped");
    assert_eq!(client.sku("tee")["sold"], 2);
    assert_eq!(client.cancel(&id).0, 409);
}

/// Over QUIC through the client library: the fulfilment credential ships, a
/// buyer's credential is refused, and the answer is the shipped order.
#[test]
fn quic_ships_with_the_fulfilment_credential() {
    let (server, _tokens) = start(None);
    let client = server.client();
    client.put_sku("cap", json!({ "stock": 3 }));
    let id = order_id(&client.reserve("cap", 1, "carol"));
    let unpaid = order_id(&client.reserve("cap", 1, "dave"));
    assert_eq!(client.confirm(&id).0, 200);

    let endpoint = server.quic().expect("the server listens for QUIC");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let connect = |credential: &str| {
            let mut config = QuicConfig::new(
                vec![endpoint.addr],
                Trust::Fingerprint(endpoint.sha256.parse().expect("a fingerprint")),
            );
            config.credential = Some(credential.to_owned());
            QuicClient::connect(config)
        };
        let warehouse = connect(FULFILMENT_TOKEN).await.expect("QUIC connect");
        let shipped = warehouse.ship(&id).await.expect("ship over QUIC");
        assert_eq!(shipped.status, OrderStatus::Shipped);
        match warehouse.ship(&unpaid).await {
            Err(ClientError::Server { code, .. }) => assert_eq!(code, "invalid_transition"),
            other => panic!("an unpaid order shipped: {other:?}"),
        }
        let buyer = connect(&common::buyer_token("carol"))
            .await
            .expect("QUIC connect");
        match buyer.ship(&id).await {
            Err(ClientError::Server { code, .. }) => {
                assert!(code == "forbidden" || code == "unauthorized", "{code}")
            }
            other => panic!("a buyer shipped: {other:?}"),
        }
    });
    assert_eq!(client.order(&id)["status"], "shipped");
}
