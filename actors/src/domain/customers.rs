//! Each customer's orders in a shard's memory, newest first: what
//! `GET /v1/customers/{customer_id}/orders` reads without scanning the
//! shard's whole order table.
//!
//! An order enters the index when it is reserved (or restored from a
//! checkpoint) and leaves it when it leaves memory (`OrdersRetired`); the
//! archive's own index (`crate::customer_archive`) takes over from there. A
//! listing reads the index from a cursor, so a page costs a binary search and
//! the page's length, whatever the customer's order count.

use std::collections::hash_map::Entry;

use super::order::Order;
use super::types::{CustomerId, IdMap, OrderId, Timestamp};

/// Where an order sits in a customer's listing: newest first means the
/// greatest `(created_at, id)` first. A cursor is the position of the last
/// order a page returned; the next page holds the orders strictly before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListingPosition {
    pub created_at: Timestamp,
    pub id: OrderId,
}

impl ListingPosition {
    pub fn of(order: &Order) -> ListingPosition {
        ListingPosition {
            created_at: order.created_at,
            id: order.id,
        }
    }
}

/// One customer's positions, sorted oldest first.
#[derive(Debug)]
enum Positions {
    /// Most customers of a sale hold one order: it costs no allocation.
    One(ListingPosition),
    Many(Vec<ListingPosition>),
}

impl Positions {
    fn as_slice(&self) -> &[ListingPosition] {
        match self {
            Positions::One(position) => std::slice::from_ref(position),
            Positions::Many(positions) => positions,
        }
    }

    fn insert(&mut self, position: ListingPosition) {
        match self {
            Positions::One(first) => {
                let first = *first;
                assert_ne!(first, position, "an order enters the customer index once");
                let mut positions = Vec::with_capacity(4);
                positions.push(first.min(position));
                positions.push(first.max(position));
                *self = Positions::Many(positions);
            }
            Positions::Many(positions) => match positions.last() {
                Some(last) if *last >= position => {
                    let at = positions
                        .binary_search(&position)
                        .expect_err("an order enters the customer index once");
                    positions.insert(at, position);
                }
                _ => positions.push(position),
            },
        }
    }

    /// Removes `position`: `None` if it is not there, else whether none is left.
    fn remove(&mut self, position: ListingPosition) -> Option<bool> {
        match self {
            Positions::One(only) => (*only == position).then_some(true),
            Positions::Many(positions) => {
                let at = positions.binary_search(&position).ok()?;
                positions.remove(at);
                match positions.as_slice() {
                    [] => return Some(true),
                    [only] => *self = Positions::One(*only),
                    _ if positions.capacity() > 4 * positions.len().max(4) => {
                        positions.shrink_to_fit()
                    }
                    _ => {}
                }
                Some(false)
            }
        }
    }
}

/// Per customer, the positions of its orders in memory, sorted oldest first
/// (a new order is almost always the newest, so it is a push).
#[derive(Debug, Default)]
pub struct CustomerOrders {
    by_customer: IdMap<CustomerId, Positions>,
}

impl CustomerOrders {
    /// Adds an order. Adding one already present is a bug of the caller (an
    /// order enters memory once).
    pub fn insert(&mut self, order: &Order) {
        let position = ListingPosition::of(order);
        match self.by_customer.entry(order.customer.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(Positions::One(position));
            }
            Entry::Occupied(mut slot) => slot.get_mut().insert(position),
        }
    }

    /// Removes an order; returns whether it was there.
    pub fn remove(&mut self, order: &Order) -> bool {
        let Some(positions) = self.by_customer.get_mut(&order.customer) else {
            return false;
        };
        match positions.remove(ListingPosition::of(order)) {
            None => false,
            Some(empty) => {
                if empty {
                    self.by_customer.remove(&order.customer);
                }
                true
            }
        }
    }

    /// Up to `limit` of the customer's positions strictly before `before`
    /// (all when `None`), newest first.
    pub fn newest_before(
        &self,
        customer: &CustomerId,
        before: Option<ListingPosition>,
        limit: usize,
    ) -> Vec<ListingPosition> {
        let Some(positions) = self.by_customer.get(customer) else {
            return Vec::new();
        };
        let positions = positions.as_slice();
        let end = match before {
            Some(before) => positions.partition_point(|position| *position < before),
            None => positions.len(),
        };
        positions[..end].iter().rev().take(limit).copied().collect()
    }

    /// Orders indexed, over all customers (for consistency checks).
    pub fn len(&self) -> usize {
        self.by_customer
            .values()
            .map(|positions| positions.as_slice().len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_customer.is_empty()
    }

    /// Every indexed customer with its positions, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (&CustomerId, &[ListingPosition])> {
        self.by_customer
            .iter()
            .map(|(customer, positions)| (customer, positions.as_slice()))
    }

    /// Starts indexing many orders at once (a checkpoint's), room made for
    /// `orders` more customers: one sort per customer with several orders at
    /// the end (`Bulk::finish`) instead of a sorted insert per order.
    pub fn bulk(&mut self, orders: usize) -> Bulk<'_> {
        self.by_customer.reserve(orders);
        Bulk {
            index: self,
            unsorted: Vec::new(),
        }
    }
}

/// An index being built from many orders; see `CustomerOrders::bulk`.
pub struct Bulk<'a> {
    index: &'a mut CustomerOrders,
    /// Customers that got a second order: their positions need a sort.
    unsorted: Vec<CustomerId>,
}

impl Bulk<'_> {
    pub fn add(&mut self, order: &Order) {
        let position = ListingPosition::of(order);
        match self.index.by_customer.entry(order.customer.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(Positions::One(position));
            }
            Entry::Occupied(mut slot) => {
                let positions = slot.get_mut();
                if let Positions::One(first) = *positions {
                    *positions = Positions::Many(vec![first]);
                    self.unsorted.push(order.customer.clone());
                }
                if let Positions::Many(positions) = positions {
                    positions.push(position);
                }
            }
        }
    }

    /// Sorts the positions of every customer that got more than one.
    pub fn finish(self) {
        for customer in self.unsorted {
            if let Some(Positions::Many(positions)) = self.index.by_customer.get_mut(&customer) {
                positions.sort_unstable();
                positions.dedup();
            }
        }
    }
}

/// One page of a customer's listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListingPage {
    /// Newest first.
    pub orders: Vec<Order>,
    /// Where the next page starts (strictly before it); `None` on the last page.
    pub next: Option<ListingPosition>,
}

/// Merges what the shards hold in memory and what the archive found into one
/// page of at most `limit` orders, newest first. Each source must hold up to
/// `limit + 1` orders before the cursor, so that "more" is known. An order in
/// both (archived, then back in memory after a replay) counts once, as memory
/// has it. `archive_scanned_to` is where an archive scan stopped early
/// (`ArchivedPage::scanned_to`): the page ends there, as older archived
/// orders were not looked at.
pub fn merge_listing(
    in_memory: impl IntoIterator<Item = Order>,
    archived: impl IntoIterator<Item = Order>,
    archive_scanned_to: Option<ListingPosition>,
    limit: usize,
) -> ListingPage {
    let mut seen = std::collections::HashSet::new();
    let mut orders: Vec<Order> = in_memory
        .into_iter()
        .chain(archived)
        .filter(|order| seen.insert(order.id))
        .filter(|order| archive_scanned_to.is_none_or(|floor| ListingPosition::of(order) >= floor))
        .collect();
    orders.sort_unstable_by_key(|order| std::cmp::Reverse(ListingPosition::of(order)));
    let more = orders.len() > limit || archive_scanned_to.is_some();
    orders.truncate(limit);
    let next = match orders.last() {
        _ if !more => None,
        Some(last) if orders.len() == limit => Some(ListingPosition::of(last)),
        _ => archive_scanned_to,
    };
    ListingPage { orders, next }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderStatus, SkuId};

    fn order(customer: &str, shard: u32, number: u64, created_at: u64) -> Order {
        Order {
            id: OrderId {
                epoch: 1,
                shard,
                number,
            },
            sku: SkuId::parse("SKU").unwrap(),
            quantity: 1,
            customer: CustomerId::parse(customer).unwrap(),
            status: OrderStatus::Reserved,
            created_at: Timestamp(created_at),
            reserved_until: Timestamp(created_at + 1),
            updated_at: Timestamp(created_at),
            idempotency_key: None,
        }
    }

    #[test]
    fn pages_run_newest_first_from_the_cursor_and_skip_other_customers() {
        let mut index = CustomerOrders::default();
        // Out of order on purpose: a clock that stepped back.
        let orders = [
            order("ann", 0, 1, 100),
            order("ann", 0, 2, 300),
            order("bob", 0, 3, 200),
            order("ann", 0, 4, 200),
            order("ann", 0, 5, 200),
        ];
        for order in &orders {
            index.insert(order);
        }
        let ann = CustomerId::parse("ann").unwrap();
        let numbers = |page: Vec<ListingPosition>| {
            page.into_iter()
                .map(|position| position.id.number)
                .collect::<Vec<_>>()
        };
        let first = index.newest_before(&ann, None, 2);
        assert_eq!(numbers(first.clone()), [2, 5]);
        let second = index.newest_before(&ann, first.last().copied(), 2);
        assert_eq!(numbers(second.clone()), [4, 1]);
        assert!(index
            .newest_before(&ann, second.last().copied(), 2)
            .is_empty());
        assert!(index.remove(&orders[1]));
        assert!(!index.remove(&orders[1]), "removed once");
        assert_eq!(numbers(index.newest_before(&ann, None, 10)), [5, 4, 1]);
        assert!(index.remove(&orders[3]) && index.remove(&orders[4]));
        assert_eq!(numbers(index.newest_before(&ann, None, 10)), [1]);
        index.insert(&orders[4]);
        assert_eq!(numbers(index.newest_before(&ann, None, 10)), [5, 1]);
        assert!(index.remove(&orders[0]) && index.remove(&orders[4]));
        assert!(!index.remove(&orders[4]));
        assert!(index.newest_before(&ann, None, 10).is_empty());
        assert_eq!(index.len(), 1, "bob's");
        index.insert(&orders[1]);
        index.insert(&orders[3]);
        index.insert(&orders[4]);
        index.insert(&orders[0]);
        let mut built = CustomerOrders::default();
        let kept: Vec<&Order> = orders.iter().filter(|order| order.id.number != 2).collect();
        let mut bulk = built.bulk(kept.len());
        // Out of order: the bulk build sorts each customer's positions.
        for order in kept.iter().rev() {
            bulk.add(order);
        }
        bulk.finish();
        assert_eq!(numbers(built.newest_before(&ann, None, 10)), [5, 4, 1]);
        assert_eq!(built.len(), 4);
    }

    #[test]
    fn a_merged_page_is_newest_first_once_each_and_says_where_to_go_on() {
        let ids = |page: &ListingPage| {
            page.orders
                .iter()
                .map(|order| (order.id.shard, order.id.number))
                .collect::<Vec<_>>()
        };
        let memory = vec![order("ann", 0, 5, 500), order("ann", 1, 2, 300)];
        let archived = vec![order("ann", 1, 2, 300), order("ann", 0, 1, 100)];
        let all = merge_listing(memory.clone(), archived.clone(), None, 10);
        assert_eq!(ids(&all), [(0, 5), (1, 2), (0, 1)]);
        assert_eq!(all.next, None);
        let first = merge_listing(memory.clone(), archived.clone(), None, 2);
        assert_eq!(ids(&first), [(0, 5), (1, 2)]);
        assert_eq!(first.next, Some(ListingPosition::of(&first.orders[1])));
        // The archive scan stopped at 300: nothing older may be in the page,
        // and the next one starts there.
        let floor = Some(ListingPosition::of(&archived[0]));
        let cut = merge_listing(
            vec![order("ann", 0, 5, 500), order("ann", 2, 7, 50)],
            vec![],
            floor,
            10,
        );
        assert_eq!(ids(&cut), [(0, 5)]);
        assert_eq!(cut.next, floor);
        let exact = merge_listing(memory, archived, None, 3);
        assert_eq!(exact.next, None, "no more than the limit: the last page");
    }
}
