//! The transactions behind calls, one function each, each one `IMMEDIATE`
//! transaction (see [`write`]).

use rota_core::ReapStats;
use rota_core::rpc::{DeadLetter, Delivery};
use rusqlite::{Connection, params};

use crate::lease::{Lease, Table};
use crate::tx::{Result, ms, now, write};

fn tag(id: i64) -> String {
    id.to_string()
}

fn parse_tag(tag: &str) -> Option<i64> {
    tag.parse().ok()
}

pub(crate) fn publish(conn: &mut Connection, service: &str, payload: &[u8]) -> Result<()> {
    write(conn, |tx| {
        tx.execute(
            "INSERT INTO rota_messages (service, payload) VALUES (?1, ?2)",
            params![service, payload],
        )?;
        Ok(())
    })
}

/// Grants the lease `key` on `service`: the next epoch, taking over from
/// an earlier holder of the key, whose messages are handed back as if its
/// lease had lapsed.
pub(crate) fn register(
    conn: &mut Connection,
    service: &str,
    key: &str,
    lease: std::time::Duration,
    max_deliveries: u32,
) -> Result<Lease> {
    write(conn, |tx| {
        if Lease::held(tx, Table::Calls, key)? {
            hand_back(tx, key, max_deliveries)?;
        }
        let epoch = Lease::next_epoch(tx, Table::Calls, key)?;
        tx.execute(
            "INSERT INTO rota_consumers (id, service, lease_until, epoch) VALUES (?1, ?2, ?3, ?4)",
            params![key, service, now() + ms(lease), epoch],
        )?;
        Ok(Lease {
            table: Table::Calls,
            key: key.to_owned(),
            epoch,
        })
    })
}

pub(crate) fn claim(
    conn: &mut Connection,
    service: &str,
    lease: &Lease,
    max: usize,
) -> Result<Vec<Delivery>> {
    let consumer = lease.key.as_str();
    write(conn, |tx| {
        lease.check(tx)?;
        let mut stmt = tx.prepare_cached(
            "UPDATE rota_messages SET consumer = ?1
             WHERE id IN (SELECT id FROM rota_messages
                          WHERE service = ?2 AND consumer IS NULL
                          ORDER BY id LIMIT ?3)
             RETURNING id, attempt, payload",
        )?;
        let mut rows: Vec<(i64, Delivery)> = stmt
            .query_map(params![consumer, service, max as i64], |r| {
                let id: i64 = r.get(0)?;
                let attempt: i64 = r.get(1)?;
                let payload: Vec<u8> = r.get(2)?;
                Ok((
                    id,
                    Delivery {
                        tag: tag(id),
                        attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                        payload: payload.into(),
                    },
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.sort_by_key(|(id, _)| *id);
        Ok(rows.into_iter().map(|(_, d)| d).collect())
    })
}

pub(crate) fn renew(
    conn: &mut Connection,
    lease: &Lease,
    length: std::time::Duration,
) -> Result<()> {
    write(conn, |tx| lease.renew(tx, length))
}

/// A delivery's tag and, if it has one, its reply and where to send it.
pub(crate) type Done = (String, Option<(String, Vec<u8>)>);

/// Replies, then acknowledgements, in one transaction.
pub(crate) fn complete(
    conn: &mut Connection,
    lease: &Lease,
    done: &[Done],
    reply_ttl: std::time::Duration,
) -> Result<usize> {
    let consumer = lease.key.as_str();
    write(conn, |tx| {
        lease.check(tx)?;
        let expires = now() + ms(reply_ttl);
        let mut reply = tx.prepare_cached(
            "INSERT INTO rota_replies (inbox, payload, expires_at) VALUES (?1, ?2, ?3)",
        )?;
        let mut ack =
            tx.prepare_cached("DELETE FROM rota_messages WHERE id = ?1 AND consumer = ?2")?;
        let mut acked = 0;
        for (tag, r) in done {
            if let Some((inbox, payload)) = r {
                reply.execute(params![inbox, payload, expires])?;
            }
            if let Some(id) = parse_tag(tag) {
                acked += ack.execute(params![id, consumer])?;
            }
        }
        Ok(acked)
    })
}

pub(crate) fn release(
    conn: &mut Connection,
    lease: &Lease,
    tags: &[String],
    attempted: bool,
) -> Result<()> {
    let consumer = lease.key.as_str();
    write(conn, |tx| {
        lease.check(tx)?;
        let mut stmt = tx.prepare_cached(
            "UPDATE rota_messages SET consumer = NULL, attempt = attempt + ?1
             WHERE id = ?2 AND consumer = ?3",
        )?;
        for id in tags.iter().filter_map(|t| parse_tag(t)) {
            stmt.execute(params![i64::from(attempted), id, consumer])?;
        }
        Ok(())
    })
}

pub(crate) fn bury(conn: &mut Connection, lease: &Lease, tag: &str, reason: &str) -> Result<()> {
    let consumer = lease.key.as_str();
    write(conn, |tx| {
        lease.check(tx)?;
        let Some(id) = parse_tag(tag) else {
            return Ok(());
        };
        tx.execute(
            "INSERT INTO rota_dead (service, payload, reason, attempts, at_ms)
             SELECT service, payload, ?1, attempt, ?2 FROM rota_messages
             WHERE id = ?3 AND consumer = ?4",
            params![reason, now(), id, consumer],
        )?;
        tx.execute(
            "DELETE FROM rota_messages WHERE id = ?1 AND consumer = ?2",
            params![id, consumer],
        )?;
        Ok(())
    })
}

/// Hands back the messages of `service`'s lapsed consumers and forgets
/// those consumers.
pub(crate) fn reap(conn: &mut Connection, service: &str, max_deliveries: u32) -> Result<ReapStats> {
    write(conn, |tx| {
        let lapsed: Vec<String> = tx
            .prepare_cached(
                "SELECT id FROM rota_consumers WHERE service = ?1 AND lease_until <= ?2",
            )?
            .query_map(params![service, now()], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stats = ReapStats::default();
        for consumer in lapsed {
            let s = hand_back(tx, &consumer, max_deliveries)?;
            stats.requeued += s.requeued;
            stats.dead_lettered += s.dead_lettered;
        }
        Ok(stats)
    })
}

/// Hands back what lease `consumer` held — each message to the queue with
/// attempt + 1, or to the dead letters once delivered `max_deliveries`
/// times — and forgets the lease's row.
fn hand_back(
    tx: &rusqlite::Transaction<'_>,
    consumer: &str,
    max_deliveries: u32,
) -> Result<ReapStats> {
    let mut stats = ReapStats::default();
    let reason = format!("the lease of consumer {consumer} lapsed during the last delivery");
    stats.dead_lettered += tx.execute(
        "INSERT INTO rota_dead (service, payload, reason, attempts, at_ms)
         SELECT service, payload,
                'delivered ' || attempt || ' times (the maximum); ' || ?1,
                attempt, ?2
         FROM rota_messages WHERE consumer = ?3 AND attempt >= ?4",
        params![reason, now(), consumer, max_deliveries],
    )?;
    tx.execute(
        "DELETE FROM rota_messages WHERE consumer = ?1 AND attempt >= ?2",
        params![consumer, max_deliveries],
    )?;
    stats.requeued += tx.execute(
        "UPDATE rota_messages SET consumer = NULL, attempt = attempt + 1 WHERE consumer = ?1",
        [consumer],
    )?;
    tx.execute("DELETE FROM rota_consumers WHERE id = ?1", [consumer])?;
    Ok(stats)
}

/// Gives back what this grant of the lease holds, as it is (the attempts
/// not counted), and forgets it — unless the lease was granted again since.
pub(crate) fn close(conn: &mut Connection, lease: &Lease) -> Result<()> {
    write(conn, |tx| {
        if lease.is_current(tx)? {
            tx.execute(
                "UPDATE rota_messages SET consumer = NULL WHERE consumer = ?1",
                [&lease.key],
            )?;
            tx.execute("DELETE FROM rota_consumers WHERE id = ?1", [&lease.key])?;
        }
        Ok(())
    })
}

pub(crate) fn queued(conn: &mut Connection, service: &str) -> Result<usize> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM rota_messages WHERE service = ?1 AND consumer IS NULL",
        [service],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(crate) fn dead_letters(
    conn: &mut Connection,
    service: &str,
    limit: usize,
) -> Result<Vec<DeadLetter>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, reason, attempts, at_ms, payload FROM rota_dead
         WHERE service = ?1 ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![service, limit as i64], |r| {
            let id: i64 = r.get(0)?;
            let attempts: i64 = r.get(2)?;
            let at: i64 = r.get(3)?;
            Ok(DeadLetter {
                id: id.to_string(),
                reason: r.get(1)?,
                attempts: u32::try_from(attempts).unwrap_or(0),
                at_ms: u64::try_from(at).unwrap_or(0),
                payload: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub(crate) fn requeue_dead(
    conn: &mut Connection,
    service: &str,
    id: Option<&str>,
) -> Result<usize> {
    write(conn, |tx| {
        let id: Option<i64> = match id {
            Some(s) => match s.parse() {
                Ok(n) => Some(n),
                Err(_) => return Ok(0),
            },
            None => None,
        };
        let n = tx.execute(
            "INSERT INTO rota_messages (service, payload)
             SELECT service, payload FROM rota_dead
             WHERE service = ?1 AND (?2 IS NULL OR id = ?2) ORDER BY id",
            params![service, id],
        )?;
        tx.execute(
            "DELETE FROM rota_dead WHERE service = ?1 AND (?2 IS NULL OR id = ?2)",
            params![service, id],
        )?;
        Ok(n)
    })
}

pub(crate) fn purge_dead(conn: &mut Connection, service: &str) -> Result<usize> {
    write(conn, |tx| {
        Ok(tx.execute("DELETE FROM rota_dead WHERE service = ?1", [service])?)
    })
}
