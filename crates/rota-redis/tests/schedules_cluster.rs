//! The schedules suite on a Redis Cluster node that serves every slot:
//! Redis refuses there a command, or a function call, whose keys are in
//! two slots (`CROSSSLOT`), so passing it shows that each operation names
//! keys of one slot only. (Keys a function derives from what it reads are
//! not declared, and Redis 7.0 does not check those; `schedules_store.rs`
//! checks that every key a shard holds is about that shard.)

mod support;

rota_conformance::schedules_tests!(async {
    let server = support::cluster_node().await;
    let broker = support::broker(&server).await;
    (server, broker)
});
