//! The sales report (`GET /v1/admin/report`), built from three readings
//! (pure: they come in, the report goes out):
//! - the shards' stock (`Node::stock`): total, available, reserved, sold.
//!   State of the shards, so it survives a restart (rebuilt from the log)
//!   and a failover (the standby applied the same records);
//! - the shards' tallies (`Node::sales`): orders reserved, confirmed,
//!   cancelled, expired unpaid, the first order and the sell-out, as
//!   decided on this node since it started;
//! - the order ledger (`OrderLedger`): attempts by outcome as this node's
//!   front ends answered them since it started.
//!
//! docs/CONSOLE.md lists which figure comes from where.

use std::collections::BTreeMap;
use std::fmt::Write;

use flashgate_actors::domain::{SkuId, SkuStock, Timestamp};
use flashgate_actors::sales::SkuSales;
use serde::Serialize;

use super::ledger::AttemptCounts;

/// How many SKUs `hottest` lists.
pub const HOTTEST_MAX: usize = 10;

/// One SKU's line of the report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SkuReport {
    pub sku: String,
    /// Units, from the shards' state (survive a restart and a failover).
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    /// Orders this node's front ends took for the SKU since it started.
    pub attempts: u64,
    /// Of which placed (a new reservation) and replayed (an idempotent retry).
    pub created: u64,
    pub replayed: u64,
    /// Refused, by the refusal's code (`sold_out`, `limit_exceeded`, …).
    pub refused: BTreeMap<String, u64>,
    pub refused_total: u64,
    /// Reservations decided on this node since it started, and how they
    /// ended: confirmed (paid), cancelled, expired unpaid.
    pub reserved_orders: u64,
    pub reserved_units: u64,
    pub confirmed: u64,
    pub cancelled: u64,
    pub expired_unpaid: u64,
    /// Confirmed ÷ reserved orders, in percent (absent before the first).
    pub conversion_percent: Option<f64>,
    /// RFC 3339, decided on this node.
    pub first_order_at: Option<String>,
    /// When the last unit was taken; absent while units are available.
    pub sold_out_at: Option<String>,
    /// Units reserved per minute, from the first order to the sell-out (or
    /// to now while units remain).
    pub units_per_minute: Option<f64>,
    /// Attempts per minute since this node saw the SKU's first attempt.
    pub attempts_per_minute: Option<f64>,
}

/// A SKU among the hottest.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Hot {
    pub sku: String,
    pub attempts_per_minute: f64,
}

/// `GET /v1/admin/report`.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub generated_at: String,
    /// When this node started: the figures "since start" count from here.
    pub node_started_at: String,
    /// `primary`, `standby` or `fenced`: a standby's reservations and
    /// attempts are those it decided while it was primary (none, usually).
    pub role: String,
    pub skus: Vec<SkuReport>,
    /// The SKUs with the most attempts per minute, hottest first (at most
    /// `HOTTEST_MAX`).
    pub hottest: Vec<Hot>,
    /// Attempts not counted per SKU because the ledger was full
    /// (`report_skus_max`).
    pub attempts_not_per_sku: u64,
}

fn per_minute(count: u64, from_ms: u64, to_ms: u64) -> f64 {
    // At least a second: a first minute is not a burst of thousands per minute.
    let minutes = to_ms.saturating_sub(from_ms).max(1_000) as f64 / 60_000.0;
    (count as f64 / minutes * 10.0).round() / 10.0
}

/// The report from its three readings; `now` and the node's start passed in.
pub fn build(
    stock: &[SkuStock],
    sales: &[(SkuId, SkuSales)],
    attempts: &[(String, AttemptCounts)],
    attempts_not_per_sku: u64,
    role: &str,
    started: Timestamp,
    now: Timestamp,
) -> Report {
    let mut skus: Vec<SkuReport> = stock
        .iter()
        .map(|sku| {
            let mut line = SkuReport {
                sku: sku.id.as_str().to_owned(),
                total: sku.total,
                available: sku.available,
                reserved: sku.reserved,
                sold: sku.sold,
                ..SkuReport::default()
            };
            if let Ok(index) = sales.binary_search_by(|(id, _)| id.cmp(&sku.id)) {
                let tally = &sales[index].1;
                line.reserved_orders = tally.reserved_orders;
                line.reserved_units = tally.reserved_units;
                line.confirmed = tally.confirmed_orders;
                line.cancelled = tally.cancelled_orders;
                line.expired_unpaid = tally.expired_orders;
                line.conversion_percent = (tally.reserved_orders > 0).then(|| {
                    (tally.confirmed_orders as f64 * 1000.0 / tally.reserved_orders as f64).round()
                        / 10.0
                });
                line.first_order_at = tally.first_order_at.map(|at| at.to_string());
                let sold_out_at = tally.sold_out_at.filter(|_| sku.available == 0);
                line.sold_out_at = sold_out_at.map(|at| at.to_string());
                line.units_per_minute = tally.first_order_at.map(|first| {
                    per_minute(tally.reserved_units, first.0, sold_out_at.unwrap_or(now).0)
                });
            }
            if let Ok(index) = attempts.binary_search_by(|(id, _)| id.as_str().cmp(sku.id.as_str()))
            {
                let counts = &attempts[index].1;
                line.attempts = counts.attempts;
                for (outcome, count) in &counts.by_outcome {
                    match *outcome {
                        "created" => line.created = *count,
                        "replayed" => line.replayed = *count,
                        code => {
                            line.refused.insert(code.to_owned(), *count);
                            line.refused_total += count;
                        }
                    }
                }
                line.attempts_per_minute =
                    Some(per_minute(counts.attempts, counts.first_attempt_ms, now.0));
            }
            line
        })
        .collect();
    skus.sort_by(|a, b| a.sku.cmp(&b.sku));
    let mut hottest: Vec<Hot> = skus
        .iter()
        .filter_map(|line| {
            line.attempts_per_minute.map(|rate| Hot {
                sku: line.sku.clone(),
                attempts_per_minute: rate,
            })
        })
        .collect();
    hottest.sort_by(|a, b| {
        b.attempts_per_minute
            .total_cmp(&a.attempts_per_minute)
            .then_with(|| a.sku.cmp(&b.sku))
    });
    hottest.truncate(HOTTEST_MAX);
    Report {
        generated_at: now.to_string(),
        node_started_at: started.to_string(),
        role: role.to_owned(),
        skus,
        hottest,
        attempts_not_per_sku,
    }
}

/// The report as CSV (RFC 4180): one row per SKU; one `refused_<code>`
/// column per refusal code any SKU has.
pub fn csv(report: &Report) -> String {
    let mut codes: Vec<&str> = report
        .skus
        .iter()
        .flat_map(|line| line.refused.keys().map(String::as_str))
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let mut out =
        String::from("sku,total,available,reserved,sold,attempts,created,replayed,refused_total");
    for code in &codes {
        let _ = write!(out, ",refused_{code}");
    }
    out.push_str(",reserved_orders,reserved_units,confirmed,cancelled,expired_unpaid,conversion_percent,first_order_at,sold_out_at,units_per_minute,attempts_per_minute\r\n");
    let optional = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    for line in &report.skus {
        // SKU ids are `A-Za-z0-9._-`: nothing to quote.
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            line.sku,
            line.total,
            line.available,
            line.reserved,
            line.sold,
            line.attempts,
            line.created,
            line.replayed,
            line.refused_total
        );
        for code in &codes {
            let _ = write!(out, ",{}", line.refused.get(*code).copied().unwrap_or(0));
        }
        let _ = write!(
            out,
            ",{},{},{},{},{},{},{},{},{},{}\r\n",
            line.reserved_orders,
            line.reserved_units,
            line.confirmed,
            line.cancelled,
            line.expired_unpaid,
            optional(line.conversion_percent),
            line.first_order_at.as_deref().unwrap_or(""),
            line.sold_out_at.as_deref().unwrap_or(""),
            optional(line.units_per_minute),
            optional(line.attempts_per_minute),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(id: &str, total: u64, available: u64, sold: u64) -> SkuStock {
        SkuStock {
            id: SkuId::parse(id).unwrap(),
            total,
            available,
            reserved: total - available - sold,
            sold,
            low_stock_threshold: 0,
        }
    }

    /// Every figure lands in its column: stock from the shards, the tally's
    /// orders and times, the ledger's attempts split into created, replayed
    /// and refused by code; conversion and rates; hottest first; the CSV
    /// has one row per SKU and a column per refusal code.
    #[test]
    fn joins_the_three_readings() {
        let minute = 60_000;
        let stock = vec![stock("A", 10, 0, 4), stock("B", 5, 5, 0)];
        let sales = vec![(
            SkuId::parse("A").unwrap(),
            SkuSales {
                reserved_orders: 10,
                reserved_units: 10,
                confirmed_orders: 4,
                cancelled_orders: 1,
                expired_orders: 0,
                first_order_at: Some(Timestamp(minute)),
                sold_out_at: Some(Timestamp(3 * minute)),
            },
        )];
        let attempts = vec![
            (
                "A".to_owned(),
                AttemptCounts {
                    first_attempt_ms: minute,
                    attempts: 40,
                    by_outcome: vec![("created", 10), ("replayed", 2), ("sold_out", 28)],
                },
            ),
            (
                "B".to_owned(),
                AttemptCounts {
                    first_attempt_ms: minute,
                    attempts: 4,
                    by_outcome: vec![("limit_exceeded", 4)],
                },
            ),
        ];
        let report = build(
            &stock,
            &sales,
            &attempts,
            0,
            "primary",
            Timestamp(0),
            Timestamp(5 * minute),
        );
        let a = &report.skus[0];
        assert_eq!((a.total, a.available, a.reserved, a.sold), (10, 0, 6, 4));
        assert_eq!((a.attempts, a.created, a.replayed), (40, 10, 2));
        assert_eq!(a.refused.get("sold_out"), Some(&28));
        assert_eq!(a.refused_total, 28);
        assert_eq!((a.confirmed, a.cancelled, a.expired_unpaid), (4, 1, 0));
        assert_eq!(a.conversion_percent, Some(40.0));
        assert_eq!(a.units_per_minute, Some(5.0));
        assert_eq!(a.attempts_per_minute, Some(10.0));
        assert_eq!(a.sold_out_at.as_deref(), Some("1970-01-01T00:03:00.000Z"));
        let b = &report.skus[1];
        assert_eq!(b.conversion_percent, None);
        assert_eq!(b.first_order_at, None);
        assert_eq!(b.attempts_per_minute, Some(1.0));
        assert_eq!(
            report
                .hottest
                .iter()
                .map(|h| h.sku.as_str())
                .collect::<Vec<_>>(),
            ["A", "B"]
        );
        let csv = csv(&report);
        let rows: Vec<&str> = csv.split("\r\n").collect();
        assert!(rows[0].starts_with("sku,total,available,reserved,sold,attempts,created,replayed,refused_total,refused_limit_exceeded,refused_sold_out,reserved_orders"));
        assert!(
            rows[1].starts_with("A,10,0,6,4,40,10,2,28,0,28,10,10,4,1,0,40,"),
            "{}",
            rows[1]
        );
        assert!(
            rows[2].starts_with("B,5,5,0,0,4,0,0,4,4,0,0,0,0,0,0,,"),
            "{}",
            rows[2]
        );
        assert_eq!(rows.len(), 4, "{csv}");
    }
}
