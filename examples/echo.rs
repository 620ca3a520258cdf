//! The ceiling of the HTTP stack on this machine: an actix-web endpoint that only
//! parses the order JSON and echoes it back, with nothing behind it. The
//! performance comparison in docs/PERFORMANCE.md runs wrk against this and
//! against `flashgate serve` in the same run.
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

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new()
                .app_data(web::JsonConfig::default().limit(16 * 1024))
                .route("/v1/orders", web::post().to(echo))
        })
        .bind(&addr)?;
        for addr in server.addrs() {
            println!("echo: listening on http {addr}");
        }
        server.run().await
    })
}
