//! Each customer's orders in a shard's memory, newest first: what
//! `GET /v1/customers/{customer_id}/orders` reads without scanning the
//! shard's whole order table.
//!
//! An order enters the index when it is reserved (or restored from a
//! checkpoint) and leaves it when it leaves memory (`OrdersRetired`); the
//! archive's own index (`crate::customer_archive`) takes over from there. A
//! listing reads the index from a cursor, so a page costs a binary search and
//! the page's length, whatever the customer's order count.

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

/// Per customer, the positions of its orders in memory, sorted oldest first
/// (a new order is almost always the newest, so it is a push).
#[derive(Debug, Default)]
pub struct CustomerOrders {
    by_customer: IdMap<CustomerId, Vec<ListingPosition>>,
}

impl CustomerOrders {
    /// Adds an order. Adding one already present is a bug of the caller (an
    /// order enters memory once).
    pub fn insert(&mut self, order: &Order) {
        let positions = self.by_customer.entry(order.customer.clone()).or_default();
        let position = ListingPosition::of(order);
        match positions.last() {
            Some(last) if *last >= position => {
                let at = positions
                    .binary_search(&position)
                    .expect_err("an order enters the customer index once");
                positions.insert(at, position);
            }
            _ => positions.push(position),
        }
    }

    /// Removes an order; returns whether it was there.
    pub fn remove(&mut self, order: &Order) -> bool {
        let Some(positions) = self.by_customer.get_mut(&order.customer) else {
            return false;
        };
        let Ok(at) = positions.binary_search(&ListingPosition::of(order)) else {
            return false;
        };
        positions.remove(at);
        if positions.is_empty() {
            self.by_customer.remove(&order.customer);
        } else if positions.capacity() > 4 * positions.len().max(4) {
            positions.shrink_to_fit();
        }
        true
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
        let end = match before {
            Some(before) => positions.partition_point(|position| *position < before),
            None => positions.len(),
        };
        positions[..end].iter().rev().take(limit).copied().collect()
    }

    /// Orders indexed, over all customers (for consistency checks).
    pub fn len(&self) -> usize {
        self.by_customer.values().map(Vec::len).sum()
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

    /// Builds the index of many orders at once (a checkpoint's): one sort per
    /// customer instead of a sorted insert per order.
    pub fn extend<'a>(&mut self, orders: impl IntoIterator<Item = &'a Order>) {
        for order in orders {
            self.by_customer
                .entry(order.customer.clone())
                .or_default()
                .push(ListingPosition::of(order));
        }
        for positions in self.by_customer.values_mut() {
            positions.sort_unstable();
            positions.dedup();
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
        let mut built = CustomerOrders::default();
        built.extend(orders.iter().filter(|order| order.id.number != 2));
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
