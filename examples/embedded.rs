//! One machine, no server: the billing contract served and called through
//! the embedded durable backend (a SQLite file). Requests survive a crash of
//! the process; run it twice and the file is simply reused.
//!
//! ```text
//! cargo run -p rota-examples --bin embedded [-- path/to/rota.db]
//! ```

use std::time::Duration;

use rota::{Broker, ServeOptions};
use rota_examples::{AuditEvent, BillingClient, BillingServer, Ledger};
use rota_sqlite::SqliteBroker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rota-example.db"));
    let broker = SqliteBroker::open(&path).await?;
    println!("embedded broker at {}", path.display());

    let server = BillingServer::new(Ledger::default()).spawn(
        broker.clone(),
        "billing",
        ServeOptions::default().claim_wait(Duration::from_millis(200)),
    );
    let client = rota::Client::new(broker.clone());
    let billing = BillingClient::new(&client, "billing");

    let tenants = ["acme", "globex", "initech"];
    let mut calls = Vec::new();
    for tenant in tenants {
        for month in 10..=12 {
            let billing = billing.clone();
            calls.push(tokio::spawn(async move {
                (tenant, month, billing.invoice(tenant.into(), month).await)
            }));
        }
    }
    for call in calls {
        let (tenant, month, invoice) = call.await?;
        println!(
            "{tenant:>8} {month:>2}: {:>6.2}",
            invoice?.cents as f64 / 100.0
        );
    }
    for tenant in tenants {
        billing
            .audit(AuditEvent {
                tenant: tenant.into(),
                what: "invoiced for the quarter".into(),
            })
            .await?;
    }
    println!("audited so far: {}", billing.audited().await?);
    println!("left in the queue: {}", broker.queued("billing").await?);
    server.shutdown().await?;
    Ok(())
}
