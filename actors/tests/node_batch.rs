//! `Node::place_orders` answers a batch exactly as the same orders one by one
//! would be answered: results in the order given, each order's own outcome, one
//! order per idempotency key even inside one batch, and stock never oversold.
//! The QUIC batch frame relies on it.

use flashgate_actors::domain::{
    CustomerId, IdempotencyKey, PlaceOrder, PutSku, SkuId, SkuSettings,
};
use flashgate_actors::{Node, NodeConfig, NodeError};
use flashgate_storage::{Storage, StorageConfig};

fn order(sku: &str, customer: &str, key: Option<&str>) -> PlaceOrder {
    PlaceOrder {
        sku: SkuId::parse(sku).unwrap(),
        quantity: 1,
        customer: CustomerId::parse(customer).unwrap(),
        idempotency_key: key.map(|key| IdempotencyKey::parse(key).unwrap()),
    }
}

fn code(result: &Result<(flashgate_actors::domain::Order, bool), NodeError>) -> String {
    match result {
        Ok((_, true)) => "created".into(),
        Ok((_, false)) => "replayed".into(),
        Err(NodeError::Rejected(error)) => format!("{error:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap()
            .to_owned(),
        Err(other) => format!("{other:?}"),
    }
}

#[test]
fn a_batch_is_answered_in_order_with_each_orders_own_outcome() {
    let dir = tempfile::tempdir().unwrap();
    actix::System::new().block_on(async move {
        let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
        let config = NodeConfig {
            shards: 4,
            ..NodeConfig::default()
        };
        let (node, runtime, _) = Node::start(storage, config).unwrap();
        for (sku, stock) in [("A", 2), ("B", 100), ("C", 100)] {
            node.put_sku(PutSku {
                sku: SkuId::parse(sku).unwrap(),
                stock: Some(stock),
                settings: SkuSettings::default(),
            })
            .await
            .unwrap();
        }
        let batch = vec![
            order("A", "c1", None),
            order("B", "c2", Some("k")),
            order("ghost", "c3", None),
            order("A", "c4", None),
            order("B", "c2", Some("k")),
            order("A", "c5", None),
            order("C", "c6", None),
        ];
        let results = node.place_orders(batch).await;
        let codes: Vec<String> = results.iter().map(code).collect();
        assert_eq!(
            codes,
            [
                "created",
                "created",
                "UnknownSku",
                "created",
                "replayed",
                "SoldOut",
                "created"
            ]
        );
        let (first, _) = results[1].as_ref().unwrap();
        let (replayed, _) = results[4].as_ref().unwrap();
        assert_eq!(first.id, replayed.id, "one order per idempotency key");
        let a = node.sku(SkuId::parse("A").unwrap()).await.unwrap();
        assert_eq!((a.available, a.reserved), (0, 2));
        drop(node);
        tokio::task::spawn_blocking(move || runtime.stop())
            .await
            .unwrap();
    });
}
