//! [`SqliteBroker`]: the [`Broker`] on one SQLite file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rota_core::BrokerError;
use rota_core::clock::{Clock, SharedClock};
use rusqlite::Connection;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::schedules::SCHEDULES_SCHEMA;
use crate::schema::{ADDED_COLUMNS, JOBS_SCHEMA, SCHEMA};
use crate::tx::{self, Error};

/// How hard a commit holds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// A committed message survives the process being killed at any
    /// instruction (WAL, `synchronous = NORMAL`). The last commits before a
    /// power loss or kernel crash may be lost.
    #[default]
    Process,
    /// Every commit is on disk before it returns (`synchronous = FULL`):
    /// survives power loss too, at the cost of an fsync per commit.
    Power,
}

/// Settings of the SQLite backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// The database file (created if missing).
    pub path: PathBuf,
    /// How hard commits hold on.
    pub durability: Durability,
    /// How long an unread reply is kept.
    pub reply_ttl: Duration,
    /// How often a waiting claim looks for work written by *other*
    /// processes (work written by this process wakes it at once).
    pub poll_interval: Duration,
    /// The clock of due times, timestamps and leases (leases here are rows
    /// with an expiry, shared by every process on the file): the system
    /// clock but in tests.
    pub clock: SharedClock,
}

impl SqliteOptions {
    /// Options for the file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            durability: Durability::Process,
            reply_ttl: Duration::from_secs(300),
            poll_interval: Duration::from_millis(50),
            clock: rota_core::clock::system(),
        }
    }

    /// Sets the clock (a [`ManualClock`](rota_core::clock::ManualClock) in
    /// tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the durability of commits.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets how long unread replies are kept.
    pub fn reply_ttl(mut self, ttl: Duration) -> Self {
        self.reply_ttl = ttl;
        self
    }

    /// Sets how often waiting claims poll for other processes' work.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(1));
        self
    }
}

/// A handle on a SQLite file as a rota broker. Cheap to clone.
#[derive(Clone)]
pub struct SqliteBroker {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<Connection>,
    options: SqliteOptions,
    /// Wakes waiters of this process: per service and per inbox.
    wakers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl std::fmt::Debug for SqliteBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBroker")
            .field("path", &self.inner.options.path)
            .finish_non_exhaustive()
    }
}

fn map(e: Error) -> BrokerError {
    match e {
        Error::LeaseLost => BrokerError::LeaseLost,
        Error::Sql(rusqlite::Error::SqliteFailure(f, m))
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            BrokerError::Unavailable(format!("database busy: {}", m.unwrap_or_default()))
        }
        // A full disk, a failing or a read-only one, is an outage once the
        // file was opened: the same write may pass once there is room again.
        // (A file that cannot be written at open is a configuration error.)
        Error::Sql(rusqlite::Error::SqliteFailure(f, m))
            if matches!(
                f.code,
                rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::ReadOnly
            ) =>
        {
            BrokerError::Unavailable(format!(
                "the database cannot write ({:?}): {}",
                f.code,
                m.unwrap_or_default()
            ))
        }
        Error::Sql(e) => BrokerError::Protocol(format!("sqlite: {e}")),
        Error::Broker(e) => e,
    }
}

impl SqliteBroker {
    /// Opens (or creates) the database at `path`.
    ///
    /// Cancel safe: the file is opened on a blocking thread that finishes on
    /// its own; the tables are made in one transaction.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, BrokerError> {
        Self::open_with(SqliteOptions::new(path.as_ref())).await
    }

    /// Opens (or creates) the database with `options`. An empty path is a
    /// [`BrokerError::Config`] error: SQLite would open a private temporary
    /// database that vanishes with the handle.
    ///
    /// Cancel safe: the file is opened on a blocking thread that finishes on
    /// its own; the tables are made in one transaction.
    pub async fn open_with(options: SqliteOptions) -> Result<Self, BrokerError> {
        if options.path.as_os_str().is_empty() {
            return Err(BrokerError::Config(
                "the database path is empty, which SQLite takes for a temporary database \
                 that no other process sees and that vanishes on close; give a file path \
                 (or \":memory:\" for a database in this process only)"
                    .into(),
            ));
        }
        let opened = options.clone();
        let conn = tokio::task::spawn_blocking(move || open(&opened))
            .await
            .map_err(|e| BrokerError::Protocol(e.to_string()))??;
        Ok(Self {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                options,
                wakers: Mutex::default(),
            }),
        })
    }

    /// The options in force.
    pub fn options(&self) -> &SqliteOptions {
        &self.inner.options
    }

    /// Runs `f` with the connection on a blocking thread.
    pub(crate) async fn with<T, F>(&self, f: F) -> Result<T, BrokerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> tx::Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut conn = inner.conn.lock().unwrap_or_else(|e| e.into_inner());
            tx::on_clock(&inner.options.clock, || f(&mut conn))
        })
        .await
        .map_err(|e| BrokerError::Protocol(format!("sqlite task failed: {e}")))?
        .map_err(map)
    }

    /// Makes this handle's connection refuse every write (`PRAGMA
    /// query_only`), as a disk that filled up or went read-only does, or
    /// accept them again. For tests of outages; writes refused this way are
    /// retried like any outage.
    #[doc(hidden)]
    pub async fn refuse_writes_for_tests(&self, refuse: bool) -> Result<(), BrokerError> {
        self.with(move |conn| {
            conn.pragma_update(None, "query_only", refuse)?;
            Ok(())
        })
        .await
    }

    pub(crate) fn wakers(&self) -> MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn waker(&self, key: &str) -> Arc<Notify> {
        Arc::clone(self.wakers().entry(key.to_owned()).or_default())
    }

    pub(crate) fn wake(&self, key: &str) {
        if let Some(n) = self.wakers().get(key) {
            n.notify_waiters();
            n.notify_one();
        }
    }

    /// Runs `attempt` until it yields something or `wait` passes, waking on
    /// this process's writes and polling for other processes'.
    pub(crate) async fn wait_for<T, F, Fut>(
        &self,
        key: &str,
        wait: Duration,
        mut attempt: F,
    ) -> Result<Vec<T>, BrokerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Vec<T>, BrokerError>>,
    {
        let until = Instant::now() + wait;
        let waker = self.waker(key);
        loop {
            let notified = waker.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = attempt().await?;
            if !got.is_empty() {
                return Ok(got);
            }
            let now = Instant::now();
            if now >= until {
                return Ok(got);
            }
            let next = until.min(now + self.inner.options.poll_interval);
            let _ = tokio::time::timeout_at(next, notified).await;
        }
    }
}

/// Adds the columns a file made by an earlier version lacks.
fn add_columns(conn: &Connection) -> rusqlite::Result<()> {
    for (table, column, definition) in ADDED_COLUMNS {
        let has: bool = conn.query_row(
            &format!("SELECT count(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |r| r.get(0),
        )?;
        if !has {
            match conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            )) {
                // Another process opening the file added it meanwhile.
                Err(e) if e.to_string().contains("duplicate column name") => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// Whether SQLite refused for another connection's lock.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// The `application_id` in the header of a rota database: "rota" in ASCII.
const APPLICATION_ID: i64 = 0x726f_7461;

/// What makes the file behind `conn` another program's database, if
/// anything: another application id in its header, or tables of its own
/// and no id. A new file, or one made before rota marked its files, is
/// rota's to take.
fn other_owner(conn: &Connection) -> rusqlite::Result<Option<String>> {
    let id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    if id == APPLICATION_ID {
        return Ok(None);
    }
    if id != 0 {
        return Ok(Some(format!("application id {id:#x}")));
    }
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name NOT LIKE 'rota\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         ORDER BY name LIMIT 3",
    )?;
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((!tables.is_empty()).then(|| format!("tables {}", tables.join(", "))))
}

fn open(options: &SqliteOptions) -> Result<Connection, BrokerError> {
    let conn = Connection::open(&options.path)
        .map_err(|e| BrokerError::Config(format!("cannot open {}: {e}", options.path.display())))?;
    // Before anything that locks: processes opening a fresh file at once
    // (a worker and a command, say) wait for each other's schema and WAL
    // switch rather than fail.
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| BrokerError::Config(format!("cannot open {}: {e}", options.path.display())))?;
    let synchronous = match options.durability {
        Durability::Process => "NORMAL",
        Durability::Power => "FULL",
    };
    let cannot = |e: &dyn std::fmt::Display| {
        BrokerError::Config(format!(
            "cannot prepare {} as a rota database: {e}",
            options.path.display()
        ))
    };
    if let Some(owner) = other_owner(&conn).map_err(|e| cannot(&e))? {
        return Err(cannot(&format!(
            "it is another program's database ({owner}); rota keeps a file of its own"
        )));
    }
    let prepare = || {
        conn.execute_batch(&format!(
            "PRAGMA application_id = {APPLICATION_ID};
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {synchronous};
             PRAGMA busy_timeout = 5000;
             PRAGMA foreign_keys = OFF;
             {SCHEMA}
             {JOBS_SCHEMA}
             {SCHEDULES_SCHEMA}"
        ))
        .and_then(|()| add_columns(&conn))
    };
    // SQLite answers "busy" at once, without waiting, where waiting could
    // deadlock (the switch to WAL, a read upgraded to a write while another
    // wrote): the schema is made again, every step of it idempotent, until
    // the others are done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match prepare() {
            Ok(()) => break,
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(cannot(&e)),
        }
    }
    // Room for every statement of the broker and the job store, so that
    // none is prepared again on the hot paths.
    conn.set_prepared_statement_cache_capacity(128);
    // Keep a cached statement's plan whatever values are bound to it (the
    // query planner stability guarantee): without it SQLite re-plans a
    // statement whose plan looked at a bound value each time it is reused,
    // several times per claim.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .map_err(|e| BrokerError::Config(format!("cannot configure SQLite: {e}")))?;
    Ok(conn)
}
