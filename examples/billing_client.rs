//! Calls the billing service over Redis (start `billing-server` first).
//!
//! ```text
//! cargo run -p rota-examples --bin billing-client -- redis://127.0.0.1:6379
//! ```

use std::time::Duration;

use rota_examples::{AuditEvent, BillingClient};
use rota_redis::RedisBroker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let broker = RedisBroker::connect(&url).await?;
    // The default timeout (30 s) outlasts a redelivery: should the server
    // answering a call die, another takes the call over within 16.25 s
    // (the servers' 10 s lease, then a reap). A 5 s timeout would give up
    // before that.
    let client = rota::Client::new(broker);
    let billing = BillingClient::new(&client, "billing").with_timeout(Duration::from_secs(30));
    for tenant in ["acme", "globex", "nobody"] {
        match billing.invoice(tenant.into(), 11).await {
            Ok(invoice) => println!("{tenant}: {} cents", invoice.cents),
            Err(e) if e.is_retryable() => println!("{tenant}: try again later ({e})"),
            Err(e) => println!("{tenant}: {e}"),
        }
        billing
            .audit(AuditEvent {
                tenant: tenant.into(),
                what: "asked for an invoice".into(),
            })
            .await?;
    }
    println!(
        "events audited by the server that answered: {}",
        billing.audited().await?
    );
    Ok(())
}
