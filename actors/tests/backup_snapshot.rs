//! A backup snapshot taken while orders flow is the state at its LSN, no
//! more and no less: a data dir built from it (`DataDirWriter`) and rebuilt
//! by recovery holds the same SKUs and orders as the node's own log cut at
//! that LSN and replayed. The shards are serialised one after the other
//! while orders keep coming, so a snapshot that took each shard's state as
//! it was, without the log in between, would hold a mix of moments.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use flashgate_actors::backup::{rebuild, DataDirWriter, RestoredIdentity};
use flashgate_actors::domain::{CustomerId, PlaceOrder, PutSku, SkuId, SkuSettings};
use flashgate_actors::{Node, NodeConfig};
use flashgate_storage::{Storage, StorageConfig};

const SKUS: [&str; 4] = ["A", "B", "C", "D"];
/// Orders each task places at most.
const ORDERS_PER_TASK_MAX: usize = 20_000;
const TASKS: usize = 8;

/// Every order (by id, as its debug text) and every SKU's counters.
type State = (BTreeMap<String, String>, Vec<(String, u64, u64, u64, u64)>);

fn state_of(storage: &Storage) -> State {
    let mut orders = BTreeMap::new();
    let rebuilt = rebuild(storage, |order| {
        orders.insert(order.id.to_string(), format!("{order:?}"));
    })
    .expect("the data dir rebuilds");
    let skus = rebuilt
        .skus
        .iter()
        .map(|sku| {
            (
                sku.id.as_str().to_owned(),
                sku.total,
                sku.available,
                sku.reserved,
                sku.sold,
            )
        })
        .collect();
    (orders, skus)
}

#[test]
fn a_snapshot_taken_under_load_is_the_state_at_its_lsn() {
    let node_dir = tempfile::tempdir().unwrap();
    let (snapshot, archived) = actix::System::new().block_on(async {
        let storage = Storage::open(node_dir.path(), StorageConfig::default()).unwrap();
        let config = NodeConfig {
            shards: 4,
            ..NodeConfig::default()
        };
        let (node, runtime, _) = Node::start(storage, config).unwrap();
        for sku in SKUS {
            node.put_sku(PutSku {
                sku: SkuId::parse(sku).unwrap(),
                stock: Some(10_000_000),
                settings: SkuSettings::default(),
            })
            .await
            .unwrap();
        }
        let stop = Rc::new(AtomicBool::new(false));
        let placed = Rc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let node = node.clone();
                let stop = Rc::clone(&stop);
                let placed = Rc::clone(&placed);
                actix::spawn(async move {
                    for i in 0..ORDERS_PER_TASK_MAX {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        let (order, _) = node
                            .place_order(PlaceOrder {
                                sku: SkuId::parse(SKUS[(task + i) % SKUS.len()]).unwrap(),
                                quantity: 1,
                                customer: CustomerId::parse(&format!("c-{task}-{i}")).unwrap(),
                                idempotency_key: None,
                            })
                            .await
                            .unwrap();
                        if i % 2 == 0 {
                            node.confirm(order.id, None).await.unwrap();
                        }
                        placed.fetch_add(1, Ordering::AcqRel);
                    }
                })
            })
            .collect();
        while placed.load(Ordering::Acquire) < 2_000 {
            actix::clock::sleep(std::time::Duration::from_millis(1)).await;
        }
        let before = node.progress().durable_lsn();
        let snapshot = node.backup_snapshot().await.unwrap();
        let during = placed.load(Ordering::Acquire);
        // Orders go on after the snapshot: none of them may be in it.
        while placed.load(Ordering::Acquire) < during + 500 {
            actix::clock::sleep(std::time::Duration::from_millis(1)).await;
        }
        stop.store(true, Ordering::Release);
        for task in tasks {
            task.await.unwrap();
        }
        assert!(
            snapshot.identity.lsn > before,
            "orders flowed while the shards were serialised"
        );
        let archived = node.storage().archive_page(None).unwrap();
        drop(node);
        runtime.stop();
        (snapshot, archived)
    });

    let restored_dir = tempfile::tempdir().unwrap();
    let restored = Storage::open(restored_dir.path(), StorageConfig::default()).unwrap();
    let mut writer = DataDirWriter::begin(
        &restored,
        snapshot.identity.clone(),
        RestoredIdentity::NewCluster,
    )
    .unwrap();
    writer.checkpoint(&snapshot.chunks).unwrap();
    for (_, value) in archived {
        writer.archived(value).unwrap();
    }
    for entry in &snapshot.log {
        writer.log_entry(entry.first_lsn, &entry.bytes).unwrap();
    }
    writer.finish().unwrap();

    let original = Storage::open(node_dir.path(), StorageConfig::default()).unwrap();
    assert!(original.last_lsn().unwrap() > Some(snapshot.identity.lsn));
    original.truncate_after(snapshot.identity.lsn).unwrap();
    let (orders, skus) = state_of(&original);
    let (backed_up_orders, backed_up_skus) = state_of(&restored);
    assert_eq!(backed_up_skus, skus);
    assert_eq!(backed_up_orders.len(), orders.len());
    assert!(backed_up_orders == orders, "the orders differ");
}
