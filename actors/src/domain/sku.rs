//! A SKU's settings and its stock counters.

use bincode::{Decode, Encode};

use super::types::{CustomerId, IdMap, SkuId, Timestamp};

/// Default number of seconds a reservation holds stock before it expires.
pub const RESERVATION_TTL_SECS_DEFAULT: u32 = 600;
/// Default largest quantity of one order.
pub const MAX_QUANTITY_PER_ORDER_DEFAULT: u32 = 10;
/// Largest settable reservation TTL (one week).
pub const RESERVATION_TTL_SECS_MAX: u32 = 7 * 24 * 3600;
/// Largest quantity one order may ever ask for, whatever the SKU allows.
pub const QUANTITY_PER_ORDER_MAX: u32 = 1_000_000;
/// Largest stock of one SKU: far below u64::MAX so sums of counters never overflow.
pub const STOCK_MAX: u64 = 1 << 48;

/// What an administrator sets on a SKU; everything but the stock can change later.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SkuSettings {
    /// Most units one customer may hold (reserved + confirmed) of this SKU.
    pub per_customer_limit: Option<u64>,
    pub max_quantity_per_order: u32,
    /// Orders before this instant are refused with `sale_not_open`.
    pub sale_starts_at: Option<Timestamp>,
    pub reservation_ttl_secs: u32,
    /// When available stock falls to or below this, the SKU reports `low_stock`.
    pub low_stock_threshold: u64,
}

impl Default for SkuSettings {
    fn default() -> SkuSettings {
        SkuSettings {
            per_customer_limit: None,
            max_quantity_per_order: MAX_QUANTITY_PER_ORDER_DEFAULT,
            sale_starts_at: None,
            reservation_ttl_secs: RESERVATION_TTL_SECS_DEFAULT,
            low_stock_threshold: 0,
        }
    }
}

/// The settings a request gave, each absent one `None`: what both front ends
/// read before `SkuSettings::with_defaults` fills the gaps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestedSettings {
    pub per_customer_limit: Option<u64>,
    pub max_quantity_per_order: Option<u32>,
    pub sale_starts_at: Option<Timestamp>,
    pub reservation_ttl_secs: Option<u32>,
    pub low_stock_threshold: Option<u64>,
}

impl SkuSettings {
    /// The settings a request gave, an absent one at its default (no
    /// per-customer limit, `MAX_QUANTITY_PER_ORDER_DEFAULT`, open now,
    /// `RESERVATION_TTL_SECS_DEFAULT`, threshold 0). An update sends every
    /// setting it wants kept: an absent one goes back to its default. Not
    /// checked here: `PutSku::parse` checks them with the rest.
    pub fn with_defaults(requested: RequestedSettings) -> SkuSettings {
        let defaults = SkuSettings::default();
        SkuSettings {
            per_customer_limit: requested.per_customer_limit,
            max_quantity_per_order: requested
                .max_quantity_per_order
                .unwrap_or(defaults.max_quantity_per_order),
            sale_starts_at: requested.sale_starts_at,
            reservation_ttl_secs: requested
                .reservation_ttl_secs
                .unwrap_or(defaults.reservation_ttl_secs),
            low_stock_threshold: requested
                .low_stock_threshold
                .unwrap_or(defaults.low_stock_threshold),
        }
    }
}

/// A SKU's stock counters and its low-stock threshold, without the
/// per-customer holdings: what a node's monitor reads of every SKU each
/// time it evaluates its alert rules (cheap to copy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkuStock {
    pub id: SkuId,
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    pub low_stock_threshold: u64,
}

/// A SKU and its counters. Invariant: `available + reserved + sold == total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sku {
    pub id: SkuId,
    pub total: u64,
    pub available: u64,
    pub reserved: u64,
    pub sold: u64,
    pub settings: SkuSettings,
    /// Units each customer holds (reserved + confirmed, settled included);
    /// entries at zero are removed. Kept only while the SKU has a
    /// per-customer limit, the one rule that reads it (`counts_holders`);
    /// empty otherwise.
    pub held_by_customer: IdMap<CustomerId, u64>,
}

impl Sku {
    pub fn new(id: SkuId, stock: u64, settings: SkuSettings) -> Sku {
        Sku {
            id,
            total: stock,
            available: stock,
            reserved: 0,
            sold: 0,
            settings,
            held_by_customer: IdMap::default(),
        }
    }

    /// Whether the SKU keeps `held_by_customer`: a per-customer limit is
    /// the only rule that reads it, so a SKU without one spends no table
    /// entry per buyer. A limit set later has the shard count its holders
    /// then (`ShardCore::apply`, `SkuSettingsChanged`).
    #[inline]
    pub fn counts_holders(&self) -> bool {
        self.settings.per_customer_limit.is_some()
    }

    /// Units `customer` holds; only kept (and only asked) with a limit.
    pub fn held_by(&self, customer: &CustomerId) -> u64 {
        self.held_by_customer.get(customer).copied().unwrap_or(0)
    }

    /// The SKU's counters and threshold, without its holdings.
    pub fn stock(&self) -> SkuStock {
        SkuStock {
            id: self.id.clone(),
            total: self.total,
            available: self.available,
            reserved: self.reserved,
            sold: self.sold,
            low_stock_threshold: self.settings.low_stock_threshold,
        }
    }

    pub fn is_low_stock(&self) -> bool {
        self.available <= self.settings.low_stock_threshold
    }

    /// An order of `customer` takes `quantity` available units (the caller
    /// checked they are), as sold units when `sold` (paid for), else as
    /// reserved ones.
    pub(crate) fn take(&mut self, customer: &CustomerId, quantity: u64, sold: bool) {
        self.available -= quantity;
        if sold {
            self.sold += quantity;
        } else {
            self.reserved += quantity;
        }
        self.hold(customer, quantity);
        self.assert_invariants();
    }

    /// An order of `customer` gives back the `quantity` units it took (sold
    /// ones when `sold`): they are available again.
    pub(crate) fn give_back(&mut self, customer: &CustomerId, quantity: u64, sold: bool) {
        if sold {
            self.sold -= quantity;
        } else {
            self.reserved -= quantity;
        }
        self.available += quantity;
        self.release(customer, quantity);
        self.assert_invariants();
    }

    pub(crate) fn hold(&mut self, customer: &CustomerId, quantity: u64) {
        if !self.counts_holders() {
            return;
        }
        *self.held_by_customer.entry(customer.clone()).or_insert(0) += quantity;
    }

    pub(crate) fn release(&mut self, customer: &CustomerId, quantity: u64) {
        if !self.counts_holders() {
            return;
        }
        let held = self
            .held_by_customer
            .get_mut(customer)
            .expect("a customer releases only units it holds");
        assert!(*held >= quantity, "customer releases more than it holds");
        *held -= quantity;
        if *held == 0 {
            self.held_by_customer.remove(customer);
        }
    }

    /// Panics if the counters disagree: that would mean oversell or lost stock,
    /// and no reply may leave a shard in that state.
    pub fn assert_invariants(&self) {
        let counted = self
            .available
            .checked_add(self.reserved)
            .and_then(|sum| sum.checked_add(self.sold));
        assert_eq!(
            counted,
            Some(self.total),
            "sku {}: available {} + reserved {} + sold {} != total {}",
            self.id,
            self.available,
            self.reserved,
            self.sold,
            self.total
        );
    }
}
