//! What a hostile or buggy client can make the node hold: every bound below
//! is attacked from outside, against the real binary, and a buyer is still
//! served afterwards. (docs/RELIABILITY.md, "Hostile clients".)

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Launch, Server, SERVICE_TOKEN};
use serde_json::json;

/// Distinct made-up request methods sent by the attack.
const ODD_METHODS: usize = 300;
/// Length of each made-up method name.
const METHOD_BYTES: usize = 1_000;

/// A TCP connection to the node's HTTP front end, reads bounded by
/// `read_timeout`, and the node's `host:port`.
fn raw_connection(server: &Server, read_timeout: Duration) -> (TcpStream, String) {
    let address = server
        .base_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let stream = TcpStream::connect(&address).expect("connect to the node");
    stream
        .set_read_timeout(Some(read_timeout))
        .expect("set a read timeout");
    (stream, address)
}

/// Sends one raw HTTP/1.1 request line with `method` and returns the status
/// code of the answer.
fn raw_status(server: &Server, method: &str, path: &str) -> u16 {
    let (mut stream, address) = raw_connection(server, Duration::from_secs(10));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("send the request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let head = String::from_utf8_lossy(&answer);
    head.split_whitespace()
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {head:?}"))
}

/// Every distinct method name a client invents used to become a latency
/// series kept for the life of the process (20,000 requests took RSS from 25
/// to 387 MiB and `/metrics` to 1.5 GB). Method labels now come from a fixed
/// set: after hundreds of invented methods the page holds none of them, its
/// series do not grow with the attack, and buyers are still served.
#[test]
fn invented_request_methods_do_not_grow_the_metrics() {
    let server = Server::start();
    let api = server.client();
    api.put_sku("metrics-sku", json!({ "stock": 10 }));
    let series = |page: &str| {
        page.lines()
            .filter(|line| line.starts_with("flashgate_http_request_duration_seconds_count"))
            .count()
    };
    // The series of ordinary traffic (a scrape counts itself after it is
    // rendered, so the second one shows it), and of one invented method.
    assert_eq!(raw_status(&server, "BREW", "/v1/skus"), 405);
    api.metrics_page();
    let before = series(&api.metrics_page());

    for index in 0..ODD_METHODS {
        let method = format!("{index:0width$}", width = METHOD_BYTES).replace('0', "Q");
        let status = raw_status(&server, &method, "/v1/skus");
        assert!(
            (400..500).contains(&status),
            "{method:.20}… answered {status}"
        );
    }

    let page = api.metrics_page();
    assert_eq!(
        series(&page),
        before,
        "invented methods added metric series"
    );
    assert!(
        !page.contains("QQQQQQQQ"),
        "an invented method name reached the metrics page"
    );
    assert!(
        page.contains("method=\"other\""),
        "the invented methods are counted as other"
    );
    let (status, order) = api.place_order("metrics-sku", 1, "buyer-after-the-attack");
    assert_eq!(status, 201, "{order}");
}

/// How long the node under test waits for a body once the head has come.
const BODY_READ_TIMEOUT_MS: &str = "1000";
/// Slow-body connections the attack holds open at once.
const SLOW_BODIES: usize = 40;

/// A client that sends a request's head and then its body one byte at a time
/// (or never) used to hold its connection for as long as it liked: 2,100 of
/// them used up the node's file descriptors and blocked every buyer. Each is
/// now answered 408 `body_timeout` once `http_body_read_timeout_ms` has passed,
/// and its connection closed, while a buyer is served meanwhile.
#[test]
fn a_body_that_never_arrives_is_timed_out_and_its_connection_closed() {
    let server = Launch::new()
        .env("FLASHGATE_HTTP_BODY_READ_TIMEOUT_MS", BODY_READ_TIMEOUT_MS)
        .start();
    let api = server.client();
    api.put_sku("slow-body-sku", json!({ "stock": 10 }));
    let slow: Vec<TcpStream> = (0..SLOW_BODIES)
        .map(|_| {
            let (mut stream, address) = raw_connection(&server, Duration::from_secs(30));
            write!(
                stream,
                "POST /v1/orders HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {SERVICE_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
            )
            .expect("send the head and one byte");
            stream
        })
        .collect();
    // A buyer is served while the slow bodies hold their connections.
    let (status, order) = api.place_order("slow-body-sku", 1, "buyer-beside-slow-bodies");
    assert_eq!(status, 201, "{order}");
    for mut stream in slow {
        let mut answer = Vec::new();
        // The node closes the connection after its answer: read to the end.
        stream
            .read_to_end(&mut answer)
            .expect("the node answers and closes the connection");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
    }
}

/// Every connection is a file descriptor: the node raises its soft limit on
/// open files to the hard limit at start, so a crowd meets the connection
/// limits, which answer, before the descriptor limit, which does not. Started
/// with the usual soft limit of 1,024 (util-linux `prlimit`, which execs the
/// node in its place).
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let server = Launch::new()
        .wrapped_by("prlimit", &["--nofile=1024:", "--"])
        .start();
    let pid = server.pid().expect("the node runs");
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read the limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("an open-file limit");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_eq!(
        numbers[0], numbers[1],
        "soft and hard limits differ: {line}"
    );
}

/// A key sent twice used to be read silently as its last value
/// (`"quantity":1,"quantity":5` ordered 5), so what a client, a proxy and a log
/// each read could differ. It is refused, naming the key, and nothing is
/// ordered.
#[test]
fn a_json_key_sent_twice_is_refused_naming_it() {
    let server = Server::start();
    let api = server.client();
    api.put_sku("twice-sku", json!({ "stock": 10 }));
    let body = r#"{"sku":"twice-sku","quantity":1,"customer_id":"c","quantity":5}"#;
    let answer = api.send(
        api.request("POST", "/v1/orders")
            .set("Content-Type", "application/json"),
        Some(body),
    );
    assert_eq!(answer.status, 400, "{}", answer.text);
    let problem = answer.json();
    assert_eq!(problem["code"], "malformed_json", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|detail| detail.contains("\"quantity\" appears twice")),
        "{problem}"
    );
    assert_eq!(api.sku("twice-sku")["reserved"], 0);
}

/// Identifiers that look alike must be alike: a customer id or idempotency
/// key with an invisible (zero-width, bidirectional override, byte-order
/// mark), separator or private-use character is refused with the rule, so
/// `al\u{200b}ice` cannot pass for `alice` (and, say, escape her limit).
#[test]
fn identifiers_with_invisible_characters_are_refused() {
    let server = Server::start();
    let api = server.client();
    api.put_sku(
        "sneaky-sku",
        json!({ "stock": 10, "per_customer_limit": 1 }),
    );
    let (status, _) = api.place_order("sneaky-sku", 1, "alice");
    assert_eq!(status, 201);
    for sneaky in [
        "al\u{200b}ice",
        "al\u{202e}ice",
        "\u{feff}alice",
        "al\u{2028}ice",
        "al\u{e000}ice",
    ] {
        let (status, problem) = api.place_order("sneaky-sku", 1, sneaky);
        assert_eq!(status, 422, "{sneaky:?}: {problem}");
        assert_eq!(problem["code"], "invalid_field", "{problem}");
        assert!(
            problem["detail"].as_str().is_some_and(
                |detail| detail.contains("customer_id") && detail.contains("zero-width")
            ),
            "{problem}"
        );
    }
    assert_eq!(api.sku("sneaky-sku")["reserved"], 1);
}

/// A configured admin token that anyone could guess (`aaaaaaaaaaaaaaaa` was
/// accepted) is refused at start with the reason and how to make a good one,
/// before the node takes any traffic.
#[test]
fn a_guessable_admin_token_is_refused_at_start() {
    let data_dir = tempfile::tempdir().expect("create a data dir");
    let stderr_path = data_dir.path().join("stderr");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_flashgate"))
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--quic-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data_dir.path().join("data"))
        .args(["--admin-token", "aaaaaaaaaaaaaaaa"])
        .env_remove("FLASHGATE_ADMIN_TOKEN")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&stderr_path).expect("create the stderr file"))
        .spawn()
        .expect("run flashgate serve");
    // Bounded: a node that wrongly starts is killed (on drop), and the test
    // fails.
    let mut child = KillOnDrop(child);
    let status = common::poll_until(
        "flashgate to refuse to start",
        Duration::from_secs(30),
        || child.0.try_wait().expect("wait for flashgate"),
    );
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("admin_token") && stderr.contains("too easy to guess"),
        "{stderr}"
    );
}

/// A child process killed when the test ends, whichever way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A refusal states the rule the client broke, not an artefact of how the
/// node reads numbers: a TTL of 2^32 names the TTL's range (it used to say
/// "at most 4294967295"), `-0` and `1.0` say how to write the number, and a
/// negative one says it must be 0 or more.
#[test]
fn number_refusals_state_the_rule_broken() {
    let server = Server::start();
    let api = server.client();
    api.put_sku("numbers-sku", json!({ "stock": 10 }));
    let (status, problem) = api.admin_put(
        "/v1/skus/numbers-sku",
        &json!({ "reservation_ttl_secs": 4_294_967_296u64 }),
    );
    assert_eq!(status, 422, "{problem}");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("between 1 and 604800"), "{problem}");
    for (quantity, rule) in [
        ("-0", "whole number such as 3"),
        ("1.0", "whole number such as 3"),
        ("-2", "must be 0 or more"),
    ] {
        let body = format!(r#"{{"sku":"numbers-sku","quantity":{quantity},"customer_id":"c"}}"#);
        let answer = api.send(
            api.request("POST", "/v1/orders")
                .set("Content-Type", "application/json"),
            Some(&body),
        );
        assert_eq!(answer.status, 422, "{quantity}: {}", answer.text);
        let problem = answer.json();
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("quantity") && detail.contains(rule),
            "{quantity}: {problem}"
        );
    }
}
