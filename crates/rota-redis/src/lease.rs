//! What call servers and job workers share about a lease on Redis: each
//! grant is a key of its own with a TTL, `<prefix><name>#<epoch>`, whose
//! existence fences their scripts. Granting epoch N+1 of a name deletes the
//! key of epoch N (`lua/grant.lua`), so the earlier holder is refused at
//! once, whatever its own clock says.

use std::time::Duration;

use rota_core::BrokerError;

use crate::conn::Conn;
use crate::error::map;
use crate::scripts;

/// One grant of a lease.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    /// The lease's name, as its consumer reports it.
    pub(crate) name: String,
    pub(crate) epoch: u64,
    /// The consumer as the store's keys and scripts know it (its lease key,
    /// its held set, its stream consumer): `<name>#<epoch>` for a stable
    /// name, the fresh name itself otherwise.
    pub(crate) holder: String,
}

/// Grants a lease named `name` (or, with `None`, a fresh unique name) whose
/// keys start with `prefix`, counting epochs in the hash `epochs`.
pub(crate) async fn grant(
    conn: &mut Conn,
    epochs: &str,
    prefix: &str,
    name: Option<&str>,
    lease: Duration,
) -> Result<Grant, BrokerError> {
    let stable = name.is_some();
    let name = match name {
        Some(name) => name.to_owned(),
        None => uuid::Uuid::now_v7().simple().to_string(),
    };
    let epoch: u64 = scripts::GRANT
        .key(epochs)
        .arg(prefix)
        .arg(&name)
        .arg(ms(lease))
        .arg(if stable { "1" } else { "0" })
        .invoke_async(conn)
        .await
        .map_err(map)?;
    // A fresh name is never granted again: its one grant needs no suffix.
    let holder = if stable {
        format!("{name}#{epoch}")
    } else {
        name.clone()
    };
    Ok(Grant {
        holder,
        name,
        epoch,
    })
}

/// Milliseconds for PX/PEXPIRE arguments: never 0, which Redis refuses.
pub(crate) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Script results below zero mean the lease lapsed.
pub(crate) fn fenced(n: i64) -> Result<i64, BrokerError> {
    if n < 0 {
        Err(BrokerError::LeaseLost)
    } else {
        Ok(n)
    }
}

/// Extends the lease key by `lease`, only if it still exists.
pub(crate) async fn renew(conn: &mut Conn, key: &str, lease: Duration) -> Result<(), BrokerError> {
    let renewed: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(1)
        .arg("XX")
        .arg("PX")
        .arg(ms(lease))
        .query_async(conn)
        .await
        .map_err(map)?;
    renewed.map(|_| ()).ok_or(BrokerError::LeaseLost)
}
