//! The contract the examples share: a billing service.
//!
//! `in-memory` serves and calls it in one process; `billing-server` and
//! `billing-client` do it over Redis, from as many processes as you like.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// A monthly invoice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invoice {
    /// Who pays.
    pub tenant: String,
    /// For which month, 1 to 12.
    pub month: u32,
    /// How much, in cents.
    pub cents: u64,
}

/// Something to audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Who did it.
    pub tenant: String,
    /// What happened.
    pub what: String,
}

/// The billing service's own errors; they travel typed to the caller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum BillingError {
    /// No such tenant.
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    /// Months run from 1 to 12.
    #[error("month {0} is not between 1 and 12")]
    BadMonth(u32),
}

/// Billing, as a contract.
#[rota::contract]
pub trait Billing {
    /// The invoice of `tenant` for `month`.
    async fn invoice(&self, tenant: String, month: u32) -> Result<Invoice, BillingError>;

    /// Records an event; the caller does not wait for it to be handled.
    #[rota(oneway)]
    async fn audit(&self, event: AuditEvent);

    /// How many events were audited so far. (A per-method timeout; like any
    /// timeout it should outlast a redelivery, 16.25 s with the defaults.)
    #[rota(timeout_ms = 20_000)]
    async fn audited(&self) -> u64;
}

/// An in-memory implementation with a fixed price list.
#[derive(Debug, Default)]
pub struct Ledger {
    events: Mutex<HashMap<String, u64>>,
}

impl Billing for Ledger {
    async fn invoice(&self, tenant: String, month: u32) -> Result<Invoice, BillingError> {
        if !(1..=12).contains(&month) {
            return Err(BillingError::BadMonth(month));
        }
        let monthly = match tenant.as_str() {
            "acme" => 4_900,
            "globex" => 12_900,
            "initech" => 990,
            _ => return Err(BillingError::UnknownTenant(tenant)),
        };
        Ok(Invoice {
            tenant,
            month,
            cents: monthly,
        })
    }

    async fn audit(&self, event: AuditEvent) {
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        *events.entry(event.tenant).or_default() += 1;
    }

    async fn audited(&self) -> u64 {
        let events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        events.values().sum()
    }
}
