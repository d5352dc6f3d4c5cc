//! The SQLite backend passes the broker conformance suite, each check on a
//! database file of its own.

rota::conformance_tests!(async {
    let dir = tempfile::tempdir().unwrap();
    let broker = rota_sqlite::SqliteBroker::open(dir.path().join("rota.db"))
        .await
        .unwrap();
    (dir, broker)
});
