//! The in-memory backend passes the conformance suites of calls and jobs.

use rota_memory::MemoryBroker;

rota_conformance::rpc_tests!(async { ((), MemoryBroker::new()) });
rota_conformance::jobs_tests!(|clock| async move { ((), MemoryBroker::with_clock(clock)) });
