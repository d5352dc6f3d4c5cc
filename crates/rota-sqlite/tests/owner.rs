//! A file is rota's to take when it is new, or marked as rota's, or made
//! by a rota that did not mark its files yet; another program's database
//! is refused before anything is written to it.

use rota_core::BrokerError;
use rota_sqlite::SqliteBroker;

fn application_id(path: &std::path::Path) -> i64 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn only_files_that_are_rotas_or_new_are_opened() {
    let dir = tempfile::tempdir().unwrap();

    let fresh = dir.path().join("fresh.db");
    drop(SqliteBroker::open(&fresh).await.unwrap());
    assert_eq!(application_id(&fresh), 0x726f_7461, "a new file is marked");
    drop(SqliteBroker::open(&fresh).await.unwrap());

    // Made before files were marked: rota's tables, no mark.
    let older = dir.path().join("older.db");
    drop(SqliteBroker::open(&older).await.unwrap());
    rusqlite::Connection::open(&older)
        .unwrap()
        .execute_batch("PRAGMA application_id = 0;")
        .unwrap();
    assert_eq!(application_id(&older), 0);
    drop(SqliteBroker::open(&older).await.unwrap());
    assert_eq!(application_id(&older), 0x726f_7461);

    for (name, setup, says) in [
        (
            "crm.db",
            "CREATE TABLE customers (id INTEGER PRIMARY KEY);",
            "tables customers",
        ),
        (
            "app.db",
            "PRAGMA application_id = 42;",
            "application id 0x2a",
        ),
    ] {
        let path = dir.path().join(name);
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(setup)
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        match SqliteBroker::open(&path).await {
            Err(BrokerError::Config(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("{name}: {:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "{name} was written");
    }
}
