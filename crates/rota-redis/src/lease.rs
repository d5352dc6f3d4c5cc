//! What call servers and job workers share about a lease on Redis: a key
//! with a TTL whose existence fences their scripts.

use std::time::Duration;

use redis::aio::ConnectionManager;
use rota_core::BrokerError;

use crate::error::map;

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
pub(crate) async fn renew(
    conn: &mut ConnectionManager,
    key: &str,
    lease: Duration,
) -> Result<(), BrokerError> {
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
