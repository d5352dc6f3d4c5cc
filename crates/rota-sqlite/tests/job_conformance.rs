//! The SQLite backend passes the job store conformance suite, each check on
//! a database file of its own.

rota::job_conformance_tests!(async {
    let dir = tempfile::tempdir().unwrap();
    let broker = rota_sqlite::SqliteBroker::open(dir.path().join("rota.db"))
        .await
        .unwrap();
    (dir, broker)
});
