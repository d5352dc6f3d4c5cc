//! Leases, which every feature's consumers hold the same way: a row of
//! their table (`rota_consumers` for calls, `rota_job_consumers` for jobs)
//! with `lease_until` and the `epoch` of the grant. A grant takes the next
//! epoch of the lease's name from `rota_lease_epochs`, so epochs only grow,
//! even after the row is gone; every fenced write checks both the time and
//! the epoch, so a holder whose lease was granted again is refused even
//! while its own clock says the lease runs.

use rusqlite::{OptionalExtension, Transaction, params};

use crate::tx::{Error, Result, ms, now};

/// The consumers' table a lease lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    /// `rota_consumers`: servers of calls.
    Calls,
    /// `rota_job_consumers`: workers of jobs.
    Jobs,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Calls => "rota_consumers",
            Table::Jobs => "rota_job_consumers",
        }
    }
}

/// One grant of a lease: the key its held work is marked with, and its
/// epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) table: Table,
    pub(crate) key: String,
    pub(crate) epoch: i64,
}

impl Lease {
    /// The row key of a consumer of `scope` (a service or a queue): its
    /// name within the scope, or a fresh unique one.
    pub(crate) fn key(scope: &str, name: Option<&str>) -> String {
        match name {
            // Names hold no '/', so scope and name cannot run together.
            Some(name) => format!("{scope}/{name}"),
            None => uuid::Uuid::now_v7().simple().to_string(),
        }
    }

    /// Whether a row of `table` holds key `key` (a live or lapsed holder).
    pub(crate) fn held(tx: &Transaction<'_>, table: Table, key: &str) -> Result<bool> {
        let sql = format!("SELECT 1 FROM {} WHERE id = ?1", table.name());
        Ok(tx
            .prepare_cached(&sql)?
            .query_row([key], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The next epoch of `key` in `table`.
    pub(crate) fn next_epoch(tx: &Transaction<'_>, table: Table, key: &str) -> Result<i64> {
        Ok(tx
            .prepare_cached(
                "INSERT INTO rota_lease_epochs (lease, epoch) VALUES (?1, 1)
                 ON CONFLICT (lease) DO UPDATE SET epoch = epoch + 1
                 RETURNING epoch",
            )?
            .query_row([format!("{}:{key}", table.name())], |r| r.get(0))?)
    }

    /// Fails with `LeaseLost` unless this grant holds: its row is there
    /// with this epoch and has not lapsed.
    pub(crate) fn check(&self, tx: &Transaction<'_>) -> Result<()> {
        let sql = format!(
            "SELECT lease_until FROM {} WHERE id = ?1 AND epoch = ?2",
            self.table.name()
        );
        let until: Option<i64> = tx
            .prepare_cached(&sql)?
            .query_row(params![self.key, self.epoch], |r| r.get(0))
            .optional()?;
        match until {
            Some(until) if until > now() => Ok(()),
            _ => Err(Error::LeaseLost),
        }
    }

    /// Extends the lease by `lease` from now, unless it lapsed or was
    /// granted again.
    pub(crate) fn renew(&self, tx: &Transaction<'_>, lease: std::time::Duration) -> Result<()> {
        let sql = format!(
            "UPDATE {} SET lease_until = ?1 WHERE id = ?2 AND epoch = ?3 AND lease_until > ?4",
            self.table.name()
        );
        let t = now();
        let n = tx.prepare_cached(&sql)?.execute(params![
            t.saturating_add(ms(lease)),
            self.key,
            self.epoch,
            t
        ])?;
        if n == 0 {
            Err(Error::LeaseLost)
        } else {
            Ok(())
        }
    }

    /// Whether this grant is still the latest of its key (lapsed or not).
    pub(crate) fn is_current(&self, tx: &Transaction<'_>) -> Result<bool> {
        let sql = format!(
            "SELECT 1 FROM {} WHERE id = ?1 AND epoch = ?2",
            self.table.name()
        );
        Ok(tx
            .prepare_cached(&sql)?
            .query_row(params![self.key, self.epoch], |_| Ok(()))
            .optional()?
            .is_some())
    }
}
