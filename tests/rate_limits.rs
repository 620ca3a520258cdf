//! Per-client rate limits against the real binary: a client over its quota
//! gets 429 `rate_limited` with `Retry-After` and the `RateLimit` headers while
//! other clients go on; a customer's order quota counts HTTP and QUIC
//! together; addresses behind a trusted proxy are the proxy's word, from any
//! other peer a forwarding header changes nothing; and a flood of distinct
//! customers cannot grow the limiter's table past its cap.

mod common;

use std::time::{Duration, Instant};

use common::{poll_until, Client, Launch};
use serde_json::json;

fn gauge(client: &Client, prefix: &str) -> Option<f64> {
    client
        .metrics_page()
        .lines()
        .find_map(|line| line.strip_prefix(prefix))
        .map(|value| value.trim().parse().expect("a number"))
}

/// Three reads pass with the quota counting down in `RateLimit`, the fourth
/// is refused with its wait; the health probe is never limited.
#[test]
fn a_client_over_its_read_quota_is_refused_with_the_headers() {
    let server = Launch::new()
        .env("FLASHGATE_RATE_LIMIT_READS_PER_ADDRESS", "1")
        .env("FLASHGATE_RATE_LIMIT_READS_PER_ADDRESS_BURST", "3")
        .start();
    let api = server.client();
    let mut remaining = Vec::new();
    let mut refused = None;
    for _ in 0..10 {
        let answer = api.send(api.request("GET", "/v1/skus"), None);
        if answer.status == 429 {
            refused = Some(answer);
            break;
        }
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(
            answer.header("ratelimit-policy"),
            Some("\"reads-per-address\";q=3;w=3")
        );
        remaining.push(answer.header("ratelimit").unwrap_or("").to_owned());
    }
    let refused = refused.expect("a read over the quota is refused");
    assert!(remaining.len() >= 3, "the burst passes: {remaining:?}");
    assert!(
        remaining[0].starts_with("\"reads-per-address\";r=2;"),
        "{remaining:?}"
    );
    assert_eq!(refused.json()["code"], "rate_limited", "{}", refused.text);
    let retry: u64 = refused
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    assert!(
        refused.header("ratelimit").unwrap_or("").contains(";r=0;"),
        "{:?}",
        refused.header("ratelimit")
    );
    let health = api.send(api.request("GET", "/healthz"), None);
    assert_eq!(health.status, 200);
    assert!(
        gauge(
            api,
            "flashgate_rate_limited_total{policy=\"reads-per-address\"} "
        )
        .unwrap()
            >= 1.0
    );
}

/// Behind a trusted proxy each client named by `X-Forwarded-For` has its own
/// quota; without the proxy in `trusted_proxies` the header changes nothing.
#[test]
fn forwarded_addresses_count_only_from_a_trusted_proxy() {
    for trusted in [true, false] {
        let mut launch = Launch::new()
            .env("FLASHGATE_RATE_LIMIT_READS_PER_ADDRESS", "1")
            .env("FLASHGATE_RATE_LIMIT_READS_PER_ADDRESS_BURST", "2");
        if trusted {
            launch = launch.env("FLASHGATE_TRUSTED_PROXIES", "[\"127.0.0.0/8\"]");
        }
        let server = launch.start();
        let api = server.client();
        let read = |client: &str| {
            let request = api
                .request("GET", "/v1/skus")
                .set("x-forwarded-for", &format!("{client}, 127.0.0.1"));
            api.send(request, None).status
        };
        // Client A spends its burst and more.
        let a: Vec<u16> = (0..6).map(|_| read("198.51.100.1")).collect();
        assert!(a.contains(&429), "{a:?}");
        // Client B, right after.
        let b = read("198.51.100.2");
        if trusted {
            assert_eq!(b, 200, "another client keeps its own quota");
        } else {
            assert_eq!(b, 429, "an untrusted peer's header is ignored");
        }
    }
}

/// One customer's orders over HTTP and QUIC share one quota; another
/// customer is not affected.
#[test]
fn a_customers_order_quota_counts_both_front_ends() {
    use flashgate_client::{ClientError, OrderGateway, PlaceOrder, QuicClient, QuicConfig, Trust};

    let server = Launch::new()
        .env("FLASHGATE_RATE_LIMIT_ORDERS_PER_CUSTOMER", "1")
        .env("FLASHGATE_RATE_LIMIT_ORDERS_PER_CUSTOMER_BURST", "2")
        .start();
    let api = server.client();
    api.put_sku("HOT", json!({ "stock": 1000 }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let (mut placed, mut refused) = (0u64, 0u64);
    runtime.block_on(async {
        let endpoint = server.quic().expect("the server listens for QUIC");
        let fingerprint = endpoint.sha256.parse().expect("a fingerprint");
        let mut config = QuicConfig::new(vec![endpoint.addr], Trust::Fingerprint(fingerprint));
        config.credential = Some(server.admin_token().to_owned());
        let quic = QuicClient::connect(config).await.expect("QUIC connect");
        for attempt in 0..10 {
            // Alternate the front ends.
            let result = if attempt % 2 == 0 {
                let (status, body) = api.place_order("HOT", 1, "eager");
                match status {
                    201 => Ok(()),
                    429 => {
                        assert_eq!(body["code"], "rate_limited", "{body}");
                        Err(())
                    }
                    other => panic!("HTTP {other}: {body}"),
                }
            } else {
                match quic.place(PlaceOrder::new("HOT", 1, "eager")).await {
                    Ok(_) => Ok(()),
                    Err(ClientError::Server { code, .. }) if code == "rate_limited" => Err(()),
                    Err(other) => panic!("QUIC: {other}"),
                }
            };
            match result {
                Ok(()) => placed += 1,
                Err(()) => refused += 1,
            }
        }
    });
    // The burst of 2, plus one a second since the start.
    let allowed = 2 + started.elapsed().as_secs() + 1;
    assert!(
        placed >= 2 && placed <= allowed,
        "placed {placed}, allowed {allowed}"
    );
    assert!(refused >= 1);
    api.reserve("HOT", 1, "patient");
}

/// 600 distinct customers in a burst against a table of 50 keys: the table
/// stays at its cap, the rest share one quota (most are refused), and both
/// show in the metrics.
#[test]
fn a_flood_of_distinct_customers_stays_within_the_key_cap() {
    let server = Launch::new()
        .env("FLASHGATE_RATE_LIMIT_ORDERS_PER_CUSTOMER", "1")
        .env("FLASHGATE_RATE_LIMIT_ORDERS_PER_CUSTOMER_BURST", "1")
        .env("FLASHGATE_RATE_LIMIT_KEYS_MAX", "50")
        .start();
    let api = server.client();
    api.put_sku("FLOOD", json!({ "stock": 100000 }));
    let mut refused = 0;
    for customer in 0..600 {
        let (status, _) = api.place_order("FLOOD", 1, &format!("bot-{customer}"));
        if status == 429 {
            refused += 1;
        }
    }
    assert!(refused >= 400, "refused {refused} of 600");
    // Published by the next housekeeping pass.
    let overflow = poll_until("the overflow in /metrics", Duration::from_secs(20), || {
        gauge(
            api,
            "flashgate_rate_limit_overflow_total{policy=\"orders-per-customer\"} ",
        )
        .filter(|overflow| *overflow > 0.0)
    });
    let keys = gauge(
        api,
        "flashgate_rate_limit_keys{policy=\"orders-per-customer\"} ",
    )
    .expect("the key count");
    assert!(keys <= 50.0, "tracked keys {keys}");
    assert!(overflow >= 500.0, "overflow {overflow}");
}
