//! `httpref`: the HTTP stack alone, as a reference point for the benchmarks: a minimal
//! actix-web server that answers every request at once with a fixed JSONP body, storing
//! nothing and holding nothing. What our server does beyond this is the price of the protocol,
//! the storage and the long polls.
//!
//! Usage: `httpref [ADDR]` (default `127.0.0.1:8975`); prints `listening on http://ADDR/`.

use actix_web::{web, App, HttpResponse, HttpServer};

/// The fixed answer: what a push answer looks like, without the echo.
const BODY: &str = r#"/**/loadgen({"time":1,"msgList":[]});"#;

async fn answer() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Content-Type", "application/javascript; charset=utf-8"))
        .insert_header(("Cache-Control", "no-store"))
        .body(BODY)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8975".to_owned());
    let server = HttpServer::new(|| App::new().default_service(web::to(answer))).bind(&addr)?;
    for bound in server.addrs() {
        println!("listening on http://{bound}/");
    }
    server.run().await
}
