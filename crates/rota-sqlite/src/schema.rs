//! The tables. Each statement is idempotent, so opening a file twice, or an
//! older file, is safe.

/// Applied on every open.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rota_messages (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    service  TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    attempt  INTEGER NOT NULL DEFAULT 1,
    -- NULL while queued; the holding consumer's id once claimed.
    consumer TEXT
);
CREATE INDEX IF NOT EXISTS rota_messages_queued
    ON rota_messages (service, id) WHERE consumer IS NULL;
CREATE INDEX IF NOT EXISTS rota_messages_held
    ON rota_messages (consumer) WHERE consumer IS NOT NULL;

CREATE TABLE IF NOT EXISTS rota_consumers (
    id          TEXT    PRIMARY KEY,
    service     TEXT    NOT NULL,
    -- Unix milliseconds.
    lease_until INTEGER NOT NULL,
    -- The grant's fencing token (see rota_lease_epochs).
    epoch       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rota_consumers_service
    ON rota_consumers (service, lease_until);

CREATE TABLE IF NOT EXISTS rota_dead (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    service  TEXT    NOT NULL,
    payload  BLOB    NOT NULL,
    reason   TEXT    NOT NULL,
    attempts INTEGER NOT NULL,
    at_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rota_dead_service ON rota_dead (service, id);

-- The latest epoch granted per lease name, per consumers' table: epochs
-- only grow, even once a consumer's row is gone.
CREATE TABLE IF NOT EXISTS rota_lease_epochs (
    lease TEXT    PRIMARY KEY,
    epoch INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rota_replies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    inbox      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rota_replies_inbox ON rota_replies (inbox, id);
CREATE INDEX IF NOT EXISTS rota_replies_expiry ON rota_replies (expires_at);
";

/// The tables of the job store, applied on every open after [`SCHEMA`].
///
/// * `rota_jobs` — one row per retained job; `seq` (the rowid) is the
///   enqueue order. `state` is 0 scheduled, 1 queued, 2 running,
///   3 succeeded, 4 failed, 5 cancelled, 6 dead. `done_seq` orders finished
///   jobs (succeeded, failed, cancelled) for retention, `dead_seq` dead ones
///   for listing; both come from the queue's `clock`. Its indexes are the
///   queue's structure: `rota_jobs_queued` holds the queued jobs by
///   partition, tenant and rank (the ring the claims go round, and each
///   partition's order); `rota_jobs_running` the running ones by tenant and
///   holder (the tenant cap, hand-backs), as many entries as jobs running.
/// * `rota_job_queues` — per queue: the `clock` (final orders), the count
///   of finished records and the retention in force.
/// * `rota_job_rings` — per queue: the partition served last (the claims'
///   cursor in the ring).
/// * `rota_job_consumers` — the leases of job consumers.
///
/// Nothing is kept per partition or per tenant, so the cost of a job does
/// not grow with their number. (`rota_job_partitions` and
/// `rota_job_tenants`, counters of earlier versions, are dropped.)
pub(crate) const JOBS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rota_jobs (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             BLOB    NOT NULL,
    queue          TEXT    NOT NULL,
    partition      TEXT    NOT NULL,
    tenant         TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    payload        BLOB    NOT NULL,
    run_id         TEXT,
    state          INTEGER NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 1,
    priority       INTEGER NOT NULL DEFAULT 0,
    -- Unix milliseconds.
    enqueued_ms    INTEGER NOT NULL,
    due_ms         INTEGER NOT NULL,
    max_attempts   INTEGER,
    timeout_ms     INTEGER,
    deadline_ms    INTEGER,
    headers        TEXT,
    reply_to       TEXT,
    idem_key       TEXT,
    -- The holding consumer and when it claimed the job, while running.
    consumer       TEXT,
    claimed_at_ms  INTEGER,
    -- The record: attempts (a JSON array), result (JSON), reason.
    attempts       TEXT    NOT NULL DEFAULT '[]',
    result         TEXT,
    reason         TEXT,
    finished_at_ms INTEGER,
    done_seq       INTEGER,
    dead_seq       INTEGER,
    -- 1 once its cancellation was asked for while it ran.
    cancel_req     INTEGER NOT NULL DEFAULT 0
);
-- A job id is unique within its queue (lookups name the queue).
DROP INDEX IF EXISTS rota_jobs_id;
CREATE UNIQUE INDEX IF NOT EXISTS rota_jobs_queue_id ON rota_jobs (queue, id);
CREATE INDEX IF NOT EXISTS rota_jobs_queued
    ON rota_jobs (queue, partition, tenant, priority DESC, due_ms, seq) WHERE state = 1;
CREATE INDEX IF NOT EXISTS rota_jobs_scheduled
    ON rota_jobs (queue, due_ms) WHERE state = 0;
DROP INDEX IF EXISTS rota_jobs_held;
CREATE INDEX IF NOT EXISTS rota_jobs_running
    ON rota_jobs (queue, tenant, consumer) WHERE consumer IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS rota_jobs_idem
    ON rota_jobs (queue, idem_key) WHERE idem_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS rota_jobs_done
    ON rota_jobs (queue, done_seq, finished_at_ms, state) WHERE done_seq IS NOT NULL;
CREATE INDEX IF NOT EXISTS rota_jobs_dead
    ON rota_jobs (queue, dead_seq) WHERE dead_seq IS NOT NULL;

CREATE TABLE IF NOT EXISTS rota_job_queues (
    queue        TEXT    PRIMARY KEY,
    clock        INTEGER NOT NULL DEFAULT 0,
    finished     INTEGER NOT NULL DEFAULT 0,
    max_finished INTEGER NOT NULL,
    max_age_ms   INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL DEFAULT 25
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS rota_job_rings (
    queue  TEXT NOT NULL PRIMARY KEY,
    cursor TEXT NOT NULL
) WITHOUT ROWID;
-- Partitions that became ready (queued jobs after none), in that order
-- (n: the seq of the job that made them so): claims serve them first. A
-- row outlives its partition's readiness when the partition empties some
-- other way (its jobs cancelled, or served in turn) and is dropped when a
-- claim meets it; so a partition may have more than one, each served once.
CREATE TABLE IF NOT EXISTS rota_job_fresh (
    queue     TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    partition TEXT    NOT NULL,
    PRIMARY KEY (queue, n)
) WITHOUT ROWID;
DROP TABLE IF EXISTS rota_job_partitions;
DROP TABLE IF EXISTS rota_job_tenants;

CREATE TABLE IF NOT EXISTS rota_job_consumers (
    id          TEXT    PRIMARY KEY,
    queue       TEXT    NOT NULL,
    -- Unix milliseconds.
    lease_until INTEGER NOT NULL,
    -- The grant's fencing token (see rota_lease_epochs).
    epoch       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS rota_job_consumers_queue
    ON rota_job_consumers (queue, lease_until);
";

/// Columns added since the first release, for files made before them:
/// `(table, column, definition)`.
pub(crate) const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    ("rota_consumers", "epoch", "INTEGER NOT NULL DEFAULT 0"),
    ("rota_job_consumers", "epoch", "INTEGER NOT NULL DEFAULT 0"),
    (
        "rota_job_queues",
        "max_attempts",
        "INTEGER NOT NULL DEFAULT 25",
    ),
    ("rota_jobs", "cancel_req", "INTEGER NOT NULL DEFAULT 0"),
];
