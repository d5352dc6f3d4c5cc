//! Reply inboxes, the part every feature shares: calls answer into them,
//! and so do jobs whose outcome someone awaits. Replies are rows of
//! `rota_replies` with an expiry; a reader is woken in process, or polls.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rota_core::BrokerError;
use rota_core::{Inbox, Inboxes};
use rusqlite::{Connection, params};
use uuid::Uuid;

use crate::SqliteBroker;
use crate::tx::{self, now, write};

/// What every inbox address starts with.
const ADDRESS_PREFIX: &str = "sqlite:inbox:";

#[async_trait]
impl Inboxes for SqliteBroker {
    async fn open_inbox(&self) -> Result<Box<dyn Inbox>, BrokerError> {
        open(self).await
    }

    fn is_inbox(&self, address: &str) -> bool {
        crate::schedules::is_shard_address(address)
            || address
                .strip_prefix(ADDRESS_PREFIX)
                .is_some_and(|id| id.len() == 32 && Uuid::try_parse(id).is_ok())
    }
}

/// Opens an inbox on `broker`.
async fn open(broker: &SqliteBroker) -> Result<Box<dyn Inbox>, BrokerError> {
    // Opening an inbox is a good moment to sweep expired replies.
    broker.with(expire_replies).await?;
    let address = format!("{ADDRESS_PREFIX}{}", Uuid::now_v7().simple());
    Ok(Box::new(SqliteInbox {
        broker: broker.clone(),
        address,
    }))
}

struct SqliteInbox {
    broker: SqliteBroker,
    address: String,
}

#[async_trait]
impl Inbox for SqliteInbox {
    fn address(&self) -> &str {
        &self.address
    }

    async fn recv(&mut self, max: usize, wait: Duration) -> Result<Vec<Bytes>, BrokerError> {
        let key = format!("i:{}", self.address);
        let broker = self.broker.clone();
        let address = self.address.clone();
        let got = self
            .broker
            .wait_for(&key, wait, || {
                let (broker, address) = (broker.clone(), address.clone());
                async move {
                    broker
                        .with(move |c| take_replies(c, &address, max.max(1)))
                        .await
                }
            })
            .await?;
        Ok(got.into_iter().map(Bytes::from).collect())
    }
}

impl Drop for SqliteInbox {
    fn drop(&mut self) {
        self.broker.wakers().remove(&format!("i:{}", self.address));
    }
}

pub(crate) fn take_replies(
    conn: &mut Connection,
    inbox: &str,
    max: usize,
) -> tx::Result<Vec<Vec<u8>>> {
    write(conn, |tx| {
        let rows: Vec<(i64, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT id, payload FROM rota_replies WHERE inbox = ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![inbox, max as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        if let Some((last, _)) = rows.last() {
            tx.execute(
                "DELETE FROM rota_replies WHERE inbox = ?1 AND id <= ?2",
                params![inbox, last],
            )?;
        }
        Ok(rows.into_iter().map(|(_, p)| p).collect())
    })
}

/// Drops replies nobody read in time (their clients are gone).
pub(crate) fn expire_replies(conn: &mut Connection) -> tx::Result<usize> {
    write(conn, |tx| {
        Ok(tx.execute("DELETE FROM rota_replies WHERE expires_at < ?1", [now()])?)
    })
}
