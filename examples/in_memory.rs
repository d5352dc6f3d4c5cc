//! One process, no server needed: serve the billing contract on the
//! in-memory broker and call it from several tasks.
//!
//! ```text
//! cargo run -p rota-examples --bin in-memory
//! ```

use rota::{CallError, ServeOptions};
use rota_examples::{AuditEvent, BillingClient, BillingError, BillingServer, Ledger};
use rota_memory::MemoryBroker;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let broker = MemoryBroker::new();
    // Two servers share the service's requests.
    let servers = [
        BillingServer::new(Ledger::default()).spawn(
            broker.clone(),
            "billing",
            ServeOptions::default(),
        ),
        BillingServer::new(Ledger::default()).spawn(
            broker.clone(),
            "billing",
            ServeOptions::default(),
        ),
    ];

    let client = rota::Client::new(broker.clone());
    let billing = BillingClient::new(&client, "billing");
    for (tenant, month) in [("acme", 11), ("globex", 11), ("initech", 12)] {
        let invoice = billing.invoice(tenant.into(), month).await?;
        println!(
            "{tenant:>8} {month:>2}: {:>6.2}",
            invoice.cents as f64 / 100.0
        );
        billing
            .audit(AuditEvent {
                tenant: tenant.into(),
                what: "invoiced".into(),
            })
            .await?;
    }

    // The service's own errors arrive typed.
    match billing.invoice("umbrella".into(), 11).await {
        Err(CallError::Service(BillingError::UnknownTenant(t))) => {
            println!("umbrella: refused, unknown tenant {t:?}");
        }
        other => anyhow::bail!("expected an unknown tenant, got {other:?}"),
    }

    // Many calls at once from one cheap, cloneable client.
    let calls = (1..=12).map(|month| {
        let billing = billing.clone();
        tokio::spawn(async move { billing.invoice("acme".into(), month).await })
    });
    let mut year = 0;
    for call in calls {
        year += call.await??.cents;
    }
    println!("    acme year: {:>6.2}", year as f64 / 100.0);

    for server in servers {
        server.shutdown().await?;
    }
    Ok(())
}
