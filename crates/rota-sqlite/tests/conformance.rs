//! The SQLite backend passes the conformance suites of calls and jobs, each
//! check on a database file of its own.

async fn open() -> (tempfile::TempDir, rota_sqlite::SqliteBroker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = rota_sqlite::SqliteBroker::open(dir.path().join("rota.db"))
        .await
        .unwrap();
    (dir, broker)
}

rota_conformance::rpc_tests!(open());
rota_conformance::jobs_tests!(open());
