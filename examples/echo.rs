//! The ceiling of the HTTP stack on this machine: an actix-web endpoint that only
//! parses the order JSON and echoes it back, with nothing behind it. The
//! performance comparison in docs/PERFORMANCE.md runs wrk against this and
//! against `flashgate serve` in the same run.
//!
//! It also answers `GET /v1/skus/{sku}` with a SKU of ample stock, so that
//! `flashgate-loadtest --sku-prefix X --skus 1` can run against it: its order
//! calls then end as unreadable answers, and its send rate and timing can be
//! compared with oha's against the same ceiling (docs/PERFORMANCE.md, "The
//! open loop").
//!
//! `cargo run --release --example echo -- 127.0.0.1:8090`

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, Serialize)]
struct OrderRequest {
    sku: String,
    quantity: u32,
    customer_id: String,
}

async fn echo(order: web::Json<OrderRequest>) -> HttpResponse {
    HttpResponse::Created().json(order.into_inner())
}

async fn sku(sku: web::Path<String>) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "sku": sku.into_inner(),
        "total": 1_000_000_000u64,
        "available": 1_000_000_000u64,
        "reserved": 0,
        "sold": 0,
        "per_customer_limit": null,
        "max_quantity_per_order": 10,
        "sale_starts_at": null,
        "reservation_ttl_secs": 600,
        "low_stock_threshold": 0,
        "low_stock": false,
    }))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new()
                .app_data(web::JsonConfig::default().limit(16 * 1024))
                .route("/v1/orders", web::post().to(echo))
                .route("/v1/skus/{sku}", web::get().to(sku))
        })
        .bind(&addr)?;
        for addr in server.addrs() {
            println!("echo: listening on http {addr}");
        }
        server.run().await
    })
}
