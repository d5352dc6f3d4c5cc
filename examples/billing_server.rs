//! Serves the billing contract over Redis until Ctrl-C. Start several: they
//! share the requests, and if one dies mid-call another takes its calls over.
//!
//! ```text
//! cargo run -p rota-examples --bin billing-server -- redis://127.0.0.1:6379
//! ```

use rota::ServeOptions;
use rota_examples::{BillingServer, Ledger};
use rota_redis::{RedisBroker, RedisOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    // Started before its Redis? It waits (and says so) rather than exit.
    let broker = RedisBroker::connect_waiting(RedisOptions::new(url.clone())).await?;
    let server = BillingServer::new(Ledger::default()).spawn(
        broker,
        "billing",
        ServeOptions::default().wait_for_broker(true),
    );
    // The URL may hold a password: never print it as it is.
    let shown = rota_redis::options::redact(&url);
    println!("serving billing on {shown}; Ctrl-C to stop");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = server.shutdown_token().cancelled() => {}
    }
    server.shutdown().await?;
    println!("drained and stopped");
    Ok(())
}
