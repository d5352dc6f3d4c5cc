//! The SQLite backend passes the conformance suites of calls, jobs and
//! schedules, each check on a database file of its own.

use rota_core::clock::{Clock, SystemClock};
use rota_sqlite::{SqliteBroker, SqliteOptions};

async fn open(clock: impl Clock) -> (tempfile::TempDir, SqliteBroker) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions::new(dir.path().join("rota.db")).clock(clock);
    let broker = SqliteBroker::open_with(options).await.unwrap();
    (dir, broker)
}

rota_conformance::rpc_tests!(open(SystemClock));
rota_conformance::jobs_tests!(open);
rota_conformance::schedules_tests!(open(SystemClock));
