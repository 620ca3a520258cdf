//! What the benches that need a running node share.

use std::path::Path;
use std::sync::Arc;

use actix_web::rt::SystemRunner;
use flashgate_actors::domain::{PutSku, SkuId, SkuSettings, STOCK_MAX};
use flashgate_actors::{Node, NodeConfig, NodeRuntime};
use flashgate_storage::{Storage, StorageConfig};

/// Keeps a group's run short: a whole `cargo bench` takes minutes on 2 cores.
pub fn configure_group(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
) {
    group.sample_size(20);
    group.warm_up_time(std::time::Duration::from_millis(500));
    group.measurement_time(std::time::Duration::from_secs(3));
}

/// SKUs `BENCH-0` .. `BENCH-<SKUS - 1>`, each with stock that never runs out.
pub const SKUS: usize = 8;

pub fn sku_id(n: usize) -> SkuId {
    SkuId::parse(&format!("BENCH-{}", n % SKUS)).expect("a valid SKU id")
}

/// Starts a node with default settings on `data_dir`, inside `system`, and
/// creates the bench SKUs.
pub fn start_node(system: &SystemRunner, data_dir: &Path) -> (Arc<Node>, NodeRuntime) {
    let storage = Storage::open(data_dir, StorageConfig::default()).expect("open storage");
    system.block_on(async {
        let (node, runtime, _report) =
            Node::start(storage, NodeConfig::default()).expect("start the node");
        for n in 0..SKUS {
            node.put_sku(PutSku {
                sku: sku_id(n),
                stock: Some(STOCK_MAX),
                settings: SkuSettings::default(),
            })
            .await
            .expect("create a SKU");
        }
        (node, runtime)
    })
}
