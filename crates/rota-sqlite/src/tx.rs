//! What every feature's transactions share: the error type, the clock in
//! milliseconds, and [`write`], one `IMMEDIATE` transaction. Transactions
//! run on a blocking thread with the connection locked, so concurrent
//! processes serialize on the file.

use rota_core::time::now_ms;
use rusqlite::{Connection, TransactionBehavior};

/// A failed transaction: SQLite's error, a lapsed lease, or a refusal.
#[derive(Debug)]
pub(crate) enum Error {
    Sql(rusqlite::Error),
    LeaseLost,
    /// Refused as it stands (bad input, a record that does not decode).
    Broker(rota_core::BrokerError),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Sql(e)
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

pub(crate) fn now() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

pub(crate) fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs `f` in an IMMEDIATE transaction and commits.
pub(crate) fn write<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let out = f(&tx)?;
    tx.commit()?;
    Ok(out)
}
