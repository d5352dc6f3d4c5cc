//! Processes that open a fresh file at once — a worker and a command
//! started together — all get it: each waits for the others' schema and
//! WAL switch instead of failing with "database is locked".

use rota_sqlite::SqliteBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_file_opened_at_once_by_many_opens_for_all() {
    for round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rota.db");
        let opens: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                tokio::spawn(async move { SqliteBroker::open(&path).await })
            })
            .collect();
        for open in opens {
            if let Err(e) = open.await.unwrap() {
                panic!("round {round}: {e}");
            }
        }
    }
}
