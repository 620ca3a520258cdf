//! The order core's work per reservation, counted in instructions: the load of
//! `cargo bench --bench core` (`core_reservations`), run once, so that
//! `valgrind --tool=callgrind --toggle-collect='*place_orders*'` counts the
//! measured loop alone. Unlike a wall-clock figure on a shared machine, the
//! count repeats run to run. `scripts/count-core.sh` runs every case.
//!
//! `cargo run --release --example core_instructions -- [fresh|warm] [skus] [rounds]`
//!
//! With `rounds` above 1 it also times that many rounds (a new shard each) and
//! prints the fastest and the median: on a machine shared with other work the
//! fastest round is the least disturbed one.

#[path = "../benches/common/core_load.rs"]
mod core_load;

use core_load::{orders, place_orders, shard_with, warm_shard_with, ORDERS};

fn main() {
    let mut args = std::env::args().skip(1);
    let warm = match args.next().as_deref() {
        None | Some("fresh") => false,
        Some("warm") => true,
        Some(other) => panic!("{other}: the first argument is fresh or warm"),
    };
    let skus: usize = args
        .next()
        .map_or(1, |a| a.parse().expect("skus: a number"));
    let rounds: usize = args
        .next()
        .map_or(1, |a| a.parse().expect("rounds: a number"));
    let skus = skus.max(1);
    let mut nanos_per_order = Vec::with_capacity(rounds);
    for _ in 0..rounds.max(1) {
        let mut core = if warm {
            warm_shard_with(skus, ORDERS)
        } else {
            shard_with(skus)
        };
        let commands = orders(skus);
        let started = std::time::Instant::now();
        place_orders(&mut core, commands);
        nanos_per_order.push(started.elapsed().as_nanos() as f64 / ORDERS as f64);
        assert_eq!(
            core.live_order_count() as u64,
            ORDERS,
            "every order reserved"
        );
    }
    nanos_per_order.sort_by(f64::total_cmp);
    let fastest = nanos_per_order[0];
    let median = nanos_per_order[nanos_per_order.len() / 2];
    let shard = if warm { "warm" } else { "fresh" };
    println!(
        "{ORDERS} reservations, {shard} shard, {skus} skus, {} rounds: fastest {fastest:.0} ns per reservation ({:.2} M/s), median {median:.0} ns ({:.2} M/s)",
        nanos_per_order.len(),
        1_000.0 / fastest,
        1_000.0 / median,
    );
}
