//! Recovery of a data dir written through the real storage: a checkpoint plus
//! a log tail of several shards, rebuilt side by side, must equal the state
//! the shards had, and a damaged log must be refused at the record a replay
//! in LSN order would have stopped at.

use flashgate_actors::codec::{encode_log_entry, LogEntry};
use flashgate_actors::domain::*;
use flashgate_actors::recovery::{recover, verify, RecoveryError};
use flashgate_actors::shard_actor::snapshot_chunks;
use flashgate_storage::{Append, Completion, LogWriter, Lsn, Storage, StorageConfig, StorageError};

const SHARDS: u32 = 3;

fn configs() -> Vec<ShardConfig> {
    (0..SHARDS)
        .map(|shard| ShardConfig {
            shard,
            epoch: 1,
            orders_max: 1_000_000,
            expiry_batch_max: 64,
            retention: Retention::default(),
        })
        .collect()
}

struct Ignore;

impl Completion<()> for Ignore {
    fn durable(&mut self, tickets: &mut Vec<()>, _last_lsn: Lsn) {
        tickets.clear();
    }

    fn failed(&mut self, error: &StorageError, _tickets: &mut Vec<()>) {
        panic!("the log failed: {error}");
    }
}

/// Appends `bodies` after `last_lsn` and waits until they are durable.
fn append(storage: &Storage, last_lsn: Lsn, bodies: Vec<Vec<u8>>) {
    let writer = LogWriter::start(storage.clone(), Default::default(), 1, last_lsn, Ignore);
    let sender = writer.sender();
    for body in bodies {
        let append = Append {
            body: Some(body),
            ticket: (),
        };
        assert!(sender.append(append).is_ok());
    }
    drop(sender);
    writer.join();
}

/// Live shards and the log entries their commands produced, in order: SKUs,
/// orders (some with idempotency keys), confirmations and cancellations.
fn history(orders: u64) -> (Vec<ShardCore>, Vec<LogEntry>) {
    let mut cores: Vec<ShardCore> = configs().into_iter().map(ShardCore::new).collect();
    let mut seqs = vec![0u64; SHARDS as usize];
    let mut entries = Vec::new();
    let now = Timestamp(1_000_000);
    let skus: Vec<SkuId> = (0..7)
        .map(|index| SkuId::parse(&format!("SKU-{index}")).unwrap())
        .collect();
    let shard_of = |sku: &SkuId| (sku.stable_hash() % u64::from(SHARDS)) as usize;
    let mut run = |command: Command, shard: usize, entries: &mut Vec<LogEntry>| {
        let execution = cores[shard].execute(command, now);
        let reply = execution.reply.expect("the command succeeds");
        for event in execution.events {
            seqs[shard] += 1;
            entries.push(LogEntry {
                shard: shard as u32,
                seq: seqs[shard],
                event,
            });
        }
        reply
    };
    for sku in &skus {
        let put = Command::PutSku(PutSku {
            sku: sku.clone(),
            stock: Some(1_000_000),
            settings: SkuSettings::default(),
        });
        run(put, shard_of(sku), &mut entries);
    }
    for number in 0..orders {
        let sku = &skus[number as usize % skus.len()];
        let place = Command::PlaceOrder(PlaceOrder {
            sku: sku.clone(),
            quantity: 1 + (number % 3) as u32,
            customer: CustomerId::parse(&format!("customer-{}", number % 500)).unwrap(),
            idempotency_key: (number % 4 == 0)
                .then(|| IdempotencyKey::parse(&format!("key-{number}")).unwrap()),
        });
        let Reply::Order { order, .. } = run(place, shard_of(sku), &mut entries) else {
            panic!("an order is answered with the order");
        };
        let next = match number % 5 {
            0 => Some(Command::Confirm(Confirm {
                id: order.id,
                customer: None,
            })),
            1 => Some(Command::Cancel(Cancel {
                id: order.id,
                customer: None,
            })),
            _ => None,
        };
        if let Some(command) = next {
            run(command, shard_of(sku), &mut entries);
        }
    }
    (cores, entries)
}

/// What must survive a restart: every order, every SKU's counters, the kept
/// keys and settled units, the next order number.
fn state(core: &ShardCore) -> (Vec<Order>, Vec<SkuImage>, RetainedImage, u64) {
    let mut orders: Vec<Order> = core.orders().cloned().collect();
    orders.sort_by_key(|order| order.id);
    (
        orders,
        core.sku_images(),
        core.retained_image(),
        core.next_order_number(),
    )
}

/// Writes the first `checkpointed` entries as a checkpoint (their records
/// trimmed, as after one) and the rest as the log after it.
fn data_dir(entries: &[LogEntry], checkpointed: usize) -> (tempfile::TempDir, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), StorageConfig::default()).unwrap();
    let mut at_checkpoint: Vec<ShardCore> = configs().into_iter().map(ShardCore::new).collect();
    let mut seqs = vec![0u64; SHARDS as usize];
    for entry in &entries[..checkpointed] {
        at_checkpoint[entry.shard as usize]
            .apply(&entry.event)
            .unwrap();
        seqs[entry.shard as usize] = entry.seq;
    }
    if checkpointed > 0 {
        let chunks: Vec<Vec<u8>> = at_checkpoint
            .iter()
            .zip(&seqs)
            .flat_map(|(core, seq)| snapshot_chunks(core, *seq))
            .collect();
        storage
            .write_checkpoint(checkpointed as Lsn, &chunks)
            .unwrap();
    }
    let bodies = entries[checkpointed..]
        .iter()
        .map(encode_log_entry)
        .collect();
    append(&storage, checkpointed as Lsn, bodies);
    (dir, storage)
}

/// A checkpoint of three shards plus a log tail that interleaves them (more
/// records than one replay batch) rebuilds every shard exactly, and the
/// verification passes: the parallel decode, restore and replay lose,
/// reorder and double nothing.
#[test]
fn a_checkpoint_and_a_log_tail_of_several_shards_rebuild_the_live_state() {
    let (live, entries) = history(12_000);
    for checkpointed in [0, entries.len() / 2, entries.len()] {
        let (_dir, storage) = data_dir(&entries, checkpointed);
        let recovered = recover(&storage, configs()).unwrap();
        verify(&recovered.cores);
        assert_eq!(recovered.last_lsn, entries.len() as Lsn);
        assert_eq!(
            recovered.replayed_records,
            (entries.len() - checkpointed) as u64
        );
        for (shard, (core, live)) in recovered.cores.iter().zip(&live).enumerate() {
            assert!(state(core) == state(live), "shard {shard} differs");
            let last_seq = entries
                .iter()
                .filter(|entry| entry.shard == shard as u32)
                .map(|entry| entry.seq)
                .max()
                .unwrap_or(0);
            assert_eq!(recovered.seqs[shard], last_seq);
        }
    }
}

/// Two shards whose logs break at different LSNs: recovery refuses the data
/// dir naming the lower LSN, the record a replay in LSN order stops at,
/// whichever shard's thread meets its damage first.
#[test]
fn of_two_broken_shards_the_error_names_the_lower_lsn() {
    let (_, entries) = history(3_000);
    let by_shard = |shard: u32| -> Vec<usize> {
        (0..entries.len())
            .filter(|&index| entries[index].shard == shard)
            .collect()
    };
    // Drop one event of one shard early in the log and one of the other
    // late: each leaves a gap in its shard's sequence.
    for (early_shard, late_shard) in [(1, 0), (0, 1)] {
        let early_events = by_shard(early_shard);
        let late_events = by_shard(late_shard);
        let early = early_events[early_events.len() / 4];
        let late = late_events[late_events.len() * 3 / 4];
        let mut broken = entries.clone();
        broken.remove(late);
        broken.remove(early);
        let (_dir, storage) = data_dir(&broken, 0);
        let error = recover(&storage, configs())
            .err()
            .expect("a gap is refused");
        // The early shard's next event, one place earlier than it was.
        let expected = early_events[early_events.len() / 4 + 1] as Lsn;
        match error {
            RecoveryError::Inconsistent { lsn, reason } => {
                assert_eq!(lsn, expected, "{reason}");
                let jumps = format!("shard {early_shard} jumps");
                assert!(reason.contains(&jumps), "{reason}");
            }
            other => panic!("expected a gap, got {other}"),
        }
    }
}

/// A record naming a shard this node does not have is refused with its LSN.
#[test]
fn a_record_of_an_unknown_shard_is_refused() {
    let (_, mut entries) = history(100);
    let index = entries.len() / 2;
    entries[index].shard = SHARDS + 4;
    let (_dir, storage) = data_dir(&entries, 0);
    match recover(&storage, configs()).err().expect("refused") {
        RecoveryError::Inconsistent { lsn, reason } => {
            assert_eq!(lsn, index as Lsn + 1);
            assert!(reason.contains("names shard 7 of only 3"), "{reason}");
        }
        other => panic!("expected an unknown shard, got {other}"),
    }
}
