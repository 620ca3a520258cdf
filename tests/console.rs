//! The console's API against the real binary: the live stream resumes from
//! `Last-Event-ID` with exactly the alert events missed (and says so, with
//! the whole list, when the feed no longer holds them); streams are capped;
//! the sales report's JSON and CSV hold the numbers of a sale the test
//! drives; the page and its assets are served from the binary.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{poll_until, Launch, Server, OPERATOR_TOKEN};
use serde_json::{json, Value};

/// Longest wait for a frame of a stream, or for a state the test drives.
const WAIT: Duration = Duration::from_secs(20);

/// One Server-Sent Event as read off the wire.
#[derive(Debug)]
struct Event {
    event: String,
    id: Option<u64>,
    data: Value,
}

/// A stream read over a plain socket (a browser's view, without a browser):
/// the status, then one event at a time, chunked encoding undone.
struct Stream {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// Bytes of the current chunk not read yet.
    chunk_left: usize,
    text: String,
}

impl Stream {
    /// Opens `GET /v1/console/stream` with `token` and `last_event_id`;
    /// returns the status, the headers' text and, on 200, the stream.
    fn open(
        server: &Server,
        token: Option<&str>,
        last_event_id: Option<&str>,
    ) -> (u16, String, Option<Stream>) {
        let address = server.base_url().trim_start_matches("http://").to_owned();
        let mut socket = TcpStream::connect(&address).expect("connect to the node");
        socket
            .set_read_timeout(Some(WAIT))
            .expect("set a read timeout");
        let mut head = format!(
            "GET /v1/console/stream HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n"
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if let Some(id) = last_event_id {
            head.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        head.push_str("\r\n");
        socket.write_all(head.as_bytes()).expect("send the request");
        let mut reader = BufReader::new(socket);
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .expect("read the status line");
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("unreadable status line {status_line:?}"));
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read a header");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            headers.push_str(&line.to_ascii_lowercase());
        }
        if status != 200 {
            let mut body = String::new();
            let length = headers
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let mut bytes = vec![0; length];
            reader.read_exact(&mut bytes).expect("read the problem");
            body.push_str(&String::from_utf8_lossy(&bytes));
            return (status, format!("{headers}\n{body}"), None);
        }
        let chunked = headers.contains("transfer-encoding: chunked");
        (
            status,
            headers,
            Some(Stream {
                reader,
                chunked,
                chunk_left: 0,
                text: String::new(),
            }),
        )
    }

    /// Reads more bytes of the body into `text`.
    fn fill(&mut self) {
        if self.chunked && self.chunk_left == 0 {
            let mut size = String::new();
            while size.trim().is_empty() {
                size.clear();
                self.reader.read_line(&mut size).expect("read a chunk size");
            }
            self.chunk_left = usize::from_str_radix(size.trim(), 16)
                .unwrap_or_else(|_| panic!("unreadable chunk size {size:?}"));
            assert!(self.chunk_left > 0, "the stream ended");
        }
        let mut buffer = [0u8; 8192];
        let want = if self.chunked {
            self.chunk_left.min(buffer.len())
        } else {
            buffer.len()
        };
        let read = self
            .reader
            .read(&mut buffer[..want])
            .expect("read the stream");
        assert!(read > 0, "the stream ended");
        if self.chunked {
            self.chunk_left -= read;
        }
        self.text
            .push_str(&String::from_utf8_lossy(&buffer[..read]));
    }

    /// The next event (comments skipped).
    fn next(&mut self) -> Event {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut event = Event {
                    event: "message".into(),
                    id: None,
                    data: Value::Null,
                };
                let mut data = None;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        event.event = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("id: ") {
                        event.id = Some(value.parse().expect("a numeric id"));
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str(value).expect("data is JSON"));
                    }
                }
                if let Some(data) = data {
                    event.data = data;
                    return event;
                }
            }
            self.fill();
        }
    }

    /// Events up to and including the first `snapshot`.
    fn until_snapshot(&mut self) -> (Vec<Event>, Event) {
        let mut before = Vec::new();
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no snapshot within {WAIT:?}");
            let event = self.next();
            if event.event == "snapshot" {
                return (before, event);
            }
            before.push(event);
        }
    }
}

fn alerts(server: &Server) -> Value {
    let (status, body) = server.client().get("/v1/alerts");
    assert_eq!(status, 200, "{body}");
    body
}

/// Sells `sku` out (stock 2, orders of 1) and waits until `sold_out` is active.
fn sell_out(server: &Server, sku: &str) -> u64 {
    let client = server.client();
    client.put_sku(sku, json!({ "stock": 2, "low_stock_threshold": 1 }));
    client.reserve(sku, 1, "c1");
    client.reserve(sku, 1, "c2");
    let body = poll_until("the sold_out alert", WAIT, || {
        let body = alerts(server);
        let active = body["active"].as_array()?;
        active
            .iter()
            .any(|alert| alert["kind"] == "sold_out" && alert["sku"] == sku)
            .then_some(body)
    });
    body["last_event_id"].as_u64().expect("last_event_id")
}

/// A page that reconnects with the last id it saw gets exactly the alert
/// events it missed, in order, with their ids, and no list: an operator
/// watching through a flaky link misses nothing and sees nothing twice.
/// When the feed no longer holds them (or the id is from an earlier run),
/// the stream says so and sends the whole list to start again from.
#[test]
fn a_reconnecting_stream_gets_exactly_the_missed_alert_events() {
    let server = Launch::new()
        .env("FLASHGATE_ALERT_EVALUATE_INTERVAL_MS", "100")
        .env("FLASHGATE_CONSOLE_SAMPLE_INTERVAL_MS", "200")
        .env("FLASHGATE_ALERT_FEED_EVENTS_MAX", "3")
        .start();

    // A first visit: the list, then snapshots; the page remembers the id.
    let (status, headers, stream) = Stream::open(&server, Some(OPERATOR_TOKEN), None);
    assert_eq!(status, 200, "{headers}");
    assert!(
        headers.contains("content-type: text/event-stream"),
        "{headers}"
    );
    let mut stream = stream.expect("a stream");
    let first = stream.next();
    assert_eq!(first.event, "alerts", "{first:?}");
    assert_eq!(first.data["reason"], "start");
    let seen = first.id.expect("the list carries the last event id");
    assert_eq!(first.data["last_event_id"], seen);
    let (_, snapshot) = stream.until_snapshot();
    assert!(
        snapshot.data["cluster"]["role"] == "primary",
        "{:?}",
        snapshot.data
    );
    drop(stream);

    // Away while A sells out.
    let last = sell_out(&server, "A");
    assert!(last > seen, "selling out raised alert events");
    assert!(
        last - seen <= 3,
        "the test needs the ring (3) to hold them: {}",
        last - seen
    );
    let listed = alerts(&server);

    // Back with Last-Event-ID: exactly seen+1..=last, then snapshots.
    let (status, _, stream) = Stream::open(&server, Some(OPERATOR_TOKEN), Some(&seen.to_string()));
    assert_eq!(status, 200);
    let mut stream = stream.expect("a stream");
    let mut caught_up = Vec::new();
    while caught_up
        .last()
        .is_none_or(|event: &Event| event.id < Some(last))
    {
        let event = stream.next();
        if event.event == "snapshot" {
            continue;
        }
        assert_eq!(
            event.event, "alert",
            "only the missed events, no list: {event:?}"
        );
        caught_up.push(event);
    }
    let ids: Vec<u64> = caught_up.iter().map(|event| event.id.unwrap()).collect();
    assert_eq!(ids, (seen + 1..=last).collect::<Vec<_>>());
    for event in &caught_up {
        assert_eq!(event.data["event_id"], event.id.unwrap());
    }
    assert!(
        caught_up
            .iter()
            .any(|event| event.data["type"] == "alert.raised"
                && event.data["alert"]["kind"] == "sold_out"
                && event.data["alert"]["sku"] == "A"),
        "the sell-out was among the missed events: {caught_up:?}"
    );
    let sold_out_id = listed["active"]
        .as_array()
        .unwrap()
        .iter()
        .find(|alert| alert["kind"] == "sold_out")
        .map(|alert| alert["id"].clone())
        .unwrap();
    assert!(caught_up
        .iter()
        .any(|event| event.data["alert"]["id"] == sold_out_id));
    drop(stream);

    // Away longer than the ring holds: B sells out too (more than 3 events
    // since `seen`).
    let later = sell_out(&server, "B");
    assert!(later - seen > 3, "{later} - {seen}");
    for stale in [seen.to_string(), (later + 1000).to_string()] {
        let (status, _, stream) = Stream::open(&server, Some(OPERATOR_TOKEN), Some(&stale));
        assert_eq!(status, 200);
        let mut stream = stream.expect("a stream");
        let list = stream.next();
        assert_eq!(list.event, "alerts", "Last-Event-ID {stale}: {list:?}");
        assert_eq!(list.data["reason"], "missed");
        assert!(list.id.unwrap() >= later);
        let active: Vec<&Value> = list.data["active"].as_array().unwrap().iter().collect();
        for sku in ["A", "B"] {
            assert!(
                active
                    .iter()
                    .any(|alert| alert["kind"] == "sold_out" && alert["sku"] == sku),
                "{sku} sold out in the list: {active:?}"
            );
        }
    }
}

/// At most `console_streams_max` streams at once: one more is refused 503
/// `too_many_streams`, and a closed one gives its place back; a stream needs
/// an operator's credential like any admin read.
#[test]
fn streams_are_capped_and_need_a_credential() {
    let server = Launch::new()
        .env("FLASHGATE_CONSOLE_STREAMS_MAX", "2")
        .env("FLASHGATE_CONSOLE_SAMPLE_INTERVAL_MS", "100")
        .start();
    let (status, problem, _) = Stream::open(&server, None, None);
    assert_eq!(status, 401, "{problem}");
    assert!(
        problem.contains("application/problem+json")
            && problem.contains("\"code\":\"unauthorized\""),
        "{problem}"
    );
    let (status, problem, _) = Stream::open(&server, Some("not-the-token"), None);
    assert_eq!(status, 401, "{problem}");

    let (_, _, first) = Stream::open(&server, Some(OPERATOR_TOKEN), None);
    let mut first = first.expect("the first stream");
    first.next();
    let (_, _, second) = Stream::open(&server, Some(OPERATOR_TOKEN), None);
    let mut second = second.expect("the second stream");
    second.next();
    let (status, problem, third) = Stream::open(&server, Some(OPERATOR_TOKEN), None);
    assert_eq!(status, 503, "{problem}");
    assert!(third.is_none());
    assert!(
        problem.contains("\"code\":\"too_many_streams\""),
        "{problem}"
    );
    assert!(problem.contains("retry-after:"), "{problem}");
    let (_, snapshot) = second.until_snapshot();
    assert_eq!(snapshot.data["streams_open"], 2);

    // The node notices the closed connection when it next writes to it.
    drop(first);
    let mut again = poll_until("a place after a stream closed", WAIT, || {
        let (status, _, stream) = Stream::open(&server, Some(OPERATOR_TOKEN), None);
        (status == 200).then_some(stream).flatten()
    });
    assert_eq!(again.next().event, "alerts");
}

/// The report holds the numbers of a sale the test drove, in JSON and in
/// CSV: attempts split into created and refusals by reason, reservations
/// and how they ended (confirmed, cancelled, expired unpaid), conversion,
/// sell-out; a bad `Accept` or a missing token is a problem+json answer.
#[test]
fn the_report_counts_a_driven_sale_in_json_and_csv() {
    let server = Server::start();
    let client = server.client();
    client.put_sku("R", json!({ "stock": 5, "per_customer_limit": 2 }));
    client.put_sku("E", json!({ "stock": 3, "reservation_ttl_secs": 1 }));

    let first = client.reserve("R", 1, "c1");
    client.reserve("R", 1, "c1");
    assert_eq!(client.place_order("R", 1, "c1").1["code"], "limit_exceeded");
    let order_id = first["order_id"].as_str().unwrap();
    let (status, body) = client.post_json(&format!("/v1/orders/{order_id}/cancel"), &json!({}));
    assert_eq!(status, 200, "{body}");
    let mut to_confirm = Vec::new();
    for customer in ["c2", "c3", "c4", "c5"] {
        to_confirm.push(
            client.reserve("R", 1, customer)["order_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(client.place_order("R", 1, "c6").1["code"], "sold_out");
    for order_id in &to_confirm[..2] {
        let (status, body) =
            client.post_json(&format!("/v1/orders/{order_id}/confirm"), &json!({}));
        assert_eq!(status, 200, "{body}");
    }
    let expiring = client.reserve("E", 2, "c7");
    let expiring = expiring["order_id"].as_str().unwrap().to_owned();
    poll_until("the unpaid reservation to expire", WAIT, || {
        (client.order(&expiring)["status"] == "expired").then_some(())
    });

    let (status, report) = client.get("/v1/admin/report");
    assert_eq!(status, 200, "{report}");
    let line = |sku: &str| {
        report["skus"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["sku"] == sku)
            .cloned()
            .unwrap_or_else(|| panic!("{sku} in {report}"))
    };
    let r = line("R");
    let expect = [
        ("total", 5),
        ("available", 0),
        ("reserved", 3),
        ("sold", 2),
        ("attempts", 8),
        ("created", 6),
        ("replayed", 0),
        ("refused_total", 2),
        ("reserved_orders", 6),
        ("reserved_units", 6),
        ("confirmed", 2),
        ("cancelled", 1),
        ("expired_unpaid", 0),
    ];
    for (field, value) in expect {
        assert_eq!(r[field], value, "R.{field} in {r}");
    }
    assert_eq!(r["refused"], json!({ "limit_exceeded": 1, "sold_out": 1 }));
    assert_eq!(r["conversion_percent"], 33.3);
    assert!(
        r["first_order_at"].is_string() && r["sold_out_at"].is_string(),
        "{r}"
    );
    assert!(r["units_per_minute"].as_f64().unwrap() > 0.0);
    let e = line("E");
    assert_eq!(
        (e["reserved_orders"].as_u64(), e["expired_unpaid"].as_u64()),
        (Some(1), Some(1)),
        "{e}"
    );
    assert_eq!(
        (e["available"].as_u64(), e["sold_out_at"].is_null()),
        (Some(3), true),
        "{e}"
    );
    assert_eq!(report["role"], "primary");
    let hottest: Vec<&str> = report["hottest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hot| hot["sku"].as_str().unwrap())
        .collect();
    assert_eq!(hottest.first(), Some(&"R"), "{report}");

    // The same numbers as CSV.
    let answer = client.send(
        client
            .request("GET", "/v1/admin/report")
            .set("Accept", "text/csv"),
        None,
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/csv"));
    let mut rows = answer.text.split("\r\n");
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let row = rows
        .map(|row| row.split(',').collect::<Vec<&str>>())
        .find(|row| row[0] == "R")
        .expect("a row for R");
    let cell = |name: &str| {
        let index = header
            .iter()
            .position(|column| *column == name)
            .unwrap_or_else(|| panic!("column {name} in {header:?}"));
        row[index]
    };
    for (field, value) in expect {
        assert_eq!(cell(field), value.to_string(), "CSV {field}");
    }
    assert_eq!(cell("refused_sold_out"), "1");
    assert_eq!(cell("refused_limit_exceeded"), "1");
    assert_eq!(cell("conversion_percent"), "33.3");

    // Refusals.
    let answer = client.send(
        client
            .request("GET", "/v1/admin/report")
            .set("Accept", "image/png"),
        None,
    );
    assert_eq!(answer.status, 406, "{}", answer.text);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(answer.json()["code"], "not_acceptable");
    let anonymous = client.with_credential(None);
    let answer = anonymous.send(anonymous.request("GET", "/v1/admin/report"), None);
    assert_eq!(answer.status, 401, "{}", answer.text);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(answer.json()["code"], "unauthorized");
}

/// The page and its assets come from the binary, with a policy that lets
/// the page load only its own files and call only its own node.
#[test]
fn the_page_and_its_assets_are_served_by_the_node() {
    let server = Server::start();
    let client = server.client().with_credential(None);
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let answer = client.send(client.request("GET", path), None);
        assert_eq!(answer.status, 200, "{path}");
        assert!(
            answer
                .header("content-type")
                .unwrap_or("")
                .starts_with(kind),
            "{path}"
        );
        let policy = answer.header("content-security-policy").unwrap_or("");
        assert!(
            policy.contains("script-src 'self'") && policy.contains("connect-src 'self'"),
            "{path}: {policy}"
        );
        assert!(
            !answer.text.contains("https://"),
            "{path} loads nothing from elsewhere"
        );
    }
    let answer = client.send(client.request("GET", "/console/other.js"), None);
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json()["code"], "not_found");
}

/// An open console stream does not hold up a graceful stop: the node ends
/// its streams when it stops, so a page left open on an operator's laptop
/// never keeps a node from restarting (the shutdown timeout here is far
/// longer than the wait for the exit).
#[test]
fn an_open_stream_does_not_hold_up_a_graceful_stop() {
    let mut server = Launch::new()
        .env("FLASHGATE_SHUTDOWN_TIMEOUT_SECS", "600")
        .env("FLASHGATE_CONSOLE_SAMPLE_INTERVAL_MS", "100")
        .start();
    let (status, _, stream) = Stream::open(&server, Some(OPERATOR_TOKEN), None);
    assert_eq!(status, 200);
    let mut stream = stream.expect("a stream");
    stream.until_snapshot();
    let exit = server.terminate();
    assert!(exit.success(), "{exit:?}");
}
