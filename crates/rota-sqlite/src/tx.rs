//! What every feature's transactions share: the error type, the clock in
//! milliseconds, and [`write`], one `IMMEDIATE` transaction. Transactions
//! run on a blocking thread with the connection locked, so concurrent
//! processes serialize on the file.

use std::cell::RefCell;
use std::sync::Arc;

use rota_core::clock::SharedClock;
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

thread_local! {
    /// The clock of the transaction running on this thread.
    static CLOCK: RefCell<Option<SharedClock>> = const { RefCell::new(None) };
}

/// Runs `f` (transactions on the calling, blocking thread) with `clock` as
/// the one [`now`] reads. A thread-local rather than an argument of every
/// transaction: the clock is the broker's, and one call runs at a time on a
/// thread.
pub(crate) fn on_clock<T>(clock: &SharedClock, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<SharedClock>);
    impl Drop for Reset {
        fn drop(&mut self) {
            CLOCK.with(|c| *c.borrow_mut() = self.0.take());
        }
    }
    let _reset = Reset(CLOCK.with(|c| c.borrow_mut().replace(Arc::clone(clock))));
    f()
}

/// Milliseconds since the epoch by the broker's clock (the system's outside
/// a transaction).
pub(crate) fn now() -> i64 {
    let ms = CLOCK.with(|c| {
        c.borrow()
            .as_ref()
            .map_or_else(now_ms, |clock| clock.now_ms())
    });
    i64::try_from(ms).unwrap_or(i64::MAX)
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
