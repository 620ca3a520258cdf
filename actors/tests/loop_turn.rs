//! Requests made on one event-loop thread during one turn of its loop reach
//! each shard as one mailbox message, and their answers come back through the
//! thread's inbox: each request still gets its own outcome, stock is never
//! oversold, and a caller off any event loop is served as before. This is
//! what lets an HTTP worker's orders share the shard's wake-ups.

use flashgate_actors::domain::{
    CustomerId, IdempotencyKey, Order, PlaceOrder, PutSku, SkuId, SkuSettings,
};
use flashgate_actors::{Node, NodeConfig, NodeError};
use flashgate_storage::{Storage, StorageConfig};
use futures_util::future::join_all;

fn order(sku: &str, customer: &str, key: Option<&str>) -> PlaceOrder {
    PlaceOrder {
        sku: SkuId::parse(sku).unwrap(),
        quantity: 1,
        customer: CustomerId::parse(customer).unwrap(),
        idempotency_key: key.map(|key| IdempotencyKey::parse(key).unwrap()),
    }
}

fn created(result: &Result<(Order, bool), NodeError>) -> bool {
    matches!(result, Ok((_, true)))
}

async fn put_sku(node: &Node, sku: &str, stock: u64) {
    node.put_sku(PutSku {
        sku: SkuId::parse(sku).unwrap(),
        stock: Some(stock),
        settings: SkuSettings::default(),
    })
    .await
    .unwrap();
}

/// A node of two shards with a scarce SKU (`scarce_stock` units) and an ample
/// one (1,000 units) on different shards; returns the node, its runtime and
/// the ample SKU's id ("SCARCE" is the scarce one's).
async fn two_shards(
    dir: &std::path::Path,
    scarce_stock: u64,
) -> (std::sync::Arc<Node>, flashgate_actors::NodeRuntime, String) {
    let storage = Storage::open(dir, StorageConfig::default()).unwrap();
    let config = NodeConfig {
        shards: 2,
        ..NodeConfig::default()
    };
    let (node, runtime, _) = Node::start(storage, config).unwrap();
    let scarce_shard = node.shard_of(&SkuId::parse("SCARCE").unwrap());
    let ample = (0..)
        .map(|i| format!("AMPLE-{i}"))
        .find(|sku| node.shard_of(&SkuId::parse(sku).unwrap()) != scarce_shard)
        .unwrap();
    put_sku(&node, "SCARCE", scarce_stock).await;
    put_sku(&node, &ample, 1_000).await;
    (node, runtime, ample)
}

#[test]
fn one_turns_requests_travel_as_one_message_per_shard_with_their_own_answers() {
    let dir = tempfile::tempdir().unwrap();
    actix::System::new().block_on(async move {
        // Two SKUs on different shards: scarce and ample.
        let (node, runtime, ample) = two_shards(dir.path(), 100).await;
        let scarce = "SCARCE";
        let ample = ample.as_str();
        let before = node.shard_traffic();

        // 300 orders made in one poll of one task: one loop turn.
        let mut orders: Vec<PlaceOrder> = (0..150)
            .map(|i| order(scarce, &format!("s{i}"), None))
            .collect();
        orders.extend((0..148).map(|i| order(ample, &format!("a{i}"), None)));
        orders.push(order(ample, "keyed", Some("k-1")));
        orders.push(order(ample, "keyed", Some("k-1")));
        let results = join_all(orders.into_iter().map(|order| node.place_order(order))).await;

        let scarce_created = results[..150].iter().filter(|r| created(r)).count();
        assert_eq!(scarce_created, 100, "exactly the stock is sold");
        for result in &results[..150] {
            match result {
                Ok((order, true)) => assert_eq!(order.sku.as_str(), scarce),
                Err(NodeError::Rejected(error)) => {
                    assert!(format!("{error:?}").starts_with("SoldOut"), "{error:?}")
                }
                other => panic!("a scarce order answered {other:?}"),
            }
        }
        assert!(results[150..298].iter().all(created), "ample stock");
        let customers: std::collections::HashSet<_> = results[150..298]
            .iter()
            .map(|result| result.as_ref().unwrap().0.customer.as_str().to_owned())
            .collect();
        assert_eq!(customers.len(), 148, "each caller got its own order");
        let (first, replay) = (&results[298], &results[299]);
        let ids = [first, replay].map(|r| r.as_ref().map(|(order, _)| order.id).ok());
        assert!(
            ids[0].is_some() && ids[0] == ids[1],
            "one order per key: {ids:?}"
        );
        assert_eq!([first, replay].iter().filter(|r| created(r)).count(), 1);

        let after = node.shard_traffic();
        for (shard, ((m0, r0), (m1, r1))) in before.iter().zip(&after).enumerate() {
            assert_eq!(
                (m1 - m0, r1 - r0),
                (1, 150),
                "shard {shard}: one message carrying the turn's 150 requests"
            );
        }
        let sku = node.sku(SkuId::parse(scarce).unwrap()).await.unwrap();
        assert_eq!((sku.available, sku.reserved), (0, 100));

        // A caller on a thread with no event loop of the node's kind (a
        // runtime whose threads did not mark themselves) is served one
        // request per message.
        let remote = std::sync::Arc::clone(&node);
        let remote_sku = ample.to_owned();
        let answers = std::thread::spawn(move || {
            let ample = remote_sku.as_str();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(join_all((0..10).map(|i| {
                    remote.place_order(order(ample, &format!("r{i}"), None))
                })))
        })
        .join()
        .unwrap();
        assert!(answers.iter().all(created));
        let shard = node.shard_of(&SkuId::parse(ample).unwrap()) as usize;
        let (m2, r2) = node.shard_traffic()[shard];
        assert_eq!((m2 - after[shard].0, r2 - after[shard].1), (10, 10));

        drop(node);
        tokio::task::spawn_blocking(move || runtime.stop())
            .await
            .unwrap();
    });
}

/// The QUIC front end serves each request as a task of its own on a
/// multi-threaded tokio runtime whose threads mark themselves: the orders that
/// such tasks make while ready together on a worker reach each shard in far
/// fewer messages than orders, and each still gets its own answer, with the
/// stock never oversold. Without the mark (any other runtime) each order is a
/// message of its own, as the first test shows.
#[test]
fn orders_of_a_marked_tokio_workers_ready_tasks_share_messages() {
    let dir = tempfile::tempdir().unwrap();
    actix::System::new().block_on(async move {
        let (node, runtime, ample) = two_shards(dir.path(), 10).await;
        let scarce = "SCARCE";
        let before = node.shard_traffic();

        const PER_SKU: usize = 25;
        let remote = std::sync::Arc::clone(&node);
        let remote_ample = ample.clone();
        let results = std::thread::spawn(move || {
            let quic_like = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .on_thread_start(flashgate_actors::outbox::mark_event_loop_thread)
                .enable_all()
                .build()
                .unwrap();
            quic_like.block_on(async move {
                // Spawned from a worker, as a stream's reader spawns its
                // requests: all of them are ready on that worker together.
                let spawner = tokio::spawn(async move {
                    let mut tasks = Vec::new();
                    for i in 0..PER_SKU {
                        for sku in [scarce.to_owned(), remote_ample.clone()] {
                            let node = std::sync::Arc::clone(&remote);
                            tasks.push(tokio::spawn(async move {
                                let result = node
                                    .place_order(order(&sku, &format!("{sku}-{i}"), None))
                                    .await;
                                (sku, result)
                            }));
                        }
                    }
                    join_all(tasks).await
                });
                spawner.await.unwrap()
            })
        })
        .join()
        .unwrap();

        let mut created_per_sku = std::collections::HashMap::new();
        for result in results {
            let (sku, result) = result.unwrap();
            match &result {
                Ok((order, true)) => {
                    assert_eq!(order.sku.as_str(), sku, "each caller got its own order");
                    *created_per_sku.entry(sku).or_insert(0) += 1;
                }
                Err(NodeError::Rejected(error)) if sku == scarce => {
                    assert!(format!("{error:?}").starts_with("SoldOut"), "{error:?}")
                }
                other => panic!("an order for {sku} answered {other:?}"),
            }
        }
        assert_eq!(created_per_sku[scarce], 10, "exactly the stock is sold");
        assert_eq!(created_per_sku[&ample], PER_SKU);
        let after = node.shard_traffic();
        for (shard, ((m0, r0), (m1, r1))) in before.iter().zip(&after).enumerate() {
            let (messages, requests) = (m1 - m0, r1 - r0);
            assert_eq!(requests, PER_SKU as u64, "shard {shard}");
            assert!(
                messages * 4 <= requests,
                "shard {shard}: {requests} requests came in {messages} messages"
            );
        }

        drop(node);
        tokio::task::spawn_blocking(move || runtime.stop())
            .await
            .unwrap();
    });
}
