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

#[tokio::test]
async fn an_empty_path_is_refused_rather_than_a_temporary_database_opened() {
    // SQLite opens a private temporary database for "": everything written
    // would vanish with the handle, and no other process would see it.
    let err = rota_sqlite::SqliteBroker::open("").await.unwrap_err();
    assert!(matches!(err, rota_core::BrokerError::Config(_)), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
    assert!(err.to_string().contains(":memory:"), "{err}");
    // The way the message points to opens.
    rota_sqlite::SqliteBroker::open(":memory:").await.unwrap();
}
