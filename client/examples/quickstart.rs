//! A first session with flashgate from Rust: make sure a SKU exists, place and
//! confirm an order over QUIC and one over HTTP, and print the SKU.
//!
//! ```sh
//! cargo run -p flashgate-client --example quickstart -- \
//!     --http http://127.0.0.1:8080 \
//!     --quic 127.0.0.1:4433 --fingerprint <sha256 hex printed by flashgate serve> \
//!     --admin-token "$(cat flashgate-data/admin-token)"
//! ```
//!
//! Without `--quic` only the HTTP part runs. `--cert PATH` trusts a PEM or DER
//! certificate instead of a fingerprint; `--insecure` skips verification (a
//! local experiment only). The admin token may also come from
//! `FLASHGATE_ADMIN_TOKEN`. Orders and confirmations carry `--credential`
//! (or `FLASHGATE_CREDENTIAL`), the admin token when it is not given: the
//! admin token may do everything, where a shop gives its back end a service
//! token and its payment callback a payments token (docs/SECURITY.md).

use std::error::Error;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flashgate_client::{
    Fingerprint, HttpClient, HttpConfig, OrderGateway, PlaceOrder, QuicClient, QuicConfig,
    SkuSettings, Trust,
};

const USAGE: &str =
    "usage: quickstart [--http URL] [--quic ADDR (--fingerprint HEX | --cert PATH | --insecure)] \
[--server-name NAME] [--admin-token TOKEN] [--credential TOKEN] [--sku SKU]";

struct Args {
    http: String,
    quic: Option<std::net::SocketAddr>,
    trust: Option<Trust>,
    server_name: String,
    admin_token: Option<String>,
    credential: Option<String>,
    sku: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        http: "http://127.0.0.1:8080".into(),
        quic: None,
        trust: None,
        server_name: "localhost".into(),
        admin_token: std::env::var("FLASHGATE_ADMIN_TOKEN").ok(),
        credential: std::env::var("FLASHGATE_CREDENTIAL").ok(),
        sku: "QUICKSTART-1".into(),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        if flag == "--insecure" {
            args.trust = Some(Trust::InsecureAcceptAnyCertificate);
            continue;
        }
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--http" => args.http = value,
            "--quic" => {
                args.quic = Some(
                    value
                        .parse()
                        .map_err(|error| format!("--quic {value}: {error}"))?,
                )
            }
            "--fingerprint" => {
                let fingerprint: Fingerprint = value.parse().map_err(|error| format!("{error}"))?;
                args.trust = Some(Trust::Fingerprint(fingerprint));
            }
            "--cert" => {
                let bytes =
                    std::fs::read(&value).map_err(|error| format!("--cert {value}: {error}"))?;
                args.trust = Some(Trust::Certificate(bytes));
            }
            "--server-name" => args.server_name = value,
            "--admin-token" => args.admin_token = Some(value),
            "--credential" => args.credential = Some(value),
            "--sku" => args.sku = value,
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if args.quic.is_some() && args.trust.is_none() {
        return Err(format!(
            "--quic needs --fingerprint, --cert or --insecure\n{USAGE}"
        ));
    }
    Ok(args)
}

/// A time on the wire (milliseconds since the Unix epoch, UTC) as RFC 3339.
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A SKU in one line: its counters, and its settings when they are set.
fn describe_sku(sku: &flashgate_client::Sku) -> String {
    let mut line = format!(
        "SKU {}: total {}, available {}, reserved {}, sold {}",
        sku.sku, sku.total, sku.available, sku.reserved, sku.sold
    );
    if let Some(limit) = sku.per_customer_limit {
        line.push_str(&format!(", at most {limit} per customer"));
    }
    if let Some(starts) = sku.sale_starts_at_ms {
        line.push_str(&format!(", sale from {}", rfc3339(starts)));
    }
    line.push_str(&format!(
        ", reservations held {} s{}",
        sku.reservation_ttl_secs,
        if sku.low_stock { ", LOW STOCK" } else { "" }
    ));
    line
}

/// Places one order as `customer`, confirms it, and says what happened.
async fn order_and_confirm(
    gateway: &impl OrderGateway,
    transport: &str,
    sku: &str,
    customer: &str,
) -> Result<(), Box<dyn Error>> {
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    // A key per attempt: a retry of this call after a transport error would
    // reuse it and get the same order back.
    let key = format!("quickstart-{transport}-{now_ms}");
    let placed = gateway
        .place(PlaceOrder::new(sku, 1, customer).with_idempotency_key(key))
        .await?;
    println!(
        "{transport}: placed order {} ({}), reserved until {}",
        placed.order.order_id,
        if placed.created { "new" } else { "replayed" },
        rfc3339(placed.order.reserved_until_ms)
    );
    let confirmed = gateway.confirm(&placed.order.order_id).await?;
    println!(
        "{transport}: order {} is {}",
        confirmed.order_id,
        confirmed.status.as_str()
    );
    Ok(())
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let credential = args.credential.clone().or_else(|| args.admin_token.clone());
    let mut http_config = HttpConfig::new(&args.http);
    http_config.admin_token = args.admin_token.clone();
    http_config.credential = credential.clone();
    let http = HttpClient::new(http_config)?;

    // Create the SKU on first use; top it up when a previous run emptied it.
    match http.sku(&args.sku).await {
        Ok(sku) if sku.available < 2 => {
            let sku = http.restock(&args.sku, 10).await?;
            println!("restocked {}: {} available", sku.sku, sku.available);
        }
        Ok(sku) => println!("SKU {} exists: {} available", sku.sku, sku.available),
        Err(error) if error.code() == Some("unknown_sku") => {
            let settings = SkuSettings {
                stock: Some(100),
                reservation_ttl_secs: Some(600),
                ..SkuSettings::default()
            };
            let (sku, created) = http.put_sku(&args.sku, settings).await?;
            println!(
                "{} SKU {} with {} units",
                if created { "created" } else { "updated" },
                sku.sku,
                sku.total
            );
        }
        Err(error) => return Err(error.into()),
    }

    if let (Some(addr), Some(trust)) = (args.quic, args.trust) {
        let mut quic_config = QuicConfig::new(vec![addr], trust);
        quic_config.server_name = args.server_name;
        quic_config.admin_token = args.admin_token;
        quic_config.credential = credential;
        let quic = QuicClient::connect(quic_config).await?;
        order_and_confirm(&quic, "quic", &args.sku, "quickstart-quic").await?;
        let sku = quic.sku(&args.sku).await?;
        println!("quic: {}", describe_sku(&sku));
        quic.close().await;
    }

    order_and_confirm(&http, "http", &args.sku, "quickstart-http").await?;
    let sku = http.sku(&args.sku).await?;
    println!("http: {}", describe_sku(&sku));
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    if let Err(error) = run(args).await {
        eprintln!("quickstart: {error}");
        std::process::exit(1);
    }
}
