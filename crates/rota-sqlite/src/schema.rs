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
    lease_until INTEGER NOT NULL
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

CREATE TABLE IF NOT EXISTS rota_replies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    inbox      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS rota_replies_inbox ON rota_replies (inbox, id);
CREATE INDEX IF NOT EXISTS rota_replies_expiry ON rota_replies (expires_at);
";
