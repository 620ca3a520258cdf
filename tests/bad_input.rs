mod common;

use std::io::Cursor;

use common::{
    order_id, read_answer, Answer, Client, Server, ADMIN_TOKEN, OPERATOR_TOKEN, PAYMENTS_TOKEN,
    SERVICE_TOKEN,
};
use serde_json::{json, Value};

/// The request body limit the server runs with by default.
const BODY_BYTES_MAX: usize = 16 * 1024;

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Every way a request can be wrong gets its own status and a problem+json body
/// whose `code` a client can branch on and whose detail says what to fix, and
/// none of them hurts the server: clients in a flash sale retry whatever they
/// get, so errors must be precise, cheap and harmless.
#[test]
fn every_error_has_its_status_and_problem_body_and_the_server_keeps_serving() {
    let server = Server::start();
    let api = server.client();
    api.put_sku(
        "shoe",
        json!({ "stock": 50, "max_quantity_per_order": 5, "per_customer_limit": 2 }),
    );
    api.put_sku("single", json!({ "stock": 1 }));
    api.put_sku("few", json!({ "stock": 3 }));
    let later = api.put_sku(
        "later",
        json!({ "stock": 10, "sale_starts_at": "2999-01-01T00:00:00Z" }),
    );
    assert_eq!(
        later["sale_starts_at"], "2999-01-01T00:00:00.000Z",
        "{later}"
    );

    unreadable_bodies_are_refused(api);
    each_field_rule_is_named(api);
    missing_things_are_404(api);
    sale_rules_are_409(api);
    admin_routes_need_the_token(api);
    a_reused_idempotency_key_is_422(api);
    unknown_routes_and_methods_are_refused(api);

    // Only the orders placed on purpose above hold stock of "shoe": 2 for
    // "limited" and 1 for "keyed" ("changes-mind" was cancelled).
    let shoe = api.sku("shoe");
    assert_eq!(
        (&shoe["total"], &shoe["available"], &shoe["reserved"]),
        (&json!(50), &json!(47), &json!(3)),
        "{shoe}"
    );
    api.reserve("shoe", 1, "after-all-that");
    let (status, health) = api.get("/healthz");
    assert_eq!(status, 200, "{health}");
    let (status, ready) = api.get("/readyz");
    assert_eq!(
        (status, &ready["status"]),
        (200, &json!("ready")),
        "{ready}"
    );
}

/// 400, 413 and 415: bodies that cannot be read as a JSON request.
fn unreadable_bodies_are_refused(api: &Client) {
    for body in [r#"{"sku": "shoe", "#, "", "not json"] {
        let answer = send(api, "POST", "/v1/orders", &[JSON], Some(body));
        assert_problem(&answer, 400, "malformed_json", &format!("body {body:?}"));
    }

    // Over the limit, whether the length is declared or the body is chunked.
    let too_large = padded_order(BODY_BYTES_MAX + 1);
    let answer = send(api, "POST", "/v1/orders", &[JSON], Some(&too_large));
    assert_problem(&answer, 413, "body_too_large", "declared length");
    let chunked = api
        .request("POST", "/v1/orders")
        .set(JSON.0, JSON.1)
        .send(Cursor::new(too_large.into_bytes()));
    let answer = read_answer(chunked).expect("an answer to the chunked body");
    assert_problem(&answer, 413, "body_too_large", "chunked body");
    // A body of exactly the limit is read, and refused for its unknown member.
    let at_limit = padded_order(BODY_BYTES_MAX);
    let answer = send(api, "POST", "/v1/orders", &[JSON], Some(&at_limit));
    assert_invalid_field(&answer, "pad", "body at the limit");

    let valid = order("shoe", 1, "ada").to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let headers: Vec<(&str, &str)> = content_type
            .map(|content_type| ("Content-Type", content_type))
            .into_iter()
            .collect();
        let answer = send(api, "POST", "/v1/orders", &headers, Some(&valid));
        let what = format!("content type {content_type:?}");
        assert_problem(&answer, 415, "unsupported_media_type", &what);
    }
}

/// 422 `invalid_field`: one case per rule, each naming its field.
fn each_field_rule_is_named(api: &Client) {
    let long = "x".repeat(65);
    let valid = order("shoe", 1, "ada");
    let with = |member: &str, value: Value| {
        let mut body = valid.clone();
        body[member] = value;
        body
    };
    let without = |member: &str| {
        let mut body = valid.clone();
        body.as_object_mut().expect("an object").remove(member);
        body
    };
    let invalid_orders = [
        ("sku", with("sku", json!("bad sku!"))),
        ("sku", with("sku", json!("caf\u{e9}"))),
        ("sku", with("sku", json!(long))),
        ("sku", with("sku", json!(""))),
        ("sku", with("sku", json!(7))),
        ("sku", without("sku")),
        ("customer_id", with("customer_id", json!(long))),
        ("customer_id", with("customer_id", json!(""))),
        ("customer_id", with("customer_id", json!("tab\there"))),
        ("customer_id", with("customer_id", json!(["ada"]))),
        ("customer_id", without("customer_id")),
        ("quantity", with("quantity", json!(0))),
        // "shoe" allows at most 5 per order.
        ("quantity", with("quantity", json!(6))),
        ("quantity", with("quantity", json!(-1))),
        ("quantity", with("quantity", json!(1.5))),
        ("quantity", with("quantity", json!("1"))),
        ("quantity", without("quantity")),
        ("coupon", with("coupon", json!("FREE"))),
        ("body", json!([valid])),
    ];
    for (field, body) in &invalid_orders {
        let answer = send(api, "POST", "/v1/orders", &[JSON], Some(&body.to_string()));
        assert_invalid_field(&answer, field, &body.to_string());
    }
    let key = ("Idempotency-Key", long.as_str());
    let answer = send(
        api,
        "POST",
        "/v1/orders",
        &[JSON, key],
        Some(&valid.to_string()),
    );
    assert_invalid_field(&answer, "Idempotency-Key", "a 65-byte Idempotency-Key");

    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let admin = ("Authorization", bearer.as_str());
    let invalid_skus = [
        (
            "stock",
            "/v1/skus/new-sku",
            json!({ "per_customer_limit": 1 }),
        ),
        ("stock", "/v1/skus/shoe", json!({ "stock": 51 })),
        (
            "per_customer_limit",
            "/v1/skus/shoe",
            json!({ "per_customer_limit": 0 }),
        ),
        (
            "sale_starts_at",
            "/v1/skus/shoe",
            json!({ "sale_starts_at": "tomorrow" }),
        ),
        (
            "reservation_ttl_secs",
            "/v1/skus/shoe",
            json!({ "reservation_ttl_secs": 0 }),
        ),
        (
            "max_quantity_per_order",
            "/v1/skus/shoe",
            json!({ "max_quantity_per_order": 0 }),
        ),
        ("colour", "/v1/skus/shoe", json!({ "colour": "red" })),
        ("sku", "/v1/skus/bad%20sku", json!({ "stock": 1 })),
    ];
    for (field, path, body) in &invalid_skus {
        let answer = send(api, "PUT", path, &[JSON, admin], Some(&body.to_string()));
        assert_invalid_field(&answer, field, &format!("PUT {path} {body}"));
    }
    let restock = json!({ "quantity": 0 }).to_string();
    let answer = send(
        api,
        "POST",
        "/v1/skus/shoe/restock",
        &[JSON, admin],
        Some(&restock),
    );
    assert_invalid_field(&answer, "quantity", "restock of 0");
}

/// 404 `unknown_sku` and `unknown_order`, malformed order ids included.
fn missing_things_are_404(api: &Client) {
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let admin = ("Authorization", bearer.as_str());
    let ghost_order = order("ghost", 1, "ada").to_string();
    let restock = json!({ "quantity": 1 }).to_string();
    let unknown_sku = [
        send(api, "POST", "/v1/orders", &[JSON], Some(&ghost_order)),
        send(api, "GET", "/v1/skus/ghost", &[], None),
        send(
            api,
            "POST",
            "/v1/skus/ghost/restock",
            &[JSON, admin],
            Some(&restock),
        ),
    ];
    for answer in &unknown_sku {
        assert_problem(answer, 404, "unknown_sku", "unknown sku");
    }
    for id in ["1-0-999999", "1-250-1", "not-an-id", "1-0", "-1-0-1"] {
        let answer = send(api, "GET", &format!("/v1/orders/{id}"), &[], None);
        assert_problem(&answer, 404, "unknown_order", &format!("GET order {id}"));
    }
    for action in ["confirm", "cancel"] {
        let path = format!("/v1/orders/1-0-999999/{action}");
        let answer = send(api, "POST", &path, &[], None);
        assert_problem(&answer, 404, "unknown_order", &path);
    }
}

/// 409: sold out, not enough, over the customer's limit, not open yet, and an
/// order that cannot change any more.
fn sale_rules_are_409(api: &Client) {
    api.reserve("single", 1, "first");
    api.reserve("shoe", 2, "limited");
    let conflicts = [
        ("sold_out", order("single", 1, "second")),
        ("insufficient_stock", order("few", 4, "greedy")),
        ("limit_exceeded", order("shoe", 1, "limited")),
        ("sale_not_open", order("later", 1, "early-bird")),
    ];
    for (code, body) in &conflicts {
        let answer = send(api, "POST", "/v1/orders", &[JSON], Some(&body.to_string()));
        assert_problem(&answer, 409, code, &body.to_string());
    }

    let id = order_id(&api.reserve("shoe", 1, "changes-mind"));
    let (status, cancelled) = api.cancel(&id);
    assert_eq!(
        (status, &cancelled["status"]),
        (200, &json!("cancelled")),
        "{cancelled}"
    );
    let answer = send(api, "POST", &format!("/v1/orders/{id}/confirm"), &[], None);
    assert_problem(
        &answer,
        409,
        "invalid_transition",
        "confirm a cancelled order",
    );
}

/// 401 without a bearer token or with one the node does not know, 403 with
/// a credential whose role may not change SKUs.
fn admin_routes_need_the_token(api: &Client) {
    let api = &api.with_credential(None);
    let body = json!({ "quantity": 1 }).to_string();
    let longer = format!("Bearer {ADMIN_TOKEN}-and-more");
    let shorter = format!("Bearer {}", &ADMIN_TOKEN[1..]);
    for (method, path) in [("PUT", "/v1/skus/shoe"), ("POST", "/v1/skus/shoe/restock")] {
        for authorization in [None, Some("Basic YWRtaW46YWRtaW4="), Some(ADMIN_TOKEN)] {
            let mut headers = vec![JSON];
            headers.extend(authorization.map(|value| ("Authorization", value)));
            let answer = send(api, method, path, &headers, Some(&body));
            let what = format!("{method} {path} with {authorization:?}");
            assert_problem(&answer, 401, "unauthorized", &what);
            assert_eq!(answer.header("www-authenticate"), Some("Bearer"), "{what}");
        }
        for authorization in [
            longer.as_str(),
            shorter.as_str(),
            "Bearer not-the-token-at-all",
        ] {
            let headers = [JSON, ("Authorization", authorization)];
            let answer = send(api, method, path, &headers, Some(&body));
            let what = format!("{method} {path} with {authorization:?}");
            let problem = assert_problem(&answer, 401, "unauthorized", &what);
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("not one this node knows"),
                "{what}: {problem}"
            );
        }
        for token in [SERVICE_TOKEN, PAYMENTS_TOKEN, OPERATOR_TOKEN] {
            let authorization = format!("Bearer {token}");
            let headers = [JSON, ("Authorization", authorization.as_str())];
            let answer = send(api, method, path, &headers, Some(&body));
            let what = format!("{method} {path} with {token}");
            let problem = assert_problem(&answer, 403, "forbidden", &what);
            assert!(
                problem["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("may not change SKUs"),
                "{what}: {problem}"
            );
        }
    }
    assert_eq!(api.sku("shoe")["total"], 50, "no restock went through");
}

/// 422 `idempotency_key_reused`: one key, two different orders.
fn a_reused_idempotency_key_is_422(api: &Client) {
    let key = ("Idempotency-Key", "reused-key");
    let first = order("shoe", 1, "keyed").to_string();
    let answer = send(api, "POST", "/v1/orders", &[JSON, key], Some(&first));
    assert_eq!(answer.status, 201, "{}", answer.text);
    let changed = order("shoe", 2, "keyed").to_string();
    let answer = send(api, "POST", "/v1/orders", &[JSON, key], Some(&changed));
    assert_problem(&answer, 422, "idempotency_key_reused", "a reused key");
}

/// 404 `not_found` for unknown paths, 405 for a known path with a wrong method.
fn unknown_routes_and_methods_are_refused(api: &Client) {
    for (method, path) in [("GET", "/v2/orders"), ("POST", "/v1/order"), ("GET", "/")] {
        let answer = send(api, method, path, &[], None);
        assert_problem(&answer, 404, "not_found", &format!("{method} {path}"));
    }
    for (method, path) in [
        ("DELETE", "/v1/orders"),
        ("GET", "/v1/orders"),
        ("DELETE", "/v1/orders/1-0-1"),
        ("GET", "/v1/orders/1-0-1/confirm"),
        ("POST", "/v1/skus"),
        ("PATCH", "/v1/skus/shoe"),
        ("GET", "/v1/skus/shoe/restock"),
        ("POST", "/healthz"),
        ("DELETE", "/metrics"),
    ] {
        let answer = send(api, method, path, &[], None);
        assert_problem(
            &answer,
            405,
            "method_not_allowed",
            &format!("{method} {path}"),
        );
        let allow = answer.header("Allow").unwrap_or("");
        assert!(
            !allow.is_empty() && !allow.contains(method),
            "{method} {path}: 405 must name the allowed methods, got Allow: {allow:?}"
        );
    }
}

fn order(sku: &str, quantity: u64, customer: &str) -> Value {
    json!({ "sku": sku, "quantity": quantity, "customer_id": customer })
}

fn send(
    api: &Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let request = headers
        .iter()
        .fold(api.request(method, path), |request, (name, value)| {
            request.set(name, value)
        });
    api.send(request, body)
}

/// A JSON order body padded with an unknown member to exactly `length` bytes.
fn padded_order(length: usize) -> String {
    let head = r#"{"sku":"shoe","quantity":1,"customer_id":"big","pad":""#;
    let tail = r#""}"#;
    let padding = "x".repeat(length - head.len() - tail.len());
    let body = format!("{head}{padding}{tail}");
    assert_eq!(body.len(), length);
    body
}

/// Checks that `answer` is an RFC 9457 problem with `status` and `code`; returns
/// its body.
fn assert_problem(answer: &Answer, status: u16, code: &str, what: &str) -> Value {
    assert_eq!(answer.status, status, "{what}: {}", answer.text);
    let content_type = answer.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content type {content_type:?}"
    );
    let problem = answer.json();
    for member in ["type", "title", "detail"] {
        assert!(
            problem[member]
                .as_str()
                .is_some_and(|text| !text.is_empty()),
            "{what}: member {member} in {problem}"
        );
    }
    assert_eq!(problem["status"], status, "{what}: {problem}");
    assert_eq!(problem["code"], code, "{what}: {problem}");
    problem
}

/// Checks for a 422 `invalid_field` problem whose detail names `field`.
fn assert_invalid_field(answer: &Answer, field: &str, what: &str) {
    let problem = assert_problem(answer, 422, "invalid_field", what);
    let detail = problem["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains(field),
        "{what}: detail {detail:?} does not name {field}"
    );
}
