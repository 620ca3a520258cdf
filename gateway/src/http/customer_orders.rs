//! `GET /v1/customers/{customer_id}/orders`: a buyer's orders across every
//! shard, newest first, a bounded page at a time (`Node::customer_orders`).

use actix_web::{web, HttpRequest, HttpResponse};
use flashgate_actors::domain::{CustomerId, InvalidField, ListingPosition, OrderId, Timestamp};
use serde::Serialize;
use utoipa::ToSchema;

use super::caller::allowed;
use super::{read_answer, AppState};
use crate::auth::{Action, Scope};
use crate::config::Config;
use crate::request::RequestError;
use crate::wire::OrderBody;

/// Orders on a page when the request names no `limit` (fewer if
/// `customer_orders_page_max` is lower).
pub const PAGE_DEFAULT: usize = 20;

/// The listing's limits, from `Config`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most orders on one page (`customer_orders_page_max`).
    pub page_max: usize,
    /// Most archive index keys one page reads (`customer_orders_scan_max`).
    pub scan_max: usize,
}

impl Limits {
    pub fn of(config: &Config) -> Limits {
        Limits {
            page_max: config.customer_orders_page_max,
            scan_max: config.customer_orders_scan_max,
        }
    }
}

/// One page of a customer's orders.
#[derive(Serialize, ToSchema)]
#[schema(as = CustomerOrders)]
pub struct CustomerOrdersBody<'a> {
    /// The customer's orders, newest first (by `created_at`, then id): live
    /// ones and finished ones, including those answered from the archive.
    pub orders: Vec<OrderBody<'a>>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    /// Opaque: its form may change between versions.
    #[schema(examples("1764409200123_1-3-1042"))]
    pub next_cursor: Option<String>,
}

/// A cursor as the API writes it: the position of the last order of a page.
fn cursor_text(position: ListingPosition) -> String {
    format!("{}_{}", position.created_at.0, position.id)
}

fn parse_cursor(text: &str) -> Option<ListingPosition> {
    let (time, id) = text.split_once('_')?;
    if time.is_empty() || !time.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    Some(ListingPosition {
        created_at: Timestamp(time.parse().ok()?),
        id: OrderId::parse(id)?,
    })
}

/// The page size and cursor a query string asks for. Pure: the rules of
/// `limit` and `cursor`, each refusal naming the parameter.
pub fn parse_query(
    query: &str,
    page_max: usize,
) -> Result<(usize, Option<ListingPosition>), InvalidField> {
    let mut limit = None;
    let mut cursor = None;
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "limit" if limit.is_none() => {
                let parsed = value
                    .parse::<usize>()
                    .ok()
                    .filter(|limit| (1..=page_max).contains(limit))
                    .ok_or_else(|| {
                        InvalidField::new(
                            "limit",
                            format!("must be a whole number from 1 to {page_max}"),
                        )
                    })?;
                limit = Some(parsed);
            }
            "cursor" if cursor.is_none() => {
                cursor = Some(parse_cursor(value).ok_or_else(|| {
                    InvalidField::new(
                        "cursor",
                        "is not a cursor: pass `next_cursor` from the previous page as it is",
                    )
                })?);
            }
            "limit" | "cursor" => {
                return Err(InvalidField::new(
                    if name == "limit" { "limit" } else { "cursor" },
                    "is given more than once",
                ))
            }
            other => {
                return Err(InvalidField::new(
                    "query",
                    format!(
                        "has an unknown parameter `{}`; the parameters are `limit` and `cursor`",
                        other.chars().take(64).collect::<String>()
                    ),
                ))
            }
        }
    }
    Ok((limit.unwrap_or(PAGE_DEFAULT.min(page_max)), cursor))
}

/// A buyer lists only its own orders (another's is 403 `customer_mismatch`);
/// other callers that may read orders list anyone's.
#[utoipa::path(
    get,
    operation_id = "list_customer_orders",
    path = "/v1/customers/{customer_id}/orders",
    tag = "orders",
    summary = "List a customer's orders, newest first",
    description = "Every order of the customer across all shards (live, finished, and those that left memory for the archive), \
        newest first by `created_at`, then id; at most `limit` per page. Follow `next_cursor` for older orders; \
        orders placed after the first page was read appear on a new first page, never in the middle of a walk.",
    params(
        ("customer_id" = String, Path, description = "The customer, as orders name it", min_length = 1, max_length = 64),
        ("limit" = Option<u32>, Query, description = "Orders on the page: 1 to `customer_orders_page_max` (100 unless configured); 20 when absent", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page, as it was given"),
    ),
    responses(
        (status = 200, description = "One page of the customer's orders", body = CustomerOrdersBody, headers(("Flashgate-Node-Role" = String, description = "The role of the node that answered: `primary`, `standby` or `fenced`; only a primary's reads carry the replication promise"))),
        (status = 422, description = "`invalid_field`: the detail names `customer_id`, `limit`, `cursor` or an unknown query parameter, and the rule", content_type = "application/problem+json", body = crate::problem::Problem),
        (status = 503, description = "`overloaded` (with `Retry-After`), `storage_failed`, `shutting_down`", content_type = "application/problem+json", body = crate::problem::Problem,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying, with `overloaded`"))),
    ),
    security(("bearer" = []))
)]
pub async fn list(
    request: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, RequestError> {
    let (_, scope) = allowed(&request, &state, Action::ReadOrder)?;
    let customer = CustomerId::parse(&path)?;
    if let Scope::Customer(subject) = &scope {
        if *subject != customer {
            return Err(RequestError::CustomerMismatch(format!(
                "this buyer token is for customer {}; a buyer lists its own orders only \
                 (GET /v1/customers/{}/orders)",
                subject.as_str(),
                subject.as_str()
            )));
        }
    }
    let limits = state.customer_orders;
    let (limit, cursor) = parse_query(request.query_string(), limits.page_max)?;
    let page = state
        .node
        .customer_orders(&customer, cursor, limit, limits.scan_max)
        .await?;
    let body = CustomerOrdersBody {
        orders: page.orders.iter().map(OrderBody::from).collect(),
        next_cursor: page.next.map(cursor_text),
    };
    Ok(read_answer(&state, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_and_cursor_follow_their_rules_and_name_themselves_when_refused() {
        assert_eq!(parse_query("", 100), Ok((PAGE_DEFAULT, None)));
        assert_eq!(parse_query("", 5), Ok((5, None)));
        let position = ListingPosition {
            created_at: Timestamp(1_764_409_200_123),
            id: OrderId {
                epoch: 1,
                shard: 3,
                number: 1042,
            },
        };
        let text = cursor_text(position);
        assert_eq!(text, "1764409200123_1-3-1042");
        assert_eq!(
            parse_query(&format!("limit=7&cursor={text}"), 100),
            Ok((7, Some(position)))
        );
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=-1", "limit"),
            ("limit=", "limit"),
            ("limit=2&limit=3", "limit"),
            ("cursor=abc", "cursor"),
            ("cursor=_1-2-3", "cursor"),
            ("cursor=12_1-2", "cursor"),
            ("cursor=%31_1-2-3", "cursor"),
            ("cursor=1_1-2-3&cursor=1_1-2-3", "cursor"),
            ("page=2", "query"),
        ] {
            let refused = parse_query(query, 100).expect_err(query);
            assert_eq!(refused.field, field, "{query}");
        }
    }
}
