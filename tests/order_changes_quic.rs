//! Order changes over QUIC through the client library, against the real
//! binary: the same operation as `PATCH /v1/orders/{id}`, with the same
//! rules, authorization and codes. One shard (`FLASHGATE_SHARDS=1`) keeps
//! every SKU on the order's shard, so moves between SKUs are within a shard.

mod common;

use std::io::Write;

use common::{order_id, Client, Launch, QuicEndpoint, Server, ADMIN_TOKEN, SERVICE_TOKEN};
use flashgate_client::{
    ChangeOrder, ClientError, HttpClient, HttpConfig, Order, OrderGateway, QuicClient, QuicConfig,
    Trust,
};
use serde_json::{json, Value};

const FULFILMENT_TOKEN: &str = "fulfilment-token-for-the-warehouse-0002";

fn start() -> (Server, tempfile::NamedTempFile) {
    let mut tokens = tempfile::NamedTempFile::new().expect("a tokens file");
    writeln!(tokens, "{FULFILMENT_TOKEN}").expect("write the tokens file");
    let server = Launch::new()
        .env("FLASHGATE_SHARDS", "1")
        .arg("--fulfilment-tokens-file")
        .arg(tokens.path().to_string_lossy().into_owned())
        .start();
    (server, tokens)
}

async fn connect(endpoint: &QuicEndpoint, credential: &str) -> QuicClient {
    let mut config = QuicConfig::new(
        vec![endpoint.addr],
        Trust::Fingerprint(endpoint.sha256.parse().expect("a fingerprint")),
    );
    config.credential = Some(credential.to_owned());
    QuicClient::connect(config).await.expect("QUIC connect")
}

/// The refusal's code, failing the test on any other outcome.
fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>, what: &str) -> String {
    match result {
        Err(ClientError::Server { code, .. }) => code,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

/// (reserved, sold, available) of a SKU, over HTTP.
fn counters(client: &Client, sku: &str) -> (u64, u64, u64) {
    let body = client.sku(sku);
    let count = |name: &str| body[name].as_u64().unwrap_or_else(|| panic!("{body}"));
    (count("reserved"), count("sold"), count("available"))
}

/// The order's SKU, quantity and number of changes, over HTTP.
fn held(client: &Client, id: &str) -> (String, u64, usize) {
    let body: Value = client.order(id);
    (
        body["sku"]
            .as_str()
            .unwrap_or_else(|| panic!("{body}"))
            .to_owned(),
        body["quantity"]
            .as_u64()
            .unwrap_or_else(|| panic!("{body}")),
        body["changes"].as_array().map_or(0, Vec::len),
    )
}

fn sku_and_quantity(order: &Order) -> (&str, u32) {
    (order.sku.as_str(), order.quantity)
}

/// A buyer changes its order over QUIC: up, down, to another SKU; retries
/// under the same key change nothing more, another change under it is
/// refused; refusals (`sold_out`, `limit_exceeded`) leave the order and the
/// stock exactly as they were; another buyer cannot see the order to change
/// it; a shipped order cannot change. This is what a shop's app relies on
/// when it lets a buyer fix a size or a count after ordering.
#[test]
fn a_buyer_changes_its_order_over_quic_with_the_http_rules() {
    let (server, _tokens) = start();
    let http = server.client();
    http.put_sku("tee-m", json!({ "stock": 10, "per_customer_limit": 4 }));
    http.put_sku("tee-l", json!({ "stock": 5 }));
    http.put_sku("tee-xl", json!({ "stock": 1 }));
    let id = order_id(&http.reserve("tee-m", 2, "alice"));
    let endpoint = server.quic().expect("the server listens for QUIC");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let alice = connect(endpoint, &common::buyer_token("alice")).await;

        // Up: one more unit is taken from stock.
        let changed = alice
            .change(&id, ChangeOrder::quantity(3), "alice-up")
            .await
            .expect("change up");
        assert_eq!(changed.order.order_id, id);
        assert_eq!(sku_and_quantity(&changed.order), ("tee-m", 3));
        assert_eq!(
            changed.order.status,
            flashgate_client::OrderStatus::Reserved
        );
        assert_eq!(changed.changes, None, "QUIC carries no history");
        assert_eq!(counters(http, "tee-m"), (3, 0, 7));

        // Down: two units go back at once.
        let changed = alice
            .change(&id, ChangeOrder::quantity(1), "alice-down")
            .await
            .expect("change down");
        assert_eq!(sku_and_quantity(&changed.order), ("tee-m", 1));
        assert_eq!(counters(http, "tee-m"), (1, 0, 9));

        // Another SKU of the shard, another quantity: all at once.
        let move_to_l = ChangeOrder::sku("tee-l").with_quantity(2);
        let changed = alice
            .change(&id, move_to_l.clone(), "alice-size")
            .await
            .expect("change SKU");
        assert_eq!(sku_and_quantity(&changed.order), ("tee-l", 2));
        assert_eq!(counters(http, "tee-m"), (0, 0, 10));
        assert_eq!(counters(http, "tee-l"), (2, 0, 3));
        assert_eq!(held(http, &id), ("tee-l".into(), 2, 3));

        // The same change again under its key (a resend after a lost
        // answer): the order as it is, nothing taken twice, no new history.
        let again = alice
            .change(&id, move_to_l, "alice-size")
            .await
            .expect("the same change again");
        assert_eq!(sku_and_quantity(&again.order), ("tee-l", 2));
        assert_eq!(counters(http, "tee-l"), (2, 0, 3));
        assert_eq!(held(http, &id), ("tee-l".into(), 2, 3));
        // Another change under a used key: refused, nothing done.
        let code = refused(
            alice
                .change(&id, ChangeOrder::quantity(4), "alice-size")
                .await,
            "a used key with another change",
        );
        assert_eq!(code, "idempotency_key_reused");
        assert_eq!(held(http, &id), ("tee-l".into(), 2, 3));

        // Sold out: bob takes the last XL; alice's move to XL is refused and
        // her order and both SKUs stay as they were.
        http.reserve("tee-xl", 1, "bob");
        let code = refused(
            alice
                .change(&id, ChangeOrder::sku("tee-xl"), "alice-xl")
                .await,
            "a move to a sold-out SKU",
        );
        assert_eq!(code, "sold_out");
        assert_eq!(held(http, &id), ("tee-l".into(), 2, 3));
        assert_eq!(counters(http, "tee-l"), (2, 0, 3));
        assert_eq!(counters(http, "tee-xl"), (1, 0, 0));

        // Over the per-customer limit: alice holds 3 of tee-m in another
        // order; 2 more would make 5 of at most 4.
        let other = alice
            .place(
                flashgate_client::PlaceOrder::new("tee-m", 3, "alice").with_idempotency_key("o2"),
            )
            .await
            .expect("a second order");
        let code = refused(
            alice
                .change(&id, ChangeOrder::sku("tee-m"), "alice-over")
                .await,
            "a move over the per-customer limit",
        );
        assert_eq!(code, "limit_exceeded");
        assert_eq!(held(http, &id), ("tee-l".into(), 2, 3));
        assert_eq!(counters(http, "tee-m"), (3, 0, 7));
        assert_eq!(counters(http, "tee-l"), (2, 0, 3));
        // Within the limit it passes: 3 + 1.
        let changed = alice
            .change(&id, ChangeOrder::sku("tee-m").with_quantity(1), "alice-m1")
            .await
            .expect("a move within the limit");
        assert_eq!(sku_and_quantity(&changed.order), ("tee-m", 1));
        assert_eq!(counters(http, "tee-m"), (4, 0, 6));
        assert_eq!(counters(http, "tee-l"), (0, 0, 5));

        // Bad input: the HTTP rules, the HTTP codes.
        let code = refused(
            alice
                .change(&id, ChangeOrder::default(), "alice-empty")
                .await,
            "a change of nothing",
        );
        assert_eq!(code, "invalid_field");
        let code = refused(
            alice
                .change(&id, ChangeOrder::quantity(0), "alice-zero")
                .await,
            "quantity 0",
        );
        assert_eq!(code, "invalid_field");
        let code = refused(
            alice.change(&id, ChangeOrder::quantity(2), "").await,
            "an empty key",
        );
        assert_eq!(code, "invalid_field");
        let code = refused(
            alice
                .change(&id, ChangeOrder::sku("no-such"), "alice-none")
                .await,
            "an unknown SKU",
        );
        assert_eq!(code, "unknown_sku");
        let code = refused(
            alice
                .change("not-an-id", ChangeOrder::quantity(2), "alice-bad-id")
                .await,
            "a malformed id",
        );
        assert_eq!(code, "unknown_order");

        // Another buyer cannot see alice's order, so cannot change it.
        let bob = connect(endpoint, &common::buyer_token("bob")).await;
        let code = refused(
            bob.change(&id, ChangeOrder::quantity(2), "bob-takes").await,
            "bob changing alice's order",
        );
        assert_eq!(code, "unknown_order");
        assert_eq!(held(http, &id), ("tee-m".into(), 1, 4));

        // A service may change any order.
        let service = connect(endpoint, SERVICE_TOKEN).await;
        let changed = service
            .change(&other.order.order_id, ChangeOrder::quantity(2), "svc-1")
            .await
            .expect("a service changes any order");
        assert_eq!(sku_and_quantity(&changed.order), ("tee-m", 2));
        assert_eq!(counters(http, "tee-m"), (3, 0, 7));

        // Confirmed still changes; shipped does not.
        let admin = connect(endpoint, ADMIN_TOKEN).await;
        admin.confirm(&id).await.expect("confirm");
        let changed = alice
            .change(&id, ChangeOrder::quantity(2), "alice-paid")
            .await
            .expect("a confirmed order changes");
        assert_eq!(sku_and_quantity(&changed.order), ("tee-m", 2));
        assert_eq!(counters(http, "tee-m"), (2, 2, 6));
        let warehouse = connect(endpoint, FULFILMENT_TOKEN).await;
        warehouse.ship(&id).await.expect("ship");
        let code = refused(
            alice
                .change(&id, ChangeOrder::quantity(1), "alice-late")
                .await,
            "a shipped order",
        );
        assert_eq!(code, "invalid_transition");
        assert_eq!(held(http, &id), ("tee-m".into(), 2, 5));
        assert_eq!(counters(http, "tee-m"), (2, 2, 6));

        // The same call over HTTP carries the history: the service's change
        // over QUIC, then this one.
        let mut config = HttpConfig::new(server.base_url());
        config.credential = Some(common::buyer_token("alice"));
        let alice_http = HttpClient::new(config).expect("an HTTP client");
        let changed = alice_http
            .change(
                &other.order.order_id,
                ChangeOrder::quantity(1),
                "alice-http",
            )
            .await
            .expect("a change over HTTP");
        assert_eq!(sku_and_quantity(&changed.order), ("tee-m", 1));
        let history: Vec<(u32, u32)> = changed
            .changes
            .expect("HTTP answers the history")
            .iter()
            .map(|change| (change.from_quantity, change.to_quantity))
            .collect();
        assert_eq!(history, [(3, 2), (2, 1)]);
        assert_eq!(counters(http, "tee-m"), (1, 2, 7));
    });
}
